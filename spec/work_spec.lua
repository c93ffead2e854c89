-- weft.work: CPU work on the worker pool (runtime/pool.c, runtime/copy.c).
local weft = require "weft"
local copy = require "weft.copy"
local pool = require "weft.pool"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

-- A generator of random nested values: nil-free tables of booleans,
-- integer-valued and fractional floats, NaN, infinities, binary strings,
-- with shared subtables and cycles.
local function gen(rng, depth, shared)
  local k = rng(depth > 3 and 6 or 8)
  if k == 1 then return rng(2) == 1 end
  if k == 2 then return rng(-1e6, 1e6) end
  if k == 3 then return (rng() - 0.5) * 10 ^ rng(-300, 300) end
  if k == 4 then
    local specials = { 0 / 0, 1 / 0, -1 / 0, -0.0, 2 ^ 53, -2 ^ 63 }
    return specials[rng(#specials)]
  end
  if k == 5 then
    local b = {}
    for i = 1, rng(0, 40) do b[i] = string.char(rng(0, 255)) end
    return table.concat(b)
  end
  if k == 6 and #shared > 0 then return shared[rng(#shared)] end
  local t = {}
  shared[#shared + 1] = t
  for _ = 1, rng(0, 6) do
    -- Scalar keys (tables as keys have a case of their own below).
    local key = rng(3) == 1 and rng(1, 10) or gen(rng, 4, {})
    if type(key) == "table" or key ~= key then key = "k" .. rng(100) end
    t[key] = gen(rng, depth + 1, shared)
  end
  if rng(4) == 1 then t.cycle = t end
  return t
end

-- same(a, b, seen) -> true if b is a copy of a with the same shape: equal
-- scalars (NaN equal to NaN, -0 kept), tables matched one to one.
local function same(a, b, seen)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if a ~= a then return b ~= b end
    return a == b and 1 / a == 1 / b
  end
  if type(a) ~= "table" then return a == b end
  if seen[a] then return seen[a] == b end
  seen[a] = b
  for k, v in pairs(a) do
    if not same(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

describe("weft.work values", function()
  it("round-trip 1,000 random nested values unchanged", function()
    local seed = 12345
    local function rng(m, n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      local r = seed / 2147483648
      if not m then return r end
      if not n then m, n = 1, m end
      return m + math.floor(r * (n - m + 1))
    end
    for i = 1, 1000 do
      local v = gen(rng, 0, {})
      local c = copy.roundtrip(v)
      assert(same(v, c, {}), "case " .. i)
    end
  end)

  it("tables as keys, and as their own keys", function()
    local k = { "key" }
    local t = { [k] = k }
    t[t] = t
    local c = copy.roundtrip(t)
    assert.equal(c, c[c])
    local ck
    for key in pairs(c) do
      if key ~= c then ck = key end
    end
    assert.equal("key", ck[1])
    assert.equal(ck, c[ck])
  end)

  it("keeps shared references and cycles across a worker", task(function()
      local shared = { "s" }
      local t = { a = shared, b = shared }
      t.self = t
      local r = weft.work(function(x)
        return x.a == x.b, x.self == x, x
      end, t)
      assert.is_true(r)
      local _, cyc, back = weft.work(function(x)
        return x.a == x.b, x.self == x, x
      end, t)
      assert.is_true(cyc)
      assert.equal(back, back.self)
      assert.equal(back.a, back.b)
      assert.equal("s", back.a[1])
    end))

  it("numbers exact, strings binary-safe", task(function()
      local nan, inf, nz, big, s = weft.work(function(...) return ... end,
        0 / 0, 1 / 0, -0.0, 2 ^ 53 + 2, "a\0b\255")
      assert.is_true(nan ~= nan)
      assert.equal(math.huge, inf)
      assert.equal(-math.huge, 1 / nz)
      assert.equal(2 ^ 53 + 2, big)
      assert.equal("a\0b\255", s)
      assert.equal(3, select("#", weft.work(function() return 1, nil, 3 end)))
      assert.equal(true, weft.work(function() end))
    end))

  it("copies functions with their upvalues, recursive ones too",
    task(function()
      local function fib(n)
        if n < 2 then return n end
        return fib(n - 1) + fib(n - 2)
      end
      local base = { 10 }
      assert.equal(6765, weft.work(fib, 20))
      assert.equal(15, weft.work(function(x) return base[1] + x end, 5))
    end))

  it("modules cross by name: `weft`, `string` and their C functions",
    task(function()
      local floor, rep = math.floor, string.rep
      assert.equal("abab", weft.work(function() return rep("ab", 2) end))
      assert.equal(3, weft.work(function() return floor(3.7) end))
      assert.equal("boolean", weft.work(function()
        return type(weft.worker.canceled())
      end))
    end))

  it("refuses what cannot cross, naming the path", task(function()
      local cases = {
        { function() weft.work(print, coroutine.create(print)) end,
          "weft.work: args%[1%]: cannot copy a coroutine" },
        { function() weft.work(print, 1, { x = { y = io.stdout } }) end,
          "weft.work: args%[2%]%.x%.y: cannot copy a userdata" },
        { function()
            local co = coroutine.create(print)
            weft.work(function() return co end)
          end, "weft.work: fn%.<upvalue co>: cannot copy a coroutine" },
        { function() weft.work(print, setmetatable({}, {})) end,
          "weft.work: args%[1%]: cannot copy a table with a metatable" },
        { function()
            local cf = string.gmatch("a", "a") -- a C function of no module
            weft.work(print, { [1] = { ["a b"] = cf } })
          end,
          "weft.work: args%[1%]%[1%]%[\"a b\"%]: cannot copy a C function" },
        { function() weft.work(print, newproxy()) end,
          "weft.work: args%[1%]: cannot copy a userdata" },
      }
      for i, c in ipairs(cases) do
        local ok, err = pcall(c[1])
        assert(not ok, "case " .. i)
        assert.matches("work_spec%.lua:%d+: " .. c[2], err)
      end
      local deep = {}
      for _ = 1, 300 do deep = { deep } end
      local ok, err = pcall(weft.work, print, deep)
      assert.is_false(ok)
      assert.matches("nested more than 200 deep", err)
      ok, err = pcall(weft.work, "print")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'work' %(function expected", err)
      ok, err = pcall(weft.work_module, "string")
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'work_module' %(string expected",
        err)
    end))
end)

describe("weft.work jobs", function()
  it("an error comes back as a weft error with the worker's traceback; " ..
    "the worker stays usable", task(function()
      local function inner() error("boom") end
      local v, err = weft.work(function() inner() end)
      assert.is_nil(v)
      assert.equal("work", err.kind)
      assert.matches("^job spec/work_spec%.lua:%d+ failed: " ..
        "spec/work_spec%.lua:%d+: boom$", err.message)
      assert.matches("in function 'inner'", err.traceback)
      assert.matches("spec/work_spec%.lua:%d+", err.job)
      for _ = 1, 2 * weft.workers() do
        assert.equal(42, weft.work(function() return 42 end))
      end
    end))

  it("an unknown module or function fails the job", task(function()
      local v, err = weft.work_module("gh10_no_such_module", "f")
      assert.is_nil(v)
      assert.matches("module 'gh10_no_such_module' not found", err.message)
      v, err = weft.work_module("string", "nope")
      assert.is_nil(v)
      assert.matches("module 'string' has no function 'nope'", err.message)
      assert.equal("ABC", weft.work_module("string", "upper", "abc"))
    end))

  it("the task API is absent in a worker, and says so", task(function()
      local v, err = weft.work(function()
        local t = weft.go(print) -- not a tail call: keeps the line
        return t
      end)
      assert.is_nil(v)
      assert.matches("work_spec%.lua:%d+: weft%.go: not available on a " ..
        "worker thread", err.message)
    end))

  it("other tasks run while a job computes", task(function()
      local ticks = 0
      local ticker = weft.go(function()
        while weft.sleep(0.001) do ticks = ticks + 1 end
      end)
      local t0 = weft.now()
      -- A fixed amount of work (os.clock would count the process's CPU
      -- time, every thread's, not this job's).
      local s = weft.work(function(n)
        local x = 0
        for i = 1, n do x = (x + i * 7) % 1000003 end
        return x
      end, 3e7)
      local elapsed = weft.now() - t0
      ticker:cancel()
      ticker:join()
      assert.is_true(s >= 0)
      -- A 1 ms ticker: at least a tenth of the ticks it could have made.
      assert.is_true(ticks >= elapsed / 0.001 / 10,
        ("ticks: %d in %.3f s"):format(ticks, elapsed))
    end))

  it("a cancelled running job sees weft.worker.canceled(); the call " ..
    "returns at once", task(function()
      local t0 = weft.now()
      local v, err = weft.scope(function()
        return weft.work(function()
          while not weft.worker.canceled() do end
          return "saw it"
        end)
      end, { timeout = 0.05 })
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert.is_true(weft.now() - t0 < 1)
    end))

  it("a job that never looks is stopped at its next hook check",
    task(function()
      local v, err = weft.scope(function()
        return weft.work(function()
          -- Interpreted (LuaJIT runs no hooks in compiled loops).
          local function spin() while true do end end
          jit.off(spin)
          spin()
        end)
      end, { timeout = 0.05 })
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      -- The worker it ran on is back: every thread serves again.
      for _ = 1, 3 do
        assert.equal(1, weft.work(function() return 1 end))
      end
      -- The cancelled job ends at its thread's next hook check, which may
      -- come after the jobs above (a loaded machine, TSan): wait for it
      -- rather than race it.
      while select(3, pool.stats()) > 0 do weft.yield() end
      local started = pool.stats()
      assert.is_true(started <= weft.workers() + 1)
    end))

  it("10,000 jobs with random cancellation: each returns its result or " ..
    "is cancelled, none lost or twice", task(function()
      local seed = 10
      local function random(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return 1 + math.floor(seed / 2147483648 * n)
      end
      local results, canceled, seen = 0, 0, {}
      -- In waves of 100, so that each wave's cancellers run in the tick
      -- its jobs were submitted in: later, the scheduler would collect
      -- every (quick) result before a canceller queued behind thousands of
      -- tasks got its turn, and nothing would be cancelled.
      for wave = 0, 99 do
        local g = weft.group()
        for i = wave * 100 + 1, wave * 100 + 100 do
          g:go(function()
            local ctx, cancel = weft.with_cancel()
            if random(3) == 1 then
              local yield_first = random(2) == 1
              weft.go(function()
                if yield_first then weft.yield() end
                cancel()
              end)
            end
            local v, err = weft.scope(function()
              return weft.work(function(x) return x * 2 end, i)
            end, { ctx = ctx })
            if v then
              assert(v == i * 2 and not seen[i])
              seen[i] = true
              results = results + 1
            else
              assert(err.kind == "canceled", tostring(err))
              canceled = canceled + 1
            end
            cancel()
          end)
        end
        assert.is_nil(g:wait())
      end
      assert.equal(10000, results + canceled)
      assert.is_true(results > 0 and canceled > 0, results .. " " .. canceled)
      local _, _, _, inflight = pool.stats()
      assert.equal(0, inflight)
    end))

  it("virtual time does not jump past a running job", vtask(function()
      local order = {}
      weft.go(function()
        weft.sleep(1)
        order[#order + 1] = "timer"
      end)
      weft.work(function()
        local t0 = os.clock()
        while os.clock() - t0 < 0.05 do end
      end)
      order[#order + 1] = "job"
      weft.sleep(2)
      assert.same({ "job", "timer" }, order)
    end))

  it("a wait on the pool inside a sort comparator fails cleanly",
    task(function()
      local ok, err = pcall(table.sort, { 2, 1 }, function(a, b)
        weft.work(function() return 1 end)
        return a < b
      end)
      assert.is_false(ok)
      assert.matches("weft.work: cannot wait inside table.sort", err)
      local _, _, _, inflight = pool.stats()
      assert.equal(0, inflight)
      assert.equal(2, weft.work(function() return 2 end))
    end))

  it("the program ends with jobs in flight: they are cancelled and the " ..
    "threads joined", task(function()
      local out, status = H.sh(H.weft_bin .. [[ -e "
        for _ = 1, 4 do
          weft.go(function()
            weft.work(function()
              local function spin() while true do end end
              jit.off(spin)
              spin()
            end)
          end)
        end
        weft.sleep(0.05)
        error('stop', 0)" 2>&1]])
      assert.equal(1, status)
      assert.matches("stop\n", out)
      assert.is_nil(out:find("left running", 1, true))
    end))

  -- Two jobs submitted together run at once on a pool of two, even once a
  -- worker is idle: each waits (up to 5 s) for a file the other makes.
  -- Counting the one idle worker as free for every job queued at once
  -- started no second thread, and the idle one ran them one after the
  -- other (cpu16's speed-up was 1.0 in most runs).
  it("jobs queued together run at once, one per worker", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(weft.fs.mkdir(dir))
    local script = H.script(([[
      local weft = require "weft"
      local function meet(me, other)
        local f = assert(io.open(me, "w"))
        f:close()
        local t = os.time() + 5
        while os.time() < t do
          local g = io.open(other)
          if g then g:close() return true end
        end
        return false
      end
      for round = 1, 3 do
        weft.work(function() end) -- a worker, idle between rounds
        local a = "%s/a" .. round
        local b = "%s/b" .. round
        local g = weft.group()
        local met = {}
        g:go(function() met[1] = weft.work(meet, a, b) end)
        g:go(function() met[2] = weft.work(meet, b, a) end)
        assert(g:wait() == nil)
        print(met[1], met[2])
      end
    ]]):format(dir, dir))
    local out = H.sh(H.weft_bin .. " --workers 2 " .. script)
    os.remove(script)
    H.rmtree(dir)
    assert.equal(("true\ttrue\n"):rep(3), out)
  end)

  it("--workers and WEFT_WORKERS size the pool", task(function()
      local out = H.sh(H.weft_bin .. " --workers 3 -e 'print(weft.workers())'")
      assert.equal("3\n", out)
      out = H.sh("WEFT_WORKERS=5 " .. H.weft_bin ..
        " -e 'print(weft.workers())'")
      assert.equal("5\n", out)
      local _, status = H.sh(H.weft_bin .. " --workers 0 -e '' 2>/dev/null")
      assert.equal(2, status)
    end))
end)
