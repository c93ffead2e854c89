-- weft.errors: the error values weft returns and reports.
--
-- Every error carries what happened (`kind`, a short stable word code tests,
-- and `message`, the one line tostring gives), why (`cause`, the error this
-- one wraps), where (`traceback`, `task`, `task_id`), when (`time`, UTC ISO
-- 8601 with milliseconds) and `id`, a short log id unique within the
-- process that ties the one-line message to the full record. A raised value
-- that is not a weft error is a bug: at the task boundary it becomes kind
-- "bug", keeping the value (`value`) and its traceback.
--
-- Errors are made often (every closed channel's last receive makes one), so
-- the costly parts are computed when read: the task's name and the time's
-- text come from fields `_task` and `_t` through __index.
--
-- Turning an error into text is total: it never raises, whatever the value
-- (a __tostring that raises or yields, a field of the wrong type), so that
-- reporting a failure can neither crash the runtime nor lose the failure.
-- User metamethods are called only under pcall, and fields are type-checked
-- before use.

local getmetatable, setmetatable = getmetatable, setmetatable
local tostring, type, format, select = tostring, type, string.format, select
local rawget, floor, date, pcall = rawget, math.floor, os.date, pcall
local tonumber = tonumber
local unpack, concat = unpack, table.concat
local rawmeta = debug.getmetatable

local M = {}
local Error = {}
local mt = { __name = "weft.error" }

-- Hooks set by weft.sched: the running task, a task's name and id, the wall
-- clock (seconds since the epoch) and this runtime's tag for log ids.
M.current = function() return nil end
M.task_name = function() return "?" end
M.task_id = function() return 0 end
M.wall = os.time
M.tag = "0"
-- traceback(nil, level) -> the running thread's user frames from level on
-- (weft.sched's stack_traceback once loaded).
M.traceback = function(_, level)
  local tb = debug.traceback("", level + 1)
  return tb
end
local nlog = 0

local function iso(t)
  local s = floor(t)
  return format("%s.%03dZ", date("!%Y-%m-%dT%H:%M:%S", s),
    floor((t - s) * 1000))
end

-- The computed fields are nil when what they come from is not what weft
-- put there (an error made with setmetatable({}, mt), a field overwritten).
function mt.__index(e, k)
  local m = Error[k]
  if m ~= nil then return m end
  if k == "time" then
    local t = rawget(e, "_t")
    -- Not NaN or infinite: os.date takes neither.
    if type(t) == "number" and t - t == 0 then return iso(t) end
  elseif k == "task" then
    local t = rawget(e, "_task")
    if type(t) == "table" then return M.task_name(t) end
  elseif k == "task_id" then
    local t = rawget(e, "_task")
    if type(t) == "table" then return M.task_id(t) end
  end
  return nil
end

local describe

function mt.__tostring(e)
  return describe(e)
end

-- make(kind, message, cause) -> err, stamped with time, task and log id.
local function make(kind, message, cause)
  nlog = nlog + 1
  return setmetatable({ kind = kind, message = message, cause = cause,
    id = M.tag .. "-" .. nlog, _t = M.wall(), _task = M.current() }, mt)
end
M.new = make

-- is_error(v) -> true if v is a weft error.
local function is_error(v)
  return getmetatable(v) == mt
end
M.is_error = is_error

-- The depth to which describe follows what a failing __tostring raised
-- (which may be another value whose __tostring fails).
local MAX_DEPTH = 3

-- display(v, depth) -> v's __tostring text, or nil and why there is none
-- (the metamethod raised, yielded or returned a non-string). It never
-- raises. NOTE: the metamethod runs where the report is made; where nothing
-- can yield (the scheduler reporting a task that died), a __tostring that
-- yields or waits fails, and that failure is the reason given.
local function display(v, depth)
  local ok, s = pcall(tostring, v)
  if ok then
    if type(s) == "string" then return s end
    return nil, format("__tostring returned a %s value", type(s))
  end
  if type(s) ~= "string" then
    if depth >= MAX_DEPTH then
      s = format("(error object is a %s value)", type(s))
    else
      s = describe(s, depth + 1)
    end
  end
  return nil, "__tostring failed: " .. s
end

-- describe(v) -> a message for any raised or returned value; never raises.
function describe(v, depth)
  local tv = type(v)
  if tv == "string" then return v end
  depth = depth or 1
  if is_error(v) then
    local m = rawget(v, "message")
    if type(m) == "string" then return m end
    if type(m) == "number" then return tostring(m) end
    v, tv = m, type(m) -- a message someone replaced: describe that
  end
  local vmt = rawmeta(v)
  if type(vmt) == "table" and rawget(vmt, "__tostring") ~= nil then
    local s, why = display(v, depth)
    if s then return s end
    return "error object whose " .. why
  end
  return format("(error object is a %s value)", tv)
end
M.describe = describe

-- text(v) -> tostring(v), or what can be said when its __tostring fails;
-- never raises.
local function text(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" or tv == "nil" or tv == "boolean" then
    return tostring(v)
  end
  local s, why = display(v, 1)
  if s then return s end
  return format("(%s value whose %s)", tv, why)
end

-- formatted(fmt, ...) -> text | nil, why, argn: the text of a message
-- given as a format and its arguments; never raises. Arguments are made
-- text first (string.format would call a __tostring itself, unprotected).
-- For a bad format, why is string.format's complaint and argn the position
-- of the argument it names (1 for fmt, nil when it names none).
local function formatted(fmt, ...)
  local n = select("#", ...)
  if n == 0 then return text(fmt) end
  local args = { ... }
  for i = 1, n do
    local a = args[i]
    local ta = type(a)
    if ta ~= "string" and ta ~= "number" then args[i] = text(a) end
  end
  local ok, s = pcall(format, text(fmt), unpack(args, 1, n))
  if ok then return s end
  -- Under pcall, format's own errors name it '?'.
  s = text(s)
  local k, why = s:match("^bad argument #(%d+) to '[^']*' %((.*)%)$")
  if not k then return nil, (s:gsub("to '%?'", "to 'format'", 1)) end
  k = tonumber(k)
  local orig = select(k - 1, ...)
  if k > 1 and type(orig) ~= "string" then
    -- It was made text above: name the type the caller passed.
    why = why:gsub("got string$", "got " .. type(orig))
  end
  return nil, why, k
end

-- message(fmt, ...) -> as formatted; a bad format keeps the format string
-- and says why.
local function message(fmt, ...)
  local s, why, k = formatted(fmt, ...)
  if s then return s end
  if k then why = format("bad argument #%d to 'format' (%s)", k, why) end
  return format("%s (bad format: %s)", text(fmt), why)
end

-- here(level) -> the traceback of the running thread from level on, level
-- 1 being the caller of here.
local function here(level)
  local tb = M.traceback(nil, level + 1) -- not a tail call: it counts a frame
  return tb
end

-- weft.error{kind=, msg=, cause=, ...} or weft.error(kind, fmt, ...):
-- a well-formed error raised or returned by user code. Fields beyond
-- kind/msg/cause are kept.
function M.error(spec, ...)
  local e
  if type(spec) == "table" then
    local kind = spec.kind
    if type(kind) ~= "string" then
      error("bad argument #1 to 'error' (field 'kind': string expected, got " ..
        type(kind) .. ")", 2)
    end
    local msg = spec.msg or spec.message
    if msg == nil then msg = kind end
    e = make(kind, text(msg), spec.cause)
    for k, v in pairs(spec) do
      if k ~= "kind" and k ~= "msg" and k ~= "message" and k ~= "cause" and
          rawget(e, k) == nil then
        e[k] = v
      end
    end
  elseif type(spec) == "string" then
    local fmt = ...
    local msg, why, k
    if fmt == nil then
      msg = spec
    else
      -- A bad format is a bad argument of this call (format's #k is our
      -- #k + 1), raised where the caller made it, as string.format does.
      msg, why, k = formatted(...)
      if not msg then
        error(format("bad argument #%d to 'error' (%s)", (k or 1) + 1, why),
          2)
      end
    end
    e = make(spec, msg, nil)
  else
    error("bad argument #1 to 'error' (table or string expected, got " ..
      type(spec) .. ")", 2)
  end
  e.traceback = here(2)
  return e
end

-- err:wrap(fmt, ...) -> a new error of the same kind whose message is the
-- formatted text and whose cause is err: a layer of context. It is on the
-- error path, so it never loses err: a bad format or an argument whose
-- __tostring fails gives a message that says so instead of raising.
function Error:wrap(fmt, ...)
  if not is_error(self) then
    error("bad argument #1 to 'wrap' (weft.error expected, got " ..
      type(self) .. ")", 2)
  end
  local e = make(self.kind, message(fmt, ...), self)
  e.traceback = here(2)
  return e
end

-- is(err, kind_or_err) -> true if err or any error in its chain of causes
-- has that kind (a string), or is that error (Go's errors.Is).
function M.is(err, target)
  local depth = 0
  while err ~= nil and depth < 100 do
    if err == target then return true end
    if not is_error(err) then return false end
    if err.kind == target or rawget(err, "original") == target then
      return true
    end
    err = err.cause
    depth = depth + 1
  end
  return false
end

-- with_others(err, others) -> err carrying the failures that came with it,
-- as err.others (Lua has no error groups). A copy of err, same id and all,
-- whose `original` is err: the error itself may be shared (a sentinel a
-- function returns every time, a cancelled context's error) and must not
-- collect every failure it was ever part of.
function M.with_others(err, others)
  if not is_error(err) then err = M.failed(err) end
  local e = setmetatable({}, mt)
  for k, v in pairs(err) do e[k] = v end
  e.original = rawget(err, "original") or err
  local o = {}
  local prev = rawget(err, "others")
  if type(prev) == "table" then
    for i, v in ipairs(prev) do o[i] = v end
  end
  for i = 1, #others do o[#o + 1] = others[i] end
  e.others = o
  return e
end

-- root(err) -> the innermost cause of err (err itself when it has none).
function M.root(err)
  local depth = 0
  while is_error(err) and err.cause ~= nil and depth < 100 do
    err = err.cause
    depth = depth + 1
  end
  return err
end

function M.canceled(cause)
  return make("canceled", "context canceled", cause)
end

function M.deadline(cause)
  return make("deadline", "context deadline exceeded", cause)
end

function M.closed()
  return make("closed", "channel closed")
end

-- is_cancel(v) -> true for the errors a cancelled context produces.
function M.is_cancel(v)
  return is_error(v) and (v.kind == "canceled" or v.kind == "deadline")
end

-- capture(v, level) -> err: the error handler of scopes. A weft error gains
-- the traceback of where it was raised (once); anything else becomes a bug
-- that keeps the raised value. Never raises (it runs as an xpcall handler,
-- where an error would replace the one being handled).
function M.capture(v, level)
  level = (level or 1) + 1
  if is_error(v) then
    if not v.traceback then v.traceback = here(level) end
    return v
  end
  local e = make("bug", describe(v))
  e.value = v
  e.traceback = here(level)
  return e
end

-- capture_co(v, tb) -> err: as capture, for a value that killed a task's
-- coroutine, whose traceback (read from the dead coroutine) is tb.
function M.capture_co(v, tb)
  if is_error(v) then
    if not v.traceback then v.traceback = tb end
    return v
  end
  local e = make("bug", describe(v))
  e.value = v
  e.traceback = tb
  return e
end

-- failed(v) -> err: a value a task returned as its error (`return nil, v`),
-- as a weft error, so that it can be reported with its task's name.
function M.failed(v)
  if is_error(v) then return v end
  local e = make("error", describe(v))
  e.value = v
  return e
end

--[[ Reports ]]
-- A report says what it can of any error: every field is read under pcall
-- (time, task and task_id are computed by __index) and made text with
-- text(), so a field of the wrong type or a failing __tostring shows as
-- such in the report instead of raising from it.

local function index_field(e, k)
  return e[k]
end

-- index(e, k) -> e[k], or nil when reading it raises.
local function index(e, k)
  local ok, v = pcall(index_field, e, k)
  if ok then return v end
  return nil
end

-- field(e, k [, default]) -> e[k] as text, default when it is nil.
local function field(e, k, default)
  local v = index(e, k)
  if v == nil then return default end
  return text(v)
end

-- innermost(tb, n) -> the first n frames of traceback text tb, each on a
-- line of its own indented by two spaces, and "  ..." when there are more;
-- "" when tb has none.
local function innermost(tb, n)
  if type(tb) ~= "string" then return "" end
  local out, more = {}, false
  for line in tb:gmatch("\n\t([^\n]+)") do
    if #out == n then
      more = true
      break
    end
    out[#out + 1] = "\n  " .. line
  end
  if more then out[#out + 1] = "\n  ..." end
  return concat(out)
end

-- brief(err [, task]) -> what a user reads: "[ID] message" for a
-- well-formed error (an expected failure); for anything else raised, a bug
-- in the program, "[ID] uncaught error in task "NAME" (a bug in the
-- program): message" and, on the lines below, the innermost frames of
-- where it was raised. task names the task when err does not.
function M.brief(err, task)
  if not is_error(err) then err = M.failed(err) end
  local id = field(err, "id", "?")
  if rawget(err, "kind") == "bug" then
    return format('[%s] uncaught error in task "%s" (a bug in the ' ..
      "program): %s%s", id, field(err, "task") or text(task or "?"),
      describe(err), innermost(index(err, "traceback"), 3))
  end
  return format("[%s] %s", id, describe(err))
end

-- layer(out, e, head, indent): one error of a chain; its first line starts
-- with head, the rest with indent.
local function layer(out, e, head, indent)
  if not is_error(e) then
    out[#out + 1] = head .. describe(e)
    return
  end
  out[#out + 1] = format("%s[%s] %s %s: %s", head, field(e, "id", "?"),
    field(e, "time", "?"), field(e, "kind", "?"), describe(e))
  local task = field(e, "task")
  if task then
    local id = index(e, "task_id")
    -- %d only for an integer: it prints NaN and 1e300 as -2^63.
    out[#out + 1] = format('%s  in task "%s" (id %s)', indent, task,
      (type(id) == "number" and id % 1 == 0 and id > -2 ^ 53 and
        id < 2 ^ 53) and format("%d", id) or text(id))
  end
  local value = index(e, "value")
  if value ~= nil and type(value) ~= "string" then
    out[#out + 1] = format("%s  value: %s", indent, describe(value))
  end
  local tb = index(e, "traceback")
  if tb ~= nil and type(tb) ~= "string" then tb = text(tb) end
  if tb and tb ~= "" then
    for line in tb:gmatch("[^\n]+") do
      out[#out + 1] = indent .. "  " .. line
    end
  end
end

-- record(err) -> the full record: every layer of the chain with its log id,
-- time, kind, message, task and traceback, then the other failures kept
-- with it: the first OTHERS_SHOWN of them, and how many more there are.
local OTHERS_SHOWN = 18 -- so that a record names 19 failures at most
function M.record(err)
  local out = {}
  local e, depth = err, 0
  while e ~= nil and depth < 32 do
    layer(out, e, depth == 0 and "" or "caused by: ", "")
    e = is_error(e) and rawget(e, "cause") or nil
    depth = depth + 1
  end
  local others = is_error(err) and rawget(err, "others")
  if type(others) == "table" then
    local n = #others
    for i = 1, n < OTHERS_SHOWN and n or OTHERS_SHOWN do
      layer(out, rawget(others, i), "also failed: ", "")
    end
    if n > OTHERS_SHOWN then
      out[#out + 1] = format("... and %d more (err.others has all %d)",
        n - OTHERS_SHOWN, n)
    end
  end
  return concat(out, "\n")
end

M.Error = Error
M.mt = mt
return M
