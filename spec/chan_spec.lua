local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

describe("channels", function()
  it("unbuffered: a send waits for a receiver", vtask(function()
    local ch = weft.chan()
    local log = {}
    local t = weft.go(function()
      log[#log + 1] = "send"
      assert.is_true(ch:send("v"))
      log[#log + 1] = "sent"
    end)
    weft.sleep(0.005)
    assert.same({ "send" }, log)
    assert.equal("v", ch:recv())
    t:join()
    assert.same({ "send", "sent" }, log)
  end))

  it("unbuffered: a receive waits for a sender", vtask(function()
    local ch = weft.chan()
    local t = weft.go(function() return ch:recv() end)
    weft.sleep(0.005)
    assert.is_false(t:done())
    ch:send(42)
    assert.equal(42, t:join())
  end))

  it("buffered: sends do not wait until the buffer is full", vtask(function()
    local ch = weft.chan(3)
    assert.equal(3, ch:cap())
    for i = 1, 3 do assert.is_true(ch:send(i)) end
    assert.equal(3, #ch)
    assert.equal(3, ch:len())
    local t = weft.go(function() return ch:send(4) end)
    weft.sleep(0.005)
    assert.is_false(t:done())
    assert.equal(1, ch:recv())
    assert.is_true(t:join())
    assert.same({ 2, 3, 4 }, { ch:recv(), ch:recv(), ch:recv() })
    assert.equal(0, #ch)
  end))

  it("is FIFO for values and for waiting senders and receivers",
    vtask(function()
      local ch = weft.chan()
      local got = {}
      for i = 1, 5 do weft.go(function() ch:send(i) end) end
      weft.yield()
      for _ = 1, 5 do got[#got + 1] = ch:recv() end
      assert.same({ 1, 2, 3, 4, 5 }, got)
      local order = {}
      local rs = {}
      for i = 1, 5 do
        rs[i] = weft.go(function()
          local v = ch:recv()
          order[#order + 1] = { i, v }
        end)
      end
      weft.yield()
      for i = 1, 5 do ch:send(i * 10) end
      for i = 1, 5 do rs[i]:join() end
      assert.same({ { 1, 10 }, { 2, 20 }, { 3, 30 }, { 4, 40 }, { 5, 50 } },
        order)
    end))

  it("wraps around its ring buffer in order", vtask(function()
    local ch = weft.chan(4)
    local got = {}
    for i = 1, 100 do
      ch:send(i)
      if #ch == 4 then
        for _ = 1, 3 do got[#got + 1] = ch:recv() end
      end
    end
    while #ch > 0 do got[#got + 1] = ch:recv() end
    for i = 1, 100 do assert.equal(i, got[i]) end
  end))

  it("close lets receivers drain the buffer, then they get closed",
    vtask(function()
      local ch = weft.chan(2)
      ch:send("a")
      ch:send("b")
      ch:close()
      assert.is_true(ch:closed())
      assert.equal("a", ch:recv())
      assert.equal("b", ch:recv())
      local v, err = ch:recv()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      assert.equal("channel closed", tostring(err))
      assert.equal("closed", select(2, ch:recv()).kind)
    end))

  it("close wakes every waiting receiver", vtask(function()
    local ch = weft.chan()
    local ts = {}
    for i = 1, 3 do ts[i] = weft.go(function() return ch:recv() end) end
    weft.yield()
    ch:close()
    for i = 1, 3 do
      local v, err = ts[i]:join()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
    end
  end))

  it("sending nil, sending on a closed channel and closing twice raise",
    vtask(function()
      local ch = weft.chan(1)
      assert.has_error(function() ch:send(nil) end,
        "bad argument #1 to 'send' (non-nil value expected)")
      ch:close()
      assert.has_error(function() ch:send(1) end, "send on closed channel")
      assert.has_error(function() ch:close() end, "close of closed channel")
    end))

  it("a sender blocked when the channel closes raises", vtask(function()
    local ch = weft.chan()
    local t = weft.go(function() ch:send(1) end)
    weft.yield()
    ch:close()
    local _, err = t:join()
    assert.equal("bug", err.kind)
    assert.matches("send on closed channel", err.message)
  end))

  it("iter yields every value until the channel is closed", vtask(function()
    local ch = weft.chan(2)
    weft.go(function()
      for i = 1, 10 do ch:send(i) end
      ch:close()
    end)
    local sum, n = 0, 0
    for v in ch:iter() do
      sum = sum + v
      n = n + 1
    end
    assert.equal(10, n)
    assert.equal(55, sum)
  end))

  it("iter stops when its context is cancelled", vtask(function()
    local ch = weft.chan()
    local ctx, cancel = weft.with_cancel()
    weft.go(function()
      ch:send(1)
      cancel()
    end)
    local got = {}
    for v in ch:iter(ctx) do got[#got + 1] = v end
    assert.same({ 1 }, got)
    assert.equal("canceled", ctx:err().kind)
  end))

  it("accepts any non-nil value, false included", vtask(function()
    local ch = weft.chan(5)
    local tbl = {}
    for _, v in ipairs { false, 0, "", tbl, print } do ch:send(v) end
    assert.is_false(ch:recv())
    assert.equal(0, ch:recv())
    assert.equal("", ch:recv())
    assert.equal(tbl, ch:recv())
    assert.equal(print, ch:recv())
  end))

  it("rejects bad arguments", vtask(function()
    assert.has_error(function() weft.chan(-1) end,
      "bad argument #1 to 'chan' (non-negative integer expected, got -1)")
    assert.has_error(function() weft.chan(1.5) end,
      "bad argument #1 to 'chan' (non-negative integer expected, got 1.5)")
    assert.has_error(function() weft.chan("x") end,
      "bad argument #1 to 'chan' (non-negative integer expected, got string)")
    local ch = weft.chan()
    assert.has_error(function() ch.send({}, 1) end,
      "bad argument #1 to 'send' (weft.chan expected, got table)")
    assert.has_error(function() ch:recv(5) end,
      "bad argument #1 to 'recv' (weft.ctx expected, got number)")
  end))

  it("tostring shows length, capacity and state", vtask(function()
    local ch = weft.chan(2)
    ch:send(1)
    assert.matches("^weft.chan: #%d+ %(len 1, cap 2%)$", tostring(ch))
    ch:close()
    assert.matches("closed%)$", tostring(ch))
  end))

  it("an unreachable channel is collected", vtask(function()
    local weak = setmetatable({}, { __mode = "k" })
    weak[weft.chan(1)] = true
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end))

  it("a cancelled receive leaves no waiter behind", vtask(function()
    local ch = weft.chan()
    for _ = 1, 100 do
      local ctx, cancel = weft.with_cancel()
      local t = weft.go(function() return ch:recv(ctx) end)
      weft.yield()
      cancel()
      t:join()
    end
    -- The next send finds no (dead) receiver and blocks; the first live
    -- receiver gets the value.
    local sender = weft.go(function() return ch:send("x") end)
    weft.yield()
    assert.is_false(sender:done())
    assert.equal("x", ch:recv())
    assert.is_true(sender:join())
  end))
end)

describe("weft.after", function()
  it("delivers weft.now() once after the delay", vtask(function()
    local t0 = weft.now()
    local ch = weft.after(0.01)
    local at = ch:recv()
    assert.is_true(at - t0 >= 0.01)
    assert.is_true(weft.now() - t0 >= 0.01)
    local i = weft.select { { recv = ch }, { default = true } }
    assert.equal(2, i)
  end))

  it("rejects a non-number", vtask(function()
    assert.has_error(function() weft.after("1") end,
      "bad argument #1 to 'after' (number expected, got string)")
  end))
end)
