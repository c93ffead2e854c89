-- limiter.lua: process items, at most 8 at a time.
--
--   weft examples/limiter.lua
--
-- storj's Limiter: work that would otherwise start a task per item (and a
-- thousand open connections) runs at most n at a time; close() waits for
-- the rest and refuses more.

local weft = require "weft"

local limiter = weft.limiter(8)
local running, most, done = 0, 0, 0
local ctx = weft.context()

for item = 1, 100 do
  local ok = limiter:go(ctx, function()
    running = running + 1
    if running > most then most = running end
    weft.sleep(0.001 * (item % 5)) -- "process" the item
    running = running - 1
    done = done + 1
  end)
  assert(ok, "the limiter refused work while open")
end

limiter:close()
print(("processed %d items, at most %d at a time"):format(done, most))
print("after close, go returns " .. tostring(limiter:go(ctx, print)))
