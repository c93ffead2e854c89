-- gh-10: a hostile review of weft.work (runtime/pool.c, runtime/copy.c,
-- lua/weft/work.lua): each spec is something that broke.
local weft = require "weft"
local copy = require "weft.copy"
local pool = require "weft.pool"
local H = require "spec.helper"
local task = H.task

-- A directory of modules for the jobs, made once.
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir) == 0)
local function module(name, src)
  local f = assert(io.open(dir .. "/" .. name .. ".lua", "w"))
  f:write(src)
  f:close()
end

-- A strict module: reading a missing field raises, as many do.
module("gh10_strict", [[
local M = { hello = function() return "hi" end }
if rawget(weft, "worker") then -- in a worker only: a C function of no
  M.iter = string.gmatch("a", "a") -- standard module
end
return setmetatable(M, { __index = function(_, k)
  error("gh10_strict has no field " .. tostring(k), 2)
end })
]])
module("gh10_badtop", "error({ coroutine.create(print) })\n")
module("gh10_later", "return { f = function() return 'later' end }\n")

-- weft -e code, with the module directory on LUA_PATH. The code is one
-- line for the shell (no comments in it).
local function run(code, flags)
  return H.sh(("LUA_PATH='%s/?.lua;;' %s %s -e %q 2>&1"):format(dir,
    H.weft_bin, flags or "", code))
end

describe("gh-10 hostile: work_module", function()
  it("gh-10: a module whose __index raises fails the job, not the process",
    function()
      local out, status = run([[
        print(weft.work_module('gh10_strict', 'hello'))
        local v, err = weft.work_module('gh10_strict', 'missing')
        print(v, err.kind, err.message)
        print(weft.work_module('gh10_strict', 'hello'))]])
      assert.equal(0, status, out)
      assert.matches("^hi\nnil\twork\tjob gh10_strict.missing failed: " ..
        "[^\n]*gh10_strict has no field missing\nhi\n$", out)
    end)

  it("gh-10: a result that needs a strict module's missing field fails " ..
    "the job, not the runtime", function()
      local out, status = run([[
        require 'gh10_strict'
        local v, err = weft.work(function()
          return require('gh10_strict').iter
        end)
        print(v, err.kind, err.message)
        print(weft.work(function() return 1 end))]])
      assert.equal(0, status, out)
      assert.matches("^nil\twork\tjob [^\n]* failed: [^\n]*gh10_strict has " ..
        "no field iter\n1\n$", out)
    end)

  it("gh-10: a module whose top level raises a table that cannot be " ..
    "copied: the job fails saying so, not 'out of memory'", function()
      local out, status = run([[
        local v, err = weft.work_module('gh10_badtop', 'f')
        print(v, err.message)]])
      assert.equal(0, status, out)
      assert.is_nil(out:find("out of memory", 1, true), out)
      assert.matches("^nil\tjob gh10_badtop.f failed: %(error object is " ..
        "a table value%)\n$", out)
    end)

  it("gh-10: a refused argument of work_module is named args[1]",
    task(function()
      local ok, err = pcall(weft.work_module, "string", "rep",
        coroutine.create(print))
      assert.is_false(ok)
      assert.matches("weft%.work_module: args%[1%]: cannot copy a " ..
        "coroutine", err)
      ok, err = pcall(weft.work_module, "string", "rep", "x",
        { y = newproxy() })
      assert.is_false(ok)
      assert.matches("weft%.work_module: args%[2%]%.y: cannot copy a " ..
        "userdata", err)
      assert.equal("xxx", weft.work_module("string", "rep", "x", 3))
    end))

  it("gh-10: package.path set after the pool started reaches the workers",
    function()
      local out, status = H.sh(("%s -e %q 2>&1"):format(H.weft_bin, ([[
        print(weft.work(function() return 1 end))
        package.path = '%s/?.lua;' .. package.path
        print(weft.work_module('gh10_later', 'f'))]]):format(dir)))
      assert.equal(0, status, out)
      assert.equal("1\nlater\n", out)
    end)
end)

