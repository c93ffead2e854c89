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
