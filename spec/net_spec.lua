-- conn:read_into and the writes that hold their strings instead of copying
-- them (runtime/stream.c, lua/weft/stream.lua); gh-11's speed work.
local weft = require "weft"
local H = require "spec.helper"
local buffer = require "string.buffer"
local tcp = weft.tcp

local spec = H.io_task -- no descriptor, task or child left behind

local function pair()
  local srv = assert(tcp.listen("127.0.0.1", 0))
  local accepted = weft.go(function() return assert(srv:accept()) end)
  local c = assert(tcp.connect("127.0.0.1", srv:port()))
  return srv, c, accepted:join()
end

-- chunk(i) -> a distinct 100,000-byte string, made anew on each call.
local function chunk(i)
  return (string.char(65 + i % 26)):rep(99990) .. ("%10d"):format(i)
end

describe("conn:read_into", function()
  it("appends what came to the buffer, waits, and ends with EOF",
    spec(function()
      local srv, c, s = pair()
      local buf = buffer.new()
      buf:put("kept:")
      assert(c:write("hello"))
      assert.equal(5, s:read_into(buf))
      assert.equal("kept:hello", buf:tostring())
      -- Nothing there: it waits for the next bytes.
      local reader = weft.go(function() return s:read_into(buf, 3) end)
      weft.sleep(0.01)
      assert(c:write("world"))
      assert.equal(3, reader:join())
      assert.equal("kept:hellowor", buf:tostring())
      -- Mixed with read, the bytes keep their order.
      assert.equal("l", s:read(1))
      assert.equal(1, s:read_into(buf, 1e12))
      assert.equal("kept:helloword", buf:get())
      assert.is_true(c:shutdown())
      local k, err = s:read_into(buf)
      assert.is_nil(k)
      assert.equal("EOF", err.kind)
      assert.matches("read_into 127.0.0.1:%d+: end of file", err.message)
      assert.equal(0, s:read_into(buf, 0))
      assert.equal("", buf:tostring())
      c:close()
      s:close()
      srv:close()
    end))

  it("cancelled mid-wait leaves the conn usable; closed wakes it",
    spec(function()
      local srv, c, s = pair()
      local buf = buffer.new()
      local k, err = weft.scope(function() return s:read_into(buf) end,
        { timeout = 0.01 })
      assert.is_nil(k)
      assert.equal("deadline", err.kind)
      assert(c:write("after"))
      assert.equal(5, s:read_into(buf))
      assert.equal("after", buf:get())
      local reader = weft.go(function() return s:read_into(buf) end)
      weft.sleep(0.01)
      s:close()
      k, err = reader:join()
      assert.is_nil(k)
      assert.equal("closed", err.kind)
      c:close()
      srv:close()
    end))

  it("moves 50 MB byte for byte through one reused buffer", spec(function()
      local srv, c, s = pair()
      local n = 500
      local sender = weft.go(function()
        for i = 1, n do assert(c:write(chunk(i))) end
        assert(c:shutdown())
      end)
      local buf, got, i = buffer.new(), 0, 1
      while true do
        local k, err = s:read_into(buf)
        if not k then
          assert.equal("EOF", err.kind)
          break
        end
        got = got + k
        while #buf >= 100000 do
          assert(buf:get(100000) == chunk(i), "chunk " .. i)
          i = i + 1
        end
      end
      assert.equal(100000 * n, got)
      assert.equal(n + 1, i)
      sender:join()
      c:close()
      s:close()
      srv:close()
    end))

  it("rejects bad arguments, blaming the caller", spec(function()
      local srv, c, s = pair()
      local buf = buffer.new()
      local function fails(pat, f)
        local ok, err = pcall(f)
        assert.is_false(ok)
        assert.matches(pat, err)
      end
      fails("net_spec%.lua:%d+: bad argument #2 to 'read_into' " ..
        "%(string.buffer expected, got string%)",
        function() local k = s:read_into("x"); return k end)
      fails("net_spec%.lua:%d+: bad argument #3 to 'read_into' " ..
        "%(non%-negative number expected, got number%)",
        function() local k = s:read_into(buf, -1); return k end)
      fails("bad argument #3 to 'read_into' %(non%-negative number " ..
        "expected, got nan%)", function() return s:read_into(buf, 0 / 0) end)
      fails("bad argument #4 to 'read_into' %(weft.ctx expected",
        function() return s:read_into(buf, 10, {}) end)
      fails("bad argument #1 to 'read_into' %(weft.tcp.conn expected",
        function() return c.read_into({}, buf) end)
      c:close()
      fails("net_spec%.lua:%d+: attempt to use a closed conn",
        function() local k = c:read_into(buf); return k end)
      s:close()
      srv:close()
    end))
end)

