-- weft.group: errgroups, limiters, parallel batches, concurrently, jobs.
--
-- These start tasks for the caller and know when they stop (storj's
-- "Production Ready Go Concurrency"). The tasks are ordinary weft tasks,
-- children of the task that starts them (background jobs: of the task that
-- made the jobs set), so structured lifetime holds; a group or a jobs set
-- takes its tasks' errors (spawn_hooked) and hands them to whoever waits.

local S = require "weft.sched"
local sync = require "weft.sync"
local ctxmod = require "weft.ctx"
local errors = require "weft.errors"

local wq_new, wq_pop, wake, wait_on = S.wq_new, S.wq_pop, S.wake, S.wait_on
local type, getmetatable, setmetatable, format = type, getmetatable,
  setmetatable, string.format
local select, math_min = select, math.min
local typeerror, argerror = S.typeerror, S.argerror
local checkmt, CtxMT = S.checkmt, S.CtxMT

local M = {}

-- A count of running tasks that others can wait to reach zero.
local function counter(what)
  local c = { n = 0 }
  c.q = wq_new(c, "wait")
  c.q.what = what
  return c
end

local function counter_done(c)
  c.n = c.n - 1
  if c.n == 0 then
    while true do
      local t = wq_pop(c.q)
      if not t then break end
      wake(t, true)
    end
  end
end

-- counter_wait(c, t, ctx, fname) -> true | nil, err: t is the running task
-- (S.cur) and ctx nil or a context, both checked by the caller: the checks
-- of S.cur and S.wait_ctx would blame this function's caller, inside weft.
-- Woken at zero, it waits again if the count went up meanwhile: with a
-- limit, a go blocked on the slot takes it from the last task to end and
-- starts its task before the waiter runs, and a wait that returned then
-- ended the round under that task, whose error the next round wiped.
local function counter_wait(c, t, ctx, fname)
  if c.n == 0 then
    -- Nothing to wait for, but a wait in a cancelled scope still fails.
    local n = S.wait_ctx(t, ctx, 1, fname).node
    if n and n.cerr then return S.refuse(t, n) end
    return true
  end
  while true do
    local ok, err = wait_on(c.q, nil, ctx, fname)
    if not ok then return nil, err end
    if c.n == 0 then return true end
  end
end

-- optctx(ctx, argn, fname) -> ctx when it is nil or a context; else it
-- raises, blaming the caller of the API function that called it.
local function optctx(ctx, argn, fname)
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    typeerror(argn, fname, "weft.ctx", ctx, 3)
  end
  return ctx
end

