-- weft.signal: signals for tasks (runtime/signal.c). A signal is taken
-- from its usual handler (for SIGINT and SIGTERM in the weft command: the
-- graceful cancel of the root) only while a task listens with wait or
-- notify; once the last listener stops, the handler is back.

local S = require "weft.sched"
local io = require "weft.io"
local chan = require "weft.chan"
local sigcore = require "weft.sigcore"

local R = S.R
local type = type

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

local function release(num)
  local l = listeners[num]
  l.n = l.n - 1
  if l.n == 0 then
    listeners[num] = nil
    sigcore.restore(l.saved)
  end
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
  return sigcore.number(name)
end

local function wait_start(id, num, name)
  local req = { num = num }
  local h, err = listen(num, function()
    if req.h then
      sigcore.stop(req.h)
      req.h = nil
      release(num)
    end
    R.io_done(id, name)
  end)
  if not h then return nil, err end
  req.h = h
  return req
end

local function wait_cancel(req)
  if req.h then
    sigcore.stop(req.h)
    req.h = nil
    release(req.num)
  end
end

-- weft.signal.wait(name [, ctx]) -> name | nil, err: wait for the signal
-- ("SIGUSR1", "USR1" or a number) to arrive.
function M.wait(name, ctx)
  local num, sname = signal_arg(name, "wait")
  ctx = io.checkctx(ctx, 2, "wait")
  return io.call(ctx, "weft.signal.wait", wait_start, wait_cancel, num, sname)
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
