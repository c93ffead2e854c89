local weft = require "weft"
local H = require "spec.helper"
local task = H.task

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("weft.error", function()
  it("records kind, message, cause, traceback, UTC time, task and log id",
    task(function()
      local before = os.time()
      local e = weft.error { kind = "io", msg = "disk full", cause = "ENOSPC",
        path = "/tmp/x" }
      assert.equal("io", e.kind)
      assert.equal("disk full", e.message)
      assert.equal("disk full", tostring(e))
      assert.equal("ENOSPC", e.cause)
      assert.equal("/tmp/x", e.path)
      assert.matches("errors_spec%.lua:%d+", e.traceback)
      assert.matches(ISO, e.time)
      local y, mo, d, h, mi, s = e.time:match(
        "^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)")
      local t = os.time { year = y, month = mo, day = d, hour = h, min = mi,
        sec = s, isdst = false } - (os.time() - os.time(os.date("!*t")))
      assert.is_true(math.abs(t - before) <= 2, e.time)
      assert.equal("spec", e.task)
      assert.equal(weft.current():id(), e.task_id)
      assert.matches("^%w+%-%d+$", e.id)
    end))

  it("takes a kind and a format", task(function()
    local e = weft.error("parse", "line %d: %s", 7, "unexpected '}'")
    assert.equal("parse", e.kind)
    assert.equal("line 7: unexpected '}'", e.message)
    assert.equal("just this", weft.error("k", "just this").message)
    assert.equal("k", weft.error("k").message)
  end))

  it("gives every error its own log id", task(function()
    local seen = {}
    for _ = 1, 100 do
      local id = weft.error("k", "m").id
      assert.is_nil(seen[id])
      seen[id] = true
    end
  end))

  it("wraps three layers deep and reads every layer back", task(function()
    local root = weft.error("io", "cannot open %q", "db.conf")
    local function load() return nil, root:wrap("loading the configuration") end
    local function start()
      local _, err = load()
      return nil, err:wrap("starting the server on port %d", 8080)
    end
    local _, top = start()
    local outer = top:wrap("service failed")
    assert.equal("service failed", tostring(outer))
    local layers = {}
    local e = outer
    while weft.errors.is_error(e) do
      layers[#layers + 1] = e.message
      assert.equal("io", e.kind)
      assert.matches(ISO, e.time)
      assert.equal("spec", e.task)
      e = e.cause
    end
    assert.same({ "service failed", "starting the server on port 8080",
      "loading the configuration", 'cannot open "db.conf"' }, layers)
    assert.is_true(weft.errors.is(outer, "io"))
    assert.is_true(weft.errors.is(outer, root))
    assert.is_false(weft.errors.is(outer, "closed"))
    assert.equal(root, weft.errors.root(outer))
    assert.equal(root, weft.errors.root(root))
    local record = weft.errors.record(outer)
    for _, l in ipairs(layers) do
      assert.is_truthy(record:find(l, 1, true), l)
    end
    local _, n = record:gsub("caused by: ", "")
    assert.equal(3, n)
  end))

  it("is walks to a raw cause, root returns it", task(function()
    local e = weft.error { kind = "k", msg = "m", cause = "raw text" }
    assert.is_true(weft.errors.is(e, "raw text"))
    assert.equal("raw text", weft.errors.root(e))
  end))

  it("rejects a bad kind", task(function()
    assert.has_error(function() weft.error { msg = "x" } end,
      "bad argument #1 to 'error' (field 'kind': string expected, got nil)")
    assert.has_error(function() weft.error(5) end,
      "bad argument #1 to 'error' (table or string expected, got number)")
  end))
end)

describe("errors weft returns", function()
  it("are well-formed: canceled, deadline, closed", task(function()
    local ctx, cancel = weft.with_cancel()
    cancel()
    local errs = { ctx:err(), weft.with_deadline(0):err(),
      select(2, (function() local c = weft.chan(); c:close()
        return c:recv() end)()) }
    local kinds = {}
    for i, e in ipairs(errs) do
      assert.is_true(weft.errors.is_error(e))
      assert.matches("^%w+%-%d+$", e.id)
      assert.matches(ISO, e.time)
      kinds[i] = e.kind
    end
    assert.same({ "canceled", "deadline", "closed" }, kinds)
  end))

  it("a raised non-weft value becomes a bug keeping it and its traceback",
    task(function()
      local tbl = { code = 7 }
      local t = weft.go(function() error(tbl) end)
      local _, err = t:join()
      assert.equal("bug", err.kind)
      assert.equal(tbl, err.value)
      assert.equal("(error object is a table value)", err.message)
      assert.matches("errors_spec%.lua:%d+", err.traceback)
    end))
end)

describe("reports", function()
  it("brief: a well-formed error is its id and message", task(function()
    local e = weft.error("job", "cannot run job %q", "1")
    assert.equal("[" .. e.id .. '] cannot run job "1"', weft.errors.brief(e))
  end))

  it("gh-9: brief: a bug names its task, says whose bug it is and where",
    task(function()
      local t = weft.spawn { name = "worker",
        fn = function() error("oops", 0) end }
      local _, err = t:join()
      local id = err.id:gsub("%-", "%%-")
      assert.matches("^%[" .. id .. '%] uncaught error in task "worker" ' ..
        "%(a bug in the program%): oops\n  spec/errors_spec%.lua:%d+: in " ..
        "function <spec/errors_spec%.lua:%d+>$", weft.errors.brief(err))
    end))

  it("gh-9: brief shows at most three frames", task(function()
    local function f(n)
      if n == 0 then error("deep", 0) end
      f(n - 1)
      return n -- not a tail call: each level keeps its frame
    end
    local _, err = weft.go(function() f(5) end):join()
    local text = weft.errors.brief(err)
    local _, frames = text:gsub("\n  spec/errors_spec%.lua:%d+:", "")
    assert.equal(3, frames)
    assert.matches("\n  %.%.%.$", text)
  end))

  it("a bug raised in a nested task is reported once, with its task's name",
    task(function()
      local outer = weft.spawn { name = "outer", fn = function()
        weft.spawn { name = "middle", fn = function()
          weft.spawn { name = "inner", fn = function()
            weft.sleep(0)
            error("deep trouble", 0)
          end }
          weft.sleep(10)
        end }
        weft.sleep(10)
      end }
      local _, err = outer:join()
      assert.equal("bug", err.kind)
      assert.equal("inner", err.task)
      assert.equal("deep trouble", err.message)
      assert.is_nil(err.others)
      local _, n = weft.errors.record(err):gsub("deep trouble", "")
      assert.equal(1, n)
    end))
end)
