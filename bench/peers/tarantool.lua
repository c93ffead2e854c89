-- tarantool.lua WORKLOAD: the peer figures on Tarantool's fibers (fiber,
-- fiber.channel, fiber.cond, socket), run as `tarantool tarantool.lua
-- WORKLOAD [ARG]` without box.cfg. Tarantool has no select over channels,
-- no errgroup, no rate limiter and no pool for Lua code: those print "-".
local fiber = require("fiber")
local socket = require("socket")
local C = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
-- Real time: fiber.clock is the event loop's cached time.
local clock = require("clock").monotonic
-- The channel and spawn figures are CPU time, as weft_bench.lua and
-- floor.lua measure theirs; the rest wall time, as theirs too.
local cpu = os.clock

local benches = {}

-- Ping-pong over unbuffered channels (fiber.channel(0)): ns per round trip.
function benches.pingpong()
  local N = 1000000
  local a, b = fiber.channel(0), fiber.channel(0)
  local t0 = cpu()
  fiber.create(function()
    for _ = 1, N do b:put(a:get()) end
  end)
  for i = 1, N do
    a:put(i)
    b:get()
  end
  return (cpu() - t0) / N * 1e9
end

-- wait_all(n): a join for n fibers, on a counter and a fiber.cond (fibers
-- have join, but only one at a time and only when made joinable).
local function counter(n)
  local left, cond = n, fiber.cond()
  local function done()
    left = left - 1
    if left == 0 then cond:signal() end
  end
  local function wait()
    while left > 0 do cond:wait() end
  end
  return done, wait
end

-- Spawn and finish 100,000 fibers, waiting for all: ns per fiber, the
-- median of C.ROUNDS rounds. fiber.create runs the new fiber at once, which
-- ends and goes back to the pool; fiber.new would keep all 100,000 alive
-- at once, past what the mappings allow (see sleepers).
function benches.spawn()
  local N = 100000
  local rounds = {}
  for r = 1, C.ROUNDS do
    local t0 = cpu()
    local done, wait = counter(N)
    for _ = 1, N do fiber.create(done) end
    wait()
    rounds[r] = (cpu() - t0) / N * 1e9
  end
  return C.median(rounds)
end

-- N fibers each sleeping 100 ms: wall seconds, peak RSS per fiber. Each
-- fiber's stack has an mprotect'ed guard page, so each is a mapping of its
-- own: past vm.max_map_count (65,530 here) fiber creation fails and
-- Tarantool exits, which bench/run reports as "fail".
function benches.sleepers(n)
  local N = tonumber(n) or 1000000
  collectgarbage()
  local base = C.rss_kb("VmRSS")
  local t0 = clock()
  local done, wait = counter(N)
  local function sleeper()
    fiber.sleep(0.1)
    done()
  end
  for _ = 1, N do fiber.create(sleeper) end
  wait()
  return clock() - t0, (C.rss_kb("VmHWM") - base) * 1024 / N
end

-- One producer, one consumer, fiber.channel(128): ns per item.
function benches.buffered()
  local N = 2000000
  local ch = fiber.channel(128)
  local t0 = cpu()
  fiber.create(function()
    for i = 1, N do ch:put(i) end
  end)
  -- No close: a closed fiber.channel drops what it still holds.
  for i = 1, N do assert(ch:get() == i) end
  return (cpu() - t0) / N * 1e9
end

-- TCP echo: 100 connections x 1,000 round trips of 64 bytes, a fiber per
-- connection on each side (socket.tcp_server makes the server's);
-- requests per second. Connections made before the clock starts,
-- TCP_NODELAY on both ends.
function benches.echo()
  local CONNS, N, SIZE = 100, 1000, 64
  local server = assert(socket.tcp_server("127.0.0.1", 0, function(s)
    s:setsockopt("SOL_TCP", "TCP_NODELAY", true)
    while s:readable() do -- sysread does not wait
      local data = s:sysread(65536)
      if not data or data == "" then break end
      assert(s:write(data))
    end
  end))
  local port = server:name().port
  local conns = {}
  for i = 1, CONNS do
    conns[i] = assert(socket.tcp_connect("127.0.0.1", port))
    conns[i]:setsockopt("SOL_TCP", "TCP_NODELAY", true)
  end
  local msg = ("x"):rep(SIZE)
  local t0 = clock()
  local done, wait = counter(CONNS)
  for i = 1, CONNS do
    local conn = conns[i]
    fiber.create(function()
      for _ = 1, N do
        assert(conn:write(msg))
        assert(conn:read(SIZE) == msg)
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

C.main("tarantool.lua", benches, ...)
os.exit(0)
