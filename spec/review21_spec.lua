-- Review 21: regressions found by the hostile review of the core: a
-- context cancelled by a finalizer while a task was registering its wait.
local weft = require "weft"
local H = require "spec.helper"

-- A context cancelled from a __gc finalizer that ran in an allocation
-- between a wait's check of its context and its registration (park):
-- the cancel found the task not parked yet, and the task slept on under a
-- cancelled context, reached later by a send. The collector is made to
-- run often, with contexts whose only canceller is a finalizer; after each
-- batch, every task whose context is cancelled must have ended.
local function stress(make)
  collectgarbage("setpause", 10)
  collectgarbage("setstepmul", 100)
  local pending, missed = {}, 0
  for iter = 1, 8000 do
    local c, cancel = weft.with_cancel()
    do
      local p = newproxy(true)
      getmetatable(p).__gc = function() cancel("from __gc") end
    end
    pending[#pending + 1] = { make(c), c }
    local junk = {} -- luacheck: ignore 241 (garbage, to drive the collector)
    for k = 1, (iter % 7) * 10 do junk[k] = { k } end
    if iter % 50 == 0 then
      weft.yield()
      collectgarbage("step", 0)
      weft.sleep(0.001) -- every woken task runs meanwhile
      local keep = {}
      for _, e in ipairs(pending) do
        if e[2]:err() then
          if not e[1]:done() then missed = missed + 1 end
          e[1]:cancel()
        else
          keep[#keep + 1] = e
        end
      end
      pending = keep
    end
  end
  for _, e in ipairs(pending) do e[1]:cancel() end
  collectgarbage("setpause", 200)
  collectgarbage("setstepmul", 200)
  return missed
end

describe("review 21: cancelled while registering a wait", function()
  -- (The review's reproducer of this one missed within ~1,000 waits; here
  -- the collector's timing differs and it rarely does. The join below,
  -- which parks through the same check, misses every time without it.)
  it("a receive under a context a finalizer cancels ends", H.task(function()
    local ch = weft.chan()
    assert.equal(0, stress(function(c)
      -- Its error is c's, not its own context's: it ends with success.
      return weft.go(function() ch:recv(c) end)
    end))
  end))

  it("a join under its own context a finalizer cancels ends",
    H.task(function()
      local forever = weft.chan()
      local joined = {}
      assert.equal(0, stress(function(c)
        local tg = weft.go(function() forever:recv() end)
        joined[#joined + 1] = tg
        return weft.spawn { ctx = c, fn = function() return tg:join() end }
      end))
      for _, tg in ipairs(joined) do tg:cancel() end
    end))
end)

describe("review 21: a deadlock report", function()
  -- A child's failure waits in its parent until the parent finishes; a
  -- child shielded under background kept it from finishing, the program
  -- deadlocked, and the report said nothing of the failure.
  it("shows the child failure its task holds", function()
    local out, status = H.sh(H.weft_bin .. " " .. H.script([[
      weft.spawn { name = "cleanup", fn = function()
        weft.chan():recv(weft.background())
      end }
      weft.spawn { name = "worker", fn = function()
        weft.sleep(0.01)
        error("worker failed: disk full")
      end }
    ]]) .. " 2>&1")
    assert.equal(1, status, out)
    assert.truthy(out:find("all tasks are asleep - deadlock!", 1, true), out)
    assert.truthy(out:find("\na child failed: [^\n]*worker failed: disk full"),
      out)
  end)
end)

describe("review 21: weft.scope in a coroutine", function()
  -- The scope put back the context of the task that entered it, even when
  -- another task resumed the coroutine and ended the scope after the first
  -- had finished: set_ctx brought the finished task back to life.
  it("ended by another task, leaves the finished one finished",
    H.task(function()
      local co
      local a = weft.go(function()
        co = coroutine.create(function()
          weft.scope(function() coroutine.yield("in scope") end)
          return "scope ended"
        end)
        assert.equal("in scope", select(2, coroutine.resume(co)))
        return "A done"
      end)
      assert.equal("A done", a:join())
      local b = weft.go(function() return coroutine.resume(co) end)
      assert.same({ true, "scope ended" }, { b:join() })
      assert.is_true(a:done())
      for _, info in ipairs(weft.tasks()) do
        assert.are_not.equal(a:id(), info.id)
      end
      assert.equal("A done", a:join(weft.with_timeout(0.2)))
    end))
end)

describe("review 21: virtual time and background timers", function()
  -- A ticker nobody receives from moved the clock for ever, at full CPU,
  -- while the bubble's task was blocked for ever: no deadlock reported.
  -- In a process of its own, under `timeout`: the bug spun for ever.
  it("a forgotten ticker does not hide a deadlock", function()
    local out, status = H.sh("timeout 20 " .. H.weft_bin .. " " .. H.script([[
      local ok, err = weft.virtual_time(function()
        weft.ticker(1)
        weft.after(5)
        return weft.chan():recv()
      end)
      print(ok, err.kind)
    ]]) .. " 2>&1")
    assert.equal(0, status, out)
    assert.equal("nil\tdeadlock\n", out)
  end)

  -- A timer that will wake a task keeps the clock moving past them.
  it("a sleep far beyond the ticks still ends", H.vtask(function()
    local _, stop = weft.ticker(1)
    assert.is_true(weft.sleep(5000))
    assert.equal(5000, weft.now())
    stop()
  end))

  it("a task receiving from a ticker keeps the clock moving",
    H.vtask(function()
      local tk, stop = weft.ticker(1)
      for _ = 1, 3000 do assert(tk:recv()) end
      assert.equal(3000, weft.now())
      stop()
    end))
end)
