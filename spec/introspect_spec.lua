local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

local function by_name(list)
  local m = {}
  for _, t in ipairs(list) do m[t.name] = t end
  return m
end

describe("weft.tasks", function()
  it("lists every unfinished task with id, name, parent, state, what it " ..
    "waits on and age", vtask(function()
      local me = weft.current()
      local ch = weft.chan(2)
      ch:send("x")
      local gate = weft.chan()
      local ctx, cancel = weft.with_cancel()
      local sleeper = weft.spawn { name = "sleeper",
        fn = function() weft.sleep(30) end }
      weft.spawn { name = "receiver", fn = function() gate:recv() end }
      weft.spawn { name = "sender", fn = function() gate:send(1) end }
      weft.spawn { name = "joiner", fn = function() sleeper:join() end }
      weft.spawn { name = "selector", fn = function()
        weft.select { { recv = weft.chan() }, { recv = weft.chan() },
          { recv = weft.after(100) } }
      end }
      weft.spawn { name = "waiter", fn = function()
        weft.sleep(math.huge, ctx)
      end }
      local parent = weft.spawn { name = "parent", fn = function()
        weft.spawn { name = "child", fn = function() weft.sleep(60) end }
      end }
      weft.spawn { name = "fresh", fn = function() end }
      weft.sleep(5)
      local list = weft.tasks()
      for i = 2, #list do assert.is_true(list[i].id > list[i - 1].id) end
      local t = by_name(list)
      assert.equal("running", t["virtual time"].state)
      assert.equal("blocked", t.sleeper.state)
      assert.equal("sleep until 30.000", t.sleeper.waiting_on)
      assert.equal(5, t.sleeper.age)
      assert.equal(me:id(), t.sleeper.parent)
      -- The receiver and the sender met: "receiver" is done, "sender" too.
      assert.is_nil(t.receiver)
      assert.equal("join of task " .. sleeper:id(), t.joiner.waiting_on)
      assert.equal("select over 3 cases", t.selector.waiting_on)
      assert.equal("context (until cancelled)", t.waiter.waiting_on)
      assert.equal("finishing", t.parent.state)
      assert.equal("waiting for 1 child", t.parent.waiting_on)
      assert.equal(parent:id(), t.child.parent)
      assert.is_nil(t.fresh)
      -- A channel wait names the channel and its length.
      local r = weft.spawn { name = "r2",
        fn = function() weft.chan():recv() end }
      weft.yield()
      assert.matches("^recv on weft.chan #%d+ %(len 0, cap 0%)$",
        by_name(weft.tasks()).r2.waiting_on)
      r:cancel()
      cancel()
      weft.current():cancel() -- unwind the rest
    end))
end)

describe("weft.dump", function()
  it("lists 1,000 tasks with their tracebacks", vtask(function()
    for i = 1, 1000 do
      weft.spawn { name = "w" .. i, fn = function() weft.sleep(i) end }
    end
    weft.yield()
    local text = weft.dump()
    assert.matches("^%d+ tasks at 0%.000\n", text) -- and the spec runner's
    local n = 0
    for name, what in text:gmatch('task %d+ "(w%d+)" %[([^%]]+)%]:') do
      n = n + 1
      assert.equal("sleep until " .. name:sub(2) .. ".000", what)
    end
    assert.equal(1000, n)
    assert.matches('task %d+ "w1" %[[^\n]+\nstack traceback:\n\t' ..
      "spec/introspect_spec.lua:%d+: in function <", text)
    weft.current():cancel()
  end))
end)
