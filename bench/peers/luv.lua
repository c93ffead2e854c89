-- luv.lua WORKLOAD: the peer figures on luv (libuv for Lua), run by a stock
-- luajit. luv has handles and callbacks, not tasks or channels, so this is
-- what a luv user writes: coroutines woken from an idle handle, and a
-- minimal channel over them (ours, below). luv has no select, errgroup or
-- rate limiter: those print "-".
local uv = require("luv")
local C = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local create, resume, yield, running = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.running
local function clock() return uv.hrtime() / 1e9 end
-- The channel and spawn figures are CPU time, as weft_bench.lua and
-- floor.lua measure theirs; the rest wall time, as theirs too.
local cpu = os.clock

-- The run queue: coroutines to resume, drained by an idle handle that runs
-- only while the queue is not empty.
local rq, rv, rh, rt = {}, {}, 1, 0
local idle, scheduled = uv.new_idle(), false
local function drain()
  while rh <= rt do
    local co, v = rq[rh], rv[rh]
    rq[rh], rv[rh] = nil, nil
    rh = rh + 1
    assert(resume(co, v))
  end
  rh, rt = 1, 0
  scheduled = false
  idle:stop()
end
local function ready(co, v)
  if not scheduled then -- one idle:start per drain, not per wake
    scheduled = true
    idle:start(drain)
  end
  rt = rt + 1
  rq[rt], rv[rt] = co, v
end
local function go(fn) ready(create(fn)) end

-- A channel: a ring of cap items and FIFOs of parked coroutines.
local Chan = {}
Chan.__index = Chan
local function chan(cap)
  return setmetatable({ cap = cap or 0, buf = {}, bh = 1, bn = 0,
    rw = {}, rwh = 1, rwt = 0, sw = {}, swv = {}, swh = 1, swt = 0 }, Chan)
end
function Chan:send(v)
  if self.rwh <= self.rwt then -- a receiver waits: hand v over
    local co = self.rw[self.rwh]
    self.rw[self.rwh] = nil
    self.rwh = self.rwh + 1
    ready(co, v)
    return
  end
  if self.bn < self.cap then
    local i = (self.bh + self.bn - 1) % self.cap + 1
    self.buf[i] = v
    self.bn = self.bn + 1
    return
  end
  self.swt = self.swt + 1
  self.sw[self.swt], self.swv[self.swt] = running(), v
  yield()
end
function Chan:recv()
  local co, sv
  if self.swh <= self.swt then
    co, sv = self.sw[self.swh], self.swv[self.swh]
    self.sw[self.swh], self.swv[self.swh] = nil, nil
    self.swh = self.swh + 1
    ready(co)
  end
  if self.bn > 0 then
    local h = self.bh
    local v = self.buf[h]
    self.bh = h % self.cap + 1
    if co then -- the sender's item takes the freed slot
      self.buf[h] = sv
    else
      self.buf[h] = nil
      self.bn = self.bn - 1
    end
    return v
  end
  if co then return sv end
  self.rwt = self.rwt + 1
  self.rw[self.rwt] = running()
  return yield()
end

-- A join for n coroutines: a counter and the one waiting coroutine.
local function counter(n)
  local left, waiter = n, nil
  local function done()
    left = left - 1
    if left == 0 and waiter then ready(waiter) end
  end
  local function wait()
    if left > 0 then
      waiter = running()
      yield()
    end
  end
  return done, wait
end

-- main(fn): run fn as a coroutine under uv.run and return what it returns.
local function main(fn, ...)
  local args, res = { ... }, nil
  go(function() res = { fn(unpack(args)) } end)
  uv.run()
  return unpack(res)
end

local benches = {}

function benches.pingpong()
  local N = 1000000
  local a, b = chan(), chan()
  local t0 = cpu()
  go(function() for _ = 1, N do b:send(a:recv()) end end)
  for i = 1, N do
    a:send(i)
    b:recv()
  end
  return (cpu() - t0) / N * 1e9
end

