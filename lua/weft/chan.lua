-- weft.chan: channels with Go's semantics (FIFO, unbuffered or buffered,
-- close drains then ends) and every wait cancellable through its context.
--
-- A channel is a userdata (so that #ch works: LuaJIT honours __len only on
-- userdata) keyed into a weak table of states. The state never refers back
-- to the userdata, so an unreachable channel is collected with its state.

local S = require "weft.sched"
local errors = require "weft.errors"

local R = S.R
local T_CTX = S.T_CTX
local park, wake, wq_new, wq_push, wq_pop = S.park, S.wake, S.wq_new,
  S.wq_push, S.wq_pop
local refuse, block, headroom = S.refuse, S.block, S.headroom
local CtxMT = S.CtxMT
local type, getmetatable, error, format, newproxy = type, getmetatable, error,
  string.format, newproxy
local typeerror, argerror = S.typeerror, S.argerror

local M = {}

-- Sentinels a waker passes as the second wake value.
local CLOSED = {}       -- a select's receive case saw the channel close
local SEND_CLOSED = {}  -- a blocked send's channel was closed under it
M.CLOSED, M.SEND_CLOSED = CLOSED, SEND_CLOSED

local states = setmetatable({}, { __mode = "k" })
local proto = newproxy(true)
local mt = getmetatable(proto)
local methods = {}
mt.__index = methods
mt.__name = "weft.chan"
M.states = states
local nchans = 0