describe("conn:write of long strings", function()
  it("a string collected while its write is queued still arrives whole",
    spec(function()
      local srv, c, s = pair()
      local n = 40 -- 4 MB: most of it waits in the queue
      local writer = weft.go(function()
        for i = 1, n do assert(c:write(chunk(i))) end
        return true
      end)
      weft.sleep(0.02) -- the writer waits for the queue to drain
      -- Only the queue refers to the strings now; collect them if it
      -- did not, and reuse their memory.
      collectgarbage()
      collectgarbage()
      local junk = 0
      for i = 1, 200 do junk = junk + #(("%d"):format(i):rep(20000)) end
      assert.is_true(junk > 0)
      for i = 1, n do
        assert(s:read_exactly(100000) == chunk(i), "chunk " .. i)
      end
      assert.is_true(writer:join())
      c:close()
      s:close()
      srv:close()
    end))

  it("a conn closed or dropped with long writes queued frees them",
    spec(function()
      local srv, c, s = pair()
      local writer = weft.go(function()
        for i = 1, 1000 do -- 100 MB, more than the kernel holds
          local ok, err = c:write(chunk(i))
          if not ok then return err.kind end
        end
      end)
      weft.sleep(0.02)
      c:close()
      assert.equal("closed", writer:join())
      collectgarbage()
      s:close()
      -- Dropped without close: __gc closes it with the queue full.
      local c2 = assert(tcp.connect("127.0.0.1", srv:port()))
      local s2 = assert(srv:accept())
      local written = 0
      for i = 1, 1000 do
        assert(c2:write(chunk(i)))
        written = written + 100000
        if select(2, c2:buffered()) > 0 then break end
      end
      assert.is_true(select(2, c2:buffered()) > 0)
      c2 = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      weft.sleep(0.01)
      local got = 0
      while true do
        local v = s2:read()
        if not v then break end
        got = got + #v
      end
      assert.is_true(got < written) -- the queue went with the conn
      s2:close()
      srv:close()
    end))
end)

