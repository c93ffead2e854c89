-- gh-9: clear messages and exact results for what a newcomer trips over
-- (the scheduler's and the command's part; the toolkit's is in
-- gh9_toolkit_spec.lua).
local weft = require "weft"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

local script = H.script

describe("gh-9: messages", function()
  it("gh-9: the innermost frame of a runtime error keeps its line",
    task(function()
      local path = script("local function inner(x)\n  return x + 1\nend\n" ..
        "inner(nil)\n")
      local out, status = H.sh(H.weft_bin .. " " .. path .. " 2>&1")
      os.remove(path)
      assert.equal(1, status)
      local src = path:match("[^/]+$")
      assert.matches(src .. ":2: in function 'inner'\n", out, 1, true)
      -- gh-12: a script's task is named after its path.
      assert.matches("uncaught error in task \"" .. path .. "\" (a bug in " ..
        "the program): " .. path .. ":2: attempt to perform arithmetic", out,
        1, true)
    end))

  it("gh-9: NaN is named as nan, not as a number", task(function()
      local ok, err = pcall(weft.sleep, 0 / 0)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'sleep' %(number expected, got " ..
        "nan%)", err)
    end))

  it("gh-9: with_timeout and with_deadline name both things they take",
    task(function()
      local ok, err = pcall(function()
        local c = weft.with_timeout("x") -- not a tail call: it keeps the line
        return c
      end)
      assert.is_false(ok)
      assert.matches("gh9_messages_spec.lua:%d+: bad argument #1 to " ..
        "'with_timeout' %(weft.ctx or number expected, got string%)", err)
      ok, err = pcall(function() return weft.with_deadline({}) end)
      assert.is_false(ok)
      assert.matches("'with_deadline' %(weft.ctx or number expected, got " ..
        "table%)", err)
      assert.is_nil((weft.with_timeout(1)):err())
    end))

  it("gh-9: spawn validates args.n", task(function()
      for _, n in ipairs { 1e6, -1, 1.5, 0 / 0, "3" } do
        local ok, err = pcall(function()
          local t = weft.spawn { fn = print, args = { n = n } }
          return t
        end)
        assert.is_false(ok)
        assert.matches("gh9_messages_spec.lua:%d+: bad argument #1 to " ..
          "'spawn' %(field 'args.n': integer from 0 to 7000 expected", err)
      end
      local got
      weft.spawn { fn = function(...) got = { n = select("#", ...), ... } end,
        args = { n = 3, 1, nil, 3 } }:join()
      assert.same({ n = 3, 1, nil, 3 }, got)
    end))

  it("gh-9: weft -l with a module that does not exist is a usage error",
    task(function()
      local out, status = H.sh(H.weft_bin ..
        " -l gh9_no_such_module -e 'print(1)' 2>&1")
      assert.equal(2, status)
      assert.equal("weft: module 'gh9_no_such_module' not found\n", out)
      out, status = H.sh(H.weft_bin .. " -l weft.pipe -e 'print(1)' 2>&1")
      assert.equal(0, status)
      assert.equal("1\n", out)
    end))

  it("gh-9: an unwritable WEFT_LOG is reported once on stderr",
    task(function()
      local out, status = H.sh("WEFT_LOG=/nonexistent/dir/weft.log " ..
        H.weft_bin .. [[ -e "weft.go(function() error('a') end) ]] ..
        [[weft.go(function() error('b') end)" 2>&1]])
      assert.equal(1, status)
      local _, n = out:gsub("WEFT_LOG: cannot write the error log: " ..
        "/nonexistent/dir/weft.log", "")
      assert.equal(1, n)
    end))
end)

describe("gh-9: blocking calls return exactly what api.md says", function()
  it("gh-9: sleep, yield, send, recv, join, select, lock", vtask(function()
      local function count(...) return select("#", ...) end
      assert.equal(1, count(weft.sleep(1)))
      assert.equal(1, count(weft.yield()))
      local ch = weft.chan()
      local sender = weft.go(function() return count(ch:send("a")) end)
      assert.equal(1, count(ch:recv()))
      assert.equal(1, sender:join())
      weft.go(function() weft.sleep(1) ch:send("b") end)
      assert.equal(1, count(ch:recv())) -- woken by a later send
      local receiver = weft.go(function() return count(ch:recv()) end)
      weft.yield()
      assert.equal(1, count(ch:send("c"))) -- hands it to a waiting receiver
      assert.equal(1, receiver:join())
      local late = weft.go(function() weft.sleep(1) return ch:recv() end)
      assert.equal(1, count(ch:send("d"))) -- waits for the receiver
      assert.equal("d", late:join())
      assert.equal(1, count(weft.go(function() end):join()))
      weft.go(function() weft.sleep(1) ch:send("e") end)
      assert.equal(2, count(weft.select { { recv = ch } }))
      local mu = weft.mutex()
      assert.equal(1, count(mu:lock()))
      mu:unlock()
      local ok, err = weft.sleep(1, (weft.with_timeout(0)))
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
    end))
end)
