-- The weft command, run as a child process. These specs block the runtime
-- while the child runs (io.popen), which is fine for a spec.
local H = require "spec.helper"
local task = H.task

local weft_bin = H.weft_bin

local script = H.script

-- run(args) -> combined stdout and stderr, exit status
local function run(args)
  return H.sh(weft_bin .. " " .. args .. " 2>&1")
end

describe("the weft command", function()
  it("runs a script as the root task with arg set as lua does",
    task(function()
      local path = script([[
        print(arg[0] == ..., select("#", ...))
        print(arg[-1], arg[0] ~= nil, arg[1], arg[2], ...)
        weft.sleep(0.001)
        local t = weft.go(function() return "child" end)
        print(t:join())
      ]])
      local out, status = run(path .. " a b")
      assert.equal(0, status)
      assert.equal("false\t2\n" .. weft_bin .. "\ttrue\ta\tb\ta\tb\nchild\n",
        out)
      os.remove(path)
    end))

  it("-e runs code, and -e chunks run in order", task(function()
    local out, status = run([[-e 'x = 1' -e 'print(x + 1)']])
    assert.equal(0, status)
    assert.equal("2\n", out)
  end))

  it("-l requires a library first", task(function()
    local out, status = run([[-l string -e 'print(type(string))']])
    assert.equal(0, status)
    assert.equal("table\n", out)
  end))

  it("--version and --help", task(function()
    local out, status = run("--version")
    assert.equal(0, status)
    assert.matches("^weft %d+%.%d+%.%d+ %(LuaJIT 2%.1", out)
    out, status = run("--help")
    assert.equal(0, status)
    assert.matches("^usage: weft %[options%] %[script %[args%]%]", out)
  end))

  it("usage errors exit 2", task(function()
    local out, status = run("--frobnicate")
    assert.equal(2, status)
    assert.matches("^weft: unknown option '%-%-frobnicate'", out)
    out, status = run("-e")
    assert.equal(2, status)
    assert.matches("^weft: '%-e' needs an argument", out)
  end))

  it("a missing file is one clear message and exit 1", task(function()
    local out, status = run("/nonexistent/x.lua")
    assert.equal(1, status)
    assert.matches("^weft: cannot open /nonexistent/x.lua[^\n]*\n$", out)
  end))

  it("a syntax error names file and line and exits 1", task(function()
    local path = script("local x = 1\nx = = 2\n")
    local out, status = run(path)
    assert.equal(1, status)
    assert.matches("^weft: [^\n]*%.lua:2: unexpected symbol near '='\n$", out)
    os.remove(path)
  end))

  it("a bug in a nested task is one line naming the task, reported once; " ..
    "-v and WEFT_LOG give the full record under the same log id",
    task(function()
      local path = script([[
        local function deep() error("boom") end
        weft.spawn { name = "worker", fn = function()
          weft.spawn { name = "nested", fn = function() deep() end }
          weft.sleep(10)
        end }
        weft.sleep(10)
      ]])
      local out, status = run(path)
      assert.equal(1, status)
      -- gh-9: whose bug it is, and where, without -v.
      local id = out:match("^weft: %[(%w+%-%d+)%] uncaught error in task " ..
        '"nested" %(a bug in the program%): [^\n]*%.lua:1: boom\n' ..
        "  [^\n]*%.lua:1: in function 'deep'\n  [^\n]*%.lua:3: in " ..
        "function <[^\n]*%.lua:3>\n$")
      assert.is_truthy(id, out)
      out, status = run("-v " .. path)
      assert.equal(1, status)
      assert.matches('in task "nested" %(id 3%)', out)
      assert.matches("in function 'deep'", out)
      local _, n = out:gsub("uncaught error", "")
      assert.equal(1, n)
      local log = os.tmpname()
      out = H.sh("WEFT_LOG=" .. log .. " " .. weft_bin .. " " .. path ..
        " 2>&1")
      id = out:match("%[(%w+%-%d+)%]")
      local f = assert(io.open(log))
      local record = f:read("*a")
      f:close()
      os.remove(log)
      assert.matches("^%[" .. id:gsub("%-", "%%-") ..
        "%] %d%d%d%d%-%d%d%-%d%dT" ..
        "%d%d:%d%d:%d%d%.%d%d%dZ bug: [^\n]*boom", record)
      assert.matches("in function 'deep'", record)
      os.remove(path)
    end))

  it("a well-formed error is its message and log id; -v adds the chain",
    task(function()
      local path = script([[
        local ctx, cancel = weft.with_cancel()
        cancel(weft.error("shutdown", "server shutting down"))
        local ok, err = weft.sleep(1, ctx)
        return ok, err
      ]])
      local out, status = run(path)
      assert.equal(1, status)
      assert.matches("^weft: %[%w+%-%d+%] context canceled\n$", out)
      out, status = run("-v " .. path)
      assert.equal(1, status)
      assert.matches("\ncaused by: %[%w+%-%d+%] [^\n]* shutdown: server " ..
        "shutting down\n", out)
      os.remove(path)
    end))

  it("reports a deadlock with each blocked task and exits 1", task(function()
    local path = script([[
      local ch = weft.chan()
      weft.spawn { name = "stuck", fn = function() ch:send(1) end }
      weft.go(function() weft.chan():recv() end)
      weft.sleep(0.001)
      weft.chan():recv()
    ]])
    local out, status = run(path)
    assert.equal(1, status)
    assert.matches("^weft: all tasks are asleep %- deadlock!", out)
    -- gh-12: the script's task is named after its path.
    assert.matches('task 1 "[^"]+%.lua" %[recv on weft.chan #%d+ %(len 0, ' ..
      'cap 0%)%]', out)
    assert.matches('task 2 "stuck" %[send on weft.chan', out)
    assert.matches('task 3 "[^"]+%.lua:3" %[recv on', out)
    assert.matches("%.lua:5: in main chunk", out)
    os.remove(path)
  end))

  it("a task sleeping on a timer is not a deadlock", task(function()
    local out, status = run([[-e 'weft.sleep(0.02); print("woke")']])
    assert.equal(0, status)
    assert.equal("woke\n", out)
  end))

  it("reads the script from standard input", task(function()
    local out, status = H.sh("echo 'print(1 + 1)' | " .. weft_bin .. " - 2>&1")
    assert.equal(0, status)
    assert.equal("2\n", out)
    out, status = H.sh("echo 'print(3)' | " .. weft_bin .. " 2>&1")
    assert.equal(0, status)
    assert.equal("3\n", out)
  end))

  it("Ctrl-C cancels the root context: tasks unwind and clean up, exit 130",
    task(function()
      local path = script([[
        io.stdout:setvbuf("no")
        weft.go(function()
          local _, err = weft.sleep(60)
          print("child unwinds: " .. err.kind)
        end)
        print("ready")
        local _, err = weft.sleep(60)
        print("main unwinds: " .. err.kind .. ", " .. tostring(err.cause))
        return nil, err
      ]])
      local out, status = H.sh("(" .. weft_bin .. " " .. path ..
        " & p=$!; sleep 0.3; kill -INT $p; wait $p) 2>&1")
      assert.equal(130, status)
      assert.matches("ready\n", out)
      assert.matches("child unwinds: canceled\n", out)
      assert.matches("main unwinds: canceled, interrupted\n", out)
      assert.matches("weft: interrupted\n$", out)
      os.remove(path)
    end))

  it("a second Ctrl-C exits at once with status 130, even from a busy loop",
    task(function()
      local path = script([[
        io.stdout:setvbuf("no")
        print("ready")
        while true do end
      ]])
      local t0 = os.time()
      local out, status = H.sh("(" .. weft_bin .. " " .. path ..
        " & p=$!; sleep 0.3; kill -INT $p; sleep 0.1; kill -INT $p; wait $p)" ..
        " 2>&1")
      assert.equal(130, status)
      assert.equal("ready\n", out)
      assert.is_true(os.time() - t0 < 10)
      os.remove(path)
    end))

  it("SIGQUIT prints every task to stderr and the program goes on",
    task(function()
      local path = script([[
        io.stdout:setvbuf("no")
        weft.spawn { name = "sleeper", fn = function() weft.sleep(0.6) end }
        print("ready")
        weft.sleep(0.6)
        print("still running")
      ]])
      local out, status = H.sh("(" .. weft_bin .. " " .. path ..
        " & p=$!; sleep 0.3; kill -QUIT $p; wait $p) 2>&1")
      assert.equal(0, status)
      assert.matches("^ready\nweft: SIGQUIT: 2 tasks\n", out)
      assert.matches('task 1 "[^"]+%.lua" %[sleep until [%d.]+%]:', out)
      assert.matches('task 2 "sleeper" %[sleep until', out)
      assert.matches("still running\n$", out)
      os.remove(path)
    end))

  it("alone on a terminal, offers a prompt: expressions print their " ..
    "values, chunks may span lines, each runs as a task", task(function()
      local input = table.concat({
        "1 + 1", "for i = 1,", "2 do print(i * 10) end", "x = = 1",
        'weft.sleep(0.01) print("slept")', 'error("oops")', 'print("after")',
      }, "\n") .. "\n"
      -- script(1) gives weft a terminal; the terminal echoes the input, at a
      -- moment that depends on the load, so outputs are matched as lines.
      local out, status = H.sh("printf '" .. input .. "' | script -qec '" ..
        weft_bin .. "' /dev/null")
      assert.equal(0, status)
      out = out:gsub("\r", "")
      assert.matches("weft %d+%.%d+%.%d+ %(LuaJIT[^\n]*%-%- :help for " ..
        "help, Ctrl%-D to leave", out)
      assert.matches("[\n>] ?2\n", out)
      assert.matches(">> 2 do print%(i %* 10%) end\n10\n20\n", out)
      assert.matches("stdin:1: unexpected symbol near '='", out)
      assert.matches("[\n>] ?slept\n", out)
      assert.matches('weft: %[%w+%-%d+%] uncaught error in task "stdin" ' ..
        "%(a bug in the program%): stdin:1: oops", out)
      assert.matches("[\n>] ?after\n", out)
    end))

  it("weft -e '' starts and exits cleanly", task(function()
    local out, status = run("-e ''")
    assert.equal(0, status)
    assert.equal("", out)
  end))
end)