-- Collect a failure: the first is the result, the later ones its others.
-- Returns true for the first.
local function collect(holder, err)
  if holder.first == nil then
    holder.first = errors.is_error(err) and err or errors.failed(err)
    return true
  end
  local o = holder.others
  if not o then
    o = {}
    holder.others = o
  end
  o[#o + 1] = err
  return false
end

-- result(holder) -> nil | err: the first error, the later ones on its
-- `others` (on a copy: see errors.with_others).
local function result(holder)
  local first, others = holder.first, holder.others
  if first == nil or others == nil then return first end
  return errors.with_others(first, others)
end

local function limit_of(limit, argn, fname)
  if limit == nil or (type(limit) == "number" and limit < 0) then
    return nil
  end
  if type(limit) ~= "number" or limit % 1 ~= 0 then
    argerror(argn, fname, "field 'limit': integer expected, got " ..
      (type(limit) == "number" and tostring(limit) or type(limit)), 3)
  end
  return limit
end

--[[ Group ]]
-- x/sync/errgroup: wait for all, first error wins, the group's context is
-- cancelled on the first error and when wait returns.
--
-- A group is reusable, as Go's zero errgroup.Group is: the tasks started
-- up to a wait that returns are a round. That wait cancels the round's
-- context, as Go's does; the next go starts a new round, with a new context
-- derived from the same parent and no errors yet.

local Group = {}
local GroupMT = { __index = Group, __name = "weft.group" }

-- weft.group{ctx=, limit=} -> group
function M.group(opts)
  if opts ~= nil and type(opts) ~= "table" then
    typeerror(1, "group", "table", opts)
  end
  opts = opts or {}
  local parent = opts.ctx
  if parent ~= nil then
    checkmt(parent, CtxMT, 1, "group")
  else
    parent = ctxmod.context()
  end
  local limit = limit_of(opts.limit, 1, "group")
  local ctx, cancel = ctxmod.with_cancel(parent)
  local g = setmetatable({ parent = parent, ctx = ctx, cancel = cancel,
    ended = false, sem = limit and sync.semaphore(limit),
    live = counter("wait of weft.group") }, GroupMT)
  g.on_done = function(_, err)
    if g.sem then g.sem:release() end
    if err ~= nil and collect(g, err) then g.cancel(g.first) end
    counter_done(g.live)
    return true -- the group has the error
  end
  return g
end

-- start(g, t, fn, ...) -> true: run fn(ctx, ...) in a task of g, a child
-- of t (the running task). After a wait returned, it begins a new round.
local function start(g, t, fn, ...)
  if g.ended then
    g.ctx, g.cancel = ctxmod.with_cancel(g.parent)
    g.first, g.others, g.ended = nil, nil, false
  end
  local n = select("#", ...)
  -- spawn's args: the context alone is passed as itself (see body)
  local args = n == 0 and g.ctx or { n = n + 1, g.ctx, ... }
  g.live.n = g.live.n + 1
  S.spawn_hooked(t, fn, args, g.ctx, g.on_done)
  return true
end

-- group:go(fn, ...) -> true | nil, err: run fn(ctx, ...) in a task of the
-- group, ctx being the group's context. With a limit, wait for a slot first
-- (under the running task's context: nil, err if it is cancelled). fn fails
-- by returning nil, err or by raising (a bug); the group takes the error.
function Group:go(fn, ...)
  checkmt(self, GroupMT, 1, "go")
  if type(fn) ~= "function" then typeerror(1, "go", "function", fn) end
  local t = S.cur("go")
  if self.sem then
    local ok, err = self.sem:acquire()
    if not ok then return nil, err end
  end
  return start(self, t, fn, ...)
end

-- group:try_go(fn, ...) -> true if a task was started, false when the limit
-- is reached
function Group:try_go(fn, ...)
  checkmt(self, GroupMT, 1, "try_go")
  if type(fn) ~= "function" then typeerror(1, "try_go", "function", fn) end
  local t = S.cur("try_go")
  if self.sem and not self.sem:try_acquire() then return false end
  return start(self, t, fn, ...)
end

-- group:wait([ctx]) -> nil | err: wait for every task of the group, then
-- cancel its context and end the round; returns the first error, later
-- ones in err.others. If ctx is cancelled first, returns that error (the
-- tasks go on, and so does the round).
function Group:wait(ctx)
  checkmt(self, GroupMT, 1, "wait")
  local ok, err = counter_wait(self.live, S.cur("wait"),
    optctx(ctx, 1, "wait"), "wait")
  if not ok then return err end
  self.cancel()
  self.ended = true
  return result(self)
end

-- group:context() -> the context of the group's current round
function Group:context()
  checkmt(self, GroupMT, 1, "context")
  return self.ctx
end

function GroupMT.__tostring(g)
  return format("weft.group: %d running%s", g.live.n,
    g.first and ", failed" or "")
end

--[[ Limiter ]]
-- storj's sync2.Limiter: at most n tasks at a time; close waits for all
-- and refuses new work.

local Limiter = {}
local LimiterMT = { __index = Limiter, __name = "weft.limiter" }

-- weft.limiter(n) -> limiter
function M.limiter(n)
  if type(n) ~= "number" or n < 1 or n % 1 ~= 0 then
    argerror(1, "limiter", "positive integer expected, got " ..
      (type(n) == "number" and tostring(n) or type(n)))
  end
  local lim = setmetatable({ sem = sync.semaphore(n), closed = false,
    live = counter("wait of weft.limiter") }, LimiterMT)
  lim.on_done = function()
    lim.sem:release()
    counter_done(lim.live)
    return false -- its errors go where a task's go
  end
  return lim
end

-- limiter:go(ctx, fn) -> true | false: run fn(ctx) in a task once a slot is
-- free; false if ctx is done first, or the limiter is closed.
function Limiter:go(ctx, fn)
  checkmt(self, LimiterMT, 1, "go")
  checkmt(ctx, CtxMT, 1, "go")
  if type(fn) ~= "function" then typeerror(2, "go", "function", fn) end
  local t = S.cur("go")
  if self.closed then return false end
  if not self.sem:acquire(ctx) then return false end
  if self.closed then
    self.sem:release()
    return false
  end
  self.live.n = self.live.n + 1
  S.spawn_hooked(t, fn, ctx, ctx, self.on_done)
  return true
end

-- limiter:close([ctx]) -> true | nil, err: refuse new work and wait for the
-- running tasks.
function Limiter:close(ctx)
  checkmt(self, LimiterMT, 1, "close")
  local t = S.cur("close")
  optctx(ctx, 1, "close")
  self.closed = true
  return counter_wait(self.live, t, ctx, "close")
end

function LimiterMT.__tostring(l)
  return format("weft.limiter: %d running%s", l.live.n,
    l.closed and ", closed" or "")
end

--[[ Parallel ]]
-- storj's sync2 Parallel: cover 1..n in batches, a few at a time.

local Parallel = {}
local ParallelMT = { __index = Parallel, __name = "weft.parallel" }

local function positive(v, field)
  if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then
    argerror(1, "parallel", format("field '%s': positive integer expected, " ..
      "got %s", field, type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

-- weft.parallel{concurrency=, batch_size=} -> parallel
function M.parallel(opts)
  if type(opts) ~= "table" then typeerror(1, "parallel", "table", opts) end
  return setmetatable({
    concurrency = positive(opts.concurrency, "concurrency"),
    batch_size = positive(opts.batch_size or 1, "batch_size"),
  }, ParallelMT)
end

-- parallel:process(ctx, n, fn) -> nil | err: call fn(lo, hi, ctx) for
-- batches covering 1..n exactly once (bounds inclusive, as `for i = lo,
-- hi`), at most `concurrency` at a time. Returns the first error of fn, or
-- the context's when it is cancelled (no new batch starts then).
function Parallel:process(ctx, n, fn)
  checkmt(self, ParallelMT, 1, "process")
  checkmt(ctx, CtxMT, 1, "process")
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    argerror(2, "process", "non-negative integer expected, got " ..
      (type(n) == "number" and tostring(n) or type(n)))
  end
  if type(fn) ~= "function" then typeerror(3, "process", "function", fn) end
  local me = S.cur("process")
  local g = M.group { ctx = ctx, limit = self.concurrency }
  local gctx = g.ctx
  local batch = self.batch_size
  for lo = 1, n, batch do
    -- Wait for a slot under the group's context: once it is cancelled (ctx
    -- is, or a batch failed) no new batch starts.
    if not g.sem:acquire(gctx) then break end
    local hi = math_min(lo + batch - 1, n)
    start(g, me, function(c) return fn(lo, hi, c) end)
  end
  -- The batches started run to their end, whatever happens to the caller.
  local err = g:wait(S.background)
  if err then return err end
  return ctx:err()
end

--[[ Concurrently ]]

-- weft.concurrently(f1, f2, ...) -> nil | err: run each fi(ctx) in a task
-- of its own and wait for all; the first error, later ones in err.others.
-- The first failure cancels ctx for the others.
function M.concurrently(...)
  local n = select("#", ...)
  for i = 1, n do
    local f = select(i, ...)
    if type(f) ~= "function" then
      typeerror(i, "concurrently", "function", f)
    end
  end
  local g = M.group()
  for i = 1, n do g:go((select(i, ...))) end
  return g:wait(S.background) -- all finish, whatever happens to the caller
end

--[[ Jobs ]]
-- storj's sync2 Jobs: background work a request starts that must outlive
-- the request. The tasks are children of the task that made the jobs set
-- (a server's), not of the request, and run under the root context.

local Jobs = {}
local JobsMT = { __index = Jobs, __name = "weft.jobs" }

-- weft.jobs(root_ctx [, {limit=}]) -> jobs
function M.jobs(root, opts)
  checkmt(root, CtxMT, 1, "jobs")
  if opts ~= nil and type(opts) ~= "table" then
    typeerror(2, "jobs", "table", opts)
  end
  local limit = limit_of(opts and opts.limit, 2, "jobs")
  local j = setmetatable({ root = root, owner = S.cur("jobs"),
    sem = limit and sync.semaphore(limit),
    live = counter("wait of weft.jobs") }, JobsMT)
  j.on_done = function(_, err)
    if j.sem then j.sem:release() end
    if err ~= nil then collect(j, err) end
    counter_done(j.live)
    return true
  end
  return j
end

-- jobs:go(request_ctx, fn) -> true | false: run fn(root_ctx) in the
-- background. False (and nothing runs) when the request's or the root's
-- context is done, also while waiting for a slot under a limit.
function Jobs:go(req, fn)
  checkmt(self, JobsMT, 1, "go")
  checkmt(req, CtxMT, 1, "go")
  if type(fn) ~= "function" then typeerror(2, "go", "function", fn) end
  if req:err() or self.root:err() or self.owner:done() then return false end
  if self.sem then
    -- Wait for a slot until the request or the root is done.
    local either, cancel = ctxmod.with_cancel(req)
    local stop = S.after_cancel(self.root, cancel)
    local ok = self.sem:acquire(either)
    stop()
    cancel()
    if not ok then return false end
    if self.root:err() then
      self.sem:release()
      return false
    end
  end
  -- The owner may have finished while this waited for a slot.
  if self.owner:done() then
    if self.sem then self.sem:release() end
    return false
  end
  self.live.n = self.live.n + 1
  S.spawn_hooked(self.owner, fn, self.root, self.root, self.on_done)
  return true
end

-- jobs:wait([ctx]) -> nil | err: wait for every job; the first error, later
-- ones in err.others.
function Jobs:wait(ctx)
  checkmt(self, JobsMT, 1, "wait")
  local ok, err = counter_wait(self.live, S.cur("wait"),
    optctx(ctx, 1, "wait"), "wait")
  if not ok then return err end
  return result(self)
end

function JobsMT.__tostring(j)
  return format("weft.jobs: %d running", j.live.n)
end

return M
