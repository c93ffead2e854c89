-- gh-8: the weft command and signals (SIGTERM, SIGHUP, a quick double
-- Ctrl-C, output kept when a signal ends the program), and many script
-- arguments. Each test runs weft as a child process; the runtime is blocked
-- while it runs (io.popen), which is fine for a spec.
local H = require "spec.helper"
local task = H.task

local script = H.script

local function slurp(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- stop(path, signals) -> stdout, stderr, status: run weft on the script
-- with its standard output a pipe (where stdio buffers it), wait until the
-- script writes "ready" to standard error, then run the shell commands
-- `signals`, in which $p is weft's process id, and wait for weft to end.
local function stop(path, signals)
  local out = H.sh(table.concat({
    "d=$(mktemp -d)",
    -- sh writes weft's process id, then becomes weft.
    "(sh -c 'echo $$ >\"$1/pid\"; exec \"$2\" \"$3\" 2>\"$1/err\"' sh " ..
      "\"$d\" " .. quote(H.weft_bin) .. " " .. quote(path) ..
      "; echo $? >\"$d/status\") | cat >\"$d/out\" &",
    -- A bounded wait for the marker (5 s), not a sleep to synchronise.
    "i=0",
    "until grep -q ready \"$d/err\" 2>/dev/null || [ $i -ge 500 ]; do",
    "  sleep 0.01; i=$((i + 1))",
    "done",
    "p=$(cat \"$d/pid\")",
    signals,
    "wait",
    "echo \"$d\"",
  }, "\n"))
  local dir = out:match("([^\n]+)\n$")
  local stdout, stderr = slurp(dir .. "/out"), slurp(dir .. "/err")
  local status = tonumber(slurp(dir .. "/status"))
  H.sh("rm -rf " .. quote(dir))
  os.remove(path)
  return stdout, stderr, status
end

-- A script that prints a line (buffered: stdout is a pipe), then waits
-- until a signal cancels it and cleans up.
local GRACEFUL = [[
  print("first")
  weft.go(function()
    local _, err = weft.sleep(60)
    print("child unwinds: " .. err.kind)
  end)
  io.stderr:write("ready\n")
  local _, err = weft.sleep(60)
  print("main unwinds: " .. err.kind .. ", " .. tostring(err.cause))
]]

-- A script that never yields, so that the runtime never acts on a signal.
local BUSY = [[
  print("first")
  io.stderr:write("ready\n")
  while true do end
]]

describe("gh-8: signals", function()
  it("gh-8: SIGTERM cancels the root context; tasks clean up; exit 143; " ..
    "what was printed reaches a pipe", task(function()
      local out, err, status = stop(script(GRACEFUL), "kill -TERM $p")
      assert.equal(143, status)
      assert.matches("^first\n", out)
      assert.matches("child unwinds: canceled\n", out)
      assert.matches("main unwinds: canceled, interrupted\n", out)
      assert.equal("ready\n", err)
    end))

  it("gh-8: SIGHUP cancels the root context as SIGTERM does; exit 129",
    task(function()
      local out, _, status = stop(script(GRACEFUL), "kill -HUP $p")
      assert.equal(129, status)
      assert.matches("^first\n", out)
      assert.matches("main unwinds: canceled, interrupted\n", out)
    end))

  it("gh-8: a failure caused by the signal exits 143 and says so",
    task(function()
      local out, err, status = stop(script([[
        io.stderr:write("ready\n")
        local _, e = weft.sleep(60)
        print("unwinds")
        return nil, e
      ]]), "kill -TERM $p")
      assert.equal(143, status)
      assert.equal("unwinds\n", out)
      assert.equal("ready\nweft: interrupted\n", err)
    end))

  it("gh-8: two SIGINTs close together do not skip shielded clean-up",
    task(function()
      -- The clean-up outlasts the grace in which a second signal counts
      -- as the same request.
      local out, _, status = stop(script([[
        io.stderr:write("ready\n")
        local _, err = weft.sleep(60)
        weft.sleep(0.3, weft.background())
        print("cleaned up after " .. err.kind)
        return nil, err
      ]]), "kill -INT $p; sleep 0.05; kill -INT $p")
      assert.equal(130, status)
      assert.equal("cleaned up after canceled\n", out)
    end))

  it("gh-8: a second SIGTERM soon after the first forces the exit from a " ..
    "loop that never yields, with what was printed flushed", task(function()
      local out, _, status = stop(script(BUSY),
        "kill -TERM $p; sleep 0.05; kill -TERM $p")
      assert.equal(143, status)
      assert.equal("first\n", out)
    end))

  it("gh-8: a stop signal after the grace forces the exit at once, with " ..
    "its own status", task(function()
      local out, _, status = stop(script(BUSY),
        "kill -INT $p; sleep 0.3; kill -TERM $p")
      assert.equal(143, status)
      assert.equal("first\n", out)
    end))
end)

describe("gh-8: script arguments", function()
  it("gh-8: 100,000 script arguments: all in arg, the first " ..
    "WEFT_MAX_SCRIPT_ARGS in ...", task(function()
      local path = script([[
        print(select("#", ...), (...), select(select("#", ...), ...))
        print(#arg, arg[1], arg[#arg])
      ]])
      local out, status = H.sh(quote(H.weft_bin) .. " " .. quote(path) ..
        " $(seq 1 100000) 2>&1")
      os.remove(path)
      assert.equal(0, status)
      assert.equal("7900\t1\t7900\n100000\t1\t100000\n", out)
    end))
end)
