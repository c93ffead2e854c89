-- weft.rate against the semantics of golang.org/x/time/rate (see
-- SEMANTICS.md) and the MultiLimiter of "Concurrency in Go", ch. 5.
--
-- The tables below are a port of x/time/rate's documented behaviour. Go
-- counts time in integer nanoseconds; most tables here step by D = 1/8 s,
-- which binary floating point represents exactly, with limits that give
-- whole or half tokens per step, so that they test the bucket and not the
-- rounding. Two specs use 10/s and 0.1 s steps, as Go's own tests do.
local weft = require "weft"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

local rate = weft.rate
local huge = math.huge
local EPS = 1e-9

local D = 0.125 -- the step of the tables: T(k) = k steps
local function T(k) return k * D end
local L = 1 / D -- one token per step

-- allows(l, rows) -> got, want: l:allow_at(t, n) for each {t, n, ok}, as
-- comparable lines ("t=0.25 n=1 true"), so a failure shows every step.
local function allows(l, rows)
  local got, want = {}, {}
  for i, row in ipairs(rows) do
    local t, n, ok = row[1], row[2], row[3]
    local line = ("%d: t=%g n=%d "):format(i, t, n)
    got[i] = line .. tostring(l:allow_at(t, n))
    want[i] = line .. tostring(ok)
  end
  return got, want
end

-- reserve(l, t, n, act) -> r: l:reserve_at(t, n), which must be granted
-- with its time to act at `act` (or refused when act is false).
local function reserve(l, t, n, act)
  local r = l:reserve_at(t, n)
  if act == false then
    assert.is_false(r:is_ok())
    assert.is_false(r.ok)
    assert.equal(huge, r:delay_from(t))
  else
    assert.is_true(r:is_ok())
    assert.is_true(r.ok)
    assert.near(act, t + r:delay_from(t), EPS)
  end
  return r
end

-- A task that cancels `cancel` after `s` seconds.
local function cancel_after(s, cancel)
  return weft.go(function()
    weft.sleep(s)
    cancel()
  end)
end

-- max_window(times, limit) -> the most grants found in a window [a, b]
-- beyond limit * (b - a): a limiter of burst b must keep it <= b.
local function max_window(times, limit)
  table.sort(times)
  local worst, lowest = 0, huge
  for j, g in ipairs(times) do
    -- Grants i..j in [g_i, g_j]: (j - i + 1) - limit * (g_j - g_i).
    local a = j - limit * g
    if a < lowest then lowest = a end
    if a - lowest + 1 > worst then worst = a - lowest + 1 end
  end
  return worst
end

