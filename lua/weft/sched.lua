-- weft.sched: tasks, the run queue, parking and waking, timers and cancel
-- nodes.
--
-- This is the hot path, so it is written for LuaJIT's interpreter as much as
-- for its compiler: state that every switch touches lives in Lua tables
-- (measured: a table access costs ~4 ns interpreted, a cdata field ~35 ns and
-- an FFI call ~57 ns), and C is reached through FFI only for the clock and
-- the timer heap, which the libuv side owns (see docs/internals.md).
--
-- A task is a table with its state in nine array slots (see T_* below),
-- allocated at its exact size, so that a million sleeping tasks cost little
-- more than their coroutines; what few tasks need (a name, results, a scope
-- node, children) lives in an extension table made on demand. A blocked
-- task is "parked": T_WAIT says on what, and whoever satisfies the wait calls
-- wake(t, a, b), which puts it on the run queue; the trampoline (tick) later
-- resumes its coroutine with (a, b). Wait queues hold (task, seq) entries;
-- each wake bumps the task's T_SEQ, so entries of a wait that ended (the
-- losing cases of a select, a cancelled receive) become dead in O(1) and are
-- skipped or compacted away later.

local ffi = require "ffi"
local core = require "weft.core"
local errors = require "weft.errors"
local vclock = require "weft.vclock"

local resume, yield, create = coroutine.resume, coroutine.yield,
  coroutine.create
local type, select, unpack, error, pairs = type, select, unpack, error,
  pairs
local setmetatable, getmetatable, format, rawget = setmetatable, getmetatable,
  string.format, rawget
local getinfo, getlocal = debug.getinfo, debug.getlocal
local band = bit.band
local tnew = require "table.new"

-- A state may have had a runtime before (weft_attach after weft_free), and
-- LuaJIT's FFI cannot forget a declaration: declare it only when missing,
-- which a mark in the registry says (asking ffi.typeof raises, and the
-- raise was 3% of start-up).
local registry = debug.getregistry()
if not registry["weft.api declared"] then
  registry["weft.api declared"] = true
  ffi.cdef [[
typedef struct weft_runtime weft_runtime;
struct weft__api {
  double (*now)(weft_runtime *rt);
  uint32_t (*timer_add)(weft_runtime *rt, double deadline);
  void (*timer_del)(weft_runtime *rt, uint32_t id);
  uint32_t (*timer_pop)(weft_runtime *rt, double now);
  double (*timer_deadline)(weft_runtime *rt, uint32_t id);
  uint32_t (*events)(weft_runtime *rt);
  double (*wall)(weft_runtime *rt);
  int (*yieldable)(void *co);
};
]]
end

local api = ffi.cast("const struct weft__api *", core.api)
local rt = ffi.cast("weft_runtime *", core.rt)
local c_now, c_timer_add, c_timer_del, c_timer_pop = api.now, api.timer_add,
  api.timer_del, api.timer_pop
local c_events, c_wall, c_yieldable = api.events, api.wall, api.yieldable

-- Event bits set by the C side (runtime.c, WEFT__EV_*).
local EV_INTERRUPT, EV_QUIT, EV_POST, EV_WORK = 1, 2, 4, 8

local S = {}

-- R is the runtime's Lua-side state shared by the weft modules: the running
-- task (R.cur) and the late-bound hooks of modules loaded after this one.
local R = { cur = nil, nwork = 0 } -- nwork: tasks waiting on the pool
S.R = R

-- Task slots. The extension table (T_X) holds: name, node (the task's own
-- cancel scope), nlive (children not finished), returned (its function has
-- returned), res/err/raised/child_err/cothers (its outcome), joinq, held
-- (children's errors waiting for a joiner), wctx (the explicit context of
-- the current wait).
local T_CO = 1      -- function before the first run, then its coroutine,
                    -- then the function again once it has returned
local T_CTX = 2     -- current context; false once the task has finished
local T_PARENT = 3  -- parent task (nil for a top-level task)
local T_WAIT = 4    -- what the task is parked on, or nil
local T_SEQ = 5     -- wait sequence number; bumped by every wake
local T_X = 6       -- extension table, or nil
local T_ID = 7      -- task id, in creation order
local T_MPREV = 8   -- neighbours in the member list of its context's node
local T_MNEXT = 9
local T_BORN = 10   -- weft.now() when it was spawned
local T_HOOK = 0    -- on_done of a task a group, limiter or jobs set started
                    -- (see spawn_hooked), or false: a slot rather than a
                    -- field of T_X, which would cost two more objects
                    -- per task for the collector to trace. Slot 0 is in
                    -- LuaJIT's array part, which table.new(10, 0) makes 11
                    -- long (0..10): 152 bytes a task instead of 160
S.T_CO, S.T_CTX, S.T_PARENT, S.T_WAIT, S.T_SEQ = T_CO, T_CTX, T_PARENT,
  T_WAIT, T_SEQ
S.T_X, S.T_ID = T_X, T_ID

-- Sentinels a task's coroutine yields to the trampoline. They are private, so
-- a yield from user code (coroutine.yield in a task) cannot be mistaken for
-- one of ours.
local WAIT, YIELD, FREE = {}, {}, {}
S.WAIT = WAIT
local FOREVER = {}  -- T_WAIT of a task parked with no waker but cancellation

local Task = {}
local TaskMT = { __index = Task, __name = "weft.task" }
S.Task, S.TaskMT = Task, TaskMT

local Ctx = {}
local CtxMT = { __index = Ctx, __name = "weft.ctx" }
S.Ctx, S.CtxMT = Ctx, CtxMT

local function ext(t)
  local x = t[T_X]
  if not x then
    x = {}
    t[T_X] = x
  end
  return x
end

local function argerror(n, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg),
    (level or 2) + 1)
end
S.argerror = argerror

-- tname(v) -> type(v), or "nan" for NaN, which is a number but never
-- the number expected.
local function tname(v)
  if v ~= v then return "nan" end
  return type(v)
end
S.tname = tname

local function typeerror(n, fname, expected, v, level)
  argerror(n, fname, format("%s expected, got %s", expected, tname(v)),
    (level or 2) + 1)
end
S.typeerror = typeerror

-- checkmt(v, mt, argn, fname) -> v: raise a "bad argument" error naming
-- mt.__name unless v has metatable mt; it blames the API function's caller.
local function checkmt(v, mt, argn, fname)
  if getmetatable(v) ~= mt then typeerror(argn, fname, mt.__name, v, 3) end
  return v
end
S.checkmt = checkmt

-- Our own frames are noise in a user's traceback.
local function internal(src)
  return src:find("weft/[%w_]+%.lua$") ~= nil or src == "=[C]"
end

-- user_where(level) -> where, ulevel: "file:line: " of the first frame
-- from `level` up (1 is user_where's caller) that is neither weft's nor C's
-- ("" if it has no line), and that frame's level, counted as the caller
-- counts.
local function user_where(level)
  level = level + 1 -- counted from here
  while true do
    local info = getinfo(level, "Sl")
    if not info then return "", level - 1 end
    if not internal(info.source) and info.what ~= "C" then
      local where = info.currentline > 0 and
        format("%s:%d: ", info.short_src, info.currentline) or ""
      return where, level - 1
    end
    level = level + 1
  end
end

--[[ Run queue ]]
-- Two arrays: wakes append to `fill`; tick runs `run` from run_i to run_n,
-- then swaps (or takes a lone task from `fill`: see next_ready). Indices
-- restart at 1 on every swap, so both stay dense arrays.
local fill_t, fill_a, fill_b, fill_n = {}, {}, {}, 0
local run_t, run_a, run_b, run_i, run_n = {}, {}, {}, 1, 0

local function push(t, a, b)
  local n = fill_n + 1
  fill_n = n
  fill_t[n] = t
  -- A nil is not stored: the slot is nil already (next_ready clears what
  -- it takes), and storing nil under a key a table lacks adds the key, in
  -- LuaJIT's interpreter and its traces alike. Wake values are mostly nil,
  -- so their arrays never grew an array part, and each push and each take
  -- inserted into a hash part that kept being rehashed (7% of spawn).
  if a ~= nil then fill_a[n] = a end
  if b ~= nil then fill_b[n] = b end
end

-- wake(t, a, b): end t's wait; its yield(WAIT) returns (a, b). The waker,
-- not the woken task, cleans up after the wait, so blocking calls can end
-- with a tail call `return yield(WAIT)` and leave no frame of theirs on the
-- task's stack. (A coroutine starts with 40 stack slots and a C call needs
-- 20 free; every frame kept while parked can cost a stack twice the size,
-- measured at +350 bytes per task.)
local function wake(t, a, b)
  local x = t[T_X]
  if x then
    local c = x.wctx
    if c then
      x.wctx = nil
      local n = c.node
      if n then n.blocked[t] = nil end
    end
  end
  t[T_WAIT] = false
  t[T_SEQ] = t[T_SEQ] + 1
  local n = fill_n + 1 -- push, written out: this runs on every wake
  fill_n = n
  fill_t[n] = t
  if a ~= nil then fill_a[n] = a end
  if b ~= nil then fill_b[n] = b end
end
S.wake = wake

--[[ Timers ]]
-- Real timers live in C's heap (timer.c) under positive ids; timers of a
-- virtual clock (weft.vclock) under negative ids. Lua keeps each id's
-- target: a task (a sleep ends), a context node (its deadline passes) or a
-- channel state (weft.after delivers).
local tgt = {}
local ntimers = 0  -- real timers armed
local deadline_fire

-- The virtual clock of the running task's bubble, or nil (real time).
local function cur_clock()
  local t = R.cur
  local x = t and t[T_X]
  return x and x.clock
end

-- now() -> the running task's time: its bubble's virtual clock, or the
-- runtime's monotonic clock.
local function now()
  local c = cur_clock()
  if c then return c.now end
  return c_now(rt)
end
S.now = now
S.cur_clock = cur_clock

