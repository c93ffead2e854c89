-- weft.sync: mutex, semaphore, once, fence and locked state.
--
-- Every wait here is a wait like any other: it takes an optional context,
-- fails with (nil, err) when that context is cancelled (even when it could
-- have succeeded at once: cancellation is level-triggered), and leaves no
-- waiter behind. Waiters are served first-in first-out, handing ownership
-- over directly, so nobody starves.

local S = require "weft.sched"
local chan = require "weft.chan"

local R = S.R
local wq_new, wq_pop, wq_head, wq_ready = S.wq_new, S.wq_pop, S.wq_head,
  S.wq_ready
local wake, wait_on = S.wake, S.wait_on
local type, getmetatable, setmetatable, error, format = type, getmetatable,
  setmetatable, error, string.format
local select, xpcall = select, xpcall
local typeerror, argerror = S.typeerror, S.argerror
local checkmt, CtxMT = S.checkmt, S.CtxMT

local M = {}
local nobj = 0

local function pack(...)
  return { n = select("#", ...), ... }
end

-- cancelled(t, ctx, argn, fname) -> err, ctx: err when the wait of t, the
-- running task (S.cur), would fail at once (its context, or ctx, is
-- cancelled), and the context the wait runs under. When ctx is neither nil
-- nor a context it raises, blaming the caller of the API function that
-- called it. NOTE: ctx is checked here rather than left to S.wait_ctx,
-- which blames its caller's caller: this function's caller, inside weft.
local function cancelled(t, ctx, argn, fname)
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    typeerror(argn, fname, "weft.ctx", ctx, 3)
  end
  ctx = S.wait_ctx(t, ctx, argn, fname)
  local n = ctx.node
  return n and n.cerr, ctx
end

--[[ Mutex ]]

local Mutex = {}
local MutexMT = { __index = Mutex, __name = "weft.mutex" }

-- weft.mutex() -> mutex
function M.mutex()
  nobj = nobj + 1
  local m = setmetatable({ locked = false, id = nobj }, MutexMT)
  m.q = wq_new(m, "lock")
  m.q.what = format("lock of weft.mutex #%d", nobj)
  return m
end

-- mutex:lock([ctx]) -> true | nil, err
function Mutex:lock(ctx)
  checkmt(self, MutexMT, 1, "lock")
  local err
  err, ctx = cancelled(S.cur("lock"), ctx, 1, "lock")
  if err then return nil, err end
  if not self.locked and not wq_ready(self.q) then
    self.locked = true
    return true
  end
  return wait_on(self.q, nil, ctx, "lock") -- unlock hands it over: true
end

-- mutex:try_lock() -> true if it took the mutex, without waiting
function Mutex:try_lock()
  checkmt(self, MutexMT, 1, "try_lock")
  if self.locked then return false end
  self.locked = true
  return true
end

