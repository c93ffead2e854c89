-- weft.stdin, weft.stdout, weft.stderr: the process's standard streams
-- for tasks. stdin is opened on first use after what it is
-- (uv_guess_handle): a terminal (uv_tty_t) or a pipe (uv_pipe_t) is a
-- stream (runtime/stream.c) read with the conn methods TCP conns and a
-- child's pipes have (lua/weft/stream.lua); a file, which libuv cannot
-- poll, is read through fs reads at its position, with a line buffer here.
-- Writes go through fs writes on descriptors 1 and 2, which work alike
-- for terminals, pipes and files and leave the descriptors blocking, as
-- print needs them; C's buffered stdout is flushed first, so print and
-- write keep their order. print's output is flushed at exit (main.c).

local S = require "weft.sched"
local io = require "weft.io"
local errors = require "weft.errors"
local fscore = require "weft.fscore"
local stream = require "weft.stream"
local streamcore = require "weft.streamcore"

local call, cancel = io.call, fscore.cancel
local type, tostring, error, getmetatable, setmetatable = type, tostring,
  error, getmetatable, setmetatable
local cstdout = _G.io.stdout
local floor = math.floor

local M = {}

local CHUNK = 65536
local AGAIN = 0.001 -- seconds between writes a full non-blocking fd refused

local _, StreamMT = stream.class("weft.stdin")

--[[ A file on stdin: fs reads, and lines split here ]]

local File = {}
local FileMT = { __index = File }

local function fsread(max, ctx)
  local data, err = call(ctx, "stdin:read", fscore.read, cancel, 0, max)
  if not data then return nil, err end
  if #data == 0 then return nil, errors.new("EOF", "stdin: end of file") end
  return data
end

function File.read(f, max, ctx)
  if getmetatable(max) == S.CtxMT then max, ctx = nil, max end
  if max ~= nil and (type(max) ~= "number" or max ~= max or max < 0) then
    S.typeerror(2, "read", "non-negative number", max)
  end
  ctx = stream.ctxarg(ctx, 3, "read")
  max = max and floor(max) or CHUNK
  if max == 0 then return "" end
  local buf = f.buf
  -- As from a pipe, a read returns what one read gives, at most max: one
  -- fs read of at most CHUNK (a huge max was a huge buffer, or raised).
  if #buf == 0 then return fsread(max < CHUNK and max or CHUNK, ctx) end
  if max >= #buf then
    f.buf = ""
    return buf
  end
  f.buf = buf:sub(max + 1)
  return buf:sub(1, max)
end

function File.read_line(f, ctx)
  ctx = stream.ctxarg(ctx, 2, "read_line")
  local from = 1
  while true do
    local buf = f.buf
    local i = buf:find("\n", from, true)
    if i then
      f.buf = buf:sub(i + 1)
      return buf:sub(1, buf:byte(i - 1) == 13 and i - 2 or i - 1)
    end
    from = #buf + 1
    local data, err = fsread(CHUNK, ctx)
    if not data then
      if err.kind == "EOF" and #buf > 0 then
        f.buf = ""
        return buf
      end
      return nil, err
    end
    f.buf = buf .. data
  end
end

function File.lines(f, ctx)
  ctx = stream.ctxarg(ctx, 2, "lines")
  return function()
    local line, err = f:read_line(ctx)
    if line then return line end
    if err.kind ~= "EOF" then error(tostring(err), 2) end
    return nil
  end
end

local conn -- stdin's conn, once opened
local kind

-- stdin_conn() -> stdin's conn | nil, err (libuv could not open it)
local function stdin_conn()
  if conn then return conn end
  local k, h = streamcore.open_stdio(0)
  if k == nil then return nil, io.error(h) end
  kind = k
  if h then
    conn = stream.wrap(h, StreamMT)
  else
    conn = setmetatable({ buf = "" }, FileMT)
  end
  return conn
end

local Stdin = {}
local StdinMT = { __index = Stdin, __name = "weft.stdin" }

-- weft.stdin:read([max] [, ctx]) -> data | nil, err (EOF at the end)
function Stdin.read(s, max, ctx)
  S.checkmt(s, StdinMT, 1, "read")
  local c, err = stdin_conn()
  if not c then return nil, err end
  return c:read(max, ctx) -- a tail call: errors blame our caller
end

-- weft.stdin:read_line([ctx]) -> line | nil, err
function Stdin.read_line(s, ctx)
  S.checkmt(s, StdinMT, 1, "read_line")
  local c, err = stdin_conn()
  if not c then return nil, err end
  return c:read_line(ctx) -- a tail call: errors blame our caller
end

-- weft.stdin:lines([ctx]) -> iterator over the lines
function Stdin.lines(s, ctx)
  S.checkmt(s, StdinMT, 1, "lines")
  local c, err = stdin_conn()
  if not c then return nil, err end
  return c:lines(ctx) -- a tail call: errors blame our caller
end

function StdinMT.__tostring()
  return "weft.stdin" .. (kind and " (" .. kind .. ")" or "")
end

local Out = {}
local OutMT = { __index = Out, __name = "weft.stdout" }

-- weft.stdout:write(s [, ctx]) / weft.stderr:write -> true | nil, err
function Out.write(o, data, ctx)
  S.checkmt(o, OutMT, 1, "write")
  if type(data) ~= "string" then S.typeerror(1, "write", "string", data) end
  ctx = io.checkctx(ctx, 2, "write")
  cstdout:flush()
  local off = 0
  while off < #data do
    local chunk = off == 0 and data or data:sub(off + 1)
    local n, err = call(ctx, o.what, fscore.write, cancel, o.fd, chunk, -1)
    if n then
      off = off + n
    elseif err.kind == "EAGAIN" then
      -- The descriptor is non-blocking: stdin is the same socket (inetd,
      -- socket activation) and libuv made their one file description
      -- non-blocking when stdin opened. Wait for the reader, and go on.
      local ok, werr = S.sleep(AGAIN, ctx)
      if not ok then return nil, werr end
    else
      return nil, err
    end
  end
  return true
end

function OutMT.__tostring(o)
  return "weft." .. o.name
end

M.stdin = setmetatable({}, StdinMT)
M.stdout = setmetatable({ fd = 1, name = "stdout", what = "stdout:write" },
  OutMT)
M.stderr = setmetatable({ fd = 2, name = "stderr", what = "stderr:write" },
  OutMT)

return M
