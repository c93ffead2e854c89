-- weft.replicate: replicated requests ("Concurrency in Go", ch. 5): run
-- the same request on several replicas and take the first answer; with a
-- hedge, start the next replica only when the ones running are slow.

local S = require "weft.sched"
local chan = require "weft.chan"
local ctxmod = require "weft.ctx"
local errors = require "weft.errors"

local type, getmetatable, select, unpack, format = type, getmetatable,
  select, unpack, string.format
local select_ = require("weft.select").select
local argerror, typeerror = S.argerror, S.typeerror

local M = {}

local function pack(...)
  return { n = select("#", ...), ... }
end

-- weft.replicate(ctx, n, fn [, {hedge=}]) -> results..., i | nil, err:
-- call fn(rctx, i) for replicas i = 1..n, each in a task, and return the
-- first success (fn's results, then i). Replicas that lose are cancelled
-- and awaited before it returns. With hedge = s, replica i+1 starts only
-- when no answer has come s seconds after replica i started, or replica i
-- failed. If every replica fails, err (kind "replicate") holds each
-- replica's error in err.errors, by replica.
function M.replicate(ctx, n, fn, opts)
  if getmetatable(ctx) ~= S.CtxMT then
    typeerror(1, "replicate", "weft.ctx", ctx)
  end
  if type(n) ~= "number" or n < 1 or n % 1 ~= 0 then
    argerror(2, "replicate", "positive integer expected, got " ..
      (type(n) == "number" and tostring(n) or type(n)))
  end
  if type(fn) ~= "function" then typeerror(3, "replicate", "function", fn) end
  if opts ~= nil and type(opts) ~= "table" then
    typeerror(4, "replicate", "table", opts)
  end
  local hedge = opts and opts.hedge
  if hedge ~= nil and (type(hedge) ~= "number" or hedge ~= hedge or
      hedge < 0) then
    argerror(4, "replicate", "field 'hedge': non-negative number expected")
  end
  local me = S.cur("replicate")
  local rctx, cancel = ctxmod.with_cancel(ctx)
  -- Each replica reports {i, ok, results or error}; capacity n, so no
  -- replica ever waits to report.
  local answers = chan.chan(n)
  local tasks, errs, answered = {}, {}, {}
  local started, failed = 0, 0
  local hedge_ch -- the hedge timer of the latest replica
  local function launch()
    started = started + 1
    if hedge and started < n then hedge_ch = chan.after(hedge) end
    local i = started
    tasks[i] = S.spawn_hooked(me, function(c)
      local r = pack(fn(c, i))
      answers:send({ i = i, r = r }, ctxmod.background())
    end, rctx, rctx, function(_, err)
      if err ~= nil then
        -- It raised (a bug). The buffer has room for every replica's
        -- report, so this never waits (on_done must not).
        chan.try_send(chan.states[answers], { i = i, err = err })
        return true
      end
      return false
    end, format("replica %d", i))
  end
  local function finish()
    cancel()
    for i = 1, started do tasks[i]:join(ctxmod.background()) end
  end

  launch()
  if not hedge then
    while started < n do launch() end
  end
  while true do
    local cases = { { recv = answers } }
    if started < n then cases[2] = { recv = hedge_ch } end
    local k, a = select_(cases, ctx)
    if k == nil then -- ctx cancelled
      finish()
      return nil, a
    elseif k == 2 then
      launch() -- no answer within the hedge: one more replica
    else
      local ri, r = a.i, a.r
      -- A replica's later word (a child of it failing after it answered)
      -- is not a second answer.
      if not answered[ri] then
        answered[ri] = true
        if r and r[1] then
          finish()
          local out = { unpack(r, 1, r.n) }
          out[r.n + 1] = ri
          return unpack(out, 1, r.n + 1)
        end
        failed = failed + 1
        errs[ri] = a.err or errors.failed(r and r[2])
        if failed == n then
          finish()
          local e = errors.new("replicate", format("all %d replicas failed",
            n), errs[1])
          e.errors = errs
          return nil, e
        end
        -- The latest replica failed: the next need not wait for the hedge.
        if started < n and ri == started then launch() end
      end
    end
  end
end

return M
