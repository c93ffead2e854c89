local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

describe("weft.select", function()
  it("receives from the ready case", vtask(function()
    local a, b = weft.chan(1), weft.chan(1)
    b:send("from b")
    local i, v = weft.select { { recv = a }, { recv = b } }
    assert.equal(2, i)
    assert.equal("from b", v)
  end))

  it("sends on the ready case", vtask(function()
    local full, room = weft.chan(1), weft.chan(1)
    full:send(0)
    local i, v = weft.select {
      { send = full, value = 1 }, { send = room, value = 2 },
    }
    assert.equal(2, i)
    assert.is_nil(v)
    assert.equal(2, room:recv())
    assert.equal(1, #full)
  end))

  it("blocks until a case is ready, then takes only that one",
    vtask(function()
      local a, b = weft.chan(), weft.chan()
      local t = weft.go(function()
        return weft.select { { recv = a }, { recv = b } }
      end)
      weft.yield()
      b:send("x")
      local i, v = t:join()
      assert.equal(2, i)
      assert.equal("x", v)
      -- The case that lost left no waiter: a send on a now blocks.
      local s = weft.go(function() a:send(1) end)
      weft.yield()
      assert.is_false(s:done())
      assert.equal(1, a:recv())
      s:join()
    end))

  it("a blocked send case hands its value to a receiver", vtask(function()
    local a = weft.chan()
    local t = weft.go(function()
      return weft.select { { send = a, value = "v" }, { recv = weft.chan() } }
    end)
    weft.yield()
    assert.equal("v", a:recv())
    assert.equal(1, t:join())
  end))

  it("default fires when nothing is ready, and never blocks", vtask(function()
    local i = weft.select { { recv = weft.chan() }, { default = true } }
    assert.equal(2, i)
    i = weft.select { { default = true } }
    assert.equal(1, i)
  end))

  it("weft.after as a timeout", vtask(function()
    local t0 = weft.now()
    local i = weft.select {
      { recv = weft.chan() }, { recv = weft.after(0.01) },
    }
    assert.equal(2, i)
    assert.is_true(weft.now() - t0 >= 0.01)
  end))

  it("ctx:done() as a case", vtask(function()
    local ctx, cancel = weft.with_cancel(weft.background())
    weft.go(function() weft.sleep(0.005); cancel() end)
    local i, v, err = weft.select {
      { recv = weft.chan() }, { recv = ctx:done() },
    }
    assert.equal(2, i)
    assert.is_nil(v)
    assert.equal("closed", err.kind)
  end))

  it("a closed channel's receive case is always ready", vtask(function()
    local ch = weft.chan()
    ch:close()
    local i, v, err = weft.select { { recv = ch } }
    assert.equal(1, i)
    assert.is_nil(v)
    assert.equal("closed", err.kind)
  end))

  it("a receive case blocked when its channel closes fires", vtask(function()
    local ch = weft.chan()
    local t = weft.go(function()
      local i, v, err = weft.select { { recv = weft.chan() }, { recv = ch } }
      return { i, v, err and err.kind }
    end)
    weft.yield()
    ch:close()
    assert.same({ 2, nil, "closed" }, t:join())
  end))

  it("a send case on a closed channel raises, as in Go", vtask(function()
    local ch = weft.chan()
    ch:close()
    assert.has_error(function()
      weft.select { { send = ch, value = 1 } }
    end, "send on closed channel")
  end))

  it("chooses uniformly at random among ready cases", vtask(function()
    local chans = {}
    for i = 1, 4 do
      chans[i] = weft.chan(1)
    end
    local counts = { 0, 0, 0, 0 }
    local N = 8000
    for _ = 1, N do
      for i = 1, 4 do
        if #chans[i] == 0 then chans[i]:send(i) end
      end
      local i = weft.select {
        { recv = chans[1] }, { recv = chans[2] },
        { recv = chans[3] }, { recv = chans[4] },
      }
      counts[i] = counts[i] + 1
    end
    -- Chi-square with 3 degrees of freedom; 16.3 is the 0.1% tail.
    local chi = 0
    for i = 1, 4 do
      chi = chi + (counts[i] - N / 4) ^ 2 / (N / 4)
    end
    assert.is_true(chi < 16.3, "counts " .. table.concat(counts, ","))
  end))

  -- Up to four cases are probed by code written out, more by a loop
  -- (select.lua): both must draw alike, and blame alike.
  it("chooses uniformly among the ready cases, however many and wherever",
    vtask(function()
      -- 0.1% tails of chi-square by degrees of freedom.
      local tail = { 10.83, 13.82, 16.27, 18.47, 20.52, 22.46 }
      for _, ready in ipairs { { 1, 2 }, { 1, 3 }, { 2, 3, 4 }, { 4, 5 },
        { 1, 3, 5, 6 }, { 2, 3, 4, 5, 6, 7, 8 } } do
        local n = ready[#ready]
        local chans, cases = {}, {}
        for i = 1, n do
          chans[i] = weft.chan(1)
          cases[i] = { recv = chans[i] }
        end
        local counts = {}
        for i = 1, n do counts[i] = 0 end
        local N = 1000 * #ready
        for _ = 1, N do
          for _, i in ipairs(ready) do
            if #chans[i] == 0 then chans[i]:send(i) end
          end
          local i, v = weft.select(cases)
          assert.equal(i, v)
          counts[i] = counts[i] + 1
        end
        local chi, want = 0, N / #ready
        for _, i in ipairs(ready) do
          chi = chi + (counts[i] - want) ^ 2 / want
        end
        local total = 0
        for i = 1, n do total = total + counts[i] end
        assert.equal(N, total) -- none from a case that was not ready
        assert.is_true(chi < tail[#ready - 1], "ready " ..
          table.concat(ready, ",") .. ": counts " .. table.concat(counts, ","))
      end
    end))

  it("blames the caller's line for a bad case, at any position",
    vtask(function()
      local src = debug.getinfo(1, "S").short_src
      local ch = weft.chan(1)
      local bad = {
        [5] = "table expected, got number",
        [{ revc = ch }] = "'recv', 'send' or 'default' expected",
        [{ recv = 3 }] = "'recv' must be a weft.chan or false, got number",
        [{ send = {} }] = "'send' must be a weft.chan or false, got table",
        [{ send = ch }] = "send needs a non-nil 'value'",
      }
      for n = 1, 6 do
        for case, why in pairs(bad) do
          local cases = {}
          for i = 1, n - 1 do cases[i] = { recv = false } end
          cases[n] = case
          local function call() local i = weft.select(cases) return i end
          local ok, err = pcall(call)
          assert.is_false(ok)
          local line = debug.getinfo(call, "S").linedefined
          assert.equal(("%s:%d: bad argument #1 to 'select' (case #%d: %s)")
            :format(src, line, n, why), err)
        end
        local cases = {}
        for i = 1, n do cases[i] = { default = true } end
        if n > 1 then
          local function call() local i = weft.select(cases) return i end
          local ok, err = pcall(call)
          assert.is_false(ok)
          assert.equal(("%s:%d: bad argument #1 to 'select' (case #2: " ..
            "more than one default)"):format(src,
            debug.getinfo(call, "S").linedefined), err)
        end
      end
    end))

  it("a false channel disables its case, like a nil channel in Go",
    vtask(function()
      local ch = weft.chan(1)
      ch:send(1)
      local i = weft.select { { recv = false }, { recv = ch } }
      assert.equal(2, i)
      i = weft.select { { send = false, value = 1 }, { default = true } }
      assert.equal(2, i)
    end))

  it("without a default, a cancelled context makes it fail at once",
    vtask(function()
      local ctx, cancel = weft.with_cancel()
      cancel()
      local ch = weft.chan(1)
      ch:send(1)
      local i, err = weft.select({ { recv = ch } }, ctx)
      assert.is_nil(i)
      assert.equal("canceled", err.kind)
      assert.equal(1, #ch) -- nothing was taken
      -- With a default it is a poll, not a wait.
      i = weft.select({ { recv = ch }, { default = true } }, ctx)
      assert.equal(1, i)
    end))

  it("an empty select blocks until cancelled", vtask(function()
    local ctx = weft.with_timeout(0.005)
    local i, err = weft.select({}, ctx)
    assert.is_nil(i)
    assert.equal("deadline", err.kind)
  end))

  it("the same channel in two cases is taken once", vtask(function()
    local ch = weft.chan()
    local t = weft.go(function()
      return weft.select { { recv = ch }, { recv = ch } }
    end)
    weft.yield()
    ch:send(1)
    local i = t:join()
    assert.is_true(i == 1 or i == 2)
    local s = weft.go(function() ch:send(2) end)
    weft.yield()
    assert.is_false(s:done())
    assert.equal(2, ch:recv())
    s:join()
  end))

  it("rejects malformed cases with a clear error", vtask(function()
    local ch = weft.chan()
    assert.has_error(function() weft.select(5) end,
      "bad argument #1 to 'select' (table expected, got number)")
    assert.has_error(function() weft.select { 5 } end,
      "bad argument #1 to 'select' (case #1: table expected, got number)")
    assert.has_error(function() weft.select { { revc = ch } } end,
      "bad argument #1 to 'select' (case #1: 'recv', 'send' or 'default' " ..
      "expected)")
    assert.has_error(function() weft.select { { recv = 3 } } end,
      "bad argument #1 to 'select' (case #1: 'recv' must be a weft.chan or " ..
      "false, got number)")
    assert.has_error(function() weft.select { { send = ch } } end,
      "bad argument #1 to 'select' (case #1: send needs a non-nil 'value')")
    assert.has_error(function()
      weft.select { { default = true }, { default = true } }
    end, "bad argument #1 to 'select' (case #2: more than one default)")
  end))
end)
