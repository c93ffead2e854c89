local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

-- A replica that works for load[i] seconds, then answers "rI", or fails
-- as fail[i] says ("return" or "raise"). `rec` records start times
-- (rec.started[i]) and, for a replica that was cancelled, what its wait
-- returned once it was over (rec.stopped[i] = "KIND@TIME").
local function replica(load, fail, rec)
  return function(ctx, i)
    rec.started[i] = weft.now()
    local ok, err = weft.sleep(load[i], ctx)
    if not ok then
      rec.stopped[i] = ("%s@%g"):format(err.kind, weft.now())
      return nil, err
    end
    if fail and fail[i] == "raise" then error("r" .. i .. " broke", 0) end
    if fail and fail[i] == "return" then
      return nil, weft.error("io", "r%d failed", i)
    end
    return "r" .. i
  end
end

local function recorder()
  return { started = {}, stopped = {} }
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("weft.replicate", function()
  it("returns the first success and its index", vtask(function()
    local rec = recorder()
    local v, i = weft.replicate(weft.context(), 4,
      replica({ 3, 1, 2, 4 }, nil, rec))
    assert.equal("r2", v)
    assert.equal(2, i)
    assert.equal(1, weft.now())
    assert.same({ 0, 0, 0, 0 }, rec.started)
    -- All of fn's results come back, nils included, then the index.
    local n = select("#", weft.replicate(weft.context(), 1,
      function() return "a", nil, "c" end))
    assert.equal(4, n)
    assert.same({ "a", nil, "c", 1 }, { weft.replicate(weft.context(), 1,
      function() return "a", nil, "c" end) })
  end))

  it("cancels the losers and waits for them before returning",
    vtask(function()
      local done = {}
      local v, i = weft.replicate(weft.context(), 4, function(ctx, r)
        local ok, err = weft.sleep(r, ctx) -- replica 1 wins at 1
        if ok then return "r" .. r end
        -- Clean-up that takes time, shielded from the cancellation.
        weft.sleep(0.5, weft.background())
        done[r] = ("%s@%g"):format(err.kind, weft.now())
        return nil, err
      end)
      assert.equal("r1", v)
      assert.equal(1, i)
      assert.same({ [2] = "canceled@1.5", [3] = "canceled@1.5",
        [4] = "canceled@1.5" }, done)
      assert.equal(1.5, weft.now())
    end))

  it("skips failures while another replica may still succeed",
    vtask(function()
      local rec = recorder()
      local v, i = weft.replicate(weft.context(), 3,
        replica({ 1, 2, 3 }, { "return", "raise" }, rec))
      assert.equal("r3", v)
      assert.equal(3, i)
      assert.equal(3, weft.now())
      -- A false first result is a failure too.
      local w, j = weft.replicate(weft.context(), 2, function(ctx, r)
        if r == 1 then return false, "no" end
        weft.sleep(1, ctx)
        return "yes"
      end)
      assert.equal("yes", w)
      assert.equal(2, j)
      assert.equal(4, weft.now())
    end))

  it("fails with every replica's error when all fail", vtask(function()
    local rec = recorder()
    local v, err = weft.replicate(weft.context(), 3, function(ctx, i)
      rec.started[i] = weft.now()
      weft.sleep(i, ctx)
      if i == 1 then return nil, weft.error("io", "disk full") end
      if i == 2 then error("boom", 0) end
      return nil, "plain"
    end)
    assert.is_nil(v)
    assert.equal(3, weft.now())
    assert.equal("replicate", err.kind)
    assert.equal("all 3 replicas failed", err.message)
    assert.equal(3, count(err.errors))
    assert.equal("io", err.errors[1].kind)
    assert.equal("disk full", err.errors[1].message)
    assert.equal("bug", err.errors[2].kind)
    assert.equal("boom", err.errors[2].message)
    assert.equal("plain", err.errors[3].message)
    assert.equal(err.errors[1], err.cause)
    assert.is_true(weft.errors.is(err, "io"))
  end))

  describe("with a hedge", function()
    it("starts only one replica when the first answers fast",
      vtask(function()
        local rec = recorder()
        local v, i = weft.replicate(weft.context(), 5,
          replica({ 0.5, 0.1, 0.1, 0.1, 0.1 }, nil, rec), { hedge = 1 })
        assert.equal("r1", v)
        assert.equal(1, i)
        assert.equal(0.5, weft.now())
        assert.same({ 0 }, rec.started)
      end))

    it("starts one more replica every `hedge` seconds without an answer",
      vtask(function()
        local rec = recorder()
        local v, i = weft.replicate(weft.context(), 5,
          replica({ 5, 5, 0.5, 0.1, 0.1 }, nil, rec), { hedge = 1 })
        assert.equal("r3", v)
        assert.equal(3, i)
        assert.equal(2.5, weft.now())
        assert.same({ 0, 1, 2 }, rec.started)
        assert.same({ [1] = "canceled@2.5", [2] = "canceled@2.5" },
          rec.stopped)
        -- With n reached, no more start: the last one runs to its end.
        rec = recorder()
        v, i = weft.replicate(weft.context(), 2,
          replica({ 4, 4 }, nil, rec), { hedge = 1 })
        assert.equal("r1", v)
        assert.equal(1, i)
        assert.same({ 2.5, 3.5 }, rec.started)
        assert.equal(6.5, weft.now())
      end))

    it("starts the next replica at once when the only one running fails",
      vtask(function()
        local rec = recorder()
        local v, i = weft.replicate(weft.context(), 3,
          replica({ 0.25, 0.25, 0.125 }, { "return" }, rec), { hedge = 1 })
        assert.equal("r2", v)
        assert.equal(2, i)
        assert.equal(0.5, weft.now())
        assert.same({ 0, 0.25 }, rec.started)
        -- All failing quickly: each starts the next, then the error.
        rec = recorder()
        local none, err = weft.replicate(weft.context(), 3,
          replica({ 0.25, 0.25, 0.25 }, { "raise", "return", "raise" },
            rec), { hedge = 10 })
        assert.is_nil(none)
        assert.equal("all 3 replicas failed", err.message)
        assert.equal(3, count(err.errors))
        assert.same({ 0.5, 0.75, 1 }, rec.started)
        assert.equal(1.25, weft.now())
      end))

    it("starts the next replica when the latest one fails, even while an " ..
      "earlier one runs", vtask(function()
        -- Library bug: the next replica starts at once only when every
        -- started replica has failed (replicate.lua:102), and a failure
        -- re-arms the hedge timer from that moment (replicate.lua:78, a
        -- new weft.after(hedge) per loop): replica 3 starts at 5, neither
        -- at 3 (when replica 2 failed, as the doc comment says) nor at 4
        -- (hedge s after replica 2 started).
        local rec = recorder()
        local v, i = weft.replicate(weft.context(), 3,
          replica({ 10, 1, 1 }, { nil, "return" }, rec), { hedge = 2 })
        assert.equal("r3", v)
        assert.equal(3, i)
        assert.same({ 0, 2, 3 }, rec.started)
        assert.equal(4, weft.now())
      end))
  end)

  it("returns the context's error when it is cancelled, after awaiting " ..
    "every replica", vtask(function()
      local ctx, cancel = weft.with_cancel()
      local canceller = weft.go(function()
        weft.sleep(2)
        cancel("enough")
      end)
      local rec = recorder()
      local v, err = weft.replicate(ctx, 3, replica({ 5, 6, 7 }, nil, rec))
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      assert.equal("enough", err.cause)
      assert.equal(2, weft.now())
      assert.same({ "canceled@2", "canceled@2", "canceled@2" }, rec.stopped)
      canceller:join()

      -- A deadline.
      rec = recorder()
      v, err = weft.replicate(weft.with_timeout(1), 2,
        replica({ 5, 6 }, nil, rec), { hedge = 0.5 })
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert.equal(3, weft.now())
      assert.same({ 2, 2.5 }, rec.started)
      assert.same({ "deadline@3", "deadline@3" }, rec.stopped)

      -- Already cancelled: returns at once.
      rec = recorder()
      v, err = weft.replicate(ctx, 3, replica({ 1, 1, 1 }, nil, rec))
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      assert.equal(3, weft.now())
      for r in pairs(rec.started) do
        assert.equal("canceled@3", rec.stopped[r])
      end
    end))

  it("argument errors", vtask(function()
    local ctx, f = weft.context(), function() return true end
    assert.has_error(function() weft.replicate(nil, 1, f) end,
      "bad argument #1 to 'replicate' (weft.ctx expected, got nil)")
    assert.has_error(function() weft.replicate(2, 1, f) end,
      "bad argument #1 to 'replicate' (weft.ctx expected, got number)")
    assert.has_error(function() weft.replicate(ctx, 0, f) end,
      "bad argument #2 to 'replicate' (positive integer expected, got 0)")
    assert.has_error(function() weft.replicate(ctx, 1.5, f) end,
      "bad argument #2 to 'replicate' (positive integer expected, got 1.5)")
    assert.has_error(function() weft.replicate(ctx, "2", f) end,
      "bad argument #2 to 'replicate' (positive integer expected, " ..
      "got string)")
    assert.has_error(function() weft.replicate(ctx, 2) end,
      "bad argument #3 to 'replicate' (function expected, got nil)")
    assert.has_error(function() weft.replicate(ctx, 2, f, 1) end,
      "bad argument #4 to 'replicate' (table expected, got number)")
    assert.has_error(function() weft.replicate(ctx, 2, f, { hedge = -1 }) end,
      "bad argument #4 to 'replicate' (field 'hedge': non-negative number " ..
      "expected)")
    assert.has_error(function() weft.replicate(ctx, 2, f, { hedge = "1" }) end,
      "bad argument #4 to 'replicate' (field 'hedge': non-negative number " ..
      "expected)")
  end))

  it("stress: many concurrent calls with random loads and cancellation",
    vtask(function()
      math.randomseed(20261123)
      local calls = 300
      local tasks, want, hedged = {}, {}, 0
      for c = 1, calls do
        local n = math.random(1, 6)
        local load, fail = {}, {}
        for i = 1, n do
          load[i] = math.random() * 10
          local x = math.random()
          fail[i] = x < 0.2 and "raise" or x < 0.4 and "return" or nil
        end
        local stop = math.random()
        local cancel_at = stop < 0.4 and math.random() * 10 or nil
        local how = stop < 0.2 and "deadline" or "canceled"
        -- What should happen: the fastest success, else the error after
        -- the last failure, unless cancellation comes first.
        local best, last = nil, 0
        for i = 1, n do
          if fail[i] then
            last = math.max(last, load[i])
          elseif not best or load[i] < load[best] then
            best = i
          end
        end
        local at = best and load[best] or last
        -- Half the calls without failures hedge: replica i starts s after
        -- replica i - 1 unless an answer came first.
        local opts
        if not next(fail) and math.random() < 0.5 then
          opts = { hedge = math.random() * 3 }
          hedged = hedged + 1
          local start
          best, at = nil, math.huge
          for i = 1, n do
            start = start and start + opts.hedge or 0
            if start >= at then break end
            if start + load[i] < at then best, at = i, start + load[i] end
          end
        end
        if cancel_at and cancel_at < at then
          want[c] = ("%s@%.17g"):format(how, cancel_at)
        elseif best then
          want[c] = ("r%d/%d@%.17g"):format(best, best, at)
        else
          want[c] = ("replicate:%d@%.17g"):format(n, at)
        end
        tasks[c] = weft.go(function()
          local ctx, cancel
          if cancel_at and how == "deadline" then
            ctx, cancel = weft.with_timeout(cancel_at)
          else
            ctx, cancel = weft.with_cancel()
            if cancel_at then
              weft.go(function()
                if weft.sleep(cancel_at, ctx) then cancel() end
              end)
            end
          end
          local running = 0
          local v, i = weft.replicate(ctx, n, function(rctx, r)
            running = running + 1
            local ok = weft.sleep(load[r], rctx)
            running = running - 1
            if not ok then return nil, "cancelled" end
            if fail[r] == "raise" then error("broke", 0) end
            if fail[r] == "return" then return nil, "failed" end
            return "r" .. r
          end, opts)
          local out
          if v then
            out = ("%s/%d@%.17g"):format(v, i, weft.now())
          elseif i.kind == "replicate" then
            out = ("replicate:%d@%.17g"):format(count(i.errors), weft.now())
          else
            out = ("%s@%.17g"):format(i.kind, weft.now())
          end
          cancel()
          -- Every replica had finished when replicate returned.
          return out .. (running == 0 and "" or " left " .. running)
        end)
      end
      local got = {}
      for c = 1, calls do got[c] = tasks[c]:join() end
      assert.same(want, got)
      local kinds = {}
      for _, w in ipairs(want) do
        local k = w:match("^(%a+)")
        kinds[k] = (kinds[k] or 0) + 1
      end
      -- The mix covers every outcome.
      assert.is_true(kinds.r > 50 and kinds.replicate > 5 and
        kinds.canceled > 5 and kinds.deadline > 5 and hedged > 20)
    end))
end)
