-- weft.errors: the error values weft returns and reports.
--
-- An error is a table with a fixed shape: `kind` (a short stable word code
-- tests), `message` (the human text, what tostring gives), `cause` (the error
-- this one wraps, or nil), `traceback` (where it was raised, when known),
-- `task` and `task_id` (the task it happened in) and, for a value raised with
-- error() that was not a weft error, `value` (the value itself).
--
-- A raised value that is not a weft error is a bug: at the task boundary it
-- becomes kind "bug", keeping the value and its traceback.

local traceback, getmetatable, setmetatable = debug.traceback, getmetatable,
  setmetatable
local tostring, type, format = tostring, type, string.format

local M = {}
local Error = {}
local mt = { __index = Error, __name = "weft.error" }

function mt.__tostring(e)
  return e.message
end

-- new(kind, message [, cause]) -> err
local function new(kind, message, cause)
  return setmetatable({ kind = kind, message = message, cause = cause }, mt)
end
M.new = new

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

function M.canceled(cause)
  return new("canceled", "context canceled", cause)
end

function M.deadline(cause)
  return new("deadline", "context deadline exceeded", cause)
end

function M.closed()
  return new("closed", "channel closed")
end

-- is_cancel(v) -> true for the errors a cancelled context produces.
function M.is_cancel(v)
  return is_error(v) and (v.kind == "canceled" or v.kind == "deadline")
end

-- clean(tb) -> tb without the runtime's own frames (the task trampoline,
-- xpcall), which say nothing about the user's code.
local function clean(tb)
  local out = {}
  for line in tb:gmatch("[^\n]+") do
    if not (line:find("weft/[%w_]+%.lua:") or
        line:find("^%s*%[C%]: in function 'xpcall'")) then
      out[#out + 1] = line
    end
  end
  return table.concat(out, "\n")
end
M.clean_traceback = clean

-- capture(v, level) -> err: the error handler of every task and scope. A weft
-- error gains the traceback of where it was raised (once); anything else
-- becomes a bug that keeps the raised value.
function M.capture(v, level)
  level = (level or 1) + 1
  if is_error(v) then
    if not v.traceback then v.traceback = clean(traceback("", level)) end
    return v
  end
  local e = new("bug", describe(v))
  e.value = v
  e.traceback = clean(traceback("", level))
  return e
end

-- capture_co(v, tb) -> err: as capture, for a value that killed a task's
-- coroutine, whose traceback (read from the dead coroutine) is tb.
function M.capture_co(v, tb)
  if is_error(v) then
    if not v.traceback then v.traceback = tb end
    return v
  end
  local e = new("bug", describe(v))
  e.value = v
  e.traceback = tb
  return e
end

-- failed(v) -> err: a value a task returned as its error (`return nil, v`),
-- as a weft error, so that it can be reported with its task's name.
function M.failed(v)
  if is_error(v) then return v end
  local e = new("error", describe(v))
  e.value = v
  return e
end

-- report(err, verbose [, task, task_id]) -> text for the top level: the
-- message, the task it happened in (err.task, else the task given), the
-- traceback, and with verbose the chain of causes.
function M.report(err, verbose, task, task_id)
  local out = { describe(err) }
  if is_error(err) and err.task then task, task_id = err.task, err.task_id end
  if task then
    out[#out + 1] = format("in task %q (id %d)", task, task_id or 0)
  end
  if is_error(err) then
    if err.traceback then
      out[#out + 1] = err.traceback
    end
    local c, depth = err.cause, 0
    while verbose and c ~= nil and depth < 32 do
      out[#out + 1] = "caused by: " .. describe(c)
      if is_error(c) and c.traceback then
        out[#out + 1] = c.traceback
      end
      c = is_error(c) and c.cause or nil
      depth = depth + 1
    end
    local others = err.others
    if others then
      for i = 1, #others do
        out[#out + 1] = "also failed: " .. describe(others[i])
      end
    end
  end
  return table.concat(out, "\n")
end

M.Error = Error
M.mt = mt
return M