describe("weft.rate.limiter", function()
  it("starts full; refills at the limit, up to the burst (10/s, burst 2)",
    task(function()
      local l = rate.limiter(10, 2)
      assert.equal(10, l:limit())
      assert.equal(2, l:burst())
      assert.equal(2, l:tokens_at(0))
      local got, want = allows(l, {
        { 0, 1, true }, { 0, 1, true }, -- the full bucket
        { 0, 1, false }, { 0, 0, true }, -- n = 0 always fits
        { 0.0625, 1, false }, -- 0.625 tokens
        { 0.125, 1, true }, -- 1.25 tokens
        { 0.125, 1, false }, -- 0.25
        { 0.25, 2, false }, -- 1.5: a failure takes nothing...
        { 0.25, 1, true }, -- ...so one still fits, 0.5 left
        { 0.375, 3, false }, -- more than the burst: never
        { 0.375, 1, true }, -- 1.75 - 1
        { 0.25, 1, false }, -- backward: elapsed 0, 0.75 tokens
        { 0.25, 0, true },
        { 10, 2, true }, -- capped at the burst: 2, not 98
        { 10, 1, false },
        { 10.5, 3, false },
        { 10.5, 2, true },
      })
      assert.same(want, got)
      assert.equal(0, l:tokens_at(10.5))
      assert.equal(1.25, l:tokens_at(10.625))
      assert.equal(2, l:tokens_at(1000))
    end))

  it("never consumes on failure, even with partial tokens", task(function()
    local l = rate.limiter(L, 3)
    assert.is_true(l:allow_at(0, 3))
    for _ = 1, 10 do assert.is_false(l:allow_at(T(1), 2)) end
    assert.equal(1, l:tokens_at(T(1)))
    assert.is_true(l:allow_at(T(1), 1))
    assert.equal(0, l:tokens_at(T(1)))
  end))

  it("allow takes what a reservation with no wait would, and no more",
    task(function()
      -- 2^30/s: a token is 0.93 ns, a wait Go truncates to 0 ns. So at one
      -- instant a burst of 1 allows a second event (a debt of one token),
      -- as a reservation would act at once, and refuses the third.
      local a, r = rate.limiter(2 ^ 30, 1), rate.limiter(2 ^ 30, 1)
      local got = {}
      for i = 1, 3 do
        got[i] = { a:allow_at(0), r:reserve_at(0):delay_from(0) }
      end
      assert.same({ { true, 0 }, { true, 0 }, { false, 1e-9 } }, got)
      assert.equal(-1, a:tokens_at(0)) -- the refusal took nothing
      assert.equal(-2, r:tokens_at(0))
      -- Refused for n > burst, whatever the tokens; n = 0 needs no debt.
      local l = rate.limiter(L, 2)
      assert.is_false(l:allow_at(T(9), 3))
      assert.equal(2, l:tokens_at(T(9)))
      assert.is_true(l:allow_at(T(9), 2))
      assert.is_true(l:allow_at(T(9), 0))
      assert.is_false(l:allow_at(T(9), 1))
      assert.equal(0, l:tokens_at(T(9)))
      -- An allow counts as an event: a reservation made before it, then
      -- cancelled, gives back only what was not taken since.
      l = rate.limiter(L, 2)
      local res = l:reserve_at(T(0), 2) -- acts at T(0)
      assert.is_true(l:allow_at(T(2), 2))
      res:cancel_at(T(0) - D) -- (before its act, so that it may restore)
      assert.equal(0, l:tokens_at(T(2)))
    end))

  it("Go's burst-1, burst-3 and jump-backward tables", task(function()
    local got, want = allows(rate.limiter(L, 1), {
      { T(0), 1, true }, { T(0), 1, false }, { T(0), 1, false },
      { T(1), 1, true }, { T(1), 1, false }, { T(1), 1, false },
      { T(2), 2, false }, -- burst 1: n = 2 always fails
      { T(2), 1, true }, { T(2), 1, false },
    })
    assert.same(want, got)
    got, want = allows(rate.limiter(L, 3), {
      { T(0), 2, true }, { T(0), 2, false }, { T(0), 1, true },
      { T(0), 1, false }, { T(1), 4, false }, { T(2), 1, true },
      { T(3), 1, true }, { T(4), 1, true }, { T(4), 1, true },
      { T(4), 1, false }, { T(4), 1, false }, { T(9), 3, true },
      { T(9), 0, true },
    })
    assert.same(want, got)
    got, want = allows(rate.limiter(L, 3), {
      { T(1), 1, true }, -- start at T(1)
      { T(0), 1, true }, -- back to T(0): two tokens remain
      { T(0), 1, true }, { T(0), 1, false }, { T(0), 1, false },
      { T(1), 1, true }, -- a token since T(0)
      { T(1), 1, false }, { T(1), 1, false },
      { T(2), 1, true }, { T(2), 1, false }, { T(2), 1, false },
    })
    assert.same(want, got)
  end))

  it("refills one token per 0.1 s at 10/s, as Go's integer nanoseconds do",
    task(function()
      -- Go's own tables, with its step of 100 ms. In float seconds
      -- 0.3 - 0.2 is 0.09999999999999998: 0.9999999999999998 tokens.
      local got, want = allows(rate.limiter(10, 1), {
        { 0, 1, true }, { 0, 1, false },
        { 0.1, 1, true }, { 0.1, 1, false },
        { 0.2, 1, true }, { 0.2, 1, false },
        { 0.3, 1, true }, { 0.3, 1, false },
        { 0.4, 1, true },
      })
      assert.same(want, got)
      local l = rate.limiter(10, 2)
      reserve(l, 0, 2, 0)
      reserve(l, 0.1, 2, 0.2)
      assert.is_true(l:allow_at(0.3, 1)) -- Go's TestMix: one token by t3
    end))

  it("reserve_at: a future time to act for debt (Go's simple and mix)",
    task(function()
      local l = rate.limiter(L, 2)
      reserve(l, T(0), 2, T(0))
      reserve(l, T(0), 2, T(2))
      reserve(l, T(3), 2, T(4))
      assert.equal(-1, l:tokens_at(T(3)))
      assert.equal(1, l:tokens_at(T(5)))

      l = rate.limiter(L, 2)
      reserve(l, T(0), 3, false) -- n > burst
      assert.equal(2, l:tokens_at(T(0))) -- nothing taken
      reserve(l, T(0), 2, T(0))
      assert.is_false(l:allow_at(T(1), 2)) -- one token only
      reserve(l, T(1), 2, T(2))
      assert.is_false(l:allow_at(T(1), 1)) -- in debt
      assert.is_true(l:allow_at(T(3), 1))
    end))

  it("reservations: delay and delay_from, not ok means math.huge",
    vtask(function()
      local l = rate.limiter(4, 1)
      local r0 = l:reserve()
      assert.equal(0, r0:delay())
      local r = l:reserve()
      assert.equal(0.25, r:delay())
      assert.equal(0.25, r:delay_from(0))
      assert.equal(0.125, r:delay_from(0.125))
      assert.equal(0, r:delay_from(1)) -- already past
      weft.sleep(r:delay())
      assert.equal(0.25, weft.now())
      assert.equal(0, r:delay())
      local r2 = l:reserve(2)
      assert.is_false(r2:is_ok())
      assert.equal(huge, r2:delay())
      assert.equal(huge, r2:delay_from(100))
      r2:cancel() -- a no-op
      assert.equal(0, l:tokens())
    end))

  it("reserve_at jumping backward acts from the earlier time",
    task(function()
      local l = rate.limiter(L, 2)
      reserve(l, T(1), 2, T(1)) -- start at T(1)
      reserve(l, T(0), 1, T(1)) -- elapsed 0: violates limit and burst
      reserve(l, T(2), 2, T(3))
    end))

  it("cancel_at gives the tokens back as far as later reservations allow",
    task(function()
      -- Cancelling the last reservation: 2 tokens back.
      local l = rate.limiter(L, 2)
      reserve(l, T(0), 2, T(0))
      local r = reserve(l, T(0), 2, T(2))
      r:cancel_at(T(1))
      assert.equal(1, l:tokens_at(T(1)))
      reserve(l, T(1), 2, T(2))

      -- Not ok: no effect.
      l = rate.limiter(L, 2)
      reserve(l, T(0), 2, T(0))
      r = reserve(l, T(0), 3, false)
      r:cancel_at(T(0))
      reserve(l, T(0), 2, T(2)) -- no extra tokens

      -- Too late: its time to act has passed.
      l = rate.limiter(L, 2)
      reserve(l, T(0), 2, T(0))
      r = reserve(l, T(0), 2, T(2))
      r:cancel_at(T(3))
      reserve(l, T(3), 2, T(4))

      -- A later reservation covers it all: 0 tokens back.
      l = rate.limiter(L, 2)
      reserve(l, T(0), 2, T(0))
      r = reserve(l, T(0), 1, T(1))
      reserve(l, T(0), 1, T(2))
      r:cancel_at(T(0))
      assert.equal(-2, l:tokens_at(T(0)))
      reserve(l, T(0), 1, T(3))

      -- Partly covered: 1 token back.
      l = rate.limiter(L, 2)
      reserve(l, T(0), 2, T(0))
      r = reserve(l, T(0), 2, T(2))
      reserve(l, T(0), 1, T(3))
      r:cancel_at(T(2))
      assert.equal(0, l:tokens_at(T(2)))
      reserve(l, T(2), 2, T(4))

      -- At exactly its time to act, it can still be cancelled.
      l = rate.limiter(L, 1)
      reserve(l, T(0), 1, T(0))
      r = reserve(l, T(0), 1, T(1))
      r:cancel_at(T(1))
      assert.equal(1, l:tokens_at(T(1)))
    end))

  it("cancelling the last event rolls it back for earlier cancels",
    task(function()
      local l = rate.limiter(L, 4)
      reserve(l, T(0), 4, T(0))
      local a = reserve(l, T(0), 3, T(3))
      reserve(l, T(0), 1, T(4))
      local c = reserve(l, T(0), 1, T(5))
      c:cancel_at(T(1)) -- 1 token back
      assert.equal(-3, l:tokens_at(T(1)))
      a:cancel_at(T(1)) -- 2 back, as if c was never reserved
      assert.equal(-1, l:tokens_at(T(1)))
      reserve(l, T(1), 3, T(5))

      -- Cancelled last first, a queue gives every token back.
      l = rate.limiter(L, 1)
      local rs = {}
      for i = 0, 5 do rs[i] = reserve(l, T(0), 1, T(i)) end
      for i = 5, 1, -1 do rs[i]:cancel_at(T(0)) end
      assert.equal(0, l:tokens_at(T(0)))
      reserve(l, T(0), 1, T(1))
    end))

  it("cancelled last first at 10/s, a queue gives every token back",
    task(function()
      -- Go rolls lastEvent back to the previous reservation's time to act,
      -- in integer nanoseconds: 300 ms - 100 ms is exactly 200 ms. In float
      -- seconds 0.3 - 0.1 is not 0.2, so the chain breaks.
      local l = rate.limiter(10, 1)
      local rs = {}
      for i = 0, 3 do rs[i] = reserve(l, 0, 1, i / 10) end
      assert.equal(-3, l:tokens_at(0))
      for i = 3, 1, -1 do rs[i]:cancel_at(0) end
      assert.near(0, l:tokens_at(0), EPS)
      reserve(l, 0, 1, 0.1)
    end))

  it("cancel_at jumping backward still gives back what it can",
    task(function()
      local l = rate.limiter(L, 2)
      reserve(l, T(1), 2, T(1))
      local r = reserve(l, T(1), 2, T(3))
      reserve(l, T(1), 1, T(4))
      r:cancel_at(T(0)) -- 1 token back
      reserve(l, T(1), 2, T(4)) -- violates limit and burst
    end))

  it("set_limit_at and set_burst_at advance to t first, then change",
    task(function()
      local half = L / 2 -- half a token per step
      local l = rate.limiter(half, 2)
      reserve(l, T(0), 2, T(0))
      reserve(l, T(0), 2, T(4))
      l:set_limit_at(T(2), L)
      assert.equal(L, l:limit())
      assert.equal(-1, l:tokens_at(T(2))) -- 1 refilled at the old limit
      reserve(l, T(2), 1, T(4)) -- violates limit and burst

      l = rate.limiter(half, 2)
      reserve(l, T(0), 2, T(0))
      reserve(l, T(0), 2, T(4))
      l:set_burst_at(T(3), 4)
      assert.equal(4, l:burst())
      assert.equal(-0.5, l:tokens_at(T(3)))
      reserve(l, T(0), 4, T(9)) -- violates limit and burst

      -- A reservation keeps the limit it was made with: cancelled after
      -- the change, it gives back at its own limit.
      l = rate.limiter(half, 2)
      reserve(l, T(0), 2, T(0))
      local r = reserve(l, T(0), 2, T(4))
      l:set_limit_at(T(2), L)
      r:cancel_at(T(2)) -- 2 tokens back
      assert.equal(1, l:tokens_at(T(2)))
      reserve(l, T(2), 2, T(3))

      -- A lower burst caps the bucket at the next update.
      l = rate.limiter(L, 5)
      l:set_burst_at(T(1), 2)
      assert.equal(2, l:tokens_at(T(1)))
      assert.is_false(l:allow_at(T(1), 3))
      assert.is_true(l:allow_at(T(1), 2))
    end))

  it("set_limit and set_burst mid-stream, on weft.now()", vtask(function()
    local l = rate.limiter(1, 1)
    assert.is_true(l:allow())
    assert.is_false(l:allow())
    weft.sleep(0.5)
    l:set_limit(4) -- 0.5 tokens so far, at 1/s
    assert.equal(0.5, l:tokens())
    weft.sleep(0.125)
    assert.equal(1, l:tokens())
    assert.is_true(l:allow())
    l:set_burst(3)
    weft.sleep(10)
    assert.equal(3, l:tokens())
    assert.is_true(l:allow(3))
    assert.is_false(l:allow())
  end))

  it("burst 0 with a finite limit allows nothing but n = 0",
    vtask(function()
      local l = rate.limiter(10, 0)
      assert.equal(0, l:tokens_at(0))
      assert.is_false(l:allow_at(0, 1))
      assert.is_false(l:allow_at(1000, 1))
      assert.is_true(l:allow_at(1000, 0))
      reserve(l, 0, 1, false) -- "did you remember to set burst > 0?"
      reserve(l, 5, 0, 5)
      assert.equal(0, l:tokens_at(1e6))
      local ok, err = l:wait(1)
      assert.is_nil(ok)
      assert.equal("rate", err.kind)
      assert.equal("rate: wait(n=1) exceeds limiter's burst 0", err.message)
      assert.is_true(l:wait(0))
      assert.equal(0, weft.now())
    end))

  it("limit 0 allows exactly the burst, then nothing ever", task(function()
    local l = rate.limiter(0, 1)
    assert.is_true(l:allow_at(0, 1))
    assert.is_false(l:allow_at(0, 1))
    assert.is_false(l:allow_at(1e9, 1))
    assert.equal(0, l:tokens_at(1e9))
    l = rate.limiter(0, 3)
    local got, want = allows(l, {
      { 0, 2, true }, { 5, 2, false }, { 5, 1, true }, { 1e6, 1, false },
      { 1e6, 0, true },
    })
    assert.same(want, got)
    -- A reservation is granted (n <= burst), to act never.
    l = rate.limiter(0, 1)
    assert.is_true(l:allow_at(0, 1))
    local r = l:reserve_at(1, 1)
    assert.is_true(r:is_ok())
    assert.equal(huge, r:delay_from(1))
    assert.equal(-1, l:tokens_at(2))
    r:cancel_at(2) -- and cancelled, it gives the token back
    assert.equal(0, l:tokens_at(2))
  end))

  it("limit 0, then set_limit: refills at the new limit", vtask(function()
    local l = rate.limiter(0, 1)
    assert.is_true(l:allow())
    assert.is_false(l:allow())
    weft.sleep(1)
    assert.is_false(l:allow())
    l:set_limit(10)
    assert.is_true(l:wait())
    assert.near(1.1, weft.now(), EPS)
  end))

  it("limit 0: a wait with a deadline fails fast, a cancelled wait gives " ..
    "the token back", vtask(function()
      local l = rate.limiter(0, 1)
      assert.is_true(l:wait())
      local ok, err = l:wait(weft.with_timeout(3600))
      assert.is_nil(ok)
      assert.equal("rate", err.kind)
      assert.equal("rate: wait(n=1) would exceed context deadline",
        err.message)
      assert.equal(0, weft.now())
      local ctx, cancel = weft.with_cancel()
      local canceller = cancel_after(5, cancel)
      ok, err = l:wait(ctx)
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      assert.equal(5, weft.now())
      assert.equal(0, l:tokens())
      canceller:join()
    end))

  it("rate.inf allows everything, even with burst 0", vtask(function()
    local l = rate.limiter(rate.inf, 0)
    assert.equal(huge, l:limit())
    for _ = 1, 100 do assert.is_true(l:allow()) end
    assert.is_true(l:allow(1000))
    assert.is_true(l:allow_at(-5, 7))
    local r = l:reserve(50)
    assert.is_true(r:is_ok())
    assert.equal(0, r:delay())
    r:cancel() -- a no-op
    assert.is_true(l:wait(3)) -- n > burst is fine at inf
    assert.is_true(l:wait(1e6))
    assert.equal(0, weft.now())
    -- And then a finite limit: the bucket of burst 0 allows nothing.
    weft.sleep(1)
    l:set_limit(10)
    assert.is_false(l:allow())
    local ok, err = l:wait(1)
    assert.is_nil(ok)
    assert.equal("rate: wait(n=1) exceeds limiter's burst 0", err.message)
  end))

  it("rate.inf: the bucket stays a number (tokens_at the last update)",
    task(function()
      -- Go's Inf is math.MaxFloat64: 0 elapsed * Inf is 0 tokens, not NaN.
      local l = rate.limiter(rate.inf, 3)
      assert.equal(3, l:tokens_at(1))
      assert.equal(3, l:tokens_at(0))
      l = rate.limiter(rate.inf, 0)
      assert.equal(0, l:tokens_at(0))
    end))

  it("from rate.inf to a finite limit at the same instant: the burst, " ..
    "then the new rate", vtask(function()
      -- Unlimited at start, throttled at once (t = 0, the last update).
      local l = rate.limiter(rate.inf, 2)
      l:set_limit(10)
      assert.equal(2, l:tokens())
      assert.is_true(l:allow())
      assert.is_true(l:allow())
      assert.is_false(l:allow())
      -- Toggled off and on within one instant, later on.
      l = rate.limiter(10, 2)
      assert.is_true(l:allow_at(1, 2))
      l:set_limit_at(1, rate.inf)
      l:set_limit_at(1, 10)
      assert.equal(0, l:tokens_at(1))
      assert.is_false(l:allow_at(1, 1))
      l = rate.limiter(rate.inf, 1)
      l:set_burst_at(0, 2)
      l:set_limit_at(0, 10)
      assert.equal(1, l:tokens_at(0))
    end))

  it("every and per", task(function()
    assert.equal(rate.inf, rate.every(0))
    assert.equal(rate.inf, rate.every(-1))
    assert.equal(1, rate.every(1))
    assert.equal(0.5, rate.every(2))
    assert.near(10, rate.every(0.1), EPS)
    assert.near(0.4, rate.every(2.5), EPS)
    assert.near(1e9, rate.every(1e-9), 1e-3)
    assert.equal(2, rate.per(2, 1))
    assert.near(1 / 6, rate.per(10, 60), EPS)
    assert.equal(rate.inf, rate.per(5, 0))
    assert.equal(math.huge, rate.inf)
  end))

  it("concurrent allows take exactly the burst", vtask(function()
    local l = rate.limiter(1, 5)
    local n = 0
    local ts = {}
    for i = 1, 15 do
      ts[i] = weft.go(function()
        weft.yield()
        if l:allow() then n = n + 1 end
      end)
    end
    for _, t in ipairs(ts) do t:join() end
    assert.equal(5, n)
  end))

  it("a long run of allows stays within burst + limit * elapsed",
    vtask(function()
      local l = rate.limiter(100, 100)
      local n, tries = 0, 0
      for i = 0, 2499 do
        weft.sleep(i * 0.002 - weft.now()) -- every 2 ms, for 5 s
        tries = tries + 1
        if l:allow() then n = n + 1 end
      end
      local ideal = 100 + 100 * weft.now()
      assert.equal(2500, tries)
      assert.is_true(n <= ideal + 1, n .. " > " .. ideal)
      assert.is_true(n >= math.floor(0.999 * ideal), n .. " < " .. ideal)
    end))

  it("tostring shows limit, burst and tokens", task(function()
    local l = rate.limiter(10, 2)
    assert.equal("weft.rate.limiter: 10/s, burst 2, 2 tokens", tostring(l))
    assert.matches("^weft.rate.reservation: ok, 1 tokens at 0$",
      tostring(l:reserve_at(0, 1)))
  end))
end)

