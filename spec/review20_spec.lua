-- Review 20: regressions found by the hostile review of the embedding API,
-- the worker pool's copies and the REPL. The C side is in
-- tests/review20_test.c.
local weft = require "weft"
local H = require "spec.helper"

describe("review 20: weft.work's copies", function()
  -- Each closure's upvalues were copied on their own: `inc` and `get`
  -- over one `n` got an `n` each, and the job returned 2, not 4.
  it("closures that share a variable still share it", H.task(function()
    local n = 0
    local function inc() n = n + 1 end
    local function get() return n end
    inc()
    inc()
    assert.equal(4, weft.work(function()
      inc()
      inc()
      return get()
    end))
    assert.equal(2, n) -- a copy: the job's changes stay in the worker
  end))

  it("a variable shared through a table and a nested closure",
    H.task(function()
      local count = 10
      local t = { add = function(k) count = count + k end }
      local function read() return count end
      local twice = function(k) t.add(k) t.add(k) end
      assert.same({ 16, 16 }, { weft.work(function()
        twice(3)
        return read(), count
      end) })
    end))

  -- The map of package.loaded was kept while the number of modules stayed
  -- the same: a table that left package.loaded, with another module in,
  -- still crossed by name, as a module the worker could not load.
  it("a table that is no longer a module crosses as a table",
    H.task(function()
      package.loaded["review20.tmp"] = { x = 1 }
      assert.equal(0, weft.work(function(t) return #t end, {}))
      local data = package.loaded["review20.tmp"]
      package.loaded["review20.tmp"] = nil
      package.loaded["review20.other"] = {}
      assert.equal(1, weft.work(function(d) return d.x end, data))
      package.loaded["review20.other"] = nil
    end))

  -- The pool read the global `package` (raising, after it had allocated,
  -- when a program removed it): the job failed with "attempt to index a
  -- nil value" and the pool leaked.
  -- (The pool is made by the first job: in a process of its own.)
  it("works with the global package removed", function()
    local out, status = H.sh(H.weft_bin .. " " .. H.script([[
      local weft = require "weft"
      local pk = package
      package = nil
      local ok, v = pcall(weft.work, function() return 1 end)
      package = pk
      print(ok, v)
    ]]) .. " 2>&1")
    assert.equal(0, status, out)
    assert.equal("true\t1\n", out)
  end)

  -- The job's error handler called __tostring unprotected: "error in
  -- error handling", and the job's error was gone.
  it("a job's error whose __tostring fails keeps its message",
    H.task(function()
      local ok, err = weft.work(function()
        error(setmetatable({}, { __tostring = function() error("boom") end }))
      end)
      assert.is_nil(ok)
      assert.truthy(err.message:find("error object whose __tostring " ..
        "failed: ", 1, true), err.message)
      assert.truthy(err.message:find("boom", 1, true), err.message)
    end))
end)

describe("review 20: a stepping Lua host", function()
  -- weft.shutdown from a callback of a running step (on_error) cancelled
  -- every task, then raised "weft.step: the runtime is running" at
  -- weft's own line.
  it("weft.shutdown in a step's callback is refused, cancelling nothing",
    function()
      local out, status = H.luajit([[
        local weft = require "weft"
        weft.on_error(function()
          local ok, err = pcall(function() weft.shutdown(1) end)
          print(ok, err)
        end)
        weft.start(function() error("first") end)
        weft.start(function()
          local ok, e = weft.sleep(0.05)
          print("sleeper", ok, e)
        end)
        while weft.step(5) > 0 do end
      ]])
      assert.equal(0, status, out)
      -- Blamed on the script's line 4 (H.luajit's first line sets cpath).
      assert.truthy(out:find("false\t/[^\n]*:4: weft%.shutdown: the " ..
        "runtime is running"), out)
      assert.truthy(out:find("sleeper\ttrue\tnil", 1, true), out)
    end)

  -- A job that finished while a task kept the CPU: the step's last turn of
  -- the loop consumed the wake-up, weft.timeout() said nil ("nothing is
  -- due") and weft.pollfd() stayed silent: a host slept for ever.
  it("a host loop gets a job's result", function()
    local out, status = H.luajit([[
      local ffi = require "ffi"
      ffi.cdef [=[
        struct pollfd { int fd; short events, revents; };
        int poll(struct pollfd *fds, unsigned long n, int timeout);
      ]=]
      local weft = require "weft"
      local got
      weft.start(function() got = weft.work(function() return 42 end) end)
      weft.start(function()
        local t = os.clock()
        while os.clock() - t < 0.05 do end
      end)
      weft.start(function() weft.chan():recv() end)
      local p = ffi.new("struct pollfd[1]")
      for _ = 1, 100 do
        weft.step(10)
        if got then break end
        local s = weft.timeout()
        p[0].fd, p[0].events = weft.pollfd(), 1
        local n = ffi.C.poll(p, 1, s and math.ceil(s * 1000) or 2000)
        assert(s or n > 0, "slept for ever: nothing due, the fd silent")
      end
      print(got)
    ]])
    assert.equal(0, status, out)
    assert.equal("42\n", out)
  end)
end)

describe("review 20: the REPL", function()
  -- An expression line was run as `return select(1, LINE)`: `f() ) (g`
  -- became select(1, f())(g), which ran f.
  it("a line that is a syntax error does not run", function()
    local path = H.script('print("ran") ) (print\n1 + 1\n')
    local out = H.sh(H.weft_bin .. " -i -e '' < " .. path .. " 2>&1")
    os.remove(path)
    assert.falsy(out:find("ran", 1, true), out)
    assert.truthy(out:find("unexpected symbol near ')'", 1, true), out)
    assert.truthy(out:find("\n2\n", 1, true), out)
  end)
end)
