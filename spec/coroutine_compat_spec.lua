-- gh-12: code outside weft's tasks sees coroutine.resume, wrap, running and
-- status behave exactly as stock LuaJIT's after `require "weft"` (which
-- installs relays for them). Each case runs twice in a stock luajit, with
-- and without the require, and the two outputs must be the same.
local H = require "spec.helper"
local task = H.task

-- Shared by both runs, so that line numbers match: show(...) prints its
-- values with the count, the chunk's name as "@" and addresses dropped.
local PRELUDE = [[
local src = debug.getinfo(1, "S").short_src
local function show(...)
  local n, t = select("#", ...), {}
  for i = 1, n do
    local v = select(i, ...)
    if type(v) == "string" then
      local a, b = v:find(src, 1, true)
      while a do
        v = v:sub(1, a - 1) .. "@" .. v:sub(b + 1)
        a, b = v:find(src, 1, true)
      end
      t[i] = string.format("%q", v)
    elseif type(v) == "table" or type(v) == "thread" or
      type(v) == "function" or type(v) == "userdata" then
      t[i] = type(v)
    else
      t[i] = tostring(v)
    end
  end
  print(n .. ": " .. table.concat(t, ", "))
end
]]

-- run(with_weft, code) -> what code printed (its exit status must be 0).
local function run(with_weft, code)
  local head = with_weft and 'local weft = require "weft"\n' or
    "local weft = false\n"
  local out, status = H.luajit(head .. PRELUDE .. code)
  assert(status == 0, out)
  return out
end

