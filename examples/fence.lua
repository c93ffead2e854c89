-- fence.lua: load once, then save and process in parallel.
--
--   weft examples/fence.lua
--
-- storj's Fence: the savers and processors must not start before the data
-- is loaded. They wait on the fence; the loader releases it. A fence is
-- also a channel (released()), so a task can wait for it or a timeout.

local weft = require "weft"

local loaded = weft.fence()
local data

weft.spawn { name = "loader", fn = function()
  weft.sleep(0.02) -- read the data
  data = { "alpha", "beta", "gamma" }
  print("loader: loaded " .. #data .. " records")
  loaded:release()
end }

for _, who in ipairs { "saver", "processor" } do
  weft.spawn { name = who, fn = function()
    assert(loaded:wait())
    print(who .. ": working on " .. table.concat(data, ", "))
  end }
end

weft.spawn { name = "impatient", fn = function()
  local i = weft.select { { recv = loaded:released() },
    { recv = weft.after(0.005) } }
  print("impatient: " .. (i == 1 and "saw it loaded" or
    "gave up waiting after 5 ms"))
end }
