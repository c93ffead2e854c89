local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

describe("contexts", function()
  it("background is never cancelled and has no deadline or values",
    vtask(function()
      local bg = weft.background()
      assert.is_nil(bg:err())
      assert.is_nil(bg:deadline())
      assert.is_nil(bg:value("k"))
      assert.is_nil(bg:cause())
      local i = weft.select { { recv = bg:done() }, { default = true } }
      assert.equal(2, i)
    end))

  it("with_cancel: cancel sets err and cause, and closes done",
    vtask(function()
      local ctx, cancel = weft.with_cancel(weft.background())
      assert.is_nil(ctx:err())
      cancel("stop")
      assert.equal("canceled", ctx:err().kind)
      assert.equal("context canceled", tostring(ctx:err()))
      assert.equal("stop", ctx:cause())
      local v, err = ctx:done():recv(weft.background())
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      cancel("again") -- idempotent: the first cause stays
      assert.equal("stop", ctx:cause())
    end))

  it("cause is the error itself when no cause was given", vtask(function()
    local ctx, cancel = weft.with_cancel()
    cancel()
    assert.equal(ctx:err(), ctx:cause())
  end))

  it("cancelling a parent cancels every descendant, not the other way",
    vtask(function()
      local p, cancel_p = weft.with_cancel()
      local c1, cancel_c1 = weft.with_cancel(p)
      local c2 = weft.with_value(c1, "k", 1)
      local c3 = weft.with_cancel(c2)
      cancel_c1()
      assert.is_nil(p:err())
      assert.equal("canceled", c3:err().kind)
      local c4 = weft.with_cancel(p)
      cancel_p("p")
      assert.equal("p", c4:cause())
      assert.equal("p", c4:err().cause)
    end))

  it("a child of a cancelled context starts cancelled", vtask(function()
    local p, cancel = weft.with_cancel()
    cancel()
    local c = weft.with_cancel(p)
    assert.equal("canceled", c:err().kind)
  end))

  it("with_timeout expires with kind deadline", vtask(function()
    local ctx = weft.with_timeout(0.01)
    local t0 = weft.now()
    assert.is_true(ctx:deadline() >= t0)
    local v, err = weft.sleep(10, ctx)
    assert.is_nil(v)
    assert.equal("deadline", err.kind)
    assert.equal("context deadline exceeded", err.message)
    assert.is_true(weft.now() - t0 >= 0.01)
    assert.equal(err, ctx:err())
  end))

  it("a child's deadline is never later than its parent's", vtask(function()
    local p = weft.with_timeout(1)
    local c = weft.with_timeout(p, 60)
    assert.equal(p:deadline(), c:deadline())
    local c2 = weft.with_timeout(p, 0.5)
    assert.is_true(c2:deadline() < p:deadline())
    local v = weft.with_value(c2, "a", "b")
    assert.equal(c2:deadline(), v:deadline())
  end))

  it("with_deadline in the past is cancelled at once", vtask(function()
    local ctx = weft.with_deadline(weft.now() - 1)
    assert.equal("deadline", ctx:err().kind)
  end))

  it("cancel before the deadline wins and stops the timer", vtask(function()
    local ctx, cancel = weft.with_timeout(0.01)
    cancel("early")
    weft.sleep(0.02)
    assert.equal("canceled", ctx:err().kind)
  end))

  it("with_value: nearest key wins, lookups walk up", vtask(function()
    local a = weft.with_value(weft.background(), "k", 1)
    local b = weft.with_value(a, "other", 2)
    local c = weft.with_value(b, "k", 3)
    assert.equal(3, c:value("k"))
    assert.equal(2, c:value("other"))
    assert.equal(1, b:value("k"))
    assert.is_nil(c:value("missing"))
    local tbl = {}
    assert.equal("t", weft.with_value(c, tbl, "t"):value(tbl))
  end))

  it("a value context shares its parent's cancellation", vtask(function()
    local p, cancel = weft.with_cancel()
    local v = weft.with_value(p, "k", 1)
    local t = weft.go(function() return weft.sleep(10, v) end)
    weft.yield()
    cancel()
    local _, err = t:join()
    assert.equal("canceled", err.kind)
    assert.equal("canceled", v:err().kind)
  end))

  it("the parent argument may be omitted: the task's context is used",
    vtask(function()
      local outer, cancel = weft.with_cancel()
      local t = weft.spawn { ctx = outer, fn = function()
        local inner = weft.with_cancel()
        weft.sleep(10, inner)
        return inner:err().kind
      end }
      weft.yield()
      cancel()
      assert.equal("canceled", t:join())
    end))

  it("rejects bad arguments", vtask(function()
    assert.has_error(function() weft.with_cancel(42) end,
      "bad argument #1 to 'with_cancel' (weft.ctx expected, got number)")
    assert.has_error(function() weft.with_timeout(weft.background(), "1") end,
      "bad argument #2 to 'with_timeout' (number expected, got string)")
    assert.has_error(function() weft.with_value(nil, nil, 1) end,
      "bad argument #2 to 'with_value' (key expected, got nil)")
    assert.has_error(function() weft.background().err(5) end,
      "bad argument #1 to 'err' (weft.ctx expected, got number)")
  end))

  it("tostring names the kind and state", vtask(function()
    assert.equal("weft.ctx: background (active)",
      tostring(weft.background()))
    local c, cancel = weft.with_cancel()
    cancel()
    assert.equal("weft.ctx: cancel (canceled)", tostring(c))
  end))
end)

