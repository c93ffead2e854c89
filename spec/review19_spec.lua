-- Review 19: regressions found by the hostile review of the I/O modules
-- (processes, UDP, stdin on a file, zero bytes, SIGPIPE listeners, stdin
-- and stdout on one socket).
local weft = require "weft"
local H = require "spec.helper"

local THIS = "review19_spec.lua"

-- raised(fn) -> the message fn raised, and the line fn's body starts on:
-- each check below raises on its body's first line, so that the message
-- must blame that line (the caller's, not weft's).
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "did not raise")
  return tostring(err), debug.getinfo(fn, "S").linedefined
end

local function blames(fn, pattern)
  local msg, line = raised(fn)
  assert.truthy(msg:find(THIS .. ":" .. line .. ": ", 1, true),
    "blames the wrong line: " .. msg)
  assert.truthy(msg:find(pattern, 1, true), msg)
end

describe("review 19: processes", function()
  -- grace * 1000 past 2^64 was converted to 0 ms: a SIGKILL at once.
  for _, grace in ipairs { math.huge, 1e300 } do
    it("grace = " .. grace .. " never sends SIGKILL", H.io_task(function()
      local p = assert(weft.process.spawn { "sh", args = { "-c",
        "trap '' TERM; echo ready; sleep 5" }, stdout = "pipe",
        grace = grace })
      assert.equal("ready", p.stdout:read_line())
      local code, err = p:wait(weft.with_timeout(0.05))
      assert.is_nil(code)
      assert.equal("deadline", err.kind)
      -- SIGTERM was sent and ignored; with a SIGKILL at once the child
      -- would have exited by now.
      code, err = p:wait(weft.with_timeout(0.3))
      assert.is_nil(code)
      assert.equal("deadline", err.kind)
      assert.is_true(p:kill("SIGKILL"))
      assert.same({ 137, "SIGKILL" }, { p:wait() })
      p:close()
    end))
  end

  it("kill with an unknown signal blames the caller", H.io_task(function()
    local p = assert(weft.process.spawn { "true" })
    blames(function() p:kill("SIGNOPE") end,
      "bad argument #2 to 'kill' (no signal 'SIGNOPE')")
    blames(function() p:kill(0) end, "bad argument #2 to 'kill'")
    blames(function() p:kill({}) end, "bad argument #2 to 'kill' " ..
      "(signal name or number expected, got table)")
    blames(function() p:wait("soon") end,
      "bad argument #2 to 'wait' (weft.ctx expected, got string)")
    assert.same({ 0 }, { p:wait() })
  end))

  it("run's timeout is checked as run's argument", H.io_task(function()
    blames(function() weft.process.run({ "true" }, { timeout = "soon" }) end,
      "bad argument #2 to 'run' (field 'timeout': number expected, got " ..
      "string)")
    blames(function() weft.process.run({ "true" }, { timeout = 0 / 0 }) end,
      "bad argument #2 to 'run' (field 'timeout': number expected, got nan)")
    blames(function() weft.process.run({ "true" }, { grace = -1 }) end,
      "bad argument #2 to 'run' (field 'grace': non-negative number")
    blames(function() weft.process.run({ "true", {} }) end,
      "bad argument #1 to 'run' (element 2: string expected, got table)")
  end))

  -- Each string went to C as a C string, cut at its first zero byte.
  it("a zero byte in a command, argument, variable or cwd is refused",
    H.io_task(function()
      blames(function() weft.process.run { "printf", "%s", "a\0b" } end,
        "bad argument #1 to 'run' (element 3 contains a zero byte)")
      blames(function() weft.process.run { "true\0junk" } end,
        "bad argument #1 to 'run' (the command contains a zero byte)")
      blames(function() weft.process.spawn { "true", args = { "a\0" } } end,
        "bad argument #1 to 'spawn' (field 'args' at 1 contains a zero byte)")
      blames(function() weft.process.spawn { "true", env = { X = "1\0002" } }
      end, "bad argument #1 to 'spawn' (field 'env': X contains a zero byte)")
      blames(function() weft.process.run({ "true" }, { env = { X = "1\0" } })
      end, "bad argument #2 to 'run' (field 'env': X contains a zero byte)")
      blames(function() weft.process.spawn { "true", cwd = "/tmp\0/x" } end,
        "bad argument #1 to 'spawn' (field 'cwd' contains a zero byte)")
      blames(function() weft.process.spawn { "true", env = { ["A=B"] = "1" } }
      end, "bad argument #1 to 'spawn' (field 'env': bad name \"A=B\")")
      blames(function() weft.process.spawn { "true", env = { X = {} } } end,
        "bad argument #1 to 'spawn' (field 'env': X: string expected, got " ..
        "table)")
    end))

  it("spawn leaves the caller's argument list as it was", H.io_task(function()
    local args = { "-c", "exit $0", 3 }
    local p = assert(weft.process.spawn { "sh", args = args })
    assert.same({ 3 }, { p:wait() })
    assert.equal("number", type(args[3]))
  end))

  -- Each argument took a slot of the C stack: "stack overflow" at ~65,000.
  it("spawn takes 100,000 arguments", H.io_task(function()
    local argv = { "sh", "-c", 'echo "$#"', "sh" }
    for i = 5, 100004 do argv[i] = "a" end
    local r = assert(weft.process.run(argv))
    assert.equal("100000\n", r.stdout)
    assert.equal(0, r.code)
  end))
end)

