-- weft.vclock: virtual clocks, for virtual time.
--
-- A virtual clock belongs to a *bubble*: a task and everything it starts
-- (as in Go's testing/synctest). Its time starts at 0 and moves only when
-- weft.sched says every task is blocked: then it jumps to the clock's next
-- timer. This module is the clock itself: its time, its timer heap and a
-- random number generator of its own (so that select's choices repeat from
-- run to run). It knows nothing of tasks; the scheduler decides when to move
-- it.
--
-- Timers are keys (positive integers, reused) into arrays shared by all
-- clocks; weft.sched hands them out as negative timer ids, so they never
-- collide with the C heap's.

local bit = require "bit"
local bxor, lshift, rshift, band, tobit = bit.bxor, bit.lshift, bit.rshift,
  bit.band, bit.tobit

local M = {}

local when, seq, pos, owner = {}, {}, {}, {}
local free, nfree, nkeys, nseq = {}, 0, 0, 0

-- new() -> clock
function M.new()
  return { now = 0, heap = {}, n = 0, rng = tobit(0x9e3779b9),
    stopped = false }
end

local function earlier(a, b)
  local wa, wb = when[a], when[b]
  return wa < wb or (wa == wb and seq[a] < seq[b])
end

local function place(h, i, k)
  h[i] = k
  pos[k] = i
end

local function up(c, i)
  local h = c.heap
  local k = h[i]
  while i > 1 do
    local p = (i - i % 2) / 2
    if not earlier(k, h[p]) then break end
    place(h, i, h[p])
    i = p
  end
  place(h, i, k)
end

local function down(c, i)
  local h, n = c.heap, c.n
  local k = h[i]
  while true do
    local j = 2 * i
    if j > n then break end
    if j < n and earlier(h[j + 1], h[j]) then j = j + 1 end
    if not earlier(h[j], k) then break end
    place(h, i, h[j])
    i = j
  end
  place(h, i, k)
end

-- add(c, deadline) -> key of a new timer on clock c.
function M.add(c, deadline)
  local k
  if nfree > 0 then
    k = free[nfree]
    free[nfree] = nil
    nfree = nfree - 1
  else
    nkeys = nkeys + 1
    k = nkeys
  end
  nseq = nseq + 1
  when[k], seq[k], owner[k] = deadline, nseq, c
  local n = c.n + 1
  c.n = n
  c.heap[n] = k
  up(c, n)
  return k
end

local function release(k)
  when[k], seq[k], owner[k], pos[k] = nil, nil, nil, nil
  nfree = nfree + 1
  free[nfree] = k
end

-- del(k): stop timer k; a no-op for a key that is not armed.
function M.del(k)
  local c = owner[k]
  if not c then return end
  local h, i, n = c.heap, pos[k], c.n
  local last = h[n]
  h[n] = nil
  c.n = n - 1
  if i < n then
    place(h, i, last)
    if i > 1 and earlier(last, h[(i - i % 2) / 2]) then
      up(c, i)
    else
      down(c, i)
    end
  end
  release(k)
end

-- next(c) -> the earliest deadline on c, or nil.
function M.next(c)
  local k = c.heap[1]
  return k and when[k]
end

-- pop(c) -> the key of the earliest timer on c if it is due at c.now
-- (removed), else nil.
function M.pop(c)
  local k = c.heap[1]
  if not k or when[k] > c.now then return nil end
  M.del(k)
  return k
end

-- timers(c) -> c's timer keys (an array, in heap order) and their count.
function M.timers(c)
  return c.heap, c.n
end

-- deadline(k) -> the deadline of timer k, or nil when it is not armed.
function M.deadline(k)
  return when[k]
end

-- clear(c): stop every timer of c; returns their keys.
function M.clear(c)
  local keys = {}
  for i = 1, c.n do
    keys[i] = c.heap[i]
  end
  for i = 1, #keys do M.del(keys[i]) end
  return keys
end

-- random(c, n) -> an integer in [1, n] from c's own generator (xorshift32).
function M.random(c, n)
  local x = c.rng
  x = bxor(x, lshift(x, 13))
  x = bxor(x, rshift(x, 17))
  x = bxor(x, lshift(x, 5))
  c.rng = x
  return band(x, 0x7fffffff) % n + 1
end

return M
