-- hello.lua: tasks, a channel and a timeout.
--
--   weft examples/hello.lua
--
-- Three greeters answer in their own time; main listens for half a second.
-- The greeters run inside main's scope, so when its timeout expires the one
-- still sleeping is cancelled, and the program ends with no task left.

local weft = require "weft"

local greetings = weft.chan()

weft.scope(function()
  for i, delay in ipairs { 0.2, 0.05, 0.9 } do
    weft.spawn {
      name = "greeter " .. i,
      fn = function()
        local ok, err = weft.sleep(delay)
        if not ok then
          print(("greeter %d gives up: %s"):format(i, err.message))
          return
        end
        greetings:send(("hello from greeter %d after %.2fs"):format(i, delay))
      end,
    }
  end
  while true do
    local msg, err = greetings:recv()
    if not msg then
      print("main stops listening: " .. err.message)
      return
    end
    print(msg)
  end
end, { timeout = 0.5 })
