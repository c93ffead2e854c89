-- weft.fs: files on libuv's fs requests (runtime/fs.c, lua/weft/fs.lua).
local weft = require "weft"
local H = require "spec.helper"
local fs = weft.fs

local spec = H.io_task -- no descriptor, task or child left behind

local dir
before_each(function() dir = nil end)
local function tmp()
  if not dir then dir = assert(fs.tmpdir("weft-spec-")) end
  return dir
end
local rmtree = H.rmtree

describe("weft.fs", function()
  after_each(function()
    if dir then rmtree(dir) end
  end)

  it("writes and reads whole files, binary-safe", spec(function()
      local p = tmp() .. "/data.bin"
      local data = ("\0\1\2\255"):rep(70000) -- more than one chunk
      assert.is_true(fs.write_file(p, data))
      assert.equal(data, fs.read_file(p))
      assert.is_true(fs.write_file(p, ""))
      assert.equal("", fs.read_file(p))
      assert.equal(0, fs.stat(p).size)
    end))

  it("fails with nil, err naming the operation and the path", spec(function()
      local v, err = fs.read_file("/nonexistent/gh11")
      assert.is_nil(v)
      assert.equal("ENOENT", err.kind)
      assert.matches("open /nonexistent/gh11: no such file", err.message)
      v, err = fs.stat("/nonexistent/gh11")
      assert.is_nil(v)
      assert.equal("ENOENT", err.kind)
      v, err = fs.write_file("/nonexistent/dir/f", "x")
      assert.is_nil(v)
      assert.equal("ENOENT", err.kind)
      v, err = fs.readdir("/nonexistent/gh11")
      assert.is_nil(v)
      assert.equal("ENOENT", err.kind)
    end))

  it("rejects bad arguments, blaming the caller", spec(function()
      local ok, err = pcall(function()
        local x = fs.read_file(42)
        return x
      end)
      assert.is_false(ok)
      assert.matches("fs_spec%.lua:%d+: bad argument #1 to 'read_file' " ..
        "%(string expected, got number%)", err)
      ok, err = pcall(function()
        local f = fs.open(tmp() .. "/x", "rw")
        return f
      end)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'open'", err)
      ok, err = pcall(fs.stat, "/", "ctx")
      assert.is_false(ok)
      assert.matches("weft.ctx expected", err)
    end))

  it("write_file is atomic: a reader sees the old or the new contents",
    spec(function()
      local p = tmp() .. "/atomic"
      local a, b = ("a"):rep(300000), ("b"):rep(300000)
      assert(fs.write_file(p, a))
      local bad = 0
      local reader = weft.go(function()
        for _ = 1, 50 do
          local d = assert(fs.read_file(p))
          if d ~= a and d ~= b then bad = bad + 1 end
        end
      end)
      for i = 1, 20 do assert(fs.write_file(p, i % 2 == 0 and a or b)) end
      reader:join()
      assert.equal(0, bad)
      -- No temporary file is left beside it.
      assert.same({ "atomic" }, fs.readdir(tmp()))
    end))

  it("open files: read, write, seek, sync, close twice", spec(function()
      local f = assert(fs.open(tmp() .. "/f", "w+"))
      assert.is_true(f:write("hello world"))
      assert.equal(0, f:seek("set"))
      assert.equal("hello", f:read(5))
      assert.equal(6, f:seek("cur", 1))
      assert.equal("world", f:read())
      local v, err = f:read()
      assert.is_nil(v)
      assert.equal("EOF", err.kind)
      assert.equal(11, f:seek("end"))
      assert.is_true(f:sync())
      assert.is_true(f:close())
      assert.is_true(f:close())
      assert.matches("closed", tostring(f))
      local ok, perr = pcall(f.read, f)
      assert.is_false(ok)
      assert.matches("attempt to use a closed file", perr)
      local app = assert(fs.open(tmp() .. "/f", "a"))
      assert(app:write("!"))
      app:close()
      assert.equal("hello world!", fs.read_file(tmp() .. "/f"))
    end))

  it("a file nobody closed is closed when collected", spec(function()
      do
        local f = assert(fs.open(tmp() .. "/g", "w"))
        f:write("x")
      end
    end))

  it("lines iterates a file's lines", spec(function()
      local p = tmp() .. "/lines"
      assert(fs.write_file(p, "one\ntwo\n\nfour"))
      local got = {}
      for l in fs.lines(p) do got[#got + 1] = l end
      assert.same({ "one", "two", "", "four" }, got)
      local ok, err = pcall(fs.lines, tmp() .. "/none")
      assert.is_false(ok)
      assert.matches("no such file", err)
    end))

  it("mkdir with parents, readdir sorted, rename, remove", spec(function()
      local d = tmp()
      assert.is_true(fs.mkdir(d .. "/a/b/c", { parents = true }))
      assert.is_true(fs.mkdir(d .. "/a/b/c", { parents = true }))
      local _, err = fs.mkdir(d .. "/a")
      assert.equal("EEXIST", err.kind)
      assert(fs.write_file(d .. "/a/z", "z"))
      assert(fs.write_file(d .. "/a/m", "m"))
      assert.same({ "b", "m", "z" }, fs.readdir(d .. "/a"))
      assert.is_true(fs.rename(d .. "/a/z", d .. "/a/y"))
      assert.equal("z", fs.read_file(d .. "/a/y"))
      assert.equal("directory", fs.stat(d .. "/a/b").type)
      assert.equal("file", fs.stat(d .. "/a/y").type)
      local _, rerr = fs.remove(d .. "/a")
      assert.equal("ENOTEMPTY", rerr.kind)
    end))

  it("a read cancelled by a deadline returns at once and closes its file",
    spec(function()
      local t0 = weft.now()
      local v, err = weft.scope(function()
        return fs.read_file("/dev/zero")
      end, { timeout = 0.05 })
      assert.is_nil(v)
      assert.equal("deadline", err.kind)
      assert.is_true(weft.now() - t0 < 2)
    end))

  it("many tasks read and write at once", spec(function()
      tmp()
      local g = weft.group()
      for i = 1, 50 do
        g:go(function()
          local p = tmp() .. "/f" .. i
          assert(fs.write_file(p, ("%d"):format(i):rep(1000)))
          assert.equal(("%d"):format(i):rep(1000), fs.read_file(p))
        end)
      end
      assert.is_nil(g:wait())
      assert.equal(50, #fs.readdir(tmp()))
    end))
end)

-- blocked_pool(fifo, fn): run fn while every thread of libuv's pool is
-- blocked in an open of a FIFO, so that the requests fn makes stay queued;
-- fn(unblock) may unblock early: unblock opens the FIFO for writing (each
-- blocked open then returns) and waits for the blocked tasks to close what
-- they opened. Unblocked in any case: a pool left blocked would hang the
-- process at exit.
local function blocked_pool(fifo, fn)
  assert(select(2, H.sh("mkfifo " .. fifo)) == 0)
  local n = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4
  local g, w = weft.group(), nil
  for _ = 1, n do
    g:go(function() assert(fs.open(fifo, "r")):close() end)
  end
  weft.sleep(0) -- NOTE: their opens are submitted before fn's requests
  local function unblock()
    if w then return end
    w = assert(io.open(fifo, "w")) -- the blocked opens return
    assert.is_nil(g:wait())
    w:close()
  end
  local ok, err = pcall(fn, unblock)
  unblock()
  if not ok then error(err, 0) end
end

describe("weft.fs files closed under requests", function()
  after_each(function()
    if dir then rmtree(dir) end
  end)

  it("gh-11: close fails the queued requests on a file, and its " ..
    "descriptor is not reused under them", spec(function()
      local a, b = tmp() .. "/a", tmp() .. "/b"
      assert(fs.write_file(a, ("A"):rep(100)))
      assert(fs.write_file(b, ("B"):rep(100)))
      local f = assert(fs.open(a))
      local g, got, others = weft.group(), {}, {}
      blocked_pool(tmp() .. "/fifo", function(unblock)
        for i = 1, 8 do
          g:go(function()
            local v, err = f:read(10)
            got[i] = v or err.kind
          end)
        end
        weft.sleep(0) -- the reads are queued behind the blocked opens
        -- The closer opens files at once, which may take the number f's
        -- descriptor had.
        g:go(function()
          assert.is_true(f:close())
          for i = 1, 4 do others[i] = assert(fs.open(b)) end
        end)
        weft.sleep(0)
        unblock()
        assert.is_nil(g:wait())
      end)
      for i = 1, 8 do assert.equal("EBADF", got[i]) end
      for i = 1, 4 do
        assert.equal(("B"):rep(10), others[i]:read(10))
        others[i]:close()
      end
    end))

  it("gh-11: a request that fails for a closed file names the file",
    spec(function()
      local p = tmp() .. "/c"
      assert(fs.write_file(p, "x"))
      local f = assert(fs.open(p))
      local err, t
      blocked_pool(tmp() .. "/fifo", function()
        t = weft.go(function() err = select(2, f:read(1)) end)
        weft.sleep(0)
        weft.go(function() f:close() end)
        weft.sleep(0) -- f closes before the pool runs the read
      end)
      t:join()
      assert.equal("EBADF", err.kind)
      assert.matches("read " .. p:gsub("%p", "%%%0"), err.message)
    end))
end)
