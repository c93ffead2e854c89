-- weft: the public Lua surface. Everything here is re-exported from the
-- modules that implement it; see docs/api.md for the reference.

local core = require "weft.core"
local S = require "weft.sched"
local ctx = require "weft.ctx"
local chan = require "weft.chan"
local sel = require "weft.select"
local errors = require "weft.errors"
local sync = require "weft.sync"
local group = require "weft.group"
local retry = require "weft.retry"
local pipe = require "weft.pipe"
local rate = require "weft.rate"
local heartbeat = require "weft.heartbeat"
local steward = require "weft.steward"
local replicate = require "weft.replicate"
local work = require "weft.work"
local fs = require "weft.fs"
local host = require "weft.host"
local net = require "weft.net"
local process = require "weft.process"
local signal = require "weft.signal"
local stdio = require "weft.stdio"

local R = S.R
local type, select, unpack = type, select, unpack

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
  select = sel.select,

  -- synchronisation and structure
  mutex = sync.mutex,
  semaphore = sync.semaphore,
  once = sync.once,
  fence = sync.fence,
  locked = sync.locked,
  group = group.group,
  limiter = group.limiter,
  parallel = group.parallel,
  concurrently = group.concurrently,
  jobs = group.jobs,
  retry = retry.retry,
  retry_call = retry.retry_call,
  pipe = {
    generator = pipe.generator,
    take = pipe.take,
    or_done = pipe.or_done,
    tee = pipe.tee,
    bridge = pipe.bridge,
    merge = pipe.merge,
    first_done = pipe.first_done,
  },

  -- concurrency at scale
  rate = {
    limiter = rate.limiter,
    multi = rate.multi,
    every = rate.every,
    per = rate.per,
    inf = rate.inf,
  },
  heartbeat = heartbeat.heartbeat,
  steward = steward.steward,
  replicate = replicate.replicate,

  -- CPU work on the worker threads
  work = work.work,
  work_module = work.work_module,
  workers = work.workers,

  -- stepping from a host's own loop
  start = host.start,
  step = host.step,
  timeout = host.timeout,
  pollfd = host.pollfd,
  shutdown = host.shutdown,
  on_error = host.on_error,

  -- I/O
  fs = fs,
  tcp = net.tcp,
  udp = net.udp,
  dns = net.dns,
  process = process,
  signal = signal,
  stdin = stdio.stdin,
  stdout = stdio.stdout,
  stderr = stdio.stderr,

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

return weft
