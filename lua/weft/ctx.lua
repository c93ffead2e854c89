-- weft.ctx: contexts, as in Go's context package, with Trio's cancel scopes.
--
-- The cancellation machinery (nodes, waking blocked tasks) is in weft.sched;
-- this module is the public surface: derivation, values, deadlines, done
-- channels and weft.scope.

local S = require "weft.sched"
local errors = require "weft.errors"

local R, Ctx, CtxMT = S.R, S.Ctx, S.CtxMT
local T_CTX = S.T_CTX
local node_new, node_cancel, node_deadline = S.node_new, S.node_cancel,
  S.node_deadline
local type, getmetatable, setmetatable, format = type, getmetatable,
  setmetatable, string.format
local select, unpack, xpcall, error = select, unpack, xpcall, error
local typeerror, argerror = S.typeerror, S.argerror
local checkmt = S.checkmt

local M = {}

local SCOPE_END = errors.canceled(errors.new("finished", "scope finished"))

local function pack(...)
  return { n = select("#", ...), ... }
end

-- weft.context() -> the running task's context (background outside tasks).
function M.context()
  local t = R.cur
  if not t then return S.background end
  return S.context(t)
end

function M.background()
  return S.background
end

-- A parent may be omitted: the running task's context is used.
local function parent_of(p, fname)
  if p == nil then return M.context() end
  return checkmt(p, CtxMT, 1, fname)
end

-- checktime(v, argn, fname [, level]) -> v: a time or duration, a number
-- that is not NaN (which would pass every comparison's "no" branch: a
-- deadline that never comes, nor ever passes).
local function checktime(v, argn, fname, level)
  if type(v) ~= "number" or v ~= v then
    argerror(argn, fname, "number expected, got " ..
      (type(v) == "number" and "nan" or type(v)), (level or 2) + 1)
  end
  return v
end

local function canceller(c)
  return function(cause)
    node_cancel(c, errors.canceled(cause))
  end
end

-- weft.with_cancel([parent]) -> ctx, cancel([cause])
function M.with_cancel(parent)
  local c = node_new(parent_of(parent, "with_cancel"))
  return c, canceller(c)
end

-- time_args(parent, v, fname) -> parent, v, argn: the optional parent
-- of with_deadline and with_timeout, and the time and its position. With
-- one argument, it is the time, or a context given without one.
local function time_args(parent, v, fname)
  if v == nil and getmetatable(parent) ~= CtxMT then
    if type(parent) ~= "number" then
      S.typeerror(1, fname, "weft.ctx or number", parent, 3)
    end
    return parent_of(nil, fname), parent, 1
  end
  return parent_of(parent, fname), v, 2
end

-- weft.with_deadline([parent,] t) -> ctx, cancel([cause])
function M.with_deadline(parent, t)
  local argn
  parent, t, argn = time_args(parent, t, "with_deadline")
  checktime(t, argn, "with_deadline")
  local c = node_new(parent, t)
  node_deadline(c, t)
  return c, canceller(c)
end

-- weft.with_timeout([parent,] seconds) -> ctx, cancel([cause])
function M.with_timeout(parent, s)
  local argn
  parent, s, argn = time_args(parent, s, "with_timeout")
  checktime(s, argn, "with_timeout")
  return M.with_deadline(parent, S.now() + s)
end

-- weft.with_value(parent, key, value) -> ctx
function M.with_value(parent, k, v)
  parent = parent_of(parent, "with_value")
  if k == nil then argerror(2, "with_value", "key expected, got nil") end
  return setmetatable({ parent = parent, node = parent.node,
    dl = parent.dl, key = k, val = v }, CtxMT)
end

--[[ Methods ]]

-- ctx:err() -> nil | err (kind "canceled" or "deadline")
function Ctx:err()
  checkmt(self, CtxMT, 1, "err")
  local n = self.node
  return n and n.cerr or nil
end

-- ctx:cause() -> nil | the cause given to cancel, else the error itself
function Ctx:cause()
  checkmt(self, CtxMT, 1, "cause")
  local n = self.node
  local e = n and n.cerr
  if not e then return nil end
  if e.cause ~= nil then return e.cause end
  return e
end

function Ctx:deadline()
  checkmt(self, CtxMT, 1, "deadline")
  return self.dl
end

-- ctx:value(k) -> the value of the nearest with_value for k, or nil
function Ctx:value(k)
  checkmt(self, CtxMT, 1, "value")
  local c = self
  while c do
    if c.key == k and c.key ~= nil then return c.val end
    c = c.parent
  end
  return nil
end

-- ctx:done() -> a channel closed when ctx is cancelled (never, for
-- background), for select.
function Ctx:done()
  checkmt(self, CtxMT, 1, "done")
  local n = self.node
  if not n then
    local never = R.never
    if not never then
      never = R.chan_new(0)
      R.never = never
    end
    return never
  end
  local d = n.donech
  if not d then
    d = R.chan_new(0)
    n.donech = d
    if n.cerr then R.close_done(d) end
  end
  return d
end

function CtxMT.__tostring(c)
  local n = c.node
  local kind = c == S.background and "background" or
    (n == c and "cancel" or "value")
  local state = n and n.cerr and n.cerr.kind or "active"
  if c.dl then state = format("%s, deadline %.3f", state, c.dl) end
  return format("weft.ctx: %s (%s)", kind, state)
end

-- checkfield(v, name) -> v: scope's option `name`, a number that is not
-- NaN; the error blames scope's caller.
local function checkfield(v, name)
  if type(v) ~= "number" or v ~= v then
    argerror(2, "scope", format("field '%s': number expected, got %s", name,
      type(v) == "number" and "nan" or type(v)), 3)
  end
  return v
end

-- weft.scope(fn [, opts]) -> fn's results: run fn(ctx) in the running task
-- under a new cancel scope (opts.timeout / opts.dl / opts.ctx as the
-- parent). The scope is cancelled when fn returns, as Go's `defer cancel()`.
function M.scope(fn, opts)
  local t = S.cur("scope")
  if type(fn) ~= "function" then typeerror(1, "scope", "function", fn) end
  if opts ~= nil and type(opts) ~= "table" then
    typeerror(2, "scope", "table", opts)
  end
  opts = opts or {}
  -- The task's own node first: every context it makes must sit under it,
  -- or task:cancel() would miss what it does inside this scope.
  S.own_node(t)
  local parent = opts.ctx
  if parent == nil then
    parent = S.context(t)
  elseif getmetatable(parent) ~= CtxMT then
    argerror(2, "scope", "field 'ctx': weft.ctx expected, got " ..
      type(parent))
  end
  local deadline = opts.deadline
  if deadline ~= nil then checkfield(deadline, "deadline") end
  if opts.timeout ~= nil then
    local d = S.now() + checkfield(opts.timeout, "timeout")
    if deadline == nil or d < deadline then deadline = d end
  end
  local c = node_new(parent, deadline)
  if deadline then node_deadline(c, deadline) end
  local saved = t[T_CTX]
  S.set_ctx(t, c)
  local r = pack(xpcall(fn, S.trap, c))
  -- Put back only what this scope set: a coroutine that yielded inside it
  -- and was resumed by another task ends it there, when t may have
  -- finished (its context false), and set_ctx brought t back to life.
  if t[T_CTX] == c then S.set_ctx(t, saved) end
  node_cancel(c, SCOPE_END)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

return M
