-- steward.lua: the two runs of "Healing Unhealthy Goroutines"
-- ("Concurrency in Go", ch. 5), with the steward's log lines.
--
--   weft examples/steward.lua                  real time (about 9 seconds)
--   weft --virtual-time examples/steward.lua   the same, at once

local weft = require "weft"

local function log(msg)
  print(("%5.1f %s"):format(weft.now(), msg))
end

-- Run 1: an irresponsible ward that never pulses. The steward restarts it
-- every 4 s; main stops everything after 9 s.
print("== an irresponsible ward")
do
  local ctx, cancel = weft.with_cancel()
  local irresponsible = function(wctx)
    log("ward: Hello, I'm irresponsible!")
    weft.go(function()
      wctx:done():recv(weft.background())
      log("ward: I am halting.")
    end)
    return nil -- no heartbeat
  end
  local steward = weft.steward { name = "ward", timeout = 4, log = log,
    start = irresponsible }
  local beats = steward(ctx, 4)
  weft.go(function()
    weft.sleep(9)
    log("main: halting steward and ward.")
    cancel()
  end)
  for _ in beats:iter(weft.background()) do end
  log("Done")
end

-- Run 2: a ward emitting integers; on a negative one it logs and stops.
-- A bridge channel gives the consumer one stream across the restarts.
print("== a stream of integers across restarts")
weft.scope(function(ctx)
  local streams = weft.chan()
  local ints = weft.pipe.bridge(ctx, streams)
  local function int_stream(wctx, pulse_interval)
    local out = weft.chan()
    local hb = weft.heartbeat(pulse_interval)
    weft.go(function()
      if streams:send(out, wctx) then
        for _, v in ipairs { 1, 2, -1, 3, 4, 5 } do
          if v < 0 then
            log(("negative value: %d"):format(v))
            break
          end
          if not out:send(v, wctx) then break end
          hb:pulse()
        end
      end
      out:close()
      hb:close()
    end)
    return hb:beats()
  end
  local steward = weft.steward { name = "int stream", timeout = 0.001,
    log = log, start = int_stream }
  steward(ctx, 3600)
  for v in weft.pipe.take(ctx, ints, 6):iter() do
    log(("Received: %d"):format(v))
  end
end)
