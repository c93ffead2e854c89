-- weft.process: child processes for tasks, on libuv's uv_spawn
-- (runtime/process.c). No shell is involved: the command is run with the
-- arguments given. Waits honour their context; cancelling a wait ends the
-- child (SIGTERM, then SIGKILL after a grace) and the exit callback reaps
-- it, as it reaps a child nobody waits for.

local S = require "weft.sched"
local io = require "weft.io"
local ctxmod = require "weft.ctx"
local group = require "weft.group"
local stream = require "weft.stream"
local pc = require "weft.proccore"
local sigcore = require "weft.sigcore"

local call, wrap = io.call, stream.wrap
local type, tostring, format, setmetatable, pairs, ipairs = type, tostring,
  string.format, setmetatable, pairs, ipairs
local concat, sort = table.concat, table.sort

local M = {}

local CHUNK = 65536
local GRACE = 2 -- seconds from SIGTERM to SIGKILL when a wait is cancelled

--[[ Pipes: conns (weft.stream), as TCP's are ]]

local _, PipeMT = stream.class("weft.process.conn")

--[[ Processes ]]

local Proc = {}
local ProcMT = { __index = Proc, __name = "weft.process.proc" }

local modes = { pipe = true, inherit = true, null = true }

-- The checks below raise at the caller of spawn or run, named fname, whose
-- options are its argument argn: `level` counts from the function that
-- raises to that caller (3 from start, which spawn and run call).

local function stdio_mode(v, name, fname, argn)
  if v == nil then return "inherit" end
  if not modes[v] then
    S.argerror(argn, fname, format("field '%s': \"pipe\", \"inherit\" or " ..
      "\"null\" expected", name), 4)
  end
  return v
end

-- cstring(s, fname, argn, what, level) -> s, which C hands the system as
-- a C string: a zero byte would cut it short ("a\0b" ran as "a"), so it
-- is refused, as weft.fs refuses such paths.
local function cstring(s, fname, argn, what, level)
  if s:find("\0", 1, true) then
    S.argerror(argn, fname, what .. " contains a zero byte", level)
  end
  return s
end

-- env_list(env, fname, argn) -> a sorted list of "name=value": names
-- non-empty and without "=" (which would make another name), names and
-- values strings or numbers.
local function env_list(env, fname, argn)
  if type(env) ~= "table" then
    S.argerror(argn, fname, "field 'env': table expected", 4)
  end
  local list = {}
  for k, v in pairs(env) do
    if type(k) ~= "string" and type(k) ~= "number" then
      S.argerror(argn, fname, "field 'env': name expected, got " ..
        S.tname(k), 4)
    end
    k = tostring(k)
    if k == "" or k:find("=", 1, true) then
      S.argerror(argn, fname, format("field 'env': bad name %q", k), 4)
    end
    if type(v) ~= "string" and type(v) ~= "number" then
      S.argerror(argn, fname, format("field 'env': %s: string expected, " ..
        "got %s", k, S.tname(v)), 4)
    end
    list[#list + 1] = cstring(k .. "=" .. tostring(v), fname, argn,
      "field 'env': " .. k, 5)
  end
  sort(list)
  return list
end

-- start(fname, argn, cmd, args, opts) -> proc | nil, err: spawn's work,
-- for spawn and run; args is a list of strings already checked.
local function start(fname, argn, cmd, args, opts)
  cstring(cmd, fname, 1, "the command", 4) -- argument 1 of spawn and run
  local env = opts.env ~= nil and env_list(opts.env, fname, argn) or nil
  local cwd = opts.cwd
  if cwd ~= nil then
    if type(cwd) ~= "string" then
      S.argerror(argn, fname, "field 'cwd': string expected", 3)
    end
    cstring(cwd, fname, argn, "field 'cwd'", 4)
  end
  local grace = opts.grace or GRACE
  if type(grace) ~= "number" or grace ~= grace or grace < 0 then
    S.argerror(argn, fname, "field 'grace': non-negative number expected", 3)
  end
  local ud, i, o, e = pc.spawn { file = cmd, args = args, env = env,
    cwd = cwd, stdio = { stdio_mode(opts.stdin, "stdin", fname, argn),
      stdio_mode(opts.stdout, "stdout", fname, argn),
      stdio_mode(opts.stderr, "stderr", fname, argn) } }
  if not ud then return nil, io.error(i) end
  return setmetatable({ ud = ud, cmd = cmd, grace = grace,
    stdin = i and wrap(i, PipeMT) or nil, stdout = o and wrap(o, PipeMT)
    or nil, stderr = e and wrap(e, PipeMT) or nil }, ProcMT)
end

-- arg_list(list, from, fname, argn, what) -> list[from..] as strings (a
-- copy: the caller's list is left as it was, numbers stay numbers).
local function arg_list(list, from, fname, argn, what)
  local out = {}
  for i = from, #list do
    local a = list[i]
    if type(a) ~= "string" and type(a) ~= "number" then
      S.argerror(argn, fname, format("%s %d: string expected, got %s", what,
        i, S.tname(a)), 3)
    end
    out[#out + 1] = cstring(tostring(a), fname, argn, format("%s %d", what,
      i), 4)
  end
  return out
end

-- weft.process.spawn{cmd, args=, cwd=, env=, stdin=, stdout=, stderr=,
-- grace=} -> proc | nil, err. env, when given, replaces the environment
-- (a table of name = value); each stdio is "pipe", "inherit" (default) or
-- "null".
function M.spawn(opts)
  if type(opts) ~= "table" then S.typeerror(1, "spawn", "table", opts) end
  local cmd = opts[1] or opts.cmd
  if type(cmd) ~= "string" then
    S.argerror(1, "spawn", "field 1: command (string) expected")
  end
  local args = opts.args
  if args ~= nil then
    if type(args) ~= "table" then
      S.argerror(1, "spawn", "field 'args': table expected")
    end
    args = arg_list(args, 1, "spawn", 1, "field 'args' at")
  end
  local p, err = start("spawn", 1, cmd, args, opts) -- no tail call: see start
  return p, err
end

local function wait_start(id, p)
  pc.wait(id, p.ud)
  return { p = p, id = id }
end

local function wait_cancel(req)
  pc.terminate(req.p.ud, req.id, req.p.grace)
end

-- proc:wait([ctx]) -> code, signal | nil, err. code is the exit status, or
-- 128 + N for a child killed by signal N, whose name is then signal
-- ("SIGTERM"). Cancelling ctx ends the child (see the top of the file).
function Proc.wait(p, ctx)
  S.checkmt(p, ProcMT, 1, "wait")
  ctx = io.checkctx(ctx, 2, "wait")
  local code, sig = pc.status(p.ud)
  if code then return code, sig end
  return call(ctx, "proc:wait", wait_start, wait_cancel, p)
end

-- proc:kill([sig]) -> true | nil, err: send sig (a name such as "SIGTERM"
-- or "TERM", or a number; SIGTERM by default). ESRCH once it exited.
function Proc.kill(p, sig)
  S.checkmt(p, ProcMT, 1, "kill")
  if sig == nil then
    sig = "SIGTERM"
  elseif type(sig) ~= "string" and type(sig) ~= "number" then
    S.typeerror(2, "kill", "signal name or number", sig)
  else
    -- C's message would blame this file: check here, blaming the caller.
    local known, num = pcall(sigcore.number, sig)
    if not known then S.argerror(2, "kill", num:match("%((.*)%)$") or num) end
    sig = num
  end
  local ok, err = pc.kill(p.ud, sig)
  if not ok then return nil, io.error(err) end
  return true
end

-- proc:pid() -> the child's process id
function Proc.pid(p)
  S.checkmt(p, ProcMT, 1, "pid")
  return pc.pid(p.ud)
end

-- proc:close(): close its pipes (the child goes on; it is reaped when it
-- exits).
function Proc.close(p)
  S.checkmt(p, ProcMT, 1, "close")
  for _, k in ipairs { "stdin", "stdout", "stderr" } do
    if p[k] then p[k]:close() end
  end
  return true
end

function ProcMT.__tostring(p)
  return format("%s (%s)", tostring(p.ud), p.cmd)
end

--[[ run: a command's outputs in full ]]

-- How a write to a child that exited (or closed its stdin) fails.
local quits = { EPIPE = true, ECONNRESET = true, ENOTCONN = true,
  ECANCELED = true }

local function drain(pipe, parts, ctx)
  while true do
    local data, err = pipe:read(CHUNK, ctx)
    if not data then
      if err.kind == "EOF" then return true end
      return nil, err
    end
    parts[#parts + 1] = data
  end
end

-- weft.process.run(argv [, {input=, cwd=, env=, timeout=, grace=}])
--   -> {code=, signal=, stdout=, stderr=} | nil, err
-- Both outputs are read at once, so a child that fills one pipe while we
-- read the other does not stall. Cancelling the caller's context (or the
-- timeout) ends the child.
function M.run(argv, opts)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then
    S.typeerror(1, "run", "argument list", argv)
  end
  if opts ~= nil and type(opts) ~= "table" then
    S.typeerror(2, "run", "table", opts)
  end
  opts = opts or {}
  local input = opts.input
  if input ~= nil and type(input) ~= "string" then
    S.argerror(2, "run", "field 'input': string expected")
  end
  local timeout = opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    S.argerror(2, "run", "field 'timeout': number expected, got " ..
      S.tname(timeout))
  end
  local args = arg_list(argv, 2, "run", 1, "element")
  S.cur("run")
  local p, err = start("run", 2, argv[1], args, { cwd = opts.cwd,
    env = opts.env, grace = opts.grace, stdin = input and "pipe" or "null",
    stdout = "pipe", stderr = "pipe" })
  if not p then return nil, err end
  local ctx, cancel = ctxmod.with_cancel(ctxmod.context())
  if timeout ~= nil then
    ctx, cancel = ctxmod.with_timeout(ctx, timeout)
  end
  local out, errs = {}, {}
  local g = group.group { ctx = ctx }
  g:go(function(c) return drain(p.stdout, out, c) end)
  g:go(function(c) return drain(p.stderr, errs, c) end)
  if input then
    g:go(function(c)
      -- Shut down before closing: close drops what is still queued.
      local ok, werr = p.stdin:write(input, c)
      if ok then ok, werr = p.stdin:shutdown(c) end
      p.stdin:close()
      -- A child that exits without reading all its input is no failure.
      if not ok and not quits[werr.kind] then return nil, werr end
      return true
    end)
  end
  local code, sig = p:wait(ctx)
  if not code then
    -- Cancelled: the child was sent SIGTERM (SIGKILL after the grace), so
    -- it ends soon; run returns once it is reaped, leaving nothing behind.
    p:wait(S.background)
  end
  local gerr = g:wait()
  p:close()
  cancel()
  if not code then return nil, sig end
  if gerr then return nil, gerr end
  return { code = code, signal = sig, stdout = concat(out),
    stderr = concat(errs) }
end

return M
