-- weft.stream: the conn methods every stream shares (runtime/stream.c):
-- TCP conns (weft.net), a child's pipes (weft.process) and stdin on a
-- terminal or a pipe (weft.stdio). A kind of conn is made by class(name),
-- which gives its own methods table and metatable, so that a kind adds
-- methods of its own (peer, set_nodelay) and errors name the kind the
-- caller used ("weft.tcp.conn expected"), while reading, writing and
-- closing are the same code for all.
--
-- Every call blocks only the calling task, honours its context (or the
-- ctx given last) and fails with nil, err, err.kind being libuv's error
-- name (EOF at the end, EPIPE, ECONNRESET, ...) and its message naming the
-- operation and the stream ("read 127.0.0.1:80", "read stdout of cat").

local S = require "weft.sched"
local io = require "weft.io"
local errors = require "weft.errors"
local streamcore = require "weft.streamcore"

local R = S.R
local call, ioerror = io.call, io.error
local CtxMT = S.CtxMT
local type, select, format, tostring, error, getmetatable, setmetatable =
  type, select, string.format, tostring, error, getmetatable, setmetatable

local take, sread, read_cancel = streamcore.take, streamcore.read,
  streamcore.read_cancel
local take_into = streamcore.take_into
local BufferMT = getmetatable(require("string.buffer").new())
local swrite, drain, drain_cancel = streamcore.write, streamcore.drain,
  streamcore.drain_cancel

local M = {}

local MAXREAD = 0x7fffffff -- the largest read stream.c takes
local HWM = 1048576 -- stream.c's read-ahead high-water mark

-- ctxarg(ctx, argn, fname) -> ctx: an optional context argument, which
-- blames the caller of the API function.
local function ctxarg(ctx, argn, fname)
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    S.typeerror(argn, fname, "weft.ctx", ctx, 3)
  end
  return ctx
end
M.ctxarg = ctxarg

-- wake_closed(what, id...): wake the tasks whose operations were waiting
-- on a handle just closed.
function M.wake_closed(what, ...)
  for i = 1, select("#", ...) do
    R.io_done((select(i, ...)), nil, errors.new("closed",
      what .. ": closed while waiting"))
  end
end
local wake_closed = M.wake_closed

-- read(h, mode, n, ctx, what): what is buffered, else wait for it.
local function read(h, mode, n, ctx, what)
  local v, err = take(h, mode, n)
  if v == nil and err == nil then
    return call(ctx, what, sread, read_cancel, h, mode, n)
  end
  if v == nil then return nil, ioerror(err) end
  return v
end

