-- jobs.lua: a server with background jobs that outlive their requests.
--
--   weft examples/jobs.lua
--
-- storj's Jobs: a request starts work (send an email, compact a table) that
-- must go on after the request has been answered and its context
-- cancelled. The jobs run under the server's root context, as children of
-- the server task; jobs:wait() collects them when the server shuts down.

local weft = require "weft"

local root, shutdown = weft.with_cancel()
local requests = weft.chan()

local server = weft.spawn { name = "server", ctx = root, fn = function()
  local jobs = weft.jobs(root, { limit = 2 })
  for req in requests:iter() do
    -- Each request is handled in a task of its own, with a short deadline.
    weft.spawn { name = "request " .. req, fn = function()
      local ctx = weft.with_timeout(0.005)
      local started = jobs:go(ctx, function(job_ctx)
        local ok = weft.sleep(0.02, job_ctx) -- longer than the request lives
        print(("job for request %d %s"):format(req,
          ok and "finished" or "was cancelled"))
      end)
      print(("request %d answered (job %s)"):format(req,
        started and "started" or "refused"))
    end }
  end
  print("server: waiting for background jobs")
  local err = jobs:wait()
  print("server: all jobs done" .. (err and (", " .. tostring(err)) or ""))
end }

for i = 1, 3 do requests:send(i) end
requests:close()
server:join()
shutdown()
