-- weft.select: wait on several channel operations, as Go's select.
--
--   local i, v, err = weft.select({
--     {recv = jobs}, {send = out, value = x}, {recv = weft.after(1)},
--     {default = true},
--   } [, ctx])
--
-- When several cases are ready, one is chosen uniformly at random (reservoir
-- sampling over the ready ones). A case whose channel is `false` is disabled,
-- like a nil channel in Go. Without a default case the select is a wait, so
-- it fails with (nil, err) when its context is cancelled.

local S = require "weft.sched"
local C = require "weft.chan"
local errors = require "weft.errors"

local R = S.R
local states, try_send, try_recv = C.states, C.try_send, C.try_recv
local CLOSED, SEND_CLOSED = C.CLOSED, C.SEND_CLOSED
local park, wq_push, wq_ready = S.park, S.wq_push, S.wq_ready
local block, headroom = S.block, S.headroom
local random = S.random
local type, error, format = type, error, string.format
local typeerror, argerror = S.typeerror, S.argerror

local M = {}

local function chanof(u, i, field)
  local c = states[u]
  if not c then
    argerror(1, "select", format("case #%d: '%s' must be a weft.chan or " ..
      "false, got %s", i, field, type(u)), 4)
  end
  return c
end

-- The wait queue a case sits in while the select is parked, or nil.
local function case_queue(cs)
  if type(cs) ~= "table" then return nil end
  local u = cs.recv
  if u then
    local c = states[u]
    return c and c.rq
  end
  if u == nil and cs.send then
    local c = states[cs.send]
    return c and c.sq
  end
  return nil
end

-- A parked select was cancelled: its entries in every queue are now dead.
function R.select_unpark(cases)
  for i = 1, #cases do
    local q = case_queue(cases[i])
    if q then q.dead = q.dead + 1 end
  end
end

-- probe(cases, i, nready, pick, pickc, default) -> nready, pick, pickc,
-- default: case i checked, and taken into the draw if it can proceed
-- (reservoir sampling: the k-th ready case replaces the pick with
-- probability 1/k).
local function probe(cases, i, nready, pick, pickc, default)
  local cs = cases[i]
  if type(cs) ~= "table" then
    argerror(1, "select", format("case #%d: table expected, got %s", i,
      type(cs)), 3)
  end
  local u = cs.recv
  if u ~= nil then
    if u then
      local c = chanof(u, i, "recv")
      if c.bn > 0 or c.closed or wq_ready(c.sq) then
        nready = nready + 1
        if nready == 1 or random(nready) == 1 then pick, pickc = i, c end
      end
    end
    return nready, pick, pickc, default
  end
  u = cs.send
  if u ~= nil then
    if u then
      local c = chanof(u, i, "send")
      if cs.value == nil then
        argerror(1, "select", format("case #%d: send needs a non-nil " ..
          "'value'", i), 3)
      end
      if c.closed or c.bn < c.cap or wq_ready(c.rq) then
        nready = nready + 1
        if nready == 1 or random(nready) == 1 then pick, pickc = i, c end
      end
    end
  elseif cs.default then
    if default then
      argerror(1, "select", format("case #%d: more than one default", i), 3)
    end
    default = i
  else
    argerror(1, "select", format("case #%d: 'recv', 'send' or " ..
      "'default' expected", i), 3)
  end
  return nready, pick, pickc, default
end

function M.select(cases, ctx)
  if type(cases) ~= "table" then typeerror(1, "select", "table", cases) end
  local t = S.cur("select")
  ctx = S.wait_ctx(t, ctx, 2, "select")
  local n = #cases
  local pick, pickc, nready, default = nil, nil, 0, nil
  if n <= 4 then
    -- Written out, not a loop: LuaJIT unrolls an inner loop into the
    -- caller's trace only when an iteration is under 25 IR instructions,
    -- which a probe is not. The loop then became a trace of its own, left
    -- by a side exit at every case unlike the one it was recorded on
    -- (measured, four cases: 774 -> 444 instructions a select, 81-105 ->
    -- 47-67 ns in bench/weft_bench.lua's select).
    if n > 0 then
      nready, pick, pickc, default = probe(cases, 1, nready, pick, pickc,
        default)
      if n > 1 then
        nready, pick, pickc, default = probe(cases, 2, nready, pick, pickc,
          default)
        if n > 2 then
          nready, pick, pickc, default = probe(cases, 3, nready, pick,
            pickc, default)
          if n > 3 then
            -- luacheck: ignore 311 (nready is not read again)
            nready, pick, pickc, default = probe(cases, 4, nready, pick,
              pickc, default)
          end
        end
      end
    end
  else
    for i = 1, n do
      nready, pick, pickc, default = probe(cases, i, nready, pick, pickc,
        default)
    end
  end
  if not default then
    local nd = ctx.node
    if nd and nd.cerr then return S.refuse(t, nd) end
  end
  if pick then
    local cs = cases[pick]
    if cs.recv then
      local v = try_recv(pickc)
      if v == nil then return pick, nil, errors.closed() end
      return pick, v
    end
    if not try_send(pickc, cs.value) then
      error("send on closed channel", 2)
    end
    return pick
  end
  if default then return default end
  headroom()
  for i = 1, n do
    local cs = cases[i]
    local u = cs.recv
    if u then
      wq_push(states[u].rq, t, i, nil)
    elseif u == nil then
      u = cs.send
      if u then wq_push(states[u].sq, t, i, cs.value) end
    end
  end
  park(t, cases, ctx)
  local k, v = block(t, "weft.select")
  if k == nil then return nil, v end
  for i = 1, n do
    if i ~= k then
      local q = case_queue(cases[i])
      if q then q.dead = q.dead + 1 end
    end
  end
  if v == CLOSED then return k, nil, errors.closed() end
  if v == SEND_CLOSED then error("send on closed channel", 2) end
  return k, v
end

return M
