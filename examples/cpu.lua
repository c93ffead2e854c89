-- cpu.lua: CPU work on the worker pool while a ticker keeps time.
--
--   weft examples/cpu.lua            (weft --workers 4 ... to size the pool)
--
-- Hashing eight inputs takes a while on one core. Each runs on a worker
-- thread with weft.work: the task that asked waits, the others go on, so
-- the ticker prints on time throughout. The hash function is a plain Lua
-- function: it crosses to the worker as bytecode, with `bit` (a module)
-- by name.
local weft = require "weft"
local bit = require "bit"

-- FNV-1a over the input, `rounds` times: CPU-bound and deterministic.
local function fnv(s, rounds)
  local h = 2166136261
  for _ = 1, rounds do
    for i = 1, #s do
      h = bit.bxor(h, s:byte(i))
      h = bit.tobit(h * 16777619)
    end
  end
  return bit.tohex(h)
end

local start = weft.now()
local ticker = weft.spawn { name = "ticker", fn = function()
  local n = 0
  while weft.sleep(0.1) do
    n = n + 1
    print(("tick %d at %.1fs"):format(n, weft.now() - start))
  end
end }

local g = weft.group()
local hashes = {}
for i = 1, 8 do
  g:go(function()
    local input = ("input %d "):format(i):rep(64)
    local h, err = weft.work(fnv, input, 20000)
    if not h then return nil, err end
    hashes[i] = h
  end)
end
local err = g:wait()
ticker:cancel()
if err then error(err) end
for i = 1, 8 do print(("input %d: %s"):format(i, hashes[i])) end
print(("8 hashes on %d workers in %.2fs"):format(weft.workers(),
  weft.now() - start))
