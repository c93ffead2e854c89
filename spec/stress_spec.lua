-- Many tasks, random cancellation, channels closed while others wait.
local weft = require "weft"
local H = require "spec.helper"
local task = H.task

-- exactly_once(sent, got): every value sent (sent[v] true) was received
-- once (got[v] counts), and nothing else was.
local function exactly_once(sent, got)
  for v in pairs(sent) do
    assert(got[v] == 1, "value " .. v .. " received " .. (got[v] or 0) ..
      " times")
  end
  for v in pairs(got) do
    assert(sent[v], "value " .. v .. " received but never sent")
  end
end

describe("stress", function()
  it("10,000 tasks exchange values while contexts are cancelled at random: " ..
    "every value whose send succeeded is received exactly once",
    task(function()
      math.randomseed(20261123)
      local NPROD, NCONS, PER = 5000, 5000, 20
      local caps = { 0, 0, 1, 8, 64 }
      local chans = {}
      for i = 1, 10 do chans[i] = weft.chan(caps[(i - 1) % #caps + 1]) end

      local sent, got = {}, {}
      local nsent, nrecv, nfailed = 0, 0, 0
      local cancels = {}

      local producers = {}
      for p = 1, NPROD do
        local ctx, cancel = weft.with_cancel()
        cancels[#cancels + 1] = cancel
        producers[p] = weft.go(function()
          for j = 1, PER do
            local v = p * 1000 + j
            local ch = chans[math.random(#chans)]
            local ok, err = ch:send(v, ctx)
            if ok then
              sent[v] = true
              nsent = nsent + 1
            else
              assert(err.kind == "canceled", tostring(err))
              nfailed = nfailed + 1
              return
            end
            if math.random(4) == 1 then weft.yield() end
          end
        end)
      end

      local function take(v)
        got[v] = (got[v] or 0) + 1
        nrecv = nrecv + 1
      end

      local consumers = {}
      for c = 1, NCONS do
        local ctx, cancel = weft.with_cancel()
        cancels[#cancels + 1] = cancel
        consumers[c] = weft.go(function()
          local a = chans[math.random(#chans)]
          local b = chans[math.random(#chans)]
          while true do
            if c % 2 == 0 then
              local v, err = a:recv(ctx)
              if v == nil then return err.kind end
              take(v)
            else
              local i, v, err = weft.select({ { recv = a }, { recv = b } }, ctx)
              if i == nil then return v.kind end
              if v == nil then return err.kind end
              take(v)
            end
          end
        end)
      end

      -- Chaos: cancel a random half of all contexts, at random moments.
      local chaos = weft.go(function()
        for _ = 1, #cancels / 2 do
          cancels[math.random(#cancels)]("chaos")
          if math.random(8) == 1 then weft.sleep(0) else weft.yield() end
        end
      end)

      for p = 1, NPROD do producers[p]:join() end
      chaos:join()
      -- Close every channel while consumers still wait on them; those not
      -- cancelled drain the buffers and stop on "closed".
      for i = 1, #chans do chans[i]:close() end
      for c = 1, NCONS do
        local why = consumers[c]:join()
        assert.is_true(why == "closed" or why == "canceled", tostring(why))
      end
      -- What cancelled consumers left in the buffers is still there.
      for i = 1, #chans do
        for v in chans[i]:iter(weft.background()) do take(v) end
      end

      assert.is_true(nsent > 0 and nfailed > 0)
      assert.equal(nsent, nrecv)
      exactly_once(sent, got)
    end))

  it("selects that send and receive on 1 to 6 cases, cancelled at random: " ..
    "every value sent is received exactly once", task(function()
      math.randomseed(20261201)
      local caps = { 0, 0, 1, 4 }
      local chans = {}
      for i = 1, 8 do chans[i] = weft.chan(caps[(i - 1) % #caps + 1]) end
      local sent, got, nsent, nrecv = {}, {}, 0, 0
      -- cases(dir, v) -> 1 to 6 cases on random channels, the first
      -- always enabled, some others disabled (false).
      local function cases(dir, v)
        local cs = {}
        for k = 1, math.random(6) do
          local ch = chans[math.random(#chans)]
          if k > 1 and math.random(5) == 1 then ch = false end
          cs[k] = dir == "send" and { send = ch, value = v } or { recv = ch }
        end
        return cs
      end
      local tasks, cancels = {}, {}
      for p = 1, 400 do
        local ctx, cancel = weft.with_cancel()
        cancels[#cancels + 1] = cancel
        tasks[#tasks + 1] = weft.go(function()
          for j = 1, 25 do
            local v = p * 100 + j
            local i, err = weft.select(cases("send", v), ctx)
            if i == nil then
              assert(err.kind == "canceled", tostring(err))
              return
            end
            sent[v] = true
            nsent = nsent + 1
          end
        end)
      end
      local takers = {}
      for _ = 1, 400 do
        local ctx, cancel = weft.with_cancel()
        cancels[#cancels + 1] = cancel
        takers[#takers + 1] = weft.go(function()
          while true do
            local i, v, err = weft.select(cases("recv"), ctx)
            if i == nil then return v.kind end
            if v == nil then return err.kind end
            got[v] = (got[v] or 0) + 1
            nrecv = nrecv + 1
          end
        end)
      end
      local chaos = weft.go(function()
        for _ = 1, #cancels / 2 do
          cancels[math.random(#cancels)]()
          weft.yield()
        end
      end)
      for i = 1, #tasks do tasks[i]:join() end
      chaos:join()
      for i = 1, #chans do chans[i]:close() end
      for i = 1, #takers do
        local why = takers[i]:join()
        assert.is_true(why == "closed" or why == "canceled", tostring(why))
      end
      for i = 1, #chans do
        for v in chans[i]:iter(weft.background()) do
          got[v] = (got[v] or 0) + 1
          nrecv = nrecv + 1
        end
      end
      assert.is_true(nsent > 1000, "sent " .. nsent)
      assert.equal(nsent, nrecv)
      exactly_once(sent, got)
    end))

  it("cancelling thousands of sleepers wakes each exactly once",
    task(function()
      local ctx, cancel = weft.with_cancel()
      local woke = 0
      local ts = {}
      for i = 1, 5000 do
        ts[i] = weft.go(function()
          local ok, err = weft.sleep(100 + i, ctx)
          if not ok and err.kind == "canceled" then woke = woke + 1 end
        end)
      end
      weft.yield()
      cancel()
      for i = 1, #ts do ts[i]:join() end
      assert.equal(5000, woke)
    end))

  it("selects over many channels and timers with random cancellation " ..
    "leave no waiter behind", task(function()
      math.randomseed(7)
      local chans = {}
      for i = 1, 50 do chans[i] = weft.chan() end
      local done = 0
      local ts = {}
      for i = 1, 2000 do
        ts[i] = weft.go(function()
          local ctx, cancel = weft.with_cancel()
          if math.random(2) == 1 then cancel() end
          local cases = {}
          for k = 1, 5 do cases[k] = { recv = chans[math.random(#chans)] } end
          cases[6] = { recv = weft.after(0.001 * math.random(5)) }
          weft.select(cases, ctx)
          cancel()
          done = done + 1
        end)
      end
      for i = 1, #ts do ts[i]:join() end
      assert.equal(2000, done)
      -- Every channel's queue is empty of live waiters: a send blocks.
      for i = 1, #chans do
        local ok = weft.select { { send = chans[i], value = 1 },
          { default = true } }
        assert.equal(2, ok)
      end
    end))
end)
