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

local getmetatable, setmetatable = getmetatable, setmetatable
local tostring, type, format, select = tostring, type, string.format, select
local rawget, floor, date = rawget, math.floor, os.date

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

function mt.__index(e, k)
  local m = Error[k]
  if m ~= nil then return m end
  if k == "time" then
    return iso(rawget(e, "_t"))
  elseif k == "task" then
    local t = rawget(e, "_task")
    return t and M.task_name(t)
  elseif k == "task_id" then
    local t = rawget(e, "_task")
    return t and M.task_id(t)
  end
  return nil
end

function mt.__tostring(e)
  return e.message
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

-- describe(v) -> a message for any raised or returned value.
local function describe(v)
  if type(v) == "string" then return v end
  if is_error(v) then return v.message end
  local vmt = getmetatable(v)
  if vmt and vmt.__tostring then return tostring(v) end
  return format("(error object is a %s value)", type(v))
end
M.describe = describe

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
    e = make(kind, tostring(msg), spec.cause)
    for k, v in pairs(spec) do
      if k ~= "kind" and k ~= "msg" and k ~= "message" and k ~= "cause" and
          rawget(e, k) == nil then
        e[k] = v
      end
    end
  elseif type(spec) == "string" then
    local fmt = ...
    local msg
    if fmt == nil then
      msg = spec
    elseif select("#", ...) > 1 then
      msg = format(fmt, select(2, ...))
    else
      msg = tostring(fmt)
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
-- formatted text and whose cause is err: a layer of context.
function Error:wrap(fmt, ...)
  if not is_error(self) then
    error("bad argument #1 to 'wrap' (weft.error expected, got " ..
      type(self) .. ")", 2)
  end
  local msg = select("#", ...) > 0 and format(fmt, ...) or tostring(fmt)
  local e = make(self.kind, msg, self)
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
  if rawget(err, "others") then
    for i, v in ipairs(err.others) do o[i] = v end
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
-- that keeps the raised value.
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

-- brief(err [, task]) -> the one line a user reads: "[ID] message" for a
-- well-formed error; for a bug, "[ID] unexpected error in task "NAME" (a
-- bug; please report it): message". task names the task when err does not.
function M.brief(err, task)
  if not is_error(err) then err = M.failed(err) end
  if err.kind == "bug" then
    return format('[%s] unexpected error in task "%s" (a bug; please ' ..
      "report it): %s", err.id, err.task or task or "?", err.message)
  end
  return format("[%s] %s", err.id, err.message)
end

-- layer(out, e, head, indent): one error of a chain; its first line starts
-- with head, the rest with indent.
local function layer(out, e, head, indent)
  if not is_error(e) then
    out[#out + 1] = head .. describe(e)
    return
  end
  out[#out + 1] = format("%s[%s] %s %s: %s", head, e.id, e.time, e.kind,
    e.message)
  local task = e.task
  if task then
    out[#out + 1] = format('%s  in task "%s" (id %d)', indent, task,
      e.task_id)
  end
  if e.value ~= nil and type(e.value) ~= "string" then
    out[#out + 1] = format("%s  value: %s", indent, describe(e.value))
  end
  if e.traceback and e.traceback ~= "" then
    for line in e.traceback:gmatch("[^\n]+") do
      out[#out + 1] = indent .. "  " .. line
    end
  end
end

-- record(err) -> the full record: every layer of the chain with its log id,
-- time, kind, message, task and traceback, then the other failures kept
-- with it.
function M.record(err)
  local out = {}
  local e, depth = err, 0
  while e ~= nil and depth < 32 do
    layer(out, e, depth == 0 and "" or "caused by: ", "")
    e = is_error(e) and e.cause or nil
    depth = depth + 1
  end
  local others = is_error(err) and err.others
  if others then
    for i = 1, #others do
      layer(out, others[i], "also failed: ", "")
    end
  end
  return table.concat(out, "\n")
end

M.Error = Error
M.mt = mt
return M
