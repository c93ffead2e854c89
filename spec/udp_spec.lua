-- weft.udp on loopback (runtime/udp.c, lua/weft/net.lua). gh-11.
local weft = require "weft"
local H = require "spec.helper"
local udp = weft.udp

local spec = H.io_task -- no descriptor, task or child left behind

-- pushed_back(code) -> output, status of the weft command running code
-- with tests/eagain_shim.c preloaded: its first UDP send fails with
-- EAGAIN, as when the kernel pushes back (loopback never does).
local function pushed_back(code)
  local shim = os.getenv("WEFT_EAGAIN_SHIM") or
    H.weft_bin:gsub("[^/]*$", "") .. "tests/libweft_eagain_shim.so"
  local f = io.open(shim)
  assert(f, "no " .. shim .. " (build the tests)")
  f:close()
  local asan = os.getenv("WEFT_LUAJIT_PRELOAD")
  local path = H.script(code)
  -- ASan must come first in the preload list, or be told not to mind.
  local out, status = H.sh("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}" ..
    "verify_asan_link_order=0 LD_PRELOAD=" .. (asan and asan .. ":" or "") ..
    shim .. " " .. H.weft_bin .. " " .. path .. " 2>&1")
  os.remove(path)
  return out, status
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

  it("gh-11: two sends queued at once both wait, and both go once",
    spec(function()
      local out, status = pushed_back [[
        local r = assert(weft.udp.bind("127.0.0.1", 0))
        local s = assert(weft.udp.bind("127.0.0.1", 0))
        local function send(msg)
          return weft.go(function()
            return s:send_to(msg, "127.0.0.1", r:port())
          end)
        end
        -- The first is queued (EAGAIN); the second finds the queue busy.
        local a, b = send("one"), send("two")
        print(a:join(), b:join())
        local got = {}
        for i = 1, 2 do got[i] = r:recv_from() end
        table.sort(got)
        print(table.concat(got, " "))
        local late, err = r:recv_from(weft.with_timeout(0.05))
        print(late, err.kind)
        r:close()
        s:close()
      ]]
      assert.equal("true\ttrue\none two\nnil\tdeadline\n", out)
      assert.equal(0, status)
    end))

  it("gh-11: a queued send cancelled returns; its datagram goes once",
    spec(function()
      local out, status = pushed_back [[
        local r = assert(weft.udp.bind("127.0.0.1", 0))
        local s = assert(weft.udp.bind("127.0.0.1", 0))
        local ctx, cancel = weft.with_cancel()
        local t = weft.go(function()
          return s:send_to("one", "127.0.0.1", r:port(), ctx)
        end)
        cancel() -- before t runs: its send is queued, then refused
        local ok, err = t:join()
        print(ok, err.kind)
        print((r:recv_from()))
        local late, lerr = r:recv_from(weft.with_timeout(0.05))
        print(late, lerr.kind)
        r:close()
        s:close()
      ]]
      assert.equal("nil\tcanceled\none\nnil\tdeadline\n", out)
      assert.equal(0, status)
    end))

  it("gh-11: two queued sends and the sock closed under them: both wake",
    spec(function()
      local out, status = pushed_back [[
        local r = assert(weft.udp.bind("127.0.0.1", 0))
        local s = assert(weft.udp.bind("127.0.0.1", 0))
        local function send(msg)
          return weft.go(function()
            return s:send_to(msg, "127.0.0.1", r:port())
          end)
        end
        local a, b = send("x"), send("y")
        weft.go(function() s:close() end)
        local ok1, e1 = a:join()
        local ok2, e2 = b:join()
        print(ok1, e1 and e1.kind, ok2, e2 and e2.kind)
        local got = {}
        while true do
          local v = r:recv_from(weft.with_timeout(0.05))
          if not v then break end
          got[#got + 1] = v
        end
        table.sort(got)
        print(table.concat(got, " "))
        r:close()
      ]]
      assert.equal(0, status, out)
      local kinds, got = out:match("^(.-)\n(.-)\n$")
      assert.equal("nil\tclosed\tnil\tclosed", kinds)
      -- Each datagram went at most once (x had left before the close).
      assert.truthy(got == "" or got == "x" or got == "y" or got == "x y",
        got)
    end))

  it("gh-11: a sock collected with a send queued", spec(function()
      local out, status = pushed_back [[
        local r = assert(weft.udp.bind("127.0.0.1", 0))
        local port = r:port()
        do
          local s = assert(weft.udp.bind("127.0.0.1", 0))
          local ctx, cancel = weft.with_cancel()
          cancel()
          -- Queued (EAGAIN), then refused: nothing waits for it.
          print(select(2, s:send_to("gone", "127.0.0.1", port, ctx)).kind)
        end
        collectgarbage()
        collectgarbage()
        weft.sleep(0.01)
        local v, err = r:recv_from(weft.with_timeout(0.05))
        print(v or err.kind)
        r:close()
      ]]
      assert.equal(0, status, out)
      -- The datagram went before the sock was collected, or never.
      assert.truthy(out == "canceled\ngone\n" or
        out == "canceled\ndeadline\n", out)
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
