-- cqueues.lua WORKLOAD: the peer figures on cqueues, run by a stock luajit.
-- cqueues has controllers, coroutines and condition variables
-- (cqueues.condition), no channel: the channel below is ours, built on two
-- conditions, and select over 4 of them polls their conditions at once
-- (cqueues.poll). cqueues has no errgroup and no rate limiter: "-".
-- unpack is LuaJIT's (Lua 5.1) global.
local cqueues = require("cqueues")
local condition = require("cqueues.condition")
local socket = require("cqueues.socket")
local C = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local clock = cqueues.monotime
-- The channel and spawn figures are CPU time, as weft_bench.lua and
-- floor.lua measure theirs; the rest wall time, as theirs too.
local cpu = os.clock
local cq = cqueues.new()

-- A channel: a ring of cap items (cap 0: a sender waits until a receiver
-- took its item) over two conditions, "not empty" and "taken".
local Chan = {}
Chan.__index = Chan
local function chan(cap)
  return setmetatable({ cap = cap or 0, buf = {}, bh = 1, bn = 0,
    readable = condition.new(), taken = condition.new() }, Chan)
end
function Chan:send(v)
  local limit = self.cap == 0 and 1 or self.cap
  while self.bn >= limit do self.taken:wait() end
  self.buf[(self.bh + self.bn - 1) % limit + 1] = v
  self.bn = self.bn + 1
  self.readable:signal(1)
  if self.cap == 0 then -- unbuffered: wait until a receiver took it
    local mine = self.bh + self.bn - 1
    while self.bh <= mine do self.taken:wait() end
  end
end
function Chan:ready() return self.bn > 0 end
function Chan:take()
  local limit = self.cap == 0 and 1 or self.cap
  local h = self.bh
  local v = self.buf[(h - 1) % limit + 1]
  self.buf[(h - 1) % limit + 1] = nil
  self.bh, self.bn = h + 1, self.bn - 1
  self.taken:signal()
  return v
end
function Chan:recv()
  while self.bn == 0 do self.readable:wait() end
  return self:take()
end

-- select over channels: the first ready one, else wait on all their
-- conditions at once.
local function select(chans)
  while true do
    for i = 1, #chans do
      if chans[i]:ready() then return i, chans[i]:take() end
    end
    local conds = {}
    for i = 1, #chans do conds[i] = chans[i].readable end
    cqueues.poll(unpack(conds))
  end
end

local benches = {}

function benches.pingpong()
  local N = 1000000
  local a, b = chan(), chan()
  local t0 = cpu()
  cq:wrap(function() for _ = 1, N do b:send(a:recv()) end end)
  for i = 1, N do
    a:send(i)
    b:recv()
  end
  return (cpu() - t0) / N * 1e9
end

-- A join for n coroutines: a counter and a condition.
local function counter(n)
  local left, cond = n, condition.new()
  local function done()
    left = left - 1
    if left == 0 then cond:signal() end
  end
  local function wait()
    while left > 0 do cond:wait() end
  end
  return done, wait
end

function benches.spawn()
  local N = 100000
  local rounds = {}
  for r = 1, C.ROUNDS do
    local t0 = cpu()
    local done, wait = counter(N)
    for _ = 1, N do cq:wrap(done) end
    wait()
    rounds[r] = (cpu() - t0) / N * 1e9
  end
  return C.median(rounds)
end

function benches.sleepers(n)
  local N = tonumber(n) or 1000000
  collectgarbage()
  local base = C.rss_kb("VmRSS")
  local t0 = clock()
  local done, wait = counter(N)
  local function sleeper()
    cqueues.sleep(0.1)
    done()
  end
  for _ = 1, N do cq:wrap(sleeper) end
  wait()
  return clock() - t0, (C.rss_kb("VmHWM") - base) * 1024 / N
end

function benches.buffered()
  local N = 2000000
  local ch = chan(128)
  local t0 = cpu()
  cq:wrap(function() for i = 1, N do ch:send(i) end end)
  for i = 1, N do assert(ch:recv() == i) end
  return (cpu() - t0) / N * 1e9
end

-- select over 4 channels of capacity 1, one ready: ns per select, less
-- the send and a plain recv measured in the same run, as weft's.
function benches.select()
  local N = 1000000
  local chans = { chan(1), chan(1), chan(1), chan(1) }
  local c = chans[3]
  local t0 = cpu()
  for i = 1, N do
    c:send(i)
    select(chans)
  end
  local send_only = cpu()
  for i = 1, N do
    c:send(i)
    c:recv()
  end
  local t1 = cpu()
  return ((send_only - t0) - (t1 - send_only) / 2) / N * 1e9
end

-- 16 jobs of ~50 ms, each on a thread of its own (cqueues.thread: a new
-- Lua state per thread, no pool), over running them serially: speed-up.
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
  local want = 0
  for _ = 1, 16 do want = spin(n) end
  local serial = clock() - t0
  local done, wait = counter(16)
  t0 = clock()
  for _ = 1, 16 do
    -- The thread's function is dumped and loaded afresh: no upvalues.
    local thr, pipe = assert(require("cqueues.thread").start(function(p, k)
      local s = 0
      for i = 1, tonumber(k) do s = (s + i * 7) % 1000003 end
      p:write(s, "\n")
    end, n))
    cq:wrap(function()
      assert(tonumber(pipe:read("*l")) == want)
      assert(thr:join())
      done()
    end)
  end
  wait()
  local par = clock() - t0
  return serial / par, serial, par
end

-- TCP echo: 100 connections x 1,000 round trips of 64 bytes, a coroutine
-- per connection on each side; requests per second. Connections made
-- before the clock starts, TCP_NODELAY on both ends, binary unbuffered.
function benches.echo()
  local CONNS, N, SIZE = 100, 1000, 64
  local server = assert(socket.listen{ host = "127.0.0.1", port = 0,
    nodelay = true })
  assert(server:listen())
  local _, _, port = server:localname()
  cq:wrap(function()
    for _ = 1, CONNS do
      local s = assert(server:accept())
      s:setmode("bn", "bn")
      cq:wrap(function()
        while true do
          local data = s:xread(-65536)
          if not data then break end
          assert(s:xwrite(data, "bn"))
        end
        s:close()
      end)
    end
  end)
  local conns = {}
  for i = 1, CONNS do
    conns[i] = assert(socket.connect{ host = "127.0.0.1", port = port,
      nodelay = true })
    conns[i]:setmode("bn", "bn")
    assert(conns[i]:connect())
  end
  local msg = ("x"):rep(SIZE)
  local done, wait = counter(CONNS)
  local t0 = clock()
  for i = 1, CONNS do
    local conn = conns[i]
    cq:wrap(function()
      for _ = 1, N do
        assert(conn:xwrite(msg, "bn"))
        assert(conn:xread(SIZE) == msg)
      end
      done()
    end)
  end
  wait()
  local dt = clock() - t0
  for i = 1, CONNS do conns[i]:close() end
  server:close()
  return CONNS * N / dt
end

-- Each workload runs as a coroutine on the controller.
local wrapped = {}
for name, fn in pairs(benches) do
  wrapped[name] = function(...)
    local args, res = { ... }, nil
    cq:wrap(function() res = { fn(unpack(args)) } end)
    assert(cq:loop())
    return unpack(res)
  end
end
C.main("cqueues.lua", wrapped, ...)
