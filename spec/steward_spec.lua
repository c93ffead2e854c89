local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

-- A log function for the steward that keeps "TIME message" lines.
local function recorder()
  local lines = {}
  return lines, function(msg)
    lines[#lines + 1] = ("%g %s"):format(weft.now(), msg)
  end
end

-- Wards. Each records its starts in `starts`: {at=, ctx=, interval=,
-- prev_done=} where prev_done tells whether the previous ward's context was
-- already cancelled when this one started.
local function record_start(starts, ctx, pulse_interval)
  local prev = starts[#starts]
  starts[#starts + 1] = { at = weft.now(), ctx = ctx,
    interval = pulse_interval, prev_err = prev and prev.ctx:err() }
end

local function times(starts)
  local out = {}
  for i, s in ipairs(starts) do out[i] = s.at end
  return out
end

-- Never pulses; lives until cancelled (the book's irresponsible ward).
local function irresponsible(starts)
  return function(ctx, pulse_interval)
    record_start(starts, ctx, pulse_interval)
    weft.go(function() ctx:done():recv(weft.background()) end)
    return nil
  end
end

-- Pulses every pulse_interval; stops pulsing (but lives on) `stop_after`
-- seconds after it started, if given.
local function pulsing(starts, stop_after)
  return function(ctx, pulse_interval)
    record_start(starts, ctx, pulse_interval)
    local hb = weft.heartbeat(pulse_interval)
    local stop = stop_after and weft.after(stop_after) or false
    weft.go(function()
      while true do
        local i = weft.select({ { recv = hb:ticks() }, { recv = stop } }, ctx)
        if i == nil then break end
        if i == 2 then
          ctx:done():recv(weft.background())
          break
        end
        hb:pulse()
      end
      hb:close()
    end)
    return hb:beats()
  end
end

-- Its task ends after `d` seconds: "ended" with how == nil, else it fails
-- then by raising (how == "raise") or by returning nil, err.
local function finite(starts, d, how)
  return function(ctx, pulse_interval)
    record_start(starts, ctx, pulse_interval)
    weft.go(function()
      if not weft.sleep(d) then return end -- cancelled
      if how == "raise" then error("boom", 0) end
      if how == "return" then
        return nil, weft.error("io", "disk full")
      end
    end)
    return nil
  end
end

describe("weft.steward", function()
  it("restarts a ward that never pulses every `timeout`", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local lines, log = recorder()
    local starts = {}
    local st = weft.steward { name = "ward", timeout = 4, log = log,
      start = irresponsible(starts) }
    local beats, mon = st(ctx, 4)
    weft.sleep(9)
    cancel()
    assert.is_true(mon:join())
    assert.equal(9, weft.now())
    assert.same({
      "4 steward: ward unhealthy; restarting",
      "8 steward: ward unhealthy; restarting",
    }, lines)
    assert.same({ 0, 4, 8 }, times(starts))
    for _, s in ipairs(starts) do
      assert.equal(2, s.interval) -- the ward pulses every timeout / 2
      assert.equal("canceled", s.ctx:err().kind)
    end
    assert.is_nil((beats:recv()))
  end))

  it("leaves a pulsing ward alone; restarts it `timeout` after its last " ..
    "pulse", vtask(function()
      local ctx, cancel = weft.with_cancel()
      local lines, log = recorder()
      local starts = {}
      local first = pulsing(starts, 7)  -- pulses at 2, 4, 6, then hangs
      local healthy = pulsing(starts)
      local st = weft.steward { name = "w", timeout = 4, log = log,
        start = function(c, i)
          if #starts == 0 then return first(c, i) end
          return healthy(c, i)
        end }
      local _, mon = st(ctx, 100)
      weft.sleep(30)
      cancel()
      assert.is_true(mon:join())
      assert.same({ "10 steward: w unhealthy; restarting" }, lines)
      assert.same({ 0, 10 }, times(starts))
    end))

  it("does not miss a ward's pulse that comes as its own heartbeat ticks",
    vtask(function()
      -- Library bug: the monitor serves its own ticker in the same select
      -- as the ward's heartbeat (steward.lua:131-143). When both fire at
      -- the same instant, the ward's pulse (unbuffered, dropped when nobody
      -- is parked on it) is lost, and the deadline, due at the same time as
      -- the next pulse, wins: a healthy ward is restarted every `timeout`.
      local ctx, cancel = weft.with_cancel()
      local lines, log = recorder()
      local starts = {}
      local st = weft.steward { name = "w", timeout = 4, log = log,
        start = pulsing(starts) } -- pulses every 2 s
      local _, mon = st(ctx, 1)      -- ticks every 1 s
      weft.sleep(30)
      cancel()
      assert.is_true(mon:join())
      assert.same({}, lines)
      assert.same({ 0 }, times(starts))
    end))

  it("restarts a ward whose task ends", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local lines, log = recorder()
    local starts = {}
    local st = weft.steward { name = "job", timeout = 100, log = log,
      start = finite(starts, 1) }
    local _, mon = st(ctx, 10)
    weft.sleep(2.5)
    cancel()
    assert.is_true(mon:join())
    assert.same({
      "1 steward: job ended; restarting",
      "2 steward: job ended; restarting",
    }, lines)
    assert.same({ 0, 1, 2 }, times(starts))
  end))

  it("restarts a ward whose task fails, naming the failure", vtask(function()
    for _, case in ipairs {
      { how = "raise", msg = "boom" },
      { how = "return", msg = "disk full" },
    } do
      local ctx, cancel = weft.with_cancel()
      local lines, log = recorder()
      local starts = {}
      local t0 = weft.now()
      local st = weft.steward { name = "db", timeout = 100, log = log,
        start = finite(starts, 1, case.how) }
      local _, mon = st(ctx, 10)
      weft.sleep(1.5)
      cancel()
      assert.is_true(mon:join())
      assert.same({ ("%g steward: db failed: %s; restarting"):format(
        t0 + 1, case.msg) }, lines)
      assert.same({ t0, t0 + 1 }, times(starts))
    end
  end))

  it("cancels the old ward's context before the new one starts",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local starts = {}
      local n = 0
      local st = weft.steward { name = "w", timeout = 3, log = function() end,
        start = function(c, i)
          n = n + 1
          if n == 1 then return irresponsible(starts)(c, i) end -- unhealthy
          if n == 2 then return finite(starts, 1)(c, i) end     -- ends
          return finite(starts, 1, "raise")(c, i)               -- fails
        end }
      local _, mon = st(ctx, 10)
      weft.sleep(5.5)
      cancel()
      assert.is_true(mon:join())
      assert.same({ 0, 3, 4, 5 }, times(starts))
      assert.is_nil(starts[1].prev_err)
      local why = {}
      for k = 2, 4 do
        local e = starts[k].prev_err
        assert.is_not_nil(e, "ward " .. k - 1 .. " still live at restart")
        assert.equal("canceled", e.kind)
        why[#why + 1] = e.cause.kind .. ": " .. e.cause.message
      end
      assert.same({
        "unhealthy: w missed its heartbeat for 3 s",
        "ended: w ended",
        "bug: boom",
      }, why)
    end))

  it("gives up after more than max_restarts restarts within `within`",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local lines, log = recorder()
      local starts = {}
      local st = weft.steward { name = "w", timeout = 100, log = log,
        max_restarts = 2, within = 10, start = finite(starts, 1) }
      local beats, mon = st(ctx, 10)
      local ok, err = mon:join()
      assert.is_nil(ok)
      assert.equal(3, weft.now())
      assert.equal("steward", err.kind)
      -- gh-9: two restarts happened; the third failure is not one.
      assert.equal("steward: gave up on w after 2 restarts in 10 s; " ..
        "last failure: w ended", err.message)
      assert.equal("ended", err.cause.kind)
      assert.same({
        "1 steward: w ended; restarting",
        "2 steward: w ended; restarting",
        "3 " .. err.message,
      }, lines)
      assert.same({ 0, 1, 2 }, times(starts))
      assert.is_not_nil(starts[3].ctx:err()) -- the last ward is stopped
      local v, e = beats:recv()                -- and the heartbeat closed
      assert.is_nil(v)
      assert.equal("closed", e.kind)
      assert.is_nil(ctx:err()) -- giving up is not a cancellation
      cancel()
    end))

  it("with max_restarts = 0 gives up at the first failure", vtask(function()
    local lines, log = recorder()
    local st = weft.steward { name = "once", timeout = 100, log = log,
      max_restarts = 0, start = finite({}, 2, "raise") }
    local _, mon = st(weft.context(), 1)
    local ok, err = mon:join()
    assert.is_nil(ok)
    assert.equal(2, weft.now())
    assert.equal("steward: gave up on once after 0 restarts in 60 s; " ..
      "last failure: boom", err.message)
    assert.same({ "2 " .. err.message }, lines)
  end))

  it("a start function that raises counts as a failure", vtask(function()
    local calls = 0
    local lines, log = recorder()
    local st = weft.steward { name = "bad", timeout = 1, log = log,
      max_restarts = 2, within = 1,
      start = function()
        calls = calls + 1
        error("cannot start", 0)
      end }
    local _, mon = st(weft.context(), 1)
    local ok, err = mon:join()
    assert.is_nil(ok)
    assert.equal(3, calls)
    assert.equal(0, weft.now())
    assert.equal("steward: gave up on bad after 2 restarts in 1 s; " ..
      "last failure: cannot start", err.message)
    assert.equal(3, #lines)
  end))

  it("restarts spaced by `within` do not count against the budget",
    vtask(function()
      -- Ends every 5 s, within = 5: each restart is alone in its window.
      local ctx, cancel = weft.with_cancel()
      local starts = {}
      local spaced = weft.steward { name = "spaced", timeout = 100,
        log = function() end, max_restarts = 1, within = 5,
        start = finite(starts, 5) }
      local _, mon = spaced(ctx, 10)
      -- Ends every 4 s: the second restart falls in the first's window.
      local starts2 = {}
      local close = weft.steward { name = "close", timeout = 100,
        log = function() end, max_restarts = 1, within = 5,
        start = finite(starts2, 4) }
      local _, mon2 = close(ctx, 10)
      local ok2, err2 = mon2:join()
      assert.is_nil(ok2)
      assert.equal(8, weft.now())
      assert.equal("steward: gave up on close after 1 restart in 5 s; " ..
        "last failure: close ended", err2.message)
      assert.same({ 0, 4 }, times(starts2))
      weft.sleep(22 - weft.now())
      cancel()
      assert.is_true(mon:join())
      assert.same({ 0, 5, 10, 15, 20 }, times(starts))
    end))

  it("backoff delays each restart", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local starts = {}
    local st = weft.steward { name = "w", timeout = 100, backoff = 2,
      log = function() end, start = finite(starts, 1) }
    local _, mon = st(ctx, 10)
    weft.sleep(7.5) -- cancelled during a backoff
    cancel()
    assert.is_true(mon:join())
    assert.equal(7.5, weft.now())
    assert.same({ 0, 3, 6 }, times(starts))
  end))

  it("backoff may be a function of the restart count", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local starts, counts = {}, {}
    local st = weft.steward { name = "w", timeout = 100,
      backoff = function(n)
        counts[#counts + 1] = n
        return n
      end,
      log = function() end, start = finite(starts, 1) }
    local _, mon = st(ctx, 10)
    weft.sleep(9.5)
    cancel()
    assert.is_true(mon:join())
    assert.same({ 0, 2, 5, 9 }, times(starts)) -- ends 1, 3, 6; waits 1, 2, 3
    assert.same({ 1, 2, 3 }, counts)
  end))

  it("pulses its own heartbeat every pulse_interval", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local st = weft.steward { name = "w", timeout = 2, log = function() end,
      start = pulsing({}) }
    local beats, mon = st(ctx, 3)
    local got = {}
    for _ = 1, 4 do
      assert.is_true(beats:recv())
      got[#got + 1] = weft.now()
    end
    assert.same({ 3, 6, 9, 12 }, got)
    cancel()
    assert.is_true(mon:join())
  end))

  it("keeps pulsing its heartbeat while it backs off", vtask(function()
    -- Library bug: the monitor sleeps through the backoff (steward.lua:121)
    -- without serving its ticker, so its heartbeat goes silent.
    local ctx, cancel = weft.with_cancel()
    local st = weft.steward { name = "w", timeout = 100, backoff = 5,
      log = function() end, start = finite({}, 1.5) }
    local beats, mon = st(ctx, 1)
    local got = {}
    local stop = weft.after(7.9)
    while true do
      local i = weft.select { { recv = beats }, { recv = stop } }
      if i == 2 then break end
      got[#got + 1] = weft.now()
    end
    cancel()
    assert.is_true(mon:join())
    assert.same({ 1, 2, 3, 4, 5, 6, 7 }, got)
  end))

  it("nests: the outer steward does not take a backing-off inner one for " ..
    "unhealthy", vtask(function()
      -- The consequence of the bug above: an inner steward whose backoff
      -- exceeds the outer timeout is restarted by the outer one.
      local ctx, cancel = weft.with_cancel()
      local lines, log = recorder()
      local starts = {}
      local inner = weft.steward { name = "inner", timeout = 100,
        backoff = 3, log = log, start = finite(starts, 1.5) }
      local outer = weft.steward { name = "outer", timeout = 2, log = log,
        start = inner }
      local _, mon = outer(ctx, 10)
      weft.sleep(5)
      cancel()
      assert.is_true(mon:join())
      assert.same({ "1.5 steward: inner ended; restarting" }, lines)
      assert.same({ 0, 4.5 }, times(starts))
    end))

  it("nests: when the inner steward gives up, the outer restarts it; " ..
    "restarts multiply", vtask(function()
      local lines, log = recorder()
      local starts = {}
      local inner = weft.steward { name = "inner", timeout = 10, log = log,
        max_restarts = 1, within = 100, start = finite(starts, 1, "raise") }
      local outer = weft.steward { name = "outer", timeout = 10, log = log,
        max_restarts = 2, within = 100, start = inner }
      local beats, mon = outer(weft.context(), 5)
      local ok, err = mon:join()
      assert.is_nil(ok)
      -- (1 + 1 inner restarts) * (2 + 1 outer restarts) starts of the ward.
      assert.same({ 0, 1, 2, 3, 4, 5 }, times(starts))
      assert.equal(6, weft.now())
      local inner_gave_up = "steward: gave up on inner after 1 restart " ..
        "in 100 s; last failure: boom"
      assert.equal("steward", err.kind)
      assert.equal("steward: gave up on outer after 2 restarts in 100 s; " ..
        "last failure: " .. inner_gave_up, err.message)
      assert.equal(inner_gave_up, err.cause.message)
      local want = {}
      for k = 1, 3 do
        local t = 2 * k
        want[#want + 1] = ("%g steward: inner failed: boom; restarting")
          :format(t - 1)
        want[#want + 1] = ("%g %s"):format(t, inner_gave_up)
        if k < 3 then
          want[#want + 1] = ("%g steward: outer failed: %s; restarting")
            :format(t, inner_gave_up)
        end
      end
      want[#want + 1] = "6 " .. err.message
      assert.same(want, lines)
      assert.is_nil((beats:recv()))
    end))

  it("stops with its ward when its context is cancelled", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local saw
    local st = weft.steward { name = "w", timeout = 2, log = function() end,
      start = function(c, i)
        local beats = pulsing({})(c, i)
        weft.go(function()
          local _, err = weft.sleep(100)
          saw = { err.kind, weft.now() }
        end)
        return beats
      end }
    local beats, mon = st(ctx, 1)
    weft.sleep(5)
    cancel("enough")
    assert.is_true(mon:join())
    assert.equal(5, weft.now())
    assert.same({ "canceled", 5 }, saw)
    local v, err = beats:recv()
    assert.is_nil(v)
    assert.equal("closed", err.kind)

    -- Without a context, start uses the running task's: here a scope's.
    saw = nil
    local mon2
    weft.scope(function()
      beats, mon2 = st(nil, 1)
      weft.sleep(2)
    end)
    assert.is_true(mon2:join())
    assert.same({ "canceled", 7 }, saw)
    assert.is_true(beats:closed())
  end))

  it("a bridge gives one stream across restarts (the book's intStream)",
    vtask(function()
      local lines, log = recorder()
      local got = {}
      local mon
      weft.scope(function(ctx)
        local streams = weft.chan()
        local ints = weft.pipe.bridge(ctx, streams)
        local function int_stream(wctx, pulse_interval)
          local out = weft.chan()
          local hb = weft.heartbeat(pulse_interval)
          weft.go(function()
            if streams:send(out, wctx) then
              for _, v in ipairs { 1, 2, -1, 3, 4, 5 } do
                if v < 0 then break end
                if not out:send(v, wctx) then break end
                hb:pulse()
              end
            end
            out:close()
            hb:close()
          end)
          return hb:beats()
        end
        local st = weft.steward { name = "int stream", timeout = 1,
          log = log, start = int_stream }
        mon = select(2, st(ctx, 3600))
        for v in weft.pipe.take(ctx, ints, 6):iter() do
          got[#got + 1] = v
        end
      end)
      assert.is_true(mon:join())
      assert.same({ 1, 2, 1, 2, 1, 2 }, got)
      assert.equal(0, weft.now())
      assert.same({
        "0 steward: int stream ended; restarting",
        "0 steward: int stream ended; restarting",
        "0 steward: int stream ended; restarting",
      }, lines)
    end))

  it("argument errors", vtask(function()
    local f = function() end
    local function opts(extra)
      local o = { start = f, timeout = 1 }
      for k, v in pairs(extra) do o[k] = v end
      return o
    end
    local pre = "bad argument #1 to 'steward' ("
    assert.has_error(function() weft.steward(5) end,
      pre .. "table expected, got number)")
    assert.has_error(function() weft.steward {} end,
      pre .. "field 'start': function expected, got nil)")
    assert.has_error(function() weft.steward { start = f } end,
      pre .. "field 'timeout': positive number expected, got nil)")
    assert.has_error(function() weft.steward(opts { timeout = 0 }) end,
      pre .. "field 'timeout': positive number expected, got 0)")
    assert.has_error(function() weft.steward(opts { timeout = "1" }) end,
      pre .. "field 'timeout': positive number expected, got string)")
    assert.has_error(function() weft.steward(opts { name = 5 }) end,
      pre .. "field 'name': string expected, got 5)")
    assert.has_error(function() weft.steward(opts { max_restarts = -1 }) end,
      pre .. "field 'max_restarts': non-negative number expected, got -1)")
    assert.has_error(function() weft.steward(opts { within = 0 }) end,
      pre .. "field 'within': positive number expected, got 0)")
    assert.has_error(function() weft.steward(opts { backoff = "x" }) end,
      pre .. "field 'backoff': non-negative number or function expected, " ..
      "got string)")
    assert.has_error(function() weft.steward(opts { backoff = -1 }) end,
      pre .. "field 'backoff': non-negative number or function expected, " ..
      "got -1)")
    assert.has_error(function() weft.steward(opts { log = true }) end,
      pre .. "field 'log': function expected, got boolean)")
    local st = weft.steward(opts {})
    assert.has_error(function() st(weft.context()) end,
      "bad argument #2 to 'start' (positive number expected, got nil)")
    assert.has_error(function() st(weft.context(), 0) end,
      "bad argument #2 to 'start' (positive number expected, got 0)")
  end))

  it("start rejects a context that is not a weft.ctx", vtask(function()
    -- Library bug: start(ctx, pulse_interval) does not check ctx
    -- (steward.lua:161); the monitor task fails later, raising from
    -- weft.with_cancel at steward.lua:81.
    local st = weft.steward { start = function() end, timeout = 1,
      log = function() end }
    local ok, msg
    local t = weft.go(function() ok, msg = pcall(st, "ctx", 1) end)
    local _, later = t:join()
    assert.is_false(ok, "accepted; then the monitor failed with: " ..
      tostring(later))
    assert.matches("bad argument #1 to 'start' %(weft.ctx expected, " ..
      "got string%)", msg)
  end))

  it("start names a NaN or non-number pulse interval as such",
    vtask(function()
      -- Library bug: NaN passes start's check (steward.lua:162) and
      -- weft.ticker raises instead, blaming heartbeat.lua:38; and a string
      -- is reported by its value, "got 1", not its type.
      local st = weft.steward { start = function() end, timeout = 1,
        log = function() end }
      assert.has_error(function() st(weft.context(), 0 / 0) end,
        "bad argument #2 to 'start' (positive number expected, got nan)")
      assert.has_error(function() st(weft.context(), "1") end,
        "bad argument #2 to 'start' (positive number expected, got string)")
    end))
end)
