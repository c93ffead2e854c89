-- Regressions: each spec here failed before the fix it is named after
-- (defects a code review found, with its reproductions).
local weft = require "weft"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

describe("regressions", function()
  it("review-1: a job never starts under a jobs set whose owner finished " ..
    "while it waited for a slot", vtask(function()
      local jobs
      local owner = weft.spawn { name = "owner", fn = function()
        jobs = weft.jobs(weft.background(), { limit = 1 })
        weft.sleep(1)
      end }
      weft.yield()
      local r1 = weft.go(function()
        return jobs:go(weft.background(), function() weft.sleep(5) end)
      end)
      local r2 = weft.go(function()
        return jobs:go(weft.background(), function() weft.sleep(5) end)
      end)
      assert.is_true(r1:join())
      assert.is_false(r2:join())
      owner:join()
      assert.equal(5, weft.now())
    end))

  it("review-2: a worker that stops with its scope's end does not fail " ..
    "its parent", vtask(function()
      local t = weft.go(function()
        weft.scope(function()
          weft.go(function()
            local v, err = weft.chan():recv()
            if not v then return nil, err end
          end)
          weft.sleep(1)
        end)
        weft.scope(function()
          weft.go(function()
            local v, err = weft.chan():recv()
            if not v then return nil, err end
          end)
          weft.sleep(1)
        end, { timeout = 0.5 })
        weft.sleep(1)
        return "parent ok"
      end)
      assert.equal("parent ok", t:join())
    end))

  it("review-3: task:cancel reaches a task that used a scope with ctx=",
    vtask(function()
      local base = weft.with_cancel(weft.background())
      local child_result
      local t = weft.go(function()
        weft.scope(function() weft.go(function() end) end, { ctx = base })
        local c = weft.go(function() return weft.sleep(10) end)
        child_result = { c:join() }
        return weft.sleep(10)
      end)
      weft.sleep(1)
      t:cancel("stop")
      local ok, err = t:join()
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      assert.is_nil(child_result[1])
      assert.equal(1, weft.now())
    end))

  it("review-5: a stale timer id from an ended bubble stops nobody's timer",
    task(function()
      local stop
      weft.virtual_time(function()
        local _
        _, stop = weft.ticker(1)
      end)
      local ok = weft.virtual_time(function()
        local t = weft.go(function() return weft.sleep(5) end)
        weft.yield()
        stop() -- its id may now be t's timer
        return t:join()
      end)
      assert.is_true(ok)
    end))

  it("review-6: a long-lived parent joining failed children does not grow",
    task(function()
      local function run(n)
        for _ = 1, n do
          local t = weft.go(function() return nil, "failed" end)
          weft.yield()
          t:join()
        end
      end
      run(2000)
      collectgarbage()
      collectgarbage()
      local before = collectgarbage("count")
      run(20000)
      collectgarbage()
      collectgarbage()
      assert.is_true(collectgarbage("count") - before < 1024,
        ("grew by %.0f KB"):format(collectgarbage("count") - before))
    end))

  it("review-7: a sentinel error returned again and again collects nothing",
    task(function()
      local not_found = weft.error { kind = "notfound", msg = "not found" }
      for _ = 1, 3 do
        local t = weft.go(function()
          weft.go(function() error("boom", 0) end)
          weft.yield()
          return nil, not_found
        end)
        local _, err = t:join()
        assert.is_true(weft.errors.is(err, not_found))
      end
      local g = weft.group()
      for _ = 1, 3 do g:go(function() return nil, not_found end) end
      local err = g:wait()
      assert.equal(2, #err.others)
      assert.is_nil(rawget(not_found, "others"))
    end))

  it("review-8: an idle pooled coroutine keeps nothing of its last task",
    task(function()
      local weak = setmetatable({}, { __mode = "k" })
      for _ = 1, 50 do
        local big = {}
        weak[big] = true
        weft.go(function() return #big end):join()
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end))

  it("review-9: cancelling ten thousand nested scopes wakes them all",
    vtask(function()
      local depth = 0
      local function level(n)
        depth = depth + 1
        if n > 0 then weft.go(level, n - 1) end
        return weft.sleep(math.huge)
      end
      local t = weft.go(level, 10000)
      weft.sleep(1)
      assert.equal(10001, depth)
      t:cancel()
      local _, err = t:join()
      assert.equal("canceled", err.kind)
    end))

  it("review-11: a sleep of 1e17 s does not make the loop spin",
    task(function()
      local out, status = H.sh(H.weft_bin .. [[ -e '
        weft.go(function() weft.sleep(1e17) end)
        weft.sleep(0.3)
        print(os.clock() < 0.15)
        weft.current():cancel()' 2>&1]])
      assert.equal(0, status)
      assert.equal("true\n", out)
    end))

  it("review-12: a ticker with a period too small to move the clock " ..
    "ticks once and stops", task(function()
      local ch, stop = weft.ticker(1e-300)
      assert.is_number(ch:recv())
      stop()
    end))

  it("review-13: weft.yield checks its context argument", task(function()
    assert.has_error(function() weft.yield("x") end,
      "bad argument #1 to 'yield' (weft.ctx expected, got string)")
  end))

  it("review: a replica's second word does not count as another failure",
    vtask(function()
      local v, i = weft.replicate(weft.context(), 2, function(ctx, r)
        if r == 1 then
          -- Fails, then a child of it fails too (a second report).
          weft.go(function() weft.sleep(0.5); error("late", 0) end)
          return nil, "first failed"
        end
        weft.sleep(2, ctx)
        return "second answers"
      end)
      assert.equal("second answers", v)
      assert.equal(2, i)
    end))
end)
