local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

-- A worker on an interval heartbeat: it pulses on every tick until ctx is
-- cancelled, recording each pulse as "TIME:true" (a listener took it) or
-- "TIME:false" (dropped). With stall_at, it stops pulsing at that time and
-- hangs (still alive) until cancelled.
local function ticking_worker(ctx, hb, log, stall_at)
  return weft.go(function()
    local stall = stall_at and weft.after(stall_at) or false
    while true do
      local i = weft.select({ { recv = hb:ticks() }, { recv = stall } }, ctx)
      if i == nil then break end
      if i == 2 then
        weft.chan():recv(ctx) -- stuck until cancelled
        break
      end
      log[#log + 1] = ("%g:%s"):format(weft.now(), tostring(hb:pulse()))
    end
    hb:close()
  end)
end

describe("weft.heartbeat(interval)", function()
  it("gives a ticker to select on and pulses every interval", vtask(function()
    local ctx, cancel = weft.with_cancel()
    local hb = weft.heartbeat(1)
    assert.equal(0, hb:beats():cap())
    assert.equal("weft.heartbeat: every 1 s", tostring(hb))
    local log = {}
    local w = ticking_worker(ctx, hb, log)
    local got = {}
    for _ = 1, 3 do
      assert.is_true(hb:beats():recv())
      got[#got + 1] = weft.now()
    end
    assert.same({ 1, 2, 3 }, got)
    assert.same({ "1:true", "2:true", "3:true" }, log)
    cancel()
    assert.is_true(w:join())
    assert.equal(3, weft.now())
    local v, err = hb:beats():recv()
    assert.is_nil(v)
    assert.equal("closed", err.kind)
  end))

  it("a pulse never blocks; one nobody is listening for is dropped",
    vtask(function()
      local hb = weft.heartbeat(1)
      -- No listener: refused at once, nothing kept, no time passes.
      assert.is_false(hb:pulse())
      assert.is_false(hb:pulse())
      assert.equal(0, #hb:beats())
      assert.equal(0, weft.now())
      local ctx, cancel = weft.with_cancel()
      local log = {}
      local w = ticking_worker(ctx, hb, log)
      weft.sleep(2.5) -- not listening at 1 and 2
      assert.is_true(hb:beats():recv())
      assert.equal(3, weft.now())
      assert.same({ "1:false", "2:false", "3:true" }, log)
      -- The dropped pulses were not kept for a later listener either.
      local i = weft.select {
        { recv = hb:beats() },
        { recv = weft.after(0.5) },
      }
      assert.equal(2, i)
      assert.equal(3.5, weft.now())
      cancel()
      w:join()
      assert.same({ "1:false", "2:false", "3:true" }, log)
    end))

  it("close stops the ticker and closes beats", vtask(function()
    local hb = weft.heartbeat(1)
    weft.sleep(1.5)
    assert.equal(1, #hb:ticks()) -- the tick at 1, waiting to be taken
    assert.equal(1, hb:ticks():recv())
    hb:close()
    weft.sleep(5)
    assert.equal(0, #hb:ticks()) -- no tick after close
    assert.is_true(hb:beats():closed())
    assert.is_false(hb:pulse())
    hb:close() -- closing twice is harmless
    local v, err = hb:beats():recv()
    assert.is_nil(v)
    assert.equal("closed", err.kind)
  end))

  it("detects an unhealthy worker by a missed pulse, at the exact time",
    vtask(function()
      local interval = 1
      local ctx, cancel = weft.with_cancel()
      local hb = weft.heartbeat(interval)
      local log = {}
      local w = ticking_worker(ctx, hb, log, 2.5) -- hangs at 2.5
      local pulses, unhealthy_at = {}, nil
      while not unhealthy_at do
        local i = weft.select {
          { recv = hb:beats() },
          { recv = weft.after(2 * interval) },
        }
        if i == 1 then
          pulses[#pulses + 1] = weft.now()
        else
          unhealthy_at = weft.now()
        end
      end
      assert.same({ 1, 2 }, pulses)
      assert.equal(4, unhealthy_at) -- the last pulse at 2, plus 2 intervals
      cancel()
      assert.is_true(w:join())
      assert.equal(4, weft.now())
    end))
end)

describe("weft.heartbeat() per unit of work", function()
  it("keeps one pulse for a late listener; a second is refused",
    vtask(function()
      local hb = weft.heartbeat()
      assert.equal("weft.heartbeat: per unit of work", tostring(hb))
      assert.equal(1, hb:beats():cap())
      assert.is_true(hb:pulse())
      assert.is_false(hb:pulse()) -- the buffer is full: dropped
      assert.equal(1, #hb:beats())
      weft.sleep(10) -- a listener that comes late still sees it
      assert.is_true(hb:beats():recv())
      assert.equal(0, #hb:beats())
      assert.is_true(hb:pulse())
      hb:close()
      assert.is_false(hb:pulse())
      -- Listeners drain the kept pulse, then see the channel closed.
      assert.is_true(hb:beats():recv())
      local v, err = hb:beats():recv()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
    end))

  it("has no ticker", vtask(function()
    local hb = weft.heartbeat()
    assert.has_error(function() hb:ticks() end,
      "ticks: this heartbeat has no interval (pulse per unit of work)")
    hb:close()
  end))

  -- "Concurrency in Go", ch. 5: DoWork pulses at the start of each unit of
  -- work, so the test need not sleep to synchronise: it takes a heartbeat
  -- before each result, however slow the worker is to start.
  local function do_work(ctx, ...)
    local nums = { ... }
    local hb = weft.heartbeat()
    local results = weft.chan()
    local t = weft.go(function()
      weft.sleep(2) -- a slow start: a test with a timeout would be flaky
      for _, n in ipairs(nums) do
        hb:pulse()
        if not results:send(n, ctx) then break end
      end
      hb:close()
      results:close()
    end)
    return hb:beats(), results, t
  end

  it("DoWork: a heartbeat before each result, deterministically",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local ints = { 0, 1, 2, 3, 5 }
      local beats, results, t = do_work(ctx, unpack(ints))
      local got = {}
      for i = 1, #ints do
        assert.is_true(beats:recv())
        local v = results:recv()
        assert.equal(ints[i], v)
        got[i] = v
      end
      assert.same(ints, got)
      assert.equal(2, weft.now())
      -- Then both channels are closed.
      local v, err = results:recv()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      assert.is_nil((beats:recv()))
      cancel()
      assert.is_true(t:join())
    end))

  it("DoWork with an interval heartbeat: results checked while pulses come",
    vtask(function()
      -- The book's second version: pulses every timeout/2 while it works,
      -- and the test fails on a missed pulse instead of a fixed sleep.
      local timeout = 2
      local ctx, cancel = weft.with_cancel()
      local ints = { 0, 1, 2, 3, 5 }
      local hb = weft.heartbeat(timeout / 2)
      local results = weft.chan()
      local t = weft.go(function()
        local work = weft.ticker(1.5) -- a unit of work every 1.5 s
        local i = 1
        while i <= #ints do
          local k = weft.select({ { recv = hb:ticks() }, { recv = work } },
            ctx)
          if k == nil then break end
          if k == 1 then
            hb:pulse()
          elseif results:send(ints[i], ctx) then
            i = i + 1
          else
            break
          end
        end
        hb:close()
        results:close()
      end)
      local got, pulses = {}, 0
      while true do
        local k, v = weft.select {
          { recv = results },
          { recv = hb:beats() },
          { recv = weft.after(timeout) },
        }
        assert.is_not.equal(3, k) -- "test timed out"
        if k == 1 then
          if v == nil then break end
          got[#got + 1] = v
        elseif v ~= nil then
          pulses = pulses + 1
        end
      end
      assert.same(ints, got)
      assert.equal(7.5, weft.now()) -- 5 units of 1.5 s
      assert.is_true(pulses >= 5)
      cancel()
      assert.is_true(t:join())
    end))
end)

describe("weft.heartbeat argument errors", function()
  it("rejects a bad interval and a bad self", vtask(function()
    assert.has_error(function() weft.heartbeat(0) end,
      "bad argument #1 to 'heartbeat' (positive number expected, got 0)")
    assert.has_error(function() weft.heartbeat(-1) end,
      "bad argument #1 to 'heartbeat' (positive number expected, got -1)")
    assert.has_error(function() weft.heartbeat("1") end,
      "bad argument #1 to 'heartbeat' (positive number expected, got string)")
    local hb = weft.heartbeat()
    assert.has_error(function() hb.pulse({}) end,
      "bad argument #1 to 'pulse' (weft.heartbeat expected, got table)")
    assert.has_error(function() hb.beats(5) end,
      "bad argument #1 to 'beats' (weft.heartbeat expected, got number)")
    assert.has_error(function() hb.ticks() end,
      "bad argument #1 to 'ticks' (weft.heartbeat expected, got nil)")
    assert.has_error(function() hb.close("x") end,
      "bad argument #1 to 'close' (weft.heartbeat expected, got string)")
    hb:close()
  end))

  it("rejects a NaN interval as its own argument error", vtask(function()
    -- Library bug: NaN passes heartbeat's check (NaN <= 0 is false) and the
    -- error comes from weft.ticker instead, blaming heartbeat.lua:38.
    assert.has_error(function() weft.heartbeat(0 / 0) end,
      "bad argument #1 to 'heartbeat' (positive number expected, got nan)")
  end))
end)
