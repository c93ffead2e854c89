-- errgroup.lua: three servers under an errgroup.
--
--   weft examples/errgroup.lua
--
-- A process runs several servers; when one fails, the others must stop and
-- the failure must be reported, not lost. Each server runs in the group, on
-- the group's context: the first error cancels it, so the others' waits fail
-- and they shut down; g:wait() returns once all have stopped, with the
-- error that started it.

local weft = require "weft"

local function server(name, fail_after)
  return function(ctx)
    local served = 0
    while true do
      -- Serve a "request" every 10 ms until cancelled.
      local ok, err = weft.sleep(0.01, ctx)
      if not ok then
        print(("%-6s stops after %d requests: %s"):format(name, served,
          err.message))
        return
      end
      served = served + 1
      if fail_after and served == fail_after then
        return nil, weft.error("listen", "%s: connection reset", name)
      end
    end
  end
end

local g = weft.group()
g:go(server("http"))
g:go(server("grpc", 5))
g:go(server("debug"))

local err = g:wait()
print("group finished: " .. tostring(err))
print("its context: " .. tostring(g:context():err()))
