-- luajit scripts/bcsave.lua ARGS: `luajit -b ARGS` (the build runs it with
-- -g -n NAME IN OUT.h), except that the bytecode keeps every key of the
-- template tables of table constructors.
--
-- For `{ ok = true, l = self }` the parser puts `l` in the constructor's
-- template table with a nil value, and a store of `self` after the TDUP,
-- so that every table made from it has a slot for `l` from the start: the
-- store finds its key, and a trace makes it an HREFK. LuaJIT's bytecode
-- writer (lj_bcwrite.c, bcwrite_ktab) writes only the keys that have a
-- value, and the array part only up to its last value, so loaded from
-- bytecode the same constructor inserts `l` into a table too small for it:
-- a NEWREF in a trace, and a rehash, ~85 ns a table where the source costs
-- ~1 (docs/internals.md, "The Lua side in the binary").
--
-- This rewrites each template of string.dump's output from the template the
-- parser built, found in the loaded source: a key present with a nil value
-- is still a valid key for `next`, so the keys the writer dropped are the
-- string constants of the prototype for which `next` does not fail. They
-- are written back, and the array part gets its nil tail back; everything
-- else is copied byte for byte. The result is loaded and compared with the
-- source before it is written: any surprise in the format fails the build.

local ju = require "jit.util"
local vmdef = require "jit.vmdef"
local bit = require "bit"
local funcinfo, funcbc, funck = ju.funcinfo, ju.funcbc, ju.funck
local band, rshift = bit.band, bit.rshift
local byte, char, sub, concat = string.byte, string.char, string.sub,
  table.concat

local function fail(msg)
  error("scripts/bcsave.lua: " .. msg, 0)
end

