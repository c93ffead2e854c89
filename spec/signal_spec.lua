-- weft.signal: signals for tasks (runtime/signal.c, lua/weft/signal.lua).
local weft = require "weft"
local H = require "spec.helper"
local P = weft.process

local spec = H.io_task -- no descriptor, task or child left behind

-- kill(sig): a child sends sig to this process.
local function kill(sig)
  local r = assert(P.run { "kill", "-" .. sig, H.pid() })
  assert.equal(0, r.code)
end

describe("weft.signal", function()
  it("wait returns the name when the signal arrives", spec(function()
      local t = weft.go(function() return weft.signal.wait("SIGUSR1") end)
      weft.yield() -- the task listens before the signal is sent
      kill("USR1")
      assert.equal("SIGUSR1", t:join())
    end))

  it("wait is cancelled by its context", spec(function()
      local c = weft.with_timeout(weft.context(), 0.02)
      local v, err = weft.signal.wait("USR1", c)
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
    end))

  it("notify delivers each signal until stop", spec(function()
      local ch, stop = weft.signal.notify("SIGUSR2")
      kill("USR2")
      assert.equal("SIGUSR2", ch:recv())
      kill("USR2")
      assert.equal("SIGUSR2", ch:recv())
      stop()
      stop()
      local v, err = ch:recv()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
    end))

  it("SIGTERM goes to a listening script, then cancels the root again",
    spec(function()
      local out, status = H.sh(H.weft_bin .. [[ -e '
        local P = weft.process
        local t = weft.go(function() return weft.signal.wait("SIGTERM") end)
        weft.yield()
        P.run { "kill", "-TERM", tostring(P.run { "sh", "-c",
          "echo $PPID" }.stdout:match("%d+")) }
        print(t:join())
        local t0 = weft.now()
        P.run { "sh", "-c", "kill -TERM $PPID" }
        weft.sleep(5)
        print(weft.now() - t0 < 4 and "cancelled" or "slept")']])
      assert.equal("SIGTERM\ncancelled\n", out)
      assert.equal(143, status)
    end))

  it("rejects bad signals", spec(function()
      local ok, err = pcall(weft.signal.wait, "SIGNOPE")
      assert.is_false(ok)
      assert.matches("no signal 'SIGNOPE'", err)
      ok, err = pcall(weft.signal.notify, {})
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'notify'", err)
    end))
end)
