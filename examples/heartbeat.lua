-- heartbeat.lua: interval heartbeats and per-unit-of-work heartbeats
-- ("Concurrency in Go", ch. 5). Runs on virtual time: times are exact.
--
--   weft examples/heartbeat.lua

local weft = require "weft"

weft.virtual_time(function()
  -- 1. An interval heartbeat: a worker pulses every second while it works;
  -- its results come every 2 s. The listener learns the worker is alive
  -- between results, and would notice a missed pulse.
  local function do_work(ctx, pulse_interval)
    local hb = weft.heartbeat(pulse_interval)
    local results = weft.chan()
    weft.go(function()
      local work = weft.ticker(2)
      while true do
        local i = weft.select({ { recv = hb:ticks() }, { recv = work } }, ctx)
        if i == nil then break end
        if i == 1 then
          hb:pulse()
        elseif not results:send(weft.now(), ctx) then
          break
        end
      end
      hb:close()
      results:close()
    end)
    return hb:beats(), results
  end

  print("== interval heartbeat")
  weft.scope(function(ctx)
    local beats, results = do_work(ctx, 1)
    while true do
      local i, v = weft.select { { recv = beats }, { recv = results } }
      if i == 1 then
        print(("%4.1f pulse"):format(weft.now()))
      else
        print(("%4.1f result %s"):format(weft.now(), tostring(v)))
      end
      if weft.now() >= 5 then return end
    end
  end, { timeout = 10 })

  -- 2. A per-unit heartbeat: one pulse as each unit of work begins. The
  -- buffer keeps one, so a listener that comes late still sees it.
  print("== per-unit heartbeat")
  weft.scope(function(ctx)
    local hb = weft.heartbeat()
    local results = weft.chan()
    weft.go(function()
      for _, n in ipairs { 1, 2, 3 } do
        hb:pulse()
        weft.sleep(0.5) -- the work
        if not results:send(n, ctx) then break end
      end
      hb:close()
      results:close()
    end)
    weft.sleep(0.1) -- a late listener
    for v in results:iter() do
      print(("%4.1f result %d (%s)"):format(weft.now(), v,
        #hb:beats() > 0 and "a pulse was waiting" or "no pulse"))
      hb:beats():recv() -- take the pulse of the unit just done
    end
  end)
end)