-- The prototypes of f in the order the writer dumps them: the children
-- (constants -1, -2, ...) before their parent.
local function protos(p, list)
  list = list or {}
  for i = 1, funcinfo(p).gcconsts do
    local k = funck(p, -i)
    if type(k) == "proto" then protos(k, list) end
  end
  list[#list + 1] = p
  return list
end

-- The keys of template t (of prototype p) present with a nil value, sorted
-- (the same bytes from one build to the next).
local function nil_keys(p, t)
  local keys = {}
  for i = 1, funcinfo(p).gcconsts do
    local s = funck(p, -i)
    if type(s) == "string" and rawget(t, s) == nil and pcall(next, t, s) then
      keys[#keys + 1] = s
    end
  end
  table.sort(keys)
  return keys
end

-- The size of t's array part, knowing it has no value from `from` on.
local function asize(t, from)
  local n = from
  while rawget(t, n) == nil and pcall(next, t, n) do n = n + 1 end
  return n
end

-- The bytecode's operand modes (lj_bc.h) and the opcodes used below.
local DST, BASE, VAR, RBASE, JUMP = 1, 2, 3, 4, 13
local OP = {}
for i = 0, #vmdef.bcnames / 6 - 1 do
  OP[vmdef.bcnames:sub(6 * i + 1, 6 * i + 6):match("%S+")] = i
end
local LEAVES = { [OP.RET] = true, [OP.RET0] = true, [OP.RET1] = true,
  [OP.RETM] = true, [OP.CALLT] = true, [OP.CALLMT] = true }

-- stored(p, k) -> the set of keys that the code after the constructor's
-- TDUP of constant k stores into the new table, whatever the way taken,
-- before anything else can see it: the parser's placeholders, stored right
-- after the TDUP. The walk is conservative: a store counts only if no
-- forward jump met before it lands past it (`a = x and y` jumps to its
-- store, `if c then r.a = v end` over it), and the walk stops at a
-- backward jump or any other control flow, any way out of the function,
-- and any instruction that reads or overwrites the table's register.
local function stored(p, k)
  local keys = {}
  local n = funcinfo(p).bytecodes
  local pc, r = 1, nil
  while pc < n do -- the TDUP
    local ins = funcbc(p, pc)
    if band(ins, 0xff) == OP.TDUP and rshift(ins, 16) == k then
      r = band(rshift(ins, 8), 0xff)
      break
    end
    pc = pc + 1
  end
  if not r then return keys end
  local reach = 0 -- the furthest target of the forward jumps so far
  for i = pc + 1, n - 1 do
    local ins, m = funcbc(p, i)
    local op = band(ins, 0xff)
    local a, b = band(rshift(ins, 8), 0xff), rshift(ins, 24)
    local c, d = band(rshift(ins, 16), 0xff), rshift(ins, 16)
    local ma, mb = band(m, 7), band(rshift(m, 3), 15)
    local mc = band(rshift(m, 7), 15)
    if op == OP.TSETS and b == r and a ~= r then
      if i >= reach then keys[funck(p, -c - 1)] = true end
    elseif (op == OP.TSETB or op == OP.TSETV) and b == r and a ~= r and
      (op == OP.TSETB or c ~= r) then -- luacheck: ignore 542
      -- an array or variable key: the table is still unseen
    elseif op == OP.TSETM and a - 1 == r then -- luacheck: ignore 542
      -- the multiple values of a call or `...`, last in a constructor
    else
      if op == OP.JMP then
        local to = i + d - 0x7fff
        if to <= i then break end
        if to > reach then reach = to end
      elseif mc == JUMP or LEAVES[op] then
        break
      end
      if (ma == DST or ma == VAR) and a == r then break end
      if (ma == BASE or ma == RBASE) and a <= r then break end
      if mb ~= 0 then -- A B C
        if (mb == VAR and b == r) or (mc == VAR and c == r) then break end
        if mb == RBASE and b <= r and r <= c then break end -- CAT
      else -- A D
        if (mc == VAR or mc == DST) and d == r then break end
        if mc == BASE and a <= r and r <= d then break end -- KNIL
      end
    end
  end
  return keys
end

local function uleb(n)
  local b = {}
  repeat
    local x = n % 128
    n = (n - x) / 128
    b[#b + 1] = n > 0 and x + 128 or x
  until n == 0
  return char(unpack(b))
end

local function kstr(s) return uleb(5 + #s) .. s end

-- The constant (type 1) for template t, the k-th GC constant of prototype
-- p, whose entries as string.dump wrote them are `arr` (narray of them) and
-- `hash` (nhash), with its nil keys and the nil tail of its array part.
--
-- The reader inserts each key (lj_tab_set) and then reads its value, and
-- an insert whose main position holds a nil value takes that node: a key
-- inserted with a nil value survives only if no insert follows. So:
-- * A key that the constructor stores before anything can see the table
--   (the usual placeholder) is written with the value false: the store
--   overwrites it, so it is never seen, and the hash part has the size the
--   parser gave it.
-- * Any other (`{ cur = nil }`, or a placeholder after a jump) is written
--   with true, and again with nil after the last insert, when lj_tab_set
--   finds it; the last of them is written nil at once. Each but the last
--   takes one more entry in the size of the hash part.
local function ktab(p, k, t, narray, nhash, arr, hash)
  local na, keys, st = asize(t, narray), nil_keys(p, t), stored(p, k)
  local h, late = { "", arr, ("\0"):rep(na - narray), hash }, {}
  for _, key in ipairs(keys) do
    if st[key] then h[#h + 1] = kstr(key) .. "\1" -- false
    else late[#late + 1] = key end
  end
  for j, key in ipairs(late) do
    h[#h + 1] = kstr(key) .. (j < #late and "\2" or "\0") -- true, nil
  end
  for j = 1, #late - 1 do h[#h + 1] = kstr(late[j]) .. "\0" end
  local entries = nhash + #keys + #late - (#late > 0 and 1 or 0)
  h[1] = "\1" .. uleb(na) .. uleb(entries)
  return concat(h)
end

-- Rewrite dump s of function f.
local function keep_templates(f, s)
  local pos = 1
  local function u8()
    local b = byte(s, pos)
    if not b then fail("truncated bytecode") end
    pos = pos + 1
    return b
  end
  local function uleb128()
    local v, sh = 0, 1
    repeat
      local b = u8()
      v = v + (b % 128) * sh
      sh = sh * 128
    until b < 128
    return v
  end
  local function skip(n)
    pos = pos + n
    if pos > #s + 1 then fail("truncated bytecode") end
  end
  local function ktabk()
    local tp = uleb128()
    if tp >= 5 then skip(tp - 5) -- string
    elseif tp == 3 then uleb128() -- integer
    elseif tp == 4 then uleb128(); uleb128() end -- number: lo, hi
  end

  if u8() ~= 0x1b or u8() ~= 76 or u8() ~= 74 then fail("not bytecode") end
  if u8() ~= 2 then fail("unknown bytecode version") end
  local flags = uleb128()
  if flags % 2 == 1 then fail("big-endian bytecode") end
  local strip = flags % 4 >= 2
  if not strip then skip(uleb128()) end -- chunk name
  local out = { sub(s, 1, pos - 1) }

  local list = protos(f)
  local np = 0
  while true do
    local len = uleb128()
    if len == 0 then break end
    local stop = pos + len
    np = np + 1
    local p = list[np]
    if not p then fail("more prototypes than the source has") end
    local info = funcinfo(p)
    local start = pos
    skip(3)
    local numuv = u8()
    local numkgc, numkn, numbc = uleb128(), uleb128(), uleb128()
    if numkgc ~= info.gcconsts or numkn ~= info.nconsts or
      numbc ~= info.bytecodes - 1 or numuv ~= info.upvalues then
      fail("prototype " .. np .. " does not match the source")
    end
    if not strip and uleb128() > 0 then uleb128(); uleb128() end
    skip(numbc * 4 + numuv * 2)
    local pd = { sub(s, start, pos - 1) }
    for i = 0, numkgc - 1 do
      local k0 = pos
      local tp = uleb128()
      if tp == 1 then -- a table: constant -(numkgc - i), TDUP operand D
        local k = numkgc - 1 - i
        local t = funck(p, -k - 1)
        if type(t) ~= "table" then fail("constant is not a table") end
        local narray, nhash = uleb128(), uleb128()
        local a0 = pos
        for _ = 1, narray do ktabk() end
        local h0 = pos
        for _ = 1, nhash do ktabk(); ktabk() end
        pd[#pd + 1] = ktab(p, k, t, narray, nhash, sub(s, a0, h0 - 1),
          sub(s, h0, pos - 1))
      else
        if tp >= 5 then skip(tp - 5) -- a string
        elseif tp == 2 or tp == 3 then uleb128(); uleb128() -- [u]int64
        elseif tp == 4 then for _ = 1, 4 do uleb128() end -- complex
        elseif tp ~= 0 then fail("unknown constant type " .. tp) end
        pd[#pd + 1] = sub(s, k0, pos - 1)
      end
    end
    if pos > stop then fail("prototype longer than its length") end
    pd[#pd + 1] = sub(s, pos, stop - 1) -- numbers, debug info
    pos = stop
    local body = concat(pd)
    out[#out + 1] = uleb(#body) .. body
  end
  if np ~= #list then fail("fewer prototypes than the source has") end
  if pos ~= #s + 1 then fail("bytes after the last prototype") end
  out[#out + 1] = "\0"
  return concat(out)
end

-- The rewritten bytecode must load, and each of its templates must have the
-- source's values (false where a store overwrites nil), keys and array
-- slots.
local function check(f, bc)
  local g, err = loadstring(bc)
  if not g then fail("rewritten bytecode does not load: " .. err) end
  local a, b = protos(f), protos(g)
  if #a ~= #b then fail("prototype count changed") end
  for i = 1, #a do
    for j = 1, funcinfo(a[i]).gcconsts do
      local t, u = funck(a[i], -j), funck(b[i], -j)
      if type(t) == "table" then
        if type(u) ~= "table" then fail("constant type changed") end
        local st = stored(a[i], j - 1)
        for k, v in pairs(t) do
          local w = rawget(u, k)
          if w ~= v and (v == v or w == w) then fail("template changed") end
        end
        for k, v in pairs(u) do
          if rawget(t, k) == nil and not (v == false and st[k]) then
            fail("template value added")
          end
        end
        for _, k in ipairs(nil_keys(a[i], t)) do
          if not pcall(next, u, k) then fail("template key lost: " .. k) end
        end
        local n = 0 -- array slots (and integer keys) from 0 on
        while pcall(next, t, n) do
          if not pcall(next, u, n) then fail("template array part shrank") end
          n = n + 1
        end
      end
    end
  end
end

local dump = string.dump
string.dump = function(f, strip) -- luacheck: ignore 122
  local bc = keep_templates(f, dump(f, strip))
  check(f, bc)
  return bc
end
require("jit.bcsave").start(...)
