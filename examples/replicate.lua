-- replicate.lua: replicated requests ("Concurrency in Go", ch. 5): ten
-- handlers with random load; the first answer wins and the rest are
-- cancelled. Then the same with hedging, which starts a replica only when
-- the ones before are slow. Virtual time, fixed seed: the run is the same
-- every time.
--
--   weft examples/replicate.lua

local weft = require "weft"

weft.virtual_time(function()
  math.randomseed(7)
  local load = {}
  for i = 1, 10 do load[i] = 1 + math.random() * 4 end -- 1 to 5 s

  local function handler(ctx, i)
    local ok, err = weft.sleep(load[i], ctx)
    if not ok then return nil, err end
    return ("answer from replica %d"):format(i)
  end

  print("== all ten at once")
  local t0 = weft.now()
  local answer, i = weft.replicate(weft.context(), 10, handler)
  print(("%s after %.2f s"):format(answer, weft.now() - t0))
  for r = 1, 10 do
    print(("  replica %2d would have taken %.2f s%s"):format(r, load[r],
      r == i and " (won)" or ""))
  end

  print("== hedged: a new replica only after 1.5 s without an answer")
  local started = 0
  t0 = weft.now()
  answer, i = weft.replicate(weft.context(), 10, function(ctx, r)
    started = started + 1
    return handler(ctx, r)
  end, { hedge = 1.5 })
  print(("replica %d answered after %.2f s (%q); %d replicas started"):format(
    i, weft.now() - t0, answer, started))
end)
