-- weft.fs: files for tasks, on libuv's fs requests (runtime/fs.c): every
-- call blocks only the calling task, honours its context (or the ctx given
-- last) and fails with nil, err, err.kind being libuv's error name
-- (ENOENT, EACCES, ...) and its message naming the operation and the path.

local S = require "weft.sched"
local io = require "weft.io"
local errors = require "weft.errors"
local fscore = require "weft.fscore"

local call, cancel = io.call, fscore.cancel
local type, format, setmetatable, getmetatable = type, string.format,
  setmetatable, getmetatable
local concat = table.concat
local CtxMT, background = S.CtxMT, S.background

local M = {}

local CHUNK = 65536
local MAXREAD = 0x7fffffff -- one request reads at most this much
local MAXPOS = 2 ^ 53 -- offsets are exact integers below this
local MAXSTR = 0x7fffff00 -- LuaJIT's longest string
local floor = math.floor

-- ctxarg(ctx, argn, fname): raise unless ctx is nil or a context.
local function ctxarg(ctx, argn, fname)
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    S.typeerror(argn, fname, "weft.ctx", ctx, 3)
  end
  return ctx
end

-- path_arg: a string with no zero byte (the system call would take it for
-- the end, and use another path).
local function path_arg(p, argn, fname)
  if type(p) ~= "string" then S.typeerror(argn, fname, "string", p, 3) end
  if p:find("\0", 1, true) then
    S.argerror(argn, fname, "path contains a zero byte", 3)
  end
  return p
end

