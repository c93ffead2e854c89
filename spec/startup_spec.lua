-- gh-14: start-up loads only weft's core; the other fields are loaded on
-- first read (lua/weft/init.lua). Each case runs in a fresh weft command
-- or stock luajit, since this process has loaded them already.
local H = require "spec.helper"
local task = H.task

-- run(code [, flags]) -> combined stdout and stderr, exit status
local function run(code, flags)
  local path = H.script(code)
  local out, status = H.sh(H.weft_bin .. " " .. (flags or "") .. " " ..
    path .. " 2>&1")
  os.remove(path)
  return out, status
end

-- Every field of weft, as the table had them when all were loaded at once.
local FIELDS = {
  "_VERSION", "go", "spawn", "current", "yield", "sleep", "now",
  "virtual_time", "tasks", "dump", "background", "context", "with_cancel",
  "with_timeout", "with_deadline", "with_value", "scope", "chan", "after",
  "ticker", "select", "mutex", "semaphore", "once", "fence", "locked",
  "group", "limiter", "parallel", "concurrently", "jobs", "retry",
  "retry_call", "pipe", "rate", "heartbeat", "steward", "replicate", "work",
  "work_module", "workers", "start", "step", "timeout", "pollfd",
  "shutdown", "on_error", "fs", "tcp", "udp", "dns", "process", "signal",
  "stdin", "stdout", "stderr", "error", "errors", "run",
}

-- Where each lazily loaded field comes from: field -> module, key.
local SOURCES = [[
  local src = {
    select = { "weft.select" }, mutex = { "weft.sync" },
    semaphore = { "weft.sync" },
    once = { "weft.sync" }, fence = { "weft.sync" }, locked = { "weft.sync" },
    group = { "weft.group" }, limiter = { "weft.group" },
    parallel = { "weft.group" }, concurrently = { "weft.group" },
    jobs = { "weft.group" }, retry = { "weft.retry" },
    retry_call = { "weft.retry" }, heartbeat = { "weft.heartbeat" },
    steward = { "weft.steward" }, replicate = { "weft.replicate" },
    start = { "weft.host" }, step = { "weft.host" },
    timeout = { "weft.host" }, pollfd = { "weft.host" },
    shutdown = { "weft.host" }, on_error = { "weft.host" },
    fs = { "weft.fs", true }, process = { "weft.process", true },
    signal = { "weft.signal", true }, tcp = { "weft.net" },
    udp = { "weft.net" }, dns = { "weft.net" }, stdin = { "weft.stdio" },
    stdout = { "weft.stdio" }, stderr = { "weft.stdio" },
  }
]]