-- timer_start(deadline, target [, clock]) -> id, on the given clock (false:
-- real time), else the running task's.
local function timer_start(deadline, target, clock)
  local c = clock
  if c == nil then c = cur_clock() end
  if c then
    local id = -vclock.add(c, deadline)
    tgt[id] = target
    return id
  end
  local id = c_timer_add(rt, deadline)
  if id == 0 then
    error("weft: cannot start a timer (out of memory, or the runtime was " ..
      "freed by weft_free)", 2)
  end
  tgt[id] = target
  ntimers = ntimers + 1
  return id
end
S.timer_start = timer_start

-- timer_stop(id, target): stop timer id if it still belongs to target (an
-- id is reused once its timer fired or its bubble ended: the stale holder
-- of an old id must not stop someone else's timer).
local function timer_stop(id, target)
  if tgt[id] ~= target then return end
  if id < 0 then
    vclock.del(-id)
    tgt[id] = nil
    return
  end
  c_timer_del(rt, id)
  if tgt[id] then
    tgt[id] = nil
    ntimers = ntimers - 1
  end
end
S.timer_stop = timer_stop

local function timer_deadline(id)
  if id < 0 then return vclock.deadline(-id) end
  return api.timer_deadline(rt, id)
end

-- fire(id, at): timer id is due; `at` is the time on its clock.
local function fire(id, at)
  local g = tgt[id]
  tgt[id] = nil
  local mt = getmetatable(g)
  if mt == TaskMT then
    wake(g, true)
  elseif mt == CtxMT then
    deadline_fire(g)
  else
    R.after_fire(g, at)
  end
end

local tick_time = 0 -- the real clock when the current tick began

-- fire_timers(limit [, deadline]) -> more: fire at most `limit` due
-- timers, earliest first, and stop at `deadline` (the runtime's clock) if
-- given; true if some may still be due (they fire, in order, next tick).
-- A host stepping the runtime once per frame holds its budget this way
-- even when thousands of timers come due at once.
local function fire_timers(limit, deadline)
  tick_time = c_now(rt)
  if ntimers == 0 then return false end
  local t = tick_time
  for n = 1, limit do
    if deadline and band(n, 7) == 0 and c_now(rt) >= deadline then
      return true
    end
    local id = c_timer_pop(rt, t)
    if id == 0 then return false end
    ntimers = ntimers - 1
    fire(id, t)
  end
  return true
end

-- Clocks of the bubbles alive, in creation order.
local clocks = {}

-- advance() -> true if some clock moved: every task is blocked, so each
-- virtual clock jumps to its next deadline and fires what is due then.
--
-- A clock moves only if some timer of it can wake a task: a ticker or a
-- weft.after that nobody waits on cannot, and with the bubble's tasks
-- blocked for ever it ran the clock for ever, at full CPU, with no
-- deadlock reported (Go's synctest lesson, SEMANTICS.md 9). Asking costs a
-- walk of the clock's timers, so it is asked only after IDLE_ADVANCES
-- moves in a row that woke nobody; until a move wakes a task again. Not
-- moving leaves the tick with nothing ready: the driver then reports the
-- bubble's deadlock (S.idle), or waits for I/O that may wake a task.
local IDLE_ADVANCES = 1000

-- can_wake(c) -> true if a timer of clock c can make a task ready: a
-- sleep, a deadline (conservatively), or a weft.after/weft.ticker channel
-- that a task waits to receive from.
local function can_wake(c)
  local keys, n = vclock.timers(c)
  for i = 1, n do
    local g = tgt[-keys[i]]
    local mt = getmetatable(g)
    if mt == TaskMT or mt == CtxMT or (g and R.after_waited(g)) then
      return true
    end
  end
  return false
end

local function advance()
  local moved = false
  for i = 1, #clocks do
    local c = clocks[i]
    local d = not c.stopped and vclock.next(c)
    if d and (c.idle < IDLE_ADVANCES or can_wake(c)) then
      local woke = fill_n
      if d > c.now then c.now = d end
      local k = vclock.pop(c)
      while k do
        fire(-k, c.now)
        k = vclock.pop(c)
      end
      c.idle = fill_n > woke and 0 or c.idle + 1
      moved = true
    end
  end
  return moved
end

--[[ Wait queues ]]
-- A queue is a table whose array part holds entries of four slots (task,
-- seq, case index, value) from q.h up to q.e; case 0 marks a plain send or
-- receive, a positive case a select. q.dead counts entries known to be dead.
-- A queue is told from the other things a task parks on by its key WQ
-- (a string, so that it is a constant of the constructor: see chan.new).
local WQ = "weft_waitq"
S.WQ = WQ

local function wq_new(owner, dir)
  local q = { h = 1, e = 1, dead = 0, owner = false, dir = false,
    weft_waitq = true }
  q.owner, q.dir = owner, dir
  return q
end
S.wq_new = wq_new

-- Move the live entries to the front, dropping dead ones. Returns the new end.
local function wq_compact(q)
  local j = 1
  for i = q.h, q.e - 1, 4 do
    local t, s, k, v = q[i], q[i + 1], q[i + 2], q[i + 3]
    q[i] = nil
    q[i + 3] = nil
    if t[T_SEQ] == s then
      q[j], q[j + 1], q[j + 2], q[j + 3] = t, s, k, v
      j = j + 4
    end
  end
  q.h, q.e, q.dead = 1, j, 0
  return j
end

local function wq_push(q, t, k, v)
  local e = q.e
  local dead, h = q.dead, q.h
  -- Compact when over half the entries are dead, or when the head has moved
  -- far: either keeps the array part dense and memory bounded by live waits.
  if (dead > 16 and dead * 8 > e - h) or (h > 1024 and h * 2 > e) then
    e = wq_compact(q)
  end
  q[e], q[e + 1], q[e + 2], q[e + 3] = t, t[T_SEQ], k, v
  q.e = e + 4
end
S.wq_push = wq_push

-- Drop dead entries at the head of q; returns the new head.
local function wq_skip(q)
  local h, e = q.h, q.e
  while h < e and q[h][T_SEQ] ~= q[h + 1] do
    q[h] = nil
    q[h + 3] = nil
    h = h + 4
    local d = q.dead
    if d > 0 then q.dead = d - 1 end
  end
  if h == e then
    q.h, q.e, q.dead = 1, 1, 0
    return 1
  end
  q.h = h
  return h
end

-- wq_pop(q) -> t, k, v of the first live entry, removed; or nil. The usual
-- case, a live entry at the head, takes no loop, so that LuaJIT compiles it
-- into the caller's trace (a loop there aborts the trace).
local function wq_pop(q)
  local h = q.h
  if h >= q.e then return nil end
  local t = q[h]
  if t[T_SEQ] ~= q[h + 1] then
    h = wq_skip(q)
    if h >= q.e then return nil end
    t = q[h]
  end
  local k, v = q[h + 2], q[h + 3]
  q[h] = nil
  q[h + 3] = nil
  h = h + 4
  if h == q.e then
    q.h, q.e, q.dead = 1, 1, 0
  else
    q.h = h
  end
  return t, k, v
end
S.wq_pop = wq_pop

-- wq_ready(q) -> true if a live entry waits; drops dead ones at the head.
local function wq_ready(q)
  local h = q.h
  if h >= q.e then return false end
  if q[h][T_SEQ] == q[h + 1] then return true end
  return wq_skip(q) < q.e
end
S.wq_ready = wq_ready

-- wq_head(q) -> t, k, v of the first live entry, left in place; or nil.
local function wq_head(q)
  if not wq_ready(q) then return nil end
  local h = q.h
  return q[h], q[h + 2], q[h + 3]
end
S.wq_head = wq_head

-- wq_count(q) -> number of live entries (for introspection only).
local function wq_count(q)
  local n = 0
  for i = q.h, q.e - 1, 4 do
    if q[i][T_SEQ] == q[i + 1] then n = n + 1 end
  end
  return n
end
S.wq_count = wq_count

--[[ Parking ]]

local unpark

-- park(t, w, ctx): make the running task t parked on w under ctx. The
-- caller has already checked ctx and queued t where a waker finds it, and
-- must then `return yield(WAIT)` (or use its results), which returns what
-- the waker passes. A task is always a member of its own context's node
-- (see set_ctx), where cancellation finds it; only a wait under another
-- context registers with that context's node.
--
-- A finalizer may run in any allocation (ext here, the caller's queue
-- entry or job record) and cancel ctx between the caller's check and the
-- registration: its cancel then found t not parked yet, and t would have
-- slept on under a cancelled context. So park checks again, once t is
-- where cancel finds it, and wakes t as cancel would have. (In compiled
-- code the check folds into the caller's: finalizers run only from the
-- interpreter.)
local function park(t, w, ctx)
  t[T_WAIT] = w
  local n = ctx.node
  if ctx ~= t[T_CTX] then
    ext(t).wctx = ctx
    if n then n.blocked[t] = true end
  end
  if n and n.cerr then
    unpark(t)
    wake(t, nil, n.cerr)
  end
end
S.park = park

-- unpark(t): take a parked t off whatever it waits on, so that it can be
-- woken by someone else (cancellation).
function unpark(t)
  local w = t[T_WAIT]
  if type(w) == "number" then
    timer_stop(w, t)
  else
    local mt = getmetatable(w)
    if rawget(w, WQ) then
      w.dead = w.dead + 1
    elseif mt and mt.unpark then -- a job on the worker pool (weft.work)
      mt.unpark(w)
    elseif w ~= FOREVER then
      R.select_unpark(w)
    end
  end
end
S.unpark = unpark

-- cancel_wait(t): drop t's registered wait without waking it: off every
-- queue and timer, its entries dead, nothing may resume it for that wait.
local function cancel_wait(t)
  unpark(t)
  t[T_WAIT] = false
  t[T_SEQ] = t[T_SEQ] + 1
  local x = t[T_X]
  local c = x and x.wctx
  if c then
    x.wctx = nil
    if c.node then c.node.blocked[t] = nil end
  end
end

-- The C functions that call Lua back, by what stands between a wait in
-- such a callback and the scheduler. pcall and xpcall are not among them:
-- LuaJIT yields across both (not across xpcall's error handler).
local CALLBACKS = {
  [table.sort] = "table.sort's comparator",
  [string.gsub] = "string.gsub's replacement function",
  [load] = "load's reader function",
  [require] = "a module's top level while require loads it",
  [dofile] = "dofile",
  [loadstring] = "loadstring",
}
local pcall_fn, xpcall_fn = pcall, xpcall

-- blame() -> where, culprit, finalizer: for a wait that could not yield,
-- the position of the user's call ("file:line: "), what stands in the way,
-- and whether that may be a finalizer (__gc), which must not raise (LuaJIT
-- 2.1 can crash when a finalizer raises under compiled code).
local function blame()
  local where = user_where(4) -- 1 blame, 2 nowait, 3 the C wait
  for l = 4, 300 do
    local info = getinfo(l, "Snf")
    if not info then break end
    if info.name == "__gc" and info.namewhat == "metamethod" then
      return where, "a __gc finalizer", true
    end
    local f = info.func
    if info.what == "C" and f ~= pcall_fn and f ~= xpcall_fn then
      local known = CALLBACKS[f]
      if known then return where, known, false end
      local outer = getinfo(l + 1, "f")
      if outer and outer.func == xpcall_fn then
        return where, "xpcall's error handler", false
      end
      return where, format("a function called by %s (a finalizer or a " ..
        "callback)", info.name and "'" .. info.name .. "'" or "C"), true
    end
  end
  return where, "a function called from C (a finalizer or a callback)", true
end

-- nowait(what) -> nil, err: the running task's wait could not yield (see
-- runtime/wait.c). Undo its registration, so that no waker hands a value
-- to a wait that is not there, and raise a clear error; in what may be a
-- finalizer, return (nil, err) instead.
local function nowait(what)
  local t = R.cur
  if t and t[T_WAIT] then cancel_wait(t) end
  local where, culprit, gc = blame()
  local msg = format("%s: cannot wait inside %s (a C function is on the " ..
    "stack, so the task cannot yield to the scheduler); wait outside it",
    what or "weft", culprit)
  if gc then return nil, errors.new("nowait", msg) end
  error(where .. msg, 0)
end

-- wait(WAIT, what) -> the waker's values: yield a parked task to the
-- trampoline; `what` names the blocking call for nowait.
local wait, thread_of = require("weft.wait")(nowait)
S.wait = wait
local block -- block(t, what): wait, or run others first (see the trampoline)
local bottom -- the task the trampoline resumed last

-- headroom(): every blocking call calls it before it registers its wait. A
-- function of 96 locals, its call makes room on the stack for all that
-- follows up to the yield: queueing, block, inline's frames (~70 slots,
-- with a C call's 20). A wait deep in a recursion thus fails with "stack
-- overflow" before anything is registered, rather than once it is (a
-- later send would hand its value to a wait that is not there) or in the
-- middle of inline.
local headroom = loadstring("local _" .. string.rep(", _", 95) .. "\n",
  "=weft headroom")
S.headroom = headroom

-- cur(fname) -> the running task; raises when not inside one.
local function cur(fname)
  local t = R.cur
  if not t then
    error(format("%s: not inside a task (start one with weft.run)", fname), 3)
  end
  return t
end
S.cur = cur

-- wait_ctx(t, ctx, argn, fname) -> the context a wait of t runs under: ctx
-- if given (checked), else the task's own.
local function wait_ctx(t, ctx, argn, fname)
  if ctx == nil then return t[T_CTX] end
  if getmetatable(ctx) ~= CtxMT then
    typeerror(argn, fname, "weft.ctx", ctx, 3)
  end
  return ctx
end
S.wait_ctx = wait_ctx

--[[ Cancel nodes ]]
-- A cancellable context (with_cancel, with_timeout, a task's own scope) is a
-- node: it knows its members (the tasks whose current context it is, or a
-- value context over it), the tasks parked under it from elsewhere (an
-- explicit context argument) and its child nodes. A value context points at
-- its nearest node; background has none (its members are in bg_list).
--
-- Membership changes with a task's context (spawn, scope, finish), not with
-- each wait: that keeps the ping-pong path free of it (measured 28 ns per
-- round trip).

-- Members form a doubly-linked list through the tasks' T_MPREV/T_MNEXT
-- slots, from the node's `mhead` to its `mtail` (bg_list's for
-- background): O(1) to join and leave, and no hash table per node
-- (measured: a hash set of members cost 100 ns per spawn at 100,000 tasks).
local bg_list = {}
-- Every node, weakly: with bg_list, their members are every unfinished
-- task, which is how dumps find tasks without a registry.
local all_nodes = setmetatable({}, { __mode = "k" })

local function list_of(c)
  return c.node or bg_list
end

-- set_ctx(t, c): make c (or false, when it finishes) the task's context.
-- Members join at the tail, so cancellation wakes them in the order they
-- joined (mtail is the last).
local function set_ctx(t, c)
  local old = t[T_CTX]
  if old then
    local l = list_of(old)
    local p, n = t[T_MPREV], t[T_MNEXT]
    if p then p[T_MNEXT] = n else l.mhead = n end
    if n then n[T_MPREV] = p else l.mtail = p end
    t[T_MPREV], t[T_MNEXT] = nil, nil
  end
  if c then
    local l = list_of(c)
    local last = l.mtail
    t[T_MPREV] = last
    if last then last[T_MNEXT] = t else l.mhead = t end
    l.mtail = t
  end
  t[T_CTX] = c
end
S.set_ctx = set_ctx

local own_node

local function node_new(parent, deadline)
  local pd = parent.dl
  if deadline == nil or (pd and pd <= deadline) then deadline = pd end
  -- cerr is false, not absent, until cancelled: a check of a key that is
  -- present compiles to one load, of an absent one to a hash lookup.
  local c = setmetatable({ parent = parent, dl = deadline, blocked = {},
    cerr = false }, CtxMT)
  all_nodes[c] = true
  c.node = c
  local pn = parent.node
  if pn then
    local e = pn.cerr
    if e then
      c.cerr = e
    else
      local ch = pn.children
      if not ch then
        ch = {}
        pn.children = ch
      end
      ch[c] = true
    end
  end
  return c
end
S.node_new = node_new

-- cancel_one(c, err, work): cancel node c alone, waking every task blocked
-- under it with (nil, err); its children go on the work list.
local function cancel_one(c, err, work)
  c.cerr = err
  local id = c.timer
  if id then
    c.timer = nil
    timer_stop(id, c)
  end
  local pn = c.parent.node
  if pn and pn.children then pn.children[c] = nil end
  local m = c.mhead
  while m do
    if m[T_WAIT] then
      local x = m[T_X]
      if not (x and x.wctx) then -- else it waits under another context
        unpark(m)
        wake(m, nil, err)
      end
    end
    m = m[T_MNEXT]
  end
  for t in pairs(c.blocked) do
    if t[T_WAIT] then
      unpark(t)
      wake(t, nil, err)
    end
  end
  if c.donech then R.close_done(c.donech) end
  local fns = c.after
  if fns then
    c.after = nil
    for f in pairs(fns) do f() end
  end
  local ch = c.children
  if ch then
    c.children = nil
    for k in pairs(ch) do work[#work + 1] = k end
  end
  -- Tasks started here under a context of their own (see adopt) are
  -- cancelled with the scope that started them.
  local ad = c.adopted
  if ad then
    c.adopted = nil
    for t in pairs(ad) do
      ext(t).adopter = nil
      work[#work + 1] = own_node(t)
    end
  end
end

-- node_cancel(c, err): cancel c and every node under it. Idempotent: the
-- first error stays. A work list, not recursion: a chain of ten thousand
-- nested scopes must not overflow the stack half-way through.
local function node_cancel(c, err)
  if c.cerr then return end
  local work = { c }
  while #work > 0 do
    local n = work[#work]
    work[#work] = nil
    if not n.cerr then cancel_one(n, err, work) end
  end
end
S.node_cancel = node_cancel

-- after_cancel(ctx, fn) -> stop: call fn() once when ctx is cancelled (at
-- once if it is), as Go's context.AfterFunc, but in the canceller's stead:
-- fn must not wait. stop() unregisters it. For contexts without a node
-- (background), never.
function S.after_cancel(ctx, fn)
  local n = ctx.node
  if not n then return function() end end
  if n.cerr then
    fn()
    return function() end
  end
  local fns = n.after
  if not fns then
    fns = {}
    n.after = fns
  end
  fns[fn] = true
  return function()
    if n.after then n.after[fn] = nil end
  end
end

function deadline_fire(c)
  c.timer = nil
  node_cancel(c, errors.deadline())
end

-- node_deadline(c, deadline): arm c's deadline timer (the caller made c with
-- that deadline); fires at once when it has passed.
local function node_deadline(c, deadline)
  if c.cerr or deadline ~= c.dl then return end
  if deadline <= now() then
    node_cancel(c, errors.deadline())
  elseif deadline < math.huge then
    c.timer = timer_start(deadline, c)
  end
end
S.node_deadline = node_deadline

local background = setmetatable({}, CtxMT)
S.background = background
R.root_ctx = node_new(background)

-- own_node(t) -> t's own scope node, made on first use. A task that never
-- spawns, derives a context or is cancelled never pays for one. Everything
-- that derives from a task's context calls this first, so the node is always
-- the root of what the task creates and task:cancel() reaches all of it.
function own_node(t)
  local x = ext(t)
  local n = x.node
  if not n then
    n = node_new(t[T_CTX])
    x.node = n
    set_ctx(t, n)
  end
  return n
end
S.own_node = own_node

-- under(c, n) -> true if context c is node n or derives from it. The
-- usual cases, n itself or its child (a group's context in the task that
-- made it), take no loop: a loop here aborted the trace of every spawn
-- through it, and an errgroup's go ran interpreted.
local function under_loop(m, n)
  while m do
    if m == n then return true end
    m = m.parent.node
  end
  return false
end

local function under(c, n)
  local m = c.node
  if m == n then return true end
  if not m then return false end
  m = m.parent.node
  if m == n then return true end
  return under_loop(m, n)
end

-- adopt(t, n): task t was started in scope n under a context that does not
-- derive from it (weft.spawn{ctx=}, a job's root context, background).
-- Every task belongs to the tree, as in Trio: cancelling n still cancels
-- t (cancel_one), so task:cancel() and Ctrl-C reach everything a task
-- started. Clean-up that must outlive a cancellation waits under a
-- context of its own choosing instead (a shield: ch:send(v, background)).
local function adopt(t, n)
  if n.cerr then
    -- Started in a scope already cancelled: it starts cancelled.
    local tn = own_node(t)
    node_cancel(tn, n.cerr)
    return
  end
  local ad = n.adopted
  if not ad then
    ad = {}
    n.adopted = ad
  end
  ad[t] = true
  ext(t).adopter = n
end

-- context(t) -> the task's current context, ready to derive from.
local function context(t)
  local x = t[T_X]
  if not (x and x.node) then own_node(t) end
  return t[T_CTX]
end
S.context = context

--[[ Tasks ]]
local ntasks = 0              -- unfinished tasks
local next_id = 1
local pool, npool = {}, 0     -- idle coroutines, reused by new tasks
local POOL_MAX = 65536
local nroots = 0

local function task_fn(t)
  local f = t[T_CO]
  if type(f) == "function" then return f end
  if type(f) == "thread" then
    -- The coroutine runs body(t, fn, args): find body's frame, read fn.
    for level = 0, 1e6 do
      local info = getinfo(f, level, "f")
      if not info then break end
      if info.func == S.body then
        local _, fn = getlocal(f, level, 2)
        return fn
      end
    end
  end
  return nil
end

-- task_name(t) -> the name given at spawn, else the function's source:line.
local function task_name(t)
  local x = t[T_X]
  if x and x.name then return x.name end
  local fn = task_fn(t)
  if not fn then return "?" end
  local info = getinfo(fn, "S")
  if info.what == "C" then return "[C]" end
  return info.short_src .. ":" .. info.linedefined
end
S.task_name = task_name

-- refuse(t, n) -> nil, err: a wait of t under the cancelled node n fails at
-- once. A task that goes on waiting as its waits fail (`while true do
-- weft.sleep(1) end` after Ctrl-C) would spin for ever: after REFUSALS
-- refusals in a row, with no wait that parked in between (which bumps
-- T_SEQ), it fails with an error that names it and its line.
local REFUSALS = 10000
local function refuse(t, n)
  local x = ext(t)
  local seq = t[T_SEQ]
  if x.rseq ~= seq then
    x.rseq, x.nrefused = seq, 1
    return nil, n.cerr
  end
  local k = x.nrefused + 1
  x.nrefused = k
  if k < REFUSALS then return nil, n.cerr end
  x.nrefused = 0
  error(format("%stask %q ignores cancellation: it went on waiting after " ..
    "%d waits in a row failed (%s); end the loop when a wait returns nil, " ..
    "err, as in `while weft.sleep(1) do ... end`", user_where(2),
    task_name(t), k, tostring(rawget(n.cerr, "message"))), 0)
end
S.refuse = refuse

-- Errors are stamped with the running task, the wall clock and this
-- runtime's tag (errors.lua cannot load before this module).
errors.current = function() return R.cur end
errors.task_name = task_name
errors.task_id = function(t) return t[T_ID] end
errors.wall = function() return c_wall(rt) end
errors.tag = core.tag

local function spawn(fn, parent, ctx, name, args)
  if parent and parent[T_CTX] == false then
    error("weft: cannot start a task under a finished one", 3)
  end
  local id = next_id
  next_id = id + 1
  ntasks = ntasks + 1
  local t = tnew(10, 0)
  -- The birth time is the tick's: a clock read per spawn costs more than
  -- an age needs (dumps show it to the millisecond).
  t[T_CO], t[T_PARENT], t[T_SEQ], t[T_ID], t[T_BORN] = fn, parent, 0, id,
    tick_time
  t[T_WAIT], t[T_X], t[T_HOOK] = false, false, false
  set_ctx(t, ctx)
  setmetatable(t, TaskMT)
  if parent then
    local px = ext(parent)
    px.nlive = (px.nlive or 0) + 1
    local c = px.clock
    if c then -- a bubble holds all its descendants
      ext(t).clock = c
      t[T_BORN] = c.now
    end
  else
    nroots = nroots + 1
  end
  if name ~= nil then ext(t).name = name end
  if parent and ctx ~= parent[T_CTX] then
    local pn = context(parent).node
    if pn and not under(ctx, pn) then adopt(t, pn) end
  end
  push(t, args, nil)
  return t
end

-- weft.go(fn, ...) -> task
local spawn_top

-- Outside a task (a host's callback, a finalizer between tasks) it starts
-- a top-level task, as weft.spawn does: neither raises there.
function S.go(fn, ...)
  if type(fn) ~= "function" then typeerror(1, "go", "function", fn) end
  local p = R.cur
  if not p then return S.spawn_root(fn, nil, ...) end
  local args
  local n = select("#", ...)
  if n > 0 then args = { n = n, ... } end
  return spawn(fn, p, context(p), nil, args)
end

-- spawn_hooked(parent, fn, args, ctx, on_done [, name]) -> task: for the
-- toolkit (groups, limiters, jobs). The task is a child of `parent` (not
-- necessarily the running task: background jobs outlive the request that
-- starts them), and on_done(t, err) is called when it has finished; when it
-- returns true, the error is handled and goes nowhere else.
function S.spawn_hooked(parent, fn, args, ctx, on_done, name)
  local t = spawn(fn, parent, ctx, name, args)
  t[T_HOOK] = on_done
  return t
end

-- The most arguments a task takes: unpack's limit, with room to spare.
local MAX_ARGS = 7000

-- weft.spawn{name=, fn=, args=, ctx=} -> task
function S.spawn(opts)
  local p = R.cur
  if type(opts) ~= "table" then typeerror(1, "spawn", "table", opts) end
  local fn, name, args, ctx = opts.fn, opts.name, opts.args, opts.ctx
  if type(fn) ~= "function" then
    argerror(1, "spawn", "field 'fn': function expected, got " .. type(fn))
  end
  if name ~= nil and type(name) ~= "string" then
    argerror(1, "spawn", "field 'name': string expected, got " .. type(name))
  end
  if args ~= nil then
    if type(args) ~= "table" then
      argerror(1, "spawn", "field 'args': table expected, got " .. type(args))
    end
    local n = args.n
    if n == nil then
      n = #args
    elseif type(n) ~= "number" or n ~= n or n < 0 or n % 1 ~= 0 or
        n > MAX_ARGS then
      argerror(1, "spawn", format("field 'args.n': integer from 0 to %d " ..
        "expected, got %s", MAX_ARGS, type(n) == "number" and
        tostring(n) or type(n)))
    end
    if n > MAX_ARGS then
      argerror(1, "spawn", format("field 'args': at most %d arguments " ..
        "expected, got %d", MAX_ARGS, n))
    end
    args = { n = n, unpack(args, 1, n) }
  end
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    argerror(1, "spawn", "field 'ctx': weft.ctx expected, got " .. type(ctx))
  end
  if not p then return spawn_top(fn, name, args, ctx) end
  return spawn(fn, p, ctx or context(p), name, args)
end

-- spawn_root(fn, name, ...) -> task: a top-level task, under the root
-- context (what weft_spawn_* and weft.run start).
--[[ Bubbles: virtual time ]]
-- A bubble is a task and all it starts, on a virtual clock (weft.vclock)
-- whose time starts at 0. When no task in the runtime is ready, every
-- bubble's clock jumps to its next timer (advance, called by tick). Time
-- stops when the bubble's root task's function returns (finish), so a
-- forgotten ticker cannot run the clock forever; the bubble ends when the
-- root has finished (done). Tasks in a bubble should wait only on each
-- other: a wait on something outside it does not hold its clock back.

-- bubble(t): put a task that has not run yet in a new bubble.
local function bubble(t)
  local c = vclock.new()
  c.root = t
  c.idle = 0 -- moves in a row that woke no task (see advance)
  ext(t).clock = c
  t[T_BORN] = 0
  clocks[#clocks + 1] = c
end

local function bubble_end(c)
  for i = 1, #clocks do
    if clocks[i] == c then
      table.remove(clocks, i)
      break
    end
  end
  for _, k in ipairs(vclock.clear(c)) do tgt[-k] = nil end
end

-- random(n) -> an integer in [1, n]: from the bubble's own generator in a
-- bubble, so that select chooses the same way in every run.
function S.random(n)
  local c = cur_clock()
  if c then return vclock.random(c, n) end
  return math.random(n)
end

-- spawn_root(fn, name, ...) -> task: a top-level task, under the root
-- context (what weft_spawn_* and weft.run start); in a bubble of its own
-- when the runtime runs on virtual time (weft --virtual-time).
function spawn_top(fn, name, args, ctx)
  -- Once every task has finished, an interrupted runtime starts afresh.
  if nroots == 0 and R.root_ctx.cerr then
    R.root_ctx = node_new(background)
    R.interrupted = nil
  end
  local t = spawn(fn, nil, ctx or R.root_ctx, name, args)
  t[T_BORN] = c_now(rt) -- outside a tick, tick_time may be old
  if core.virtual_time or R.virtual_next then
    R.virtual_next = nil
    bubble(t)
  end
  return t
end

function S.spawn_root(fn, name, ...)
  local n = select("#", ...)
  local args
  if n > 0 then args = { n = n, ... } end
  return spawn_top(fn, name, args)
end

-- spawn_line(fn, name, ctx) -> task: a top-level task under ctx whose scope
-- is not ended when it finishes: what it derives outlives it, until ctx
-- or the task is cancelled. For the REPL, whose lines make contexts and
-- start tasks that later lines use (weft.repl).
function S.spawn_line(fn, name, ctx)
  local t = spawn_top(fn, name, nil, ctx)
  ext(t).keep_node = true
  return t
end

-- spawn_root_args(fn, name, args, ctx) -> task: as spawn_root, with the
-- arguments packed ({n = , ...}) and an optional context (weft.spawn{ctx=}
-- outside a task).
S.spawn_root_args = spawn_top

-- weft.virtual_time(fn, ...) -> fn's results | nil, err: run fn(...) as a
-- task in a bubble of its own, on virtual time, and wait for it.
function S.virtual_time(fn, ...)
  local p = cur("virtual_time")
  if type(fn) ~= "function" then
    typeerror(1, "virtual_time", "function", fn)
  end
  local n = select("#", ...)
  local args
  if n > 0 then args = { n = n, ... } end
  local t = spawn(fn, p, S.context(p), nil, args)
  ext(t).name = "virtual time"
  bubble(t)
  return t:join()
end

-- The task has finished: it has no context any more.
local function retire(t)
  ntasks = ntasks - 1
  local x = t[T_X]
  local n = x and x.adopter
  if n then
    x.adopter = nil
    if n.adopted then n.adopted[t] = nil end
  end
  set_ctx(t, false)
end

-- A child's error goes to its parent: it cancels the parent's scope, with
-- the error as cause, and the parent fails with it when it finishes. A
-- cancellation error that the parent's own cancellation caused is a
-- consequence, not news, and is dropped.
local function child_failed(p, t, err)
  local pn = p[T_CTX].node
  if errors.is_cancel(err) and pn and pn.cerr then return end
  if not errors.is_error(err) then
    err = errors.failed(err)
    err._task = t
  end
  local px = ext(p)
  ext(t).sent = err -- what a later join takes back (see retract)
  if px.child_err == nil then
    px.child_err = err
    local n = own_node(p)
    node_cancel(n, errors.canceled(err))
  else
    local o = px.cothers
    if not o then
      o = {}
      px.cothers = o
    end
    o[#o + 1] = err
  end
end

-- The error a finished task reports: its own, or the first of its
-- children's; its own cancellation gives way to the child error behind it.
local function final_error(x)
  local own, child = x.err, x.child_err
  if child == nil then return own end
  local others = x.cothers
  if own == nil or errors.is_cancel(own) then
    own = child
  else
    others = others or {}
    table.insert(others, 1, child)
  end
  if others then own = errors.with_others(own, others) end
  x.err = own
  return own
end

local function root_done(t, err)
  nroots = nroots - 1
  if err ~= nil then
    local f = R.failures
    if not f then
      f = {}
      R.failures = f
    end
    f[#f + 1] = { err = err, task = t }
  end
end

local SCOPE_END

-- wake_joiners(q) -> true if a task was waiting in t:join.
local function wake_joiners(q)
  local any = false
  while true do
    local j = wq_pop(q)
    if not j then return any end
    wake(j, true)
    any = true
  end
end

-- done_one(t) -> t's parent if t was the last thing it waited for (its
-- function has returned and its last child ended), else nil: t and all its
-- children have ended. The common case takes no loop, so that a finishing
-- task's path compiles (a loop in it aborted every trace through it, and
-- spawn ran a third interpreted).
local function done_one(t)
  local x = t[T_X]
  local err, handled = nil, false
  local tctx = t[T_CTX]
  retire(t)
  if x then
    local c = x.clock
    if c and c.root == t then bubble_end(c) end
    err = final_error(x)
    if x.node and not x.keep_node then node_cancel(x.node, SCOPE_END) end
    local q = x.joinq
    if q and wake_joiners(q) then handled = true end
  end
  -- A group, limiter or jobs set that started the task takes its end
  -- and, if it says so, its error (see spawn_hooked).
  local hook = t[T_HOOK]
  if hook and hook(t, err) then handled = true end
  local p = t[T_PARENT]
  if not p then
    root_done(t, not handled and err or nil)
    return nil
  end
  local px = p[T_X]
  local tn = tctx.node
  if err ~= nil and not handled and errors.is_cancel(err) and tn and
      tn.cerr then
    -- Its own context was cancelled (its scope ended, it was cancelled):
    -- that error is a consequence, not news, as Trio's Cancelled is
    -- caught by the scope that caused it.
    handled = true
  end
  if err ~= nil and not handled then
    if x.raised or x.child_err ~= nil or (px and px.returned) then
      child_failed(p, t, err)
    else
      -- A returned error is the task's result: it waits for a joiner
      -- until the parent's function returns (see finish).
      x.unclaimed = true
      px = ext(p)
      local held = px.held
      if not held then
        held = {}
        px.held = held
      end
      held[#held + 1] = t
    end
  end
  px = p[T_X]
  local nl = px.nlive - 1
  px.nlive = nl
  if nl > 0 or not px.returned then return nil end
  return p
end

-- done(t): t's function has returned and all its children have finished.
-- Hand its error to a joiner or to its parent, then tell the parent, which
-- may finish in turn (done_chain: the loop, apart for the same reason).
local function done_chain(p)
  while p do p = done_one(p) end
end

local function done(t)
  local p = done_one(t)
  if p then return done_chain(p) end
end

-- finish(t, fn, ok, ...): t's function returned (ok) or raised.
local function finish(t, fn, ok, ...)
  local err
  if not ok then
    err = ...
  else
    local n = select("#", ...)
    if n > 0 then
      local r1, r2 = ...
      if not r1 and r2 ~= nil then
        err = r2 -- `return nil, err`: Lua's way to fail
      else
        ext(t).res = { n = n, ... }
      end
    end
  end
  local x = t[T_X]
  if err ~= nil then
    x = ext(t)
    x.err = err
    x.raised = not ok
  end
  -- Errors children returned that nobody joined now fail this task.
  local held = x and x.held
  if held then
    x.held, x.nclaimed = nil, nil
    for i = 1, #held do
      local c = held[i]
      local cx = c[T_X]
      if cx.unclaimed then
        cx.unclaimed = nil
        child_failed(t, c, cx.err)
      end
    end
  end
  -- From now on T_CO holds the function again, for the task's name.
  t[T_CO] = fn
  local c = x and x.clock
  if c and c.root == t then c.stopped = true end
  if not (x and x.nlive and x.nlive > 0) then
    done(t)
  else
    -- A failed task's children unwind at once, as a Trio nursery's do.
    if err ~= nil then node_cancel(own_node(t), errors.canceled(err)) end
    x.returned = true
  end
end

-- The error handler of every task: a traceback of where it was raised, and
-- the task's name on it.
local function trap(e)
  e = errors.capture(e, 2)
  if not rawget(e, "_task") then e._task = R.cur end
  return e
end
S.trap = trap

-- body(t, fn, args): what every task coroutine runs. When a task ends, its
-- coroutine yields FREE and waits in the pool for the next task. There is no
-- xpcall: a raising task kills its coroutine, whose stack the trampoline
-- reads for the traceback (and which is not reused). One frame less on every
-- parked task's stack (see wake).
-- returned(fn, ...): the running task's function fn returned these. The
-- task is R.cur: not passing it (nor `true`) keeps two slots off every
-- parked task's stack, which is just what keeps a sleeping task's stack at
-- LuaJIT's first size (the C wait needs 20 free slots above it; see
-- runtime/wait.c), 96 bytes a task.
local function returned(fn, ...)
  return finish(R.cur, fn, true, ...)
end

local chain -- chain(me) -> fn, args of the next task to run here, or nil

-- body(me, fn, args): me is this coroutine (the task is R.cur, see
-- returned). When its task has finished and the next ready task has never
-- run, it runs that one too, here (see chain); otherwise it yields FREE.
local function body(me, fn, args)
  while true do
    if args then
      -- A context alone is passed as itself (a group's task gets just its
      -- context): one table fewer per task than { n = 1, ctx }.
      if getmetatable(args) == CtxMT then
        returned(fn, fn(args))
      else
        returned(fn, fn(unpack(args, 1, args.n)))
      end
    else
      returned(fn, fn())
    end
    -- Keep nothing of the finished task alive while the coroutine waits in
    -- the pool.
    fn, args = nil, nil -- luacheck: ignore 311
    fn, args = chain(me)
    if not fn then me, fn, args = yield(FREE) end
  end
end
S.body = body

--[[ Coroutines inside tasks ]]
-- A task may run coroutines of its own (an iterator, a generator) that call
-- blocking weft functions. Their yield(WAIT) must reach the trampoline, so
-- coroutine.resume and coroutine.wrap pass weft's yields up through every
-- level and hand the wake values back down. Other yields are untouched.
-- NOTE: code that kept the original coroutine.resume from before weft was
-- loaded does not pass them: its resume returns weft's private sentinel.

local co_resume, co_create, co_status = coroutine.resume, coroutine.create,
  coroutine.status

-- Coroutines parked in a weft wait (their yield(WAIT) is being relayed),
-- and tasks' own coroutines that user code has seen (coroutine.running in
-- a task marks them: a mark on every task's coroutine would cost ~40 bytes
-- a task): resuming either from user code would hand a forged value to a
-- wait, so it raises instead, as resuming a running coroutine does.
local waiting = setmetatable({}, { __mode = "k" })
local task_cos = setmetatable({}, { __mode = "k" })

-- A task that runs a coroutine of its own is not the bottom task while the
-- coroutine runs: a wait there must not run others inline, since only the
-- task's own coroutine is checked for whether it can yield (see block).
local function resumed(b, ...)
  bottom = b
  return ...
end

local function task_resume(co, ...)
  local b = bottom
  if b == nil or b ~= R.cur then return co_resume(co, ...) end
  bottom = nil
  return resumed(b, co_resume(co, ...))
end

-- ... is all that co_resume returned after ok, however many values (a
-- named second parameter would turn a bare `true` into `true, nil`).
local function relay(co, ok, ...)
  local s = ...
  if ok and (s == WAIT or s == YIELD) and R.cur then
    waiting[co] = true
    -- If this yield cannot be made (a C function is on the stack), the
    -- error leaves co marked: it is stuck in a wait nobody will end.
    local a, b = wait(s, "coroutine.resume")
    waiting[co] = nil
    -- One wake value or two, as from the trampoline (see run).
    if b == nil then return relay(co, task_resume(co, a)) end
    return relay(co, task_resume(co, a, b))
  end
  return ok, ...
end

local function check_resumable(co, level)
  if waiting[co] then
    error("cannot resume a coroutine that is waiting in weft (a task " ..
      "blocked in it)", level + 1)
  end
  if task_cos[co] then
    error("cannot resume a weft task's own coroutine (the scheduler " ..
      "resumes it)", level + 1)
  end
end

-- The relays are Lua functions, so an error that the stock C function
-- raises from them would name them (co_resume) and sched.lua's line. Code
-- outside tasks must not see a difference (gh-12), so a bad argument is
-- raised as LuaJIT does: under the name the caller used, at its line.
local function stock_argerror(f, ...)
  local _, e = pcall(f, ...)
  local ar = getinfo(2, "n")
  local name, reason = ar.name or "?", e:match("%(.*%)$")
  if ar.namewhat == "method" then
    error(format("calling '%s' on bad self %s", name, reason), 3)
  end
  error(format("bad argument #1 to '%s' %s", name, reason), 3)
end

local function resume_relay(co, ...)
  if type(co) ~= "thread" then stock_argerror(co_resume, co, ...) end
  if waiting[co] or task_cos[co] then check_resumable(co, 2) end
  return relay(co, task_resume(co, ...))
end

-- As LuaJIT's wrap, a string error gets the caller's position (level 2:
-- wrap_results is tail-called, so level 2 is the wrapper's caller); any
-- other value passes unchanged.
local function wrap_results(ok, ...)
  if not ok then
    local e = ...
    error(e, type(e) == "string" and 2 or 0)
  end
  return ...
end

local function wrap_relay(...)
  local fn = ...
  if type(fn) ~= "function" then stock_argerror(co_create, ...) end
  local co = co_create(fn)
  return function(...)
    if co_status(co) == "dead" then
      error("cannot resume dead coroutine", 2)
    end
    if waiting[co] then check_resumable(co, 2) end
    return wrap_results(relay(co, task_resume(co, ...)))
  end
end

-- dofile in Lua: the C one calls the chunk from C, where it cannot wait;
-- this one calls it from Lua, so config and plugin files that block work.
local function dofile_lua(path)
  local f, err = loadfile(path)
  if not f then error(err, 2) end
  return f()
end

local co_running = coroutine.running

-- As many values as the stock one: LuaJIT 2.1 without 5.2 compatibility
-- returns only the coroutine (nil in the main one), and a relay that
-- returned (co, main) printed "nil\tnil".
local function mark_running(co, ...)
  local t = R.cur
  if t and t[T_CO] == co then task_cos[co] = true end
  return co, ...
end

local function running()
  return mark_running(co_running())
end

-- What install replaces, and with what: weft_free of a runtime on a
-- host's state puts the stock functions back where the relays still are
-- (runtime.c restore_stock). Left there, the next runtime attached to the
-- state took these relays for the stock functions and wrapped them:
-- every freed runtime's Lua side stayed reachable (~120 KB each) and every
-- resume went through all their relays.
function S.install_coroutine_relay()
  S.stock = { resume = co_resume, wrap = coroutine.wrap,
    running = co_running, dofile = dofile }
  S.relays = { resume = resume_relay, wrap = wrap_relay, running = running,
    dofile = dofile_lua }
  coroutine.resume = resume_relay
  coroutine.wrap = wrap_relay
  coroutine.running = running
  dofile = dofile_lua -- luacheck: ignore 121
end

local stack_traceback

-- A task's coroutine died with an error, or yielded something that is not
-- ours: the task failed. Its coroutine is abandoned.
local function broken(t, co, ok, v)
  local fn = task_fn(t)
  local e
  -- Described outside any task: a __tostring that the capture calls and
  -- that waits must not park t, whose coroutine is dead.
  if ok then
    e = errors.new("bug", "coroutine.yield called in a task outside a " ..
      "coroutine of its own (use weft.yield)")
  else
    e = errors.capture_co(v, stack_traceback(co, 0, v))
  end
  if not rawget(e, "_task") then e._task = t end
  R.cur = t -- finish belongs to the task, as from body
  finish(t, fn, false, e)
  R.cur = nil
end

--[[ Task methods ]]

-- task_state(t) -> "ready", "running", "blocked", "finishing" (its function
-- returned; children remain) or "done".
local function task_state(t)
  if t[T_CTX] == false then return "done" end
  if t[T_WAIT] then return "blocked" end
  if t == R.cur then return "running" end
  local x = t[T_X]
  if x and x.returned then return "finishing" end
  return "ready"
end
S.task_state = task_state


-- claim(t): a joiner takes t's error: it no longer waits for the parent
-- (the parent's held list is compacted as claims pile up, so a long-lived
-- parent joining many failed children does not grow).
local function claim(t)
  local x = t[T_X]
  if not (x and x.unclaimed) then return end
  x.unclaimed = nil
  local p = t[T_PARENT]
  local px = p and p[T_X]
  local held = px and px.held
  if not held then return end
  local n = (px.nclaimed or 0) + 1
  if n * 2 <= #held then
    px.nclaimed = n
    return
  end
  local j = 0
  for i = 1, #held do
    local c = held[i]
    held[i] = nil
    if c[T_X].unclaimed then
      j = j + 1
      held[j] = c
    end
  end
  px.nclaimed = 0
end

-- retract(t): a joiner took t's error after it had gone up to t's parent
-- (a raised error goes up at once): the parent no longer fails with it,
-- so that one error is reported once. The parent's scope stays cancelled.
local function retract(t)
  local x = t[T_X]
  local e = x and x.sent
  if not e then return end
  x.sent = nil
  local px = t[T_PARENT][T_X]
  local o = px.cothers
  if px.child_err == e then
    px.child_err = o and table.remove(o, 1)
    if o and #o == 0 then px.cothers = nil end
  elseif o then
    for i = #o, 1, -1 do
      if o[i] == e then table.remove(o, i) end
    end
  end
end

local function results(t)
  local x = t[T_X]
  if x then
    if x.err ~= nil then return nil, x.err end
    local r = x.res
    if r then return unpack(r, 1, r.n) end
  end
  return true
end

-- task:join([ctx]) -> results | true | nil, err
function Task.join(t, ctx)
  checkmt(t, TaskMT, 1, "join")
  if t[T_CTX] == false then
    claim(t) -- its error is handled here
    retract(t)
    return results(t)
  end
  local me = cur("join")
  if t == me then error("join: a task cannot join itself", 2) end
  local p = me[T_PARENT]
  while p do
    if p == t then
      error("join: cannot join an ancestor (it waits for this task)", 2)
    end
    p = p[T_PARENT]
  end
  ctx = wait_ctx(me, ctx, 1, "join")
  local n = ctx.node
  if n and n.cerr then return refuse(me, n) end
  local x = ext(t)
  local q = x.joinq
  if not q then
    q = wq_new(t, "join")
    x.joinq = q
  end
  headroom()
  wq_push(q, me, 0, nil)
  park(me, q, ctx)
  local a, b = block(me, "task:join")
  if a == nil then return nil, b end
  return results(t)
end

-- task:cancel([cause]): cancel the task's scope: the task and every task
-- and context it created. Its blocked waits return (nil, err), err.kind
-- "canceled", err.cause = cause.
function Task.cancel(t, cause)
  checkmt(t, TaskMT, 1, "cancel")
  if t[T_CTX] == false then return end
  local err = errors.canceled(cause)
  local x = ext(t)
  local n = x.node
  if n then
    node_cancel(n, err)
    return
  end
  n = node_new(t[T_CTX])
  node_cancel(n, err)
  -- Wake it unless it waits under a context of its own choosing (a shield),
  -- before it moves to the new node: wake unregisters it from the old one.
  if t[T_WAIT] and x.wctx == nil then
    unpark(t)
    wake(t, nil, n.cerr)
  end
  x.node = n
  set_ctx(t, n)
end

function Task.name(t)
  checkmt(t, TaskMT, 1, "name")
  return task_name(t)
end

function Task.id(t)
  checkmt(t, TaskMT, 1, "id")
  return t[T_ID]
end

-- task:done() -> true once the task and all its children have finished.
function Task.done(t)
  checkmt(t, TaskMT, 1, "done")
  return t[T_CTX] == false
end

function TaskMT.__tostring(t)
  return format("weft.task: %d %q (%s)", t[T_ID], task_name(t), task_state(t))
end

--[[ Time and yielding ]]

-- weft.sleep(seconds [, ctx]) -> true | nil, err
function S.sleep(s, ctx)
  local t = cur("sleep")
  if type(s) ~= "number" or s ~= s then typeerror(1, "sleep", "number", s) end
  ctx = wait_ctx(t, ctx, 2, "sleep")
  local n = ctx.node
  if n and n.cerr then return refuse(t, n) end
  headroom()
  if s == math.huge then
    park(t, FOREVER, ctx)
  else
    if s < 0 then s = 0 end
    park(t, timer_start(now() + s, t), ctx)
  end
  return block(t, "weft.sleep") -- a tail call: see wake
end

-- wait_on(q, v, ctx, fname) -> a, b: park the running task on wait queue q
-- (with value v in its entry) under ctx (or its own context), until a waker
-- pops it (wq_pop) and wakes it, or ctx is cancelled (nil, err). For the
-- sync primitives; their queues have `what`, which dumps show.
function S.wait_on(q, v, ctx, fname)
  local t = cur(fname)
  ctx = wait_ctx(t, ctx, 1, fname)
  local n = ctx.node
  if n and n.cerr then return refuse(t, n) end
  headroom()
  wq_push(q, t, 0, v)
  park(t, q, ctx)
  return block(t, fname)
end

-- weft.yield([ctx]) -> true | nil, err: let every other ready task run once.
function S.yield(ctx)
  local t = cur("yield")
  local n = wait_ctx(t, ctx, 1, "yield").node
  if n and n.cerr then return refuse(t, n) end
  return wait(YIELD, "weft.yield") -- resumed with true
end

function S.current()
  return R.cur
end

--[[ Introspection ]]

local function describe_wait(t)
  local w = t[T_WAIT]
  if not w then
    local state = task_state(t)
    if state ~= "finishing" then return state end
    local n = t[T_X].nlive
    return format("waiting for %d %s", n, n == 1 and "child" or "children")
  end
  if type(w) == "number" then
    return format("sleep until %.3f", timer_deadline(w))
  end
  if w == FOREVER then return "context (until cancelled)" end
  local mt = getmetatable(w)
  if mt and mt.describe then return mt.describe(w) end
  if rawget(w, WQ) then
    if w.dir == "join" then return format("join of task %d", w.owner[T_ID]) end
    if w.what then return w.what end
    return format("%s on %s", w.dir, R.chan_describe(w.owner))
  end
  return format("select over %d cases", #w)
end
S.describe_wait = describe_wait

-- frame(co, level, what): debug.getinfo of a coroutine, or (co nil) of
-- the running thread, counting level 1 as the caller of stack_traceback.
local function frame(co, level, what)
  if co then return getinfo(co, level, what) end
  local info = getinfo(level + 2, what) -- not a tail call: it counts a frame
  return info
end

-- stack_traceback(co, level) -> "stack traceback:" and the user frames of a
-- task's coroutine (suspended, or dead from an error; level 0) or of the
-- running thread from `level` on, innermost first; nil when there are
-- none. Unlike debug.traceback it leaves out weft's own frames, and names a
-- task's function after its source, not after weft's variable holding it.
do -- (a block: the main chunk's locals are near Lua's limit of 200)
-- frame_line(co, level, info, first, msg) -> the traceback line of frame
-- `level` (info: its getinfo "Slnf").
local function frame_line(co, level, info, first, msg)
  local outer = frame(co, level + 1, "f")
  local line = info.currentline
  if line <= 0 and first and type(msg) == "string" then
    -- LuaJIT has no line for the innermost frame of a coroutine that died
    -- of a runtime error; its message has it.
    local src, l = msg:match("^(.-):(%d+): ")
    if src == info.short_src then line = tonumber(l) end
  end
  local where = line > 0 and format("%s:%d", info.short_src, line) or
    info.short_src
  local what
  if info.what == "main" then
    what = "in main chunk"
  elseif info.name and not (outer and outer.func == body) then
    what = format("in function '%s'", info.name)
  else
    what = format("in function <%s:%d>", info.short_src, info.linedefined)
  end
  return "\t" .. where .. ": " .. what
end

-- deepest(co, level) -> the deepest level of co's stack, at least `level`
-- (which exists), found in O(log depth) getinfo calls.
local function deepest(co, level)
  local lo, hi = level, level * 2
  while frame(co, hi, "l") do lo, hi = hi, hi * 2 end
  while hi - lo > 1 do
    local mid = math.floor((lo + hi) / 2)
    if frame(co, mid, "l") then lo = mid else hi = mid end
  end
  return lo
end

-- As Lua's own traceback, a deep stack shows its first 12 frames and its
-- last ones (10 to 18): a wait 20,000 calls deep in a recursion made a
-- deadlock report of 20,000 lines (and getinfo walks the stack for every
-- level).
local FIRST, LAST = 12, 10

function stack_traceback(co, level, msg)
  local lines = {}
  local skipped = 0
  while true do
    local info = frame(co, level, "Slnf")
    if not info or info.func == body then break end
    if not internal(info.source) or #lines > 0 then
      lines[#lines + 1] = frame_line(co, level, info, #lines == 0, msg)
      if #lines == FIRST then
        local last = deepest(co, level)
        if last - level > LAST + 8 then
          -- Skip to the last frames; body and the internal frames below
          -- the task's function are among the 8 spare.
          skipped = last - LAST - 8 - level
          level = level + skipped
        end
      end
    end
    level = level + 1
  end
  -- Drop trailing internal frames (a coroutine relay, say).
  while #lines > 0 and (lines[#lines]:find("^\t%[C%]") or
      lines[#lines]:find("weft/[%w_]+%.lua")) do
    lines[#lines] = nil
  end
  if #lines == 0 then return nil end
  if skipped > 0 then
    table.insert(lines, FIRST + 1, format("\t...\t(skipping %d levels)",
      skipped))
  end
  return "stack traceback:\n" .. table.concat(lines, "\n")
end
end
errors.traceback = stack_traceback

local function task_traceback(t)
  local co = t[T_CO]
  if type(co) ~= "thread" then return nil end
  return stack_traceback(co, 0)
end
S.task_traceback = task_traceback

-- all_tasks() -> every unfinished task, by id: the running one, the ready
-- ones, the blocked ones (under the cancel nodes, or background) and those
-- waiting for their children. Slow; for dumps and reports only.
local function all_tasks()
  local seen, list = {}, {}
  local function add(t)
    if t and not seen[t] and t[T_CTX] ~= false then
      seen[t] = true
      list[#list + 1] = t
    end
  end
  local function walk(l)
    local t = l.mhead
    while t do
      add(t)
      t = t[T_MNEXT]
    end
  end
  walk(bg_list)
  for n in pairs(all_nodes) do walk(n) end
  table.sort(list, function(a, b) return a[T_ID] < b[T_ID] end)
  return list
end
S.all_tasks = all_tasks

-- deadlock_report() -> text naming every unfinished task, what it waits on
-- and where (Go's "all goroutines are asleep").
-- dump(headline) -> text naming every unfinished task, what it waits on
-- and where, as Go prints goroutines.
--
-- A task's child failure that waits for the task to finish is shown: when
-- a shielded child (one waiting under weft.background()) keeps the task
-- from finishing, a deadlock report was all the program said, and the
-- failure that cancelled the rest was never seen.
local function dump(headline, list)
  local out = { headline }
  for _, t in ipairs(list or all_tasks()) do
    out[#out + 1] = ""
    out[#out + 1] = format("task %d %q [%s]:", t[T_ID], task_name(t),
      describe_wait(t))
    local x = t[T_X]
    if x and x.child_err ~= nil then
      local more = x.cothers and #x.cothers or 0
      out[#out + 1] = format("a child failed: %s%s",
        errors.describe(x.child_err), more > 0 and
        format(" (and %d more)", more) or "")
    end
    local tb = task_traceback(t)
    if tb then out[#out + 1] = tb end
  end
  return table.concat(out, "\n")
end
S.dump = dump

-- weft.tasks() -> a list, by id, of {id, name, parent (id or nil), state,
-- waiting_on, age (seconds)} for every unfinished task.
function S.tasks()
  local list, real = {}, c_now(rt)
  for i, t in ipairs(all_tasks()) do
    local p, x = t[T_PARENT], t[T_X]
    local c = x and x.clock
    list[i] = { id = t[T_ID], name = task_name(t), parent = p and p[T_ID],
      state = task_state(t), waiting_on = describe_wait(t),
      age = (c and c.now or real) - t[T_BORN] }
  end
  return list
end

-- weft.dump() -> every unfinished task as text, with its traceback.
function S.dump_text()
  return dump(format("%d tasks at %.3f", ntasks, now()))
end

-- deadlock_report() -> the report when nothing can wake any task (Go's
-- "all goroutines are asleep").
function S.deadlock_report()
  return dump("all tasks are asleep - deadlock!")
end

-- SIGQUIT prints a dump and the program goes on, as Go's does.
function R.on_quit()
  io.stderr:write(dump(format("weft: SIGQUIT: %d tasks", ntasks)), "\n")
  io.stderr:flush()
end

function S.stats()
  return ntasks, fill_n + run_n - run_i + 1, ntimers, npool
end

--[[ The trampoline ]]

local function interrupt()
  R.interrupted = true
  node_cancel(R.root_ctx, errors.canceled(errors.new("interrupted",
    "interrupted")))
end

local function poll_events()
  local ev = c_events(rt)
  if ev == 0 then return end
  if band(ev, EV_INTERRUPT) ~= 0 then interrupt() end
  if band(ev, EV_POST) ~= 0 then core.drain_posts() end
  if band(ev, EV_WORK) ~= 0 then R.work_collect() end
  if band(ev, EV_QUIT) ~= 0 then R.on_quit() end
end

--[[ The trampoline ]]
-- tick resumes ready tasks one after another; each runs until it parks.
-- When the task tick resumed (the bottom one) parks while others are ready,
-- it does not yield back: it resumes them itself (inline), and returns
-- from its wait without a switch once it is the next one ready. A
-- ping-pong then costs one resume and one yield per round trip, not two
-- of each (measured: 279 -> 223 ns). Tasks run in the same order as from
-- tick: inline takes them from the same queue. A task resumed by inline
-- yields as usual (only the bottom runs others), so nesting is one deep.

-- The resumes the running tick has made, its budget and its deadline.
local ran, tick_budget, tick_deadline = 0, 0, nil

-- next_ready() -> t, a, b: the next ready task and its wake values, or nil.
-- One task alone in `fill` (a hand-off: a ping-pong, a reply) is taken from
-- there, without swapping: the swap's seven upvalue stores were a tenth of
-- a ping-pong round trip (2,004-2,022 -> 1,797-1,807 instructions).
local function next_ready()
  local i = run_i
  if i > run_n then
    local n = fill_n
    if n == 0 then return nil end
    if n == 1 then
      fill_n = 0
      local t, a, b = fill_t[1], fill_a[1], fill_b[1]
      fill_t[1] = nil
      if a ~= nil then fill_a[1] = nil end -- see push
      if b ~= nil then fill_b[1] = nil end
      return t, a, b
    end
    run_t, fill_t = fill_t, run_t
    run_a, fill_a = fill_a, run_a
    run_b, fill_b = fill_b, run_b
    run_n, fill_n = fill_n, 0
    i = 1
  end
  run_i = i + 1
  local t, a, b = run_t[i], run_a[i], run_b[i]
  run_t[i] = nil
  if a ~= nil then run_a[i] = nil end -- see push
  if b ~= nil then run_b[i] = nil end
  return t, a, b
end

-- A task run inline that failed, left for tick to report (see inline).
local dead_t, dead_co, dead_ok, dead_s

-- run(t, a, b [, inlined]) -> true if t failed and, inlined, was left for
-- tick (dead_*): resume t with its wake values until it parks or finishes.
local function run(t, a, b, inlined)
  R.cur = t
  local co = t[T_CO]
  local ok, s
  if type(co) == "thread" then
    -- A wake passes one value or two: the wait returns exactly those
    -- (weft.sleep gives `true`, not `true, nil`).
    if b == nil then
      ok, s = resume(co, a)
    else
      ok, s = resume(co, a, b)
    end
  else
    local np = npool
    local c
    if np > 0 then
      c = pool[np]
      pool[np] = nil
      npool = np - 1
    else
      c = create(body)
    end
    t[T_CO] = c
    ok, s = resume(c, c, co, a)
    co = c
  end
  -- The task that yielded or failed: not t if t finished and its
  -- coroutine went on with fresh tasks (chain). (R.cur is nil when the
  -- bottom task yields from inline, which ran others.)
  t = R.cur or t
  R.cur = nil
  if s ~= WAIT then
    if s == FREE then
      if npool < POOL_MAX then
        npool = npool + 1
        pool[npool] = co
      end
    elseif s == YIELD then
      push(t, true)
    elseif inlined then
      dead_t, dead_co, dead_ok, dead_s = t, co, ok, s
      return true
    else
      broken(t, co, ok, s)
    end
  end
  return false
end

-- spent() -> true once the tick has used its budget or passed its
-- deadline. Only a stepped runtime has a deadline, and reads the clock
-- every 8 resumes (a read costs ~20 ns): a resume usually takes well under
-- a microsecond, but one that pays the collector's debt takes ~10 us, and
-- right after a cycle's atomic phase at 100,000 tasks, reading every 64
-- let a 2 ms step run 2.5-2.9 ms (bench/host_bench.c, agents).
local function spent()
  return ran >= tick_budget or (tick_deadline and band(ran, 7) == 7 and
    c_now(rt) >= tick_deadline)
end

-- chain(me) -> fn, args: the task running on coroutine me has finished.
-- If the next ready task has never run and the tick may go on, take it and
-- run it on me, as run would have on a coroutine from the pool: what was
-- a yield to the trampoline and a resume from it per task is none
-- (spawn and errgroup: measured in bench/README.md). The order is the
-- queue's; a task the trampoline resumed (bottom) hands that on.
function chain(me)
  if spent() then return nil end
  local t
  local i = run_i
  if i <= run_n then
    t = run_t[i]
  elseif fill_n > 0 then
    t = fill_t[1]
  else
    return nil
  end
  local fn = t[T_CO]
  if type(fn) ~= "function" then return nil end
  local _, args = next_ready()
  ran = ran + 1
  if bottom == R.cur then bottom = t end
  R.cur = t
  t[T_CO] = me
  return fn, args
end

-- inline_loop(me, what, t, a, b): inline's general case, t ready next.
local function inline_loop(me, what, t, a, b)
  while true do
    if t == me then
      R.cur = me
      if b == nil then return a end
      return a, b
    end
    if run(t, a, b, true) or spent() then break end
    t, a, b = next_ready()
    if not t then break end
    ran = ran + 1
  end
  return wait(WAIT, what)
end

-- inline(me, what) -> me's wake values: me, the task the trampoline resumed,
-- has parked; rather than yield back to the trampoline, which would resume
-- the next ready task, run the ready tasks from here until me is woken.
-- The usual cases (me is next, or next after one other task) take no loop,
-- so that they compile into the caller's trace.
--
-- This runs on me's stack, which may be deep in a recursion: nothing here
-- may raise once a task is taken from the queue, or the queue, R.cur and
-- that task would be left halfway. So every blocking call calls headroom
-- before it registers its wait (see headroom), and a task run inline
-- that fails is reported by tick (dead_*), not here: a report builds a
-- traceback, which needs the stack.
local function inline(me, what)
  if spent() then return wait(WAIT, what) end
  local t, a, b = next_ready()
  if not t then return wait(WAIT, what) end
  ran = ran + 1
  if t ~= me then
    if run(t, a, b, true) or spent() then return wait(WAIT, what) end
    t, a, b = next_ready()
    if not t then return wait(WAIT, what) end
    ran = ran + 1
    if t ~= me then return inline_loop(me, what, t, a, b) end
  end
  R.cur = me
  if b == nil then return a end
  return a, b
end

-- block(t, what) -> the waker's values: t, the running task, has
-- registered its wait and parks. Only where it could yield does it run
-- others inline: a wait in a finalizer or a sort comparator must not run
-- other tasks in the middle of whatever the finalizer interrupted (and
-- wait raises there, as documented). The check is on t's own coroutine:
-- the coroutine relay clears `bottom` while a task runs a coroutine of
-- its own.
local bottom_co, bottom_L -- the coroutine last checked, and its lua_State


function block(t, what)
  if t == bottom then
    local co = t[T_CO]
    if co ~= bottom_co then
      bottom_co, bottom_L = co, ffi.cast("void *", thread_of(co))
    end
    if c_yieldable(bottom_L) ~= 0 then return inline(t, what) end
  end
  return wait(WAIT, what)
end
S.block = block

-- tick(budget [, deadline]) -> ready, live: fire up to budget due timers,
-- then resume up to budget ready tasks, stopping at deadline (the
-- runtime's clock, for weft_step) if given. Called by the C driver once per
-- turn of the libuv loop.
function S.tick(budget, deadline)
  poll_events()
  local more = fire_timers(budget, deadline)
  ran, tick_budget, tick_deadline = 0, budget, deadline
  while not spent() do
    local t, a, b = next_ready()
    if not t then break end
    ran = ran + 1
    bottom = t
    run(t, a, b)
    if dead_t then -- a task the bottom one ran inline failed
      local d, co, ok, s = dead_t, dead_co, dead_ok, dead_s
      dead_t, dead_co, dead_s = nil, nil, nil
      broken(d, co, ok, s)
    end
  end
  bottom = nil
  -- A task waiting on the worker pool is not durably blocked: virtual time
  -- does not jump past a job that is still running.
  if fill_n == 0 and run_i > run_n and clocks[1] and R.nwork == 0 and
      advance() then
    -- Virtual time moved. What it fired may have woken nobody (a ticker,
    -- a weft.after no one waits for): report one ready, so that the driver
    -- ticks again, and the clocks go on, rather than finding a deadlock.
    return fill_n > 0 and fill_n or 1, ntasks
  end
  return fill_n + run_n - run_i + 1 + (more and 1 or 0), ntasks
end

-- idle() -> true if it found something to do: called by the C driver when
-- nothing in the runtime can ever wake a task again. A bubble whose tasks
-- are all stuck is a deadlock of its own: its root fails with the report
-- (kind "deadlock") and its tasks are cancelled so that they unwind, while
-- the rest of the runtime goes on (a spec under virtual time fails; the
-- program does not die). Each bubble is failed once; then it is the
-- runtime's deadlock.
function S.idle()
  for i = 1, #clocks do
    local c = clocks[i]
    if not c.failed then
      c.failed = true
      local list = {}
      for _, t in ipairs(all_tasks()) do
        local x = t[T_X]
        if x and x.clock == c then list[#list + 1] = t end
      end
      local err = errors.new("deadlock", dump(
        "all tasks are asleep - deadlock! (virtual time " ..
        format("%.3f", c.now) .. ")", list))
      err._task = c.root
      local rx = ext(c.root)
      if rx.child_err == nil then rx.child_err = err end
      node_cancel(own_node(c.root), errors.canceled(err))
      return true
    end
  end
  return false
end

-- cancel_root(err): cancel the context every top-level task runs under.
function S.cancel_root(err)
  node_cancel(R.root_ctx, errors.canceled(err))
end

-- abandon(): forget every unfinished task (they are deadlocked even after
-- cancellation); the garbage collector takes their coroutines.
function S.abandon()
  for _, t in ipairs(all_tasks()) do
    if t[T_WAIT] then cancel_wait(t) end
    set_ctx(t, false)
  end
  ntasks, nroots = 0, 0
  R.root_ctx = node_new(background)
end

function S.roots()
  return nroots
end

-- take_failures() -> list of errors of top-level tasks since the last call.
function S.take_failures()
  local f = R.failures
  R.failures = nil
  return f
end

-- result(t) -> what t:join() would give, for weft.run.
S.results = results

-- log(text): append a full record to the file core.log_path names
-- (WEFT_LOG), if any.
local function log(text)
  local path = core.log_path
  if not path then return end
  local f, err = io.open(path, "a")
  if f then
    f:write(text, "\n")
    f:close()
  elseif not R.log_warned then
    -- Once: a report per failure would drown the failures themselves.
    R.log_warned = true
    io.stderr:write("weft: WEFT_LOG: cannot write the error log: ", err,
      "\n")
    io.stderr:flush()
  end
end

-- outcome(verbose) -> reports, interrupted: the report of each top-level
-- failure since the last call (nil when none), and whether they all come
-- from an interruption (Ctrl-C). A report is the error's one line (see
-- errors.brief); verbose adds its full record, which also goes to the log.
function S.outcome(verbose)
  local f = S.take_failures()
  if not f then return nil, false end
  local out, intr = {}, R.interrupted and true or false
  for i = 1, #f do
    local err, t = f[i].err, f[i].task
    if not errors.is_cancel(err) then intr = false end
    local line = errors.brief(err, task_name(t))
    local record = errors.record(err)
    log(record)
    out[i] = verbose and (line .. "\n" .. record) or line
    local hook = R.on_error
    if hook then
      -- A Lua host's hook (weft.on_error) sees each failure; a hook that
      -- raises is reported instead of losing either error.
      local ok, herr = pcall(hook, err, out[i])
      if not ok then
        io.stderr:write("weft: weft.on_error hook failed: ",
          errors.brief(herr), "\n", out[i], "\n")
      end
    end
  end
  if intr then out = { "interrupted" } end
  return out, intr
end

SCOPE_END = errors.canceled(errors.new("finished", "task finished"))

return S