describe("gh-11 hostile: conns", function()
  it("write and shutdown after shutdown fail with EPIPE", spec(function()
      local srv, c, s = pair()
      assert.is_true(c:shutdown())
      for _, data in ipairs { "x", chunk(1) } do
        local ok, err = c:write(data)
        assert.is_nil(ok)
        assert.equal("EPIPE", err.kind)
        assert.matches("write 127.0.0.1:%d+", err.message)
      end
      local ok, err = c:shutdown()
      assert.is_nil(ok)
      assert.equal("EPIPE", err.kind)
      local v, rerr = s:read()
      assert.is_nil(v)
      assert.equal("EOF", rerr.kind)
      -- The other direction still works.
      assert.is_true(s:write("back"))
      assert.equal("back", c:read())
      c:close()
      s:close()
      srv:close()
    end))

  it("one task reads while another writes the same conn", spec(function()
      local srv, c, s = pair()
      local n = 30 -- 3 MB each way, more than either queue holds
      local echo = weft.go(function()
        while true do
          local v = s:read()
          if not v then return end
          assert(s:write(v))
        end
      end)
      local writer = weft.go(function()
        for i = 1, n do assert(c:write(chunk(i))) end
        return true
      end)
      local reader = weft.go(function()
        for i = 1, n do
          assert(c:read_exactly(100000) == chunk(i), "chunk " .. i)
        end
        return true
      end)
      assert.is_true(writer:join())
      assert.is_true(reader:join())
      c:close()
      echo:join()
      s:close()
      srv:close()
    end))

  it("close wakes every task waiting on the conn, whatever it waits in",
    spec(function()
      local srv, c, s = pair()
      local function waiter(f)
        return weft.go(function()
          local v, err = f()
          return v, err and err.kind
        end)
      end
      local reader = waiter(function() return c:read_exactly(10) end)
      local writer = waiter(function()
        for i = 1, 1000 do
          local ok, err = c:write(chunk(i))
          if not ok then return nil, err end
        end
      end)
      weft.sleep(0.02) -- the writer waits for the queue to drain
      local shut = waiter(function() return c:shutdown() end)
      weft.yield()
      c:close()
      assert.same({ nil, "closed" }, { reader:join() })
      assert.same({ nil, "closed" }, { writer:join() })
      assert.same({ nil, "closed" }, { shut:join() })
      -- read_into and read_line too, on a fresh conn.
      local c2 = assert(tcp.connect("127.0.0.1", srv:port()))
      local s2 = assert(srv:accept())
      local into = waiter(function() return c2:read_into(buffer.new()) end)
      weft.yield()
      c2:close()
      assert.same({ nil, "closed" }, { into:join() })
      local line = waiter(function() return s2:read_line() end)
      weft.yield()
      s2:close()
      assert.same({ nil, "closed" }, { line:join() })
      s:close()
      srv:close()
    end))

  it("a cancelled accept, read_line or shutdown leaves things usable",
    spec(function()
      local srv = assert(tcp.listen("127.0.0.1", 0))
      local v, err = srv:accept(weft.with_timeout(0.01))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      local c = assert(tcp.connect("127.0.0.1", srv:port()))
      local s = assert(srv:accept())
      assert(c:write("half"))
      v, err = s:read_line(weft.with_timeout(0.02))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert(c:write(" line\n"))
      assert.equal("half line", s:read_line())
      -- A shutdown waiting behind a full queue, cancelled: it still
      -- happens once the queue is written.
      local n = 0
      repeat
        n = n + 1
        assert(c:write(chunk(n)))
      until select(2, c:buffered()) > 0
      v, err = c:shutdown(weft.with_timeout(0.01))
      if v == nil then assert.equal("deadline", err.kind) end
      for i = 1, n do assert(s:read_exactly(100000) == chunk(i)) end
      v, err = s:read()
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      c:close()
      s:close()
      srv:close()
    end))

  it("a conn collected with writes and a shutdown in flight", spec(function()
      local srv = assert(tcp.listen("127.0.0.1", 0))
      local s
      do
        local c = assert(tcp.connect("127.0.0.1", srv:port()))
        s = assert(srv:accept())
        local n = 0
        repeat
          n = n + 1
          assert(c:write(chunk(n)))
        until select(2, c:buffered()) > 0
        c:shutdown(weft.with_timeout(0)) -- refused: nothing waits
        weft.go(function() c:shutdown(weft.with_timeout(0.01)) end):join()
      end
      collectgarbage()
      collectgarbage()
      weft.sleep(0.01)
      local got = 0
      while true do
        local v = s:read()
        if not v then break end
        got = got + #v
      end
      assert.is_true(got > 0)
      s:close()
      srv:close()
    end))

  it("sizes: huge reads read what came; bad ones blame the caller",
    spec(function()
      local srv, c, s = pair()
      assert(c:write("abc"))
      local buf = buffer.new()
      assert.equal(3, s:read_into(buf, math.huge))
      assert.equal("abc", buf:get())
      assert(c:write("de"))
      assert.equal(1, s:read_into(buf, 1.5)) -- a fraction rounds down
      assert.equal(1, s:read_into(buf, 1e300))
      assert.equal("de", buf:get())
      local function fails(pat, f)
        local ok, err = pcall(f)
        assert.is_false(ok)
        assert.matches(pat, err)
      end
      fails("net_spec%.lua:%d+: bad argument #3 to 'set_keepalive' " ..
        "%(at most 32767 seconds expected%)", function()
          local ok = c:set_keepalive(true, 1e20)
          return ok
        end)
      for _, b in ipairs { 0, -1, 1.5, 0 / 0 } do
        fails("net_spec%.lua:%d+: bad argument #3 to 'listen' " ..
          "%(backlog: positive integer expected%)", function()
            local v = tcp.listen("127.0.0.1", 0, { backlog = b })
            return v
          end)
      end
      local big = assert(tcp.listen("127.0.0.1", 0, { backlog = 1e20 }))
      big:close()
      c:close()
      s:close()
      srv:close()
    end))
end)