-- class(name) -> Conn, ConnMT, check: the methods table and metatable of a
-- kind of conn named name, and check(c, fname) -> its stream (raising on
-- a value of another kind or a closed conn). A conn is {h = stream}.
function M.class(name)
  local Conn = {}
  local ConnMT = { __index = Conn, __name = name }

  local function check(c, fname)
    if getmetatable(c) ~= ConnMT then S.typeerror(1, fname, name, c, 3) end
    local h = c.h
    if h == nil then error("attempt to use a closed conn", 3) end
    return h
  end

  -- conn:read([max] [, ctx]) -> data | nil, err: whatever arrived, at most
  -- max bytes (64 KiB by default); kind "EOF" at the end.
  function Conn.read(c, max, ctx)
    local h = check(c, "read")
    if getmetatable(max) == CtxMT then max, ctx = nil, max end
    if max ~= nil and (type(max) ~= "number" or max ~= max or max < 0) then
      S.typeerror(2, "read", "non-negative number", max)
    end
    ctx = ctxarg(ctx, 3, "read")
    if max == 0 then return "" end
    -- A read returns what is buffered, never more: any max past what one
    -- read can hold means "whatever came" (C takes sizes below 2^31; a
    -- huge max raised, blaming 'take', gh-11).
    if max and max > MAXREAD then max = MAXREAD end
    return read(h, "any", max or 65536, ctx, "conn:read")
  end

  -- conn:read_into(buf [, max] [, ctx]) -> n | nil, err: as read, but the
  -- bytes (at most max, 64 KiB by default, 1 MiB at most at once) are
  -- appended to buf, a LuaJIT string.buffer, and no Lua string is made
  -- (one copy, from the C buffer into buf's memory). Returns how many.
  function Conn.read_into(c, buf, max, ctx)
    local h = check(c, "read_into")
    if getmetatable(buf) ~= BufferMT then
      S.typeerror(2, "read_into", "string.buffer", buf)
    end
    if getmetatable(max) == CtxMT then max, ctx = nil, max end
    if max ~= nil and (type(max) ~= "number" or max ~= max or max < 0) then
      S.typeerror(3, "read_into", "non-negative number", max)
    end
    ctx = ctxarg(ctx, 4, "read_into")
    if max == 0 then return 0 end
    -- More than stream.c ever buffers would only be reserved for nothing.
    max = max and (max > HWM and HWM or max - max % 1) or 65536
    if max == 0 then return 0 end
    while true do
      -- Reserve just before the call: buf may have grown while we waited.
      local p = buf:reserve(max)
      local k, err = take_into(h, p, max)
      if k then
        buf:commit(k)
        return k
      end
      if err then return nil, ioerror(err) end
      local ok
      ok, err = call(ctx, "conn:read_into", sread, read_cancel, h, "ready", 0)
      if not ok then return nil, err end
      -- Closed by another task after the wake-up.
      if c.h ~= h then
        return nil, errors.new("closed", "conn:read_into: closed while waiting")
      end
    end
  end

  -- conn:read_line([ctx]) -> line without its "\n" (or "\r\n") | nil, err;
  -- a last line without "\n" is a line.
  function Conn.read_line(c, ctx)
    local h = check(c, "read_line")
    return read(h, "line", 0, ctxarg(ctx, 2, "read_line"), "conn:read_line")
  end

  -- conn:read_exactly(n [, ctx]) -> n bytes | nil, err (kind "EOF" when the
  -- stream ends first; what came stays buffered).
  function Conn.read_exactly(c, n, ctx)
    local h = check(c, "read_exactly")
    if type(n) ~= "number" or n ~= n or n < 0 or n % 1 ~= 0 then
      S.typeerror(2, "read_exactly", "non-negative integer", n)
    end
    -- Checked here so that the error blames the caller, not 'take'.
    if n > MAXREAD then
      S.argerror(2, "read_exactly", "at most 2^31-1 bytes expected")
    end
    ctx = ctxarg(ctx, 3, "read_exactly")
    if n == 0 then return "" end
    return read(h, "exact", n, ctx, "conn:read_exactly")
  end

  -- conn:lines([ctx]) -> an iterator over the lines, for a `for` loop; it
  -- ends at EOF (or once the conn is closed) and raises on any other
  -- error, as io.lines does.
  function Conn.lines(c, ctx)
    check(c, "lines")
    ctxarg(ctx, 2, "lines")
    return function()
      local h = c.h
      if h == nil then return nil end
      local line, err = read(h, "line", 0, ctx, "conn:lines")
      if line then return line end
      if err.kind == "EOF" then return nil end
      error(tostring(err), 2)
    end
  end

  -- conn:write(data [, ctx]) -> true | nil, err: returns once the data is
  -- handed to the kernel or queued with at most 1 MiB ahead of it. A
  -- failure of queued bytes shows on a later write or shutdown. Cancelled,
  -- it returns at once; the queued bytes may still go out.
  function Conn.write(c, data, ctx)
    local h = check(c, "write")
    if type(data) ~= "string" then S.typeerror(2, "write", "string", data) end
    ctx = ctxarg(ctx, 3, "write")
    local ok, err = swrite(h, data)
    if ok then return true end
    if ok == nil then return nil, ioerror(err) end
    return call(ctx, "conn:write", drain, drain_cancel, h)
  end

  -- conn:shutdown([ctx]) -> true | nil, err: no more writes; the other end
  -- reads EOF once the queued bytes are written.
  function Conn.shutdown(c, ctx)
    local h = check(c, "shutdown")
    return call(ctxarg(ctx, 2, "shutdown"), "conn:shutdown",
      streamcore.shutdown, streamcore.shutdown_cancel, h)
  end

  -- conn:close() -> true; closing twice does nothing. Tasks waiting on the
  -- conn get nil, err (kind "closed"); bytes still queued are dropped
  -- (shutdown first to have them written).
  function Conn.close(c)
    S.checkmt(c, ConnMT, 1, "close")
    local h = c.h
    if h == nil then return true end
    c.addr = tostring(h):match(": (%S+)")
    c.h = nil
    wake_closed("conn", streamcore.close(h))
    return true
  end

  -- conn:buffered() -> bytes read ahead, bytes queued to write
  function Conn.buffered(c)
    return streamcore.buffered(check(c, "buffered"))
  end

  function ConnMT.__tostring(c)
    if c.h then return tostring(c.h) end
    return format("%s: %s (closed)", name, c.addr or "?")
  end

  return Conn, ConnMT, check
end

-- wrap(h, ConnMT) -> a conn of that kind over stream h
function M.wrap(h, mt)
  return setmetatable({ h = h }, mt)
end

return M
