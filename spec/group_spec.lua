-- weft.group (errgroup), weft.limiter, weft.parallel, weft.concurrently and
-- weft.jobs: Go's golang.org/x/sync/errgroup and storj's sync2 semantics.
--
-- Work that runs in a toolkit task records what it saw in upvalues and the
-- spec body asserts afterwards: an assertion failing inside a group task
-- would be an error the group takes, not a failed spec.
local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

-- gauge() -> a running counter that remembers its maximum.
local function gauge()
  local g = { n = 0, max = 0 }
  function g.enter()
    g.n = g.n + 1
    if g.n > g.max then g.max = g.n end
  end
  function g.leave() g.n = g.n - 1 end
  return g
end

-- key(e) -> what identifies a failure across the group's bookkeeping: a
-- raised string or a returned non-weft value becomes a weft error that
-- keeps it in `value`; a weft error keeps its identity.
local function key(e)
  -- With others, a group returns a copy of the first error (err.original):
  -- the first itself may be shared (see errors.with_others).
  if weft.errors.is_error(e) and rawget(e, "original") then
    e = e.original
  end
  if weft.errors.is_error(e) and e.value ~= nil then return e.value end
  -- A group returns its own copy of a (shared) cancellation error when it
  -- carries others: the same kind, message and cause.
  if weft.errors.is_error(e) and (e.kind == "canceled" or
      e.kind == "deadline") then
    return e.kind .. ":" .. tostring(e.cause)
  end
  return e
end

-- count(list) -> multiset of keys
local function count(list)
  local m = {}
  for i = 1, #list do
    local k = key(list[i])
    m[k] = (m[k] or 0) + 1
  end
  return m
end

