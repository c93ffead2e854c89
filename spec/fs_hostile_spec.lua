-- weft.fs given what it should not be: bad paths, sizes and offsets,
-- directories for files, files dropped with requests in flight (gh-11).
local weft = require "weft"
local H = require "spec.helper"
local fs = weft.fs

local spec = H.io_task -- no descriptor, task or child left behind

local dir
local function tmp()
  if not dir then dir = assert(fs.tmpdir("weft-hostile-")) end
  return dir
end
local rmtree = H.rmtree

-- raises(pattern, fn, ...): fn(...) raises an error matching pattern.
local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.matches(pattern, err)
end

describe("weft.fs, hostile", function()
  after_each(function()
    if dir then rmtree(dir) end
    dir = nil
  end)

  -- First in the file: the names it makes depend on how many temporary
  -- files this process made before.
  it("gh-11: write_file is not stopped by a stale temporary file, or by " ..
    "a name as long as the system allows", spec(function()
      local p = tmp() .. "/x"
      -- What a crashed process with this pid left, and this second's and
      -- the next's names as they were before.
      local stale = {}
      for k = 1, 20 do
        stale[#stale + 1] = ("%s.tmp-%d-%d"):format(p, os.time(), k)
        stale[#stale + 1] = ("%s.tmp-%d-%d"):format(p, os.time() + 1, k)
        if k <= 5 then
          stale[#stale + 1] = ("%s.tmp-%s-%d"):format(p, H.pid(), k)
        end
      end
      for _, name in ipairs(stale) do assert(io.open(name, "w")):close() end
      assert.is_true(fs.write_file(p, "new"))
      assert.equal("new", fs.read_file(p))
      local long = tmp() .. "/" .. ("n"):rep(255)
      assert.is_true(fs.write_file(long, "long"))
      assert.equal("long", fs.read_file(long))
      assert.equal(#stale + 2, #fs.readdir(tmp())) -- and x, long
    end))

  it("gh-11: a path with a zero byte is a bad argument, not a shorter path",
    spec(function()
      local p = tmp() .. "/x"
      assert(fs.write_file(p, "x"))
      raises("fs_hostile_spec%.lua:%d+: bad argument #1 to 'read_file' " ..
        "%(path contains a zero byte%)", function()
          local v = fs.read_file(p .. "\0.txt")
          return v
        end)
      raises("bad argument #1 to 'open' %(path contains a zero byte%)",
        fs.open, p .. "\0")
      raises("bad argument #1 to 'write_file'", fs.write_file, p .. "\0y", "")
      raises("bad argument #1 to 'stat'", fs.stat, p .. "\0")
      raises("bad argument #2 to 'rename'", fs.rename, p, p .. "\0")
      raises("bad argument #1 to 'remove'", fs.remove, p .. "\0")
      raises("bad argument #1 to 'lines'", fs.lines, p .. "\0")
      assert.equal("x", fs.read_file(p)) -- untouched
    end))

  it("gh-11: read sizes: fractional, huge, zero", spec(function()
      local p = tmp() .. "/x"
      assert(fs.write_file(p, "hello"))
      local f = assert(fs.open(p))
      assert.equal("", f:read(0))
      assert.equal("h", f:read(1.5)) -- whole bytes, as io's read
      assert.equal("", f:read(0.5)) -- no byte, and not the end
      assert.equal("ello", f:read(2 ^ 40)) -- as much as there is
      local v, err = f:read(2 ^ 40)
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      raises("bad argument #2 to 'read'", f.read, f, 0 / 0)
      raises("bad argument #2 to 'read'", f.read, f, -1)
      f:close()
    end))

  it("gh-11: seek offsets: fractional, huge, NaN, before the start",
    spec(function()
      local p = tmp() .. "/x"
      assert(fs.write_file(p, "hello"))
      local f = assert(fs.open(p))
      raises("bad argument #3 to 'seek' %(integer expected", f.seek, f,
        "set", 1.5)
      raises("bad argument #3 to 'seek'", f.seek, f, "set", 2 ^ 60)
      raises("bad argument #3 to 'seek'", f.seek, f, "set", 1 / 0)
      raises("bad argument #3 to 'seek'", f.seek, f, "set", 0 / 0)
      raises("bad argument #2 to 'seek'", f.seek, f, "top")
      local v, err = f:seek("cur", -1)
      assert.is_nil(v)
      assert.equal("EINVAL", err.kind)
      assert.equal(3, f:seek("set", 3))
      assert.equal("lo", f:read())
      assert.equal(1000, f:seek("set", 1000)) -- past the end: reads EOF
      assert.equal("EOF", select(2, f:read()).kind)
      f:close()
    end))

  it("gh-11: a directory where a file is expected", spec(function()
      local d = tmp()
      local v, err = fs.read_file(d)
      assert.is_nil(v)
      assert.equal("EISDIR", err.kind)
      assert.matches(d:gsub("%p", "%%%0"), err.message)
      v, err = fs.open(d, "w")
      assert.is_nil(v)
      assert.equal("EISDIR", err.kind)
      assert(fs.mkdir(d .. "/sub"))
      v, err = fs.write_file(d .. "/sub", "x")
      assert.is_nil(v)
      assert.equal("EISDIR", err.kind)
      assert.same({ "sub" }, fs.readdir(d)) -- and no temporary file
      raises("illegal operation on a directory", function()
        for _ in fs.lines(d) do end
      end)
    end))

  it("gh-11: a file removed while open reads on, one truncated reads less",
    spec(function()
      local p = tmp() .. "/x"
      assert(fs.write_file(p, ("z"):rep(100000)))
      local f = assert(fs.open(p))
      assert(fs.remove(p))
      assert.equal(("z"):rep(100), f:read(100))
      f:close()
      assert(fs.write_file(p, ("z"):rep(100000)))
      f = assert(fs.open(p, "r+"))
      assert.equal(("z"):rep(10), f:read(10))
      local w = assert(fs.open(p, "w")) -- truncates
      w:close()
      assert.equal("EOF", select(2, f:read()).kind)
      f:close()
    end))

  it("gh-11: close twice, and every method after close", spec(function()
      local f = assert(fs.open(tmp() .. "/x", "w+"))
      assert.is_true(f:close())
      assert.is_true(f:close())
      raises("attempt to use a closed file", f.read, f)
      raises("attempt to use a closed file", f.write, f, "x")
      raises("attempt to use a closed file", f.seek, f)
      raises("attempt to use a closed file", f.sync, f)
    end))

  it("gh-11: a file dropped while its cancelled read is in flight",
    spec(function()
      local p = tmp() .. "/x"
      assert(fs.write_file(p, ("q"):rep(1000)))
      for _ = 1, 20 do
        local f = assert(fs.open(p))
        local ctx, cancel = weft.with_cancel()
        local t = weft.go(function() return f:read(1000, ctx) end)
        weft.sleep(0)
        cancel()
        local _, err = t:join()
        assert.is_true(err == nil or err.kind == "canceled")
        f = nil -- luacheck: ignore 311
        collectgarbage()
        collectgarbage()
      end
    end))

  it("gh-11: lines keeps long and many lines whole", spec(function()
      local p = tmp() .. "/lines"
      local want = {}
      for i = 1, 20000 do want[i] = ("%d"):format(i) end
      want[#want + 1] = ("L"):rep(200000) -- longer than a read
      assert(fs.write_file(p, table.concat(want, "\n") .. "\n"))
      local got = {}
      for l in fs.lines(p) do got[#got + 1] = l end
      assert.same(want, got)
      -- The last line, spanning chunks, with no "\n".
      assert(fs.write_file(p, "a\n" .. ("L"):rep(200000)))
      got = {}
      for l in fs.lines(p) do got[#got + 1] = #l end
      assert.same({ 1, 200000 }, got)
    end))

  it("gh-11: a FIFO reads and writes in order, and cannot seek",
    spec(function()
      local fifo = tmp() .. "/fifo"
      assert(select(2, H.sh("mkfifo " .. fifo)) == 0)
      local f = assert(fs.open(fifo, "r+"))
      assert.is_true(f:write("one"))
      assert.is_true(f:write("two"))
      assert.equal("onetwo", f:read(6))
      local v, err = f:seek("set", 0)
      assert.is_nil(v)
      assert.equal("ESPIPE", err.kind)
      f:close()
    end))

  it("gh-11: a file dropped while its cancelled read blocks in the pool " ..
    "closes when the read ends", spec(function()
      local fifo = tmp() .. "/fifo"
      assert(select(2, H.sh("mkfifo " .. fifo)) == 0)
      local before = H.nfds()
      local f = assert(fs.open(fifo, "r+")) -- a read blocks until data
      local ctx, cancel = weft.with_cancel()
      local t = weft.go(function() return f:read(10, ctx) end)
      weft.sleep(0)
      cancel()
      local _, err = t:join()
      assert.equal("canceled", err.kind)
      f = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      local w = assert(io.open(fifo, "w")) -- the read, if running, ends
      w:write("x")
      w:close()
      -- NOTE: waits for a condition (the read's callback closing the
      -- FIFO), bounded; not a timing assertion.
      for _ = 1, 500 do
        if H.nfds() == before then break end
        weft.sleep(0.01)
      end
      assert.equal(before, H.nfds())
    end))

  it("gh-11: write_file cancelled at any point leaves the old or the new " ..
    "contents and no temporary file", spec(function()
      local p = tmp() .. "/x"
      local old, new = ("o"):rep(3e6), ("n"):rep(3e6)
      local replaced = 0
      for i = 0, 40 do
        assert(fs.write_file(p, old))
        local ok, err = weft.scope(function()
          return fs.write_file(p, new)
        end, { timeout = i * 2e-4 })
        if ok then
          replaced = replaced + 1
        else
          assert.equal("deadline", err.kind)
        end
        local got = assert(fs.read_file(p))
        assert.is_true(got == old or got == new)
        assert.same({ "x" }, fs.readdir(tmp()))
      end
      assert.is_true(replaced < 41) -- some were cancelled
    end))

  it("gh-11: read_file cancelled at any point returns it all or nil, err",
    spec(function()
      local p = tmp() .. "/x"
      local data = ("r"):rep(3e6)
      assert(fs.write_file(p, data))
      for i = 0, 40 do
        local v, err = weft.scope(function()
          return fs.read_file(p)
        end, { timeout = i * 1e-4 })
        if v then
          assert.equal(data, v)
        else
          assert.equal("deadline", err.kind)
        end
      end
    end))

  it("gh-11: read_file of a file too large for a string fails cleanly",
    spec(function()
      local p = tmp() .. "/sparse"
      assert(select(2, H.sh("truncate -s 3G " .. p)) == 0)
      local v, err = fs.read_file(p)
      assert.is_nil(v)
      assert.equal("EFBIG", err.kind)
      assert.matches("read_file .*sparse: .*too large", err.message)
    end))

  it("gh-11: bad tmpdir prefixes and mkdir modes blame the caller",
    spec(function()
      raises("bad argument #1 to 'tmpdir' %(path contains a zero byte%)",
        fs.tmpdir, "a\0b")
      raises("bad argument #2 to 'mkdir' %(mode", fs.mkdir, tmp() .. "/m",
        { mode = "rwx" })
      raises("bad argument #2 to 'mkdir' %(mode", fs.mkdir, tmp() .. "/m",
        { mode = 0 / 0 })
      assert.is_nil(fs.stat(tmp() .. "/m"))
    end))

  it("gh-11: tasks reading one file at once get each byte once, and " ..
    "writing it at once write each part once", spec(function()
      local p = tmp() .. "/x"
      local parts, want = {}, {}
      for i = 1, 64 do
        want[i] = ("%03d"):format(i)
        parts[i] = want[i]:rep(1000)
      end
      -- tags(list) -> each part's tag, sorted; "bad" for a mixed part.
      local function tags(list)
        local t = {}
        for i, v in ipairs(list) do
          t[i] = v == v:sub(1, 3):rep(1000) and v:sub(1, 3) or "bad"
        end
        table.sort(t)
        return t
      end
      assert(fs.write_file(p, table.concat(parts)))
      local f = assert(fs.open(p))
      local g, got = weft.group(), {}
      for _ = 1, 64 do
        g:go(function()
          local v = assert(f:read(3000))
          got[#got + 1] = v
        end)
      end
      assert.is_nil(g:wait())
      assert.same(want, tags(got))
      assert.equal("EOF", select(2, f:read()).kind)
      f:close()
      local w = assert(fs.open(p, "w"))
      for i = 1, 64 do
        g:go(function() assert(w:write(parts[i])) end)
      end
      assert.is_nil(g:wait())
      w:close()
      local all, seen = assert(fs.read_file(p)), {}
      assert.equal(64 * 3000, #all)
      for i = 0, 63 do seen[i + 1] = all:sub(i * 3000 + 1, i * 3000 + 3000) end
      assert.same(want, tags(seen))
    end))
end)