describe("review 19: names with a zero byte", function()
  it("connect, resolve and bind refuse a host with a zero byte",
    H.io_task(function()
      blames(function() weft.tcp.connect("127.0.0.1\0.example", 1) end,
        "bad argument #1 to 'connect' (host contains a zero byte)")
      blames(function() weft.dns.resolve("localhost\0x") end,
        "bad argument #1 to 'resolve' (host contains a zero byte)")
      blames(function() weft.udp.bind("127.0.0.1\0", 0) end,
        "bad argument #1 to 'bind' (host contains a zero byte)")
      blames(function() weft.tcp.listen("127.0.0.1\0", 0) end,
        "bad argument #1 to 'listen' (host contains a zero byte)")
    end))
end)

describe("review 19: UDP", function()
  it("an oversized datagram is send_to's bad argument", H.io_task(function()
    local s = assert(weft.udp.bind("127.0.0.1", 0))
    blames(function() s:send_to(("x"):rep(70000), "127.0.0.1", s:port()) end,
      "bad argument #2 to 'send_to' (at most 65536 bytes in a datagram, " ..
      "got 70000)")
    s:close()
  end))
end)

describe("review 19: stdin on a file", function()
  local function run_with_stdin(script, input)
    local dir = os.tmpname()
    local f = assert(io.open(dir, "w"))
    f:write(input)
    f:close()
    local out, status = H.sh(H.weft_bin .. " " .. H.script(script) .. " < " ..
      dir .. " 2>&1")
    os.remove(dir)
    return out, status
  end

  -- A huge max raised from weft's internals, or (with a line buffered)
  -- returned "": neither data nor the end, so a read loop spun.
  it("read with a huge max returns the data, as from a pipe", function()
    local out, status = run_with_stdin([[
      local weft = require "weft"
      io.write(weft.stdin:read(2^32), "|")
      local data, err = weft.stdin:read(1e300)
      io.write(tostring(data), " ", err.kind, "\n")
    ]], "abc")
    assert.equal(0, status, out)
    assert.equal("abc|nil EOF\n", out)
  end)

  it("read after read_line returns the rest, then EOF", function()
    local out, status = run_with_stdin([[
      local weft = require "weft"
      io.write(weft.stdin:read_line(), "|")
      io.write(weft.stdin:read(math.huge), "|")
      io.write(weft.stdin:read(2.5) or "eof", "|")
      local data, err = weft.stdin:read(1e300)
      io.write(tostring(data), " ", err.kind, "\n")
    ]], "one\ntwo\nthree")
    assert.equal(0, status, out)
    assert.equal("one|two\nthree|eof|nil EOF\n", out)
  end)
end)

describe("review 19: SIGPIPE", function()
  -- The listener's stop put back the SIG_DFL it saw before the first conn,
  -- and the next write to a closed peer killed the process (status 141).
  it("a SIGPIPE listener that stops leaves writes failing, not fatal",
    function()
      -- The child starts with SIGPIPE's default handler, as from a shell
      -- (this process ignores it: a child inherits that).
      local out, status = H.sh("env --default-signal=PIPE " .. H.weft_bin ..
        " " .. H.script([[
        local weft = require "weft"
        local _, stop = weft.signal.notify("SIGPIPE")
        local srv = assert(weft.tcp.listen("127.0.0.1", 0))
        local t = weft.go(function() return srv:accept() end)
        local c = assert(weft.tcp.connect("127.0.0.1", srv:port()))
        local a = assert(t:join())
        stop()
        a:close()
        srv:close()
        weft.sleep(0.05)
        local err
        for _ = 1, 20 do
          local ok, e = c:write(("x"):rep(100000))
          if not ok then err = e break end
          weft.sleep(0.01)
        end
        c:close()
        print(err and err.kind)
      ]]) .. " 2>&1")
      assert.equal(0, status, out)
      assert.truthy(out == "EPIPE\n" or out == "ECONNRESET\n", out)
    end)
end)

describe("review 19: stdin and stdout on one file description", function()
  -- inetd's way (systemd's Accept=yes, socat): fd 0 and 1 are one socket,
  -- one file description. Reading stdin made it non-blocking, and
  -- weft.stdout:write failed with EAGAIN once its buffer was full. Here
  -- the description is a FIFO's, opened read-write (a socket needs more
  -- than a shell to make): the same for libuv and the kernel.
  it("weft.stdout:write waits for a slow reader", H.io_task(function()
    local dir = assert(weft.fs.tmpdir())
    local fifo = dir .. "/fifo"
    assert.equal(0, assert(weft.process.run { "mkfifo", fifo }).code)
    -- stdin is opened (read(0) reads nothing, and the child does not read
    -- back what it writes), which makes the description non-blocking.
    local child = H.script([[
      local weft = require "weft"
      assert(weft.stdin:read(0) == "")
      assert(weft.stdout:write(("y"):rep(1024 * 1024)))
      assert(weft.stdout:write("end\n"))
    ]])
    local run = weft.go(function()
      return weft.process.run { "bash", "-c", "exec 3<>" .. fifo ..
        " && exec " .. H.weft_bin .. " " .. child .. " <&3 >&3 3>&-" }
    end)
    local r = assert(weft.fs.open(fifo, "r"))
    local n = 0
    while true do -- a slow reader, until the child exits (no writer left)
      local data, err = r:read(65536)
      if not data then
        assert.equal("EOF", err.kind)
        break
      end
      n = n + #data
      weft.sleep(0.002)
    end
    r:close()
    local res = assert(run:join())
    assert.equal(0, res.code, res.stderr)
    assert.equal(1024 * 1024 + 4, n)
    os.remove(child)
    H.rmtree(dir)
  end))
end)
