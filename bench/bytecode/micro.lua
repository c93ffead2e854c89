-- weft bench/bytecode/micro.lua [NAME...|--list]: the hot paths of weft's Lua
-- modules that build tables with constructors, one line each:
-- "name ns_per_op bytes_per_op". bench/bytecode/run.sh runs it with the
-- modules from the embedded bytecode and from source (WEFT_LUA_DIR), to
-- compare the two (docs/internals.md, "The Lua side in the binary").
--
-- ns: CPU time (os.clock), the best of 5 rounds. bytes: the Lua heap
-- allocated per operation, counted over a shorter run with the collector
-- stopped.
local weft = require "weft"
local errors = require "weft.errors"
local clock = os.clock
local band = bit.band

local B = {} -- name -> { n, setup }; setup() -> op(i) (run n times) [, done]
local order = {}
local function bench(name, n, setup)
  B[name] = { n = n, setup = setup }
  order[#order + 1] = name
end

--[[ rate ]]
bench("rate.allow", 1e6, function()
  local l = weft.rate.limiter(1e9, 1e12)
  return function() return l:allow() end
end)
bench("rate.allow_at", 1e6, function()
  local l = weft.rate.limiter(1e9, 1e12)
  return function(i) return l:allow_at(i * 1e-9) end
end)
bench("rate.allow_refused", 1e6, function()
  local l = weft.rate.limiter(1, 1)
  l:allow_at(0)
  return function(i) return l:allow_at(i * 1e-9) end
end)
bench("rate.reserve_cancel", 3e5, function()
  local l = weft.rate.limiter(1e9, 1e12)
  return function(i)
    local r = l:reserve_at(i * 1e-9)
    r:cancel_at(i * 1e-9)
  end
end)
bench("rate.multi_allow", 3e5, function()
  local m = weft.rate.multi(weft.rate.limiter(1e9, 1e12),
    weft.rate.limiter(2e9, 1e12))
  return function(i) return m:allow_at(i * 1e-9) end
end)
bench("rate.wait_now", 3e5, function()
  local l = weft.rate.limiter(weft.rate.inf, 1)
  return function() return l:wait() end
end)

--[[ ctx ]]
bench("ctx.with_cancel", 2e5, function()
  local parent = weft.background()
  return function()
    local _, cancel = weft.with_cancel(parent)
    cancel()
  end
end)
bench("ctx.with_timeout", 2e5, function()
  local parent = weft.background()
  return function()
    local _, cancel = weft.with_timeout(parent, 60)
    cancel()
  end
end)
bench("ctx.with_value", 1e6, function()
  local parent = weft.background()
  return function(i) return weft.with_value(parent, "k", i) end
end)

--[[ errors ]]
bench("errors.new", 3e5, function()
  return function() return errors.new("io", "boom") end
end)
bench("errors.error_table", 3e5, function()
  return function() return weft.error{ kind = "io", msg = "boom" } end
end)

--[[ sync ]]
bench("sync.mutex_lock_unlock", 1e6, function()
  local m = weft.mutex()
  return function()
    m:lock()
    m:unlock()
  end
end)
bench("sync.mutex_new", 2e5, function()
  return function() return weft.mutex() end
end)
bench("sync.semaphore", 1e6, function()
  local s = weft.semaphore(4)
  return function()
    s:acquire()
    s:release()
  end
end)
bench("sync.once_new", 2e5, function()
  return function() return weft.once() end
end)

--[[ chan's timers ]]
bench("chan.ticker_new_stop", 2e4, function()
  return function()
    local _, stop = weft.ticker(3600)
    stop()
  end
end)

--[[ sched ]]
bench("sched.go_args_join", 2e5, function()
  local function f(a, b) return a, b end
  return function(i) return weft.go(f, i, i):join() end
end)
bench("sched.tasks", 1e4, function()
  local ctx, cancel = weft.with_cancel()
  for _ = 1, 10 do weft.go(function() weft.sleep(3600, ctx) end) end
  return function() return weft.tasks() end, cancel
end)

--[[ group ]]
bench("group.go_wait", 1e5, function()
  local function f() end
  return function()
    local g = weft.group()
    g:go(f)
    g:wait()
  end
end)

--[[ select ]]
bench("select.ready", 1e6, function()
  local a, b = weft.chan(1), weft.chan(1)
  local cases = { { recv = a }, { recv = b } }
  return function(i)
    b:send(i)
    return weft.select(cases)
  end
end)

--[[ pipe ]]
bench("pipe.tee", 1e5, function()
  local ctx = weft.background()
  return function()
    local src = weft.chan(1)
    local a, b = weft.pipe.tee(ctx, src)
    src:send(1)
    src:close()
    a:recv()
    b:recv()
  end
end)

--[[ heartbeat, steward ]]
bench("heartbeat.new_pulse", 2e5, function()
  return function()
    local hb = weft.heartbeat()
    hb:pulse()
    hb:close()
  end
end)
bench("steward.pulse", 2e4, function()
  local hb
  local ctx, cancel = weft.with_cancel()
  local start = weft.steward{ name = "w", timeout = 3600,
    log = function() end,
    start = function()
      hb = weft.heartbeat()
      return hb:beats()
    end }
  start(ctx, 3600)
  while not hb do weft.yield() end
  return function()
    hb:pulse()
    for _ = 1, 3 do weft.yield() end
  end, cancel
end)

--[[ work ]]
bench("work.job", 2e4, function()
  local function f(x) return x end
  return function(i) return weft.work(f, i) end
end)

--[[ fs, io ]]
bench("fs.open_close", 2e4, function()
  local path = os.tmpname()
  return function()
    local f = assert(weft.fs.open(path))
    f:close()
  end
end)
bench("fs.read_file", 2e4, function()
  local path = os.tmpname()
  assert(weft.fs.write_file(path, "x"))
  return function() return weft.fs.read_file(path) end
end)

--[[ net, stream ]]
bench("net.udp_bind_close", 2e4, function()
  return function()
    local s = assert(weft.udp.bind("127.0.0.1", 0))
    s:close()
  end
end)
bench("net.tcp_connect_accept", 5e3, function()
  local srv = assert(weft.tcp.listen("127.0.0.1", 0))
  local port = srv:port()
  return function()
    local t = weft.go(function() return srv:accept() end)
    local c = assert(weft.tcp.connect("127.0.0.1", port))
    local s = t:join()
    c:close()
    s:close()
  end, function() srv:close() end
end)

-- run(b) -> ns, bytes per op
local function run(b)
  local op, done = b.setup()
  local n = b.n
  -- What op returns is kept for a while, as a caller would: else LuaJIT
  -- may sink the allocation out of the loop and measure nothing.
  local keep = {} -- luacheck: ignore 241
  for i = 1, n / 10 do keep[band(i, 63) + 1] = op(i) end -- compile
  local best = math.huge
  for _ = 1, 5 do
    local t0 = clock()
    for i = 1, n do keep[band(i, 63) + 1] = op(i) end
    local dt = (clock() - t0) / n * 1e9
    if dt < best then best = dt end
  end
  local m = math.min(n, 2e4)
  collectgarbage()
  collectgarbage("stop")
  local k0 = collectgarbage("count")
  for i = 1, m do keep[band(i, 63) + 1] = op(i) end
  local bytes = (collectgarbage("count") - k0) * 1024 / m
  collectgarbage("restart")
  if done then done() end
  return best, bytes
end

local names = { ... }
if names[1] == "--list" then
  print(table.concat(order, "\n"))
  return
end
if #names == 0 then names = order end
for _, name in ipairs(names) do
  local b = B[name] or error("unknown benchmark " .. name)
  local ns, bytes = run(b)
  io.write(string.format("%s %.1f %.0f\n", name, ns, bytes))
  io.flush()
end