describe("cancellation wakes every blocked operation at once", function()
  local ops = {
    sleep = function(ctx) return weft.sleep(10, ctx) end,
    recv = function(ctx) return weft.chan():recv(ctx) end,
    send = function(ctx) return weft.chan():send(1, ctx) end,
    ["buffered send"] = function(ctx)
      local ch = weft.chan(1)
      ch:send(1)
      return ch:send(2, ctx)
    end,
    select = function(ctx)
      return weft.select({ { recv = weft.chan() }, { recv = weft.after(10) } },
        ctx)
    end,
    join = function(ctx)
      local t = weft.go(function() weft.sleep(0.05, weft.background()) end)
      return t:join(ctx)
    end,
  }
  for name, op in pairs(ops) do
    it(name, vtask(function()
      local ctx, cancel = weft.with_cancel()
      local results = {}
      for _ = 1, 3 do
        weft.go(function()
          local v, err = op(ctx)
          results[#results + 1] = { v, err and err.kind, err and err.cause }
        end)
      end
      weft.sleep(0.005)
      local t0 = weft.now()
      cancel("why")
      weft.yield()
      assert.equal(3, #results)
      for i = 1, 3 do
        assert.same({ nil, "canceled", "why" }, results[i])
      end
      assert.is_true(weft.now() - t0 < 0.5)
      -- Level-triggered: a later wait under the same context fails at once.
      local v, err = op(ctx)
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      -- Virtual time stops when this function returns: let the tasks the
      -- join case started (shielded sleepers) finish first.
      weft.sleep(1)
    end))
  end
end)

describe("cancellation order", function()
  it("wakes the tasks blocked under a context in the order they joined it",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      local order = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = weft.spawn { ctx = ctx, fn = function()
          weft.sleep(10)
          order[#order + 1] = i
        end }
      end
      weft.yield()
      cancel()
      for i = 1, 5 do ts[i]:join() end
      assert.same({ 1, 2, 3, 4, 5 }, order)
    end))
end)

describe("weft.scope", function()
  it("runs fn in the same task under a new context and returns its results",
    vtask(function()
      local me = weft.current()
      local a, b = weft.scope(function(ctx)
        assert.equal(me, weft.current())
        assert.equal(ctx, weft.context())
        return 1, 2
      end)
      assert.equal(1, a)
      assert.equal(2, b)
    end))

  it("with a timeout, waits inside fail with kind deadline", vtask(function()
    local t0 = weft.now()
    local v, err = weft.scope(function()
      return weft.sleep(10)
    end, { timeout = 0.01 })
    assert.is_nil(v)
    assert.equal("deadline", err.kind)
    assert.is_true(weft.now() - t0 >= 0.01)
    -- The task's own context is untouched afterwards.
    assert.is_true(weft.sleep(0))
  end))

  it("the scope is cancelled when fn returns (Go's defer cancel)",
    vtask(function()
      local inner
      weft.scope(function(ctx) inner = ctx end)
      assert.equal("canceled", inner:err().kind)
    end))

  it("re-raises an error from fn after restoring the context",
    vtask(function()
      local before = weft.context()
      assert.has_error(function()
        weft.scope(function() error("inside", 0) end)
      end)
      assert.equal(before, weft.context())
      local ok, err = pcall(weft.scope, function() error("inside", 0) end)
      assert.is_false(ok)
      assert.equal("bug", err.kind)
      assert.equal("inside", err.value)
    end))

  it("a cancelled parent cancels the scope", vtask(function()
    local p, cancel = weft.with_cancel()
    cancel()
    local _, err = weft.scope(function() return weft.sleep(1) end, { ctx = p })
    assert.equal("canceled", err.kind)
  end))

  it("rejects bad arguments", vtask(function()
    assert.has_error(function() weft.scope(1) end,
      "bad argument #1 to 'scope' (function expected, got number)")
    assert.has_error(function() weft.scope(print, { timeout = "x" }) end,
      "bad argument #2 to 'scope' (field 'timeout': number expected, " ..
      "got string)")
  end))
end)
