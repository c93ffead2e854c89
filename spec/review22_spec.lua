-- Review 22: regressions found by the hostile review of the toolkit
-- (groups and jobs, rate limiters, stewards, retry).
local weft = require "weft"
local H = require "spec.helper"

local rate = weft.rate

describe("review 22: groups and jobs", function()
  -- With a limit, a go blocked on the slot took it from the last task to
  -- end and started its task before the waiter ran; wait returned anyway
  -- (its round ended under the task) and the task's error was lost.
  it("wait does not return while a task of its round runs", H.vtask(function()
    local g = weft.group { limit = 1 }
    local gate = weft.fence()
    g:go(function() gate:wait() end) -- holds the only slot
    local b = weft.go(function()
      g:go(function(ctx)
        weft.sleep(0.05, ctx)
        return nil, "B failed"
      end)
    end)
    local got
    local c = weft.go(function() got = g:wait() end)
    weft.yield()
    gate:release()
    b:join()
    c:join()
    assert.equal("B failed", got and got.message)
    assert.equal(0.05, weft.now())
  end))

  it("so does jobs:wait", H.vtask(function()
    local j = weft.jobs(weft.context(), { limit = 1 })
    local gate = weft.fence()
    j:go(weft.context(), function() gate:wait() end)
    local b = weft.go(function()
      j:go(weft.context(), function()
        weft.sleep(0.05)
        return nil, "job failed"
      end)
    end)
    local got
    local c = weft.go(function() got = j:wait() end)
    weft.yield()
    gate:release()
    b:join()
    c:join()
    assert.equal("job failed", got and got.message)
    assert.equal(0.05, weft.now())
  end))
end)

describe("review 22: rate limiters", function()
  -- multi:wait waited on each limiter in turn: a later one's refusal came
  -- after the earlier ones' tokens and time were spent.
  it("multi:wait over a limiter's burst fails at once, spending nothing",
    H.vtask(function()
      local slow, fast = rate.limiter(1, 5), rate.limiter(10, 2)
      local m = rate.multi(slow, fast)
      assert.is_true(slow:allow(5))
      local ok, err = m:wait(3)
      assert.is_nil(ok)
      assert.equal("rate", err.kind)
      assert.equal("rate: wait(n=3) exceeds limiter's burst 2", err.message)
      assert.equal(0, weft.now())
      assert.equal(0, slow:tokens())
      assert.equal(2, fast:tokens())
    end))

  it("multi:wait past the deadline fails at once, spending nothing",
    H.vtask(function()
      local a, b = rate.limiter(1, 1), rate.limiter(2, 1)
      local m = rate.multi(a, b)
      assert.is_true(a:allow(1)) -- a's next token at t = 1
      for _ = 1, 5 do b:reserve() end -- b's at t = 2.5
      local ok, err = m:wait(1, weft.with_timeout(2))
      assert.is_nil(ok)
      assert.equal("rate: wait(n=1) would exceed context deadline",
        err.message)
      assert.equal(0, weft.now())
      assert.equal(0, a:tokens_at(1) - 1) -- a's token at t = 1 is still there
    end))

  it("multi:wait waits once, for the slowest limiter", H.vtask(function()
    local a, b = rate.limiter(1, 1), rate.limiter(2, 1)
    local m = rate.multi(a, b)
    assert.is_true(m:allow(1))
    assert.is_true(m:wait(1))
    assert.equal(1, weft.now()) -- a's next token; b's came at 0.5
    assert.equal(0, a:tokens())
  end))

  -- The deadline's timer fired first: the wait slept to the deadline for
  -- nothing, then gave its token back.
  it("a wait whose token comes at the deadline itself fails at once",
    H.vtask(function()
      local l = rate.limiter(1, 1)
      assert.is_true(l:allow())
      local ok, err = l:wait(1, weft.with_timeout(1))
      assert.is_nil(ok)
      assert.equal("rate: wait(n=1) would exceed context deadline",
        err.message)
      assert.equal(0, weft.now())
      assert.is_true(l:wait(1, weft.with_timeout(1.5)))
      assert.equal(1, weft.now())
    end))

  -- The limiters were sorted once; limit() read the first.
  it("multi:limit() follows set_limit", function()
    local a, b = rate.limiter(1, 1), rate.limiter(10, 1)
    local m = rate.multi(a, b)
    assert.equal(1, m:limit())
    a:set_limit(100)
    assert.equal(10, m:limit())
  end)
end)

describe("review 22: stewards and retry", function()
  -- A backoff or log that raised skipped the steward's clean-up: its
  -- heartbeat stayed open and ticking, and a listener hung for ever.
  for _, which in ipairs { "backoff", "log" } do
    it("a " .. which .. " that raises ends the steward and its heartbeat",
      H.vtask(function()
        local opts = { name = "w", timeout = 1,
          start = function() return nil end, -- ends at once
          backoff = 0, log = function() end }
        opts[which] = function() error(which .. " boom") end
        local beats, task = weft.steward(opts)(weft.context(), 0.1)
        local ok, err = task:join()
        assert.is_nil(ok)
        assert.truthy(tostring(err):find("steward: " .. which ..
          " of w raised: ", 1, true), tostring(err))
        assert.truthy(tostring(err):find(which .. " boom", 1, true))
        assert.is_true(beats:closed())
        for _ in beats:iter() do end -- ends: closed
      end))
  end

  -- min * factor^(i-1) with min 0 and factor^(i-1) past the largest
  -- double is 0 * inf, NaN: sleep raised from retry.lua.
  it("retry with min 0 waits 0 s at every attempt", H.vtask(function()
    local n = 0
    for a in weft.retry(weft.context(), { min = 0, attempts = 1100 }) do
      n = a
    end
    assert.equal(1100, n)
    local ok, err = weft.retry_call(weft.context(), { min = 0,
      factor = math.huge }, function() return nil, "fail" end)
    assert.is_nil(ok)
    assert.equal("fail", err)
    assert.equal(0, weft.now())
  end))
end)
