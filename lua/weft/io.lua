-- weft.io: how a task waits for an I/O operation (runtime/io.c).
--
-- call(ctx, what, start, cancel, ...) starts an operation with a fresh id
-- (start(id, ...) is a C binding that returns its request, or nil, err when
-- it could not start), parks the running task on it and returns what the
-- completion delivers. C calls R.io_done(id, ...) from the libuv callback;
-- an id nobody waits for any more (the wait was cancelled) is dropped.
-- Cancelling the wait calls cancel(request), which aborts the operation
-- or, when it is too late for that, makes its completion only clean up.

local S = require "weft.sched"
local errors = require "weft.errors"
local iocore = require "weft.iocore"

local R = S.R
local block, park, wake = S.block, S.park, S.wake
local T_WAIT = S.T_WAIT
local type, format, setmetatable, getmetatable = type, string.format,
  setmetatable, getmetatable

local M = {}

local OpMT = { __name = "weft.io" }
local waiting = {} -- operation id -> the task waiting for it
local last_id = 0
-- Op tables of completed waits, reused, so that a wait allocates none
-- (measured: ~8% of the user time of bench/net_ab.sh echo went to them).
local spare, nspare = {}, 0

function OpMT.unpark(w)
  if waiting[w.id] then
    waiting[w.id] = nil
    R.nwork = R.nwork - 1
    w.cancel(w.req)
  end
end

function OpMT.describe(w)
  return w.what
end

-- error(e) -> a weft error from C's {code=, text=, what=}: its kind is
-- libuv's error name (ENOENT), its message names the operation and path.
function M.error(e)
  if type(e) ~= "table" or errors.is_error(e) then return e end
  return errors.new(e.code or "EIO", format("%s: %s", e.what or "I/O",
    e.text or "error"))
end

function R.io_done(id, a, b)
  local t = waiting[id]
  if not t then return end
  waiting[id] = nil
  R.nwork = R.nwork - 1
  if a == nil then b = M.error(b) end
  local w = t[T_WAIT] -- its op, which nothing refers to once t is woken
  wake(t, a, b)
  if nspare < 64 and getmetatable(w) == OpMT and w.id == id then
    w.req, w.cancel = nil, nil
    nspare = nspare + 1
    spare[nspare] = w
  end
end
iocore.set_done(R.io_done)

-- call(ctx, what, start, cancel, ...) -> results | nil, err
function M.call(ctx, what, start, cancel, ...)
  local t = S.cur(what)
  local c = ctx or t[S.T_CTX]
  local n = c.node
  if n and n.cerr then return S.refuse(t, n) end
  last_id = last_id < 0x7ffffffe and last_id + 1 or 1
  local id = last_id
  S.headroom() -- before the operation starts: see weft.sched
  local req, err = start(id, ...)
  if not req then return nil, M.error(err) end
  waiting[id] = t
  R.nwork = R.nwork + 1 -- not durably blocked: virtual time waits for it
  local w
  if nspare > 0 then
    w = spare[nspare]
    spare[nspare] = nil
    nspare = nspare - 1
    w.id, w.req, w.cancel, w.what = id, req, cancel, what
  else
    w = setmetatable({ id = id, req = req, cancel = cancel, what = what },
      OpMT)
  end
  park(t, w, c)
  return block(t, what)
end

-- checkctx(ctx, argn, fname) -> ctx or nil: an optional context argument.
function M.checkctx(ctx, argn, fname)
  if ctx == nil then return nil end
  return S.checkmt(ctx, S.CtxMT, argn, fname)
end

return M
