-- weft.tcp and weft.dns on loopback (runtime/stream.c, tcp.c, dns.c,
-- lua/weft/net.lua). gh-11.
local weft = require "weft"
local H = require "spec.helper"
local task = H.task
local tcp = weft.tcp

local spec = H.io_task -- no descriptor, task or child left behind

-- A listening server and a conn connected to it: server, client, server
-- side of the conn.
local function pair()
  local srv = assert(tcp.listen("127.0.0.1", 0))
  local accepted = weft.go(function() return assert(srv:accept()) end)
  local c = assert(tcp.connect("127.0.0.1", srv:port()))
  local s = accepted:join()
  return srv, c, s
end

describe("weft.tcp", function()
  it("gh-11: connects, talks lines both ways, sees EOF", spec(function()
      local srv, c, s = pair()
      assert.matches("^weft.tcp.server: 0x%x+ %(127.0.0.1:%d+%)$",
        tostring(srv))
      assert.matches("^weft.tcp.conn: 0x%x+ %(127.0.0.1:%d+%)$", tostring(c))
      local h, p = c:peer()
      assert.equal("127.0.0.1", h)
      assert.equal(srv:port(), p)
      assert.same({ s:peer() }, { c:sock() })
      assert.is_true(c:set_nodelay(true))
      assert.is_true(c:set_keepalive(true, 30))
      assert.is_true(c:write("one\r\ntwo\n\nlast"))
      assert.is_true(c:shutdown())
      local got = {}
      for l in s:lines() do got[#got + 1] = l end
      assert.same({ "one", "two", "", "last" }, got)
      local v, err = s:read()
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      assert.matches("read 127.0.0.1:%d+: end of file", err.message)
      s:close()
      v, err = c:read()
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      c:close()
      srv:close()
    end))

  it("connects by name", spec(function()
      local srv = assert(tcp.listen("localhost", 0))
      local g = weft.go(function()
        local s = assert(srv:accept())
        s:write("hi")
        s:close()
      end)
      local c = assert(tcp.connect("localhost", srv:port()))
      assert.equal("hi", c:read())
      c:close()
      g:join()
      srv:close()
    end))

  it("connection refused is nil, err naming the address", spec(function()
      local srv = assert(tcp.listen("127.0.0.1", 0))
      local port = srv:port()
      srv:close()
      local c, err = tcp.connect("127.0.0.1", port)
      assert.is_nil(c)
      assert.equal("ECONNREFUSED", err.kind)
      assert.matches("connect 127.0.0.1:" .. port .. ": connection refused",
        err.message)
    end))

  it("a connect cancelled by a deadline returns at once", spec(function()
      local srv = assert(tcp.listen("127.0.0.1", 0))
      local c, err = weft.scope(function()
        return tcp.connect("127.0.0.1", srv:port())
      end, { timeout = 0 })
      assert.is_nil(c)
      assert.equal("deadline", err.kind)
      -- Cancelled while it waits: another task cancels the context.
      local ctx, cancel = weft.with_cancel()
      local t = weft.go(function()
        return tcp.connect("127.0.0.1", srv:port(), ctx)
      end)
      cancel()
      local v, cerr = t:join()
      if v then v:close() else assert.equal("canceled", cerr.kind) end
      srv:close()
    end))

  it("a peer that closes gives EOF, one that resets ECONNRESET",
    spec(function()
      local srv, c, s = pair()
      local reader = weft.go(function() return c:read() end)
      weft.sleep(0.01)
      s:close()
      local v, err = reader:join()
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      c:close()
      -- Closing with unread bytes makes the kernel reset the connection.
      local c2 = assert(tcp.connect("127.0.0.1", srv:port()))
      local s2 = assert(srv:accept())
      assert(c2:write("unread"))
      weft.sleep(0.02)
      s2:close()
      v, err = c2:read()
      assert.is_nil(v)
      assert.equal("ECONNRESET", err.kind)
      assert.matches("connection reset", err.message)
      -- And writing to it fails (EPIPE, not a SIGPIPE that kills us).
      local ok, werr
      for _ = 1, 10 do
        ok, werr = c2:write(("x"):rep(65536))
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.truthy(werr.kind == "EPIPE" or werr.kind == "ECONNRESET")
      c2:close()
      srv:close()
    end))

  it("partial reads, and read_exactly across many small writes",
    spec(function()
      local srv, c, s = pair()
      assert(c:write("0123456789"))
      local got = ""
      while #got < 10 do
        local part = assert(s:read(3))
        assert.is_true(#part <= 3)
        got = got .. part
      end
      assert.equal("0123456789", got)
      assert.equal("", s:read(0))
      local w = weft.go(function()
        for i = 1, 1000 do
          assert(c:write(string.char(i % 256)))
          if i % 100 == 0 then weft.sleep(0) end
        end
      end)
      local want = {}
      for i = 1, 1000 do want[i] = string.char(i % 256) end
      assert.equal(table.concat(want), s:read_exactly(1000))
      w:join()
      -- read_exactly at the end: EOF, and what came stays readable.
      assert(c:write("abc"))
      c:close()
      local v, err = s:read_exactly(5)
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      assert.equal("abc", s:read())
      s:close()
      srv:close()
    end))

  it("a read cancelled mid-wait leaves the conn usable", spec(function()
      local srv, c, s = pair()
      local v, err = s:read(weft.with_timeout(0.02))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      v, err = s:read_line(weft.with_timeout(0.02))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert(c:write("partial"))
      v, err = s:read_line(weft.with_timeout(0.05))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert(c:write(" line\nrest"))
      assert.equal("partial line", s:read_line())
      assert.equal("rest", s:read())
      c:close()
      s:close()
      srv:close()
    end))

  it("close wakes a waiting reader and accepter; closed conns raise",
    spec(function()
      local srv, c, s = pair()
      local reader = weft.go(function() return s:read() end)
      local accepter = weft.go(function() return srv:accept() end)
      weft.sleep(0.01)
      s:close()
      srv:close()
      local v, err = reader:join()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      v, err = accepter:join()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      assert.is_true(s:close())
      assert.is_true(srv:close())
      assert.matches("^weft.tcp.conn: 0x%x+ %(closed%)$", tostring(s))
      assert.matches("%(closed%)$", tostring(srv))
      local ok, perr = pcall(function()
        local x = s:read()
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: attempt to use a closed conn", perr)
      ok, perr = pcall(srv.accept, srv)
      assert.is_false(ok)
      assert.matches("attempt to use a closed server", perr)
      c:close()
    end))

  it("a conn nobody closed is closed when collected", spec(function()
      do
        local srv, c, s = pair()
        assert(c:write("x") and s:write("y") and srv)
      end
    end))

  it("a slow reader blocks a fast writer; memory stays bounded",
    spec(function()
      local srv, c, s = pair()
      local chunk = {}
      for i = 1, 65536 do chunk[i] = string.char(i % 251) end
      chunk = table.concat(chunk)
      local N = 512 -- 32 MiB
      local written, done = 0, false
      collectgarbage()
      local kb0 = collectgarbage("count")
      local w = weft.go(function()
        for _ = 1, N do
          assert(c:write(chunk))
          written = written + 1
        end
        done = true
      end)
      assert.equal(chunk:sub(1, 1), s:read(1)) -- reading starts
      weft.sleep(0.2)
      local before = written
      weft.sleep(0.1)
      assert.is_false(done)
      assert.equal(before, written, "the writer went on")
      assert.is_true(written < 256, "more than 16 MiB in flight")
      local ahead = s:buffered()
      local _, queued = c:buffered()
      assert.is_true(ahead <= 1024 * 1024 + 65536, "read-ahead " .. ahead)
      assert.is_true(queued <= 1024 * 1024 + 65536, "queued " .. queued)
      assert.is_true(collectgarbage("count") - kb0 < 4096, "Lua heap grew")
      assert.equal(chunk:sub(2), s:read_exactly(65535))
      for _ = 2, N do assert.equal(chunk, s:read_exactly(65536)) end
      w:join()
      c:close()
      assert.equal("EOF", select(2, s:read()).kind)
      s:close()
      srv:close()
    end))

  it("gh-11: 1,000 connections echo 100 messages each", spec(function()
      local CONNS, MSGS = 1000, 100
      local srv = assert(tcp.listen("127.0.0.1", 0, { backlog = 1024 }))
      local server = weft.go(function()
        local g = weft.group()
        for _ = 1, CONNS do
          local s = assert(srv:accept())
          g:go(function()
            while true do
              local data = s:read()
              if not data then break end
              assert(s:write(data))
            end
            s:close()
          end)
        end
        assert.is_nil(g:wait())
      end)
      local g = weft.group()
      local bad = 0
      for i = 1, CONNS do
        g:go(function()
          local c = assert(tcp.connect("127.0.0.1", srv:port()))
          for m = 1, MSGS do
            local msg = ("conn %04d message %03d %s\n"):format(i, m,
              ("."):rep(m % 17))
            assert(c:write(msg))
            if c:read_exactly(#msg) ~= msg then bad = bad + 1 end
          end
          c:close()
        end)
      end
      assert.is_nil(g:wait())
      server:join()
      srv:close()
      assert.equal(0, bad)
    end))

  it("a server waiting in accept is not a deadlock; an idle one is",
    task(function()
      local probe = assert(tcp.listen("127.0.0.1", 0))
      local port = probe:port()
      probe:close()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([[
        local weft = require "weft"
        local srv = assert(weft.tcp.listen("127.0.0.1", %d))
        local c = assert(srv:accept())
        print("accepted", c:read_line())
        c:close()
        srv:close()
        local idle = assert(weft.tcp.listen("127.0.0.1", 0))
        weft.chan():recv()
        idle:close()
      ]]):format(port))
      f:close()
      local out, status = H.sh(("bash -c '(sleep 0.3; echo hello > " ..
        "/dev/tcp/127.0.0.1/%d) & %s %s 2>&1; rc=$?; wait; exit $rc'"):format(
        port, H.weft_bin, script))
      os.remove(script)
      assert.matches("accepted\thello\n", out)
      assert.matches("deadlock", out)
      assert.equal(1, status)
    end))

  it("rejects bad arguments, blaming the caller", spec(function()
      local ok, err = pcall(function()
        local x = tcp.connect(42, 1)
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: bad argument #1 to 'connect' " ..
        "%(string expected, got number%)", err)
      ok, err = pcall(function()
        local x = tcp.connect("127.0.0.1", 70000)
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: bad argument #2 to 'connect' " ..
        "%(port from 0 to 65535 expected, got 70000%)", err)
      ok, err = pcall(tcp.listen, "127.0.0.1", 0, 5)
      assert.is_false(ok)
      assert.matches("bad argument #3 to 'listen'", err)
      ok, err = pcall(tcp.connect, "127.0.0.1", 1, "ctx")
      assert.is_false(ok)
      assert.matches("weft.ctx expected", err)
      local srv, c, s = pair()
      ok, err = pcall(function()
        local x = c:write(42)
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: bad argument #2 to 'write' " ..
        "%(string expected, got number%)", err)
      ok, err = pcall(function()
        local x = c:read(-1)
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: bad argument #2 to 'read'", err)
      ok, err = pcall(function()
        local x = c.read({})
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: bad argument #1 to 'read' " ..
        "%(weft.tcp.conn expected, got table%)", err)
      ok, err = pcall(function() return c:read_exactly(1.5) end)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'read_exactly'", err)
      local v, lerr = tcp.listen("127.0.0.1", srv:port())
      assert.is_nil(v)
      assert.equal("EADDRINUSE", lerr.kind)
      assert.matches("listen 127.0.0.1:%d+", lerr.message)
      c:close()
      s:close()
      srv:close()
    end))
end)

describe("weft.dns", function()
  it("resolves localhost to a loopback address", spec(function()
      local addrs = assert(weft.dns.resolve("localhost"))
      local found = false
      for _, a in ipairs(addrs) do
        if a == "127.0.0.1" or a == "::1" then found = true end
      end
      assert.is_true(found)
      assert.same({ "::1" }, weft.dns.resolve("::1"))
    end))

  it("fails with nil, err; cancels; checks its arguments", spec(function()
      local v, err = weft.dns.resolve("no-such-host.invalid")
      assert.is_nil(v)
      assert.matches("^EAI_", err.kind)
      assert.matches("resolve no%-such%-host%.invalid", err.message)
      v, err = weft.dns.resolve("localhost", weft.with_timeout(0))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      local ok, perr = pcall(function()
        local x = weft.dns.resolve({})
        return x
      end)
      assert.is_false(ok)
      assert.matches("tcp_spec%.lua:%d+: bad argument #1 to 'resolve' " ..
        "%(string expected, got table%)", perr)
    end))
end)
