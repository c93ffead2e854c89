-- locked.lua: a cache behind locked state.
--
--   weft examples/locked.lua
--
-- storj's Locked: the cache table is only reachable through modify(), so no
-- task can touch it without holding the lock, even across a wait inside
-- (the slow lookup below). A caller whose context expires while waiting for
-- the lock gives up without running its function.

local weft = require "weft"

local cache = weft.locked({ entries = {}, hits = 0, misses = 0 })

local function slow_lookup(key)
  weft.sleep(0.01)
  return key:upper()
end

local function get(ctx, key)
  return cache:modify(ctx, function(c)
    local v = c.entries[key]
    if v then
      c.hits = c.hits + 1
      return v
    end
    c.misses = c.misses + 1
    v = slow_lookup(key) -- still holding the lock: one lookup per key
    c.entries[key] = v
    return v
  end)
end

local g = weft.group()
for i = 1, 20 do
  g:go(function(ctx)
    local key = ({ "a", "b", "c" })[i % 3 + 1]
    assert(get(ctx, key) == key:upper())
  end)
end
assert(not g:wait())

-- A caller with a tight deadline: the lock is held by a slow lookup.
weft.go(function() get(weft.context(), "slow") end)
weft.yield()
local v, err = get(weft.with_timeout(0.001), "other")
print("impatient caller: " .. tostring(v) .. ", " .. err.message)

cache:modify(function(c)
  print(("hits %d, misses %d"):format(c.hits, c.misses))
end)
