-- timeouts.lua: select with a timeout, a context with a deadline, and a
-- clean shutdown on cancellation.
--
--   weft examples/timeouts.lua
--
-- A producer emits readings at an uneven pace. The consumer waits for each
-- with a timeout (select over the channel and weft.after); the whole run is
-- bounded by a deadline, after which every task unwinds: the producer's
-- blocked send returns an error, it closes the channel and returns.

local weft = require "weft"

local readings = weft.chan()

-- It runs under the deadline's context, so its waits fail once it passes.
local function producer()
  local delays = { 0.01, 0.02, 0.15, 0.01, 0.3, 0.01 }
  local i = 0
  while true do
    i = i + 1
    local ok, err = weft.sleep(delays[(i - 1) % #delays + 1])
    if ok then ok, err = readings:send(i) end
    if not ok then
      print(("producer stops after %d readings: %s"):format(i - 1, err.message))
      readings:close()
      return
    end
  end
end

local ctx = weft.with_timeout(0.6)
weft.spawn { name = "producer", fn = producer, ctx = ctx }

local got, late = 0, 0
while true do
  local i, v, err = weft.select({
    { recv = readings },
    { recv = weft.after(0.1) },
  }, weft.background()) -- wait until the producer closes the channel
  if i == 1 then
    if v == nil then
      print("channel closed: " .. err.message)
      break
    end
    got = got + 1
    print(("reading %d at %.2fs"):format(v, weft.now()))
  else
    late = late + 1
    print(("no reading for 100 ms (at %.2fs)"):format(weft.now()))
  end
end
print(("%d readings, %d timeouts; the context says: %s"):format(got, late,
  tostring(ctx:err())))
