-- floor.lua WORKLOAD: the floor for weft's figures, measured with plain
-- LuaJIT coroutines and a minimal pure-Lua scheduler (no C at all, no
-- contexts, no cancellation, no errors). Run with a stock luajit.
local workload = ...
local create, resume, yield, running = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.running
local clock = os.clock

local function rss_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+) kB")
    if v then return tonumber(v) end
  end
end

-- The scheduler: a FIFO of ready coroutines and wake values.
local rq, rv, rh, rt = {}, {}, 1, 0
local function ready(co, v)
  rt = rt + 1
  rq[rt], rv[rt] = co, v
end
local function run()
  while rh <= rt do
    local co, v = rq[rh], rv[rh]
    rq[rh], rv[rh] = nil, nil
    rh = rh + 1
    resume(co, v)
  end
  rh, rt = 1, 0
end

-- Channels: a buffer ring and FIFOs of waiting coroutines.
local Chan = {}
Chan.__index = Chan
local function chan(cap)
  return setmetatable({ cap = cap or 0, buf = {}, bh = 1, bn = 0,
    rw = {}, rwh = 1, rwt = 0, sw = {}, swv = {}, swh = 1, swt = 0 }, Chan)
end
function Chan:send(v)
  if self.rwh <= self.rwt then
    local co = self.rw[self.rwh]
    self.rw[self.rwh] = nil
    self.rwh = self.rwh + 1
    ready(co, v)
    return true
  end
  if self.bn < self.cap then
    local i = self.bh + self.bn
    if i > self.cap then i = i - self.cap end
    self.buf[i] = v
    self.bn = self.bn + 1
    return true
  end
  self.swt = self.swt + 1
  self.sw[self.swt], self.swv[self.swt] = running(), v
  return yield()
end
function Chan:recv()
  if self.bn > 0 then
    local h = self.bh
    local v = self.buf[h]
    self.buf[h] = nil
    self.bh = h == self.cap and 1 or h + 1
    self.bn = self.bn - 1
    if self.swh <= self.swt then
      local co, sv = self.sw[self.swh], self.swv[self.swh]
      self.sw[self.swh], self.swv[self.swh] = nil, nil
      self.swh = self.swh + 1
      local i = self.bh + self.bn
      if i > self.cap then i = i - self.cap end
      self.buf[i] = sv
      self.bn = self.bn + 1
      ready(co, true)
    end
    return v
  end
  if self.swh <= self.swt then
    local co, sv = self.sw[self.swh], self.swv[self.swh]
    self.sw[self.swh], self.swv[self.swh] = nil, nil
    self.swh = self.swh + 1
    ready(co, true)
    return sv
  end
  self.rwt = self.rwt + 1
  self.rw[self.rwt] = running()
  return yield()
end

local benches = {}

function benches.pingpong()
  local N = 1000000
  local a, b = chan(), chan()
  local t0 = clock()
  ready(create(function() for _ = 1, N do b:send(a:recv()) end end))
  ready(create(function() for i = 1, N do a:send(i); b:recv() end end))
  run()
  return (clock() - t0) / N * 1e9
end

function benches.buffered()
  local N = 2000000
  local ch = chan(128)
  local t0 = clock()
  ready(create(function() for i = 1, N do ch:send(i) end end))
  ready(create(function() for _ = 1, N do ch:recv() end end))
  run()
  return (clock() - t0) / N * 1e9
end

-- Rounds of spawn and errgroup, the median taken: as weft_bench.lua's.
local ROUNDS = 15

function benches.spawn()
  local N = 100000
  local fn = function() end
  local rounds = {}
  for r = 1, ROUNDS do
    local t0 = clock()
    for _ = 1, N do ready(create(fn)) end
    run()
    rounds[r] = (clock() - t0) / N * 1e9
  end
  table.sort(rounds)
  return rounds[math.ceil(ROUNDS / 2)]
end

-- An errgroup at its least: 100,000 coroutines that count themselves done,
-- the last one waking the waiter. ns per task, the median of ROUNDS rounds.
function benches.errgroup()
  local N = 100000
  local rounds = {}
  for r = 1, ROUNDS do
    local left, waiter = N, nil
    local function done()
      left = left - 1
      if left == 0 and waiter then ready(waiter) end
    end
    local t0 = clock()
    ready(create(function()
      for _ = 1, N do ready(create(done)) end
      if left > 0 then
        waiter = running()
        yield()
      end
    end))
    run()
    assert(left == 0)
    rounds[r] = (clock() - t0) / N * 1e9
  end
  table.sort(rounds)
  return rounds[math.ceil(ROUNDS / 2)]
end

-- Sleepers (N, default 1,000,000): a binary heap of (deadline, coroutine).
function benches.sleepers(count)
  local N = tonumber(count) or 1000000
  collectgarbage()
  local base = rss_kb("VmRSS")
  local ht, hc, n = {}, {}, 0
  local function push(t, co)
    n = n + 1
    local i = n
    while i > 1 do
      local p = (i - i % 2) / 2
      if ht[p] <= t then break end
      ht[i], hc[i] = ht[p], hc[p]
      i = p
    end
    ht[i], hc[i] = t, co
  end
  local function pop()
    local co = hc[1]
    local lt, lc = ht[n], hc[n]
    ht[n], hc[n] = nil, nil
    n = n - 1
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      if c < n and ht[c + 1] < ht[c] then c = c + 1 end
      if ht[c] >= lt then break end
      ht[i], hc[i] = ht[c], hc[c]
      i = c
    end
    if n > 0 then ht[i], hc[i] = lt, lc end
    return co
  end
  local t0 = clock()
  local function sleep(s) push(clock() + s, running()); yield() end
  local sleeper = function() sleep(0.1) end
  for _ = 1, N do resume(create(sleeper)) end
  while n > 0 do
    if ht[1] <= clock() then resume(pop()) end
  end
  return clock() - t0, (rss_kb("VmHWM") - base) * 1024 / N
end

function benches.resume()
  local N = 10000000
  local co = create(function() while true do yield() end end)
  local t0 = clock()
  for _ = 1, N do resume(co) end
  return (clock() - t0) / N * 1e9
end

local f = benches[workload]
if not f then
  io.stderr:write("usage: luajit bench/floor.lua " ..
    "pingpong|buffered|spawn|errgroup|sleepers [N]|resume\n")
  os.exit(2)
end
print(workload, f(select(2, ...)))
