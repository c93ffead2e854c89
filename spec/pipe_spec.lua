-- weft.pipe: pipeline stages ("Concurrency in Go", ch. 4). Each stage is a
-- child task of the caller that stops when its context is cancelled; the
-- specs build pipelines inside weft.scope, whose end cancels them.
local weft = require "weft"
local H = require "spec.helper"
local vtask = H.vtask
local p = weft.pipe

-- stages() -> the number of unfinished tasks running a pipe stage.
local function stages()
  local n = 0
  for _, t in ipairs(weft.tasks()) do
    if t.name:find("weft[./]pipe") then n = n + 1 end
  end
  return n
end

-- pipeline(fn) -> fn's results: run fn(ctx) in a scope, in a task of its
-- own, and wait for that task. Stages are its children, so this returns
-- only once every stage has stopped (a stuck one would be a deadlock).
local function pipeline(fn)
  local t = weft.go(function() return weft.scope(fn) end)
  local r = { t:join() }
  assert(stages() == 0, "a stage is left running")
  return unpack(r)
end

-- drain(ch [, ctx]) -> every value received until ch ends
local function drain(ch, ctx)
  local got = {}
  for v in ch:iter(ctx) do got[#got + 1] = v end
  return got
end

-- feed(values, dt) -> a channel that receives values, one every dt
-- seconds, and is then closed (stops when the running task's context is).
local function feed(values, dt)
  local ch = weft.chan()
  weft.go(function()
    for _, v in ipairs(values) do
      if not weft.sleep(dt) or not ch:send(v) then break end
    end
    ch:close()
  end)
  return ch
end

describe("weft.pipe.generator", function()
  it("emits its values in order, then closes; nil is skipped, false is not",
    vtask(function()
      local t = {}
      pipeline(function(ctx)
        local ch = p.generator(ctx, 1, "two", false, nil, t)
        assert.same({ 1, "two", false, t }, drain(ch))
        local v, err = ch:recv()
        assert.is_nil(v)
        assert.equal("closed", err.kind)
        assert.same({}, drain(p.generator(ctx)))
      end)
    end))

  it("stops and closes when ctx is cancelled", vtask(function()
    pipeline(function()
      local ctx, cancel = weft.with_cancel()
      local ch = p.generator(ctx, 1, 2, 3)
      assert.equal(1, ch:recv())
      cancel()
      local v, err = ch:recv()
      assert.is_nil(v)
      assert.equal("closed", err.kind)
      assert.equal(0, stages())
    end)
  end))
end)

describe("weft.pipe.take", function()
  it("passes the first n values, then closes, taking no more from its input",
    vtask(function()
      pipeline(function(ctx)
        local src = p.generator(ctx, 1, 2, 3, 4, 5, 6)
        assert.same({ 1, 2, 3 }, drain(p.take(ctx, src, 3)))
        assert.equal(4, src:recv()) -- still there for someone else
      end)
    end))

  it("ends early when its input closes; take 0 closes at once",
    vtask(function()
      pipeline(function(ctx)
        assert.same({ 1, 2 }, drain(p.take(ctx, p.generator(ctx, 1, 2), 10)))
        local src = p.generator(ctx, 1)
        assert.same({}, drain(p.take(ctx, src, 0)))
        assert.equal(1, src:recv())
      end)
    end))

  it("stops and closes when ctx is cancelled while it waits", vtask(function()
    pipeline(function(ctx)
      local c, cancel = weft.with_cancel(ctx)
      local out = p.take(c, weft.chan(), 5) -- an input that never sends
      weft.go(function() weft.sleep(2); cancel() end)
      assert.same({}, drain(out))
      assert.equal(2, weft.now())
    end)
  end))
end)

describe("weft.pipe.or_done", function()
  it("passes every value until its input closes", vtask(function()
    pipeline(function(ctx)
      local out = p.or_done(ctx, feed({ "a", false, "c" }, 1))
      assert.same({ "a", false, "c" }, drain(out))
      assert.equal(3, weft.now())
    end)
  end))

  it("stops and closes when ctx is cancelled, though its input never closes",
    vtask(function()
      pipeline(function(ctx)
        local c, cancel = weft.with_cancel(ctx)
        local src = weft.chan()
        local out = p.or_done(c, src)
        weft.go(function()
          src:send(1)
          weft.sleep(5)
          cancel()
        end)
        local got = {}
        for v in out:iter() do got[#got + 1] = v end -- a plain loop
        assert.same({ 1 }, got)
        assert.equal(5, weft.now())
        assert.is_false(src:closed())
      end)
    end))
end)

describe("weft.pipe.tee", function()
  it("gives every value to both outputs, in order, whatever their pace",
    vtask(function()
      pipeline(function(ctx)
        local a, b = p.tee(ctx, p.generator(ctx, 1, 2, false, 4, 5))
        local slow = weft.go(function()
          local got = {}
          for v in b:iter() do
            weft.sleep(1)
            got[#got + 1] = v
          end
          return got
        end)
        assert.same({ 1, 2, false, 4, 5 }, drain(a))
        assert.same({ 1, 2, false, 4, 5 }, slow:join())
        -- tee waits for the slower reader: a value goes to both first.
        assert.equal(5, weft.now())
      end)
    end))

  it("stops and closes both outputs when ctx is cancelled", vtask(function()
    pipeline(function(ctx)
      local c, cancel = weft.with_cancel(ctx)
      local a, b = p.tee(c, p.generator(c, 1, 2, 3))
      assert.equal(1, a:recv())
      -- b never reads: tee waits to give it 1, until the cancel.
      weft.go(function() weft.sleep(1); cancel() end)
      assert.is_nil(a:recv())
      assert.equal(1, weft.now())
      assert.same({}, drain(b, weft.background()))
      assert.is_true(a:closed() and b:closed())
    end)
  end))
end)

describe("weft.pipe.bridge", function()
  it("flattens a channel of channels, in order", vtask(function()
    pipeline(function(ctx)
      local chs = p.generator(ctx, p.generator(ctx, 1, 2),
        p.generator(ctx), feed({ 3, 4 }, 1), p.generator(ctx, 5))
      assert.same({ 1, 2, 3, 4, 5 }, drain(p.bridge(ctx, chs)))
      assert.equal(2, weft.now())
    end)
  end))

  it("stops and closes when ctx is cancelled in the middle of an inner " ..
    "channel", vtask(function()
      pipeline(function(ctx)
        local c, cancel = weft.with_cancel(ctx)
        local inner = weft.chan()
        local chs = weft.chan()
        local out = p.bridge(c, chs)
        weft.go(function()
          chs:send(inner)
          inner:send("x")
          weft.sleep(3)
          cancel()
        end)
        assert.same({ "x" }, drain(out))
        assert.equal(3, weft.now())
      end)
    end))
end)

describe("weft.pipe.merge", function()
  it("fans in every value, keeping each input's order, and closes when " ..
    "all inputs have closed", vtask(function()
      pipeline(function(ctx)
        local late = weft.chan()
        weft.go(function()
          weft.sleep(10)
          late:send("late")
          late:close()
        end)
        local out = p.merge(ctx, feed({ "a1", "a2", "a3" }, 1),
          feed({ "b1", "b2" }, 1.4), late, p.generator(ctx))
        local got, at = {}, {}
        for v in out:iter() do
          got[#got + 1] = v
          at[v] = weft.now()
        end
        assert.same({ "a1", "b1", "a2", "b2", "a3", "late" }, got)
        assert.same({ a1 = 1, a2 = 2, a3 = 3, b1 = 1.4, b2 = 2.8, late = 10 },
          at)
        -- Closed only after the last input, at 10.
        assert.equal(10, weft.now())
      end)
    end))

  it("of no channels closes at once", vtask(function()
    pipeline(function(ctx)
      assert.same({}, drain(p.merge(ctx)))
    end)
  end))

  it("stops and closes when ctx is cancelled", vtask(function()
    pipeline(function(ctx)
      local c, cancel = weft.with_cancel(ctx)
      local out = p.merge(c, weft.chan(), feed({ 1, 2, 3 }, 1), weft.chan())
      weft.go(function() weft.sleep(2.5); cancel() end)
      assert.same({ 1, 2 }, drain(out))
      assert.equal(2.5, weft.now())
    end)
  end))

  it("closes only when all its inputs have, even when the task that built " ..
    "it is cancelled (its waits are under ctx)", vtask(function()
      -- Every wait here is under ctx, which the builder's cancellation
      -- does not reach (an explicit context is a shield), so the pipeline
      -- must go on to the end.
      local got = {}
      local builder = weft.go(function()
        local ctx, cancel = weft.with_cancel(weft.background())
        local src = weft.chan()
        local out = p.merge(ctx, src)
        weft.go(function()
          for i = 1, 3 do
            weft.sleep(1, ctx)
            src:send(i, ctx)
          end
          src:close()
        end)
        for v in out:iter(ctx) do got[#got + 1] = v end
        got[#got + 1] = weft.now()
        cancel()
      end)
      weft.sleep(0.5)
      builder:cancel("stop")
      assert.is_true(builder:join())
      assert.same({ 1, 2, 3, 3 }, got)
    end))
end)

describe("weft.pipe.first_done", function()
  it("closes as soon as any input closes", vtask(function()
    pipeline(function(ctx)
      local a, b = weft.chan(), weft.chan()
      weft.go(function() weft.sleep(2); b:close() end)
      weft.go(function() weft.sleep(5); a:close() end)
      local done = p.first_done(ctx, a, b)
      local _, err = done:recv()
      assert.equal("closed", err.kind)
      assert.equal(2, weft.now())
      assert.is_false(a:closed())
      -- An input closed already: at once.
      assert.is_nil(p.first_done(ctx, b, a):recv())
      assert.equal(2, weft.now())
    end)
  end))

  it("closes when an input yields a value (the or-channel takes it)",
    vtask(function()
      pipeline(function(ctx)
        local a = weft.chan(1)
        a:send("v")
        assert.is_nil(p.first_done(ctx, weft.chan(), a):recv())
        assert.equal(0, #a)
      end)
    end))

  it("closes when ctx is cancelled, with no input at all or none closing",
    vtask(function()
      pipeline(function(ctx)
        local c, cancel = weft.with_cancel(ctx)
        local d1 = p.first_done(c)
        local d2 = p.first_done(c, weft.chan(), weft.chan())
        weft.go(function() weft.sleep(3); cancel() end)
        assert.is_nil(d1:recv())
        assert.is_nil(d2:recv())
        assert.equal(3, weft.now())
      end)
    end))
end)

describe("weft.pipe pipelines", function()
  it("stages are children of the caller; the end of the scope stops them " ..
    "all", vtask(function()
      local got = pipeline(function(ctx)
        local me = weft.current():id()
        -- The guide's example: 4 values of 5, the generators never drain.
        local out = p.take(ctx, p.merge(ctx, p.generator(ctx, 1, 2, 3),
          p.generator(ctx, 4, 5)), 4)
        local children = 0
        for _, t in ipairs(weft.tasks()) do
          if t.parent == me then children = children + 1 end
        end
        assert(children == 4, children .. " children") -- merge's are its own
        local got = drain(out)
        assert(stages() > 0, "generators blocked on their sends")
        return got
      end)
      assert.equal(4, #got)
      table.sort(got)
      for i = 2, 4 do assert.is_true(got[i] > got[i - 1]) end
      assert.equal(0, weft.now())
    end))

  it("false travels through every stage", vtask(function()
    pipeline(function(ctx)
      local a, b = p.tee(ctx, p.or_done(ctx, p.take(ctx,
        p.bridge(ctx, p.generator(ctx, p.generator(ctx, false, 1, false))),
        3)))
      local other = weft.go(function() return drain(b) end)
      assert.same({ false, 1, false }, drain(p.merge(ctx, a)))
      assert.same({ false, 1, false }, other:join())
    end)
  end))

  it("cancelling a long pipeline mid-stream stops every stage",
    vtask(function()
      local got = pipeline(function(ctx)
        local c, cancel = weft.with_cancel(ctx)
        local vals = {}
        for i = 1, 100 do vals[i] = i end
        local a, b = p.tee(c, p.or_done(c, p.merge(c,
          p.generator(c, unpack(vals, 1, 50)),
          p.generator(c, unpack(vals, 51, 100)))))
        local out = p.take(c, p.merge(c, a, b), 200)
        local got = {}
        for v in out:iter() do
          got[#got + 1] = v
          if #got == 20 then cancel() end
          weft.sleep(0.1)
        end
        return got
      end)
      assert.is_true(#got >= 20 and #got < 200)
    end))

  it("rejects bad arguments", vtask(function()
    pipeline(function(ctx)
      local ch = weft.chan()
      assert.has_error(function() p.generator(1, 2) end,
        "bad argument #1 to 'generator' (weft.ctx expected, got number)")
      assert.has_error(function() p.take(ctx, nil, 1) end,
        "bad argument #2 to 'take' (weft.chan expected, got nil)")
      assert.has_error(function() p.take(ctx, ch, "3") end,
        "bad argument #3 to 'take' (number expected, got string)")
      assert.has_error(function() p.take(nil, ch, 3) end,
        "bad argument #1 to 'take' (weft.ctx expected, got nil)")
      assert.has_error(function() p.or_done(ctx, {}) end,
        "bad argument #2 to 'or_done' (weft.chan expected, got table)")
      assert.has_error(function() p.tee(ch, ch) end,
        "bad argument #1 to 'tee' (weft.ctx expected, got userdata)")
      assert.has_error(function() p.bridge(ctx, 5) end,
        "bad argument #2 to 'bridge' (weft.chan expected, got number)")
      assert.has_error(function() p.merge(ctx, ch, nil) end,
        "bad argument #3 to 'merge' (weft.chan expected, got nil)")
      assert.has_error(function() p.first_done(ctx, ch, ch, "x") end,
        "bad argument #4 to 'first_done' (weft.chan expected, got string)")
      -- Nothing was started by the rejected calls.
      assert.equal(0, stages())
    end)
  end))

  it("stress: 300 pipelines (about 4,000 stage tasks) cancelled at random: " ..
    "every value through exactly once and in order, all of them when not " ..
    "cancelled, no stage left", vtask(function()
      math.randomseed(2026)
      local NPIPE, NSRC, PER = 300, 4, 10
      local TOTAL = NSRC * PER
      local res, owners = {}, {}
      for k = 1, NPIPE do
        local st = { a = {}, b = {}, bridged = k % 2 == 1 }
        res[k] = st
        owners[k] = weft.go(function()
          weft.scope(function(ctx)
            local gens = {}
            for s = 1, NSRC do
              local vals = {}
              for j = 1, PER do vals[j] = k * 1000 + s * 100 + j end
              gens[s] = p.generator(ctx, unpack(vals))
            end
            local src
            if st.bridged then
              src = p.bridge(ctx, p.generator(ctx, unpack(gens)))
            else
              src = p.merge(ctx, unpack(gens))
            end
            local a, b = p.tee(ctx, src)
            -- Only the scope's end closes this one.
            local never = p.first_done(ctx, weft.chan())
            local other = weft.go(function()
              for v in p.take(ctx, b, TOTAL):iter() do
                st.b[#st.b + 1] = v
                if math.random(3) == 1 then weft.sleep(0.01) end
              end
            end)
            for v in p.or_done(ctx, a):iter() do
              st.a[#st.a + 1] = v
              if math.random(3) == 1 then weft.sleep(math.random(3) * 0.01) end
            end
            other:join()
            st.cancelled = ctx:err()
            st.never_closed = not never:closed()
          end)
        end)
      end
      local chaos = weft.go(function()
        for _ = 1, 120 do
          weft.sleep(math.random(3) * 0.005)
          owners[math.random(NPIPE)]:cancel("chaos")
        end
      end)
      for k = 1, NPIPE do owners[k]:join() end
      chaos:join()
      assert.equal(0, stages())
      -- No stage stopped late, waiting on some timer after its scope ended.
      assert.is_true(weft.now() < 10)

      -- check(k, list): values of pipeline k, once each, each source's in
      -- order and none skipped; in bridge order when bridged.
      local function check(k, st, list)
        local what = "pipeline " .. k
        local next_j = {}
        for s = 1, NSRC do next_j[s] = 1 end
        for _, v in ipairs(list) do
          local s, j = math.floor(v / 100) % 10, v % 100
          assert(math.floor(v / 1000) == k, what .. ": foreign value " .. v)
          assert(j == next_j[s], what .. ": " .. v .. " out of order, " ..
            "duplicated or after a gap")
          next_j[s] = j + 1
          if st.bridged then
            -- Every input before this one is done with.
            for before = 1, s - 1 do
              assert(next_j[before] == PER + 1,
                what .. ": bridge mixed its inputs or skipped one")
            end
          end
        end
      end

      local complete, cut = 0, 0
      for k, st in ipairs(res) do
        check(k, st, st.a)
        check(k, st, st.b)
        -- tee gives each value to both: one output is a prefix of the other.
        local short, long = st.a, st.b
        if #short > #long then short, long = long, short end
        for i = 1, #short do
          assert(short[i] == long[i], "pipeline " .. k .. ": tee diverged")
        end
        if st.cancelled == nil and st.never_closed ~= nil then
          complete = complete + 1
          assert(#st.a == TOTAL and #st.b == TOTAL,
            "pipeline " .. k .. " lost values")
          assert(st.never_closed, "first_done closed with no cause")
        else
          cut = cut + 1
        end
      end
      assert.is_true(complete > 0 and cut > 0)
    end))
end)
