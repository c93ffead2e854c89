-- gh-8, sections 5 and 7: reporting an error is total (no value can crash
-- the runtime or lose the error), and times, limits and capacities are
-- checked (NaN, a huge capacity, a restart loop that stops virtual time).
local weft = require "weft"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

local nan = 0 / 0

-- A value whose __tostring raises `msg`.
local function exploding(msg)
  return setmetatable({}, { __tostring = function()
    error(msg or "tostring exploded", 0)
  end })
end

local function script(text)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- run(args, text) -> combined output and exit status of the weft command
-- running the script `text`.
local function run(args, text)
  local path = script(text)
  local out, status = H.sh(H.weft_bin .. " " .. args .. " " .. path ..
    " 2>&1")
  os.remove(path)
  return out, status
end

-- blame(fn, ...) -> the message fn(...) raised, which must name the line of
-- its caller: this file's.
local function blame(fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, msg = pcall(function()
    local r = fn(unpack(args, 1, args.n)) -- not a tail call: it is the caller
    return r
  end)
  assert.is_false(ok, "accepted")
  assert.matches("^[^\n]*gh8_values_spec%.lua:%d+: ", msg)
  return (msg:gsub("^[^\n]-:%d+: ", "", 1))
end

describe("gh-8: reporting any error", function()
  it("gh-8: a task raising a value whose __tostring raises is reported, " ..
    "and the rest of main runs", task(function()
      local out, status = run("", [[
        weft.go(function()
          error(setmetatable({}, { __tostring = function()
            error("tostring exploded", 0)
          end }))
        end)
        weft.yield()
        print("rest of main ran")
      ]])
      assert.equal(1, status)
      assert.is_truthy(out:find("rest of main ran\n", 1, true), out)
      assert.matches('weft: %[%w+%-%d+%] uncaught error in task "[^"]+" ' ..
        "%(a bug in the program%): error object whose __tostring " ..
        "failed: tostring exploded\n", out)
    end))

  it("gh-8: a task raising a value whose __tostring yields is reported, " ..
    "and the rest of main runs", task(function()
      local out, status = run("", [[
        weft.go(function()
          error(setmetatable({}, { __tostring = function()
            coroutine.yield("from __tostring")
            return "never"
          end }))
        end)
        weft.yield()
        print("rest of main ran")
      ]])
      assert.equal(1, status)
      assert.is_truthy(out:find("rest of main ran\n", 1, true), out)
      assert.matches("uncaught error in task [^\n]*: error object whose " ..
        "__tostring failed: [^\n]+\n", out)
    end))

  it("gh-8: the full report of an error whose task_id is not a number " ..
    "and whose value's __tostring raises", task(function()
      local out, status = run("-v", [[
        weft.go(function()
          error(weft.error { kind = "io", msg = "disk full", task_id = "nope",
            value = setmetatable({}, { __tostring = function()
              error("tostring exploded", 0)
            end }) })
        end)
        weft.yield()
        print("rest of main ran")
      ]])
      assert.equal(1, status)
      assert.is_truthy(out:find("rest of main ran\n", 1, true), out)
      assert.matches("weft: %[%w+%-%d+%] disk full\n", out)
      assert.matches('\n  in task "[^"]+" %(id nope%)\n', out)
      assert.matches("\n  value: error object whose __tostring failed: " ..
        "tostring exploded\n", out)
      assert.not_matches("errors%.lua", out)
    end))

  it("gh-8: brief and record of errors with fields of the wrong type",
    task(function()
      local e = weft.error { kind = "io", msg = "disk full", task_id = "nope",
        value = exploding() }
      assert.matches("^%[%w+%-%d+%] disk full$", weft.errors.brief(e))
      local record = weft.errors.record(e)
      assert.matches('\n  in task "spec" %(id nope%)\n', record)
      assert.matches("\n  value: error object whose __tostring failed: " ..
        "tostring exploded\n", record)
      e.traceback = { 1 }
      assert.matches("\n  table: 0x%x+$", weft.errors.record(e))

      -- Fields replaced after the error was made.
      local f = weft.error("io", "disk full")
      f.message = exploding()
      f._t = "soon"
      f._task = 5
      f.others = 7
      f.cause = exploding("cause exploded")
      assert.equal("error object whose __tostring failed: tostring exploded",
        tostring(f))
      assert.is_nil(f.time)
      assert.is_nil(f.task)
      record = weft.errors.record(f)
      assert.matches("^%[%w+%-%d+%] %? io: error object whose __tostring " ..
        "failed: tostring exploded\n", record)
      assert.matches("\ncaused by: error object whose __tostring failed: " ..
        "cause exploded$", record)
    end))

  it("gh-8: brief of raised values whose __tostring fails in every way",
    task(function()
      local function brief(v)
        return (weft.errors.brief(v):gsub("^%[%w+%-%d+%] ", ""))
      end
      assert.equal("error object whose __tostring failed: tostring exploded",
        brief(exploding()))
      -- What it raised has a failing __tostring too, and so on.
      assert.equal("error object whose __tostring failed: error object " ..
        "whose __tostring failed: error object whose __tostring failed: " ..
        "(error object is a table value)",
        brief(exploding(exploding(exploding(exploding())))))
      assert.equal("error object whose __tostring returned a table value",
        brief(setmetatable({}, { __tostring = function() return {} end })))
      assert.equal("error object whose __tostring failed: " ..
        "(error object is a nil value)",
        brief(setmetatable({}, { __tostring = function() error() end })))
    end))

  it("gh-8: weft.error and err:wrap never raise on a bad message",
    task(function()
      local e = weft.error { kind = "k", msg = exploding() }
      assert.equal("(table value whose __tostring failed: tostring exploded)",
        e.message)
      e = weft.error("k", "at %s", exploding())
      assert.equal("at (table value whose __tostring failed: tostring " ..
        "exploded)", e.message)
      local w = e:wrap("loading %s", exploding())
      assert.equal("loading (table value whose __tostring failed: " ..
        "tostring exploded)", w.message)
      assert.equal(e, w.cause)
      w = e:wrap("port %d", "x")
      assert.equal("port %d (bad format: bad argument #2 to 'format' " ..
        "(number expected, got string))", w.message)
      assert.equal(e, w.cause)
      assert.equal("k", w.kind)
      assert.equal("plain text", e:wrap("plain %s", "text").message)
    end))

  it("gh-8: a scope whose function raises such a value keeps the error",
    task(function()
      local v = exploding()
      local ok, err = pcall(weft.scope, function() error(v) end)
      assert.is_false(ok)
      assert.is_true(weft.errors.is_error(err), tostring(err))
      assert.equal("bug", err.kind)
      assert.equal(v, err.value)
      assert.equal("error object whose __tostring failed: tostring exploded",
        err.message)
      assert.matches("gh8_values_spec%.lua:%d+", err.traceback)
    end))

  it("gh-8: errors whose `others` is not a list are grouped", task(function()
    local g = weft.group()
    for i = 1, 2 do
      g:go(function()
        return nil, weft.error { kind = "k", msg = "m" .. i, others = 7 }
      end)
    end
    local err = g:wait()
    assert.equal("m1", err.message)
    assert.equal(1, #err.others)
    assert.equal("m2", err.others[1].message)
    assert.matches("\nalso failed: [^\n]* k: m2", weft.errors.record(err))
  end))
end)

describe("gh-8: NaN is no time, limit or duration", function()
  it("gh-8: the rate limiter rejects NaN times, limits and counts",
    task(function()
      local rate = weft.rate
      local l = rate.limiter(rate.every(3600), 1)
      local m = rate.multi(rate.limiter(1, 1), rate.limiter(10, 1))
      local r = l:reserve_at(0)
      local mr = m:reserve_at(0)
      local function nan_at(name, obj, fname)
        assert.equal("bad argument #1 to '" .. (fname or name) ..
          "' (number expected, got nan)", blame(obj[name], obj, nan))
      end
      for _, name in ipairs { "allow_at", "reserve_at", "tokens_at",
          "set_limit_at", "set_burst_at" } do
        nan_at(name, l)
      end
      for _, name in ipairs { "allow_at", "reserve_at", "tokens_at" } do
        nan_at(name, m)
      end
      nan_at("delay_from", r)
      nan_at("cancel_at", r)
      nan_at("delay_from", mr)
      nan_at("cancel_at", mr)
      assert.equal("bad argument #1 to 'every' (number expected, got nan)",
        blame(rate.every, nan))
      assert.equal("bad argument #1 to 'per' (number expected, got nan)",
        blame(rate.per, nan, 1))
      assert.equal("bad argument #2 to 'per' (number expected, got nan)",
        blame(rate.per, 1, nan))
      assert.equal("bad argument #1 to 'limiter' (non-negative number " ..
        "expected, got nan)", blame(rate.limiter, nan, 1))
      assert.equal("bad argument #2 to 'limiter' (non-negative integer " ..
        "expected, got nan)", blame(rate.limiter, 1, nan))
      assert.equal("bad argument #1 to 'set_limit' (non-negative number " ..
        "expected, got nan)", blame(l.set_limit, l, nan))
      assert.equal("bad argument #2 to 'allow_at' (non-negative integer " ..
        "expected, got nan)", blame(l.allow_at, l, 0, nan))

      -- Not poisoned: after the NaN calls it still allows one an hour.
      local allowed = 0
      for i = 1, 1000 do
        if l:allow_at(i) then allowed = allowed + 1 end
      end
      assert.equal(0, allowed) -- the one token went to reserve_at(0)
      assert.is_true(l:allow_at(3600 + 1000))
    end))

  it("gh-8: deadlines and scope timeouts reject NaN", task(function()
    local bg = weft.background()
    assert.equal("bad argument #1 to 'with_deadline' (number expected, " ..
      "got nan)", blame(weft.with_deadline, nan))
    assert.equal("bad argument #2 to 'with_deadline' (number expected, " ..
      "got nan)", blame(weft.with_deadline, bg, nan))
    assert.equal("bad argument #1 to 'with_timeout' (number expected, " ..
      "got nan)", blame(weft.with_timeout, nan))
    assert.equal("bad argument #2 to 'with_timeout' (number expected, " ..
      "got nan)", blame(weft.with_timeout, bg, nan))
    local ran = false
    local function body() ran = true end
    assert.equal("bad argument #2 to 'scope' (field 'timeout': number " ..
      "expected, got nan)", blame(weft.scope, body, { timeout = nan }))
    assert.equal("bad argument #2 to 'scope' (field 'deadline': number " ..
      "expected, got nan)", blame(weft.scope, body, { deadline = nan }))
    assert.equal("bad argument #2 to 'scope' (field 'deadline': number " ..
      "expected, got string)",
      blame(weft.scope, body, { timeout = 1, deadline = "x" }))
    assert.is_false(ran)
  end))
end)

describe("gh-8: channels", function()
  it("gh-8: a capacity is an integer in [0, 2^31 - 1]", task(function()
    for v, msg in pairs {
      [1e300] = "capacity at most 2147483647 expected, got 1e+300",
      [2 ^ 31] = "capacity at most 2147483647 expected, got 2147483648",
      [math.huge] = "non-negative integer expected, got inf",
      [-math.huge] = "non-negative integer expected, got -inf",
      [1.5] = "non-negative integer expected, got 1.5",
      [-1] = "non-negative integer expected, got -1",
    } do
      assert.equal("bad argument #1 to 'chan' (" .. msg .. ")",
        blame(weft.chan, v))
    end
    assert.equal("bad argument #1 to 'chan' (non-negative integer " ..
      "expected, got nan)", blame(weft.chan, nan))
    assert.equal(2 ^ 31 - 1, weft.chan(2 ^ 31 - 1):cap())
    assert.equal(0, weft.chan():cap())
  end))

  it("gh-8: weft.after rejects NaN", task(function()
    assert.equal("bad argument #1 to 'after' (number expected, got nan)",
      blame(weft.after, nan))
    assert.equal("bad argument #1 to 'after' (number expected, got string)",
      blame(weft.after, "1"))
  end))
end)

describe("gh-8: a steward's restarts let time pass", function()
  it("gh-8: a ward that returns at once does not stop the virtual clock",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local starts = {}
      local st = weft.steward { name = "w", timeout = 1,
        log = function() end, start = function()
          starts[#starts + 1] = weft.now()
          -- Before the fix, a loop that never let the clock move: end it,
          -- so that the spec fails instead of hanging.
          if #starts > 1000 then cancel() end
        end }
      local _, mon = st(ctx, 1)
      weft.sleep(1)
      cancel()
      assert.is_true(mon:join())
      assert.equal(1, weft.now())
      -- The first start and a burst of 10 restarts at once; then 10 a
      -- second.
      assert.is_true(#starts <= 21, #starts .. " starts in 1 s")
      assert.is_true(#starts >= 20, #starts .. " starts in 1 s")
      for i = 1, 11 do assert.equal(0, starts[i]) end
      for i = 12, #starts do
        assert.near(0.1, starts[i] - starts[i - 1], 1e-9)
      end
    end))

  it("gh-8: with a budget, a ward that returns at once is given up at " ..
    "once", vtask(function()
      local n = 0
      local st = weft.steward { name = "w", timeout = 1, max_restarts = 3,
        log = function() end, start = function() n = n + 1 end }
      local _, mon = st(weft.context(), 1)
      local ok, err = mon:join()
      assert.is_nil(ok)
      assert.equal("steward: gave up on w after 3 restarts in 60 s; " ..
        "last failure: w ended", err.message)
      assert.equal(4, n)
      assert.equal(0, weft.now())
    end))

  it("gh-8: a backoff function returning NaN fails the steward",
    vtask(function()
      local st = weft.steward { name = "w", timeout = 1, max_restarts = 3,
        log = function() end, backoff = function() return nan end,
        start = function() end }
      local _, mon = st(weft.context(), 1)
      local ok, err = mon:join()
      assert.is_nil(ok)
      assert.equal("steward: backoff(1) returned nan (non-negative number " ..
        "expected)", err.message)
    end))
end)
