-- agents.lua: the Lua side of examples/host/host.c. 10,000 agents wander
-- (sleeping random times), report to a channel, and share a rate-limited
-- resource; host events arrive on `inputs`, fed by another host thread
-- through weft_post and ch:try_send.
local weft = require "weft"
-- luacheck: globals inputs stats

inputs = weft.chan(1024) -- the host's post callbacks feed it (a global)
local reports = weft.chan(256)
local shots = weft.rate.limiter(weft.rate.per(100, 1), 10)
stats = { moves = 0, shots = 0, inputs = 0 }

for i = 1, 10000 do
  weft.spawn { name = "agent " .. i, fn = function()
    local x = 0
    while weft.sleep(0.01 + (i % 50) * 0.002) do
      x = x + 1
      if x % 10 == 0 then reports:try_send(i) end
      if i % 100 == 0 and shots:allow() then stats.shots = stats.shots + 1 end
    end
  end }
end

weft.spawn { name = "reports", fn = function()
  for _ in reports:iter() do stats.moves = stats.moves + 1 end
end }

weft.spawn { name = "input", fn = function()
  for ev in inputs:iter() do
    stats.inputs = stats.inputs + 1
    if ev == "quit" then break end
  end
end }