-- all_errors(err) -> { err, unpack(err.others) }
local function all_errors(err)
  local l = { err }
  for _, o in ipairs(err.others or {}) do l[#l + 1] = o end
  return l
end

describe("weft.group", function()
  it("go runs fn(ctx, ...) in a task of its own, ctx the group's context",
    vtask(function()
      local g = weft.group()
      local got = {}
      for i = 1, 3 do
        assert.is_true(g:go(function(ctx, a, b, ...)
          got[i] = { ctx = ctx, a = a, b = b, n = select("#", ...),
            task = weft.current() }
          weft.sleep(i)
          got[i].at = weft.now()
        end, i, "x", nil, nil))
      end
      -- A new task starts when the current one blocks (Go's order).
      assert.same({}, got)
      assert.is_nil(g:wait())
      assert.equal(3, weft.now()) -- they ran at the same time
      for i = 1, 3 do
        assert.equal(g:context(), got[i].ctx)
        assert.equal(i, got[i].a)
        assert.equal("x", got[i].b)
        assert.equal(2, got[i].n) -- trailing nils are passed on
        assert.equal(i, got[i].at)
        assert.not_equal(weft.current(), got[i].task)
      end
      assert.not_equal(got[1].task, got[2].task)
    end))

  it("wait returns nil once every task has finished, then cancels the " ..
    "group's context", vtask(function()
      local g = weft.group()
      local finished = 0
      for i = 1, 4 do
        g:go(function()
          weft.sleep(i)
          finished = finished + 1
        end)
      end
      assert.is_nil(g:context():err())
      assert.is_nil(g:wait())
      assert.equal(4, finished)
      assert.equal(4, weft.now())
      local cerr = g:context():err()
      assert.equal("canceled", cerr.kind)
      assert.is_nil(cerr.cause)
      -- Waiting again returns at once, with the same (no) error.
      assert.is_nil(g:wait())
      assert.equal(4, weft.now())
    end))

  it("wait with no task returns nil at once", vtask(function()
    local g = weft.group()
    assert.is_nil(g:wait())
    assert.equal(0, weft.now())
    assert.is_not_nil(g:context():err())
  end))

  it("wait returns the first error; the later ones are on err.others, in " ..
    "order", vtask(function()
      local g = weft.group()
      local e1 = weft.error("e1", "first")
      local e2 = weft.error("e2", "second")
      local e3 = weft.error("e3", "third")
      -- Each sleeps under background: cancellation does not cut it short.
      g:go(function() weft.sleep(3, weft.background()); return nil, e3 end)
      g:go(function() weft.sleep(1, weft.background()); return nil, e1 end)
      g:go(function() weft.sleep(2, weft.background()); error(e2) end)
      g:go(function() weft.sleep(4, weft.background()); return "fine" end)
      local err = g:wait()
      assert.equal(4, weft.now())
      -- A copy of the first error carries the others; e1 is left untouched.
      assert.equal(e1, err.original)
      assert.equal(e1.id, err.id)
      assert.equal("first", err.message)
      assert.is_true(weft.errors.is(err, e1))
      assert.is_nil(rawget(e1, "others"))
      assert.equal(2, #err.others)
      assert.equal(e2, err.others[1]) -- a raised weft error keeps itself
      assert.equal(e3, err.others[2])
    end))

  it("the first error cancels the group's context, with that error as its " ..
    "cause", vtask(function()
      local g = weft.group()
      local boom = weft.error("boom", "went wrong")
      local seen = {}
      for i = 1, 3 do
        g:go(function(ctx)
          local ok, err = weft.sleep(10, ctx)
          seen[i] = { ok = ok, err = err, at = weft.now() }
        end)
      end
      g:go(function() weft.sleep(1); return nil, boom end)
      local err = g:wait()
      assert.equal(boom, err)
      assert.is_nil(err.others) -- the others returned normally
      assert.equal(1, weft.now())
      for i = 1, 3 do
        assert.is_nil(seen[i].ok)
        assert.equal("canceled", seen[i].err.kind)
        assert.equal(boom, seen[i].err.cause)
        assert.equal(1, seen[i].at)
      end
      assert.equal(boom, g:context():cause())
    end))

  it("a raised error fails the task with kind bug, keeping the value",
    vtask(function()
      local g = weft.group()
      local val = {}
      g:go(function() error("boom", 0) end)
      local err = g:wait()
      assert.equal("bug", err.kind)
      assert.equal("boom", err.value)
      assert.is_string(err.traceback)

      g = weft.group()
      g:go(function() error(val) end)
      err = g:wait()
      assert.equal("bug", err.kind)
      assert.equal(val, err.value)
    end))

  it("a returned value that is not a weft error becomes one that keeps it",
    vtask(function()
      local g = weft.group()
      g:go(function() return nil, "plain" end)
      local err = g:wait()
      assert.is_true(weft.errors.is_error(err))
      assert.equal("plain", err.value)
      assert.equal("plain", tostring(err))
      assert.equal(err, g:context():cause())
      -- false, err fails too; false alone does not.
      g = weft.group()
      g:go(function() return false end)
      g:go(function() return false, "f" end)
      assert.equal("f", g:wait().value)
    end))

  it("group errors do not fail the task that called go, waited or not",
    vtask(function()
      local t = weft.go(function()
        local g = weft.group()
        g:go(function() error("raised") end)
        g:go(function() return nil, weft.error("x", "returned") end)
        local err = g:wait()
        assert(err and err.kind == "bug", tostring(err))
        -- Errors nobody waits for are dropped, as in Go.
        local g2 = weft.group()
        g2:go(function() error("never waited for") end)
        g2:go(function() weft.sleep(1); return nil, "nor this" end)
        -- A raise that reached this task would cancel it: this sleep and
        -- its context would fail.
        local slept = weft.sleep(2)
        return "survived", slept, weft.context():err()
      end)
      local res, slept, cerr = t:join()
      assert.equal("survived", res)
      assert.is_true(slept)
      assert.is_nil(cerr)
      assert.equal(2, weft.now())
    end))

  it("its tasks are children of the task that calls go: it finishes after " ..
    "them", vtask(function()
      local g = weft.group()
      local t = weft.go(function()
        g:go(function() weft.sleep(5) end)
        return "returned"
      end)
      assert.equal("returned", t:join())
      assert.equal(5, weft.now())
      assert.is_nil(g:wait())
    end))

  it("opts.ctx is the parent: cancelling it cancels the tasks, and wait " ..
    "returns the errors they return", vtask(function()
      local parent, cancel = weft.with_cancel()
      local g = weft.group { ctx = parent }
      for _ = 1, 3 do
        g:go(function(ctx)
          local ok, err = weft.sleep(10, ctx)
          if not ok then return nil, err end
        end)
      end
      weft.sleep(2)
      cancel("stop")
      local err = g:wait()
      assert.equal(2, weft.now())
      assert.equal("canceled", err.kind)
      assert.equal("stop", err.cause)
      assert.equal(2, #err.others)
      assert.equal("stop", g:context():cause())
    end))

  it("groups under the same cancelled context keep their errors apart",
    vtask(function()
      -- Every task under a cancelled context gets the same error object
      -- from its waits; each group must still count only its own tasks.
      local parent, cancel = weft.with_cancel()
      local a = weft.group { ctx = parent }
      local b = weft.group { ctx = parent }
      local function work(ctx)
        local ok, err = weft.sleep(10, ctx)
        if not ok then return nil, err end
      end
      for _ = 1, 2 do a:go(work) end
      for _ = 1, 3 do b:go(work) end
      weft.sleep(1)
      cancel("stop")
      local ea, eb = a:wait(), b:wait()
      assert.equal("stop", ea.cause)
      assert.equal("stop", eb.cause)
      assert.equal(2, #all_errors(ea))
      assert.equal(3, #all_errors(eb))
    end))

  it("with a limit, no more than limit tasks run at once and go waits for " ..
    "a slot", vtask(function()
      local g = weft.group { limit = 3 }
      local running = gauge()
      local returned_at = {}
      for i = 1, 10 do
        assert.is_true(g:go(function()
          running.enter()
          weft.sleep(1)
          running.leave()
        end))
        returned_at[i] = weft.now()
      end
      assert.is_nil(g:wait())
      assert.equal(3, running.max)
      assert.same({ 0, 0, 0, 1, 1, 1, 2, 2, 2, 3 }, returned_at)
      assert.equal(4, weft.now())
    end))

  it("try_go returns false when the limit is reached, true once a slot " ..
    "frees", vtask(function()
      local g = weft.group { limit = 2 }
      local ran = 0
      local function work() weft.sleep(1); ran = ran + 1 end
      assert.is_true(g:try_go(work))
      assert.is_true(g:try_go(work))
      assert.is_false(g:try_go(work))
      weft.sleep(1.5) -- both have finished at 1
      assert.is_true(g:try_go(work))
      assert.is_nil(g:wait())
      assert.equal(3, ran)
      assert.equal(2.5, weft.now())
    end))

  it("try_go with no limit (or a negative one) always starts the task",
    vtask(function()
      for _, g in ipairs { weft.group(), weft.group { limit = -1 } } do
        local n = 0
        for _ = 1, 100 do
          assert.is_true(g:try_go(function() weft.sleep(1); n = n + 1 end))
        end
        assert.is_nil(g:wait())
        assert.equal(100, n)
      end
      assert.equal(2, weft.now())
    end))

  it("limit 0 blocks go until the caller's context is cancelled, and " ..
    "nothing runs", vtask(function()
      local g = weft.group { limit = 0 }
      local ran = false
      local ok, err = weft.scope(function()
        return g:go(function() ran = true end)
      end, { timeout = 5 })
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(5, weft.now())
      assert.is_false(g:try_go(function() ran = true end))
      assert.is_nil(g:wait())
      assert.is_false(ran)
    end))

  it("go waiting for a slot returns nil, err when the caller's context is " ..
    "cancelled; its function never runs", vtask(function()
      local g = weft.group { limit = 1 }
      local ran = {}
      g:go(function() weft.sleep(10); ran[1] = true end)
      local waiter = weft.go(function()
        -- In a table: returning nil, err would fail the waiter.
        local ok, err = g:go(function() ran[2] = true end)
        return { ok = ok, err = err, at = weft.now() }
      end)
      weft.sleep(1)
      waiter:cancel("give up")
      local r = waiter:join()
      assert.is_nil(r.ok)
      assert.equal("canceled", r.err.kind)
      assert.equal("give up", r.err.cause)
      assert.equal(1, r.at)
      -- The group is not failed by it and its slot is not taken.
      assert.is_nil(g:wait())
      assert.equal(10, weft.now())
      assert.same({ true }, ran)
    end))

  it("wait(ctx) returns ctx's error when it is cancelled first; the tasks " ..
    "go on", vtask(function()
      local g = weft.group()
      local finished = false
      g:go(function() weft.sleep(5); finished = true end)
      local err = g:wait(weft.with_timeout(1))
      assert.equal("deadline", err.kind)
      assert.equal(1, weft.now())
      assert.is_false(finished)
      assert.is_nil(g:context():err()) -- an aborted wait does not cancel
      assert.is_nil(g:wait())
      assert.is_true(finished)
      assert.equal(5, weft.now())
      -- A wait in a cancelled context fails, even with nothing to wait for.
      local ctx, cancel = weft.with_cancel()
      cancel("already")
      assert.equal("already", g:wait(ctx).cause)
    end))

  it("rejects bad arguments", vtask(function()
    assert.has_error(function() weft.group(5) end,
      "bad argument #1 to 'group' (table expected, got number)")
    assert.has_error(function() weft.group { ctx = 5 } end,
      "bad argument #1 to 'group' (weft.ctx expected, got number)")
    assert.has_error(function() weft.group { limit = 1.5 } end,
      "bad argument #1 to 'group' (field 'limit': integer expected, got 1.5)")
    assert.has_error(function() weft.group { limit = "2" } end,
      "bad argument #1 to 'group' (field 'limit': integer expected, " ..
      "got string)")
    local g = weft.group()
    assert.has_error(function() g:go() end,
      "bad argument #1 to 'go' (function expected, got nil)")
    assert.has_error(function() g:try_go("f") end,
      "bad argument #1 to 'try_go' (function expected, got string)")
    assert.has_error(function() g.go({}, print) end,
      "bad argument #1 to 'go' (weft.group expected, got table)")
    assert.has_error(function() g.wait(5) end,
      "bad argument #1 to 'wait' (weft.group expected, got number)")
    assert.has_error(function() g:wait(5) end,
      "bad argument #1 to 'wait' (weft.ctx expected, got number)")
    assert.has_error(function() g.context(nil) end,
      "bad argument #1 to 'context' (weft.group expected, got nil)")
    assert.is_nil(g:wait())
  end))

  it("tostring shows the running tasks and whether it failed",
    vtask(function()
      local g = weft.group()
      g:go(function() weft.sleep(1) end)
      g:go(function() weft.sleep(2); return nil, "x" end)
      assert.equal("weft.group: 2 running", tostring(g))
      weft.sleep(1.5)
      assert.equal("weft.group: 1 running", tostring(g))
      g:wait()
      assert.equal("weft.group: 0 running, failed", tostring(g))
    end))

  it("stress: 5,000 tasks in 50 groups, random failures and cancellation: " ..
    "limits hold and every error is accounted for", vtask(function()
      math.randomseed(4242)
      local NGROUPS, PER = 50, 100
      local groups, drivers = {}, {}

      local function work(ctx, st, i, j)
        st.running.enter()
        local function finish(outcome)
          st.running.leave()
          st.outcomes[#st.outcomes + 1] = outcome
        end
        local r = math.random(100)
        local ok, cerr = weft.sleep(math.random(50) * 0.01, ctx)
        if not ok then
          finish(cerr) -- passes its cancellation up, as real code does
          return nil, cerr
        elseif r <= 5 then
          local e = weft.error("work", "task %d/%d failed", i, j)
          finish(e)
          return nil, e
        elseif r <= 8 then
          local e = weft.error("work", "task %d/%d raised", i, j)
          finish(e)
          error(e)
        elseif r <= 10 then
          local msg = ("raw %d/%d"):format(i, j)
          finish(msg)
          error(msg, 0)
        end
        finish("ok")
        return true
      end

      for i = 1, NGROUPS do
        local st = { running = gauge(), outcomes = {}, started = 0,
          limit = i % 5 ~= 0 and math.random(8) or nil }
        groups[i] = st
        drivers[i] = weft.go(function()
          local g = weft.group { limit = st.limit }
          for j = 1, PER do
            -- With a limit, go fails once chaos cancels this driver.
            if not g:go(work, st, i, j) then break end
            st.started = st.started + 1
            if math.random(10) == 1 then weft.sleep(0.01) end
          end
          -- Shielded: a cancelled driver still collects its group.
          st.err = g:wait(weft.background())
          st.ctx_err = g:context():err()
          return "driver done"
        end)
      end

      local chaos = weft.go(function()
        for _ = 1, 25 do
          weft.sleep(math.random(30) * 0.01)
          drivers[math.random(NGROUPS)]:cancel("chaos")
        end
      end)

      for i = 1, NGROUPS do
        -- The group takes its tasks' errors: the driver never fails.
        assert.equal("driver done", drivers[i]:join())
      end
      chaos:join()

      local chaos_hit, real_first = 0, 0
      for i, st in ipairs(groups) do
        local what = "group " .. i
        assert(st.running.n == 0, what)
        assert(st.running.max <= (st.limit or math.huge), what)
        assert(#st.outcomes == st.started, what .. ": lost a task")
        local failed = {}
        for _, o in ipairs(st.outcomes) do
          if o ~= "ok" then failed[#failed + 1] = o end
        end
        assert(st.ctx_err, what .. ": context not cancelled after wait")
        if #failed == 0 then
          assert(st.err == nil, what)
        else
          assert(st.err, what .. ": errors lost")
          -- The first to fail is the result; all are there exactly once.
          assert(key(st.err) == key(failed[1]), what .. ": not the first")
          assert.same(count(failed), count(all_errors(st.err)))
          if weft.errors.is(st.err, "canceled") then
            if st.err.cause == "chaos" then chaos_hit = chaos_hit + 1 end
          else
            real_first = real_first + 1
            assert(key(st.ctx_err.cause) == key(st.err), what ..
              ": wrong cause")
          end
        end
        if st.limit and st.started == PER then
          assert(st.running.max == st.limit, what .. ": limit never reached")
        end
      end
      assert.is_true(chaos_hit > 0)
      assert.is_true(real_first > 0)
    end))
end)

describe("weft.limiter", function()
  it("go runs fn(ctx) in a task and returns true", vtask(function()
    local lim = weft.limiter(2)
    local ctx = weft.with_value(nil, "k", "v")
    local got
    assert.is_true(lim:go(ctx, function(c, extra)
      got = { v = c:value("k"), extra = extra, task = weft.current() }
    end))
    assert.is_true(lim:close())
    assert.equal("v", got.v)
    assert.is_nil(got.extra)
    assert.not_equal(weft.current(), got.task)
  end))

  it("runs at most n at once; go waits for a free slot", vtask(function()
    local lim = weft.limiter(2)
    local running = gauge()
    local returned_at = {}
    for i = 1, 6 do
      assert.is_true(lim:go(weft.context(), function()
        running.enter()
        weft.sleep(1)
        running.leave()
      end))
      returned_at[i] = weft.now()
    end
    assert.same({ 0, 0, 1, 1, 2, 2 }, returned_at)
    assert.is_true(lim:close())
    assert.equal(3, weft.now())
    assert.equal(2, running.max)
  end))

  it("go returns false when ctx is done before a slot frees; fn never runs",
    vtask(function()
      local lim = weft.limiter(1)
      local ran = {}
      lim:go(weft.context(), function() weft.sleep(5); ran[1] = true end)
      local ok = lim:go(weft.with_timeout(2), function() ran[2] = true end)
      assert.is_false(ok)
      assert.equal(2, weft.now())
      -- A cancelled context fails at once, even with a free slot.
      weft.sleep(5)
      local ctx, cancel = weft.with_cancel()
      cancel()
      assert.is_false(lim:go(ctx, function() ran[3] = true end))
      assert.equal(7, weft.now())
      assert.is_true(lim:close())
      assert.same({ true }, ran)
    end))

  it("close waits for every running task, then go returns false",
    vtask(function()
      local lim = weft.limiter(3)
      local finished = 0
      for i = 1, 3 do
        lim:go(weft.context(), function()
          weft.sleep(i)
          finished = finished + 1
        end)
      end
      assert.is_true(lim:close())
      assert.equal(3, finished)
      assert.equal(3, weft.now())
      local ran = false
      assert.is_false(lim:go(weft.context(), function() ran = true end))
      weft.sleep(1)
      assert.is_false(ran)
      assert.is_true(lim:close()) -- closing again: nothing to wait for
      assert.matches("closed", tostring(lim))
    end))

  it("a go waiting for a slot when the limiter closes returns false and " ..
    "runs nothing", vtask(function()
      local lim = weft.limiter(1)
      local ran = {}
      lim:go(weft.context(), function() weft.sleep(3); ran[1] = true end)
      local waiter = weft.go(function()
        return lim:go(weft.context(), function() ran[2] = true end)
      end)
      weft.sleep(1)
      assert.is_true(lim:close())
      assert.equal(3, weft.now())
      assert.is_false(waiter:join())
      assert.same({ true }, ran)
    end))

  it("close(ctx) returns nil, err when ctx is cancelled first; the tasks " ..
    "go on", vtask(function()
      local lim = weft.limiter(1)
      local finished = false
      lim:go(weft.context(), function() weft.sleep(5); finished = true end)
      local ok, err = lim:close(weft.with_timeout(1))
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.is_false(finished)
      -- It is closed all the same.
      assert.is_false(lim:go(weft.context(), function() end))
      assert.is_true(lim:close())
      assert.is_true(finished)
      assert.equal(5, weft.now())
    end))

  it("a task's error goes to the task that called go, as a plain task's",
    vtask(function()
      local lim = weft.limiter(4)
      local e = weft.error("job", "failed")
      local t = weft.go(function()
        lim:go(weft.context(), function() return nil, e end)
        return "not this"
      end)
      local ok, err = t:join()
      assert.is_nil(ok)
      assert.equal(e, err)
      assert.is_true(lim:close())
    end))

  it("rejects bad arguments", vtask(function()
    assert.has_error(function() weft.limiter(0) end,
      "bad argument #1 to 'limiter' (positive integer expected, got 0)")
    assert.has_error(function() weft.limiter(2.5) end,
      "bad argument #1 to 'limiter' (positive integer expected, got 2.5)")
    assert.has_error(function() weft.limiter() end,
      "bad argument #1 to 'limiter' (positive integer expected, got nil)")
    local lim = weft.limiter(1)
    assert.has_error(function() lim:go(function() end) end,
      "bad argument #1 to 'go' (weft.ctx expected, got function)")
    assert.has_error(function() lim:go(weft.context(), "f") end,
      "bad argument #2 to 'go' (function expected, got string)")
    assert.has_error(function() lim.go(weft.context(), print) end,
      "bad argument #1 to 'go' (weft.limiter expected, got table)")
    assert.has_error(function() lim.close() end,
      "bad argument #1 to 'close' (weft.limiter expected, got nil)")
    assert.has_error(function() lim:close(5) end,
      "bad argument #1 to 'close' (weft.ctx expected, got number)")
    -- A call that raises a bad argument changes nothing.
    assert.equal("weft.limiter: 0 running", tostring(lim))
  end))

  it("stress: 4,000 submitters with random cancellation and a close " ..
    "midway: at most n run, go is true exactly for what ran", vtask(function()
      math.randomseed(777)
      local N, NSUB = 16, 4000
      local lim = weft.limiter(N)
      local running = gauge()
      local ran, result, cancels = {}, {}, {}
      local closing, started_after_close = false, 0
      local subs = {}
      for k = 1, NSUB do
        local ctx, cancel = weft.with_cancel()
        cancels[k] = cancel
        subs[k] = weft.go(function()
          weft.sleep(math.random(200) * 0.01)
          result[k] = lim:go(ctx, function(c)
            running.enter()
            ran[k] = (ran[k] or 0) + 1
            weft.sleep(math.random(20) * 0.01, c)
            running.leave()
          end)
          -- go spawns and returns without yielding in between: a true
          -- here, after close was called, is a task started after it.
          if result[k] and closing then
            started_after_close = started_after_close + 1
          end
        end)
      end
      local chaos = weft.go(function()
        for _ = 1, 1500 do
          cancels[math.random(NSUB)]("chaos")
          weft.sleep(math.random(3) * 0.001)
        end
      end)
      weft.sleep(1)
      closing = true
      assert.is_true(lim:close())
      assert.equal(0, running.n) -- close waited for everything
      for k = 1, NSUB do subs[k]:join() end
      chaos:join()
      assert.equal(0, started_after_close)
      assert.equal(N, running.max)
      local yes, no = 0, 0
      for k = 1, NSUB do
        assert(result[k] ~= nil, "submitter " .. k .. " did not return")
        if result[k] then
          yes = yes + 1
          assert(ran[k] == 1, "ran " .. tostring(ran[k]) .. " times")
        else
          no = no + 1
          assert(ran[k] == nil, "refused but ran")
        end
      end
      assert.is_true(yes > 0 and no > 0)
    end))
end)

describe("weft.parallel", function()
  -- run(p, ctx, n [, delay]) -> calls {lo, hi, at}, err: process 1..n,
  -- each batch sleeping delay (default 1) under its context.
  local function run(p, ctx, n, delay)
    local calls = {}
    local err = p:process(ctx, n, function(lo, hi, c)
      calls[#calls + 1] = { lo, hi, weft.now() }
      weft.sleep(delay or 1, c)
    end)
    return calls, err
  end

  it("covers 1..n exactly once in batches with inclusive bounds",
    vtask(function()
      local p = weft.parallel { concurrency = 2, batch_size = 3 }
      local calls, err = run(p, weft.context(), 10)
      assert.is_nil(err)
      table.sort(calls, function(a, b) return a[1] < b[1] end)
      assert.same({ { 1, 3, 0 }, { 4, 6, 0 }, { 7, 9, 1 }, { 10, 10, 1 } },
        calls)
      assert.equal(2, weft.now())
    end))

  it("batch_size defaults to 1; n = 0 calls nothing", vtask(function()
    local p = weft.parallel { concurrency = 4 }
    local calls, err = run(p, weft.context(), 5)
    assert.is_nil(err)
    assert.equal(5, #calls)
    for i, c in ipairs(calls) do
      assert.same({ i, i }, { c[1], c[2] })
    end
    calls, err = run(p, weft.context(), 0)
    assert.is_nil(err)
    assert.same({}, calls)
    -- A batch larger than n is one call.
    calls = run(weft.parallel { concurrency = 1, batch_size = 100 },
      weft.context(), 7)
    assert.same({ { 1, 7, 2 } }, calls)
  end))

  it("runs at most concurrency batches at once", vtask(function()
    local p = weft.parallel { concurrency = 3, batch_size = 2 }
    local running = gauge()
    local err = p:process(weft.context(), 20, function()
      running.enter()
      weft.sleep(1)
      running.leave()
    end)
    assert.is_nil(err)
    assert.equal(3, running.max)
    assert.equal(4, weft.now()) -- 10 batches, 3 at a time
  end))

  it("returns the first error of fn; the others see their context " ..
    "cancelled by it", vtask(function()
      local p = weft.parallel { concurrency = 4 }
      local boom = weft.error("boom", "batch 3")
      local seen = {}
      local err = p:process(weft.context(), 4, function(lo, _, c)
        if lo == 3 then
          weft.sleep(1)
          return nil, boom
        end
        local _, e = weft.sleep(10, c)
        seen[lo] = e
      end)
      assert.equal(boom, err)
      assert.equal(1, weft.now())
      for _, lo in ipairs { 1, 2, 4 } do
        assert.equal("canceled", seen[lo].kind)
        assert.equal(boom, seen[lo].cause)
      end
    end))

  it("a raised error is returned as a bug", vtask(function()
    local p = weft.parallel { concurrency = 2 }
    local err = p:process(weft.context(), 3, function(lo)
      if lo == 2 then error("bad batch", 0) end
    end)
    assert.equal("bug", err.kind)
    assert.equal("bad batch", err.value)
  end))

  it("returns ctx's error when it is cancelled", vtask(function()
    -- Every batch has started when ctx is cancelled (see the next spec).
    local p = weft.parallel { concurrency = 10 }
    local ctx, cancel = weft.with_cancel()
    weft.go(function() weft.sleep(0.5); cancel("enough") end)
    local calls, err = run(p, ctx, 10)
    assert.equal(ctx:err(), err)
    assert.equal("enough", err.cause)
    assert.equal(0.5, weft.now())
    assert.equal(10, #calls)
    -- Already cancelled: no batch at all.
    calls, err = run(p, ctx, 10)
    assert.same({}, calls)
    assert.equal(ctx:err(), err)
  end))

  it("starts no new batch once ctx is cancelled, even while waiting for " ..
    "a slot", vtask(function()
      -- One batch at a time: when ctx is cancelled at 0.5, batch 1 runs
      -- and process waits for its slot to start batch 2. Batch 1 stops at
      -- once (it sleeps under its context); batch 2 must not start.
      local p = weft.parallel { concurrency = 1 }
      local ctx, cancel = weft.with_cancel()
      weft.go(function() weft.sleep(0.5); cancel("enough") end)
      local calls, err = run(p, ctx, 5)
      assert.equal(ctx:err(), err)
      assert.equal(0.5, weft.now())
      assert.same({ { 1, 1, 0 } }, calls)
    end))

  it("returns only after every batch it started has returned, even when " ..
    "the calling task is cancelled", vtask(function()
      local p = weft.parallel { concurrency = 2 }
      local finished = 0
      local t = weft.go(function()
        local err = p:process(weft.context(), 2, function(_, _, c)
          weft.sleep(10, c)
          -- Clean-up that must not be cut short (shielded).
          weft.sleep(2, weft.background())
          finished = finished + 1
        end)
        return err, finished, weft.now()
      end)
      weft.sleep(1)
      t:cancel("stop")
      local err, fin, at = t:join()
      assert.equal("canceled", err.kind)
      assert.equal(2, fin)
      assert.equal(3, at)
    end))

  it("rejects bad arguments", vtask(function()
    assert.has_error(function() weft.parallel() end,
      "bad argument #1 to 'parallel' (table expected, got nil)")
    assert.has_error(function() weft.parallel {} end,
      "bad argument #1 to 'parallel' (field 'concurrency': positive " ..
      "integer expected, got nil)")
    assert.has_error(function() weft.parallel { concurrency = 0 } end,
      "bad argument #1 to 'parallel' (field 'concurrency': positive " ..
      "integer expected, got 0)")
    assert.has_error(function() weft.parallel { concurrency = 1.5 } end,
      "bad argument #1 to 'parallel' (field 'concurrency': positive " ..
      "integer expected, got 1.5)")
    assert.has_error(function() weft.parallel { concurrency = "2" } end,
      "bad argument #1 to 'parallel' (field 'concurrency': positive " ..
      "integer expected, got string)")
    assert.has_error(function()
      weft.parallel { concurrency = 1, batch_size = 0 }
    end, "bad argument #1 to 'parallel' (field 'batch_size': positive " ..
      "integer expected, got 0)")
    assert.has_error(function()
      weft.parallel { concurrency = 1, batch_size = -2 }
    end, "bad argument #1 to 'parallel' (field 'batch_size': positive " ..
      "integer expected, got -2)")
    local p = weft.parallel { concurrency = 1 }
    local ctx = weft.context()
    local f = function() end
    assert.has_error(function() p:process(nil, 1, f) end,
      "bad argument #1 to 'process' (weft.ctx expected, got nil)")
    assert.has_error(function() p:process(ctx, -1, f) end,
      "bad argument #2 to 'process' (non-negative integer expected, got -1)")
    assert.has_error(function() p:process(ctx, 1.5, f) end,
      "bad argument #2 to 'process' (non-negative integer expected, got 1.5)")
    assert.has_error(function() p:process(ctx, "3", f) end,
      "bad argument #2 to 'process' (non-negative integer expected, " ..
      "got string)")
    assert.has_error(function() p:process(ctx, 3) end,
      "bad argument #3 to 'process' (function expected, got nil)")
    assert.has_error(function() p.process({}, ctx, 1, f) end,
      "bad argument #1 to 'process' (weft.parallel expected, got table)")
  end))

  it("stress: 12 runs over 800 items (about 5,000 batches), random sizes, " ..
    "failures and cancellation: each index at most once, all of them when " ..
    "nothing failed, at most concurrency batches at once", vtask(function()
      math.randomseed(1234)
      local NRUNS, N = 12, 800
      local runs, tasks, cancels = {}, {}, {}
      for r = 1, NRUNS do
        local st = { concurrency = math.random(8), batch = math.random(4),
          running = gauge(), seen = {}, bad = {}, errs = {} }
        st.fail_at = r % 4 == 0 and math.random(N) or nil
        runs[r] = st
        local ctx, cancel = weft.with_cancel()
        cancels[r] = cancel
        tasks[r] = weft.go(function()
          local p = weft.parallel { concurrency = st.concurrency,
            batch_size = st.batch }
          st.err = p:process(ctx, N, function(lo, hi, c)
            st.running.enter()
            st.calls = (st.calls or 0) + 1
            -- Well-formed batch: aligned, inclusive, not empty, in 1..N.
            if (lo - 1) % st.batch ~= 0 or lo < 1 or lo > N or
              hi ~= math.min(lo + st.batch - 1, N) then
              st.bad[#st.bad + 1] = { lo, hi }
            end
            for i = lo, hi do st.seen[i] = (st.seen[i] or 0) + 1 end
            local ok, err = weft.sleep(math.random(10) * 0.01, c)
            st.running.leave()
            if ok and st.fail_at and lo <= st.fail_at and st.fail_at <= hi then
              err = weft.error("item", "item %d failed", st.fail_at)
            elseif ok then
              return
            end
            st.errs[#st.errs + 1] = err -- every failure, in order
            return nil, err
          end)
          -- Chaos may strike after process returned: that is no failure.
          st.cancelled = ctx:err()
        end)
      end
      local chaos = weft.go(function()
        for _ = 1, 4 do
          weft.sleep(math.random(100) * 0.01)
          cancels[math.random(NRUNS)]("chaos")
        end
      end)
      for r = 1, NRUNS do tasks[r]:join() end
      chaos:join()

      local complete, cancelled = 0, 0
      for r, st in ipairs(runs) do
        local what = "run " .. r
        assert(#st.bad == 0, what .. ": malformed batch")
        assert(st.running.max <= st.concurrency, what .. ": too many")
        for i, n in pairs(st.seen) do
          assert(n == 1, what .. ": item " .. i .. " seen " .. n .. " times")
        end
        if st.cancelled then cancelled = cancelled + 1 end
        if st.errs[1] then
          assert(key(st.err) == key(st.errs[1]), what ..
            ": not the first error")
          assert.same(count(st.errs), count(all_errors(st.err)))
        elseif st.cancelled then
          assert(st.err == st.cancelled, what .. ": not the context's error")
        else
          complete = complete + 1
          assert(st.err == nil, what .. ": " .. tostring(st.err))
          for i = 1, N do assert(st.seen[i] == 1, what .. ": missed " .. i) end
          assert.equal(math.ceil(N / st.batch), st.calls)
          assert(st.running.max == st.concurrency, what .. ": below limit")
        end
      end
      assert.is_true(complete > 0 and cancelled > 0)
    end))
end)

describe("weft.concurrently", function()
  it("runs every function at once, each with a context, and returns nil " ..
    "when all succeed", vtask(function()
      local got = {}
      local function f(i)
        return function(ctx)
          weft.sleep(i)
          got[i] = { ctx = ctx, at = weft.now() }
        end
      end
      assert.is_nil(weft.concurrently(f(1), f(2), f(3)))
      assert.equal(3, weft.now())
      for i = 1, 3 do
        assert.equal(i, got[i].at)
        assert.equal("weft.ctx", getmetatable(got[i].ctx).__name)
      end
      assert.is_nil(weft.concurrently())
    end))

  it("returns the first error once every function has finished; the " ..
    "later ones on err.others", vtask(function()
      local e1, e2 = weft.error("a", "first"), weft.error("b", "second")
      local finished = 0
      local err = weft.concurrently(
        function()
          weft.sleep(2, weft.background())
          finished = finished + 1
          return nil, e2
        end,
        function()
          weft.sleep(1)
          finished = finished + 1
          return nil, e1
        end,
        function()
          weft.sleep(3, weft.background())
          finished = finished + 1
        end)
      assert.equal(e1, err.original)
      assert.same({ e2 }, err.others)
      assert.equal(3, finished)
      assert.equal(3, weft.now())
    end))

  it("the first failure cancels the others' context", vtask(function()
    local seen
    local err = weft.concurrently(
      function(ctx)
        local _, e = weft.sleep(10, ctx)
        seen = e
      end,
      function() weft.sleep(1); error("bang", 0) end)
    assert.equal("bug", err.kind)
    assert.equal("bang", err.value)
    assert.equal("canceled", seen.kind)
    assert.equal(err, seen.cause)
    assert.equal(1, weft.now())
  end))

  it("its functions' errors do not fail the caller", vtask(function()
    local t = weft.go(function()
      local err = weft.concurrently(function() error("x") end,
        function() return nil, "y" end)
      return err ~= nil
    end)
    assert.is_true(t:join())
  end))

  it("waits for every function even when the caller is cancelled",
    vtask(function()
      local finished = 0
      local t = weft.go(function()
        weft.concurrently(
          function(ctx)
            weft.sleep(10, ctx)
            weft.sleep(2, weft.background()) -- clean-up, shielded
            finished = finished + 1
          end,
          function(ctx)
            weft.sleep(10, ctx)
            finished = finished + 1
          end)
        return finished, weft.now()
      end)
      weft.sleep(1)
      t:cancel("stop")
      local fin, at = t:join()
      assert.equal(2, fin)
      assert.equal(3, at)
    end))

  it("rejects arguments that are not functions, before running any",
    vtask(function()
      local ran = false
      local f = function() ran = true end
      assert.has_error(function() weft.concurrently(f, 5) end,
        "bad argument #2 to 'concurrently' (function expected, got number)")
      assert.has_error(function() weft.concurrently(nil, f) end,
        "bad argument #1 to 'concurrently' (function expected, got nil)")
      assert.has_error(function() weft.concurrently(f, f, nil) end,
        "bad argument #3 to 'concurrently' (function expected, got nil)")
      weft.sleep(1)
      assert.is_false(ran)
    end))

  it("stress: 300 callers of 10 functions, random failures and callers " ..
    "cancelled at random: each returns after all its functions, with the " ..
    "first error", vtask(function()
      math.randomseed(99)
      local NCALL, PER = 300, 10
      local calls, callers = {}, {}
      for c = 1, NCALL do
        local st = { finished = 0, fails = {} }
        calls[c] = st
        local fns = {}
        for j = 1, PER do
          fns[j] = function(ctx)
            local ok, err = weft.sleep(math.random(100) * 0.01, ctx)
            if not ok then
              st.fails[#st.fails + 1] = err
              st.finished = st.finished + 1
              return nil, err
            end
            st.finished = st.finished + 1
            if math.random(30) == 1 then
              local e = weft.error("fn", "%d/%d failed", c, j)
              st.fails[#st.fails + 1] = e
              return nil, e
            end
          end
        end
        callers[c] = weft.go(function()
          st.err = weft.concurrently(unpack(fns))
          st.finished_at_return = st.finished
        end)
      end
      local chaos = weft.go(function()
        for _ = 1, 60 do
          weft.sleep(math.random(10) * 0.01)
          callers[math.random(NCALL)]:cancel("chaos")
        end
      end)
      for c = 1, NCALL do callers[c]:join() end
      chaos:join()
      local failed, fine = 0, 0
      for c, st in ipairs(calls) do
        local what = "caller " .. c
        assert(st.finished == PER, what .. ": a function did not finish")
        assert(st.finished_at_return == PER,
          what .. ": returned before all its functions finished")
        if #st.fails == 0 then
          fine = fine + 1
          assert(st.err == nil, what)
        else
          failed = failed + 1
          assert(key(st.err) == key(st.fails[1]), what ..
            ": not the first error")
          assert.same(count(st.fails), count(all_errors(st.err)))
        end
      end
      assert.is_true(failed > 0 and fine > 0)
    end))
end)

describe("weft.jobs", function()
  it("a job outlives the request task that started it, and runs under " ..
    "the root context", vtask(function()
      local root = weft.with_cancel()
      local jobs = weft.jobs(root) -- this task is the long-lived server
      local job = {}
      local request = weft.go(function()
        local req = weft.with_timeout(0.5)
        local ok = jobs:go(req, function(ctx)
          job.ctx = ctx
          job.ok = weft.sleep(5, ctx) -- far longer than the request lives
          job.at = weft.now()
        end)
        return ok, weft.now()
      end)
      local ok, answered_at = request:join()
      assert.is_true(ok)
      assert.equal(0, answered_at)
      assert.equal(0, weft.now()) -- the request finished without its job
      assert.is_nil(jobs:wait())
      assert.equal(root, job.ctx)
      assert.is_true(job.ok)
      assert.equal(5, job.at)
    end))

  it("cancelling the root context stops the jobs; wait returns their " ..
    "errors", vtask(function()
      local root, shutdown = weft.with_cancel()
      local jobs = weft.jobs(root)
      for _ = 1, 3 do
        assert.is_true(jobs:go(weft.context(), function(ctx)
          local ok, err = weft.sleep(10, ctx)
          if not ok then return nil, err end
        end))
      end
      weft.sleep(1)
      shutdown("shutdown")
      local err = jobs:wait()
      assert.equal(1, weft.now())
      assert.equal("canceled", err.kind)
      assert.equal("shutdown", err.cause)
      assert.equal(2, #err.others)
    end))

  it("go returns false and runs nothing when the request or the root " ..
    "context is done", vtask(function()
      local root, shutdown = weft.with_cancel()
      local jobs = weft.jobs(root)
      local ran = false
      local req, cancel = weft.with_cancel()
      cancel()
      assert.is_false(jobs:go(req, function() ran = true end))
      shutdown()
      assert.is_false(jobs:go(weft.context(), function() ran = true end))
      weft.sleep(1)
      assert.is_false(ran)
      assert.is_nil(jobs:wait())
    end))

  it("with a limit, at most limit jobs run at once; go waits for a slot",
    vtask(function()
      local jobs = weft.jobs((weft.with_cancel()), { limit = 2 })
      local running = gauge()
      local returned_at = {}
      for i = 1, 5 do
        assert.is_true(jobs:go(weft.context(), function()
          running.enter()
          weft.sleep(1)
          running.leave()
        end))
        returned_at[i] = weft.now()
      end
      assert.same({ 0, 0, 1, 1, 2 }, returned_at)
      assert.is_nil(jobs:wait())
      assert.equal(2, running.max)
      assert.equal(3, weft.now())
    end))

  it("go waiting for a slot returns false when the request is cancelled",
    vtask(function()
      local jobs = weft.jobs((weft.with_cancel()), { limit = 1 })
      local ran = {}
      jobs:go(weft.context(), function() weft.sleep(5); ran[1] = true end)
      local ok = jobs:go(weft.with_timeout(2), function() ran[2] = true end)
      assert.is_false(ok)
      assert.equal(2, weft.now())
      assert.is_nil(jobs:wait())
      assert.same({ true }, ran)
    end))

  it("go waiting for a slot returns false as soon as the root context is " ..
    "done", vtask(function()
      local root, shutdown = weft.with_cancel()
      local jobs = weft.jobs(root, { limit = 1 })
      local ran = {}
      -- A job that does not stop early (it ignores the root context).
      jobs:go(weft.context(), function()
        weft.sleep(10, weft.background())
        ran[1] = true
      end)
      local request = weft.go(function()
        local ok = jobs:go(weft.context(), function() ran[2] = true end)
        return { ok = ok, at = weft.now() }
      end)
      weft.sleep(1)
      shutdown("shutdown")
      local r = request:join()
      assert.is_false(r.ok)
      assert.equal(1, r.at)
      assert.is_nil(jobs:wait())
      assert.same({ true }, ran)
    end))

  it("wait returns the first error, later ones on err.others; job errors " ..
    "fail neither the request nor the server", vtask(function()
      local e1, e2 = weft.error("j", "first"), weft.error("j", "second")
      local jobs
      local server = weft.go(function()
        jobs = weft.jobs((weft.with_cancel()))
        local request = weft.go(function()
          jobs:go(weft.context(), function()
            weft.sleep(2)
            return nil, e2
          end)
          jobs:go(weft.context(), function() weft.sleep(1); error(e1) end)
          jobs:go(weft.context(), function() weft.sleep(3); error("raw", 0) end)
          return "answered"
        end)
        assert(request:join() == "answered")
        local err = jobs:wait()
        return err, weft.now()
      end)
      local err, at = server:join()
      assert.equal(3, at)
      assert.equal(e1, err.original)
      assert.equal(2, #err.others)
      assert.equal(e2, err.others[1])
      assert.equal("bug", err.others[2].kind)
      assert.equal("raw", err.others[2].value)
      assert.equal("weft.jobs: 0 running", tostring(jobs))
    end))

  it("wait(ctx) returns ctx's error when it is cancelled first",
    vtask(function()
      local jobs = weft.jobs((weft.with_cancel()))
      jobs:go(weft.context(), function() weft.sleep(5) end)
      local err = jobs:wait(weft.with_timeout(1))
      assert.equal("deadline", err.kind)
      assert.equal(1, weft.now())
      assert.equal("weft.jobs: 1 running", tostring(jobs))
      assert.is_nil(jobs:wait())
      assert.equal(5, weft.now())
    end))

  it("go returns false once the task that made the jobs has finished",
    vtask(function()
      local server = weft.go(function()
        return weft.jobs((weft.with_cancel()))
      end)
      local jobs = server:join()
      local ran = false
      assert.is_false(jobs:go(weft.context(), function() ran = true end))
      weft.sleep(1)
      assert.is_false(ran)
      assert.is_nil(jobs:wait())
    end))

  it("rejects bad arguments", vtask(function()
    local root = weft.with_cancel()
    assert.has_error(function() weft.jobs() end,
      "bad argument #1 to 'jobs' (weft.ctx expected, got nil)")
    assert.has_error(function() weft.jobs(root, 5) end,
      "bad argument #2 to 'jobs' (table expected, got number)")
    assert.has_error(function() weft.jobs(root, { limit = 1.5 }) end,
      "bad argument #2 to 'jobs' (field 'limit': integer expected, got 1.5)")
    local jobs = weft.jobs(root)
    assert.has_error(function() jobs:go(nil, print) end,
      "bad argument #1 to 'go' (weft.ctx expected, got nil)")
    assert.has_error(function() jobs:go(root, "f") end,
      "bad argument #2 to 'go' (function expected, got string)")
    assert.has_error(function() jobs.go(root, print) end,
      "bad argument #1 to 'go' (weft.jobs expected, got table)")
    assert.has_error(function() jobs.wait() end,
      "bad argument #1 to 'wait' (weft.jobs expected, got nil)")
    assert.has_error(function() jobs:wait(5) end,
      "bad argument #1 to 'wait' (weft.ctx expected, got number)")
  end))

  it("stress: 3,000 requests start jobs under a limit, requests cancelled " ..
    "at random, then shutdown: limit holds, go is true exactly for what " ..
    "ran, every error is accounted for", vtask(function()
      math.randomseed(31337)
      local NREQ, LIMIT = 3000, 8
      local root, shutdown = weft.with_cancel()
      local jobs = weft.jobs(root, { limit = LIMIT })
      local running = gauge()
      local result, ran, fails, cancels = {}, {}, {}, {}
      local outlived, requests = 0, {}
      local shutdown_at

      local function job(k)
        return function(ctx)
          running.enter()
          ran[k] = (ran[k] or 0) + 1
          local ok, err = weft.sleep(math.random(20) * 0.01, ctx)
          running.leave()
          if requests[k]:done() then outlived = outlived + 1 end
          if not ok then
            fails[#fails + 1] = err
            return nil, err
          end
          if math.random(25) == 1 then
            local e = weft.error("job", "job %d failed", k)
            fails[#fails + 1] = e
            return nil, e
          end
        end
      end

      local spawner = weft.go(function()
        for k = 1, NREQ do
          local req, cancel = weft.with_cancel()
          cancels[k] = cancel
          requests[k] = weft.go(function()
            result[k] = jobs:go(req, job(k))
            if shutdown_at then
              assert(not result[k], "a job started after shutdown")
            end
          end)
          if k % 10 == 0 then weft.sleep(0.01) end
        end
      end)
      local chaos = weft.go(function()
        for _ = 1, 1000 do
          weft.sleep(math.random(3) * 0.001)
          if #cancels > 0 then cancels[math.random(#cancels)]("chaos") end
        end
        weft.sleep(1)
        shutdown_at = weft.now()
        shutdown("shutdown")
      end)
      assert.is_true(spawner:join())
      chaos:join()
      for k = 1, NREQ do requests[k]:join() end
      local err = jobs:wait()

      assert.equal(LIMIT, running.max)
      assert.equal(0, running.n)
      local yes, no = 0, 0
      for k = 1, NREQ do
        if result[k] then
          yes = yes + 1
          assert(ran[k] == 1, "job " .. k .. " ran " .. tostring(ran[k]))
        else
          no = no + 1
          assert(ran[k] == nil, "job " .. k .. " refused but ran")
        end
      end
      assert.is_true(yes > 0 and no > 0)
      -- A request returns right after starting its job: each job ends
      -- after its request did.
      assert.equal(yes, outlived)
      assert.is_true(#fails > 0)
      assert.equal(key(fails[1]), key(err))
      assert.same(count(fails), count(all_errors(err)))
    end))
end)