-- new(cap) -> userdata. Every key is in the constructor with a constant
-- value, set afterwards: LuaJIT's bytecode (how weft's modules are
-- embedded) drops a constructor's keys whose values are variables, and
-- each store then inserts its key (and rehashes) instead of filling a
-- slot. An unbuffered channel needs no buffer. (Most of what a channel
-- costs, ~1.3 us, is the collector's work on the weak table of states.)
local function new(cap)
  local u = newproxy(proto)
  nchans = nchans + 1
  local c = { buf = false, bh = 1, bn = 0, cap = 0, closed = false, id = 0,
    rq = false, sq = false }
  if cap > 0 then c.buf = {} end
  c.cap, c.id = cap, nchans
  c.rq = wq_new(c, "recv")
  c.sq = wq_new(c, "send")
  states[u] = c
  return u
end
R.chan_new = new

-- The largest capacity: the buffer is a Lua table indexed 1..cap, and
-- counts are shown with %d; beyond 2^31 - 1 a capacity is a mistake (1e300
-- printed as cap -9223372036854775808).
local MAX_CAP = 2 ^ 31 - 1
M.MAX_CAP = MAX_CAP

-- weft.chan([cap]) -> ch: cap, an integer in [0, 2^31 - 1], default 0.
function M.chan(cap)
  if cap == nil then
    cap = 0
  elseif type(cap) ~= "number" or cap < 0 or cap % 1 ~= 0 then
    -- NaN and infinities fail the last test: their remainder is NaN.
    argerror(1, "chan", "non-negative integer expected, got " ..
      (type(cap) == "number" and tostring(cap) or type(cap)))
  elseif cap > MAX_CAP then
    argerror(1, "chan", format("capacity at most %d expected, got %s",
      MAX_CAP, tostring(cap)))
  end
  return new(cap)
end

local function check(u, fname)
  local c = states[u]
  if not c then
    error(format("bad argument #1 to '%s' (weft.chan expected, got %s)",
      fname, type(u)), 3)
  end
  return c
end
M.check = check

-- Append v to the buffer (the caller checked there is room).
local function buf_put(c, v)
  local n = c.bn
  local i = c.bh + n
  local cap = c.cap
  if i > cap then i = i - cap end
  c.buf[i] = v
  c.bn = n + 1
end

-- Take the oldest buffered value (the caller checked there is one).
local function buf_take(c)
  local buf, h = c.buf, c.bh
  local v = buf[h]
  buf[h] = nil
  h = h + 1
  if h > c.cap then h = 1 end
  c.bh = h
  c.bn = c.bn - 1
  return v
end

-- try_send(c, v) -> true if v was delivered or buffered without waiting.
-- Raises on a closed channel.
local function try_send(c, v)
  if c.closed then return nil end
  local r, k = wq_pop(c.rq)
  if r then
    if k == 0 then wake(r, v) else wake(r, k, v) end
    return true
  end
  if c.bn < c.cap then
    buf_put(c, v)
    return true
  end
  return false
end
M.try_send = try_send

-- try_recv(c) -> v, or nil and closed (true when the channel is closed and
-- drained); nil, false when a receive would have to wait.
local function try_recv(c)
  if c.bn > 0 then
    local v = buf_take(c)
    local s, k, sv = wq_pop(c.sq)
    if s then
      buf_put(c, sv)
      if k == 0 then wake(s, true) else wake(s, k) end
    end
    return v
  end
  local s, k, sv = wq_pop(c.sq)
  if s then
    if k == 0 then wake(s, true) else wake(s, k) end
    return sv
  end
  return nil, c.closed
end
M.try_recv = try_recv

-- close(c): wake every receiver with "closed" and every blocked sender with
-- the error Go would panic with.
local function close(c)
  c.closed = true
  while true do
    local r, k = wq_pop(c.rq)
    if not r then break end
    if k == 0 then wake(r, nil, errors.closed()) else wake(r, k, CLOSED) end
  end
  while true do
    local s, k = wq_pop(c.sq)
    if not s then break end
    if k == 0 then wake(s, SEND_CLOSED) else wake(s, k, SEND_CLOSED) end
  end
end
M.close = close

function R.close_done(u)
  local c = states[u]
  if not c.closed then close(c) end
end

function R.chan_describe(c)
  return format("weft.chan #%d (len %d, cap %d%s)", c.id, c.bn, c.cap,
    c.closed and ", closed" or "")
end

--[[ Methods ]]

-- ch:send(v [, ctx]) -> true | nil, err
-- The checks at the top of send and recv are written out, not called:
-- they run on every operation (see bench/README.md).
function methods.send(u, v, ctx)
  local c = states[u] or check(u, "send")
  local t = R.cur or S.cur("send")
  if v == nil then argerror(1, "send", "non-nil value expected") end
  if ctx == nil then
    ctx = t[T_CTX]
  elseif getmetatable(ctx) ~= CtxMT then
    typeerror(2, "send", "weft.ctx", ctx)
  end
  local n = ctx.node
  if n and n.cerr then return refuse(t, n) end
  if c.closed then error("send on closed channel", 2) end
  -- Inline try_send: this is the hot path of every producer.
  local q = c.rq
  if q.h < q.e then
    local r, k = wq_pop(q)
    if r then
      if k == 0 then wake(r, v) else wake(r, k, v) end
      return true
    end
  end
  local bn = c.bn
  if bn < c.cap then
    local i = c.bh + bn
    if i > c.cap then i = i - c.cap end
    c.buf[i] = v
    c.bn = bn + 1
    return true
  end
  headroom()
  q = c.sq
  wq_push(q, t, 0, v)
  park(t, q, ctx)
  local a, b = block(t, "ch:send")
  if a == SEND_CLOSED then error("send on closed channel", 2) end
  if a then return a end
  return a, b
end

-- ch:recv([ctx]) -> v | nil, err (kind "closed", "canceled" or "deadline")
function methods.recv(u, ctx)
  local c = states[u] or check(u, "recv")
  local t = R.cur or S.cur("recv")
  if ctx == nil then
    ctx = t[T_CTX]
  elseif getmetatable(ctx) ~= CtxMT then
    typeerror(1, "recv", "weft.ctx", ctx)
  end
  local n = ctx.node
  if n and n.cerr then return refuse(t, n) end
  local bn = c.bn
  if bn > 0 then
    -- Inline buf_take for the consumer's hot path.
    local buf, h = c.buf, c.bh
    local v = buf[h]
    buf[h] = nil
    h = h + 1
    if h > c.cap then h = 1 end
    c.bh = h
    c.bn = bn - 1
    local q = c.sq
    if q.h < q.e then
      local s, k, sv = wq_pop(q)
      if s then
        buf_put(c, sv)
        if k == 0 then wake(s, true) else wake(s, k) end
      end
    end
    return v
  end
  local q = c.sq
  if q.h < q.e then
    local s, k, sv = wq_pop(q)
    if s then
      if k == 0 then wake(s, true) else wake(s, k) end
      return sv
    end
  end
  if c.closed then return nil, errors.closed() end
  headroom()
  q = c.rq
  wq_push(q, t, 0, nil)
  park(t, q, ctx)
  return block(t, "ch:recv") -- a tail call: see wake in weft.sched
end

-- ch:try_send(v) -> true | false: deliver v to a waiting receiver or the
-- buffer, or say it cannot without waiting. Works anywhere, inside a task
-- or not (a host's callback, a weft_post callback), so that code outside
-- the tasks can feed them. Raises on a closed channel, as send does.
function methods.try_send(u, v)
  local c = check(u, "try_send")
  if v == nil then argerror(1, "try_send", "non-nil value expected") end
  if c.closed then error("send on closed channel", 2) end
  return try_send(c, v) == true
end

-- ch:try_recv() -> true, v | false, "empty" | false, "closed": take a value
-- without waiting. Works anywhere, as try_send.
function methods.try_recv(u)
  local c = check(u, "try_recv")
  local v, closed = try_recv(c)
  if v ~= nil then return true, v end
  return false, closed and "closed" or "empty"
end

-- ch:close(): closing twice raises, as in Go.
function methods.close(u)
  local c = check(u, "close")
  if c.closed then error("close of closed channel", 2) end
  close(c)
end

-- for v in ch:iter([ctx]) do ... end: ends when the channel is closed and
-- drained, or when the context is cancelled (check ctx:err() to tell).
function methods.iter(u, ctx)
  check(u, "iter")
  if ctx ~= nil and getmetatable(ctx) ~= CtxMT then
    typeerror(1, "iter", "weft.ctx", ctx)
  end
  local recv = methods.recv
  return function()
    return (recv(u, ctx))
  end
end

function methods.cap(u)
  return check(u, "cap").cap
end

function methods.len(u)
  return check(u, "len").bn
end

function methods.closed(u)
  return check(u, "closed").closed
end

function mt.__len(u)
  return states[u].bn
end

function mt.__tostring(u)
  local c = states[u]
  return format("weft.chan: #%d (len %d, cap %d%s)", c.id, c.bn, c.cap,
    c.closed and ", closed" or "")
end

--[[ weft.after ]]

-- A weft.after or weft.ticker channel's timer fired: deliver the time (a
-- ticker drops a tick nobody took, as Go's does) and re-arm a ticker.
function R.after_fire(c, at)
  try_send(c, at)
  local period = c.period
  if period and not c.stopped then
    local nxt = at + period
    if nxt > at then
      c.timer = S.timer_start(nxt, c, c.clock or false)
    else
      c.stopped = true -- a period too small to move the clock: no re-arm
    end
  end
end

-- after_waited(c) -> true if a task waits to receive from the weft.after
-- or weft.ticker channel state c (its timer would wake it).
function R.after_waited(c)
  return S.wq_ready(c.rq)
end

-- weft.after(seconds) -> a channel that receives weft.now() once, after
-- `seconds`.
function M.after(s)
  if type(s) ~= "number" or s ~= s then
    argerror(1, "after", "number expected, got " ..
      (type(s) == "number" and "nan" or type(s)))
  end
  local u = new(1)
  if s < math.huge then
    -- NOTE: the timer keeps the channel until it fires, as Go's time.After
    -- did before Go 1.23; in long loops prefer a context with a timeout.
    S.timer_start(S.now() + (s > 0 and s or 0), states[u])
  end
  return u
end

-- weft.ticker(seconds) -> ch, stop: ch receives weft.now() every `seconds`
-- (a tick nobody has taken is dropped); stop() ends it.
function M.ticker(s)
  if type(s) ~= "number" or s ~= s or s <= 0 then
    argerror(1, "ticker", "positive number expected, got " ..
      (type(s) == "number" and tostring(s) or type(s)))
  end
  local u = new(1)
  local c = states[u]
  c.period = s
  c.clock = S.cur_clock()
  c.timer = S.timer_start(S.now() + s, c)
  return u, function()
    if not c.stopped then
      c.stopped = true
      S.timer_stop(c.timer, c)
    end
  end
end

M.methods = methods
return M
