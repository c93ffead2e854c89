-- Review 17: regressions found by the hostile review of the chain (sched
-- `chain`), the loop's timerfd wake-up (runtime.c "Waking the loop") and
-- the tomb of a freed attached runtime. The C side of the review is in
-- tests/review17_test.c.
local weft = require "weft"
local H = require "spec.helper"

-- A worker that sleeps `s` seconds without using a CPU: something other
-- than a timer keeps the loop alive meanwhile, so the timer under test is
-- the only one armed.
local WAIT_OFF_CPU = [[
  return function(s)
    local ffi = require "ffi"
    ffi.cdef "int usleep(unsigned int);"
    ffi.C.usleep(s * 1e6)
    return true
  end
]]

describe("review 17: the timerfd", function()
  -- The deadline of weft.sleep(1e11) has more nanoseconds than a uint64_t
  -- holds: converted to 0, it armed the timerfd in the past, which fired
  -- at once, every turn: 300 ms of CPU in 300 ms while the task slept.
  for _, s in ipairs { "1e11", "1e300", "2^63" } do
    it("a sleep of " .. s .. " s, the only timer, does not spin the loop",
      H.task(function()
        local t = weft.go(function() return weft.sleep(loadstring(
          "return " .. s)()) end)
        local c0, w0 = os.clock(), weft.now()
        local wait = loadstring(WAIT_OFF_CPU)()
        assert.is_true(weft.work(wait, 0.3))
        local cpu, wall = os.clock() - c0, weft.now() - w0
        assert.is_true(wall >= 0.25, "woke early: " .. wall)
        assert.is_true(cpu < 0.1, ("%.0f ms of CPU in %.0f ms"):format(
          cpu * 1e3, wall * 1e3))
        t:cancel()
        local ok, err = t:join()
        assert.is_nil(ok)
        assert.equal("canceled", err.kind)
      end))
  end

  it("a huge weft.after and deadline do not spin a Lua host's weft.run",
    function()
      local out, status = H.luajit([[
        local weft = require "weft"
        print(weft.run(function()
          local ch = weft.after(1e300)
          local ctx = weft.with_timeout(weft.background(), 1e12)
          local c0 = os.clock()
          weft.work(function()
            local ffi = require "ffi"
            ffi.cdef "int usleep(unsigned int);"
            ffi.C.usleep(300000)
          end)
          print(ch:try_recv(), ctx:err())
          return os.clock() - c0 < 0.1
        end))
      ]])
      assert.equal(0, status, out)
      assert.equal("false\tnil\ntrue\n", out)
    end)
end)