describe("the Lua module", function()
  local function luajit(code)
    local path = script("package.cpath = " .. string.format("%q",
      H.module_dir .. "/?.so;") .. " .. package.cpath\n" .. code)
    local preload = os.getenv("WEFT_LUAJIT_PRELOAD")
    local env = preload and ("LD_PRELOAD=" .. preload .. " ") or ""
    local out, status = H.sh(env .. "luajit " .. path .. " 2>&1")
    os.remove(path)
    return out, status
  end

  it("require 'weft' from a stock luajit and weft.run a root task",
    task(function()
      local out, status = luajit([[
        local weft = require "weft"
        print(weft.run(function(a, b)
          local ch = weft.chan()
          weft.go(function() weft.sleep(0.001); ch:send(a * b) end)
          return ch:recv(), "done"
        end, 6, 7))
        print(weft.run(function() return nil, "failed" end))
        print(weft.run(function() error("raised", 0) end))
        -- gh-8: outside a task, weft.go starts a top-level task (it must
        -- not raise in a finalizer); the next weft.run runs it.
        local t = weft.go(function(x) return x end, "started outside")
        print(weft.run(function() return t:join() end))
        print(pcall(weft.sleep, 1))
      ]])
      assert.equal(0, status)
      assert.equal(table.concat({
        "42\tdone",
        "nil\tfailed",
        "nil\traised",
        "started outside",
        "false\tsleep: not inside a task (start one with weft.run)",
      }, "\n") .. "\n", out)
    end))

  it("weft.run reports a deadlock, cancels the blocked tasks and goes on",
    task(function()
      local out, status = luajit([[
        local weft = require "weft"
        local ok, err = weft.run(function()
          local _, e = weft.chan():recv()
          print("unwound: " .. e.kind)
        end)
        print(ok, err.kind)
        print(weft.run(function() return "again" end))
      ]])
      assert.equal(0, status)
      assert.equal("unwound: canceled\nnil\tdeadlock\nagain\n", out)
    end))

  it("review-4: a task abandoned after a deadlock is never resumed",
    task(function()
      local out, status = luajit([[
        local weft = require "weft"
        local ch = weft.chan()
        local ok = weft.run(function()
          weft.go(function()
            local v = ch:recv(weft.background()) -- shielded: stays stuck
            print("zombie woke up with", v)
          end)
        end)
        print(ok)
        print(weft.run(function()
          local sent, err = ch:send("hello", weft.with_timeout(0.05))
          return sent, err and err.kind
        end))
      ]])
      assert.equal(0, status)
      assert.equal("nil\nnil\tdeadline\n", out)
    end))

  it("weft.run cannot be nested", task(function()
    local out = luajit([[
      local weft = require "weft"
      print(weft.run(function() return pcall(weft.run, print) end))
    ]])
    assert.matches("weft.run: already inside a task", out)
  end))
end)
