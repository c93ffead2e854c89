-- weft.rate: token-bucket rate limiters with the semantics of Go's
-- golang.org/x/time/rate, point for point (see SEMANTICS.md), and the
-- MultiLimiter of "Concurrency in Go", ch. 5.
--
-- Time is weft.now() (so virtual time applies); durations are seconds. Every
-- state change happens at an explicit time t; the *_at variants take it,
-- for tests. A limit is events per second; rate.inf allows everything.
--
-- The arithmetic is a few float operations per call: it lives in Lua, next
-- to its callers, rather than behind a C crossing that would cost more than
-- it does (see docs/internals.md).

local S = require "weft.sched"
local errors = require "weft.errors"

local type, getmetatable, setmetatable, format = type, getmetatable,
  setmetatable, string.format
local huge, select, sort = math.huge, select, table.sort
local now = S.now
local typeerror, argerror = S.typeerror, S.argerror
local checkmt = S.checkmt

local M = {}

local INF = huge -- rate.inf: a limit that allows every event
M.inf = INF

-- checknum(v, argn, fname [, level]) -> v: a number that is not NaN. NaN
-- fails every comparison, so a NaN time or limit would pass every range
-- check below and poison the bucket for good.
local function checknum(v, argn, fname, level)
  if type(v) ~= "number" or v ~= v then
    argerror(argn, fname, "number expected, got " ..
      (type(v) == "number" and "nan" or type(v)), (level or 2) + 1)
  end
  return v
end

-- every(seconds) -> the limit of one event per interval (<= 0: inf)
function M.every(interval)
  checknum(interval, 1, "every")
  if interval <= 0 then return INF end
  return 1 / interval
end

-- per(n, seconds) -> the limit of n events per interval
function M.per(n, interval)
  checknum(n, 1, "per")
  checknum(interval, 2, "per")
  if interval <= 0 then return INF end
  return n / interval
end

-- Go measures durations in integer nanoseconds; so do these, so that a
-- refill over 0.1 s at 10/s is one whole token although 0.3 - 0.2 is not
-- 0.1 in floating point.
local floor, ceil = math.floor, math.ceil

local function ns(d) -- to whole nanoseconds, rounding
  return floor(d * 1e9 + 0.5) / 1e9
end

local function duration_from_tokens(limit, tokens)
  if limit <= 0 then return huge end
  local d = tokens / limit * 1e9
  d = d >= 0 and floor(d) or ceil(d) -- Go's conversion truncates
  return d / 1e9
end

local function tokens_from_duration(limit, d)
  -- Zero elapsed time refills nothing, even at rate.inf (inf * 0 is NaN).
  if limit <= 0 or d <= 0 then return 0 end
  return ns(d) * limit
end

--[[ Limiter ]]

local Limiter = {}
local LimiterMT = { __index = Limiter, __name = "weft.rate.limiter" }
M.LimiterMT = LimiterMT

