-- shutdown.lua: a service that stops cleanly when it is cancelled.
--
--   weft examples/shutdown.lua        (stops itself after 0.35 s)
--   weft examples/shutdown.lua run    (runs until Ctrl-C)
--
-- A ticker loops on its wait's result (`while weft.sleep(s) do`), so it
-- ends at the first wait that fails; a loop that ignored the failure would
-- spin, and weft would fail it ("ignores cancellation"). A flusher started
-- under weft.background() still belongs to the service (every task belongs
-- to the tree), so cancelling the service reaches it too; its last write
-- waits under a context of its own (a shield), so the clean-up completes.
local weft = require "weft"

local log = weft.chan(16)

local function ticker()
  local n = 0
  while weft.sleep(0.1) do
    n = n + 1
    log:send("tick " .. n, weft.background())
  end
  print("ticker: stopped after " .. n .. " ticks")
end

local function flusher()
  while true do
    local line, err = log:recv()
    if not line then
      -- Shielded clean-up: drain what is left, under a context that the
      -- cancellation does not reach.
      while #log > 0 do print("flush: " .. log:recv(weft.background())) end
      print("flusher: " .. err.message .. ", log flushed")
      return
    end
    print("flush: " .. line)
  end
end

local service = weft.spawn { name = "service", fn = function()
  weft.spawn { name = "flusher", fn = flusher, ctx = weft.background() }
  weft.spawn { name = "ticker", fn = ticker }
end }

if arg[1] ~= "run" then
  weft.sleep(0.35)
  service:cancel("shutting down")
end
-- Ctrl-C cancels main's waits too: join under a shield to see the end.
service:join(weft.background())
print("service stopped")