describe("gh-14: weft's fields loaded on first use", function()
  it("start-up leaves the I/O, pool front-ends and toolkit unloaded",
    task(function()
      local out, status = run([[
        local names = { "weft.fs", "weft.net", "weft.process",
          "weft.signal", "weft.stdio", "weft.io", "weft.stream",
          "weft.group", "weft.sync", "weft.rate", "weft.select",
          "weft.repl" }
        for _, n in ipairs(names) do
          io.write(n, "=", tostring(package.loaded[n] ~= nil), " ")
        end
        print(rawget(weft, "fs"), rawget(weft, "tcp"))
      ]])
      assert.equal(0, status)
      assert.equal("weft.fs=false weft.net=false weft.process=false " ..
        "weft.signal=false weft.stdio=false weft.io=false " ..
        "weft.stream=false weft.group=false weft.sync=false " ..
        "weft.rate=false weft.select=false weft.repl=false nil\tnil\n", out)
    end))

  it("each field, read first, is its module's value", task(function()
    local out, status = run(SOURCES .. [[
      local bad = {}
      for k, s in pairs(src) do
        local v = weft[k]
        local m = require(s[1])
        local want = s[2] and m or m[k]
        if v == nil or v ~= want or rawget(weft, k) ~= want then
          bad[#bad + 1] = k
        end
      end
      local rate, pipe = weft.rate, weft.pipe
      for _, k in ipairs { "limiter", "multi", "every", "per", "inf" } do
        if rate[k] == nil or rate[k] ~= require("weft.rate")[k] then
          bad[#bad + 1] = "rate." .. k
        end
      end
      for _, k in ipairs { "generator", "take", "or_done", "tee", "bridge",
          "merge", "first_done" } do
        if pipe[k] == nil or pipe[k] ~= require("weft.pipe")[k] then
          bad[#bad + 1] = "pipe." .. k
        end
      end
      assert(weft.rate == rate and weft.pipe == pipe, "sub-tables kept")
      table.sort(bad)
      print(#bad, table.concat(bad, " "))
    ]])
    assert.equal(0, status)
    assert.equal("0\t\n", out)
  end))

  it("every field is there, each alone in a fresh process", task(function()
    -- One field per process: none is loaded by reading another first.
    local cmd = {}
    for _, k in ipairs(FIELDS) do
      cmd[#cmd + 1] = H.weft_bin .. " -e 'io.write(type(weft." .. k ..
        "), \" \")'"
    end
    local out, status = H.sh(table.concat(cmd, " && ") .. " 2>&1")
    assert.equal(0, status)
    assert.not_matches("nil", out)
    local n = 0
    for _ in out:gmatch("%S+") do n = n + 1 end
    assert.equal(#FIELDS, n)
  end))

  it("pairs sees every field once all are loaded, and no other",
    task(function()
      local out, status = run([[
        getmetatable(weft).load_all(weft)
        local names = {}
        for k in pairs(weft) do names[#names + 1] = k end
        table.sort(names)
        print(table.concat(names, " "))
      ]])
      assert.equal(0, status)
      local want = { unpack(FIELDS) }
      table.sort(want)
      assert.equal(table.concat(want, " ") .. "\n", out)
    end))

  it("a typo is nil, before and after loading", task(function()
    local out, status = run([[
      print(weft.fss, weft.Fs, weft.tcp_, weft[1], weft[true])
      local _ = weft.fs
      getmetatable(weft).load_all(weft)
      print(weft.fss, weft.Fs, weft.tcp_, weft[1], weft[true])
    ]])
    assert.equal(0, status)
    assert.equal("nil\tnil\tnil\tnil\tnil\nnil\tnil\tnil\tnil\tnil\n", out)
  end))

  it("weft.fs works first thing in a task", task(function()
    local path = H.script("hello")
    local out, status = run(([[
      local t = weft.go(function()
        return weft.fs.read_file(%q)
      end)
      print(t:join())
    ]]):format(path))
    os.remove(path)
    assert.equal(0, status)
    assert.equal("hello\n", out)
  end))

  it("inside a coroutine of a task, and after weft.tasks()",
    task(function()
      local path = H.script("data")
      local out, status = run(([[
        print(#weft.tasks())
        local co = coroutine.wrap(function()
          local fs = weft.fs
          coroutine.yield(fs.read_file(%q))
          return weft.mutex() ~= nil
        end)
        print(co())
        print(co())
        local l = weft.limiter(2)
        print(l ~= nil, weft.group ~= nil)
      ]]):format(path))
      os.remove(path)
      assert.equal(0, status)
      assert.equal("1\ndata\ntrue\ntrue\ttrue\n", out)
    end))

  it("I/O loaded late still counts for virtual time", task(function()
    -- The count of jobs and I/O in flight (R.nwork) lives in weft.work,
    -- loaded with weft: virtual time must wait for a read started by a
    -- module loaded after the clock moved.
    local path = H.script("late")
    local out, status = run(([[
      weft.sleep(5)
      print(weft.fs.read_file(%q))
      weft.sleep(1)
      print(weft.now())
    ]]):format(path), "--virtual-time")
    os.remove(path)
    assert.equal(0, status)
    assert.equal("late\n6\n", out)
  end))

  it("a field the program set first is kept; a loaded one may be cleared",
    task(function()
      local out, status = run([[
        weft.limiter = "mine"
        print(type(weft.group), weft.limiter, type(weft.jobs))
        local _ = weft.tcp
        weft.tcp = nil
        print(weft.tcp, type(weft.udp))
      ]])
      assert.equal(0, status)
      assert.equal("function\tmine\tfunction\nnil\ttable\n", out)
    end))

  it("an error through a lazily loaded field blames the same line",
    task(function()
      local out, status = run([[
        local ok, e = pcall(function()
          weft.mutex():unlock()
        end)
        print(e)
        print(select(2, pcall(weft.fs.read_file, 42)))
        weft.semaphore(-1)
      ]])
      assert.equal(1, status)
      assert.matches(":2: unlock of unlocked weft.mutex\n", out, 1, true)
      assert.matches("\nbad argument #1 to 'read_file' (string expected, " ..
        "got number)\n", out, 1, true)
      assert.matches(":6: bad argument #1 to 'semaphore'", out, 1, true)
    end))

  it("require 'weft' from a stock luajit loads fields on use too",
    task(function()
      local out, status = H.luajit([[
        local weft = require "weft"
        print(package.loaded["weft.fs"] == nil, rawget(weft, "fs"))
        print(weft.run(function()
          local co = coroutine.wrap(function()
            return weft.fs == require "weft.fs", weft.tcp ~= nil
          end)
          return co()
        end))
        print(weft.nope, type(weft.step))
      ]])
      assert.equal(0, status)
      assert.equal("true\tnil\ntrue\ttrue\nnil\tfunction\n", out)
    end))
end)
