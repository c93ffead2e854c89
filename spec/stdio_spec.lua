-- weft.stdin, weft.stdout, weft.stderr (lua/weft/stdio.lua): run through
-- the command, with its standard streams a pipe, a file or /dev/null.
local weft = require "weft"
local H = require "spec.helper"

local spec = H.io_task -- no descriptor, task or child left behind

local function weft_e(code)
  return H.weft_bin .. " -e '" .. code .. "'"
end

describe("weft stdio", function()
  it("reads lines from a pipe", spec(function()
      local out, status = H.sh("printf 'a\\nb\\n' | " .. weft_e [[
        for l in weft.stdin:lines() do print("got " .. l) end
        print(weft.stdin)]])
      assert.equal(0, status)
      assert.equal("got a\ngot b\nweft.stdin (pipe)\n", out)
    end))

  it("read_line and read([max]), then EOF", spec(function()
      local out = H.sh("printf 'one\\ntwo-three' | " .. weft_e [[
        print(weft.stdin:read_line())
        print(weft.stdin:read(3))
        print(weft.stdin:read())
        local v, err = weft.stdin:read_line()
        print(v, err.kind)]])
      assert.equal("one\ntwo\n-three\nnil\tEOF\n", out)
    end))

  it("reads a file", spec(function()
      local out = H.sh(weft_e [[
        print(weft.stdin:read_line(), weft.stdin)
        print(select(2, weft.stdin:read_line()).kind)]] .. " < /dev/null")
      assert.equal("nil\tweft.stdin (file)\nEOF\n", out)
    end))

  it("gh-11: stdin on a pipe has the conn methods", spec(function()
      local out = H.sh("printf 'abcdef\\r\\nx' | " .. weft_e [[
        local c = weft.with_timeout(weft.context(), 5)
        print(weft.stdin:read(2, c), weft.stdin:read_line(c))
        local v, err = weft.stdin:read(-1)
        print(v, err)]] .. " 2>&1")
      assert.matches("ab\tcdef\n", out)
      assert.matches("%(command line%):3: bad argument #2 to 'read'", out)
    end))

  it("gh-11: a file on stdin: lines end at \\n or \\r\\n", spec(function()
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write("one\r\ntwo\nthree")
      f:close()
      local out = H.sh(weft_e [[
        for l in weft.stdin:lines() do io.write("[", l, "]") end
        print(weft.stdin)]] .. " < " .. path)
      os.remove(path)
      assert.equal("[one][two][three]weft.stdin (file)\n", out)
    end))

  it("a read is cancelled by its context", spec(function()
      local out = H.sh("sleep 2 | " .. weft_e [[
        local c = weft.with_timeout(weft.context(), 0.05)
        print(select(2, weft.stdin:read_line(c)).kind)]])
      assert.equal("deadline\n", out)
    end))

  it("write keeps its order with print; stderr apart", spec(function()
      local out, status = H.sh(weft_e [[
        print("x")
        assert(weft.stdout:write("y\n"))
        io.write("z")
        assert(weft.stderr:write("e\n"))]] .. " 2>/dev/null")
      assert.equal(0, status)
      assert.equal("x\ny\nz", out)
      out = H.sh(weft_e [[weft.stderr:write("to stderr\n")]] ..
        " 2>&1 >/dev/null")
      assert.equal("to stderr\n", out)
    end))

  it("rejects bad arguments", spec(function()
      local ok, err = pcall(weft.stdout.write, weft.stdout, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'write'", err)
    end))
end)