-- close_file(h) -> true | nil, err: no request may use file h any more.
-- If some still do (another task's, or one whose wait was cancelled), the
-- last of them closes it (runtime/fs.c), and its error, if any, is lost.
-- Else it is closed now, waited for under background: a cancelled task
-- still closes what it opened (a shield), and a close cannot be cancelled
-- half-way.
local function close_file(h)
  if not fscore.release(h) then return true end
  return call(background, "weft.fs: close", fscore.close, cancel, h)
end

--[[ Whole files ]]

local function read_all(h, size, ctx)
  local parts, n = {}, 0
  local want = size > 0 and size or CHUNK
  while true do
    local data, err = call(ctx, "weft.fs.read_file", fscore.read, cancel, h,
      want)
    if not data then return nil, err end
    if #data == 0 then break end
    n = n + 1
    parts[n] = data
    want = CHUNK -- the file grew, or a special file: read on
  end
  if n == 1 then return parts[1] end
  return concat(parts)
end

-- weft.fs.read_file(path [, ctx]) -> contents | nil, err
function M.read_file(path, ctx)
  path_arg(path, 1, "read_file")
  ctx = ctxarg(ctx, 2, "read_file")
  local h, err = call(ctx, "weft.fs.read_file", fscore.open, cancel, path,
    "r")
  if not h then return nil, err end
  local st
  st, err = call(ctx, "weft.fs.read_file", fscore.fstat, cancel, h)
  local data
  if st and st.size > MAXSTR then
    err = errors.new("EFBIG", format("weft.fs.read_file %s: file too " ..
      "large for a string (%.0f bytes)", path, st.size))
  elseif st then
    data, err = read_all(h, st.size, ctx)
  end
  close_file(h)
  if not data then return nil, err end
  return data
end

-- write_all(h, data, pos, ctx, fname) -> true | nil, err, written: all of
-- data at pos (-1: at the end, for append), a short write going on from
-- where it stopped (fscore.write takes the start: no substring is made).
local function write_all(h, data, pos, ctx, fname)
  local off = 0
  repeat
    local n, err = call(ctx, fname, fscore.write, cancel, h, data,
      pos < 0 and -1 or pos + off, off)
    if not n then return nil, err, off end
    off = off + n
  until off >= #data
  return true
end

local pid, tmp_seq = fscore.pid(), 0

-- temp_name(path) -> a new name beside path for write_file's temporary
-- file: this process's id and a count tell it from other writers' (a
-- name by the second did not: two processes picked the same), and the
-- base is cut so that the name fits NAME_MAX (255 bytes) when path does.
local function temp_name(path)
  tmp_seq = tmp_seq + 1
  local suffix = format(".tmp-%d-%d", pid, tmp_seq)
  local dir, base = path:match("^(.-)([^/]*)$")
  return dir .. base:sub(1, 255 - #suffix) .. suffix
end

-- weft.fs.write_file(path, data [, ctx]) -> true | nil, err: atomically,
-- through a temporary file beside it, synced and renamed over path, so a
-- reader sees the old contents or the new, never half of them.
function M.write_file(path, data, ctx)
  path_arg(path, 1, "write_file")
  if type(data) ~= "string" then
    S.typeerror(2, "write_file", "string", data)
  end
  ctx = ctxarg(ctx, 3, "write_file")
  local fname = "weft.fs.write_file"
  -- temp: the file is removed if this task never gets to rename it (an
  -- open abandoned by a cancel, the runtime freed meanwhile: runtime/fs.c).
  -- A name that exists (what a crashed process with this id left) is
  -- passed over.
  local tmp, h, err
  for _ = 1, 10 do
    tmp = temp_name(path)
    h, err = call(ctx, fname, fscore.open, cancel, tmp, "wx", 438, true)
    if h or err.kind ~= "EEXIST" then break end
  end
  if not h then return nil, err end
  local ok
  ok, err = write_all(h, data, 0, ctx, fname)
  if ok then ok, err = call(ctx, fname, fscore.fsync, cancel, h) end
  local cok, cerr = close_file(h)
  if ok and not cok then ok, err = nil, cerr end
  if ok then ok, err = call(ctx, fname, fscore.rename, cancel, tmp, path) end
  if not ok then call(background, fname, fscore.unlink, cancel, tmp) end
  fscore.keep(h)
  if not ok then return nil, err end
  return true
end

--[[ Open files ]]

local File = {}
local FileMT = { __index = File, __name = "weft.fs.file" }

local function check_file(f, fname)
  S.checkmt(f, FileMT, 1, fname)
  if f.h == nil then error("attempt to use a closed file", 3) end
  return f
end

-- weft.fs.open(path [, mode [, ctx]]) -> file | nil, err; mode as io.open's
-- ("r", "r+", "w", "w+", "a", "a+") or "wx" (create, fail if it exists).
function M.open(path, mode, ctx)
  path_arg(path, 1, "open")
  if mode ~= nil and type(mode) ~= "string" then
    S.typeerror(2, "open", "string", mode)
  end
  mode = mode or "r"
  local ok = ({ r = 1, ["r+"] = 1, w = 1, ["w+"] = 1, a = 1, ["a+"] = 1,
    wx = 1 })[mode]
  if not ok then
    S.argerror(2, "open", "mode 'r', 'r+', 'w', 'w+', 'a', 'a+' or 'wx' " ..
      "expected")
  end
  ctx = ctxarg(ctx, 3, "open")
  local h, err = call(ctx, "weft.fs.open", fscore.open, cancel, path, mode)
  if not h then return nil, err end
  -- h: a file nobody closed is closed when h is collected (runtime/fs.c).
  return setmetatable({ h = h, pos = 0, path = path,
    append = mode:sub(1, 1) == "a" }, FileMT)
end

-- unseekable(f, err) -> whether err says f has no offsets (a FIFO, a
-- terminal: ESPIPE), which f then remembers, to read and write in order.
local function unseekable(f, err)
  if f.pipe or err.kind ~= "ESPIPE" then return false end
  f.pipe = true
  return true
end

-- stopped(f, pos, done, asked): a read or write of asked bytes at pos did
-- done: when short (the end, an error), the position goes back to where it
-- stopped, unless something since (a seek, another task's call stopping
-- sooner) left it before that. NOTE: tasks that read one file at once each
-- get their own part of it because each call reserves its range at once;
-- a short read then gives back the rest of its range.
local function stopped(f, pos, done, asked)
  if done < asked and f.pos > pos + done then f.pos = pos + done end
end

-- file:read([n [, ctx]]) -> data | nil, err (kind "EOF" at the end): up
-- to n whole bytes (default 64 KiB; at most 2 GiB - 1 at once).
function File.read(f, n, ctx)
  check_file(f, "read")
  if n ~= nil and (type(n) ~= "number" or n ~= n or n < 0) then
    S.typeerror(2, "read", "non-negative number", n)
  end
  ctx = ctxarg(ctx, 3, "read")
  n = n and floor(n < MAXREAD and n or MAXREAD) or CHUNK
  local pos, data, err = f.pos
  repeat
    f.pos = pos + n -- reserved: another task's read starts after this one
    data, err = call(ctx, "file:read", fscore.read, cancel, f.h, n,
      f.pipe and -1 or pos)
  until data or not unseekable(f, err)
  stopped(f, pos, data and #data or 0, n)
  if not data then return nil, err end
  if #data == 0 and n > 0 then
    return nil, errors.new("EOF", "file:read " .. f.path .. ": end of file")
  end
  return data
end

-- file:write(data [, ctx]) -> true | nil, err
function File.write(f, data, ctx)
  check_file(f, "write")
  if type(data) ~= "string" then S.typeerror(2, "write", "string", data) end
  ctx = ctxarg(ctx, 3, "write")
  local pos, ok, err, n = f.pos
  repeat
    if not f.append then f.pos = pos + #data end -- reserved, as for read
    ok, err, n = write_all(f.h, data, (f.append or f.pipe) and -1 or pos,
      ctx, "file:write")
  until ok or n > 0 or not unseekable(f, err)
  if not f.append then stopped(f, pos, n or #data, #data) end
  if not ok then return nil, err end
  return true
end

-- file:seek([whence [, offset]]) -> position | nil, err, as io's seek.
function File.seek(f, whence, offset)
  check_file(f, "seek")
  whence = whence or "cur"
  offset = offset or 0
  if type(offset) ~= "number" or offset ~= offset then
    S.typeerror(3, "seek", "number", offset)
  end
  if offset ~= floor(offset) or offset > MAXPOS or offset < -MAXPOS then
    S.argerror(3, "seek", "integer expected, within 2^53")
  end
  if f.pipe then
    return nil, errors.new("ESPIPE", "file:seek " .. f.path ..
      ": not seekable")
  end
  local base
  if whence == "set" then
    base = 0
  elseif whence == "cur" then
    base = f.pos
  elseif whence == "end" then
    local st, err = call(nil, "file:seek", fscore.fstat, cancel, f.h)
    if not st then return nil, err end
    base = st.size
  else
    S.argerror(2, "seek", "'set', 'cur' or 'end' expected")
  end
  if base + offset < 0 or base + offset > MAXPOS then
    return nil, errors.new("EINVAL", "file:seek " .. f.path ..
      ": position before the start or past 2^53")
  end
  f.pos = base + offset
  return f.pos
end

-- file:sync([ctx]) -> true | nil, err
function File.sync(f, ctx)
  check_file(f, "sync")
  return call(ctxarg(ctx, 2, "sync"), "file:sync", fscore.fsync, cancel, f.h)
end

-- file:close() -> true | nil, err; closing twice does nothing.
function File.close(f)
  S.checkmt(f, FileMT, 1, "close")
  local h = f.h
  if h == nil then return true end
  f.h = nil
  return close_file(h)
end

function FileMT.__tostring(f)
  return format("weft.fs.file: %s (%s)", f.path, f.h and "open" or "closed")
end

-- weft.fs.lines(path [, ctx]) -> an iterator over the file's lines
-- (without their "\n"), for a `for` loop. It raises on an error, as
-- io.lines does; the file is closed at the end.
function M.lines(path, ctx)
  path_arg(path, 1, "lines")
  ctx = ctxarg(ctx, 2, "lines")
  local f, err = M.open(path, "r", ctx)
  if not f then error(tostring(err), 2) end
  -- buf is the last chunk read, not returned yet from byte pos on: a line
  -- is one substring of it. A line that spans chunks is kept in pieces
  -- (parts) and joined once, so a long line costs no more than its length
  -- (appending each chunk to the rest made it quadratic).
  local buf, pos, done, closed = "", 1, false, false
  local parts, np = {}, 0
  local function joined(last)
    parts[np + 1] = last
    local line = concat(parts, "", 1, np + 1)
    parts, np = {}, 0
    return line
  end
  return function()
    while true do
      local i = buf:find("\n", pos, true)
      if i then
        local line = buf:sub(pos, i - 1)
        pos = i + 1
        if np > 0 then line = joined(line) end
        return line
      end
      if pos <= #buf then
        np = np + 1
        parts[np] = buf:sub(pos)
      end
      buf, pos = "", 1
      if done then
        if not closed then
          closed = true
          f:close()
        end
        if np > 0 then return joined("") end
        return nil
      end
      local data, rerr = f:read(CHUNK, ctx)
      if not data then
        if rerr.kind ~= "EOF" then
          f:close()
          error(tostring(rerr), 2)
        end
        done = true
      else
        buf = data
      end
    end
  end
end

--[[ Paths and directories ]]

-- weft.fs.stat(path [, ctx]) -> {size=, mode=, type=, mtime=, ...} | nil, err
function M.stat(path, ctx)
  path_arg(path, 1, "stat")
  return call(ctxarg(ctx, 2, "stat"), "weft.fs.stat", fscore.stat, cancel,
    path)
end

-- weft.fs.mkdir(path [, {parents=, mode=}] [, ctx]) -> true | nil, err
function M.mkdir(path, opts, ctx)
  path_arg(path, 1, "mkdir")
  if opts ~= nil and type(opts) ~= "table" then
    S.typeerror(2, "mkdir", "table", opts)
  end
  ctx = ctxarg(ctx, 3, "mkdir")
  local mode = opts and opts.mode or 511
  if type(mode) ~= "number" or mode ~= floor(mode) or mode < 0 or
      mode > 4095 then
    S.argerror(2, "mkdir", "mode from 0 to 0o7777 expected")
  end
  if not (opts and opts.parents) then
    return call(ctx, "weft.fs.mkdir", fscore.mkdir, cancel, path, mode)
  end
  -- With parents: each missing one, and an existing directory is fine.
  local sofar = path:sub(1, 1) == "/" and "/" or ""
  for part in path:gmatch("[^/]+") do
    sofar = sofar .. part
    local ok, err = call(ctx, "weft.fs.mkdir", fscore.mkdir, cancel, sofar,
      mode)
    if not ok and err.kind ~= "EEXIST" then return nil, err end
    sofar = sofar .. "/"
  end
  local st, err = M.stat(path, ctx)
  if not st then return nil, err end
  if st.type ~= "directory" then
    return nil, errors.new("ENOTDIR", "weft.fs.mkdir " .. path ..
      ": not a directory")
  end
  return true
end

-- weft.fs.readdir(path [, ctx]) -> sorted list of names | nil, err
function M.readdir(path, ctx)
  path_arg(path, 1, "readdir")
  local list, err = call(ctxarg(ctx, 2, "readdir"), "weft.fs.readdir",
    fscore.scandir, cancel, path)
  if not list then return nil, err end
  table.sort(list)
  return list
end

-- weft.fs.remove(path [, ctx]) -> true | nil, err: a file, or an empty
-- directory.
function M.remove(path, ctx)
  path_arg(path, 1, "remove")
  ctx = ctxarg(ctx, 2, "remove")
  local ok, err = call(ctx, "weft.fs.remove", fscore.unlink, cancel, path)
  if not ok and (err.kind == "EISDIR" or err.kind == "EPERM") then
    return call(ctx, "weft.fs.remove", fscore.rmdir, cancel, path)
  end
  return ok, err
end

-- weft.fs.rename(from, to [, ctx]) -> true | nil, err
function M.rename(from, to, ctx)
  path_arg(from, 1, "rename")
  path_arg(to, 2, "rename")
  return call(ctxarg(ctx, 3, "rename"), "weft.fs.rename", fscore.rename,
    cancel, from, to)
end

-- weft.fs.tmpdir([prefix] [, ctx]) -> path of a new private directory
function M.tmpdir(prefix, ctx)
  if prefix ~= nil then path_arg(prefix, 1, "tmpdir") end
  local base = os.getenv("TMPDIR") or "/tmp"
  return call(ctxarg(ctx, 2, "tmpdir"), "weft.fs.tmpdir", fscore.mkdtemp,
    cancel, format("%s/%sXXXXXX", base, prefix or "weft-"))
end

return M
