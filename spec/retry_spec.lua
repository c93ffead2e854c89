-- weft.retry (the iterator) and weft.retry_call: exponential backoff that
-- honours its context. On virtual time every wait is exact.
local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

-- attempt_times(ctx, opts) -> the times at which the iterator's attempts
-- began, and the time the loop ended.
local function attempt_times(ctx, opts)
  local at = {}
  for attempt in weft.retry(ctx, opts) do
    assert.equal(#at + 1, attempt)
    at[attempt] = weft.now()
  end
  return at, weft.now()
end

-- schedule(n, min, max, factor [, t0]) -> the times of n attempts from t0
-- with no jitter: attempt i+1 begins min * factor^(i-1) after attempt i,
-- clamped to [min, max]. Sums are made as the clock makes them (now + wait),
-- so they compare exactly.
local function schedule(n, min, max, factor, t0)
  local t = t0 or 0
  local at = { t }
  for i = 1, n - 1 do
    t = t + math.min(math.max(min * factor ^ (i - 1), min), max)
    at[i + 1] = t
  end
  return at
end

local function cancelled()
  local ctx, cancel = weft.with_cancel()
  cancel("too late")
  return ctx
end

describe("weft.retry", function()
  it("yields 1..attempts, waiting min * factor^(i-1) clamped to max " ..
    "between them", vtask(function()
      local at, ended = attempt_times(weft.with_cancel(),
        { attempts = 6, min = 0.5, max = 4, factor = 2 })
      -- Waits 0.5, 1, 2, 4, then 4 again (8 clamped).
      assert.same({ 0, 0.5, 1.5, 3.5, 7.5, 11.5 }, at)
      assert.same(schedule(6, 0.5, 4, 2), at)
      assert.equal(11.5, ended) -- no wait after the last attempt
    end))

  it("defaults to 5 attempts, 0.1 s doubling", vtask(function()
    local at = attempt_times((weft.with_cancel()))
    assert.same(schedule(5, 0.1, 10, 2), at)
    assert.equal(5, #at)
    local t0 = weft.now()
    assert.same(schedule(5, 0.1, 10, 2, t0),
      (attempt_times(weft.with_cancel(), {})))
  end))

  it("clamps waits to [min, max]: factor 1 is constant, min 0 is no wait",
    vtask(function()
      assert.same({ 0, 0.25, 0.5, 0.75 }, (attempt_times(weft.with_cancel(),
        { attempts = 4, min = 0.25, factor = 1 })))
      local t0 = weft.now()
      assert.same(schedule(4, 1, 3, 10, t0), (attempt_times(weft.with_cancel(),
        { attempts = 4, min = 1, max = 3, factor = 10 })))
      assert.same({ 0.75, 1.75, 4.75, 7.75 }, schedule(4, 1, 3, 10, t0))
      t0 = weft.now()
      assert.same({ t0, t0, t0 }, (attempt_times(weft.with_cancel(),
        { attempts = 3, min = 0, factor = 3 })))
      assert.same({ t0 }, (attempt_times(weft.with_cancel(),
        { attempts = 1 })))
    end))

  it("spreads waits by +-jitter, within [min, max]", vtask(function()
    local min, max, factor, jitter = 0.1, 5, 2, 0.5
    local spread = false
    for _ = 1, 20 do
      local at = attempt_times(weft.with_cancel(), { attempts = 8, min = min,
        max = max, factor = factor, jitter = jitter })
      assert.equal(8, #at)
      for i = 1, 7 do
        local wait = at[i + 1] - at[i]
        local d = min * factor ^ (i - 1)
        local lo = math.max(min, d * (1 - jitter))
        local hi = math.min(max, d * (1 + jitter))
        assert(wait >= lo - 1e-9 and wait <= hi + 1e-9,
          ("wait %d was %g, not in [%g, %g]"):format(i, wait, lo, hi))
        if math.abs(wait - math.min(d, max)) > 1e-6 then spread = true end
      end
    end
    assert.is_true(spread) -- the jitter did move some waits
    -- Jitter 1 may halve a wait down to nothing: min still holds.
    for _ = 1, 20 do
      local at = attempt_times(weft.with_cancel(),
        { attempts = 3, min = 1, max = 2, factor = 1, jitter = 1 })
      for i = 1, 2 do
        local wait = at[i + 1] - at[i]
        assert(wait >= 1 - 1e-9 and wait <= 2 + 1e-9, tostring(wait))
      end
    end
  end))

  it("a break ends the loop without waiting any more", vtask(function()
    local n = 0
    for attempt in weft.retry(weft.with_cancel(), { attempts = 5, min = 1 }) do
      n = attempt
      if attempt == 3 then break end
    end
    assert.equal(3, n)
    assert.equal(3, weft.now()) -- waits 1 and 2, nothing after
  end))

  it("stops when ctx is cancelled during a wait, at that moment",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local canceller = weft.go(function()
        weft.sleep(2.5)
        cancel("stop")
      end)
      local at = attempt_times(ctx, { attempts = 10, min = 1, factor = 1 })
      assert.same({ 0, 1, 2 }, at)
      assert.equal(2.5, weft.now())
      assert.equal("canceled", ctx:err().kind)
      assert.equal("stop", ctx:cause())
      assert.is_true(canceller:join())
    end))

  it("stops with kind deadline when ctx's deadline passes during a wait",
    vtask(function()
      local ctx = weft.with_timeout(4)
      local at = attempt_times(ctx, { attempts = 10, min = 1, factor = 2 })
      assert.same({ 0, 1, 3 }, at) -- the next wait (4 s) outlasts ctx
      assert.equal(4, weft.now())
      assert.equal("deadline", ctx:err().kind)
    end))

  it("yields nothing when ctx is already cancelled", vtask(function()
    local n = 0
    for _ in weft.retry(cancelled(), { attempts = 3 }) do n = n + 1 end
    assert.equal(0, n)
    for _ in weft.retry((weft.with_deadline(weft.now() - 1))) do n = n + 1 end
    assert.equal(0, n)
    assert.equal(0, weft.now())
  end))

  it("stops before the next attempt when ctx is cancelled during one",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local seen = {}
      for attempt in weft.retry(ctx, { attempts = 5, min = 1, factor = 1 }) do
        seen[#seen + 1] = attempt
        if attempt == 2 then cancel() end
      end
      assert.same({ 1, 2 }, seen)
      assert.equal(1, weft.now()) -- no wait was begun after the cancel
    end))

  it("jittered waits repeat from run to run on virtual time",
    H.task(function()
      local opts = { attempts = 6, min = 0.1, factor = 2, jitter = 0.8 }
      local function run()
        return weft.virtual_time(function()
          return (attempt_times(weft.with_cancel(), opts))
        end)
      end
      local a, b = run(), run()
      assert.equal(6, #a)
      assert.same(a, b)
    end))

  it("rejects bad arguments and options", vtask(function()
    local ctx = weft.with_cancel()
    local function bad(opts, msg)
      assert.has_error(function() weft.retry(ctx, opts) end,
        "bad argument #2 to 'retry' (" .. msg .. ")")
    end
    assert.has_error(function() weft.retry() end,
      "bad argument #1 to 'retry' (weft.ctx expected, got nil)")
    assert.has_error(function() weft.retry({}) end,
      "bad argument #1 to 'retry' (weft.ctx expected, got table)")
    bad(5, "table expected, got number")
    bad({ attempts = 0 }, "bad field 'attempts': 0")
    bad({ attempts = 2.5 }, "bad field 'attempts': 2.5")
    bad({ attempts = "3" }, "bad field 'attempts': string")
    bad({ factor = 0.5 }, "bad field 'factor': 0.5")
    bad({ jitter = -0.1 }, "bad field 'jitter': -0.1")
    bad({ jitter = 1.5 }, "bad field 'jitter': 1.5")
    bad({ min = -1 }, "bad field 'min': -1")
    bad({ max = -1 }, "bad field 'max': -1")
    bad({ min = 2, max = 1 }, "field 'max' is less than 'min'")
    local ok, err = pcall(weft.retry, ctx, { min = 0 / 0 })
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'retry' %(bad field 'min': %-?nan%)$",
      err)
    -- The edges are fine.
    for _ in weft.retry(ctx, { attempts = 1, min = 0, max = 0, factor = 1,
      jitter = 1 }) do end
    for _ in weft.retry(ctx, { attempts = 1, jitter = 0 }) do end
  end))
end)

describe("weft.retry_call", function()
  it("returns fn's results once it succeeds, passing ctx and the attempt",
    vtask(function()
      local ctx = weft.with_cancel()
      local calls = {}
      local r = { n = 0 }
      local function collect(...) r = { n = select("#", ...), ... } end
      collect(weft.retry_call(ctx, { min = 1, factor = 2 }, function(c, a)
        assert.equal(ctx, c)
        calls[#calls + 1] = { a, weft.now() }
        if a < 3 then return nil, "not yet " .. a end
        return "v", nil, a
      end))
      assert.same({ n = 3, "v", nil, 3 }, r)
      assert.same({ { 1, 0 }, { 2, 1 }, { 3, 3 } }, calls)
      assert.equal(3, weft.now())
    end))

  it("returns the last error when the attempts run out, without a final " ..
    "wait", vtask(function()
      local n = 0
      local v, err = weft.retry_call(weft.with_cancel(),
        { attempts = 4, min = 0.5, factor = 1 }, function(_, a)
          n = n + 1
          if a % 2 == 0 then return false, "even " .. a end
          return nil, "odd " .. a
        end)
      assert.is_nil(v)
      assert.equal("even 4", err)
      assert.equal(4, n)
      assert.equal(1.5, weft.now())
    end))

  it("returns ctx's error when cancelled during a wait, at that moment",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local canceller = weft.go(function()
        weft.sleep(1.5)
        cancel("stop")
      end)
      local n = 0
      local v, err = weft.retry_call(ctx, { attempts = 5, min = 1 },
        function()
          n = n + 1
          return nil, "failed"
        end)
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      assert.equal("stop", err.cause)
      assert.equal(2, n) -- at 0 and 1; the wait until 3 was cut short
      assert.equal(1.5, weft.now())
      assert.is_true(canceller:join())
      -- A deadline in the middle of a wait: kind deadline.
      n = 0
      v, err = weft.retry_call(weft.with_timeout(0.25),
        { attempts = 5, min = 1 }, function()
          n = n + 1
          return nil, "failed"
        end)
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert.equal(1, n)
      assert.equal(1.75, weft.now())
    end))

  it("returns ctx's error when fn fails because ctx was cancelled during " ..
    "it", vtask(function()
      local ctx, cancel = weft.with_cancel()
      local n = 0
      local v, err = weft.retry_call(ctx, { attempts = 5 }, function(c, a)
        n = n + 1
        if a == 2 then cancel("mid-attempt") end
        return nil, c:err() or "failed"
      end)
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      assert.equal("mid-attempt", err.cause)
      assert.equal(2, n)
    end))

  it("does not call fn when ctx is already cancelled", vtask(function()
    local called = false
    local v, err = weft.retry_call(cancelled(), {}, function()
      called = true
      return true
    end)
    assert.is_nil(v)
    assert.equal("canceled", err.kind)
    assert.is_false(called)
    assert.equal(0, weft.now())
  end))

  it("lets an error raised by fn propagate, without retrying",
    vtask(function()
      local n = 0
      local ok, err = pcall(weft.retry_call, weft.with_cancel(),
        { attempts = 5 }, function()
          n = n + 1
          error("boom", 0)
        end)
      assert.is_false(ok)
      assert.equal("boom", err)
      assert.equal(1, n)
      assert.equal(0, weft.now())
    end))

  it("rejects bad arguments", vtask(function()
    local ctx = weft.with_cancel()
    assert.has_error(function() weft.retry_call(5, {}, print) end,
      "bad argument #1 to 'retry_call' (weft.ctx expected, got number)")
    assert.has_error(function() weft.retry_call(ctx, {}, 5) end,
      "bad argument #3 to 'retry_call' (function expected, got number)")
    assert.has_error(function() weft.retry_call(ctx, {}) end,
      "bad argument #3 to 'retry_call' (function expected, got nil)")
  end))

  it("names itself when its options are bad", vtask(function()
    local ctx = weft.with_cancel()
    assert.has_error(function() weft.retry_call(ctx, 5, print) end,
      "bad argument #2 to 'retry_call' (table expected, got number)")
    assert.has_error(
      function() weft.retry_call(ctx, { attempts = 0 }, print) end,
      "bad argument #2 to 'retry_call' (bad field 'attempts': 0)")
    assert.has_error(
      function() weft.retry_call(ctx, { min = 2, max = 1 }, print) end,
      "bad argument #2 to 'retry_call' (field 'max' is less than 'min')")
  end))

  it("stress: 2,000 concurrent callers under random cancellation each " ..
    "return the right result at the right moment", vtask(function()
      math.randomseed(2718)
      local N, ATTEMPTS, MIN, MAX, COST = 2000, 5, 0.1, 1, 0.01
      local opts = { attempts = ATTEMPTS, min = MIN, max = MAX }

      -- model(ok_at, c) -> outcome, time, calls: what a caller whose fn
      -- takes COST and first succeeds at attempt ok_at (never if more than
      -- ATTEMPTS) should see when its ctx is done at c.
      local function model(ok_at, c)
        local t = 0
        for a = 1, ATTEMPTS do
          if c <= t then return "ctx", c, a - 1 end
          if c < t + COST then return "ctx", c, a end
          t = t + COST
          if a == ok_at then return "ok", t, a end
          if a == ATTEMPTS then return "last", t, a end
          local d = math.min(math.max(MIN * 2 ^ (a - 1), MIN), MAX)
          if c < t + d then return "ctx", c, a end
          t = t + d
        end
      end

      local ctxs, cancels, at = {}, {}, {}
      local ok_at, res = {}, {}
      local ts = {}
      for i = 1, N do
        if math.random(3) == 1 then
          ctxs[i], cancels[i] = weft.with_timeout(math.random() * 2.5)
        else
          ctxs[i], cancels[i] = weft.with_cancel() -- chaos may cancel it
        end
        ok_at[i] = math.random(ATTEMPTS + 2) -- beyond ATTEMPTS: never
        local calls = 0
        ts[i] = weft.go(function()
          local v, err = weft.retry_call(ctxs[i], opts, function(ctx, a)
            calls = calls + 1
            local ok, e = weft.sleep(COST, ctx) -- the attempt's own work
            if not ok then return nil, e end
            if a == ok_at[i] then return "ok " .. i end
            return nil, "failed " .. a
          end)
          res[i] = { v, err, weft.now(), calls }
        end)
      end
      -- Chaos: cancel half the other contexts at random moments.
      local when = {}
      for i = 1, N do
        if not ctxs[i]:deadline() and math.random(2) == 1 then
          when[#when + 1] = { math.random() * 2.5, i }
        end
      end
      table.sort(when, function(x, y) return x[1] < y[1] end)
      local chaos = weft.go(function()
        for _, w in ipairs(when) do
          weft.sleep(w[1] - weft.now())
          local i = w[2]
          at[i] = weft.now()
          cancels[i]("chaos")
        end
      end)
      for i = 1, N do assert(ts[i]:join()) end
      assert(chaos:join())

      local counts = { ok = 0, last = 0, ctx = 0 }
      for i = 1, N do
        local c = at[i] or ctxs[i]:deadline() or math.huge
        local want, t, calls = model(ok_at[i], c)
        local v, err, got_t, got_calls = unpack(res[i], 1, 4)
        local what = ("caller %d (ok_at %d, done at %g)"):format(i, ok_at[i],
          c)
        if want == "ok" then
          assert(v == "ok " .. i, what .. ": " .. tostring(err))
        elseif want == "last" then
          assert(v == nil and err == "failed " .. ATTEMPTS,
            what .. ": " .. tostring(err))
        else
          assert(v == nil and err == ctxs[i]:err(), what .. ": " ..
            tostring(err))
        end
        assert(got_t == t, ("%s: returned at %g, not %g"):format(what, got_t,
          t))
        assert(got_calls == calls, ("%s: %d calls, not %d"):format(what,
          got_calls, calls))
        counts[want] = counts[want] + 1
      end
      assert.is_true(counts.ok > 200 and counts.last > 100 and
        counts.ctx > 200, ("%d ok, %d ran out, %d cancelled"):format(
        counts.ok, counts.last, counts.ctx))
    end))
end)
