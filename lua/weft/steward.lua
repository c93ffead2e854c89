-- weft.steward: a monitor that heals a stuck or dead ward ("Concurrency in
-- Go", ch. 5, "Healing Unhealthy Goroutines"), with Erlang/OTP's restart
-- intensity.
--
-- A ward is started by start(ctx, pulse_interval), which returns the ward's
-- heartbeat channel (or nil: a ward that never pulses). The steward runs it
-- in a task of its own under a context of its own, and restarts it when no
-- pulse came for `timeout` seconds, or when its task ended or failed: it
-- cancels the old ward's context, waits `backoff`, and starts a new one.
-- After more than `max_restarts` restarts within `within` seconds it gives
-- up: it stops the ward and fails with an error naming the ward and its
-- last failure (OTP escalates the same way to the parent supervisor).
--
-- weft.steward{...} returns a start function of the same shape, whose
-- heartbeat pulses every pulse_interval while the steward runs, so a
-- steward can be the ward of another.
--
-- Restarts are also throttled, whatever the budget: a burst of THROTTLE_BURST
-- at once, then at most THROTTLE_RATE a second. A ward that ends the moment
-- it starts would otherwise be restarted in a loop that never blocks: with
-- unlimited restarts (the default) it spins forever, and under virtual time,
-- which moves only when every task is blocked, the clock stops for good.
-- Throttled, each restart beyond the burst waits, so time passes (systemd
-- pauses 100 ms between restarts by default; OTP bounds them instead, which
-- max_restarts does here).

local S = require "weft.sched"
local chan = require "weft.chan"
local ctxmod = require "weft.ctx"
local errors = require "weft.errors"
local heartbeat = require "weft.heartbeat"

local type, format, tostring, getmetatable = type, string.format, tostring,
  getmetatable
local huge = math.huge
local select_ = require("weft.select").select
local rate = require "weft.rate"
local argerror, typeerror = S.argerror, S.typeerror

local M = {}

local THROTTLE_BURST, THROTTLE_RATE = 10, 10
M.THROTTLE_BURST, M.THROTTLE_RATE = THROTTLE_BURST, THROTTLE_RATE

local function option(opts, name, default, ok, what)
  local v = opts[name]
  if v == nil then return default end
  if not ok(v) then
    argerror(1, "steward", format("field '%s': %s expected, got %s", name,
      what, type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

local function positive(v) return type(v) == "number" and v > 0 end
local function non_negative(v) return type(v) == "number" and v >= 0 end

local function default_log(msg)
  io.stderr:write(msg, "\n")
end

-- weft.steward{start=, timeout=, name=, max_restarts=, within=, backoff=,
-- log=} -> start(ctx, pulse_interval) -> heartbeat channel, task
function M.steward(opts)
  if type(opts) ~= "table" then typeerror(1, "steward", "table", opts) end
  local ward = opts.start
  if type(ward) ~= "function" then
    argerror(1, "steward", "field 'start': function expected, got " ..
      type(ward))
  end
  local timeout = option(opts, "timeout", nil, positive, "positive number")
  if not timeout then
    argerror(1, "steward", "field 'timeout': positive number expected, " ..
      "got nil")
  end
  local name = option(opts, "name", "ward",
    function(v) return type(v) == "string" end, "string")
  local max_restarts = option(opts, "max_restarts", huge, non_negative,
    "non-negative number")
  local within = option(opts, "within", 60, positive, "positive number")
  local backoff = option(opts, "backoff", 0, function(v)
    return non_negative(v) or type(v) == "function" end,
    "non-negative number or function")
  local log = option(opts, "log", default_log,
    function(v) return type(v) == "function" end, "function")

  -- The monitor: one task per steward, the ward's parent. It selects on
  -- its own ticker (it pulses while it waits), the ward's pulses, the
  -- deadline for the next one and the ward's end; or, while it backs off
  -- before a restart, on its ticker and the end of the backoff.
  local function monitor(ctx, hb)
    local me = S.R.cur
    local gen               -- the current ward: {cancel, ended, seen, err}
    local restarts = {}     -- times of recent restarts
    local last_failure
    local throttle = rate.limiter(THROTTLE_RATE, THROTTLE_BURST)

    local function start_ward()
      local wctx, cancel = ctxmod.with_cancel(ctx)
      local g = { cancel = cancel, ended = chan.chan(), seen = chan.chan(1) }
      local seen = chan.states[g.seen]
      S.spawn_hooked(me, function(c)
        local ward_hb = ward(c, timeout / 2)
        if ward_hb ~= nil and not chan.states[ward_hb] then
          -- A bug in the steward's configuration, not a failure of the
          -- ward: restarting would repeat it. The monitor raises it.
          g.bad = format("steward: start of %s returned %s (a weft.chan " ..
            "or nil expected)", name, type(ward_hb))
          return
        end
        if ward_hb then
          -- A relay that does nothing but wait for the ward's pulses, into
          -- a buffer of one: a pulse is never lost while the monitor is
          -- busy (ticking itself when the ward pulses, say).
          S.go(function()
            for _ in ward_hb:iter(c) do chan.try_send(seen, true) end
          end)
        end
      end, { n = 1, wctx }, wctx, function(_, err)
        g.err = err
        g.ended:close()
        return true -- the steward handles its ward's failures
      end, name)
      gen = g
    end

    local function give_up()
      gen.cancel()
      hb:close()
      local n = #restarts
      local err = errors.new("steward", format("steward: gave up on %s " ..
        "after %d restart%s in %g s; last failure: %s", name, n,
        n == 1 and "" or "s", within, errors.describe(last_failure)),
        last_failure)
      local ok, lerr = pcall(log, err.message)
      if not ok then
        -- The heartbeat is closed already; the ward gone: say both.
        error(format("steward: log of %s raised: %s (while giving up: %s)",
          name, errors.describe(lerr), err.message), 0)
      end
      return nil, err
    end

    -- spend(why) -> false when the restart budget is spent (OTP's restart
    -- intensity: more than max_restarts within `within` seconds). The
    -- restart refused is not counted: `restarts` holds the times of those
    -- that happened within `within`.
    local function spend(why)
      last_failure = why
      local now = S.now()
      local kept = {}
      for _, t in ipairs(restarts) do
        if now - t < within then kept[#kept + 1] = t end
      end
      restarts = kept
      if #kept >= max_restarts then return false end
      kept[#kept + 1] = now
      return true
    end

    -- fail(msg): a bug in the steward's configuration; stop the ward and
    -- raise it.
    local function fail(msg)
      gen.cancel()
      hb:close()
      error(msg, 0)
    end

    -- user(what, fn, ...) -> fn(...): a callback of the configuration (log,
    -- backoff), protected: one that raised skipped fail, and left the
    -- heartbeat open and ticking, so that whoever listened hung for ever.
    local function user(what, fn, ...)
      local ok, v = pcall(fn, ...)
      if not ok then
        fail(format("steward: %s of %s raised: %s", what, name,
          errors.describe(v)))
      end
      return v
    end

    local ticks = hb:ticks()
    start_ward()
    local deadline = chan.after(timeout)
    local backing_off -- a weft.after channel while backing off
    while true do
      local i = select_({
        { recv = ticks },
        { recv = backing_off or gen.seen },
        { recv = not backing_off and deadline },
        { recv = not backing_off and gen.ended },
      }, ctx)
      if i == nil then -- the steward's context is done: stop the ward
        gen.cancel()
        hb:close()
        return true
      elseif i == 1 then
        hb:pulse()
      elseif i == 2 then
        if backing_off then
          backing_off = nil
          start_ward()
        end
        deadline = chan.after(timeout) -- a pulse: the ward is alive
      elseif i == 4 and gen.bad then
        fail(gen.bad)
      else
        local why, what
        if i == 3 then
          why = errors.new("unhealthy", format("%s missed its heartbeat " ..
            "for %g s", name, timeout))
          what = "unhealthy"
        else
          why = gen.err or errors.new("ended", name .. " ended")
          what = gen.err and ("failed: " .. errors.describe(gen.err)) or
            "ended"
        end
        gen.cancel(why)
        -- Giving up says why itself; only a restart is logged here.
        if not spend(why) then return give_up() end
        user("log", log, format("steward: %s %s; restarting", name, what))
        local pause = backoff
        if type(backoff) == "function" then
          pause = user("backoff", backoff, #restarts)
          if type(pause) ~= "number" or pause ~= pause or pause < 0 then
            fail(format("steward: backoff(%d) returned %s (non-negative " ..
              "number expected)", #restarts, type(pause) == "number" and
              tostring(pause) or type(pause)))
          end
        end
        local wait = throttle:reserve():delay()
        if wait > pause then pause = wait end
        if pause > 0 then
          backing_off = chan.after(pause)
        else
          start_ward()
          deadline = chan.after(timeout)
        end
      end
    end
  end

  return function(ctx, pulse_interval)
    if ctx == nil then
      ctx = ctxmod.context()
    elseif getmetatable(ctx) ~= S.CtxMT then
      typeerror(1, "start", "weft.ctx", ctx)
    end
    if type(pulse_interval) ~= "number" or pulse_interval ~= pulse_interval or
        pulse_interval <= 0 then
      argerror(2, "start", "positive number expected, got " ..
        (type(pulse_interval) == "number" and tostring(pulse_interval) or
          type(pulse_interval)))
    end
    local hb = heartbeat.heartbeat(pulse_interval)
    local task = S.spawn_hooked(S.cur("steward"), monitor,
      { n = 2, ctx, hb }, ctx, nil, "steward of " .. name)
    return hb:beats(), task
  end
end

return M