describe("weft.rate wait", function()
  it("acts now, or sleeps until its time to act (Go's simple wait)",
    vtask(function()
      local l = rate.limiter(10, 3)
      local ctx, cancel = weft.with_cancel()
      cancel()
      local ok, err = l:wait(1, ctx)
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      assert.equal(3, l:tokens()) -- nothing taken
      ok, err = l:wait(4)
      assert.is_nil(ok)
      assert.equal("rate", err.kind)
      assert.equal("rate: wait(n=4) exceeds limiter's burst 3", err.message)
      assert.is_true(l:wait(2))
      assert.equal(0, weft.now())
      assert.is_true(l:wait(3))
      assert.near(0.2, weft.now(), EPS)
      assert.near(0, l:tokens(), EPS)
    end))

  it("takes (n, ctx), (ctx) or nothing", vtask(function()
    local l = rate.limiter(2, 2)
    local ctx = weft.with_timeout(10)
    assert.is_true(l:wait(ctx))
    assert.is_true(l:wait(1, ctx))
    assert.is_true(l:wait())
    assert.equal(0.5, weft.now())
    assert.is_true(l:wait(2, nil))
    assert.equal(1.5, weft.now())
  end))

  it("cancelled while waiting: ctx's error, and the tokens come back",
    vtask(function()
      local l = rate.limiter(10, 3)
      local ctx, cancel = weft.with_cancel()
      assert.is_true(l:wait(2, ctx)) -- 1 token left
      local canceller = cancel_after(0.1, cancel)
      local ok, err = l:wait(3, ctx) -- would act at 0.2
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      assert.near(0.1, weft.now(), EPS)
      assert.near(2, l:tokens(), EPS) -- -2 + 1 refilled + 3 given back
      canceller:join()
      assert.is_true(l:wait(2)) -- at once
      assert.near(0.1, weft.now(), EPS)
    end))

  it("a cancelled task's wait gives its tokens back", vtask(function()
    local l = rate.limiter(1, 1)
    assert.is_true(l:wait())
    local t = weft.go(function() return l:wait() end)
    weft.sleep(0.25)
    assert.near(-0.75, l:tokens(), EPS)
    t:cancel("stop")
    local ok, err = t:join()
    assert.is_nil(ok)
    assert.equal("canceled", err.kind)
    assert.equal(0.25, weft.now())
    assert.near(0.25, l:tokens(), EPS)
  end))

  it("a deadline the wait would pass fails fast, taking nothing",
    vtask(function()
      local l = rate.limiter(10, 3)
      local ctx = weft.with_timeout(0.1)
      assert.is_true(l:wait(2, ctx))
      local ok, err = l:wait(3, ctx) -- would end at 0.2
      assert.is_nil(ok)
      assert.equal("rate", err.kind)
      assert.equal("rate: wait(n=3) would exceed context deadline",
        err.message)
      assert.equal(0, weft.now())
      assert.equal(1, l:tokens())
      assert.is_true(l:wait(1, ctx)) -- one still fits
      assert.is_true(l:wait(1, weft.with_timeout(0.15))) -- acts at 0.1
      assert.near(0.1, weft.now(), EPS)
      -- A deadline far enough: it sleeps.
      assert.is_true(l:wait(3, weft.with_timeout(1)))
      assert.near(0.4, weft.now(), EPS)
    end))

  it("an expired context: its error, once the burst check passed",
    vtask(function()
      local l = rate.limiter(10, 1)
      local ctx = weft.with_timeout(0.5)
      weft.sleep(1)
      local ok, err = l:wait(ctx)
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(1, l:tokens())
      -- ...but after the burst check itself.
      ok, err = l:wait(2, ctx)
      assert.is_nil(ok)
      assert.equal("rate", err.kind)
    end))

  it("rate.inf: waits for any n return at once", vtask(function()
    local l = rate.limiter(rate.inf, 0)
    assert.is_true(l:wait(3))
    assert.is_true(l:wait(3, weft.with_timeout(0.001)))
    assert.equal(0, weft.now())
  end))

  it("waiters go through in arrival order, at the limit", vtask(function()
    local l = rate.limiter(4, 2)
    local log, ts = {}, {}
    for i, n in ipairs { 2, 2, 1, 2, 1 } do
      ts[i] = weft.go(function()
        assert(l:wait(n))
        log[#log + 1] = ("%d@%g"):format(i, weft.now())
      end)
    end
    for _, t in ipairs(ts) do t:join() end
    assert.same({ "1@0", "2@0.5", "3@0.75", "4@1.25", "5@1.5" }, log)
  end))

end)

describe("weft.rate.multi", function()
  it("the book's APIConnection: 2/s burst 1 and 10/min burst 10",
    vtask(function()
      local api = rate.multi(
        rate.limiter(rate.per(2, 1), 1),
        rate.limiter(rate.per(10, 60), 10))
      assert.equal(rate.per(10, 60), api:limit()) -- the most restrictive
      assert.equal(1, api:burst())
      local at, ts = {}, {}
      for i = 1, 20 do
        ts[i] = weft.go(function()
          assert(api:wait())
          at[i] = weft.now()
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      local want = {}
      for i = 1, 10 do want[i] = (i - 1) * 0.5 end
      for i = 11, 20 do want[i] = (i - 10) * 6 end
      assert.same(want, at)
    end))

  it("nests: the book's read_file with a disk limiter of 1/s",
    vtask(function()
      local api = rate.multi(
        rate.limiter(rate.per(2, 1), 1),
        rate.limiter(rate.per(10, 60), 10))
      local disk = rate.limiter(rate.per(1, 1), 1)
      local read = rate.multi(api, disk)
      assert.equal(1 / 6, read:limit())
      assert.equal(1, read:burst())
      local at, ts = {}, {}
      for i = 1, 12 do
        ts[i] = weft.go(function()
          assert(read:wait())
          at[i] = weft.now()
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12 }, at)
    end))

  it("allow_at: an event must pass every limiter", task(function()
    local slow = rate.limiter(1, 5)
    local fast = rate.limiter(100, 1)
    local m = rate.multi(fast, slow)
    assert.equal(1, m:limit())
    assert.equal(1, m:burst())
    assert.equal(1, m:tokens_at(0))
    assert.is_true(m:allow_at(0))
    assert.equal(4, slow:tokens_at(0))
    assert.equal(0, fast:tokens_at(0))
    assert.equal(0, m:tokens_at(0))
    -- slow would pass, fast does not: slow keeps its token.
    for _ = 1, 5 do assert.is_false(m:allow_at(0)) end
    assert.equal(4, slow:tokens_at(0))
    assert.equal(0, fast:tokens_at(0))
    -- n over one member's burst: fails, nothing taken.
    assert.is_false(m:allow_at(0, 2))
    assert.equal(4, slow:tokens_at(0))
    assert.is_true(m:allow_at(0.01))
    assert.near(3.01, slow:tokens_at(0.01), EPS)
    assert.equal(0, fast:tokens_at(0.01))
  end))

  it("a failed allow on nested multis takes nothing from any member",
    task(function()
      local a = rate.limiter(1, 3)
      local b = rate.limiter(2, 3)
      local c = rate.limiter(4, 1)
      local m = rate.multi(c, rate.multi(b, a)) -- a, b come first
      assert.is_true(m:allow_at(0))
      assert.is_false(m:allow_at(0)) -- a and b pass, c fails
      assert.is_false(m:allow_at(0.125)) -- c has 0.5
      assert.same({ 2.125, 2.25, 0.5 }, { a:tokens_at(0.125),
        b:tokens_at(0.125), c:tokens_at(0.125) })
      assert.is_true(m:allow_at(0.25))
      assert.same({ 1.25, 1.5, 0 }, { a:tokens_at(0.25), b:tokens_at(0.25),
        c:tokens_at(0.25) })
      -- Fails on the first member: the others are not even asked.
      a = rate.limiter(1, 1)
      b = rate.limiter(2, 3)
      m = rate.multi(rate.multi(b), a)
      assert.is_true(m:allow_at(0))
      assert.is_false(m:allow_at(0))
      assert.same({ 0, 2 }, { a:tokens_at(0), b:tokens_at(0) })
    end))

  it("reserve_at: the longest delay; cancel gives back to each",
    task(function()
      local slow = rate.limiter(1, 2)
      local fast = rate.limiter(8, 1)
      local m = rate.multi(fast, slow)
      local r = m:reserve_at(0)
      assert.is_true(r:is_ok())
      assert.equal(0, r:delay_from(0))
      assert.equal(0.125, m:reserve_at(0):delay_from(0)) -- fast's
      r = m:reserve_at(0, 1)
      assert.is_true(r.ok)
      assert.equal(1, r:delay_from(0)) -- slow's
      assert.equal(0.5, r:delay_from(0.5))
      assert.same({ -1, -2 }, { slow:tokens_at(0), fast:tokens_at(0) })
      r:cancel_at(0)
      assert.same({ 0, -1 }, { slow:tokens_at(0), fast:tokens_at(0) })
      -- Over fast's burst: slow's part is given back, nothing taken.
      r = m:reserve_at(0, 2)
      assert.is_false(r:is_ok())
      assert.equal(huge, r:delay_from(0))
      r:cancel_at(0)
      assert.same({ 0, -1 }, { slow:tokens_at(0), fast:tokens_at(0) })
    end))

  it("wait on weft.now(), with reserve, allow and tokens", vtask(function()
    local m = rate.multi(rate.limiter(2, 1), rate.limiter(1, 2))
    assert.is_true(m:allow())
    assert.equal(0, m:tokens())
    local r = m:reserve()
    assert.equal(0.5, r:delay()) -- the 2/s member's
    r:cancel()
    assert.is_true(m:wait())
    assert.equal(0.5, weft.now())
    local ok, err = m:wait(weft.with_timeout(0.25))
    assert.is_nil(ok)
    assert.equal("rate", err.kind)
    assert.matches("would exceed context deadline", err.message)
  end))

  it("rejects bad arguments the way a limiter does", vtask(function()
    assert.has_error(function() rate.multi() end,
      "bad argument #1 to 'multi' (a limiter expected)")
    assert.has_error(function() rate.multi(rate.limiter(1, 1), 5) end,
      "bad argument #2 to 'multi' (weft.rate.limiter expected, got number)")
    local m = rate.multi(rate.limiter(1, 1))
    assert.has_error(function() m:allow_at("x") end,
      "bad argument #1 to 'allow_at' (number expected, got string)")
    assert.has_error(function() m:allow_at(0, -1) end,
      "bad argument #2 to 'allow_at' (non-negative integer expected, got -1)")
    assert.has_error(function() m:wait(1.5) end,
      "bad argument #1 to 'wait' (non-negative integer expected, got 1.5)")
    assert.has_error(function() m:allow(-1) end,
      "bad argument #1 to 'allow' (non-negative integer expected, got -1)")
    assert.has_error(function() m:reserve(1.5) end,
      "bad argument #1 to 'reserve' (non-negative integer expected, " ..
      "got 1.5)")
  end))
end)

describe("weft.rate argument errors", function()
  it("limiter, every, per", task(function()
    assert.has_error(function() rate.limiter(-1, 1) end,
      "bad argument #1 to 'limiter' (non-negative number expected, got -1)")
    assert.has_error(function() rate.limiter(0 / 0, 1) end,
      "bad argument #1 to 'limiter' (non-negative number expected, got nan)")
    assert.has_error(function() rate.limiter("1", 1) end,
      "bad argument #1 to 'limiter' (non-negative number expected, " ..
      "got string)")
    assert.has_error(function() rate.limiter(1, -1) end,
      "bad argument #2 to 'limiter' (non-negative integer expected, got -1)")
    assert.has_error(function() rate.limiter(1, 1.5) end,
      "bad argument #2 to 'limiter' (non-negative integer expected, got 1.5)")
    assert.has_error(function() rate.limiter(1) end,
      "bad argument #2 to 'limiter' (non-negative integer expected, got nil)")
    assert.has_error(function() rate.every("1") end,
      "bad argument #1 to 'every' (number expected, got string)")
    assert.has_error(function() rate.per(nil, 1) end,
      "bad argument #1 to 'per' (number expected, got nil)")
    assert.has_error(function() rate.per(1, {}) end,
      "bad argument #2 to 'per' (number expected, got table)")
    -- Errors point at the caller.
    local ok, err = pcall(rate.limiter, 1, -1)
    assert.is_false(ok)
    assert.matches("^bad argument", err) -- pcall'd directly: no position
    ok, err = pcall(function() rate.limiter(1, -1) end)
    assert.is_false(ok)
    assert.matches("rate_spec%.lua:%d+: bad argument #2", err)
  end))

  it("methods", vtask(function()
    local l = rate.limiter(1, 1)
    assert.has_error(function() l:allow(-1) end,
      "bad argument #1 to 'allow' (non-negative integer expected, got -1)")
    assert.has_error(function() l:allow_at("x") end,
      "bad argument #1 to 'allow_at' (number expected, got string)")
    assert.has_error(function() l:allow_at(0, 0.5) end,
      "bad argument #2 to 'allow_at' (non-negative integer expected, " ..
      "got 0.5)")
    assert.has_error(function() l:reserve("x") end,
      "bad argument #1 to 'reserve' (non-negative integer expected, " ..
      "got string)")
    assert.has_error(function() l:reserve_at(nil, 1) end,
      "bad argument #1 to 'reserve_at' (number expected, got nil)")
    assert.has_error(function() l:tokens_at() end,
      "bad argument #1 to 'tokens_at' (number expected, got nil)")
    assert.has_error(function() l:set_limit(-2) end,
      "bad argument #1 to 'set_limit' (non-negative number expected, " ..
      "got -2)")
    assert.has_error(function() l:set_limit_at(0, "x") end,
      "bad argument #2 to 'set_limit_at' (non-negative number expected, " ..
      "got string)")
    assert.has_error(function() l:set_burst(0.5) end,
      "bad argument #1 to 'set_burst' (non-negative integer expected, " ..
      "got 0.5)")
    assert.has_error(function() l:set_burst_at(0, -1) end,
      "bad argument #2 to 'set_burst_at' (non-negative integer expected, " ..
      "got -1)")
    assert.has_error(function() l:wait(-1) end,
      "bad argument #1 to 'wait' (non-negative integer expected, got -1)")
    assert.has_error(function() l:wait(1, "ctx") end,
      "bad argument #2 to 'wait' (weft.ctx expected, got string)")
    assert.has_error(function() l.allow({}) end,
      "bad argument #1 to 'allow' (weft.rate.limiter expected, got table)")
    assert.has_error(function() l.tokens(nil) end,
      "bad argument #1 to 'tokens' (weft.rate.limiter expected, got nil)")
    -- A rejected call changed nothing.
    assert.equal(1, l:limit())
    assert.equal(1, l:burst())
    assert.equal(1, l:tokens())
  end))
end)

describe("weft.rate stress", function()
  -- n waiters arriving every `gap` seconds on limiter(limit, burst); a
  -- random 30% (fixed seed) have their context cancelled `after` a random
  -- time under 0.05 s when cancelling is on.
  local function scenario(cancelling, n, gap, limit, burst)
    return function()
      math.randomseed(7)
      local l = rate.limiter(limit, burst)
      local res, ts = {}, {}
      for i = 1, n do
        local r = { arrive = (i - 1) * gap }
        if math.random() < 0.3 then r.after = math.random() * 0.05 end
        res[i] = r
        ts[i] = weft.go(function()
          weft.sleep(r.arrive)
          local ctx, cancel = weft.with_cancel()
          if cancelling and r.after then cancel_after(r.after, cancel) end
          local ok, err = l:wait(ctx)
          r.ok, r.at, r.err = ok, weft.now(), err
          cancel()
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      return res
    end
  end

  local function grants(res)
    local times, last = {}, 0
    for _, r in ipairs(res) do
      if r.ok then
        times[#times + 1] = r.at
        if r.at > last then last = r.at end
      end
    end
    return times, last
  end

  it("thousands of waiters with random cancellation: never over the " ..
    "rate, and cancelled waiters give their tokens back", task(function()
      local N, GAP, LIMIT, BURST = 3000, 0.01, 50, 5
      local plain = assert(weft.virtual_time(
        scenario(false, N, GAP, LIMIT, BURST)))
      local res = assert(weft.virtual_time(
        scenario(true, N, GAP, LIMIT, BURST)))

      -- Without cancellation: every waiter, in arrival order, at the rate.
      local times, plain_end = grants(plain)
      assert.equal(N, #times)
      for i = 2, N do assert.is_true(times[i] >= times[i - 1]) end
      assert.is_true(max_window(times, LIMIT) <= BURST + 1e-6)
      assert.near((N - BURST) / LIMIT, plain_end, 1e-6)

      -- With it: the others all go through, the cancelled fail when
      -- cancelled, and nobody goes over the rate.
      local cancelled, late = 0, 0
      for _, r in ipairs(res) do
        assert.is_true(r.at >= r.arrive - EPS)
        if not r.after then
          assert.is_true(r.ok)
        elseif r.ok then
          late = late + 1 -- granted before its cancel came
          assert.is_true(r.at <= r.arrive + r.after + EPS)
        else
          cancelled = cancelled + 1
          assert.equal("canceled", r.err.kind)
          assert.near(r.arrive + r.after, r.at, EPS)
        end
      end
      assert.is_true(cancelled > 500, "cancelled " .. cancelled)
      assert.is_true(late > 0, "granted despite a cancel " .. late)
      local ctimes, cend = grants(res)
      assert.equal(N - cancelled, #ctimes)
      assert.is_true(max_window(ctimes, LIMIT) <= BURST + 1e-6)
      -- Tokens given back: the schedule ends earlier, yet no earlier
      -- than if the cancelled waiters had never come.
      assert.is_true(cend < plain_end - 1, cend .. " vs " .. plain_end)
      assert.is_true(cend >= (#ctimes - BURST) / LIMIT - 1e-6)
    end))

  it("cancelling the queue from its tail gives every token back",
    vtask(function()
      -- 128/s: every time to act is exact in binary (and in nanoseconds),
      -- so each cancel finds the one before it at the tail.
      local l = rate.limiter(128, 8)
      local at, errs, cancels, ts = {}, {}, {}, {}
      for i = 1, 1000 do
        local ctx, cancel = weft.with_cancel()
        cancels[i] = cancel
        ts[i] = weft.go(function()
          local ok, err = l:wait(ctx)
          if ok then at[i] = weft.now() else errs[i] = err end
        end)
      end
      weft.sleep(1)
      assert.equal(-864, l:tokens()) -- 8 - 1000 + 128
      for i = 1000, 701, -1 do cancels[i]() end
      weft.yield() -- the cancelled waiters give back, last first
      for i = 701, 1000 do
        assert.is_nil(at[i])
        assert.equal("canceled", errs[i].kind)
      end
      assert.equal(-564, l:tokens())
      -- A newcomer goes right after waiter 700, not after 1000.
      ts[1001] = weft.go(function()
        assert(l:wait())
        at[1001] = weft.now()
      end)
      for _, t in ipairs(ts) do t:join() end
      for i = 1, 700 do
        assert.equal(math.max(0, (i - 8) / 128), at[i])
      end
      assert.equal(693 / 128, at[1001]) -- not 993 / 128
      assert.equal(0, l:tokens())
    end))

  it("cancelling in the middle of the queue gives nothing back",
    vtask(function()
      local l = rate.limiter(100, 10)
      local at, cancels, ts = {}, {}, {}
      for i = 1, 100 do
        local ctx, cancel = weft.with_cancel()
        cancels[i] = cancel
        ts[i] = weft.go(function()
          if l:wait(ctx) then at[i] = weft.now() end
        end)
      end
      weft.sleep(0.1)
      for i = 41, 60 do cancels[i]() end
      assert.near(-80, l:tokens(), 1e-6) -- 10 - 100 + 10 refilled
      for _, t in ipairs(ts) do t:join() end
      for i = 1, 100 do
        if i > 40 and i <= 60 then
          assert.is_nil(at[i])
        else
          assert.near(math.max(0, (i - 10) / 100), at[i], EPS)
        end
      end
      assert.near(0.9, weft.now(), EPS)
      assert.near(0, l:tokens(), 1e-6)
    end))

  it("all at once, random cancels at random times: never over the rate",
    vtask(function()
      math.randomseed(11)
      local LIMIT, BURST, N = 200, 20, 4000
      local l = rate.limiter(LIMIT, BURST)
      local at, ts, cancellers, cancelled = {}, {}, {}, 0
      for i = 1, N do
        local ctx, cancel = weft.with_cancel()
        if math.random() < 0.25 then
          cancellers[#cancellers + 1] =
            cancel_after(math.random() * (N / LIMIT), cancel)
        end
        ts[i] = weft.go(function()
          local ok, err = l:wait(ctx)
          if ok then
            at[#at + 1] = weft.now()
          else
            assert.equal("canceled", err.kind)
            cancelled = cancelled + 1
          end
          cancel()
        end)
      end
      for _, t in ipairs(ts) do t:join() end
      for _, t in ipairs(cancellers) do t:join() end
      assert.equal(N, #at + cancelled)
      assert.is_true(cancelled > 100, "cancelled " .. cancelled)
      assert.is_true(max_window(at, LIMIT) <= BURST + 1e-6)
      -- Arrival order is grant order; nothing beats the full schedule.
      assert.is_true(at[#at] <= (N - BURST) / LIMIT + EPS)
    end))
end)
