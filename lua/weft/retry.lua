-- weft.retry: exponential backoff that honours its context.
--
-- Two forms, for two kinds of caller:
--
--   for attempt in weft.retry(ctx, opts) do      -- the iterator: when the
--     local v, err = try_it()                     -- attempt is code inline,
--     if v then break end                         -- with its own decisions
--   end                                           -- (log, give up early)
--
--   local v, err = weft.retry_call(ctx, opts, fn) -- the call: when the
--                                                 -- attempt is one function
--                                                 -- and the last error is
--                                                 -- what you want back
--
-- The wait before attempt i+1 is min * factor^(i-1), clamped to [min, max],
-- spread by +-jitter (a fraction); waits end early when ctx is cancelled.

local S = require "weft.sched"

local type, select, unpack = type, select, unpack
local argerror, typeerror = S.argerror, S.typeerror
local checkmt, CtxMT = S.checkmt, S.CtxMT

local M = {}

local DEFAULTS = { attempts = 5, min = 0.1, max = 10, factor = 2, jitter = 0 }

local function option(opts, name, fname, ok)
  local v = opts[name]
  if v == nil then return DEFAULTS[name] end
  if type(v) ~= "number" or v ~= v or not ok(v) then
    argerror(2, fname, "bad field '" .. name .. "': " ..
      (type(v) == "number" and tostring(v) or type(v)), 4)
  end
  return v
end

local function options(opts, fname)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then typeerror(2, fname, "table", opts, 3) end
  local o = {
    attempts = option(opts, "attempts", fname,
      function(v) return v >= 1 and v % 1 == 0 end),
    min = option(opts, "min", fname, function(v) return v >= 0 end),
    max = opts.max == nil and math.max(DEFAULTS.max, opts.min or 0) or
      option(opts, "max", fname, function(v) return v >= 0 end),
    factor = option(opts, "factor", fname, function(v) return v >= 1 end),
    jitter = option(opts, "jitter", fname,
      function(v) return v >= 0 and v <= 1 end),
  }
  if o.max < o.min then
    argerror(2, fname, "field 'max' is less than 'min'", 3)
  end
  return o
end

-- delay(o, i) -> the wait after attempt i
function M.delay(o, i)
  local d = o.min * o.factor ^ (i - 1)
  -- min 0 and factor^(i-1) past the largest double (attempt 1025 at the
  -- default factor 2) is 0 * inf: NaN, which no clamp below catches.
  if d ~= d then d = o.min end
  if o.jitter > 0 then
    d = d * (1 + o.jitter * (2 * (S.random(1000000) - 1) / 999999 - 1))
  end
  if d < o.min then d = o.min end
  if d > o.max then d = o.max end
  return d
end

-- weft.retry(ctx [, opts]) -> iterator of attempt numbers 1, 2, ...: the
-- loop body is the attempt; break on success. Before each attempt after the
-- first it waits out the backoff. The loop ends when the attempts run out,
-- or when ctx is cancelled (then ctx:err() says so).
local function attempts(ctx, o)
  local attempt = 0
  return function()
    if attempt >= o.attempts then return nil end
    attempt = attempt + 1
    if attempt > 1 then
      if not S.sleep(M.delay(o, attempt - 1), ctx) then return nil end
    elseif ctx:err() then
      return nil
    end
    return attempt
  end
end

function M.retry(ctx, opts)
  checkmt(ctx, CtxMT, 1, "retry")
  return attempts(ctx, options(opts, "retry"))
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- weft.retry_call(ctx, opts, fn) -> fn's results | nil, err: call
-- fn(ctx, attempt) until it succeeds (its first result is truthy), waiting
-- out the backoff between attempts. When the attempts run out, the last
-- error; when ctx is cancelled first, ctx's error. An error fn raises is a
-- bug, not a failure to retry: it propagates.
function M.retry_call(ctx, opts, fn)
  checkmt(ctx, CtxMT, 1, "retry_call")
  if type(fn) ~= "function" then typeerror(3, "retry_call", "function", fn) end
  local last
  for attempt in attempts(ctx, options(opts, "retry_call")) do
    local r = pack(fn(ctx, attempt))
    if r[1] then return unpack(r, 1, r.n) end
    last = r[2]
  end
  local cerr = ctx:err()
  if cerr then return nil, cerr end
  return nil, last
end

return M
