-- weft.process: child processes (runtime/process.c, lua/weft/process.lua).
local weft = require "weft"
local H = require "spec.helper"
local P = weft.process

local spec = H.io_task -- no descriptor, task or child left behind

-- gone(pid): wait (bounded) until pid no longer exists, reaped.
local function gone(pid)
  for _ = 1, 500 do
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return true end
    f:close()
    weft.sleep(0.01)
  end
  return false
end

describe("weft.process", function()
  it("run captures stdout, stderr and the exit code", spec(function()
      local r = assert(P.run { "sh", "-c", "printf out; printf 'e\\n' >&2; " ..
        "exit 3" })
      assert.same({ code = 3, stdout = "out", stderr = "e\n" }, r)
      r = assert(P.run { "printf", "%s-%s", "a b", "c" })
      assert.equal("a b-c", r.stdout)
      assert.equal(0, r.code)
      assert.is_nil(r.signal)
    end))

  it("run reads both outputs in full, 1 MB each, at once", spec(function()
      -- The child fills stderr's pipe before it writes stdout: reading
      -- one after the other would stall it.
      local r = assert(P.run { "sh", "-c",
        "head -c 1048576 /dev/zero | tr '\\0' e >&2; " ..
        "head -c 1048576 /dev/zero | tr '\\0' o" })
      assert.equal(1048576, #r.stdout)
      assert.equal(1048576, #r.stderr)
      assert.equal(("o"):rep(1048576), r.stdout)
      assert.equal(("e"):rep(1048576), r.stderr)
    end))

  it("run feeds input= to the child", spec(function()
      local data = ("line\n"):rep(50000)
      local r = assert(P.run({ "cat" }, { input = data }))
      assert.equal(data, r.stdout)
      r = assert(P.run({ "cat" }, { input = "" }))
      assert.equal("", r.stdout)
    end))

  it("cwd= and env=", spec(function()
      local r = assert(P.run({ "sh", "-c", "pwd; echo \"$FOO\"" },
        { cwd = "/", env = { FOO = "bar baz", PATH = os.getenv("PATH") } }))
      assert.equal("/\nbar baz\n", r.stdout)
    end))

  it("a missing program is nil, err naming the command", spec(function()
      local p, err = P.spawn { "/nonexistent/gh11-prog" }
      assert.is_nil(p)
      assert.equal("ENOENT", err.kind)
      assert.matches("spawn /nonexistent/gh11%-prog: no such file",
        err.message)
      local r, rerr = P.run { "gh11-no-such-program" }
      assert.is_nil(r)
      assert.equal("ENOENT", rerr.kind)
    end))

  it("wait gives the exit code, or 128+N and the signal's name",
    spec(function()
      local p = assert(P.spawn { "sh", args = { "-c", "exit 7" } })
      assert.is_number(p:pid())
      assert.same({ 7 }, { p:wait() })
      assert.same({ 7 }, { p:wait() }) -- again: the status is kept
      p = assert(P.spawn { "sleep", args = { "60" } })
      assert.is_true(p:kill("SIGUSR1"))
      local code, sig = p:wait()
      assert.equal(128 + 10, code)
      assert.equal("SIGUSR1", sig)
      local ok, err = p:kill()
      assert.is_nil(ok)
      assert.equal("ESRCH", err.kind)
      p = assert(P.spawn { "sleep", args = { "60" } })
      assert.is_true(p:kill(9))
      assert.same({ 137, "SIGKILL" }, { p:wait() })
      assert.matches("exited", tostring(p.ud))
      local perr
      ok, perr = pcall(p.kill, p, "SIGNOPE")
      assert.is_false(ok)
      assert.matches("no signal 'SIGNOPE'", perr)
    end))

  it("a wait cancelled by a deadline ends the child and reaps it",
    spec(function()
      local p = assert(P.spawn { "sleep", args = { "60" } })
      local pid = p:pid()
      local t0 = weft.now()
      local c = weft.with_timeout(weft.context(), 0.05)
      local code, err = p:wait(c)
      assert.is_nil(code)
      assert.equal("deadline", err.kind)
      assert.is_true(weft.now() - t0 < 1)
      assert.is_true(gone(pid), "the child is still there")
      assert.same({ 128 + 15, "SIGTERM" }, { p:wait() })
    end))

  it("a child that ignores SIGTERM is killed after the grace",
    spec(function()
      local p = assert(P.spawn { "sh", args = { "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done" },
        stdout = "pipe", grace = 0.1 })
      assert.equal("ready", p.stdout:read_line())
      local c = weft.with_timeout(weft.context(), 0.05)
      local _, err = p:wait(c)
      assert.equal("deadline", err.kind)
      assert.same({ 137, "SIGKILL" }, { p:wait() })
      p:close()
    end))

  it("run with timeout= ends the child", spec(function()
      local t0 = weft.now()
      local r, err = P.run({ "sleep", "60" }, { timeout = 0.05 })
      assert.is_nil(r)
      assert.equal("deadline", err.kind)
      assert.is_true(weft.now() - t0 < 2)
    end))

  it("cancelling the task's context ends run's child", spec(function()
      local t = weft.go(function()
        return P.run { "sleep", "60" }
      end)
      weft.sleep(0.05)
      t:cancel()
      local ok, err = t:join()
      assert.is_falsy(ok)
      assert.is_not_nil(err)
    end))

  it("pipes: write to stdin, read lines from stdout", spec(function()
      local p = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
      assert.is_nil(p.stderr)
      assert.is_true(p.stdin:write("one\ntwo\n"))
      assert.equal("one", p.stdout:read_line())
      assert.is_true(p.stdin:write("three"))
      p.stdin:close()
      p.stdin:close()
      local got = {}
      for l in p.stdout:lines() do got[#got + 1] = l end
      assert.same({ "two", "three" }, got)
      local v, err = p.stdout:read()
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      assert.same({ 0 }, { p:wait() })
      p:close()
      local ok, perr = pcall(p.stdin.write, p.stdin, "x")
      assert.is_false(ok)
      assert.matches("attempt to use a closed conn", perr)
    end))

  it("gh-11: pipes are conns, with TCP's methods and messages",
    spec(function()
      local p = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
      assert.matches("^weft.process.conn: 0x%x+ %(stdout of cat%)$",
        tostring(p.stdout))
      -- More than the pipe and the write queue's high-water mark hold:
      -- write waits for cat, which waits for our reader.
      local data = ("0123456789abcdef"):rep(2 ^ 17) -- 2 MiB
      local w = weft.go(function()
        assert(p.stdin:write(data))
        assert(p.stdin:write("\r\nlast"))
        return p.stdin:shutdown()
      end)
      assert.equal(data:sub(1, 5), p.stdout:read_exactly(5))
      assert.equal(data:sub(6), p.stdout:read_exactly(#data - 5))
      assert.is_true(w:join())
      assert.equal("", p.stdout:read_line())
      assert.equal("last", p.stdout:read_line())
      local v, err = p.stdout:read_exactly(1)
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      assert.matches("read_exactly stdout of cat: end of file", err.message)
      assert.same({ 0, 0 }, { p.stdout:buffered() })
      assert.same({ 0 }, { p:wait() })
      local ok, perr = pcall(function()
        local x = p.stdout.read({})
        return x
      end)
      assert.is_false(ok)
      assert.matches("process_spec%.lua:%d+: bad argument #1 to 'read' " ..
        "%(weft.process.conn expected, got table%)", perr)
      p:close()
      assert.matches("^weft.process.conn: 0x%x+ %(closed%)$",
        tostring(p.stdout))
    end))

  it("gh-11: close wakes a task reading a pipe", spec(function()
      local p = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
      local reader = weft.go(function() return p.stdout:read_line() end)
      weft.yield() -- the reader runs and parks: nothing came yet
      p.stdout:close()
      local v, err = reader:join()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      p.stdin:close()
      assert.same({ 0 }, { p:wait() })
      p:close()
    end))

  it("a read cancelled mid-wait leaves the pipe usable", spec(function()
      local p = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
      local c = weft.with_timeout(weft.context(), 0.02)
      local v, err = p.stdout:read(c)
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      p.stdin:write("x")
      assert.equal("x", p.stdout:read())
      p.stdin:close()
      assert.same({ 0 }, { p:wait() })
      p:close()
    end))

  it("stdout = null, and a child nobody waits for is reaped",
    spec(function()
      local p = assert(P.spawn { "sh", args = { "-c", "echo hidden" },
        stdout = "null" })
      local pid = p:pid()
      p = nil -- luacheck: ignore
      collectgarbage()
      assert.is_true(gone(pid))
    end))

  it("rejects bad arguments", spec(function()
      assert.has_error(function() P.spawn("ls") end)
      assert.has_error(function() P.spawn { "ls", stdout = "file" } end,
        nil)
      local ok, err = pcall(P.spawn, { "ls", stdout = "file" })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'spawn' %(field 'stdout'", err)
      ok, err = pcall(P.run, "ls")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'run'", err)
    end))

  it("many children at once", spec(function()
      local g = weft.group()
      for i = 1, 20 do
        g:go(function()
          local r = assert(P.run { "printf", "%d", tostring(i) })
          assert.equal(tostring(i), r.stdout)
        end)
      end
      assert.is_nil(g:wait())
    end))
end)