-- mutex:unlock(): hand the mutex to the first waiter, or free it. Raises
-- when it is not locked (as Go's fatal "unlock of unlocked mutex").
function Mutex:unlock()
  checkmt(self, MutexMT, 1, "unlock")
  if not self.locked then error("unlock of unlocked weft.mutex", 2) end
  local t = wq_pop(self.q)
  if t then
    wake(t, true) -- still locked: now the waiter's
  else
    self.locked = false
  end
end

local function finish_with(self, ok, ...)
  self:unlock()
  if not ok then error((...), 0) end
  return ...
end

-- mutex:with([ctx,] fn, ...) -> fn's results | nil, err: run fn(...)
-- holding the mutex; it is released even when fn raises (and the error is
-- raised again).
function Mutex:with(ctx, fn, ...)
  checkmt(self, MutexMT, 1, "with")
  if type(ctx) == "function" then
    return self:with(nil, ctx, fn, ...)
  end
  if type(fn) ~= "function" then typeerror(2, "with", "function", fn) end
  local err
  err, ctx = cancelled(S.cur("with"), ctx, 1, "with")
  if err then return nil, err end
  local ok
  ok, err = self:lock(ctx)
  if not ok then return nil, err end
  return finish_with(self, xpcall(fn, S.trap, ...))
end

function MutexMT.__tostring(m)
  return format("weft.mutex: #%d (%s)", m.id, m.locked and "locked" or
    "unlocked")
end

--[[ Semaphore ]]
-- A weighted semaphore with the semantics of golang.org/x/sync/semaphore:
-- FIFO, and a request at the head that does not fit blocks smaller ones
-- behind it, so large requests are not starved.

local Sem = {}
local SemMT = { __index = Sem, __name = "weft.semaphore" }

local function checkweight(k, argn, fname)
  if k == nil then return 1 end
  if type(k) ~= "number" or k < 0 or k % 1 ~= 0 then
    argerror(argn, fname, "non-negative integer expected, got " ..
      (type(k) == "number" and tostring(k) or type(k)), 3)
  end
  return k
end

-- weft.semaphore(n) -> semaphore of n units
function M.semaphore(n)
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    argerror(1, "semaphore", "non-negative integer expected, got " ..
      (type(n) == "number" and tostring(n) or type(n)))
  end
  nobj = nobj + 1
  local s = setmetatable({ size = n, cur = 0, id = nobj }, SemMT)
  s.q = wq_new(s, "acquire")
  s.q.what = format("acquire on weft.semaphore #%d", nobj)
  return s
end

-- Grant waiters from the head while they fit.
local function notify(s)
  while true do
    local t, _, k = wq_head(s.q)
    if not t or s.size - s.cur < k then return end
    wq_pop(s.q)
    s.cur = s.cur + k
    wake(t, true)
  end
end

-- semaphore:acquire([ctx,] [k]) -> true | nil, err: take k units (default
-- 1), waiting in line. Fails at once when the context is done, even if the
-- units are free; a request larger than the semaphore waits until the
-- context is done.
function Sem:acquire(ctx, k)
  checkmt(self, SemMT, 1, "acquire")
  local argk = 2
  if type(ctx) == "number" then ctx, k, argk = nil, ctx, 1 end
  k = checkweight(k, argk, "acquire")
  local err
  err, ctx = cancelled(S.cur("acquire"), ctx, 1, "acquire")
  if err then return nil, err end
  if self.size - self.cur >= k and not wq_ready(self.q) then
    self.cur = self.cur + k
    return true
  end
  if k > self.size then
    return S.sleep(math.huge, ctx) -- only the context can end this wait
  end
  local ok
  ok, err = wait_on(self.q, k, ctx, "acquire")
  if ok then return true end
  -- Cancelled: if it was at the head, those behind may fit now.
  notify(self)
  return nil, err
end

-- semaphore:try_acquire([k]) -> true if it took k units without waiting
-- (false when they are not free or others are waiting)
function Sem:try_acquire(k)
  checkmt(self, SemMT, 1, "try_acquire")
  k = checkweight(k, 1, "try_acquire")
  if self.size - self.cur >= k and not wq_ready(self.q) then
    self.cur = self.cur + k
    return true
  end
  return false
end

-- semaphore:release([k]): give back k units (default 1). Raises when more
-- are released than are held.
function Sem:release(k)
  checkmt(self, SemMT, 1, "release")
  k = checkweight(k, 1, "release")
  if k > self.cur then
    error("weft.semaphore: released more than held", 2)
  end
  self.cur = self.cur - k
  notify(self)
end

function SemMT.__tostring(s)
  return format("weft.semaphore: #%d (%d of %d held)", s.id, s.cur, s.size)
end

--[[ Fence ]]
-- A one-way gate: closed until released, then open for good (storj's
-- sync2.Fence). Waiters park on the fence's own wait queue; the channel
-- released() hands out is only for select, and is closed on release. What
-- others do with that channel (send on it, say) cannot change what wait
-- returns.

local Fence = {}
local FenceMT = { __index = Fence, __name = "weft.fence" }

-- weft.fence() -> fence
function M.fence()
  nobj = nobj + 1
  local f = setmetatable({ ch = chan.chan(), open = false, id = nobj },
    FenceMT)
  f.q = wq_new(f, "wait")
  f.q.what = format("wait of weft.fence #%d", nobj)
  return f
end

-- fence:release(): open it; waiters go on. Idempotent.
function Fence:release()
  checkmt(self, FenceMT, 1, "release")
  if self.open then return end
  self.open = true
  while true do
    local t = wq_pop(self.q)
    if not t then break end
    wake(t, true)
  end
  self.ch:close()
end

-- fence:released() -> a channel closed when the fence is released, for
-- select
function Fence:released()
  checkmt(self, FenceMT, 1, "released")
  return self.ch
end

-- fence:is_released() -> boolean
function Fence:is_released()
  checkmt(self, FenceMT, 1, "is_released")
  return self.open
end

-- fence:wait([ctx]) -> true | nil, err
function Fence:wait(ctx)
  checkmt(self, FenceMT, 1, "wait")
  local err
  -- Level-triggered: a cancelled context fails, released or not.
  err, ctx = cancelled(S.cur("wait"), ctx, 1, "wait")
  if err then return nil, err end
  if self.open then return true end
  return wait_on(self.q, nil, ctx, "wait") -- release wakes it: true
end

function FenceMT.__tostring(f)
  return "weft.fence: " .. (f.open and "released" or "closed")
end

--[[ Once ]]

local Once = {}
local OnceMT = { __index = Once, __name = "weft.once" }

-- weft.once() -> once
function M.once()
  return setmetatable({ started = false, fence = M.fence() }, OnceMT)
end

-- once:call(fn, ...) -> true | nil, err: run fn(...) the first time only;
-- a caller that comes while it runs waits for it to finish (under its
-- context: (nil, err) if that is cancelled first). When fn raises, the error
-- goes to the caller that ran it, and the once counts as done, as Go's.
function Once:call(fn, ...)
  checkmt(self, OnceMT, 1, "call")
  if type(fn) ~= "function" then typeerror(1, "call", "function", fn) end
  if self.started then return self.fence:wait() end
  self.started = true
  local r = pack(xpcall(fn, S.trap, ...))
  self.fence:release()
  if not r[1] then error(r[2], 0) end
  return true
end

-- once:done() -> true once fn has run
function Once:done()
  checkmt(self, OnceMT, 1, "done")
  return self.fence.open
end

--[[ Locked state ]]
-- storj's sync2 Locked: a value only reachable under a mutex.

local Locked = {}
local LockedMT = { __index = Locked, __name = "weft.locked" }

-- weft.locked(state) -> locked
function M.locked(state)
  return setmetatable({ state = state, mu = M.mutex() }, LockedMT)
end

local function finish_modify(self, ok, ...)
  self.mu:unlock()
  if not ok then return nil, (...) end
  return ...
end

-- locked:modify([ctx,] fn) -> fn's results | nil, err: run fn(state)
-- holding the lock. A caller whose context is cancelled while waiting
-- returns (nil, err) at once, without running fn. An error fn raises
-- releases the lock and is returned (nil, err), as is one it returns.
function Locked:modify(ctx, fn)
  checkmt(self, LockedMT, 1, "modify")
  if type(ctx) == "function" and fn == nil then ctx, fn = nil, ctx end
  if type(fn) ~= "function" then typeerror(2, "modify", "function", fn) end
  local err
  err, ctx = cancelled(S.cur("modify"), ctx, 1, "modify")
  if err then return nil, err end
  local ok
  ok, err = self.mu:lock(ctx)
  if not ok then return nil, err end
  return finish_modify(self, xpcall(fn, S.trap, self.state))
end

function LockedMT.__tostring(l)
  return "weft.locked: " .. (l.mu.locked and "locked" or "unlocked")
end

M.Mutex, M.Sem, M.Fence, M.Once, M.Locked = Mutex, Sem, Fence, Once, Locked
R.sync = M
return M
