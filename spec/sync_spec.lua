-- weft.mutex, weft.semaphore, weft.once, weft.fence and weft.locked.
local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

-- join(t): wait for t, which must succeed: a task that failed (a failed
-- assertion in it, say) fails the spec, as the joiner takes its error.
local function join(t)
  local ok, err = t:join()
  if ok or err == nil then return end
  -- A task that raised before we joined it cancelled us: our join fails,
  -- and its error is the cause.
  while err.kind == "canceled" and weft.errors.is_error(err.cause) do
    err = err.cause
  end
  error(err.kind == "bug" and err.value or tostring(err), 0)
end

-- A context that is already cancelled.
local function cancelled()
  local ctx, cancel = weft.with_cancel()
  cancel("too late")
  return ctx
end

-- chaos(n, ctxs, cancels, at): a task that cancels n contexts picked at
-- random, a few per instant of virtual time; at[i] records when ctxs[i] was
-- cancelled (if it was not done already), so waits can be checked for
-- promptness.
local function chaos(n, ctxs, cancels, at)
  return weft.go(function()
    for _ = 1, n do
      local i = math.random(#cancels)
      if not ctxs[i]:err() then at[i] = weft.now() end
      cancels[i]("chaos")
      if math.random(4) == 1 then weft.sleep(0.001) else weft.yield() end
    end
  end)
end

-- failed_at(err, ctx, t0, at) -> when a wait that started at t0 under ctx
-- should have failed with err: at once if ctx was already done, else when
-- it was cancelled or its deadline passed.
local function failed_at(err, ctx, t0, at)
  local c = err.kind == "deadline" and ctx:deadline() or at
  assert(c, "failed with " .. tostring(err) .. " but never cancelled")
  return math.max(t0, c)
end

describe("weft.mutex", function()
  it("a second locker waits until the holder unlocks", vtask(function()
    local m = weft.mutex()
    assert.is_true(m:lock())
    local at
    local t = weft.go(function()
      assert.is_true(m:lock())
      at = weft.now()
      m:unlock()
    end)
    weft.sleep(1)
    assert.is_nil(at)
    m:unlock()
    join(t)
    assert.equal(1, at)
    assert.is_true(m:try_lock()) -- left free
    m:unlock()
  end))

  it("try_lock takes a free mutex and never waits", vtask(function()
    local m = weft.mutex()
    assert.matches("^weft.mutex: #%d+ %(unlocked%)$", tostring(m))
    assert.is_true(m:try_lock())
    assert.matches("%(locked%)$", tostring(m))
    assert.is_false(m:try_lock())
    m:unlock()
    assert.is_true(m:try_lock())
    m:unlock()
  end))

  it("serves waiters first-in first-out, handing the lock over directly",
    vtask(function()
      local m = weft.mutex()
      m:lock()
      local order = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = weft.go(function()
          assert.is_true(m:lock())
          order[#order + 1] = { i, weft.now() }
          weft.sleep(1) -- hold it a while
          m:unlock()
        end)
      end
      weft.yield() -- all five queue, in order
      m:unlock()
      -- Handed to task 1 already, though it has not run yet: no barging.
      assert.is_false(m:try_lock())
      for i = 1, 5 do join(ts[i]) end
      assert.same({ { 1, 0 }, { 2, 1 }, { 3, 2 }, { 4, 3 }, { 5, 4 } }, order)
    end))

  it("with runs fn holding the lock and returns its results",
    vtask(function()
      local m = weft.mutex()
      local r = { m:with(function(a, b)
        assert.is_false(m:try_lock())
        return a + b, nil, "x"
      end, 1, 2) }
      assert.same({ 3, nil, "x" }, r)
      assert.is_true(m:try_lock()) -- released
      m:unlock()
      local ctx = weft.with_cancel()
      assert.equal("y", m:with(ctx, function(v) return v end, "y"))
    end))

  it("with unlocks when fn raises, and raises the error again",
    vtask(function()
      local m = weft.mutex()
      local ok, err = pcall(m.with, m, function() error("boom", 0) end)
      assert.is_false(ok)
      assert.equal("bug", err.kind)
      assert.equal("boom", err.value)
      assert.is_true(m:try_lock())
      m:unlock()
    end))

  it("a lock cancelled while waiting returns nil, err at once and leaves " ..
    "no waiter behind", vtask(function()
      local m = weft.mutex()
      m:lock()
      local ctx, cancel = weft.with_cancel()
      local res, at
      local b = weft.go(function()
        res = { m:lock(ctx) }
        at = weft.now()
      end)
      local got
      local c = weft.go(function()
        assert.is_true(m:lock())
        got = weft.now()
        m:unlock()
      end)
      weft.sleep(1)
      cancel("gave up")
      join(b)
      assert.equal(1, at)
      assert.is_nil(res[1])
      assert.equal("canceled", res[2].kind)
      assert.equal("gave up", res[2].cause)
      -- The unlock skips the dead waiter and goes to c.
      weft.sleep(1)
      m:unlock()
      join(c)
      assert.equal(2, got)
      assert.is_true(m:try_lock())
      m:unlock()
    end))

  it("unlock frees the mutex when every waiter was cancelled",
    vtask(function()
      local m = weft.mutex()
      m:lock()
      local ctx, cancel = weft.with_cancel()
      local ts = {}
      for i = 1, 10 do ts[i] = weft.go(function() return m:lock(ctx) end) end
      weft.yield()
      cancel()
      for i = 1, 10 do
        local ok, err = ts[i]:join()
        assert.is_nil(ok)
        assert.equal("canceled", err.kind)
      end
      m:unlock()
      assert.is_true(m:try_lock())
      m:unlock()
    end))

  it("a lock under a deadline fails with kind deadline exactly then",
    vtask(function()
      local m = weft.mutex()
      m:lock()
      local ok, err = m:lock(weft.with_timeout(2.5))
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(2.5, weft.now())
      m:unlock()
    end))

  it("cancelling a task ends a lock waiting under the task's own context",
    vtask(function()
      local m = weft.mutex()
      m:lock()
      local res
      local t = weft.go(function() res = { m:lock() } end)
      weft.yield()
      t:cancel("stop")
      join(t)
      assert.is_nil(res[1])
      assert.equal("canceled", res[2].kind)
      m:unlock()
      assert.is_true(m:try_lock()) -- no waiter behind
      m:unlock()
    end))

  it("lock and with under a cancelled context fail at once, even when the " ..
    "mutex is free", vtask(function()
      local m = weft.mutex()
      local ok, err = m:lock(cancelled())
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      local ran = false
      ok, err = m:with(weft.with_deadline(weft.now() - 1),
        function() ran = true end)
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.is_false(ran)
      assert.equal(0, weft.now())
      assert.is_true(m:try_lock()) -- not taken
      m:unlock()
    end))

  it("rejects misuse: unlock of an unlocked mutex, bad arguments, wrong self",
    vtask(function()
      local m = weft.mutex()
      assert.has_error(function() m:unlock() end,
        "unlock of unlocked weft.mutex")
      assert.has_error(function() m:lock(5) end,
        "bad argument #1 to 'lock' (weft.ctx expected, got number)")
      assert.has_error(function() m:with() end,
        "bad argument #2 to 'with' (function expected, got nil)")
      assert.has_error(function() m:with(nil, 5) end,
        "bad argument #2 to 'with' (function expected, got number)")
      assert.has_error(function() m.lock({}) end,
        "bad argument #1 to 'lock' (weft.mutex expected, got table)")
      assert.has_error(function() m.unlock("x") end,
        "bad argument #1 to 'unlock' (weft.mutex expected, got string)")
      assert.has_error(function() m.try_lock(weft.semaphore(1)) end,
        "bad argument #1 to 'try_lock' (weft.mutex expected, got table)")
      assert.has_error(function() m.with(nil, print) end,
        "bad argument #1 to 'with' (weft.mutex expected, got nil)")
      -- None of that changed the mutex.
      assert.is_true(m:try_lock())
      m:unlock()
    end))

  it("with names itself when its context argument is bad", vtask(function()
    local m = weft.mutex()
    assert.has_error(function() m:with(5, print) end,
      "bad argument #1 to 'with' (weft.ctx expected, got number)")
  end))

  it("stress: 3,000 tasks under random cancellation never share the lock, " ..
    "are served in order and fail promptly", vtask(function()
      math.randomseed(20261123)
      local N = 3000
      local m = weft.mutex()
      local ctxs, cancels, at = {}, {}, {}
      local inside, seq, last = 0, 0, 0
      local nok, nfail = 0, 0
      local ts = {}
      for i = 1, N do
        if i % 4 == 0 then
          ctxs[i], cancels[i] = weft.with_timeout(math.random() * 3)
        else
          ctxs[i], cancels[i] = weft.with_cancel()
        end
        local ctx = ctxs[i]
        ts[i] = weft.go(function()
          for _ = 1, 3 do
            seq = seq + 1
            local my, t0, pre = seq, weft.now(), ctx:err()
            local ok, err = m:lock(ctx)
            assert(not (ok and pre), "locked under a cancelled context")
            if not ok then
              assert(err.kind == "canceled" or err.kind == "deadline",
                tostring(err))
              assert(weft.now() == failed_at(err, ctx, t0, at[i]),
                "cancelled lock did not return promptly")
              nfail = nfail + 1
              return
            end
            -- FIFO: owners come in the order they called lock.
            assert(my > last, "lock served out of order")
            last = my
            inside = inside + 1
            assert(inside == 1, "two tasks hold the mutex")
            if math.random(2) == 1 then weft.yield() else weft.sleep(0.001) end
            inside = inside - 1
            nok = nok + 1
            m:unlock()
          end
        end)
      end
      local c = chaos(N / 2, ctxs, cancels, at)
      for i = 1, N do join(ts[i]) end
      join(c)
      assert.is_true(nok > 1000 and nfail > 500,
        ("%d locks, %d failures"):format(nok, nfail))
      assert.is_true(m:try_lock()) -- free, and nobody waits
      m:unlock()
    end))
end)

describe("weft.semaphore", function()
  -- units(s) -> units taken, as tostring shows them.
  local function units(s)
    return tonumber(tostring(s):match("%((%d+) of %d+ held%)"))
  end

  it("acquire takes free units, release gives them back", vtask(function()
    local s = weft.semaphore(3)
    assert.matches("^weft.semaphore: #%d+ %(0 of 3 held%)$", tostring(s))
    assert.is_true(s:acquire(2))
    assert.is_true(s:acquire()) -- one by default
    assert.is_true(s:acquire(0))
    assert.matches("%(3 of 3 held%)$", tostring(s))
    assert.is_false(s:try_acquire())
    s:release(2)
    assert.is_false(s:try_acquire(3))
    assert.is_true(s:try_acquire(2))
    s:release(2)
    s:release()
    assert.is_true(s:try_acquire(3))
    s:release(3)
    assert.equal(0, weft.now())
  end))

  it("release wakes waiters in FIFO order, as many as fit", vtask(function()
    local s = weft.semaphore(3)
    s:acquire(3)
    local order = {}
    local function waiter(name, k, hold)
      return weft.go(function()
        assert.is_true(s:acquire(k))
        order[#order + 1] = { name, weft.now() }
        weft.sleep(hold)
        s:release(k)
      end)
    end
    local ts = { waiter("a", 1, 1), waiter("b", 2, 5), waiter("c", 1, 1) }
    weft.yield()
    weft.sleep(1)
    s:release(3) -- a and b fit (3 units); c waits for a's unit
    for i = 1, 3 do join(ts[i]) end
    assert.same({ { "a", 1 }, { "b", 1 }, { "c", 2 } }, order)
    assert.is_true(s:try_acquire(3))
    s:release(3)
  end))

  it("a large request at the head blocks smaller ones behind it until it " ..
    "fits", vtask(function()
      local s = weft.semaphore(4)
      s:acquire(3)
      local order = {}
      local big = weft.go(function()
        assert.is_true(s:acquire(3))
        order[#order + 1] = { "big", weft.now() }
        s:release(3)
      end)
      weft.yield()
      local small = weft.go(function()
        assert.is_true(s:acquire(1))
        order[#order + 1] = { "small", weft.now() }
        s:release(1)
      end)
      weft.yield()
      -- One unit is free, but small waits behind big, and so does
      -- try_acquire: nobody jumps the queue.
      assert.same({}, order)
      assert.is_false(s:try_acquire(1))
      weft.sleep(1)
      s:release(1) -- two free: still not enough for big
      weft.sleep(1)
      assert.same({}, order)
      s:release(2)
      join(big)
      join(small)
      assert.same({ { "big", 2 }, { "small", 2 } }, order)
      assert.is_true(s:try_acquire(4))
      s:release(4)
    end))

  it("a waiter cancelled while waiting returns nil, err at once and the " ..
    "next release goes to the next live waiter", vtask(function()
      local s = weft.semaphore(1)
      s:acquire()
      local ctx, cancel = weft.with_cancel()
      local res, at, got
      local b = weft.go(function()
        res = { s:acquire(ctx) }
        at = weft.now()
      end)
      local c = weft.go(function()
        assert.is_true(s:acquire())
        got = weft.now()
        s:release()
      end)
      weft.sleep(1)
      cancel("gave up")
      join(b)
      assert.equal(1, at)
      assert.is_nil(res[1])
      assert.equal("canceled", res[2].kind)
      assert.equal("gave up", res[2].cause)
      weft.sleep(1)
      s:release()
      join(c)
      assert.equal(2, got)
      assert.is_true(s:try_acquire())
      s:release()
    end))

  it("cancelling the head waiter lets smaller requests behind it proceed " ..
    "without a release", vtask(function()
      local s = weft.semaphore(4)
      s:acquire(3)
      local ctx, cancel = weft.with_cancel()
      local big = weft.go(function() return s:acquire(ctx, 3) end)
      weft.yield()
      local got
      local small = weft.go(function()
        assert.is_true(s:acquire(1))
        got = weft.now()
      end)
      weft.sleep(1)
      assert.is_nil(got)
      cancel()
      local ok, err = big:join()
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      join(small)
      assert.equal(1, got)
      s:release(4)
      assert.is_true(s:try_acquire(4))
      s:release(4)
    end))

  it("a waiter under a deadline fails with kind deadline exactly then",
    vtask(function()
      local s = weft.semaphore(2)
      s:acquire(2)
      local ok, err = s:acquire(weft.with_timeout(1.5), 1)
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(1.5, weft.now())
      s:release(2)
      assert.is_true(s:try_acquire(2))
      s:release(2)
    end))

  it("acquire under a cancelled context fails at once, even when the units " ..
    "are free", vtask(function()
      local s = weft.semaphore(5)
      local ok, err = s:acquire(cancelled(), 1)
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      ok, err = s:acquire((weft.with_deadline(weft.now() - 1)))
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(0, weft.now())
      assert.is_true(s:try_acquire(5)) -- nothing was taken
      s:release(5)
    end))

  it("a request larger than the size waits until its context is done, " ..
    "without blocking others", vtask(function()
      local s = weft.semaphore(2)
      local res, at
      local t = weft.go(function()
        res = { s:acquire(weft.with_timeout(5), 3) }
        at = weft.now()
      end)
      weft.yield()
      -- It is not in the queue: others get units meanwhile.
      assert.is_true(s:try_acquire(1))
      assert.is_true(s:acquire(1))
      s:release(2)
      join(t)
      assert.equal(5, at)
      assert.is_nil(res[1])
      assert.equal("deadline", res[2].kind)
      local _, err = weft.semaphore(0):acquire(cancelled(), 1)
      assert.equal("canceled", err.kind)
    end))

  it("rejects misuse: over-release, bad arguments, wrong self",
    vtask(function()
      local s = weft.semaphore(2)
      assert.has_error(function() s:release() end,
        "weft.semaphore: released more than held")
      s:acquire(1)
      assert.has_error(function() s:release(2) end,
        "weft.semaphore: released more than held")
      assert.has_error(function() weft.semaphore(-1) end,
        "bad argument #1 to 'semaphore' (non-negative integer expected, " ..
        "got -1)")
      assert.has_error(function() weft.semaphore(1.5) end,
        "bad argument #1 to 'semaphore' (non-negative integer expected, " ..
        "got 1.5)")
      assert.has_error(function() weft.semaphore() end,
        "bad argument #1 to 'semaphore' (non-negative integer expected, " ..
        "got nil)")
      local ctx = weft.with_cancel()
      assert.has_error(function() s:acquire(ctx, -1) end,
        "bad argument #2 to 'acquire' (non-negative integer expected, " ..
        "got -1)")
      assert.has_error(function() s:acquire(ctx, "x") end,
        "bad argument #2 to 'acquire' (non-negative integer expected, " ..
        "got string)")
      assert.has_error(function() s:acquire("x") end,
        "bad argument #1 to 'acquire' (weft.ctx expected, got string)")
      assert.has_error(function() s:try_acquire(-1) end,
        "bad argument #1 to 'try_acquire' (non-negative integer expected, " ..
        "got -1)")
      assert.has_error(function() s:release(1.5) end,
        "bad argument #1 to 'release' (non-negative integer expected, " ..
        "got 1.5)")
      assert.has_error(function() s.acquire({}) end,
        "bad argument #1 to 'acquire' (weft.semaphore expected, got table)")
      assert.has_error(function() s.try_acquire(nil, 1) end,
        "bad argument #1 to 'try_acquire' (weft.semaphore expected, got nil)")
      assert.has_error(function() s.release(weft.mutex()) end,
        "bad argument #1 to 'release' (weft.semaphore expected, got table)")
      -- None of that changed the count.
      s:release(1)
      assert.is_true(s:try_acquire(2))
      s:release(2)
    end))

  it("acquire numbers its weight argument #1 when the context is omitted",
    vtask(function()
      local s = weft.semaphore(2)
      assert.has_error(function() s:acquire(-1) end,
        "bad argument #1 to 'acquire' (non-negative integer expected, " ..
        "got -1)")
      assert.has_error(function() s:acquire(1.5) end,
        "bad argument #1 to 'acquire' (non-negative integer expected, " ..
        "got 1.5)")
    end))

  it("stress: 3,000 tasks with random weights under random cancellation " ..
    "never exceed the size, are served in order and fail promptly",
    vtask(function()
      math.randomseed(424242)
      local N, SIZE = 3000, 8
      local s = weft.semaphore(SIZE)
      local ctxs, cancels, at = {}, {}, {}
      local held, seq, last = 0, 0, 0
      local waiting = {} -- [task] = units, while queued in acquire
      local nok, nfail, nbig = 0, 0, 0
      local ts = {}
      for i = 1, N do
        if i % 4 == 0 then
          ctxs[i], cancels[i] = weft.with_timeout(math.random() * 3)
        else
          ctxs[i], cancels[i] = weft.with_cancel()
        end
        local ctx = ctxs[i]
        ts[i] = weft.go(function()
          for _ = 1, 2 do
            local k = math.random(3)
            local r = math.random(40)
            if r == 1 then
              k = SIZE -- large: must not starve
            elseif r == 2 and i % 4 == 0 then
              k = SIZE + 1 -- never fits: waits for the deadline
            end
            seq = seq + 1
            local my, t0 = seq, weft.now()
            -- try_acquire first, so that acquire below always queues and
            -- the order it is served in can be checked.
            local ok, err = s:try_acquire(k), nil
            if ok then
              -- It must not have jumped the queue: every live waiter was
              -- granted already (its units are taken, it has not run yet).
              local queued = 0
              for w, wk in pairs(waiting) do
                if not ctxs[w]:err() then queued = queued + wk end
              end
              assert(queued <= units(s) - k - held,
                "try_acquire jumped the queue")
            else
              if k <= SIZE then waiting[i] = k end
              local pre = ctx:err()
              ok, err = s:acquire(ctx, k)
              waiting[i] = nil
              assert(not (ok and pre), "acquired under a cancelled context")
              if ok then
                -- FIFO: waiters are served in the order they queued.
                assert(my > last, "acquire served out of order")
                last = my
              end
            end
            if not ok then
              assert(err.kind == "canceled" or err.kind == "deadline",
                tostring(err))
              assert(weft.now() == failed_at(err, ctx, t0, at[i]),
                "cancelled acquire did not return promptly")
              nfail = nfail + 1
              return
            end
            assert(k <= SIZE, "got more units than the semaphore has")
            held = held + k
            assert(held <= SIZE, "more units held than the size")
            if k == SIZE then nbig = nbig + 1 end
            if math.random(2) == 1 then weft.yield() else weft.sleep(0.001) end
            held = held - k
            nok = nok + 1
            s:release(k)
          end
        end)
      end
      local c = chaos(N / 2, ctxs, cancels, at)
      for i = 1, N do join(ts[i]) end
      join(c)
      assert.is_true(nok > 1000 and nfail > 500 and nbig > 10,
        ("%d acquired, %d failed, %d large"):format(nok, nfail, nbig))
      assert.equal(0, held)
      assert.is_true(s:try_acquire(SIZE)) -- all back, nobody waits
      s:release(SIZE)
    end))
end)

describe("weft.once", function()
  it("runs fn the first time only, with its arguments", vtask(function()
    local o = weft.once()
    local runs = {}
    assert.is_false(o:done())
    assert.is_true(o:call(function(a, b) runs[#runs + 1] = a + b end, 1, 2))
    assert.is_true(o:done())
    assert.is_true(o:call(function() runs[#runs + 1] = "again" end))
    assert.same({ 3 }, runs)
  end))

  it("callers that come while fn runs wait for it to finish",
    vtask(function()
      local o = weft.once()
      local runs, finished = 0, false
      local function fn()
        runs = runs + 1
        weft.sleep(2)
        finished = true
      end
      local res = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = weft.go(function()
          weft.sleep(i * 0.1) -- the first starts fn, the others wait
          assert.is_true(o:call(fn))
          assert.is_true(finished)
          res[i] = weft.now()
        end)
      end
      for i = 1, 5 do join(ts[i]) end
      assert.equal(1, runs)
      for i = 1, 5 do assert.equal(2.1, res[i]) end
    end))

  it("when fn raises, its caller gets the error, waiters get true and the " ..
    "once counts as done", vtask(function()
      local o = weft.once()
      local runs = 0
      local function fn()
        runs = runs + 1
        weft.sleep(1)
        error("broken", 0)
      end
      local runner = weft.go(function() return { pcall(o.call, o, fn) } end)
      weft.yield()
      local waiter = weft.go(function() return o:call(fn) end)
      local r = runner:join()
      assert.is_false(r[1])
      assert.equal("bug", r[2].kind)
      assert.equal("broken", r[2].value)
      assert.is_true(waiter:join())
      assert.is_true(o:done())
      assert.is_true(o:call(fn))
      assert.equal(1, runs)
    end))

  it("a caller waiting for fn returns nil, err when cancelled, and fn " ..
    "still completes for the others", vtask(function()
      local o = weft.once()
      local finished = false
      local runner = weft.go(function()
        return o:call(function()
          weft.sleep(5)
          finished = true
        end)
      end)
      weft.yield()
      local ctx, cancel = weft.with_cancel()
      local res, at
      local waiter = weft.spawn { ctx = ctx, fn = function()
        res = { o:call(error) }
        at = weft.now()
        return true
      end }
      weft.sleep(1)
      cancel("bored")
      join(waiter)
      assert.equal(1, at)
      assert.is_nil(res[1])
      assert.equal("canceled", res[2].kind)
      assert.is_false(finished)
      assert.is_true(runner:join())
      assert.is_true(finished)
      assert.equal(5, weft.now())
    end))

  it("a caller whose context is already cancelled fails at once while fn " ..
    "runs", vtask(function()
      local o = weft.once()
      local runner = weft.go(function()
        return o:call(function() weft.sleep(1) end)
      end)
      weft.yield()
      local waiter = weft.spawn { ctx = cancelled(), fn = function()
        local ok, err = o:call(error)
        return { ok, err.kind, weft.now() }
      end }
      assert.same({ nil, "canceled", 0 }, waiter:join())
      assert.is_true(runner:join())
    end))

  it("rejects misuse: bad arguments, wrong self", vtask(function()
    local o = weft.once()
    assert.has_error(function() o:call(5) end,
      "bad argument #1 to 'call' (function expected, got number)")
    assert.has_error(function() o:call() end,
      "bad argument #1 to 'call' (function expected, got nil)")
    assert.has_error(function() o.call({}, print) end,
      "bad argument #1 to 'call' (weft.once expected, got table)")
    assert.has_error(function() o.done(5) end,
      "bad argument #1 to 'done' (weft.once expected, got number)")
    assert.is_false(o:done()) -- a bad call does not use the once up
  end))

  it("stress: 3,000 callers of 40 onces under random cancellation: each " ..
    "fn runs exactly once, callers return after it or promptly fail",
    vtask(function()
      math.randomseed(99)
      local N, NONCE = 3000, 40
      local onces, runs, finished = {}, {}, {}
      for j = 1, NONCE do
        onces[j], runs[j], finished[j] = weft.once(), 0, false
      end
      local ctxs, cancels, at = {}, {}, {}
      for i = 1, N do ctxs[i], cancels[i] = weft.with_cancel() end
      -- Chaos from the start, as callers keep arriving.
      local c = chaos(N / 2, ctxs, cancels, at)
      local nok, nfail = 0, 0
      local ts = {}
      for i = 1, N do
        local ctx = ctxs[i]
        local j = math.random(NONCE)
        ts[i] = weft.spawn { ctx = ctx, fn = function()
          local t0 = weft.now()
          -- Under a cancelled context, waiting for a running fn fails.
          local must_fail = ctx:err() and runs[j] == 1 and not finished[j]
          local ok, err = onces[j]:call(function()
            runs[j] = runs[j] + 1
            -- Its own waits may be cancelled; fn still ends normally.
            weft.sleep(0.01 * math.random(20, 80))
            finished[j] = true
          end)
          if ok then
            assert(finished[j] and onces[j]:done(), "returned before fn ended")
            assert(not must_fail, "waited under a cancelled context")
            nok = nok + 1
          else
            assert(err.kind == "canceled", tostring(err))
            assert(weft.now() == failed_at(err, ctx, t0, at[i]),
              "cancelled call did not return promptly")
            nfail = nfail + 1
          end
          return true
        end }
        -- Stagger arrivals: some come while fn runs, some after.
        if i % 100 == 0 then weft.sleep(0.002) end
      end
      for i = 1, N do join(ts[i]) end
      join(c)
      for j = 1, NONCE do
        assert(runs[j] == 1, ("once %d ran %d times"):format(j, runs[j]))
        assert(finished[j] and onces[j]:done())
      end
      assert.is_true(nok > 1000 and nfail > 100,
        ("%d returned true, %d failed"):format(nok, nfail))
    end))
end)

describe("weft.fence", function()
  it("wait blocks until release, then returns true for everyone",
    vtask(function()
      local f = weft.fence()
      assert.equal("weft.fence: closed", tostring(f))
      local at = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = weft.go(function()
          assert.is_true(f:wait())
          at[i] = weft.now()
        end)
      end
      weft.sleep(2)
      assert.same({}, at)
      assert.is_false(f:is_released())
      f:release()
      assert.is_true(f:is_released())
      assert.equal("weft.fence: released", tostring(f))
      for i = 1, 3 do join(ts[i]) end
      assert.same({ 2, 2, 2 }, at)
      assert.is_true(f:wait()) -- and at once from now on
      assert.is_true(f:wait(weft.with_cancel()))
      f:release() -- idempotent
      assert.is_true(f:is_released())
      assert.equal(2, weft.now())
    end))

  it("released() is a channel closed on release, usable in select",
    vtask(function()
      local f = weft.fence()
      local ch = f:released()
      assert.equal(ch, f:released())
      assert.equal(2, weft.select { { recv = ch }, { default = true } })
      local t = weft.go(function()
        weft.sleep(1)
        f:release()
      end)
      local i, v, err = weft.select {
        { recv = f:released() },
        { recv = weft.after(10) },
      }
      assert.equal(1, i)
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      assert.equal(1, weft.now())
      join(t)
      assert.equal(1, weft.select { { recv = ch }, { default = true } })
    end))

  it("a wait cancelled before release returns nil, err at once; the others " ..
    "still pass on release", vtask(function()
      local f = weft.fence()
      local ctx, cancel = weft.with_cancel()
      local res, at
      local a = weft.go(function()
        res = { f:wait(ctx) }
        at = weft.now()
      end)
      local b = weft.go(function() return f:wait(weft.with_timeout(3)) end)
      local c = weft.go(function() return f:wait() end)
      weft.sleep(1)
      cancel("no")
      join(a)
      assert.equal(1, at)
      assert.is_nil(res[1])
      assert.equal("canceled", res[2].kind)
      local ok, err = b:join()
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(3, weft.now())
      f:release()
      assert.is_true(c:join())
    end))

  it("a wait under a cancelled context fails at once", vtask(function()
    local f = weft.fence()
    local ok, err = f:wait(cancelled())
    assert.is_nil(ok)
    assert.equal("canceled", err.kind)
    assert.equal(0, weft.now())
  end))

  it("a wait under a cancelled context fails even when the fence is " ..
    "released (level-triggered)", vtask(function()
      local f = weft.fence()
      f:release()
      local ok, err = f:wait(cancelled())
      assert.is_nil(ok)
      assert.is_not_nil(err)
      assert.equal("canceled", err.kind)
    end))

  it("rejects a wrong self", vtask(function()
    local f = weft.fence()
    assert.has_error(function() f.release({}) end,
      "bad argument #1 to 'release' (weft.fence expected, got table)")
    assert.has_error(function() f.released(nil) end,
      "bad argument #1 to 'released' (weft.fence expected, got nil)")
    assert.has_error(function() f.is_released(1) end,
      "bad argument #1 to 'is_released' (weft.fence expected, got number)")
    assert.has_error(function() f.wait(weft.once()) end,
      "bad argument #1 to 'wait' (weft.fence expected, got table)")
    assert.is_false(f:is_released())
  end))

  it("wait checks its context argument, and names itself, released or not",
    vtask(function()
      local f = weft.fence()
      assert.has_error(function() f:wait(5) end,
        "bad argument #1 to 'wait' (weft.ctx expected, got number)")
      f:release()
      assert.has_error(function() f:wait(5) end,
        "bad argument #1 to 'wait' (weft.ctx expected, got number)")
    end))

  it("stress: 3,000 waiters on 30 fences under random cancellation pass " ..
    "exactly at release or fail exactly at cancellation", vtask(function()
      math.randomseed(31337)
      local N, NF = 3000, 30
      local fences, rel = {}, {}
      local releasers = {}
      for j = 1, NF do
        fences[j] = weft.fence()
        -- Release times on a grid of their own, apart from the chaos.
        rel[j] = math.random(60) * 0.05 + 0.0125
        releasers[j] = weft.go(function()
          weft.sleep(rel[j])
          fences[j]:release()
          fences[j]:release()
        end)
      end
      local ctxs, cancels, at = {}, {}, {}
      local npass, nfail = 0, 0
      local ts = {}
      for i = 1, N do
        if i % 3 == 0 then
          ctxs[i], cancels[i] = weft.with_timeout(math.random() * 3)
        else
          ctxs[i], cancels[i] = weft.with_cancel()
        end
        local ctx, j = ctxs[i], math.random(NF)
        local f = fences[j]
        ts[i] = weft.go(function()
          weft.sleep(0.01 * math.random(0, 300)) -- arrive at random
          local t0, pre = weft.now(), ctx:err() and not f:is_released()
          local ok, err
          if i % 2 == 0 then
            ok, err = f:wait(ctx)
          else
            local k, _, e = weft.select {
              { recv = f:released() },
              { recv = ctx:done() },
            }
            if k == 1 then ok = true else err = ctx:err() end
            assert(e.kind == "closed")
          end
          local c = ctx:err() and failed_at(ctx:err(), ctx, t0, at[i])
          if ok then
            assert(f:is_released(), "passed a closed fence")
            assert(weft.now() == math.max(t0, rel[j]),
              "did not pass promptly on release")
            -- Cancelled while it waited, or before it came: it fails.
            assert(not pre and not (c and c < rel[j]),
              "passed under a cancelled context")
            npass = npass + 1
          else
            assert(err.kind == "canceled" or err.kind == "deadline",
              tostring(err))
            assert(weft.now() == c, "cancelled wait did not return promptly")
            -- Released while it waited: it passes.
            assert(not (t0 < c and rel[j] < c), "missed the release")
            nfail = nfail + 1
          end
        end)
      end
      local c = chaos(N / 2, ctxs, cancels, at)
      for i = 1, N do join(ts[i]) end
      join(c)
      for j = 1, NF do join(releasers[j]) end
      assert.is_true(npass > 500 and nfail > 500,
        ("%d passed, %d failed"):format(npass, nfail))
    end))
end)

describe("weft.locked", function()
  it("modify runs fn on the state under the lock and returns its results",
    vtask(function()
      local l = weft.locked { n = 1 }
      assert.equal("weft.locked: unlocked", tostring(l))
      local r = { l:modify(function(s)
        assert.equal("weft.locked: locked", tostring(l))
        s.n = s.n + 1
        return s.n, nil, "x"
      end) }
      assert.same({ 2, nil, "x" }, r)
      assert.equal("weft.locked: unlocked", tostring(l))
      assert.equal(2, l:modify(weft.with_cancel(), function(s) return s.n end))
      -- A failure fn returns is returned as it is.
      local ok, err = l:modify(function() return nil, "nope" end)
      assert.is_nil(ok)
      assert.equal("nope", err)
    end))

  it("concurrent modify calls run one at a time, in arrival order",
    vtask(function()
      local l = weft.locked { inside = 0, log = {} }
      local ts = {}
      for i = 1, 5 do
        ts[i] = weft.go(function()
          return l:modify(function(s)
            s.inside = s.inside + 1
            assert.equal(1, s.inside)
            weft.sleep(1)
            s.log[#s.log + 1] = { i, weft.now() }
            s.inside = s.inside - 1
            return i
          end)
        end)
      end
      for i = 1, 5 do assert.equal(i, ts[i]:join()) end
      local log = l:modify(function(s) return s.log end)
      assert.same({ { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 } }, log)
    end))

  it("a caller cancelled while waiting returns nil, err without running fn",
    vtask(function()
      local l = weft.locked { who = {} }
      local gate = weft.chan()
      local holder = weft.go(function()
        return l:modify(function(s)
          gate:recv()
          s.who[#s.who + 1] = "holder"
          return true
        end)
      end)
      weft.yield()
      local ctx, cancel = weft.with_cancel()
      local res, at
      local b = weft.go(function()
        res = { l:modify(ctx, function(s)
          s.who[#s.who + 1] = "cancelled" -- must never run
        end) }
        at = weft.now()
      end)
      local c = weft.go(function()
        return l:modify(function(s)
          s.who[#s.who + 1] = "next"
          return true
        end)
      end)
      weft.sleep(1)
      cancel("gave up")
      join(b)
      assert.equal(1, at)
      assert.is_nil(res[1])
      assert.equal("canceled", res[2].kind)
      gate:send(true)
      assert.is_true(holder:join())
      assert.is_true(c:join())
      assert.same({ "holder", "next" },
        l:modify(function(s) return s.who end))
    end))

  it("under a cancelled context, modify fails at once without running fn",
    vtask(function()
      local l = weft.locked {}
      local ran = false
      local ok, err = l:modify(cancelled(), function() ran = true end)
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      assert.is_false(ran)
      assert.equal("weft.locked: unlocked", tostring(l))
    end))

  it("an error raised in fn releases the lock and is returned as nil, err " ..
    "of kind bug", vtask(function()
      local l = weft.locked { n = 0 }
      local ok, err = l:modify(function(s)
        s.n = 1
        error("broken", 0)
      end)
      assert.is_nil(ok)
      assert.equal("bug", err.kind)
      assert.equal("broken", err.value)
      assert.equal("weft.locked: unlocked", tostring(l))
      assert.equal(1, l:modify(function(s) return s.n end))
    end))

  it("rejects misuse: bad arguments, wrong self", vtask(function()
    local l = weft.locked {}
    assert.has_error(function() l:modify() end,
      "bad argument #2 to 'modify' (function expected, got nil)")
    assert.has_error(function() l:modify(nil, 5) end,
      "bad argument #2 to 'modify' (function expected, got number)")
    assert.has_error(function() l.modify({}, print) end,
      "bad argument #1 to 'modify' (weft.locked expected, got table)")
    assert.equal("weft.locked: unlocked", tostring(l))
  end))

  it("modify names itself when its context argument is bad", vtask(function()
    local l = weft.locked {}
    assert.has_error(function() l:modify(5, print) end,
      "bad argument #1 to 'modify' (weft.ctx expected, got number)")
  end))

  it("stress: 3,000 modifiers under random cancellation: one at a time, in " ..
    "order, fn never run for a cancelled caller, errors release the lock",
    vtask(function()
      math.randomseed(7)
      local N = 3000
      local l = weft.locked { inside = 0, n = 0 }
      local ctxs, cancels, at = {}, {}, {}
      local ran = {}
      local seq, last = 0, 0
      local nok, nbug, nfail = 0, 0, 0
      local ts = {}
      for i = 1, N do
        if i % 4 == 0 then
          ctxs[i], cancels[i] = weft.with_timeout(math.random() * 3)
        else
          ctxs[i], cancels[i] = weft.with_cancel()
        end
        local ctx = ctxs[i]
        ts[i] = weft.go(function()
          seq = seq + 1
          local my, t0, pre = seq, weft.now(), ctx:err()
          local v, err = l:modify(ctx, function(s)
            ran[i] = true
            assert(my > last, "modify served out of order")
            last = my
            s.inside = s.inside + 1
            assert(s.inside == 1, "two callers inside modify")
            if math.random(2) == 1 then weft.yield() else weft.sleep(0.001) end
            s.inside = s.inside - 1
            if i % 10 == 0 then error("broken " .. i, 0) end
            s.n = s.n + 1
            return i
          end)
          assert(not (ran[i] and pre), "fn ran under a cancelled context")
          if v then
            assert(v == i and ran[i])
            nok = nok + 1
          elseif err.kind == "bug" then
            assert(i % 10 == 0 and ran[i] and err.value == "broken " .. i,
              tostring(err))
            nbug = nbug + 1
          else
            assert(err.kind == "canceled" or err.kind == "deadline",
              tostring(err))
            assert(not ran[i], "fn ran for a cancelled caller")
            assert(weft.now() == failed_at(err, ctx, t0, at[i]),
              "cancelled modify did not return promptly")
            nfail = nfail + 1
          end
        end)
      end
      local c = chaos(N / 2, ctxs, cancels, at)
      for i = 1, N do join(ts[i]) end
      join(c)
      assert.is_true(nok > 500 and nbug > 50 and nfail > 500,
        ("%d ok, %d raised, %d failed"):format(nok, nbug, nfail))
      assert.equal(N, nok + nbug + nfail)
      -- The lock is free and nobody waits: this runs at once.
      assert.equal(nok, l:modify(weft.background(), function(s)
        return s.n
      end))
      assert.equal("weft.locked: unlocked", tostring(l))
    end))
end)
