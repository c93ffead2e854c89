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
-- of ROUNDS rounds. One process's first rounds grow its heap and warm the
-- pool of coroutines; the median is the cost a program that keeps
-- spawning pays (bench/README.md gives the first rounds apart).
local ROUNDS = 15
local function median(xs)
  table.sort(xs)
  return xs[math.ceil(#xs / 2)]
end

function benches.spawn()
  local N = 100000
  local fn = function() end
  local rounds = {}
  for r = 1, ROUNDS do
    local t0 = clock()
    weft.go(function()
      for _ = 1, N do weft.go(fn) end
    end):join()
    rounds[r] = (clock() - t0) / N * 1e9
  end
  return median(rounds)
end

-- N (default 1,000,000) tasks each sleeping 100 ms: wall seconds and peak
-- RSS per task.
function benches.sleepers(n)
  local N = tonumber(n) or 1000000
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

-- An errgroup of 100,000 tasks that return nothing, then wait: ns per
-- task, the median of ROUNDS rounds as spawn's.
function benches.errgroup()
  local N = 100000
  local fn = function() end
  local rounds = {}
  for r = 1, ROUNDS do
    local t0 = clock()
    local g = weft.group()
    for _ = 1, N do g:go(fn) end
    assert(g:wait() == nil)
    rounds[r] = (clock() - t0) / N * 1e9
  end
  return median(rounds)
end

-- rate limiter allow on a bucket that always has a token (a finite limit,
-- so the arithmetic runs; rate.inf would skip it): ns per call.
function benches.rate_allow()
  local N = 1000000
  local l = weft.rate.limiter(1e9, N)
  local ok = 0
  local t0 = clock()
  for _ = 1, N do
    if l:allow() then ok = ok + 1 end
  end
  local dt = clock() - t0
  assert(ok == N, "refused")
  return dt / N * 1e9
end

-- rate limiter wait at 1,000/s (burst 1) for a second on real time: the
-- mean |interval - 1 ms| between consecutive returns, in us.
function benches.rate_wait()
  local N = 1000
  local l = weft.rate.limiter(1000, 1)
  assert(l:wait())
  local prev, sum = weft.now(), 0
  for _ = 1, N do
    assert(l:wait())
    local now = weft.now()
    sum = sum + math.abs((now - prev) * 1e6 - 1000)
    prev = now
  end
  return sum / N
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

-- I/O, on loopback (127.0.0.1) only. Server and clients in this one
-- process, as the Go program has them.

-- TCP echo: 100 connections, each 1,000 round trips of 64 bytes, all at
-- once; a task per connection on each side: requests per second. The
-- connections are made before the clock starts. TCP_NODELAY on both ends,
-- as Go's net sets it by default.
function benches.echo()
  local C, N, SIZE = 100, 1000, 64
  local server = assert(weft.tcp.listen("127.0.0.1", 0))
  local port = server:port()
  local serving = weft.group()
  serving:go(function()
    for _ = 1, C do
      local conn = assert(server:accept())
      conn:set_nodelay(true)
      serving:go(function()
        while true do
          local data = conn:read()
          if not data then break end
          assert(conn:write(data))
        end
        conn:close()
      end)
    end
  end)
  local conns = {}
  for i = 1, C do
    conns[i] = assert(weft.tcp.connect("127.0.0.1", port))
    conns[i]:set_nodelay(true)
  end
  local msg = ("x"):rep(SIZE)
  local t0 = weft.now()
  local clients = weft.group()
  for i = 1, C do
    local conn = conns[i]
    clients:go(function()
      for _ = 1, N do
        assert(conn:write(msg))
        assert(conn:read_exactly(SIZE) == msg)
      end
    end)
  end
  clients:wait()
  local dt = weft.now() - t0
  for i = 1, C do conns[i]:close() end
  serving:wait()
  server:close()
  return C * N / dt
end

-- TCP bulk transfer over one connection: MB/s (1e6 bytes), and the bytes.
-- The sender writes MIB * 16 strings of 64 KiB + 1 random bytes, the
-- receiver reads what arrives (at most 64 KiB a read) until EOF. The odd
-- size keeps the reads distinct: LuaJIT interns strings, and a read equal
-- to one still alive would cost a compare instead of a copy and an
-- allocation, which real data does not get. read(conn) -> the bytes of
-- one read, or nil at EOF.
local function bulk(mib, read)
  local writes = (tonumber(mib) or 1024) * 16
  local bytes = {}
  for i = 1, 65537 do bytes[i] = string.char(math.random(0, 255)) end
  local chunk = table.concat(bytes)
  local total = writes * #chunk
  local server = assert(weft.tcp.listen("127.0.0.1", 0))
  local t0 = weft.now()
  local sender = weft.go(function()
    local conn = assert(weft.tcp.connect("127.0.0.1", server:port()))
    for _ = 1, writes do assert(conn:write(chunk)) end
    assert(conn:shutdown())
    conn:close()
  end)
  local conn = assert(server:accept())
  local got = 0
  while true do
    local k = read(conn)
    if not k then break end
    got = got + k
  end
  local dt = weft.now() - t0
  sender:join()
  conn:close()
  server:close()
  assert(got == total)
  return total / dt / 1e6, total
end

local function eof(err)
  assert(err.kind == "EOF", tostring(err))
  return nil
end

function benches.bulk(mib)
  return bulk(mib, function(conn)
    local data, err = conn:read()
    if not data then return eof(err) end
    return #data
  end)
end

-- The same, the reader filling one reused string.buffer (conn:read_into),
-- as Go's reader reuses one []byte.
function benches.bulk_into(mib)
  local buf = require("string.buffer").new(65536)
  return bulk(mib, function(conn)
    local k, err = conn:read_into(buf)
    if not k then return eof(err) end
    buf:reset()
    return k
  end)
end

-- weft.fs.read_file of the file PATH (bench/run makes it): MB/s (1e6
-- bytes). The median of five reads in this process: the file is in the
-- page cache, as it is for cat.
function benches.readfile(path)
  local rounds, size = {}, 0
  for r = 1, 5 do
    local t0 = weft.now()
    local data = assert(weft.fs.read_file(path))
    rounds[r] = weft.now() - t0
    size = #data
    data = nil -- luacheck: ignore 311
    collectgarbage()
  end
  return size / median(rounds) / 1e6, size
end

-- N (default 10,000) idle TCP connections held open, both ends in this
-- process, a task on the server end of each waiting in read: RSS (after
-- minus before, once every reader waits) per connection, in bytes.
function benches.idle(n)
  n = tonumber(n) or 10000
  collectgarbage()
  local base = rss_kb("VmRSS")
  local server = assert(weft.tcp.listen("127.0.0.1", 0))
  local port = server:port()
  local readers = weft.group()
  local accepted = 0
  readers:go(function()
    for _ = 1, n do
      local conn = assert(server:accept())
      accepted = accepted + 1
      readers:go(function()
        conn:read() -- EOF when the client closes
        conn:close()
      end)
    end
  end)
  local conns = {}
  for i = 1, n do conns[i] = assert(weft.tcp.connect("127.0.0.1", port)) end
  while accepted < n do weft.sleep(0.01) end
  weft.sleep(0.1) -- every reader is waiting
  local rss = rss_kb("VmRSS")
  for i = 1, n do conns[i]:close() end
  readers:wait()
  server:close()
  return (rss - base) * 1024 / n, n
end

local f = benches[workload]
if not f then
  io.stderr:write("usage: weft bench/weft_bench.lua " ..
    "pingpong|spawn|sleepers [N]|buffered|select|errgroup|rate_allow|" ..
    "rate_wait|cpu16|workrt|copy|" ..
    "echo|bulk [MiB]|bulk_into [MiB]|readfile PATH|idle [N]\n")
  os.exit(2)
end
print(workload, f(select(2, ...)))