local function checklimit(v, argn, fname)
  if type(v) ~= "number" or v ~= v or v < 0 then
    argerror(argn, fname, "non-negative number expected, got " ..
      (type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

local function checkburst(v, argn, fname)
  if type(v) ~= "number" or v < 0 or v % 1 ~= 0 then
    argerror(argn, fname, "non-negative integer expected, got " ..
      (type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

local function checkn(n, argn, fname)
  if n == nil then return 1 end
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    argerror(argn, fname, "non-negative integer expected, got " ..
      (type(n) == "number" and tostring(n) or type(n)), 3)
  end
  return n
end

local function checkt(t, fname)
  checknum(t, 1, fname, 3) -- not a tail call: it counts a frame
  return t
end

-- weft.rate.limiter(r, burst) -> limiter: r events per second, bursts of up
-- to `burst`; the bucket starts full.
function M.limiter(r, burst)
  checklimit(r, 1, "limiter")
  checkburst(burst, 2, "limiter")
  return setmetatable({ lim = r, bur = burst, toks = burst, last = 0,
    last_event = 0 }, LimiterMT)
end

-- advance(l, t) -> t, tokens: the bucket at time t (never earlier than its
-- last update: time does not run backward).
local function advance(l, t)
  local last = l.last
  if t < last then last = t end
  local tokens = l.toks + tokens_from_duration(l.lim, t - last)
  if tokens > l.bur then tokens = l.bur end
  return t, tokens
end

local Reservation = {}
local ReservationMT = { __index = Reservation,
  __name = "weft.rate.reservation" }

-- take(l, t, n, max_wait) -> ok, act: take n tokens at t if that needs no
-- more than max_wait seconds of waiting and n <= burst; act is the time to
-- act (math.huge when not ok). On failure nothing changes. allow is this
-- alone, with no reservation to make.
local function take(l, t, n, max_wait)
  local limit = l.lim
  if limit == INF then return true, t end
  local tokens
  t, tokens = advance(l, t)
  tokens = tokens - n
  local wait = 0
  if tokens < 0 then wait = duration_from_tokens(limit, -tokens) end
  if n <= l.bur and wait <= max_wait then
    local act = t + wait
    l.last, l.toks, l.last_event = t, tokens, act
    return true, act
  end
  return false, huge
end

-- reserve(l, t, n, max_wait) -> reservation: take, remembered (with the
-- limit it was made at) so that it can be cancelled.
local function reserve(l, t, n, max_wait)
  local limit = l.lim
  local ok, act = take(l, t, n, max_wait)
  return setmetatable({ ok = ok, l = l, tokens = ok and n or 0, act = act,
    limit = limit }, ReservationMT)
end

function Limiter:limit()
  checkmt(self, LimiterMT, 1, "limit")
  return self.lim
end

function Limiter:burst()
  checkmt(self, LimiterMT, 1, "burst")
  return self.bur
end

-- limiter:tokens_at(t) -> tokens available at t (may be negative: debt)
function Limiter:tokens_at(t)
  checkmt(self, LimiterMT, 1, "tokens_at")
  local _, tokens = advance(self, checkt(t, "tokens_at"))
  return tokens
end

function Limiter:tokens()
  checkmt(self, LimiterMT, 1, "tokens")
  return self:tokens_at(now())
end

-- limiter:allow_at(t [, n]) -> true if n events may happen at t; nothing is
-- consumed when not.
function Limiter:allow_at(t, n)
  checkmt(self, LimiterMT, 1, "allow_at")
  return (take(self, checkt(t, "allow_at"), checkn(n, 2, "allow_at"), 0))
end

function Limiter:allow(n)
  checkmt(self, LimiterMT, 1, "allow")
  return (take(self, now(), checkn(n, 1, "allow"), 0))
end

-- limiter:reserve_at(t [, n]) -> reservation: always granted unless
-- n > burst; its delay() says how long to wait before acting.
function Limiter:reserve_at(t, n)
  checkmt(self, LimiterMT, 1, "reserve_at")
  return reserve(self, checkt(t, "reserve_at"), checkn(n, 2, "reserve_at"),
    huge)
end

function Limiter:reserve(n)
  checkmt(self, LimiterMT, 1, "reserve")
  return reserve(self, now(), checkn(n, 1, "reserve"), huge)
end

-- limiter:set_limit_at(t, r), set_limit(r), set_burst_at(t, b), set_burst(b):
-- advance to t first, then change. Reservations already made keep the
-- limit they were made with.
function Limiter:set_limit_at(t, r)
  checkmt(self, LimiterMT, 1, "set_limit_at")
  checkt(t, "set_limit_at")
  checklimit(r, 2, "set_limit_at")
  local tokens
  t, tokens = advance(self, t)
  self.last, self.toks, self.lim = t, tokens, r
end

function Limiter:set_limit(r)
  checkmt(self, LimiterMT, 1, "set_limit")
  checklimit(r, 1, "set_limit")
  self:set_limit_at(now(), r)
end

function Limiter:set_burst_at(t, b)
  checkmt(self, LimiterMT, 1, "set_burst_at")
  checkt(t, "set_burst_at")
  checkburst(b, 2, "set_burst_at")
  local tokens
  t, tokens = advance(self, t)
  self.last, self.toks, self.bur = t, tokens, b
end

function Limiter:set_burst(b)
  checkmt(self, LimiterMT, 1, "set_burst")
  checkburst(b, 1, "set_burst")
  self:set_burst_at(now(), b)
end

local wait_any

-- limiter:wait([n] [, ctx]) -> true | nil, err: wait until n events may
-- happen. Fails at once (kind "rate") when n > burst (with a finite limit),
-- or when the wait would end at or after ctx's deadline; on cancellation
-- while waiting, the reservation is given back.
-- wait_method(MT) -> the wait method of limiters or multis (MT): its
-- arguments checked, blaming the caller, then wait_any.
local function wait_method(MT)
  return function(self, n, ctx)
    checkmt(self, MT, 1, "wait")
    local argctx = 2
    if n ~= nil and type(n) ~= "number" then n, ctx, argctx = nil, n, 1 end
    n = checkn(n, 1, "wait")
    return wait_any(self, n, S.wait_ctx(S.cur("wait"), ctx, argctx, "wait"))
  end
end
Limiter.wait = wait_method(LimiterMT)

function LimiterMT.__tostring(l)
  return format("weft.rate.limiter: %g/s, burst %d, %g tokens", l.lim,
    l.bur, l.toks)
end

--[[ Reservations ]]

function Reservation:is_ok()
  checkmt(self, ReservationMT, 1, "is_ok")
  return self.ok
end

-- reservation:delay_from(t) -> seconds to wait from t before acting
-- (math.huge when not ok)
function Reservation:delay_from(t)
  checkmt(self, ReservationMT, 1, "delay_from")
  checkt(t, "delay_from")
  if not self.ok then return huge end
  local d = self.act - t
  if d < 0 then return 0 end
  return d
end

function Reservation:delay()
  checkmt(self, ReservationMT, 1, "delay")
  return self:delay_from(now())
end

-- reservation:cancel_at(t), cancel(): give the tokens back, as far as the
-- reservations made after this one allow.
function Reservation:cancel_at(t)
  checkmt(self, ReservationMT, 1, "cancel_at")
  checkt(t, "cancel_at")
  if not self.ok then return end
  local l = self.l
  if self.limit == INF or self.tokens == 0 or self.act < t then return end
  -- Tokens reserved after this one cannot be given back.
  local restore = self.tokens -
    tokens_from_duration(self.limit, l.last_event - self.act)
  if restore <= 0 then return end
  local tokens
  t, tokens = advance(l, t)
  tokens = tokens + restore
  if tokens > l.bur then tokens = l.bur end
  l.last, l.toks = t, tokens
  if ns(self.act - l.last_event) == 0 then
    local prev = self.act + duration_from_tokens(self.limit, -self.tokens)
    if prev >= t then l.last_event = prev end
  end
end

function Reservation:cancel()
  checkmt(self, ReservationMT, 1, "cancel")
  self:cancel_at(now())
end

function ReservationMT.__tostring(r)
  return format("weft.rate.reservation: %s, %d tokens at %g",
    r.ok and "ok" or "not ok", r.tokens, r.act)
end

--[[ MultiLimiter ]]
-- Several limiters as one, most restrictive first: an event must pass them
-- all. Multis nest, and are usable wherever a limiter is.

local Multi = {}
local MultiMT = { __index = Multi, __name = "weft.rate.multi" }

local function is_limiter(v)
  local mt = getmetatable(v)
  return mt == LimiterMT or mt == MultiMT
end
M.is_limiter = is_limiter

-- weft.rate.multi(l1, l2, ...) -> multi
function M.multi(...)
  local ls = { ... }
  local n = select("#", ...)
  if n == 0 then argerror(1, "multi", "a limiter expected") end
  for i = 1, n do
    if not is_limiter(ls[i]) then
      typeerror(i, "multi", "weft.rate.limiter", ls[i])
    end
  end
  sort(ls, function(a, b) return a:limit() < b:limit() end)
  return setmetatable({ ls = ls }, MultiMT)
end

-- The most restrictive limit and burst, the fewest tokens: computed each
-- time, as limits change (set_limit) after the multi sorted them.
function Multi:limit()
  checkmt(self, MultiMT, 1, "limit")
  local m = huge
  for _, l in ipairs(self.ls) do
    local x = l:limit()
    if x < m then m = x end
  end
  return m
end

function Multi:burst()
  checkmt(self, MultiMT, 1, "burst")
  local b = huge
  for _, l in ipairs(self.ls) do
    if l:burst() < b then b = l:burst() end
  end
  return b
end

function Multi:tokens_at(t)
  checkmt(self, MultiMT, 1, "tokens_at")
  checkt(t, "tokens_at")
  local m = huge
  for _, l in ipairs(self.ls) do
    local k = l:tokens_at(t)
    if k < m then m = k end
  end
  return m
end

function Multi:tokens()
  checkmt(self, MultiMT, 1, "tokens")
  return self:tokens_at(now())
end

-- A reservation on several limiters: ok only if all are; its delay is the
-- longest; cancel gives back to each.
local MultiRes = {}
local MultiResMT = { __index = MultiRes, __name = "weft.rate.reservation" }

function MultiRes:is_ok()
  checkmt(self, MultiResMT, 1, "is_ok")
  return self.ok
end

function MultiRes:delay_from(t)
  checkmt(self, MultiResMT, 1, "delay_from")
  checkt(t, "delay_from")
  if not self.ok then return huge end
  local d = 0
  for _, r in ipairs(self.rs) do
    local x = r:delay_from(t)
    if x > d then d = x end
  end
  return d
end

function MultiRes:delay()
  checkmt(self, MultiResMT, 1, "delay")
  return self:delay_from(now())
end

function MultiRes:cancel_at(t)
  checkmt(self, MultiResMT, 1, "cancel_at")
  checkt(t, "cancel_at")
  for _, r in ipairs(self.rs) do r:cancel_at(t) end
end

function MultiRes:cancel()
  checkmt(self, MultiResMT, 1, "cancel")
  self:cancel_at(now())
end

local multi_reserve

-- reserve_any(l, t, n, max_wait) -> a reservation on a limiter or a multi.
local function reserve_any(l, t, n, max_wait)
  if getmetatable(l) == LimiterMT then return reserve(l, t, n, max_wait) end
  return multi_reserve(l, t, n, max_wait)
end

-- multi_reserve(m, t, n, max_wait) -> a reservation on every limiter of m,
-- or a failed one having taken nothing.
function multi_reserve(m, t, n, max_wait)
  local rs = {}
  for i, l in ipairs(m.ls) do
    local r = reserve_any(l, t, n, max_wait)
    rs[i] = r
    if not r.ok then
      for j = i - 1, 1, -1 do rs[j]:cancel_at(t) end
      return setmetatable({ ok = false, rs = {} }, MultiResMT)
    end
  end
  return setmetatable({ ok = true, rs = rs }, MultiResMT)
end

function Multi:allow_at(t, n)
  checkmt(self, MultiMT, 1, "allow_at")
  return multi_reserve(self, checkt(t, "allow_at"), checkn(n, 2, "allow_at"),
    0).ok
end

function Multi:allow(n)
  checkmt(self, MultiMT, 1, "allow")
  return multi_reserve(self, now(), checkn(n, 1, "allow"), 0).ok
end

function Multi:reserve_at(t, n)
  checkmt(self, MultiMT, 1, "reserve_at")
  return multi_reserve(self, checkt(t, "reserve_at"),
    checkn(n, 2, "reserve_at"), huge)
end

function Multi:reserve(n)
  checkmt(self, MultiMT, 1, "reserve")
  return multi_reserve(self, now(), checkn(n, 1, "reserve"), huge)
end

-- multi:wait([n] [, ctx]) -> true | nil, err: as limiter:wait, on every
-- limiter at once: one reservation on all of them, and one sleep for the
-- longest delay. (Waiting on each in turn, as the book's MultiLimiter
-- does, spent the first ones' tokens and time before a later one refused:
-- n over its burst, or its wait past the deadline.)
Multi.wait = wait_method(MultiMT)

-- exceeded(l, n) -> the burst that n exceeds, of l or of one of its
-- limiters (l a limiter or a multi) with a finite limit; or nil.
local function exceeded(l, n)
  if getmetatable(l) == LimiterMT then
    if n > l.bur and l.lim ~= INF then return l.bur end
    return nil
  end
  for _, x in ipairs(l.ls) do
    local b = exceeded(x, n)
    if b then return b end
  end
  return nil
end

-- wait_any(l, n, ctx) -> true | nil, err: the wait of a limiter or a
-- multi, its arguments checked. A wait that would end at the deadline
-- itself fails at once too: the deadline's timer fires first, and the
-- wait slept for nothing (then gave its tokens back).
function wait_any(l, n, ctx)
  local b = exceeded(l, n)
  if b then
    return nil, errors.new("rate", format("rate: wait(n=%d) exceeds " ..
      "limiter's burst %d", n, b))
  end
  local cerr = ctx:err()
  if cerr then return nil, cerr end
  local at = now()
  local max_wait = huge
  local deadline = ctx:deadline()
  if deadline then max_wait = deadline - at end
  local r = reserve_any(l, at, n, max_wait)
  local delay = r.ok and r:delay_from(at) or huge
  if not r.ok or (deadline and delay > 0 and delay >= max_wait) then
    if r.ok then r:cancel_at(at) end
    return nil, errors.new("rate", format("rate: wait(n=%d) would exceed " ..
      "context deadline", n))
  end
  if delay == 0 then return true end
  local ok, err = S.sleep(delay, ctx)
  if ok then return true end
  r:cancel()
  return nil, err
end

function MultiMT.__tostring(m)
  return format("weft.rate.multi: %d limiters, limit %g/s", #m.ls,
    m:limit())
end

return M
