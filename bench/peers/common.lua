-- common.lua: what the Lua peer scripts share (Tarantool's, luv's, cqueues'
-- and copas'): the workload names, the output line, RSS and the median.
-- Loaded with dofile, as Tarantool and a stock luajit both have it.
local M = {}

-- Every workload bench/run asks a peer for. A peer without the primitive a
-- workload needs prints "name -": skipped, never a stand-in.
M.workloads = { "pingpong", "spawn", "sleepers", "buffered", "select",
  "errgroup", "rate_allow", "rate_wait", "cpu16", "echo" }

function M.rss_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+) kB")
    if v then return tonumber(v) end
  end
end

-- Rounds of spawn and errgroup in one process, the median taken: as
-- bench/weft_bench.lua's.
M.ROUNDS = 15

function M.median(xs)
  table.sort(xs)
  return xs[math.ceil(#xs / 2)]
end

-- main(name, benches, workload, ...): run benches[workload](...) and print
-- "workload v1 v2 ...", as bench/weft_bench.lua does.
function M.main(name, benches, workload, ...)
  local f = benches[workload]
  if f then
    print(workload, f(...))
    return
  end
  for _, w in ipairs(M.workloads) do
    if w == workload then
      print(workload, "-")
      return
    end
  end
  io.stderr:write(name .. ": unknown workload " .. tostring(workload) ..
    " (one of " .. table.concat(M.workloads, " ") .. ")\n")
  os.exit(2)
end

return M
