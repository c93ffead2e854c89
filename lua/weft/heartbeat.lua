-- weft.heartbeat: pulses a worker sends to say it is alive ("Concurrency
-- in Go", ch. 5).
--
-- Two forms. With an interval, the worker pulses on a ticker (put
-- hb:ticks() in its select) and the beats channel is unbuffered: a pulse
-- nobody is listening for is dropped. Without one, the worker pulses once per
-- unit of work and the beats channel holds one pulse, so a listener that
-- comes late still sees that work began. A pulse never blocks the worker.

local S = require "weft.sched"
local chan = require "weft.chan"

local type, setmetatable, error, format = type, setmetatable, error,
  string.format
local argerror = S.argerror
local checkmt = S.checkmt

local M = {}

local Heartbeat = {}
local HeartbeatMT = { __index = Heartbeat, __name = "weft.heartbeat" }
M.HeartbeatMT = HeartbeatMT

-- weft.heartbeat([interval]) -> heartbeat
function M.heartbeat(interval)
  if interval ~= nil and (type(interval) ~= "number" or
      interval ~= interval or interval <= 0) then
    argerror(1, "heartbeat", "positive number expected, got " ..
      (type(interval) == "number" and tostring(interval) or type(interval)))
  end
  local hb = setmetatable({ interval = interval,
    ch = chan.chan(interval and 0 or 1) }, HeartbeatMT)
  if interval then hb.tick, hb.stop_tick = chan.ticker(interval) end
  return hb
end

-- heartbeat:beats() -> the channel listeners receive pulses on; closed by
-- heartbeat:close().
function Heartbeat:beats()
  checkmt(self, HeartbeatMT, 1, "beats")
  return self.ch
end

-- heartbeat:ticks() -> the ticker channel to select on, for the interval
-- form; receive from it, then pulse.
function Heartbeat:ticks()
  checkmt(self, HeartbeatMT, 1, "ticks")
  if not self.tick then
    error("ticks: this heartbeat has no interval (pulse per unit of work)", 2)
  end
  return self.tick
end

-- heartbeat:pulse() -> true if a listener (or the buffer) took it; never
-- waits.
function Heartbeat:pulse()
  checkmt(self, HeartbeatMT, 1, "pulse")
  local c = chan.states[self.ch]
  if c.closed then return false end
  return chan.try_send(c, true) == true
end

-- heartbeat:close(): no more pulses; listeners see the channel closed.
function Heartbeat:close()
  checkmt(self, HeartbeatMT, 1, "close")
  if self.stop_tick then self.stop_tick() end
  if not self.ch:closed() then self.ch:close() end
end

function HeartbeatMT.__tostring(hb)
  return format("weft.heartbeat: %s", hb.interval and
    ("every " .. hb.interval .. " s") or "per unit of work")
end

return M
