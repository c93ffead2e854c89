-- weft_bench.lua WORKLOAD: one figure of weft's, printed as "name value".
-- Run by bench/run, one process per workload so peak RSS is per workload.
local workload = ...

local function rss_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+) kB")
    if v then return tonumber(v) end
  end
end

local clock = os.clock

local benches = {}

-- Ping-pong over an unbuffered channel: ns per round trip.
function benches.pingpong()
  local N = 1000000
  local a, b = weft.chan(), weft.chan()
  local t0 = clock()
  local echo = weft.go(function()
    for _ = 1, N do b:send(a:recv()) end
  end)
  for i = 1, N do
    a:send(i)
    b:recv()
  end
  echo:join()
  return (clock() - t0) / N * 1e9
end

-- Spawn and finish 100,000 tasks, waiting for all: ns per task, the median
-- of five rounds (the first warms the pool of coroutines).
local function median(xs)
  table.sort(xs)
  return xs[math.ceil(#xs / 2)]
end

function benches.spawn()
  local N = 100000
  local fn = function() end
  local rounds = {}
  for r = 1, 5 do
    local t0 = clock()
    weft.go(function()
      for _ = 1, N do weft.go(fn) end
    end):join()
    rounds[r] = (clock() - t0) / N * 1e9
  end
  return median(rounds)
end

-- 1,000,000 tasks each sleeping 100 ms: wall seconds and peak RSS per task.
function benches.sleepers()
  local N = 1000000
  collectgarbage()
  local base = rss_kb("VmRSS")
  local t0 = weft.now()
  local sleeper = function() weft.sleep(0.1) end
  local all = weft.go(function()
    for _ = 1, N do weft.go(sleeper) end
  end)
  all:join()
  local wall = weft.now() - t0
  local peak = rss_kb("VmHWM")
  return wall, (peak - base) * 1024 / N
end

-- One producer, one consumer, buffered channel of 128: ns per item.
function benches.buffered()
  local N = 2000000
  local ch = weft.chan(128)
  local t0 = clock()
  weft.go(function()
    for i = 1, N do ch:send(i) end
    ch:close()
  end)
  local n = 0
  for _ in ch:iter() do n = n + 1 end
  assert(n == N)
  return (clock() - t0) / N * 1e9
end

-- select over 4 channels, one ready: ns per select.
function benches.select()
  local N = 1000000
  local a, b, c, d = weft.chan(1), weft.chan(1), weft.chan(1), weft.chan(1)
  local cases = { { recv = a }, { recv = b }, { recv = c }, { recv = d } }
  local t0 = clock()
  for i = 1, N do
    c:send(i)
    weft.select(cases)
  end
  local send_only = clock()
  for i = 1, N do
    c:send(i)
    c:recv()
  end
  local t1 = clock()
  -- Subtract the send (and a plain recv) measured in the same run.
  return ((send_only - t0) - (t1 - send_only) / 2) / N * 1e9
end

-- The worker pool. Wall time (weft.now), not CPU time: the work is on
-- other threads.

-- ~50 ms of arithmetic on this machine's cores; plain Lua, so it runs on
-- the main state and on a worker alike.
local function spin(n)
  local s = 0
  for i = 1, n do s = (s + i * 7) % 1000003 end
  return s
end

-- 16 jobs of ~50 ms: "cpu16 speed-up serial_s pool_s", the speed-up of
-- the pool over running the same jobs one after another on the main state.
function benches.cpu16()
  local n = 1
  repeat -- calibrate: n iterations take ~50 ms
    n = n * 2
    local t0 = weft.now()
    spin(n)
    local dt = weft.now() - t0
    if dt > 0.025 then n = math.floor(n * 0.05 / dt) break end
  until false
  weft.work(spin, 1) -- start the threads outside the timing
  local t0 = weft.now()
  for _ = 1, 16 do spin(n) end
  local serial = weft.now() - t0
  t0 = weft.now()
  local g = weft.group()
  for _ = 1, 16 do g:go(function() weft.work(spin, n) end) end
  g:wait()
  local pool = weft.now() - t0
  return serial / pool, serial, pool
end

-- A trivial job's round trip, one at a time: us per job.
function benches.workrt()
  local N = 20000
  local f = function(x) return x end
  weft.work(f, 1)
  local t0 = weft.now()
  for i = 1, N do weft.work(f, i) end
  return (weft.now() - t0) / N * 1e6
end

-- A 10 MB string and a 100,000-entry table to a worker and back:
-- "copy string_GB/s table_MB/s" (bytes both ways over the wall time; the
-- table's bytes are its serialized size).
function benches.copy()
  local echo = function(x) return x end
  local s = ("0123456789abcdef"):rep(655360)
  weft.work(echo, "warm")
  local t0 = weft.now()
  for _ = 1, 5 do assert(#weft.work(echo, s) == #s) end
  local gbs = 2 * 5 * #s / (weft.now() - t0) / 1e9
  local t = {}
  for i = 1, 100000 do t[i] = { id = i, name = "item " .. i, w = i * 0.5 } end
  local size = require("weft.copy").size(t)
  t0 = weft.now()
  for _ = 1, 3 do assert(#weft.work(echo, t) == #t) end
  local mbs = 2 * 3 * size / (weft.now() - t0) / 1e6
  return gbs, mbs
end

local f = benches[workload]
if not f then
  io.stderr:write("usage: weft bench/weft_bench.lua " ..
    "pingpong|spawn|sleepers|buffered|select|cpu16|workrt|copy\n")
  os.exit(2)
end
print(workload, f())
