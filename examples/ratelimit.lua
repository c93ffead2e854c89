-- ratelimit.lua: the APIConnection of "Concurrency in Go", ch. 5, in its
-- three versions. Twenty concurrent calls each (ten reads, ten resolves);
-- each line is the time a call went through, in seconds since the start.
--
--   weft examples/ratelimit.lua                  real time (about 2 minutes)
--   weft --virtual-time examples/ratelimit.lua   the same schedule, at once
--
--   1. one limiter for the whole API: 1 call per second;
--   2. a multi-limiter: 2 per second, and at most 10 per minute;
--   3. the API's limits, plus the disk's (1 per second) for reads and the
--      network's (3 per second, burst 3) for resolves.

local weft = require "weft"

local rate = weft.rate
local which = ...

local function connection(version)
  local api, read, resolve
  if version == 1 then
    api = rate.limiter(1, 1)
    read, resolve = api, api
  else
    api = rate.multi(
      rate.limiter(rate.per(2, 1), 1),   -- per-second limit, no burst
      rate.limiter(rate.per(10, 60), 10)) -- per-minute limit, burst 10
    read, resolve = api, api
    if version == 3 then
      read = rate.multi(api, rate.limiter(rate.per(1, 1), 1))      -- disk
      resolve = rate.multi(api, rate.limiter(rate.every(1 / 3), 3)) -- net
    end
  end
  return {
    read_file = function(ctx) return read:wait(ctx) end,
    resolve_address = function(ctx) return resolve:wait(ctx) end,
  }
end

for version = 1, 3 do
  if not which or tonumber(which) == version then
    print(("== version %d"):format(version))
    local conn = connection(version)
    local t0 = weft.now()
    local g = weft.group()
    for _ = 1, 10 do
      g:go(function(ctx)
        assert(conn.read_file(ctx))
        print(("%6.2f ReadFile"):format(weft.now() - t0))
      end)
    end
    for _ = 1, 10 do
      g:go(function(ctx)
        assert(conn.resolve_address(ctx))
        print(("%6.2f ResolveAddress"):format(weft.now() - t0))
      end)
    end
    assert(not g:wait())
    print(("done in %.2f s"):format(weft.now() - t0))
  end
end
