-- weft.pipe: pipeline stages, after "Concurrency in Go", ch. 4.
--
-- Each stage is a task that reads channels and writes a channel of its own,
-- and closes it when done. Every stage takes a context first and stops when
-- it is cancelled (the book's done channel), so a consumer that stops early
-- cancels the context and no stage is left blocked. Stages are children of
-- the task that builds the pipeline, which therefore waits for them: build
-- pipelines inside a weft.scope, whose end cancels them.

local S = require "weft.sched"
local chan = require "weft.chan"

local go, chan_new, select_ = S.go, chan.chan, require("weft.select").select
local type, select = type, select
local typeerror = S.typeerror
local checkmt, CtxMT = S.checkmt, S.CtxMT

local M = {}

local function checkchan(ch, argn, fname)
  if not chan.states[ch] then typeerror(argn, fname, "weft.chan", ch, 3) end
end

-- generator(ctx, ...) -> ch: the values, then closed.
function M.generator(ctx, ...)
  checkmt(ctx, CtxMT, 1, "generator")
  local out = chan_new()
  local n = select("#", ...)
  local values = { ... }
  go(function()
    for i = 1, n do
      if values[i] ~= nil and not out:send(values[i], ctx) then break end
    end
    out:close()
  end)
  return out
end

-- take(ctx, ch, n) -> ch: the first n values of ch (fewer if it closes).
function M.take(ctx, ch, n)
  checkmt(ctx, CtxMT, 1, "take")
  checkchan(ch, 2, "take")
  if type(n) ~= "number" then typeerror(3, "take", "number", n) end
  local out = chan_new()
  go(function()
    for _ = 1, n do
      local v = ch:recv(ctx)
      if v == nil or not out:send(v, ctx) then break end
    end
    out:close()
  end)
  return out
end

-- or_done(ctx, ch) -> ch: the values of ch until it closes or ctx is
-- cancelled, so a `for v in` loop over it stops either way.
function M.or_done(ctx, ch)
  checkmt(ctx, CtxMT, 1, "or_done")
  checkchan(ch, 2, "or_done")
  local out = chan_new()
  go(function()
    for v in ch:iter(ctx) do
      if not out:send(v, ctx) then break end
    end
    out:close()
  end)
  return out
end

-- tee(ctx, ch) -> a, b: every value of ch on both a and b.
function M.tee(ctx, ch)
  checkmt(ctx, CtxMT, 1, "tee")
  checkchan(ch, 2, "tee")
  local a, b = chan_new(), chan_new()
  go(function()
    for v in ch:iter(ctx) do
      -- Send to both, in whichever order they are ready.
      local c1, c2 = a, b
      for _ = 1, 2 do
        local i = select_({ { send = c1, value = v },
          { send = c2, value = v } }, ctx)
        if i == nil then break end
        if i == 1 then c1 = false else c2 = false end
      end
      if ctx:err() then break end
    end
    a:close()
    b:close()
  end)
  return a, b
end

-- bridge(ctx, chs) -> ch: the values of each channel that chs yields, in
-- turn: one stream from a channel of channels.
function M.bridge(ctx, chs)
  checkmt(ctx, CtxMT, 1, "bridge")
  checkchan(chs, 2, "bridge")
  local out = chan_new()
  go(function()
    for inner in chs:iter(ctx) do
      for v in inner:iter(ctx) do
        if not out:send(v, ctx) then break end
      end
    end
    out:close()
  end)
  return out
end

-- merge(ctx, ...) -> ch: the values of all the channels, as they come (fan
-- in); closed when all of them are.
function M.merge(ctx, ...)
  checkmt(ctx, CtxMT, 1, "merge")
  local n = select("#", ...)
  local ins = { ... }
  for i = 1, n do checkchan(ins[i], i + 1, "merge") end
  local out = chan_new()
  go(function()
    local ts = {}
    for i = 1, n do
      ts[i] = go(function()
        for v in ins[i]:iter(ctx) do
          if not out:send(v, ctx) then break end
        end
      end)
    end
    -- Under background: each input task stops on ctx by itself, and out
    -- must stay open until the last of them has.
    local bg = require("weft.ctx").background()
    for i = 1, n do ts[i]:join(bg) end
    out:close()
  end)
  return out
end

-- first_done(ctx, ...) -> ch: closed as soon as any of the channels closes
-- (or yields a value), or ctx is cancelled: the book's or-channel.
function M.first_done(ctx, ...)
  checkmt(ctx, CtxMT, 1, "first_done")
  local n = select("#", ...)
  local cases = {}
  for i = 1, n do
    local ch = select(i, ...)
    checkchan(ch, i + 1, "first_done")
    cases[i] = { recv = ch }
  end
  cases[n + 1] = { recv = ctx:done() }
  local out = chan_new()
  go(function()
    select_(cases, require("weft.ctx").background())
    out:close()
  end)
  return out
end

return M
