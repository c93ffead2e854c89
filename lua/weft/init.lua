-- weft: the public Lua surface. Everything here is re-exported from the
-- modules that implement it; see docs/api.md for the reference.
--
-- Only the core is loaded with weft: tasks and time, contexts, channels,
-- errors and the worker pool. The rest (synchronisation, the
-- toolkit, the host's stepping, the I/O) is loaded by the first read of
-- one of its fields, which then holds it like any other field: a script
-- that uses none of it starts in half the time (issue 14).

local core = require "weft.core"
local S = require "weft.sched"
local ctx = require "weft.ctx"
local chan = require "weft.chan"
local errors = require "weft.errors"
-- Not lazy: it starts the count of jobs and I/O in flight (R.nwork) that
-- the I/O modules keep and virtual time reads; loading it later would
-- zero a count in use.
local work = require "weft.work"

local R = S.R
local type, select, unpack, rawget, rawset = type, select, unpack, rawget,
  rawset

S.install_coroutine_relay()

local weft = {
  _VERSION = core.version,

  -- tasks and time
  go = S.go,
  spawn = S.spawn,
  current = S.current,
  yield = S.yield,
  sleep = S.sleep,
  now = S.now,
  virtual_time = S.virtual_time,
  tasks = S.tasks,
  dump = S.dump_text,

  -- contexts
  background = ctx.background,
  context = ctx.context,
  with_cancel = ctx.with_cancel,
  with_timeout = ctx.with_timeout,
  with_deadline = ctx.with_deadline,
  with_value = ctx.with_value,
  scope = ctx.scope,

  -- channels
  chan = chan.chan,
  after = chan.after,
  ticker = chan.ticker,

  -- CPU work on the worker threads
  work = work.work,
  work_module = work.work_module,
  workers = work.workers,

  -- errors
  error = errors.error,
  errors = {
    new = errors.new,
    is = errors.is,
    root = errors.root,
    is_error = errors.is_error,
    brief = errors.brief,
    record = errors.record,
  },
}

-- weft.run(fn, ...) -> fn's results | nil, err: run fn as a top-level task
-- and drive the loop until it and every task it started have finished. For
-- plain Lua code that is not inside a runtime yet (`require "weft"` from a
-- stock luajit); inside a task, use weft.go and task:join.
function weft.run(fn, ...)
  if R.cur then
    error("weft.run: already inside a task (use weft.go and task:join)", 2)
  end
  if type(fn) ~= "function" then S.typeerror(1, "run", "function", fn) end
  local t
  local opts = ...
  if select("#", ...) == 1 and type(opts) == "table" and opts.clock then
    -- weft.run(fn, {clock = "virtual" | "real", args = {...}})
    if opts.clock ~= "virtual" and opts.clock ~= "real" then
      S.argerror(2, "run", "field 'clock': \"virtual\" or \"real\" expected")
    end
    local args = opts.args or {}
    R.virtual_next = opts.clock == "virtual"
    t = S.spawn_root(fn, "main", unpack(args, 1, args.n or #args))
  else
    t = S.spawn_root(fn, "main", ...)
  end
  local status, msg = core.drive()
  S.take_failures()
  if status == "deadlock" then
    -- Unlike the command, which exits, a host goes on: cancel the blocked
    -- tasks so they can clean up, and forget any that block again.
    local err = errors.new("deadlock", msg)
    S.cancel_root(err)
    if core.drive() == "deadlock" then S.abandon() end
    S.take_failures()
    return nil, err
  end
  return S.results(t)
end


--[[ Fields loaded on first use ]]

-- Field name -> the function that loads it, with the other fields of its
-- module, into weft. A loader sets no field the program has set first,
-- and its names are dropped once it has run: each field is then a plain
-- one, which the program may change or clear, as before.
local loaders = {}

-- need(mod) -> require(mod), but a module whose loading failed (weft's
-- runtime was freed under a host's state: weft_free) fails the same way
-- the next time too, rather than with Lua's "loop or previous error".
local function need(mod)
  local ok, m = pcall(require, mod)
  if ok then return m end
  -- require leaves its marker (a light userdata, which LuaJIT's type
  -- calls a number) on every module whose loading the error cut short:
  -- this one and those it required. weft's modules are tables, functions
  -- or true.
  local loaded = package.loaded
  for k, v in pairs(loaded) do
    local ty = type(v)
    if ty ~= "table" and ty ~= "function" and v ~= true and
        k:match("^weft%.") then
      loaded[k] = nil
    end
  end
  error(m, 0)
end

local function lazy(names, fill)
  local function load(t)
    local vals = fill()
    for i = 1, #names do
      local k = names[i]
      loaders[k] = nil
      if rawget(t, k) == nil then rawset(t, k, vals[k]) end
    end
  end
  for i = 1, #names do loaders[names[i]] = load end
end

-- These fields of module mod, under the same names.
local function fields(mod, ...)
  local names = { ... }
  lazy(names, function() return need(mod) end)
end

-- The module mod itself, as field name.
local function whole(name, mod)
  lazy({ name }, function() return { [name] = need(mod) } end)
end

-- A table of these fields of module mod, as field name.
local function part(name, mod, ...)
  local keys = { ... }
  lazy({ name }, function()
    local m, sub = need(mod), {}
    for i = 1, #keys do sub[keys[i]] = m[keys[i]] end
    return { [name] = sub }
  end)
end

-- channels
fields("weft.select", "select")

-- synchronisation and structure
fields("weft.sync", "mutex", "semaphore", "once", "fence", "locked")
fields("weft.group", "group", "limiter", "parallel", "concurrently", "jobs")
fields("weft.retry", "retry", "retry_call")
part("pipe", "weft.pipe", "generator", "take", "or_done", "tee", "bridge",
  "merge", "first_done")

-- concurrency at scale
part("rate", "weft.rate", "limiter", "multi", "every", "per", "inf")
fields("weft.heartbeat", "heartbeat")
fields("weft.steward", "steward")
fields("weft.replicate", "replicate")

-- stepping from a host's own loop
fields("weft.host", "start", "step", "timeout", "pollfd", "shutdown",
  "on_error")

-- I/O
whole("fs", "weft.fs")
fields("weft.net", "tcp", "udp", "dns")
whole("process", "weft.process")
whole("signal", "weft.signal")
fields("weft.stdio", "stdin", "stdout", "stderr")

local function index(t, k)
  local load = loaders[k]
  if load == nil then return nil end
  load(t)
  return rawget(t, k)
end

-- Load every field not loaded yet: for the REPL, whose completion and
-- pairs(weft) should see them all.
local function load_all(t)
  local names = {}
  for k in pairs(loaders) do names[#names + 1] = k end
  for i = 1, #names do index(t, names[i]) end
end

setmetatable(weft, { __index = index, load_all = load_all })

return weft
