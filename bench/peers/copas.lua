-- copas.lua WORKLOAD: the peer figures on copas 1.1.7 (Debian's lua-copas)
-- over luasocket, run by a stock luajit. copas 1.1.7 schedules coroutines
-- only on sockets (socket.select): it has copas.addthread but no
-- copas.sleep, copas.wakeup, channel or condition (those came in copas 2),
-- so a coroutine that waits on anything but a socket is dropped. Only spawn
-- and TCP echo can be written; everything else prints "-".
local copas = require("copas")
local socket = require("socket")
local C = dofile((arg[0]:match("^(.*/)") or "./") .. "common.lua")
local clock = socket.gettime
-- The channel and spawn figures are CPU time, as weft_bench.lua and
-- floor.lua measure theirs; the rest wall time, as theirs too.
local cpu = os.clock

local benches = {}

-- copas.addthread of 100,000 coroutines that end at once: ns per task, the
-- median of C.ROUNDS rounds. addthread runs each to its first yield, here its
-- end, so the join is a count that is already complete.
function benches.spawn()
  local N = 100000
  local rounds = {}
  for r = 1, C.ROUNDS do
    local left = N
    local function done() left = left - 1 end
    local t0 = cpu()
    for _ = 1, N do copas.addthread(done) end
    assert(left == 0)
    rounds[r] = (cpu() - t0) / N * 1e9
  end
  return C.median(rounds)
end

-- TCP echo: 100 connections x 1,000 round trips of 64 bytes, a coroutine
-- per connection on each side (copas.addserver makes the server's);
-- requests per second. Connections made before the clock starts,
-- TCP_NODELAY on both ends.
function benches.echo()
  local CONNS, N, SIZE = 100, 1000, 64
  -- Not socket.bind: its backlog of 32 would lose connections made before
  -- the loop runs.
  local server = assert(socket.tcp())
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(1024))
  local _, port = server:getsockname()
  copas.addserver(server, function(s)
    s:setoption("tcp-nodelay", true)
    while true do
      local data, err, part = copas.receivePartial(s, 65536)
      data = data or part
      if err == "closed" or not data then break end
      assert(copas.send(s, data))
    end
  end)
  local conns = {}
  for i = 1, CONNS do
    conns[i] = assert(socket.connect("127.0.0.1", port))
    conns[i]:setoption("tcp-nodelay", true)
    conns[i]:settimeout(0)
  end
  local msg = ("x"):rep(SIZE)
  local left = CONNS
  local t0 = clock()
  for i = 1, CONNS do
    local conn = conns[i]
    copas.addthread(function()
      for _ = 1, N do
        assert(copas.send(conn, msg))
        assert(copas.receive(conn, SIZE) == msg)
      end
      left = left - 1
    end)
  end
  while left > 0 do copas.step() end
  local dt = clock() - t0
  for i = 1, CONNS do conns[i]:close() end
  server:close()
  return CONNS * N / dt
end

C.main("copas.lua", benches, ...)
