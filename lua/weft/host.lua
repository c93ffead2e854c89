-- weft.host: stepping the runtime from a host's own loop (a game's frame,
-- an editor's event loop): start tasks without driving, step for a budget,
-- ask when to step next, and shut down. What C hosts do with weft_step,
-- weft_next_timeout and weft_backend_fd, from Lua (`require "weft"` in
-- LÖVE, Neovim or any LuaJIT host).

local core = require "weft.core"
local S = require "weft.sched"
local errors = require "weft.errors"

local R = S.R
local type = type

local M = {}

-- The default hook of a stepping host: each failure on stderr, when it
-- happens (a game or an editor never empties, so the end never comes).
local function to_stderr(_, line)
  io.stderr:write("weft: ", line, "\n")
  io.stderr:flush()
end

-- outside(fname): step and shutdown are the host's, called between steps:
-- not from a task, nor from a callback of a running step (an on_error
-- hook), where shutdown would cancel every task before the step refused.
local function outside(fname)
  if R.cur then
    error(("weft.%s: inside a task (a host calls it from outside)"):format(
      fname), 3)
  end
  if core.busy() then
    error(("weft.%s: the runtime is running (called from one of its " ..
      "callbacks; a host calls it between steps)"):format(fname), 3)
  end
  if R.on_error == nil then R.on_error = to_stderr end
end

-- weft.start(fn, ...) -> task: a top-level task, run by the next step.
function M.start(fn, ...)
  if type(fn) ~= "function" then S.typeerror(1, "start", "function", fn) end
  return S.spawn_root(fn, nil, ...)
end

-- weft.step([budget_ms]) -> live tasks: run ready tasks, due timers and
-- I/O callbacks for about budget_ms (default 1), never blocking.
function M.step(budget)
  if budget ~= nil and (type(budget) ~= "number" or budget ~= budget) then
    S.typeerror(1, "step", "number", budget)
  end
  outside("step")
  return core.step(budget or 1)
end

-- weft.timeout() -> seconds until something is due, 0 when tasks are
-- ready, nil when nothing is (only I/O, a post or a signal can wake it).
function M.timeout()
  local _, ready = S.stats()
  if ready > 0 then return 0 end
  local ms = core.timeout()
  if ms < 0 then return nil end
  return ms / 1000
end

-- weft.pollfd() -> the loop's backend descriptor: readable when I/O is
-- pending, for a host to watch (the cqueues protocol).
function M.pollfd()
  return core.pollfd()
end

-- weft.shutdown([grace_s]) -> true if every task ended: cancel the root
-- context and step until the tasks end or grace_s (default 5) passes.
function M.shutdown(grace)
  if grace ~= nil and (type(grace) ~= "number" or grace ~= grace or
      grace < 0) then
    S.typeerror(1, "shutdown", "non-negative number", grace)
  end
  outside("shutdown")
  grace = grace or 5
  S.cancel_root(errors.new("shutdown", "the host shut the runtime down"))
  local t0 = S.now()
  while true do
    local live = core.step(10)
    if live == 0 then return true end
    local left = grace - (S.now() - t0)
    if left <= 0 then return false end
    local wait = core.timeout()
    if wait < 0 or wait > left * 1000 then wait = math.ceil(left * 1000) end
    if wait > 0 then core.block(wait) end
  end
end

-- weft.on_error(fn): fn(err, text) receives each top-level failure as it
-- happens (text is what the command would print); nil restores the
-- default (stderr for a stepping host).
function M.on_error(fn)
  if fn ~= nil and type(fn) ~= "function" then
    S.typeerror(1, "on_error", "function or nil", fn)
  end
  R.on_error = fn or to_stderr
end

return M
