local weft = require "weft"
local H = require "spec.helper"
local task, vtask = H.task, H.vtask

describe("virtual time", function()
  it("starts at 0; an hour of sleep takes milliseconds", task(function()
    local real0 = os.clock()
    local at = weft.virtual_time(function()
      assert.equal(0, weft.now())
      assert.is_true(weft.sleep(3600))
      return weft.now()
    end)
    assert.equal(3600, at)
    assert.is_true(os.clock() - real0 < 1)
  end))

  it("moves only when every task is blocked, to the next deadline",
    vtask(function()
      local log = {}
      for _, d in ipairs { 30, 10, 20, 10 } do
        weft.go(function()
          weft.sleep(d)
          log[#log + 1] = ("%g@%g"):format(d, weft.now())
        end)
      end
      -- Busy work does not move the clock.
      for _ = 1, 100 do weft.yield() end
      assert.equal(0, weft.now())
      weft.sleep(100)
      assert.same({ "10@10", "10@10", "20@20", "30@30" }, log)
    end))

  it("timeouts and deadlines follow it", vtask(function()
    local ctx = weft.with_timeout(90)
    assert.equal(90, ctx:deadline())
    local _, err = weft.chan():recv(ctx)
    assert.equal("deadline", err.kind)
    assert.equal(90, weft.now())
    local d = weft.with_deadline(100)
    assert.equal("deadline", select(2, weft.sleep(1000, d)).kind)
    assert.equal(100, weft.now())
    local v, e = weft.scope(function() return weft.sleep(50) end,
      { timeout = 5 })
    assert.is_nil(v)
    assert.equal("deadline", e.kind)
    assert.equal(105, weft.now())
  end))

  it("select over weft.after", vtask(function()
    local ch = weft.chan()
    weft.go(function()
      weft.sleep(7)
      ch:send("late")
    end)
    local i = weft.select { { recv = ch }, { recv = weft.after(5) } }
    assert.equal(2, i)
    assert.equal(5, weft.now())
    local j, v = weft.select { { recv = ch }, { recv = weft.after(5) } }
    assert.equal(1, j)
    assert.equal("late", v)
    assert.equal(7, weft.now())
    local k, at = weft.select { { recv = weft.after(0.25) } }
    assert.equal(1, k)
    assert.equal(7.25, at)
  end))

  it("gives the same order of events in every run", task(function()
    local function scenario()
      local log = {}
      local ch = weft.chan()
      local a, b = weft.chan(1), weft.chan(1)
      local tasks = {}
      for w = 1, 5 do
        tasks[w] = weft.go(function()
          for i = 1, 4 do
            weft.sleep((w * 7 + i * 3) % 5)
            local sent = weft.select {
              { send = ch, value = w * 10 + i },
              { recv = weft.after(2) },
            }
            log[#log + 1] = ("w%d.%d:%s@%g"):format(w, i,
              sent == 1 and "sent" or "timeout", weft.now())
          end
        end)
      end
      tasks[6] = weft.go(function()
        for _ = 1, 12 do
          local v = ch:recv(weft.with_timeout(3))
          log[#log + 1] = ("got %s@%g"):format(tostring(v), weft.now())
          weft.sleep(1)
        end
      end)
      -- Random choices among ready cases repeat too.
      for i = 1, 20 do
        a:send(i)
        b:send(i)
        local k = weft.select { { recv = a }, { recv = b } }
        log[#log + 1] = "pick " .. k
        if k == 1 then b:recv() else a:recv() end
      end
      -- The clock stops when this function returns: wait for the workers.
      for _, t in ipairs(tasks) do t:join() end
      return table.concat(log, "\n")
    end
    local first = assert(weft.virtual_time(scenario))
    assert.matches("timeout", first)
    assert.matches("pick 1", first)
    assert.matches("pick 2", first)
    for _ = 2, 20 do
      assert.equal(first, weft.virtual_time(scenario))
    end
  end))

  it("time stops when the root's function returns: a forgotten ticker " ..
    "is a deadlock, not an endless clock", task(function()
      local ticks = 0
      local ok, err = weft.virtual_time(function()
        weft.go(function()
          while weft.sleep(1) do ticks = ticks + 1 end
        end)
        weft.sleep(10.5)
      end)
      assert.is_nil(ok)
      assert.equal("deadlock", err.kind)
      assert.matches(
        "all tasks are asleep %- deadlock! %(virtual time 10%.500%)",
        err.message)
      assert.equal(10, ticks)
    end))

  it("a timer that wakes nobody does not stop the clock", vtask(function()
    weft.after(1)   -- nobody ever receives these
    weft.after(2)
    local ticks, stop = weft.ticker(0.5) -- nor this
    assert.is_true(weft.sleep(10))
    assert.equal(10, weft.now())
    stop()
    assert.equal(1, #ticks) -- a tick nobody took is dropped
  end))

  it("a deadlock inside fails it, and the rest of the runtime goes on",
    task(function()
      local ok, err = weft.virtual_time(function()
        local _, e = weft.chan():recv()
        return nil, e
      end)
      assert.is_nil(ok)
      assert.equal("deadlock", err.kind)
      assert.matches('recv on weft.chan', err.message)
      assert.is_true(weft.sleep(0.001)) -- real time, still running
    end))

  it("nests, and real time outside is untouched", task(function()
    local real0 = weft.now()
    local inner = weft.virtual_time(function()
      weft.sleep(10)
      return weft.virtual_time(function()
        weft.sleep(1)
        return weft.now()
      end), weft.now()
    end)
    assert.equal(1, inner)
    assert.is_true(weft.now() - real0 < 1)
  end))
end)

describe("whole programs on virtual time", function()
  local function script(text)
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end

  it("weft --virtual-time", task(function()
    local path = script([[
      local t0 = os.clock()
      weft.go(function() weft.sleep(86400); print("a day", weft.now()) end)
      local ctx = weft.with_timeout(60)
      local _, err = weft.chan():recv(ctx)
      print(err.kind, weft.now())
      weft.sleep(86400)
      print(os.clock() - t0 < 1)
    ]])
    local out, status = H.sh(H.weft_bin .. " --virtual-time " .. path ..
      " 2>&1")
    os.remove(path)
    assert.equal(0, status)
    assert.equal("deadline\t60\na day\t86400\ntrue\n", out)
  end))

  it("weft --virtual-time reports a deadlock and exits 1", task(function()
    local out, status = H.sh(H.weft_bin ..
      " --virtual-time -e 'weft.sleep(5); weft.chan():recv()' 2>&1")
    assert.equal(1, status)
    assert.matches("deadlock! %(virtual time 5%.000%)", out)
  end))

  it("weft.run(fn, {clock = \"virtual\"}) from a stock luajit",
    task(function()
      local path = script("package.cpath = " .. string.format("%q",
        H.module_dir .. "/?.so;") .. [[ .. package.cpath
        local weft = require "weft"
        print(weft.run(function(a)
          weft.sleep(3600)
          return a, weft.now()
        end, { clock = "virtual", args = { "x" } }))
        print(weft.run(function() return weft.now() < 1 end))
      ]])
      local preload = os.getenv("WEFT_LUAJIT_PRELOAD")
      local env = preload and ("LD_PRELOAD=" .. preload .. " ") or ""
      local out, status = H.sh(env .. "luajit " .. path .. " 2>&1")
      os.remove(path)
      assert.equal(0, status)
      assert.equal("x\t3600\ntrue\n", out)
    end))
end)
