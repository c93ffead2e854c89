-- weft.stdin, weft.stdout, weft.stderr: the process's standard streams
-- for tasks. stdin is opened on first use after what it is
-- (uv_guess_handle): a terminal (uv_tty_t) or a pipe (uv_pipe_t) is read
-- as a child's pipe is (lua/weft/process.lua), a file through fs reads.
-- Writes go through fs writes on descriptors 1 and 2, which work alike
-- for terminals, pipes and files and leave the descriptors blocking, as
-- print needs them; C's buffered stdout is flushed first, so print and
-- write keep their order. print's output is flushed at exit (main.c).

local S = require "weft.sched"
local io = require "weft.io"
local errors = require "weft.errors"
local fscore = require "weft.fscore"
local pc = require "weft.proccore"
local process = require "weft.process"

local call, cancel = io.call, fscore.cancel
local type = type
local cstdout = _G.io.stdout

local M = {}

local conn -- stdin's conn, once opened

local function stdin_conn()
  if conn then return conn end
  local kind, ud = pc.open_stdio(0)
  if ud then
    conn = process.pipe(ud)
  else
    -- A file (or what libuv cannot poll): fs reads at the position.
    conn = process.pipe(nil)
    conn.rawread = function(max, ctx)
      local data, err = call(ctx, "stdin:read", fscore.read, cancel, 0, max)
      if not data then return nil, err end
      if #data == 0 then
        return nil, errors.new("EOF", "stdin: end of file")
      end
      return data
    end
  end
  conn.kind = kind
  return conn
end

local Stdin = {}
local StdinMT = { __index = Stdin, __name = "weft.stdin" }

-- weft.stdin:read([max] [, ctx]) -> data | nil, err (EOF at the end)
function Stdin.read(s, max, ctx)
  S.checkmt(s, StdinMT, 1, "read")
  return stdin_conn():read(max, ctx)
end

-- weft.stdin:read_line([ctx]) -> line | nil, err
function Stdin.read_line(s, ctx)
  S.checkmt(s, StdinMT, 1, "read_line")
  return stdin_conn():read_line(ctx)
end

-- weft.stdin:lines([ctx]) -> iterator over the lines
function Stdin.lines(s, ctx)
  S.checkmt(s, StdinMT, 1, "lines")
  return stdin_conn():lines(ctx)
end

function StdinMT.__tostring()
  return "weft.stdin" .. (conn and " (" .. conn.kind .. ")" or "")
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
    if not n then return nil, err end
    off = off + n
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