local function same(code)
  return task(function()
    local stock = run(false, code)
    local with = run(true, code)
    assert.is_true(#stock > 0)
    assert.equal(stock, with)
  end)
end

describe("gh-12: coroutines outside tasks behave as stock LuaJIT's", function()
  it("require installs the relays (so the comparisons mean something)",
    task(function()
      local out = run(true, [[
        local resume, wrap = coroutine.resume, coroutine.wrap
        package.loaded.weft = nil
        print(weft ~= nil, coroutine.resume ~= nil, type(resume), type(wrap))
        print(debug.getinfo(coroutine.resume, "S").what,
          debug.getinfo(coroutine.wrap, "S").what,
          debug.getinfo(coroutine.running, "S").what)
      ]])
      assert.equal("true\ttrue\tfunction\tfunction\nLua\tLua\tLua\n", out)
    end))

  it("resume: results, arguments and yields both ways", same [[
    local co = coroutine.create(function(a, b)
      show("in", a, b)
      local c, d = coroutine.yield(a + b, nil, "x")
      show("in", c, d)
      local e = coroutine.yield()
      return e, nil, nil
    end)
    show(coroutine.resume(co, 1, 2))
    show(coroutine.status(co))
    show(coroutine.resume(co, "c", nil))
    show(coroutine.resume(co, nil, nil, 3))
    show(coroutine.status(co))
    show(coroutine.resume(co))
    show(coroutine.resume(co, 1))
  ]])

  it("resume: errors, their messages and values, and the dead coroutine",
    same [[
    local co = coroutine.create(function() error("boom") end)
    show(coroutine.resume(co))
    show(coroutine.status(co))
    show(coroutine.resume(co))
    local lvl = coroutine.create(function() local function f()
      error("lvl2", 2) end f() end)
    show(coroutine.resume(lvl))
    local t = coroutine.create(function() error({ code = 1 }) end)
    local ok, e = coroutine.resume(t)
    show(ok, e, e.code)
    show(coroutine.resume(coroutine.create(function() error() end)))
    show(coroutine.resume(coroutine.create(function() error(42, 0) end)))
    show(coroutine.resume(coroutine.create(function() error(42) end)))
    show(coroutine.resume(coroutine.create(function() local x = nil;
      return x.y end)))
    local tb = coroutine.create(function() error("tb") end)
    coroutine.resume(tb)
    show(debug.traceback(tb))
  ]])

  it("resume: bad arguments, running and normal coroutines", same [[
    show(pcall(coroutine.resume))
    show(pcall(coroutine.resume, 1))
    show(pcall(function() return coroutine.resume({}) end))
    show(pcall(function() local ok, e = coroutine.resume("x") return ok, e end))
    local r = coroutine.resume
    show(pcall(function() local ok, e = r(nil) return ok, e end))
    local t = { resume = coroutine.resume }
    show(pcall(function() local ok, e = t:resume() return ok, e end))
    local outer
    outer = coroutine.create(function()
      show("self", coroutine.resume(outer))
      local inner = coroutine.create(function()
        show("outer is", coroutine.status(outer))
        show("outer", coroutine.resume(outer))
        return "inner done"
      end)
      show(coroutine.resume(inner))
      show("inner is", coroutine.status(inner))
    end)
    show(coroutine.resume(outer))
    show(coroutine.status(outer))
    show(pcall(coroutine.resume, coroutine.running()))
  ]])

  it("yields across nested coroutines reach their own resumer", same [[
    local function gen(n)
      return coroutine.wrap(function()
        for i = 1, n do coroutine.yield(i) end
      end)
    end
    local outer = coroutine.create(function()
      local inner = coroutine.create(function()
        for v in gen(3) do coroutine.yield("inner", v) end
        return "inner end"
      end)
      while true do
        local ok, a, b = coroutine.resume(inner)
        show("outer got", ok, a, b, coroutine.status(inner))
        if coroutine.status(inner) == "dead" then break end
        coroutine.yield("outer", a, b)
      end
      return "outer end"
    end)
    repeat
      show(coroutine.resume(outer))
    until coroutine.status(outer) == "dead"
    -- Deep nesting: each level resumes the next and relays its yields.
    local function level(n)
      if n == 0 then
        return coroutine.create(function(x)
          while true do x = coroutine.yield(x * 2) end
        end)
      end
      local sub = level(n - 1)
      return coroutine.create(function(x)
        while true do
          local _, v = coroutine.resume(sub, x)
          x = coroutine.yield(v + 1)
        end
      end)
    end
    local top = level(20)
    show(coroutine.resume(top, 1))
    show(coroutine.resume(top, 10))
  ]])

  it("wrap: results, errors with positions and levels, and values",
    same [[
    local w = coroutine.wrap(function(a)
      local b = coroutine.yield(a, nil)
      return b, "end"
    end)
    show(w(1))
    show(w(2))
    show(pcall(w))
    local e1 = coroutine.wrap(function() error("boom") end)
    show(pcall(function() local v = e1() return v end))
    show(pcall(function() return e1() end))
    show(pcall(e1))
    local e2 = coroutine.wrap(function() error("lvl", 2) end)
    show(pcall(function() local v = e2() return v end))
    local e3 = coroutine.wrap(function() error("nopos", 0) end)
    show(pcall(function() local v = e3() return v end))
    local e4 = coroutine.wrap(function() error({ 1 }) end)
    show(pcall(function() local v = e4() return v end))
    local e5 = coroutine.wrap(function() error(42, 0) end)
    show(pcall(function() local v = e5() return v end))
    local e6 = coroutine.wrap(function() error() end)
    show(pcall(function() local v = e6() return v end))
    local e7 = coroutine.wrap(function() error(42) end)
    show(pcall(function() local v = e7() return v end))
    local self
    self = coroutine.wrap(function() local v = self() return v end)
    show(pcall(function() local v = self() return v end))
    show(pcall(function() local v = self() return v end))
    show(pcall(coroutine.wrap))
    show(pcall(coroutine.wrap, 1))
    show(pcall(function() local f = coroutine.wrap("x") return f end))
    local wrap = coroutine.wrap
    show(pcall(function() local f = wrap(nil) return f end))
  ]])

  it("wrap: errors raised through nested wraps and pcall inside", same [[
    local inner = coroutine.wrap(function()
      coroutine.yield(pcall(error, "caught"))
      error("inner")
    end)
    local outer = coroutine.wrap(function()
      show("first", inner())
      local v = inner()
      return v
    end)
    show(pcall(function() local v = outer() return v end))
    local deep = coroutine.wrap(function()
      return coroutine.wrap(function()
        return coroutine.wrap(function() error("deep") end)()
      end)()
    end)
    show(pcall(function() local v = deep() return v end))
  ]])

  it("running, status and isyieldable", same [[
    show(coroutine.running())
    show(coroutine.isyieldable())
    local main = coroutine.running()
    local co
    co = coroutine.create(function()
      show(coroutine.running() == co, select("#", coroutine.running()))
      show(coroutine.status(co), coroutine.isyieldable())
      coroutine.yield()
    end)
    show(main, coroutine.status(co))
    coroutine.resume(co)
    show(coroutine.status(co))
    coroutine.resume(co)
    show(coroutine.status(co))
    local w = coroutine.wrap(function()
      show("wrapped", type(coroutine.running()), select("#",
        coroutine.running()))
    end)
    w()
    show(pcall(coroutine.status, 1))
  ]])
end)