describe("gh-10 hostile: values", function()
  it("gh-10: values nested exactly 200 deep cross; 201 are refused",
    task(function()
      local function nest(n)
        local d = {}
        for _ = 2, n do d = { d } end
        return d
      end
      local function depth(t)
        local n = 0
        while t do
          n = n + 1
          t = t[1]
        end
        return n
      end
      assert.equal(200, depth(copy.roundtrip(nest(200))))
      assert.equal(200, weft.work(depth, nest(200)))
      local back = weft.work(function()
        local d = {}
        for _ = 2, 200 do d = { d } end
        return d
      end)
      assert.equal(200, depth(back))
      local ok, err = pcall(weft.work, depth, nest(201))
      assert.is_false(ok)
      assert.matches("nested more than 200 deep", err)
    end))

  it("gh-10: a job returning too many values says so", task(function()
      local v, err = weft.work(function(n)
        local r = {}
        for i = 1, n do r[i] = i end
        return unpack(r)
      end, 7995)
      assert.is_nil(v)
      assert.matches("results: too many values", err.message)
      assert.equal(7000, select("#", weft.work(function(n)
        local r = {}
        for i = 1, n do r[i] = i end
        return unpack(r)
      end, 7000)))
      local t = {}
      for i = 1, 7990 do t[i] = i end
      local ok, msg = pcall(weft.work, print, unpack(t))
      assert.is_false(ok)
      assert.matches("weft%.work: args: too many values", msg)
    end))

  it("gh-10: a C function aliased in a module of the program's own " ..
    "crosses as the standard one", task(function()
      local len, floor = string.len, math.floor
      for i = 1, 20 do
        package.loaded["gh10_alias" .. i] = { len = len, floor = floor,
          lib = math }
      end
      local ok, a, b, c = pcall(function()
        return weft.work(function(s)
          return len(s), floor(2.5), math.floor(1.5)
        end, "abc")
      end)
      for i = 1, 20 do package.loaded["gh10_alias" .. i] = nil end
      assert.is_true(ok)
      assert.same({ 3, 2, 1 }, { a, b, c })
    end))

  it("gh-10: keys of every type, -0 and number-like strings",
    task(function()
      local f = function() return 1 end
      local t = { [true] = 1, [false] = 2, [-0.0] = 3, ["1"] = 4, [1] = 5,
        [1.5] = 6, [f] = 7, [string] = 8, [math.floor] = 9, [{}] = 10,
        [-1 / 0] = 11, [2 ^ 53] = 12 }
      local kinds, zero, s1, n1, str, fl = weft.work(function(x)
        local kinds = {}
        for k, v in pairs(x) do kinds[v] = type(k) end
        return kinds, x[0], x["1"], x[1], x[string], x[math.floor]
      end, t)
      assert.same({ "boolean", "boolean", "number", "string", "number",
        "number", "function", "table", "function", "table", "number",
        "number" }, kinds)
      assert.same({ 3, 4, 5, 8, 9 }, { zero, s1, n1, str, fl })
    end))
end)

describe("gh-10 hostile: the pool", function()
  it("gh-10: --workers 1 runs one job at a time, also after a job that " ..
    "ignored cancellation ended", function()
      local flag = dir .. "/gh10_flag"
      os.remove(flag)
      os.remove(flag .. ".stop")
      local out, status = run(([[
        local pool = require 'weft.pool'
        local flag = %q
        local ctx, cancel = weft.with_cancel()
        local t = weft.go(function()
          weft.scope(function()
            return weft.work(function(path)
              io.open(path, 'w'):close()
              local function spin() for _ = 1, 1e5 do end end
              jit.off(spin)
              while not io.open(path .. '.stop') do pcall(spin) end
            end, flag)
          end, { ctx = ctx })
        end)
        while not io.open(flag) do weft.yield() end
        cancel()
        t:join()
        print(weft.work(function() return 'meanwhile' end))
        io.open(flag .. '.stop', 'w'):close()
        while select(3, pool.stats()) > 0 do weft.yield() end
        local function probe(me, other)
          io.open(me, 'w'):close()
          local t0, saw = os.clock(), false
          while os.clock() - t0 < 0.1 and not saw do
            local f = io.open(other)
            if f then f:close() saw = true end
          end
          os.remove(me)
          return saw
        end
        local g, saw = weft.group(), {}
        for i = 1, 2 do
          g:go(function()
            saw[i] = weft.work(probe, flag .. i, flag .. (3 - i))
          end)
        end
        g:wait()
        print(saw[1], saw[2])]]):format(flag), "--workers 1")
      assert.equal(0, status, out)
      assert.equal("meanwhile\nfalse\tfalse\n", out)
    end)

  it("gh-10: --workers 1 with 100 concurrent jobs: each result once",
    function()
      local out, status = run([[
        local g, got = weft.group(), {}
        for i = 1, 100 do
          g:go(function()
            local v = weft.work(function(x) return x * 3 end, i)
            assert(not got[i] and v == i * 3)
            got[i] = true
          end)
        end
        assert(g:wait() == nil)
        local n = 0
        for _ in pairs(got) do n = n + 1 end
        print(n, select(4, require('weft.pool').stats()))]], "--workers 1")
      assert.equal(0, status, out)
      assert.equal("100\t0\n", out)
    end)

  it("gh-10: one job cancelled from many paths at once is cancelled once",
    task(function()
      for _ = 1, 20 do
        local g = weft.group()
        local t
        t = g:go(function()
          return weft.scope(function()
            return weft.work(function()
              while not weft.worker.canceled() do end
            end)
          end, { timeout = 0.001 })
        end)
        g:go(function()
          weft.sleep(0.001)
          t:cancel()
        end)
        g:go(function()
          weft.sleep(0.001)
          error("gh10 group failure", 0)
        end)
        local err = g:wait()
        assert.is_not_nil(err)
      end
      local _, _, _, inflight = pool.stats()
      assert.equal(0, inflight)
      assert.equal(1, weft.work(function() return 1 end))
    end))

  it("gh-10: a wait on the pool inside a coroutine.wrap generator",
    task(function()
      local gen = coroutine.wrap(function()
        for i = 1, 3 do
          coroutine.yield(weft.work(function(x) return x * 10 end, i))
        end
      end)
      assert.same({ 10, 20, 30 }, { gen(), gen(), gen() })
    end))

  it("gh-10: the calling task survives a full collection while it waits",
    task(function()
      local t = weft.go(function()
        return weft.work(function()
          local s = 0
          for i = 1, 2e6 do s = s + i end
          return s
        end)
      end)
      weft.yield()
      collectgarbage()
      collectgarbage()
      assert.equal(2e6 * (2e6 + 1) / 2, t:join())
    end))
end)
