-- weft.signal: signals for tasks (runtime/signal.c). A signal is taken
-- from its usual handler (for SIGINT and SIGTERM in the weft command: the
-- graceful cancel of the root) only while a task listens with wait or
-- notify; once the last listener stops, the handler is back.

local S = require "weft.sched"
local io = require "weft.io"
local chan = require "weft.chan"
local sigcore = require "weft.sigcore"

local R = S.R
local T_CTX = S.T_CTX
local type, pairs, pcall = type, pairs, pcall

local M = {}

local listeners = {} -- signal number -> { n = listeners, saved = handler }

local function acquire(num)
  local l = listeners[num]
  if not l then
    l = { n = 0, saved = sigcore.save(num) }
    listeners[num] = l
  end
  l.n = l.n + 1
end

-- release(num) -> true when that was the last listener (the handler is
-- back).
local function release(num)
  local l = listeners[num]
  l.n = l.n - 1
  if l.n == 0 then
    listeners[num] = nil
    sigcore.restore(l.saved)
    return true
  end
  return false
end

-- listen(num, fn) -> listener | nil, err; stop(listener, num) ends it once.
local function listen(num, fn)
  acquire(num)
  local h, err = sigcore.start(num, fn)
  if not h then
    release(num)
    return nil, io.error(err)
  end
  return h
end

local function signal_arg(name, fname)
  if type(name) ~= "string" and type(name) ~= "number" then
    S.typeerror(1, fname, "signal name or number", name, 4)
  end
  local ok, num, sname = pcall(sigcore.number, name)
  -- C's message names no function of the caller's: blame the caller.
  if not ok then S.argerror(1, fname, num:match("%((.*)%)$") or num, 3) end
  return num, sname
end

-- A task's waits for one signal share one listener, kept between them
-- so that a signal that comes in the gap is neither lost nor handled by
-- the default handler (which may end the program): it is held, and the
-- task's next wait returns it at once (two held are one, as the kernel
-- keeps one pending signal). The listener goes once a signal finds the
-- task finished, which then gets the signal again through the handler
-- that is back.
local waiters = {} -- signal number -> { [task] = rec }
local nwaiters = {} -- signal number -> #waiters[num], and when to sweep

-- drop(rec, raise): stop rec's listener; raise: the signal that found its
-- task finished goes to the handler that is back (if this was the last).
local function drop(rec, raise)
  sigcore.stop(rec.h)
  local num = rec.num
  waiters[num][rec.t] = nil
  local c = nwaiters[num]
  c.n = c.n - 1
  if c.n == 0 then waiters[num], nwaiters[num] = nil, nil end
  if release(num) and raise then sigcore.raise(num) end
end

-- sweep(num): drop the listeners of finished tasks that no signal found,
-- once their number doubled, so that many short-lived waiters hold no
-- handles (amortised O(1) a wait).
local function sweep(num)
  local c = nwaiters[num]
  if c.n < c.limit then return end
  for _, rec in pairs(waiters[num]) do
    if rec.t[T_CTX] == false and not rec.id then drop(rec, false) end
  end
  c = nwaiters[num]
  if c then c.limit = 2 * c.n + 8 end
end

local function on_signal(rec, name)
  local id = rec.id
  if id then
    rec.id = nil
    sigcore.ref(rec.h, false)
    R.io_done(id, name)
  elseif rec.t[T_CTX] == false then -- the task has finished
    drop(rec, true)
  else
    rec.held = true
  end
end

local function wait_start(id, num, name, t)
  local recs = waiters[num]
  local rec = recs and recs[t]
  if not rec then
    rec = { num = num, t = t }
    local h, err = listen(num, function() on_signal(rec, name) end)
    if not h then return nil, err end
    rec.h = h
    if not recs then
      recs = {}
      waiters[num], nwaiters[num] = recs, { n = 0, limit = 8 }
    end
    recs[t] = rec
    local c = nwaiters[num]
    c.n = c.n + 1
    sweep(num)
  else
    sigcore.ref(rec.h, true)
  end
  rec.id = id
  return rec
end

local function wait_cancel(rec)
  rec.id = nil
  sigcore.ref(rec.h, false)
end

-- weft.signal.wait(name [, ctx]) -> name | nil, err: wait for the signal
-- ("SIGUSR1", "USR1" or a number) to arrive; one that came since this
-- task's last wait for it returns at once.
function M.wait(name, ctx)
  local num, sname = signal_arg(name, "wait")
  ctx = io.checkctx(ctx, 2, "wait")
  local t = S.cur("weft.signal.wait")
  local recs = waiters[num]
  local rec = recs and recs[t]
  if rec and rec.held then
    rec.held = false
    return sname
  end
  return io.call(ctx, "weft.signal.wait", wait_start, wait_cancel, num, sname,
    t)
end

-- weft.signal.notify(name) -> channel, stop: the channel receives the
-- signal's name each time it arrives (dropped while 16 wait unread, as Go's
-- signal.Notify drops); stop() stops listening and closes the channel.
function M.notify(name)
  local num, sname = signal_arg(name, "notify")
  local ch = chan.chan(16)
  local c = chan.states[ch]
  local h, err = listen(num, function()
    if not c.closed then chan.try_send(c, sname) end
  end)
  if not h then return nil, err end
  local function stop()
    if h then
      sigcore.stop(h)
      h = nil
      release(num)
      ch:close()
    end
  end
  return ch, stop
end

return M
