-- weft.work: CPU work on the runtime's worker threads (runtime/pool.c).
--
-- weft.work(fn, ...) copies fn (as bytecode, with its upvalues) and its
-- arguments to a worker's own Lua state (runtime/copy.c), parks the calling
-- task and returns fn's results when the worker is done; every other task
-- runs meanwhile. The task waits like any other: cancelling its context
-- drops a queued job, or asks a running one to stop and discards its
-- result, and the call returns (nil, err) at once.

local S = require "weft.sched"
local errors = require "weft.errors"
local pool = require "weft.pool"

local R = S.R
local T_CTX, T_WAIT = S.T_CTX, S.T_WAIT
local block, park, wake = S.block, S.park, S.wake
local type, select, unpack, pcall, format, tostring = type, select, unpack,
  pcall, string.format, tostring
local getinfo = debug.getinfo

local M = {}

-- What a task waiting on the pool parks on (its T_WAIT): the job's handle
-- and name. The scheduler calls JobMT.unpark when the wait is cancelled.
local JobMT = { __name = "weft.job" }

-- The task waiting on each job in flight, by the job's handle.
local waiting = {}
R.nwork = 0

local DONE, FAILED = {}, {}

function JobMT.unpark(w)
  if waiting[w.job] then
    waiting[w.job] = nil
    R.nwork = R.nwork - 1
    pool.cancel(w.job)
  end
end

function JobMT.describe(w)
  return "work " .. w.name
end

-- deliver(job, ok, ...) -> true if there was a job: wake its task with
-- the results, or with a weft error (kind "work") carrying the worker's
-- message and traceback.
local function deliver(job, ok, ...)
  if job == nil then return false end
  local t = waiting[job]
  if not t then return true end
  waiting[job] = nil
  R.nwork = R.nwork - 1
  local w = t[T_WAIT]
  if ok then
    wake(t, DONE, { n = select("#", ...), ... })
  else
    local msg, tb = ...
    local e = errors.new("work", format("job %s failed: %s", w.name,
      tostring(msg)))
    e.job = w.name
    e.traceback = type(tb) == "string" and
      tb:gsub("^stack traceback:", "stack traceback (worker):") or nil
    wake(t, FAILED, e)
  end
  return true
end

-- Called by the scheduler's tick when the pool says jobs are done.
function R.work_collect()
  while deliver(pool.take()) do end
end

local function fn_name(fn)
  local info = getinfo(fn, "S")
  return format("%s:%d", info.short_src, info.linedefined)
end

-- await(t, job, name) -> results | nil, err
local function await(t, job, name)
  local w = setmetatable({ job = job, name = name }, JobMT)
  waiting[job] = t
  R.nwork = R.nwork + 1
  park(t, w, t[T_CTX])
  local a, b = block(t, "weft.work")
  if a == DONE then
    if b.n == 0 then return true end -- as task:join: success says so
    return unpack(b, 1, b.n)
  end
  return nil, b
end

-- submit(what, module, level, ...) -> job; raises (blaming the caller of
-- the API function) when a value cannot be copied.
local function submit(what, module, ...)
  local ok, job = pcall(pool.submit, what, module, ...)
  if not ok then error(job, 3) end
  return job
end

-- weft.work(fn, ...) -> fn's results | nil, err
function M.work(fn, ...)
  local t = S.cur("work")
  if type(fn) ~= "function" then S.typeerror(1, "work", "function", fn) end
  local n = t[T_CTX].node
  if n and n.cerr then return S.refuse(t, n) end
  S.headroom() -- before the job starts: see weft.sched
  return await(t, submit("weft.work", false, fn, ...), fn_name(fn))
end

-- weft.work_module(mod, func, ...) -> mod[func](...)'s results | nil, err:
-- the module is required in the worker (once per worker).
function M.work_module(mod, func, ...)
  local t = S.cur("work_module")
  if type(mod) ~= "string" then
    S.typeerror(1, "work_module", "string", mod)
  end
  if type(func) ~= "string" then
    S.typeerror(2, "work_module", "string", func)
  end
  local n = t[T_CTX].node
  if n and n.cerr then return S.refuse(t, n) end
  S.headroom()
  return await(t, submit("weft.work_module", true, mod, func, ...),
    mod .. "." .. func)
end

-- weft.workers() -> how many jobs may run at once (the pool's size).
function M.workers()
  return pool.size()
end

return M