function benches.spawn()
  local N = 100000
  local rounds = {}
  for r = 1, C.ROUNDS do
    local t0 = cpu()
    local done, wait = counter(N)
    for _ = 1, N do go(done) end
    wait()
    rounds[r] = (cpu() - t0) / N * 1e9
  end
  return C.median(rounds)
end

-- N coroutines each sleeping 100 ms on a timer handle of its own (closed
-- when it fires): wall seconds, peak RSS per task.
local function sleep(s)
  local co, t = running(), uv.new_timer()
  t:start(s * 1000, 0, function()
    t:close()
    assert(resume(co))
  end)
  yield()
end

function benches.sleepers(n)
  local N = tonumber(n) or 1000000
  collectgarbage()
  local base = C.rss_kb("VmRSS")
  local t0 = clock()
  local done, wait = counter(N)
  local function sleeper()
    sleep(0.1)
    done()
  end
  for _ = 1, N do go(sleeper) end
  wait()
  return clock() - t0, (C.rss_kb("VmHWM") - base) * 1024 / N
end

function benches.buffered()
  local N = 2000000
  local ch = chan(128)
  local t0 = cpu()
  go(function() for i = 1, N do ch:send(i) end end)
  for i = 1, N do assert(ch:recv() == i) end
  return (cpu() - t0) / N * 1e9
end

-- 16 jobs of ~50 ms on libuv's thread pool (uv.new_work: a Lua state per
-- pool thread, UV_THREADPOOL_SIZE, default 4) over running them serially.
local function spin(n)
  local s = 0
  for i = 1, n do s = (s + i * 7) % 1000003 end
  return s
end

function benches.cpu16()
  local n = 1
  repeat -- calibrate: n iterations take ~50 ms
    n = n * 2
    local t0 = clock()
    spin(n)
    local dt = clock() - t0
    if dt > 0.025 then n = math.floor(n * 0.05 / dt) break end
  until false
  local t0 = clock()
  for _ = 1, 16 do spin(n) end
  local serial = clock() - t0
  local done, wait = counter(16)
  local work = uv.new_work(spin, function() done() end)
  t0 = clock()
  for _ = 1, 16 do work:queue(n) end
  wait()
  local pool = clock() - t0
  return serial / pool, serial, pool
end

-- TCP echo, callback style as luv is written: 100 connections x 1,000
-- round trips of 64 bytes; requests per second. Connections made before
-- the clock starts, TCP_NODELAY on both ends.
function benches.echo()
  local CONNS, N, SIZE = 100, 1000, 64
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  local port = server:getsockname().port
  assert(server:listen(128, function(err)
    assert(not err, err)
    local s = uv.new_tcp()
    assert(server:accept(s))
    s:nodelay(true)
    s:read_start(function(rerr, data)
      assert(not rerr, rerr)
      if data then s:write(data) else s:close() end
    end)
  end))
  local conns, connected = {}, 0
  local co = running()
  for i = 1, CONNS do
    conns[i] = uv.new_tcp()
    conns[i]:connect("127.0.0.1", port, function(err)
      assert(not err, err)
      connected = connected + 1
      if connected == CONNS then ready(co) end
    end)
  end
  yield()
  local msg = ("x"):rep(SIZE)
  local done, wait = counter(CONNS)
  local t0 = clock()
  for i = 1, CONNS do
    local conn, got, trips = conns[i], 0, 0
    conn:nodelay(true)
    conn:read_start(function(err, data)
      assert(not err and data, err)
      got = got + #data
      if got < SIZE then return end
      assert(got == SIZE)
      got, trips = 0, trips + 1
      if trips < N then conn:write(msg) else conn:read_stop() done() end
    end)
    conn:write(msg)
  end
  wait()
  local dt = clock() - t0
  for i = 1, CONNS do conns[i]:close() end
  server:close()
  idle:close()
  return CONNS * N / dt
end

-- Each workload runs as a coroutine under uv.run.
local wrapped = {}
for name, fn in pairs(benches) do
  wrapped[name] = function(...) return main(fn, ...) end
end
C.main("luv.lua", wrapped, ...)
