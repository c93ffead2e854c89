-- luajit bench/bytecode/patterns.lua: the table constructors of weft's hot
-- paths, each alone, shaped as in its module (the values are stand-ins), in
-- a stock LuaJIT: "name ns_per_table". bench/bytecode/patterns.sh runs it
-- from source, from `luajit -bg` bytecode and from scripts/bcsave.lua's.
-- A constructor whose template has keys with variable values costs the
-- same from source and from scripts/bcsave.lua's bytecode, and from
-- `luajit -bg` bytecode one NEWREF per such key and the rehashes
-- (docs/internals.md, "Template tables").
local clock = os.clock
local band = bit.band
local setmetatable, select = setmetatable, select

local MT = { __index = {} }
local P = {} -- name -> make(i, x) -> table
local order = {}
local function pattern(name, make)
  P[name] = make
  order[#order + 1] = name
end

local function f(x) return x end

pattern("rate reserve", function(i, x)
  local ok = i > 0
  return setmetatable({ ok = ok, l = x, tokens = ok and 1 or 0, act = i,
    limit = 1e9 + i }, MT)
end)
pattern("rate limiter", function(i)
  return setmetatable({ lim = i, bur = i, toks = i, last = 0,
    last_event = 0 }, MT)
end)
pattern("ctx with_value", function(i, x)
  return setmetatable({ parent = x, node = x, dl = i, key = "k", val = i },
    MT)
end)
pattern("errors make", function(i, x)
  return setmetatable({ kind = "io", message = "m", cause = x,
    id = "t-" .. band(i, 7), _t = f(i), _task = f(x) }, MT)
end)
pattern("sched node_new", function(i, x) -- + c.node = c, as sched.lua
  local c = setmetatable({ parent = x, dl = i, blocked = {},
    cerr = false }, MT)
  c.node = c
  return c
end)
pattern("sched pack", function(i, x)
  return (function(...) return { n = select("#", ...), ... } end)(i, x)
end)
pattern("group group", function(i, x)
  return setmetatable({ parent = x, ctx = x, cancel = f, ended = false,
    sem = i > 0 and x or nil, live = x }, MT)
end)
pattern("io op", function(i, x)
  return setmetatable({ id = i, req = x, cancel = f, what = "read" }, MT)
end)
pattern("work job", function(i, x)
  return setmetatable({ job = i, name = x }, MT)
end)
pattern("pipe tee case", function(_, x)
  return { send = x, value = x }
end)
pattern("steward case", function(_, x)
  return { recv = x }
end)
pattern("sync mutex", function(i, x) -- + m.q = ..., as sync.lua
  local m = setmetatable({ locked = false, id = i }, MT)
  m.q = x
  return m
end)
pattern("heartbeat", function(i, x)
  return setmetatable({ interval = i, ch = x }, MT)
end)
pattern("net conn", function(_, x)
  return setmetatable({ h = x }, MT)
end)
pattern("fs file", function(i, x)
  return setmetatable({ h = x, pos = 0, path = "p", append = i < 0 }, MT)
end)

local N = 2e6
local keep = {} -- luacheck: ignore 241 (the tables escape, as in weft)
for _, name in ipairs(order) do
  local make, x = P[name], {}
  for i = 1, N / 10 do keep[band(i, 63) + 1] = make(i, x) end
  local best = math.huge
  for _ = 1, 5 do
    local t0 = clock()
    for i = 1, N do keep[band(i, 63) + 1] = make(i, x) end
    local dt = (clock() - t0) / N * 1e9
    if dt < best then best = dt end
  end
  io.write(string.format("%s\t%.1f\n", name, best))
end
