-- weft.udp on loopback (runtime/udp.c, lua/weft/net.lua). gh-11.
local weft = require "weft"
local H = require "spec.helper"
local task = H.task
local udp = weft.udp

local nfds = H.nfds

-- spec(fn): a task that also fails if it leaves a descriptor open or a
-- task behind.
local function spec(fn)
  return task(function()
    collectgarbage()
    collectgarbage()
    weft.sleep(0.01)
    local before, ntasks = nfds(), #weft.tasks()
    fn()
    collectgarbage()
    collectgarbage()
    weft.sleep(0.01) -- close callbacks run on a later loop turn
    assert.equal(before, nfds(), "file descriptors left open")
    assert.equal(ntasks, #weft.tasks(), "tasks left behind")
  end)
end

describe("weft.udp", function()
  it("gh-11: a datagram goes there and back", spec(function()
      local a = assert(udp.bind("127.0.0.1", 0))
      local b = assert(udp.bind("127.0.0.1", 0))
      assert.matches("^weft.udp.sock: 0x%x+ %(127.0.0.1:%d+%)$", tostring(a))
      local echo = weft.go(function()
        local data, host, port = assert(b:recv_from())
        assert(b:send_to(data:upper(), host, port))
      end)
      local msg = ("ping\0binary"):rep(100)
      assert.is_true(a:send_to(msg, "127.0.0.1", b:port()))
      local data, host, port = a:recv_from()
      assert.equal(msg:upper(), data)
      assert.equal("127.0.0.1", host)
      assert.equal(b:port(), port)
      echo:join()
      local h, p = a:sock()
      assert.equal("127.0.0.1", h)
      assert.equal(a:port(), p)
      assert.is_true(a:close())
      assert.is_true(a:close())
      assert.matches("%(closed%)$", tostring(a))
      b:close()
    end))

  it("a receive cancelled mid-wait leaves the sock usable", spec(function()
      local a = assert(udp.bind("127.0.0.1", 0))
      local v, err = a:recv_from(weft.with_timeout(0.02))
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert(a:send_to("self", "127.0.0.1", a:port()))
      assert.equal("self", (a:recv_from()))
      -- Closing wakes a waiting receiver.
      local r = weft.go(function() return a:recv_from() end)
      weft.sleep(0.01)
      a:close()
      local _, cerr = r:join()
      assert.equal("closed", cerr.kind)
      local ok, perr = pcall(function()
        local x = a:recv_from()
        return x
      end)
      assert.is_false(ok)
      assert.matches("udp_spec%.lua:%d+: attempt to use a closed sock", perr)
    end))

  it("rejects bad arguments, blaming the caller", spec(function()
      local ok, err = pcall(function()
        local x = udp.bind("127.0.0.1", -1)
        return x
      end)
      assert.is_false(ok)
      assert.matches("udp_spec%.lua:%d+: bad argument #2 to 'bind'", err)
      local a = assert(udp.bind("127.0.0.1", 0))
      ok, err = pcall(function()
        local x = a:send_to(1, "127.0.0.1", 9)
        return x
      end)
      assert.is_false(ok)
      assert.matches("udp_spec%.lua:%d+: bad argument #2 to 'send_to' " ..
        "%(string expected, got number%)", err)
      local v, berr = udp.bind("127.0.0.1", a:port())
      assert.is_nil(v)
      assert.equal("EADDRINUSE", berr.kind)
      assert.matches("bind 127.0.0.1:%d+", berr.message)
      a:close()
    end))
end)
