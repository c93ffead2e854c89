-- gh-8: no value lost, no task re-run, no forged wake: waits that cannot
-- yield, coroutines resumed from outside their wait, cancellation that
-- reaches everything a task started, loops that ignore cancellation, and
-- an error reported once.
local weft = require "weft"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

local CANNOT = "cannot wait inside"

describe("gh-8: a wait that cannot yield", function()
  it("gh-8: a sleep in table.sort's comparator raises a clear error and " ..
    "leaves nothing registered", vtask(function()
      local ch = weft.chan()
      local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
        weft.sleep(0.05)
        return a < b
      end)
      assert.is_false(ok)
      assert.matches("gh8_waits_spec.lua:%d+: weft.sleep: " .. CANNOT ..
        " table.sort's comparator %(a C function is on the stack", err)
      -- Before the fix the stale sleep woke this receive with true.
      local v, rerr = ch:recv(weft.with_timeout(0.1))
      assert.is_nil(v)
      assert.equal("deadline", rerr.kind)
      assert.equal(0.1, weft.now())
    end))

  it("gh-8: a reply wait that failed inside gsub gets no value: the send " ..
    "blocks instead of returning true", vtask(function()
      local reply = weft.chan()
      local ok, err = pcall(string.gsub, "x", "x", function()
        return reply:recv()
      end)
      assert.is_false(ok)
      assert.matches("ch:recv: " .. CANNOT ..
        " string.gsub's replacement function", err)
      local sent, serr = reply:send("pong", weft.with_timeout(1))
      assert.is_nil(sent)
      assert.equal("deadline", serr.kind)
      -- And a real receive afterwards works.
      weft.go(function() reply:send("again") end)
      assert.equal("again", reply:recv())
    end))

  it("gh-8: a sleep in a load reader does not cut a later sleep short",
    vtask(function()
      local ok, err = pcall(load, function() weft.sleep(0.01) end)
      -- load catches its reader's error and returns it.
      assert.is_true(ok)
      assert.matches("weft.sleep: " .. CANNOT .. " load's reader", tostring(
        select(2, load(function() weft.sleep(0.01) end))))
      assert.is_nil(err)
      local t0 = weft.now()
      assert.is_true((weft.sleep(0.1)))
      assert.equal(0.1, weft.now() - t0)
    end))

  it("gh-8: a task whose join failed in a comparator runs its function " ..
    "once", vtask(function()
      local runs = 0
      local t = weft.go(function()
        runs = runs + 1
        local c = weft.go(function() weft.sleep(1) end)
        local ok, err = pcall(table.sort, { 2, 1 }, function(a, b)
          c:join()
          return a < b
        end)
        assert(not ok and err:find("task:join: " .. CANNOT, 1, true))
        weft.sleep(2)
        return "once"
      end)
      assert.equal("once", t:join())
      assert.equal(1, runs)
      assert.equal(2, weft.now())
    end))

  it("gh-8: a finalizer that sends on a full channel does not make an " ..
    "unrelated receive return", vtask(function()
      local full = weft.chan(1)
      full:send(1)
      local results = {}
      do
        local p = newproxy(true)
        getmetatable(p).__gc = function()
          results[#results + 1] = { full:send(2) }
        end
        p = nil -- luacheck: ignore 311
      end
      collectgarbage()
      collectgarbage()
      assert.equal(1, #results)
      assert.is_nil(results[1][1])
      assert.equal("nowait", results[1][2].kind)
      assert.matches("ch:send: " .. CANNOT, results[1][2].message)
      local v, err = weft.chan():recv(weft.with_timeout(0.5))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert.equal(1, #full)
      assert.equal(1, full:recv())
    end))

  it("gh-8: waits in an xpcall handler, a module's top level and a select " ..
    "raise clear errors", vtask(function()
      local ok, err = xpcall(error, function()
        local _, e = pcall(weft.sleep, 1)
        return e
      end)
      assert.is_false(ok)
      assert.matches("weft.sleep: " .. CANNOT .. " xpcall's error handler",
        err)
      package.preload["gh8.blocking"] = function()
        weft.sleep(1)
        return {}
      end
      ok, err = pcall(require, "gh8.blocking")
      package.preload["gh8.blocking"] = nil
      assert.is_false(ok)
      assert.matches("weft.sleep: " .. CANNOT .. " a module's top level",
        err)
      local a, b = weft.chan(), weft.chan()
      ok, err = pcall(table.sort, { 2, 1 }, function()
        weft.select { { recv = a }, { recv = b } }
      end)
      assert.is_false(ok)
      assert.matches("weft.select: " .. CANNOT, err)
      -- Neither channel has a stale receiver left.
      local i = weft.select { { send = a, value = 1 }, { default = true } }
      assert.equal(2, i)
      assert.equal(0, weft.now())
    end))

  it("gh-8: dofile is yieldable in a task: a file it runs may block",
    vtask(function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("local weft = require 'weft'\n",
        "weft.sleep(3)\nreturn 'loaded', ...\n")
      f:close()
      local a, b = dofile(path)
      os.remove(path)
      assert.equal("loaded", a)
      assert.is_nil(b)
      assert.equal(3, weft.now())
      local ok, err = pcall(dofile, "/nonexistent/gh8.lua")
      assert.is_false(ok)
      assert.matches("/nonexistent/gh8.lua", err)
    end))
end)

describe("gh-8: resuming a coroutine that waits", function()
  it("gh-8: a generator shared by two tasks cannot be resumed by the " ..
    "second while the first waits in it", vtask(function()
      local gen = coroutine.wrap(function(x)
        while true do
          weft.sleep(1)
          x = coroutine.yield(x)
        end
      end)
      local a = weft.go(function() return gen("A-arg") end)
      weft.yield()
      local b = weft.go(function()
        local ok, err = pcall(gen, "B-arg")
        return { ok = ok, err = err }
      end)
      local r = b:join()
      assert.is_false(r.ok)
      local err = r.err
      assert.matches("cannot resume a coroutine that is waiting in weft",
        err)
      assert.equal("A-arg", a:join())
      assert.equal(1, weft.now())
    end))

  it("gh-8: coroutine.resume of a parked task's own coroutine raises and " ..
    "the wait is untouched", vtask(function()
      local co
      local t = weft.go(function()
        co = coroutine.running()
        return weft.sleep(5)
      end)
      weft.yield()
      local ok, err = pcall(coroutine.resume, co, "forged")
      assert.is_false(ok)
      assert.matches("cannot resume a weft task's own coroutine", err)
      assert.equal(true, t:join())
      assert.equal(5, weft.now())
    end))
end)

describe("gh-8: cancellation reaches everything a task started", function()
  it("gh-8: task:cancel reaches a child spawned with an explicit ctx " ..
    "derived from an outer context", vtask(function()
      local outer = weft.with_cancel(weft.background())
      local child_err
      local t = weft.go(function()
        local c = weft.spawn { ctx = outer, fn = function()
          local ok, err = weft.sleep(3600)
          if not ok then child_err = err end
        end }
        c:join()
      end)
      weft.sleep(1)
      t:cancel("stop")
      t:join()
      assert.equal(1, weft.now())
      assert.equal("canceled", child_err.kind)
      -- The outer context itself is not cancelled: it is not the task's.
      assert.is_nil(outer:err())
    end))

  it("gh-8: a child under weft.background() is cancelled with its parent",
    vtask(function()
      local t = weft.go(function()
        weft.spawn { ctx = weft.background(), fn = function()
          weft.sleep(3600)
        end }
        weft.sleep(3600)
      end)
      weft.sleep(2)
      t:cancel()
      t:join()
      assert.equal(2, weft.now())
    end))

  it("gh-8: a child started with an explicit ctx inside a cancelled scope " ..
    "starts cancelled; a shielded wait still runs", vtask(function()
      local got = {}
      local t = weft.go(function()
        weft.sleep(10) -- cancelled at 1
        weft.spawn { ctx = weft.background(), fn = function()
          got.late = { weft.sleep(1) }
        end }
        got.shielded = { weft.sleep(1, weft.background()) }
      end)
      weft.sleep(1)
      t:cancel()
      t:join()
      assert.is_nil(got.late[1])
      assert.equal("canceled", got.late[2].kind)
      assert.is_true(got.shielded[1])
      assert.equal(2, weft.now())
    end))

  it("gh-8: a jobs set's background jobs end with their owner",
    vtask(function()
      local owner = weft.go(function()
        local jobs = weft.jobs(weft.background())
        jobs:go(weft.background(), function() weft.sleep(3600) end)
        jobs:wait()
      end)
      weft.sleep(1)
      owner:cancel()
      owner:join()
      assert.equal(1, weft.now())
    end))

  it("gh-8: Ctrl-C ends a program whose child runs under background",
    task(function()
      local out, status = H.sh(("timeout 10 sh -c '%s -e \"" ..
        "weft.spawn{ctx = weft.background(), fn = function() " ..
        "weft.sleep(3600) end} print(\\\"up\\\") io.stdout:flush() " ..
        "assert(weft.sleep(3600))\" & pid=$!; sleep 0.3; kill -INT $pid; " ..
        "wait $pid' 2>&1"):format(H.weft_bin))
      assert.equal(130, status)
      assert.matches("^up\n", out)
    end))
end)

describe("gh-8: a loop that ignores cancellation", function()
  it("gh-8: fails with an error naming the task and its line",
    vtask(function()
      local t = weft.spawn { name = "stubborn", fn = function()
        while true do weft.sleep(1) end
      end }
      weft.sleep(2.5)
      t:cancel()
      local ok, err = t:join()
      assert.is_nil(ok)
      assert.matches('gh8_waits_spec.lua:%d+: task "stubborn" ignores ' ..
        "cancellation", tostring(err))
      assert.equal(2.5, weft.now())
    end))

  it("gh-8: the idiom while weft.sleep(s) do ... end ends quietly",
    vtask(function()
      local n = 0
      local t = weft.go(function()
        while weft.sleep(1) do n = n + 1 end
      end)
      weft.sleep(3.5)
      t:cancel()
      assert.is_true(t:join())
      assert.equal(3, n)
    end))

  it("gh-8: channel and select loops are caught too", vtask(function()
      local ch = weft.chan(1)
      local t1 = weft.go(function()
        while true do ch:recv() end
      end)
      local t2 = weft.go(function()
        while true do weft.select { { recv = ch } } end
      end)
      weft.yield()
      t1:cancel()
      t2:cancel()
      local _, e1 = t1:join()
      local _, e2 = t2:join()
      assert.matches("ignores cancellation", tostring(e1))
      assert.matches("ignores cancellation", tostring(e2))
    end))
end)

describe("gh-8: an error is reported once", function()
  it("gh-8: a raised error that a joiner took does not fail the parent",
    vtask(function()
      local p = weft.go(function()
        local c = weft.go(function() error("boom", 0) end)
        weft.yield()
        local ok, err = c:join()
        assert(ok == nil and tostring(err):find("boom"))
        return "parent ok"
      end)
      assert.equal("parent ok", p:join())
    end))

  it("gh-8: the program does not fail for an error its main task joined",
    task(function()
      local out, status = H.sh(("%s -e \"local c = weft.go(function() " ..
        "error('boom') end) weft.yield() local _, e = c:join() " ..
        "print('joined', e ~= nil)\" 2>&1"):format(H.weft_bin))
      assert.equal("joined\ttrue\n", out)
      assert.equal(0, status)
    end))
end)
