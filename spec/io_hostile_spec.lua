-- A hostile review of the I/O layer of gh-11 (runtime/stream.c, tcp.c,
-- udp.c, dns.c, process.c, signal.c, fs.c, io.c and their Lua sides):
-- values and bytes neither lost nor duplicated, no task left waiting, no
-- descriptor, handle or child left behind, whatever order things happen in.
local weft = require "weft"
local H = require "spec.helper"
local tcp, udp, P = weft.tcp, weft.udp, weft.process
local task = H.task

local spec = H.io_task -- no descriptor, task or child left behind

local function pair()
  local srv = assert(tcp.listen("127.0.0.1", 0))
  local accepted = weft.go(function() return assert(srv:accept()) end)
  local c = assert(tcp.connect("127.0.0.1", srv:port()))
  return srv, c, accepted:join()
end

-- exists(pid): the process is there (running or a zombie).
local function exists(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f then f:close() end
  return f ~= nil
end

-- script(code) -> output, status of the weft command running code.
local function script(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local out, status = H.sh(H.weft_bin .. " " .. path .. " 2>&1")
  os.remove(path)
  return out, status
end

describe("gh-11 hostile: streams", function()
  it("gh-11: read with a huge max reads what came; read_exactly past 2^31 " ..
    "blames the caller", spec(function()
      local srv, c, s = pair()
      assert.is_true(c:write("hello"))
      assert.equal("hello", s:read(math.huge))
      assert.is_true(c:write("again"))
      assert.equal("again", s:read(2 ^ 40))
      local ok, err = pcall(s.read_exactly, s, 2 ^ 40)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'read_exactly'", err)
      assert.equal("", s:read(0))
      c:close()
      s:close()
      srv:close()
    end))

  it("gh-11: binary data with \\r\\n and \\0 arrives byte for byte",
    spec(function()
      local srv, c, s = pair()
      local parts = {}
      for i = 0, 255 do parts[#parts + 1] = string.char(i) .. "\r\n\0" end
      local bin = table.concat(parts):rep(300)
      local w = weft.go(function()
        assert(c:write(bin))
        assert(c:shutdown())
      end)
      local got = {}
      while true do
        local d, err = s:read(7777)
        if not d then
          assert.equal("EOF", err.kind)
          break
        end
        got[#got + 1] = d
      end
      w:join()
      assert.is_true(table.concat(got) == bin)
      c:close()
      s:close()
      srv:close()
    end))

  it("gh-11: read_exactly cancelled half-way keeps the half", spec(function()
      local srv, c, s = pair()
      assert(c:write("12345"))
      local ctx, cancel = weft.with_cancel(weft.context())
      local t = weft.go(function() return s:read_exactly(10, ctx) end)
      weft.sleep(0.02)
      cancel()
      local v, err = t:join()
      assert.is_nil(v)
      assert.equal("canceled", err.kind)
      assert(c:write("67890"))
      assert.equal("1234567890", s:read_exactly(10))
      c:close()
      s:close()
      srv:close()
    end))

  it("gh-11: a line over the limit fails, and the bytes stay readable",
    spec(function()
      local srv, c, s = pair()
      local long = ("x"):rep(3 * 1024 * 1024)
      local w = weft.go(function() return c:write(long .. "\nnext\n") end)
      local l, err = s:read_line()
      assert.is_nil(l)
      assert.equal("ENOBUFS", err.kind)
      local n = 0
      while n < #long do n = n + #assert(s:read(math.min(65536, #long - n))) end
      assert.equal("", s:read_line())
      assert.equal("next", s:read_line())
      assert.is_true(w:join())
      c:close()
      s:close()
      srv:close()
    end))

  it("gh-11: closing from another task wakes a writer with a full queue",
    spec(function()
      local srv, c, s = pair()
      local w = weft.go(function() return c:write(("y"):rep(8 * 1048576)) end)
      weft.sleep(0.02)
      local _, queued = c:buffered()
      assert.is_true(queued > 1048576)
      c:close()
      local ok, err = w:join()
      assert.is_nil(ok)
      assert.equal("closed", err.kind)
      s:close()
      srv:close()
    end))

  it("gh-11: a cancelled writer returns; the queue still drains in order",
    spec(function()
      local srv, c, s = pair()
      local big = ("z"):rep(32 * 1048576)
      local ctx, cancel = weft.with_cancel(weft.context())
      local w = weft.go(function() return c:write(big, ctx) end)
      weft.sleep(0.02)
      cancel()
      local ok, err = w:join()
      assert.is_nil(ok)
      assert.equal("canceled", err.kind)
      local r = weft.go(function()
        local got = {}
        while true do
          local d = s:read()
          if not d then break end
          got[#got + 1] = d
        end
        return table.concat(got)
      end)
      assert(c:write("END"))
      assert(c:shutdown())
      assert.is_true(r:join() == big .. "END")
      c:close()
      s:close()
      srv:close()
    end))

  it("gh-11: a peer that closes mid-write fails the writer, never hangs",
    spec(function()
      local srv, c, s = pair()
      local w = weft.go(function()
        local chunk = ("w"):rep(1048576)
        for _ = 1, 64 do
          local ok, err = c:write(chunk)
          if not ok then return err end
        end
      end)
      weft.sleep(0.02)
      s:close() -- unread bytes: the kernel answers with a reset
      local err = w:join()
      assert.is_not_nil(err)
      assert.is_truthy(err.kind == "ECONNRESET" or err.kind == "EPIPE")
      c:close()
      srv:close()
    end))

  it("gh-11: a conn and a server collected while a task waits on them",
    spec(function()
      local port
      local acc = weft.go(function()
        local srv = assert(tcp.listen("127.0.0.1", 0))
        port = srv:port()
        local s = srv:accept() -- only this wait refers to srv now
        collectgarbage()
        local line = s:read_line() -- nor to s
        s:close()
        return line
      end)
      weft.sleep(0.01)
      collectgarbage()
      collectgarbage()
      local c = assert(tcp.connect("127.0.0.1", port))
      weft.sleep(0.01)
      collectgarbage()
      collectgarbage()
      assert(c:write("kept\n"))
      assert.equal("kept", acc:join())
      c:close()
    end))

  it("gh-11: 1,000 conns opened and dropped without reading", spec(function()
      local srv = assert(tcp.listen("127.0.0.1", 0, { backlog = 1024 }))
      local n = 1000
      local acc = weft.go(function()
        for _ = 1, n do assert(srv:accept()):close() end
      end)
      local g = weft.group()
      for _ = 1, n do
        g:go(function()
          local c = assert(tcp.connect("127.0.0.1", srv:port()))
          c:write("unread")
          c:close()
        end)
      end
      assert.is_nil(g:wait())
      acc:join()
      srv:close()
    end))

  it("gh-11: an idle conn does not hide a deadlock", task(function()
      local out, status = script [[
        local weft = require "weft"
        local srv = assert(weft.tcp.listen("127.0.0.1", 0))
        local a = weft.go(function() return srv:accept() end)
        local c = assert(weft.tcp.connect("127.0.0.1", srv:port()))
        local s = a:join()
        weft.chan():recv()
        print(c, s)
      ]]
      assert.matches("deadlock", out)
      assert.equal(1, status)
    end))
end)

describe("gh-11 hostile: UDP and DNS", function()
  it("gh-11: close from another task wakes recv_from", spec(function()
      local u = assert(udp.bind("127.0.0.1", 0))
      local t = weft.go(function() return u:recv_from() end)
      weft.sleep(0.01)
      u:close()
      local v, err = t:join()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
    end))

  it("gh-11: a DNS lookup cancelled in flight returns at once",
    spec(function()
      for _ = 1, 20 do
        local ctx, cancel = weft.with_cancel(weft.context())
        local t = weft.go(function()
          return weft.dns.resolve("localhost", ctx)
        end)
        weft.go(cancel)
        local v, err = t:join()
        assert.is_truthy(v or err.kind == "canceled")
      end
      -- Late completions of the cancelled lookups were dropped: a new one
      -- gets its own answer.
      assert.is_truthy(#assert(weft.dns.resolve("localhost")) >= 1)
    end))
end)

describe("gh-11 hostile: processes", function()
  it("gh-11: a running child nobody waits for does not hide a deadlock, " ..
    "and is ended at exit", task(function()
      local t0 = weft.now()
      local out, status = script [[
        local weft = require "weft"
        local p = assert(weft.process.spawn { "sleep", args = { "30" } })
        io.stdout:write("pid ", p:pid(), "\n")
        io.stdout:flush()
        weft.chan():recv()
      ]]
      assert.matches("deadlock", out)
      assert.equal(1, status)
      assert.is_true(weft.now() - t0 < 10, "the deadlock waited for the child")
      local pid = out:match("pid (%d+)")
      for _ = 1, 300 do
        if not exists(pid) then break end
        weft.sleep(0.01)
      end
      assert.is_false(exists(pid))
    end))

  it("gh-11: a task waiting for a child is no deadlock", task(function()
      local out, status = script [[
        local weft = require "weft"
        local p = assert(weft.process.spawn { "sleep", args = { "0.2" } })
        print("code", p:wait())
      ]]
      assert.equal("code\t0\n", out)
      assert.equal(0, status)
    end))

  it("gh-11: a child that closes stdout but keeps running", spec(function()
      local r = assert(P.run { "sh", "-c", "exec >&-; sleep 0.2; exit 3" })
      assert.equal(3, r.code)
      assert.equal("", r.stdout)
      local v, err = P.run({ "sh", "-c", "exec >&-; exec sleep 30" },
        { timeout = 0.2 })
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
    end))

  it("gh-11: run cancelled with its outputs half read", spec(function()
      local t0 = weft.now()
      local v, err = P.run({ "sh", "-c", "yes; sleep 30" }, { timeout = 0.2 })
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert.is_true(weft.now() - t0 < 5)
    end))

  it("gh-11: a child that ignores SIGTERM is killed after the grace",
    spec(function()
      local p = assert(P.spawn { "sh", args = { "-c",
        "trap '' TERM; echo ready; exec sleep 30" }, stdout = "pipe",
        grace = 0.1 })
      assert.equal("ready", p.stdout:read_line())
      local ctx = weft.with_timeout(weft.context(), 0.05)
      local _, err = p:wait(ctx)
      assert.equal("deadline", err.kind)
      assert.same({ 137, "SIGKILL" }, { p:wait() })
      p:close()
    end))

  it("gh-11: two waiters, one cancelled, both see the end", spec(function()
      local p = assert(P.spawn { "sleep", args = { "30" }, grace = 0.1 })
      local other = weft.go(function() return p:wait() end)
      local ctx = weft.with_timeout(weft.context(), 0.05)
      local _, err = p:wait(ctx)
      assert.equal("deadline", err.kind)
      assert.same({ 143, "SIGTERM" }, { other:join() })
    end))
end)

describe("gh-11 hostile: signals, stdin, files, virtual time", function()
  local function kill(sig)
    assert.equal(0, assert(P.run { "kill", "-" .. sig, H.pid() }).code)
  end

  it("gh-11: two tasks waiting get the one signal; none arrives later",
    spec(function()
      local a = weft.go(function() return weft.signal.wait("SIGURG") end)
      local b = weft.go(function() return weft.signal.wait("SIGURG") end)
      weft.sleep(0.01)
      kill("URG")
      assert.equal("SIGURG", a:join())
      assert.equal("SIGURG", b:join())
      kill("URG") -- nobody listens: SIGURG's default is to ignore it
      local ctx = weft.with_timeout(weft.context(), 0.1)
      local v, err = weft.signal.wait("SIGURG", ctx)
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
    end))

  it("gh-11: stdin at EOF twice, on a pipe and on /dev/null", spec(function()
      for _, input in ipairs { "printf ab |", "</dev/null" } do
        local redirect = input:sub(1, 1) == "<"
        local cmd = (redirect and "" or input) .. " " .. H.weft_bin ..
          " -e 'print(weft.stdin:read(), select(2, weft.stdin:read()).kind, " ..
          "select(2, weft.stdin:read_line()).kind)' " ..
          (redirect and input or "")
        local out, status = H.sh(cmd)
        assert.equal(0, status)
        assert.matches("EOF\tEOF\n$", out)
      end
    end))

  it("gh-11: write_file cancelled at any point leaves no temporary file",
    spec(function()
      local dir = assert(weft.fs.tmpdir())
      for i = 1, 40 do
        local ctx, cancel = weft.with_cancel(weft.context())
        local t = weft.go(function()
          return weft.fs.write_file(dir .. "/f", ("d"):rep(i * 1000), ctx)
        end)
        -- Cancel at a different point each time: 0 to 3 yields later.
        weft.go(function()
          for _ = 1, i % 4 do weft.sleep(0) end
          cancel()
        end)
        t:join()
      end
      weft.sleep(0.05) -- abandoned opens complete on the pool
      for _, name in ipairs(assert(weft.fs.readdir(dir))) do
        assert.equal("f", name)
        assert(weft.fs.remove(dir .. "/" .. name))
      end
      assert(weft.fs.remove(dir))
    end))

  it("gh-11: virtual time does not jump while a read is pending",
    spec(function()
      local ok, err = weft.virtual_time(function()
        local p = assert(P.spawn { "sh", args = { "-c", "sleep 0.2; echo x" },
          stdout = "pipe" })
        local slept = weft.go(function()
          weft.sleep(3600)
          return "slept"
        end)
        assert.equal("x", p.stdout:read_line())
        assert.is_true(weft.now() < 1, "the clock jumped over a pending read")
        assert.same({ 0 }, { p:wait() })
        p:close()
        assert.equal("slept", slept:join())
      end)
      assert.is_true(ok, tostring(err))
    end))
end)

describe("gh-11 hostile: names", function()
  it("gh-11: a name with no IPv4 or IPv6 address fails connect and " ..
    "resolve with an error, not nil, nil", H.task(function()
      local dnscore = require "weft.dnscore"
      local S = require "weft.sched"
      local orig = dnscore.resolve
      -- The resolver answers with an empty list (only other families).
      dnscore.resolve = function(id)
        weft.go(function() S.R.io_done(id, {}) end)
        return true
      end
      local c, err = weft.tcp.connect("only-other-families.invalid", 80)
      local list, rerr = weft.dns.resolve("only-other-families.invalid")
      dnscore.resolve = orig
      assert.is_nil(c)
      assert.equal("EAI_NODATA", err.kind)
      assert.matches("resolve only%-other%-families%.invalid: no IPv4 or " ..
        "IPv6 address", err.message)
      assert.is_nil(list)
      assert.equal("EAI_NODATA", rerr.kind)
    end))
end)
