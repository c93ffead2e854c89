-- parallel.lua: sum prices in parallel batches.
--
--   weft examples/parallel.lua
--
-- storj's Parallel: cover items 1..n in batches, a few batches at a time.
-- Each batch gets inclusive bounds, as Lua's `for i = lo, hi`.

local weft = require "weft"

local prices = {}
for i = 1, 1000 do prices[i] = (i * 37) % 100 + 0.99 end

local sums = weft.locked({ total = 0, batches = 0 })
local p = weft.parallel { concurrency = 4, batch_size = 64 }

local err = p:process(weft.context(), #prices, function(lo, hi, ctx)
  local s = 0
  for i = lo, hi do s = s + prices[i] end
  weft.yield() -- let other batches run, as real work would
  return sums:modify(ctx, function(st)
    st.total = st.total + s
    st.batches = st.batches + 1
    return true
  end)
end)
assert(not err, err)

local expected = 0
for i = 1, #prices do expected = expected + prices[i] end
sums:modify(function(st)
  print(("%d batches, total %.2f (expected %.2f)"):format(st.batches,
    st.total, expected))
end)
