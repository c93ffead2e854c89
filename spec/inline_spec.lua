-- The trampoline's inline path (weft.sched, "The trampoline"): the task
-- the trampoline resumed runs the other ready tasks itself when it parks.
-- Each case runs as a script of its own, whose main chunk is such a task
-- (inside busted, the runner's task is the one that parks at the bottom).
local weft = require "weft"
local H = require "spec.helper"

-- run(text) -> output (stdout and stderr), exit status
local function run(text)
  local path = H.script(text)
  local out, status = H.sh(H.weft_bin .. " " .. path .. " 2>&1")
  os.remove(path)
  return out, status
end

describe("the inline trampoline", function()
  it("runs ready tasks in the order they became ready", function()
    local out, status = run [[
      local weft = require "weft"
      local log, ch = {}, weft.chan()
      for i = 1, 3 do
        weft.go(function()
          log[#log + 1] = "t" .. i
          if i == 2 then ch:send("from 2") end
          log[#log + 1] = "t" .. i .. " again"
        end)
      end
      local v = ch:recv()
      log[#log + 1] = v
      print(table.concat(log, ","))
    ]]
    assert.equal(0, status)
    -- t2's send hands the value to main, parked in recv, and goes on;
    -- main is ready after t3 (FIFO), as from the trampoline.
    assert.equal("t1,t1 again,t2,t2 again,t3,t3 again,from 2\n", out)
  end)

  it("hands every value over exactly once in a long ping-pong", function()
    local out, status = run [[
      local weft = require "weft"
      local a, b = weft.chan(), weft.chan()
      local n, sum = 100000, 0
      local echo = weft.go(function()
        for _ = 1, n do b:send(a:recv() * 2) end
      end)
      for i = 1, n do
        a:send(i)
        sum = sum + b:recv()
      end
      echo:join()
      print(sum)
    ]]
    assert.equal(0, status)
    assert.equal(string.format("%d\n", 100000 * 100001), out)
  end)

  it("does not starve timers while tasks are always ready", function()
    local out, status = run [[
      local weft = require "weft"
      local a, b = weft.chan(), weft.chan()
      local ctx, cancel = weft.with_cancel()
      local pp = weft.go(function()
        while a:recv(ctx) do b:send(1, ctx) end
      end)
      local t0 = weft.now()
      local slept = weft.go(function()
        weft.sleep(0.01)
        return weft.now() - t0
      end)
      local rounds = 0
      local ticks = weft.after(0.05)
      while true do
        local i = weft.select({ { recv = ticks }, { send = a, value = 1 } })
        if i == 1 then break end
        b:recv()
        rounds = rounds + 1
      end
      cancel()
      pp:join()
      local dt = slept:join()
      print(rounds > 0, dt < 2)
    ]]
    assert.equal(0, status)
    assert.equal("true\ttrue\n", out)
  end)

  it("reports a task that fails while run inline, and goes on", function()
    local out, status = run [[
      local weft = require "weft"
      local ch = weft.chan()
      local bad = weft.go(function() error("boom") end)
      weft.go(function() ch:send("after") end)
      print(select(2, bad:join()).kind, ch:recv())
    ]]
    assert.equal(0, status)
    assert.equal("bug\tafter\n", out)
  end)

  it("is cancelled by a task it runs", function()
    local out, status = run [[
      local weft = require "weft"
      local me = weft.current()
      weft.go(function() me:cancel("enough") end)
      local ok, err = weft.sleep(math.huge)
      print(ok, err.kind, err.cause)
    ]]
    assert.equal(0, status)
    assert.equal("nil\tcanceled\tenough\n", out)
  end)

  it("shows the parked task as blocked to the tasks it runs", function()
    local out, status = run [[
      local weft = require "weft"
      local me = weft.current()
      local child = weft.go(function()
        for _, t in ipairs(weft.tasks()) do
          if t.id == me:id() then return t.state, t.waiting_on end
        end
      end)
      print(child:join())
    ]]
    assert.equal(0, status)
    assert.matches("^blocked\tjoin of task %d+\n$", out)
  end)

  it("runs nothing inside a sort comparator: the wait raises there",
    function()
      local out, status = run [[
        local weft = require "weft"
        local ran = false
        local ch = weft.chan()
        weft.go(function() ran = true; ch:send(1) end)
        local ok, err = pcall(table.sort, { 2, 1 }, function(x, y)
          ch:recv()
          return x < y
        end)
        local why = tostring(err):match("cannot wait inside [^(]*comparator")
        print(ok, ran, why)
        print(ch:recv())
      ]]
      assert.equal(0, status)
      assert.equal("false\tfalse\tcannot wait inside table.sort's " ..
        "comparator\n1\n", out)
    end)

  it("runs nothing inside a comparator in a coroutine of the task's",
    function()
      local out, status = run [[
        local weft = require "weft"
        local ran = false
        local ch = weft.chan()
        weft.go(function() ran = true; ch:send(1) end)
        local gen = coroutine.wrap(function()
          local ok, err = pcall(table.sort, { 2, 1 }, function(x, y)
            ch:recv()
            return x < y
          end)
          coroutine.yield(ok, ran, (tostring(err):match("cannot wait")))
        end)
        print(gen())
        print(ch:recv())
      ]]
      assert.equal(0, status)
      assert.equal("false\tfalse\tcannot wait\n1\n", out)
    end)

  it("waits in a coroutine of the task's, running others meanwhile",
    function()
      local out, status = run [[
        local weft = require "weft"
        local ch = weft.chan()
        weft.go(function() ch:send("v") end)
        local gen = coroutine.wrap(function()
          coroutine.yield(ch:recv())
        end)
        print(gen())
      ]]
      assert.equal(0, status)
      assert.equal("v\n", out)
    end)

  it("runs nothing inside a finalizer: the wait returns nowait", function()
    local out, status = run [[
      local weft = require "weft"
      local ran, got = false, nil
      local ch = weft.chan()
      weft.go(function() ran = true; ch:send(1) end)
      do
        local u = newproxy(true)
        getmetatable(u).__gc = function()
          local v, err = ch:recv()
          got = err and err.kind or v
        end
      end
      collectgarbage()
      collectgarbage()
      print(got, ran)
      print(ch:recv())
    ]]
    assert.equal(0, status)
    assert.equal("nowait\tfalse\n1\n", out)
  end)

  it("a wait too deep in a recursion fails before it is registered",
    function()
      local out, status = run [[
        local weft = require "weft"
        local ch = weft.chan()
        local function down(n)
          if n == 0 then return ch:recv() end
          return 1 + down(n - 1)
        end
        -- The first depth where the wait overflows the stack, a sender
        -- coming after it has parked (found by bisection, then walked).
        local function try(d)
          local sender = weft.go(function()
            weft.sleep(0.001)
            return ch:send(d)
          end)
          local ok, err = pcall(down, d)
          if not ok then
            -- Nothing was registered: the sender's value is still there.
            local v = ch:recv()
            assert(sender:join())
            return false, err, v
          end
          assert(sender:join())
          return true
        end
        local lo, hi = 1000, 60000
        while hi - lo > 1 do
          local mid = math.floor((lo + hi) / 2)
          if try(mid) then lo = mid else hi = mid end
        end
        -- Every depth around the limit (which moves a little as the
        -- recursion gets compiled) either works or fails with nothing
        -- registered.
        local failed, bad = 0, 0
        for d = hi - 40, hi + 80 do
          local ok, err, v = try(d)
          if not ok then
            failed = failed + 1
            if not (tostring(err):match("stack overflow") and v == d) then
              bad = bad + 1
            end
          end
        end
        print(failed > 0, bad)
      ]]
      assert.equal(0, status)
      assert.equal("true\t0\n", out)
    end)

  it("holds a host's step budget", function()
    local out = H.luajit [[
      local weft = require "weft"
      local a, b = weft.chan(), weft.chan()
      local rounds = 0
      weft.start(function()
        weft.go(function()
          while true do
            local v = a:recv()
            if not (v and b:send(v)) then return end
          end
        end)
        while a:send(1) and b:recv() do rounds = rounds + 1 end
      end)
      local clock, worst = os.clock, 0
      for _ = 1, 20 do
        local t0 = clock()
        weft.step(2)
        worst = math.max(worst, clock() - t0)
      end
      local before = rounds
      weft.step(2)
      print(worst < 0.5, rounds > before)
      weft.shutdown(1)
    ]]
    assert.equal("true\ttrue\n", out)
  end)
end)

-- Inside busted as well: a task parked at the bottom of a nested wait.
describe("the inline trampoline in a task", function()
  it("a join under a join returns the values", H.task(function()
    local inner = weft.go(function()
      return weft.go(function() return 1, 2 end):join()
    end)
    local x, y = inner:join()
    assert.equal(1, x)
    assert.equal(2, y)
  end))
end)

-- A coroutine whose task finished runs the next ready task, if it has
-- never run, itself (weft.sched, chain): the same order, and every
-- outcome belongs to the task it is of.
describe("a finished task's coroutine running fresh tasks", function()
  it("runs them in the order they were spawned, with their own values",
    function()
      local out, status = run [[
        local weft = require "weft"
        local log, ts = {}, {}
        for i = 1, 5 do
          ts[i] = weft.go(function(x)
            log[#log + 1] = x
            if i == 3 then weft.sleep(0) log[#log + 1] = "3 woke" end
            return x * 10
          end, i)
        end
        local sum = 0
        for i = 1, 5 do sum = sum + ts[i]:join() end
        print(table.concat(log, ","), sum)
      ]]
      assert.equal(0, status)
      assert.equal("1,2,3,4,5,3 woke\t150\n", out)
    end)

  it("reports a failure as the failing task's, not the one before it",
    function()
      local out = run [[
        local weft = require "weft"
        local a = weft.spawn { name = "first", fn = function() return 1 end }
        local b = weft.spawn { name = "second", fn = function()
          error("boom in second")
        end }
        local c = weft.spawn { name = "third", fn = function() return 3 end }
        print(a:join())
        local ok, err = b:join()
        print(ok, err.kind, tostring(err):match("second") ~= nil)
        print(c:join())
      ]]
      assert.equal("1\nnil\tbug\ttrue\n3\n", out)
    end)

  it("a yield from a chained task comes back after the others", function()
    local out, status = run [[
      local weft = require "weft"
      local log = {}
      weft.go(function() log[#log + 1] = "a" end)
      weft.go(function()
        log[#log + 1] = "b"
        weft.yield()
        log[#log + 1] = "b again"
      end)
      weft.go(function() log[#log + 1] = "c" end)
      weft.sleep(0.001)
      print(table.concat(log, ","))
    ]]
    assert.equal(0, status)
    assert.equal("a,b,c,b again\n", out)
  end)

  it("stops at a stepped tick's budget", function()
    local out = H.luajit [[
      local weft = require "weft"
      local n = 0
      weft.start(function()
        for _ = 1, 100000 do
          weft.go(function()
            local x = 0
            for i = 1, 2000 do x = x + i end
            n = n + x / 2001000
          end)
        end
      end)
      weft.step(0) -- the spawner
      local steps = 1
      while weft.step(1) > 0 do steps = steps + 1 end
      -- 100,000 tasks of ~1 us: ~100 ms in 1 ms steps, so many steps; a
      -- chain that ignored the deadline would run them all in the first.
      print(n, steps >= 10)
    ]]
    assert.equal("100000\ttrue\n", out)
  end)

  it("an errgroup's tasks all end and its first error wins", function()
    local out, status = run [[
      local weft = require "weft"
      local g = weft.group()
      local done = 0
      for i = 1, 1000 do
        g:go(function()
          done = done + 1
          if i == 500 then return nil, "task 500 failed" end
        end)
      end
      local err = g:wait()
      print(done, tostring(err):match("task 500 failed") ~= nil)
    ]]
    assert.equal(0, status)
    assert.equal("1000\ttrue\n", out)
  end)
end)
