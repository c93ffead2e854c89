-- gh-9: clear messages and exact results in the toolkit (sync, group,
-- rate, steward, errors.record, weft.error) and the files a newcomer reads
-- first (examples, docs, LICENSE, CHANGELOG).
local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask

local nan = 0 / 0
local SRC = debug.getinfo(1, "S").short_src

-- raised(f) -> the error f raised, and the line f starts on, where it
-- makes the call under test. f must not end in a tail call (which would
-- remove its frame, the one the error blames).
local function raised(f)
  local ok, err = pcall(f)
  assert(not ok, "expected an error")
  return err, debug.getinfo(f, "S").linedefined
end

-- at(line, msg) -> the message as raised from this file's line `line`.
local function at(line, msg)
  return ("%s:%d: %s"):format(SRC, line, msg)
end

-- read(path) -> the text of a file of the repository, or nil.
local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

describe("gh-9: the toolkit", function()
  it("gh-9: bad arguments to sync waits blame the caller's line",
    vtask(function()
      local m, s, f = weft.mutex(), weft.semaphore(1), weft.fence()
      local l = weft.locked(1)
      local e, n
      e, n = raised(function() local r = m:lock("x") return r end)
      assert.equal(at(n, "bad argument #1 to 'lock' (weft.ctx expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = m:with("x", print) return r end)
      assert.equal(at(n, "bad argument #1 to 'with' (weft.ctx expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = s:acquire("x") return r end)
      assert.equal(at(n, "bad argument #1 to 'acquire' (weft.ctx " ..
        "expected, got string)"), e)
      e, n = raised(function() local r = s:acquire("x", 1) return r end)
      assert.equal(at(n, "bad argument #1 to 'acquire' (weft.ctx " ..
        "expected, got string)"), e)
      e, n = raised(function() local r = f:wait("x") return r end)
      assert.equal(at(n, "bad argument #1 to 'wait' (weft.ctx expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = l:modify("x", print) return r end)
      assert.equal(at(n, "bad argument #1 to 'modify' (weft.ctx " ..
        "expected, got string)"), e)
      -- Nothing was taken by the calls that raised.
      assert.is_true(m:try_lock())
      assert.is_true(s:try_acquire())
    end))

  it("gh-9: bad arguments to group, limiter and jobs waits blame the " ..
    "caller's line", vtask(function()
      local g, lim = weft.group(), weft.limiter(1)
      local j = weft.jobs(weft.context())
      local e, n
      e, n = raised(function() local r = g:wait("x") return r end)
      assert.equal(at(n, "bad argument #1 to 'wait' (weft.ctx expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = lim:close(7) return r end)
      assert.equal(at(n, "bad argument #1 to 'close' (weft.ctx expected, " ..
        "got number)"), e)
      e, n = raised(function() local r = j:wait({}) return r end)
      assert.equal(at(n, "bad argument #1 to 'wait' (weft.ctx expected, " ..
        "got table)"), e)
    end))

  it("gh-9: bad arguments to multi:wait blame the caller's line",
    vtask(function()
      local m = weft.rate.multi(weft.rate.limiter(10, 1),
        weft.rate.limiter(5, 2))
      local l = weft.rate.limiter(10, 1)
      local e, n
      e, n = raised(function() local r = m:wait("x") return r end)
      assert.equal(at(n, "bad argument #1 to 'wait' (weft.ctx expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = m:wait(2, "x") return r end)
      assert.equal(at(n, "bad argument #2 to 'wait' (weft.ctx expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = m:wait(1.5) return r end)
      assert.equal(at(n, "bad argument #1 to 'wait' (non-negative integer " ..
        "expected, got 1.5)"), e)
      -- A limiter's wait names the argument's position as the multi's does.
      e, n = raised(function() local r = l:wait("x") return r end)
      assert.equal(at(n, "bad argument #1 to 'wait' (weft.ctx expected, " ..
        "got string)"), e)
      assert.is_true(m:wait(1))
    end))

  it("gh-9: weft.error with a bad format blames the caller's line",
    function()
      local e, n
      e, n = raised(function() local r = weft.error("k", "%d", "x")
        return r end)
      assert.equal(at(n, "bad argument #3 to 'error' (number expected, " ..
        "got string)"), e)
      e, n = raised(function() local r = weft.error("k", "%d", {})
        return r end)
      assert.equal(at(n, "bad argument #3 to 'error' (number expected, " ..
        "got table)"), e)
      e, n = raised(function() local r = weft.error("k", "%d %d", 1)
        return r end)
      assert.equal(at(n, "bad argument #4 to 'error' (value expected)"), e)
      -- A good format still makes the error; wrap, on the error path,
      -- still never raises.
      assert.equal("k 1 x", weft.error("k", "k %d %s", 1, "x").message)
      local w = weft.error("k", "m"):wrap("%d", "x")
      assert.equal("%d (bad format: bad argument #2 to 'format' (number " ..
        "expected, got string))", w.message)
    end)

  it("gh-9: methods of rate limiters, reservations and multis called " ..
    "with '.' say so", vtask(function()
      local rate = weft.rate
      local l = rate.limiter(10, 1)
      local m = rate.multi(l, rate.limiter(5, 2))
      local r, mr = l:reserve(), m:reserve()
      local e, n
      e, n = raised(function() local x = l.allow() return x end)
      assert.equal(at(n, "bad argument #1 to 'allow' (weft.rate.limiter " ..
        "expected, got nil)"), e)
      local cases = {
        { m, "multi", { "limit", "burst", "tokens", "tokens_at", "allow",
          "allow_at", "reserve", "reserve_at", "wait" } },
        { r, "reservation", { "is_ok", "delay", "delay_from", "cancel",
          "cancel_at" } },
        { mr, "reservation", { "is_ok", "delay", "delay_from", "cancel",
          "cancel_at" } },
      }
      for _, c in ipairs(cases) do
        local obj, tname, methods = c[1], c[2], c[3]
        for _, name in ipairs(methods) do
          e, n = raised(function() local x = obj[name]() return x end)
          assert.equal(at(n, ("bad argument #1 to '%s' (weft.rate.%s " ..
            "expected, got nil)"):format(name, tname)), e)
        end
      end
      -- Called right, they still work.
      assert.equal(5, m:limit())
      assert.is_true(r:is_ok())
      assert.is_true(mr:is_ok())
    end))

  it("gh-9: a steward's give-up message counts the restarts that " ..
    "happened", vtask(function()
      local lines = {}
      local starts = 0
      local st = weft.steward { name = "w", timeout = 100, max_restarts = 3,
        log = function(msg) lines[#lines + 1] = msg end,
        start = function(ctx)
          starts = starts + 1
          weft.go(function() weft.sleep(1, ctx) end)
        end }
      local _, mon = st(weft.context(), 10)
      local ok, err = mon:join()
      assert.is_nil(ok)
      assert.equal(4, starts) -- the first start and 3 restarts
      assert.equal("steward: gave up on w after 3 restarts in 60 s; " ..
        "last failure: w ended", err.message)
      assert.same({
        "steward: w ended; restarting",
        "steward: w ended; restarting",
        "steward: w ended; restarting",
        err.message,
      }, lines)
      -- One restart is one, not "1 restarts".
      local once = weft.steward { name = "o", timeout = 100,
        max_restarts = 1, log = function() end, start = function() end }
      _, mon = once(weft.context(), 10)
      _, err = mon:join()
      assert.equal("steward: gave up on o after 1 restart in 60 s; " ..
        "last failure: o ended", err.message)
    end))

  it("gh-9: a steward whose start returns what is not a channel fails " ..
    "saying what was expected", vtask(function()
      local logged = 0
      local st = weft.steward { name = "w", timeout = 1,
        log = function() logged = logged + 1 end,
        start = function() return "beats" end }
      local beats, mon = st(weft.context(), 1)
      local ok, err = mon:join()
      assert.is_nil(ok)
      assert.equal("bug", err.kind)
      assert.equal("steward: start of w returned string (a weft.chan or " ..
        "nil expected)", err.message)
      assert.equal(0, logged) -- no restart: it would only fail again
      assert.is_nil((beats:recv())) -- the steward's heartbeat is closed
    end))

  it("gh-9: a steward whose backoff returns a non-number or NaN fails " ..
    "saying what was expected", vtask(function()
      for _, v in ipairs({ "soon", nan, -1 }) do
        local st = weft.steward { name = "w", timeout = 1,
          log = function() end, backoff = function() return v end,
          start = function() end }
        local beats, mon = st(weft.context(), 1)
        local ok, err = mon:join()
        assert.is_nil(ok)
        assert.equal(("steward: backoff(1) returned %s (non-negative " ..
          "number expected)"):format(v == "soon" and "string" or
          tostring(v)), err.message)
        assert.is_nil((beats:recv()))
      end
    end))

  it("gh-9: a send on a fence's released() channel does not break wait",
    vtask(function()
      local f = weft.fence()
      local got = {}
      local waiter = weft.go(function()
        got[1], got[2] = f:wait()
        got.n = select("#", f:wait())
      end)
      weft.yield() -- the waiter waits
      -- Someone sends on the channel while the waiter waits: nobody takes
      -- the value (wait does not receive from the channel).
      local sctx = weft.with_timeout(1)
      local ok, err = f:released():send("not a release", sctx)
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      weft.sleep(1)
      assert.is_nil(got[1]) -- still waiting
      f:release()
      assert.is_true(waiter:join())
      assert.same({ true, nil, n = 1 }, got)
      -- Cancellation still ends a wait, and only that wait.
      local g = weft.fence()
      local ctx, cancel = weft.with_timeout(2)
      ok, err = g:wait(ctx)
      assert.is_nil(ok)
      assert.equal("deadline", err.kind)
      assert.equal(4, weft.now())
      cancel()
      g:release()
      assert.is_true(g:wait())
      assert.is_true(weft.once():call(function() end))
    end))

  it("gh-9: a record of many failures says how many it leaves out",
    vtask(function()
      local g = weft.group()
      for i = 1, 100 do g:go(function() return nil, "f" .. i end) end
      local err = g:wait()
      assert.equal(99, #err.others)
      local rec = weft.errors.record(err)
      local _, named = rec:gsub("\nalso failed: ", "")
      assert.equal(18, named)
      assert.truthy(rec:find("\nalso failed: f19\n", 1, true))
      assert.falsy(rec:find("f20", 1, true))
      assert.equal("... and 81 more (err.others has all 99)",
        rec:match("[^\n]+$"))
      -- A few are all named, with nothing after them.
      g = weft.group()
      for i = 1, 19 do g:go(function() return nil, "f" .. i end) end
      rec = weft.errors.record(g:wait())
      _, named = rec:gsub("\nalso failed: ", "")
      assert.equal(18, named)
      assert.equal("also failed: f19", rec:match("[^\n]+$"))
    end))

  it("gh-9: a group is reusable after wait: each round has a context of " ..
    "its own", vtask(function()
      local parent, cancel_parent = weft.with_cancel()
      local g = weft.group { ctx = parent }
      local done, ctxs = {}, {}
      for round = 1, 3 do
        for i = 1, 2 do
          g:go(function(ctx)
            ctxs[round] = ctx
            if not weft.sleep(1, ctx) then return nil, ctx:err() end
            done[#done + 1] = round * 10 + i
          end)
        end
        local c = g:context()
        assert.is_nil(c:err())
        assert.is_nil(g:wait())
        assert.equal(c, ctxs[round])
        -- Go's rule holds for the round that ended.
        assert.equal("canceled", ctxs[round]:err().kind)
      end
      assert.same({ 11, 12, 21, 22, 31, 32 }, done)
      assert.are_not.equal(ctxs[1], ctxs[2])
      -- An error is the result of its round only.
      g:go(function() return nil, weft.error("io", "disk full") end)
      g:go(function(ctx) weft.sleep(5, ctx) end)
      local err = g:wait()
      assert.equal("disk full", err.message)
      assert.equal(err, g:wait()) -- the ended round's result, again
      g:go(function() end)
      assert.is_nil(g:wait())
      -- Each round derives from the group's parent.
      g:go(function(ctx) weft.sleep(100, ctx) end)
      local c = g:context()
      cancel_parent()
      assert.is_nil(g:wait())
      assert.equal("canceled", c:err().kind)
      g:go(function(ctx) done.last = ctx:err() end)
      assert.is_nil(g:wait())
      assert.equal("canceled", done.last.kind)
    end))

  it("gh-9: a limited group is reusable too", vtask(function()
    local g = weft.group { limit = 1 }
    local order = {}
    for round = 1, 2 do
      for i = 1, 2 do
        assert.is_true(g:go(function()
          weft.sleep(1)
          order[#order + 1] = round * 10 + i
        end))
      end
      assert.is_nil(g:wait())
    end
    assert.same({ 11, 12, 21, 22 }, order)
    assert.equal(4, weft.now())
  end))
end)

describe("gh-9: what a newcomer reads", function()
  local function examples()
    local out = {}
    local p = io.popen("ls examples/*.lua")
    for path in p:lines() do out[#out + 1] = path end
    p:close()
    return out
  end

  it("gh-9: every example starts with local weft = require \"weft\"",
    function()
      local list = examples()
      assert.is_true(#list > 10)
      for _, path in ipairs(list) do
        -- The first line that is not a comment or blank.
        local first
        for l in read(path):gmatch("[^\n]*") do
          if not l:find("^%-%-") and l:find("%S") then
            first = l
            break
          end
        end
        assert.equal('local weft = require "weft"', first, path)
      end
    end)

  it("gh-9: every Lua snippet of the docs starts with local weft = " ..
    "require \"weft\"", function()
      for _, path in ipairs({ "docs/guide.md", "docs/api.md",
          "README.md" }) do
        for snippet in read(path):gmatch("```lua\n(.-)```") do
          -- Setting the module's path, for a stock LuaJIT, comes first.
          local body = snippet:gsub("^package%.[^\n]*\n", "")
          assert.equal('local weft = require "weft"', body:match("^[^\n]*"),
            path .. ": " .. snippet:match("^[^\n]*"))
        end
      end
      assert.truthy(read("docs/guide.md"):find("local weft = require " ..
        "\"weft\"` works both", 1, true))
    end)

  it("gh-9: the project has a LICENSE and a CHANGELOG", function()
    local license = read("LICENSE")
    assert.truthy(license:find("^MIT License\n"))
    assert.truthy(license:find("Copyright (c) 2026 the weft authors", 1,
      true))
    local changelog = read("CHANGELOG.md")
    assert.truthy(changelog:find("\n## %[Unreleased%]\n"))
    assert.truthy(changelog:find("\n## %[0%.1%.0%]"))
  end)
end)
