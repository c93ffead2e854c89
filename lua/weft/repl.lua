-- weft.repl: the Lua side of the REPL (runtime/repl.c drives the terminal).
--
-- Each line runs as a top-level task under the REPL's own context, so a
-- blocking call blocks the prompt and nothing else, and what a line starts
-- or derives outlives the line: its scope is not ended when the line's
-- function returns (S.spawn_line), only when the line is cancelled (Ctrl-C
-- while it runs) or the REPL ends.

local weft = require "weft"
local S = require "weft.sched"
local errors = require "weft.errors"

local format, type, tostring, select = string.format, type, tostring, select
local concat, sort = table.concat, table.sort

-- weft loads most of its fields on first use (lua/weft/init.lua); at the
-- prompt, where start-up time does not matter, all of them, so that Tab
-- and pairs(weft) see every one.
getmetatable(weft).load_all(weft)

local M = {}

local session = weft.with_cancel(weft.background())
local line -- the task of the line running, or nil
local vt = false -- run the next lines on virtual time

--[[ Showing values ]]

local MAX_DEPTH, MAX_ITEMS, MAX_WIDTH = 3, 20, 100

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local show

local function show_table(t, depth, seen)
  if seen[t] then return "<cycle>" end
  local mt = getmetatable(t)
  if mt and (mt.__tostring or mt.__name) then return tostring(t) end
  if depth >= MAX_DEPTH then return "{...}" end
  seen[t] = true
  local parts, n, more = {}, 0, false
  local len = #t
  for i = 1, len do
    n = n + 1
    if n > MAX_ITEMS then more = true break end
    parts[n] = show(t[i], depth + 1, seen)
  end
  if not more then
    local keys = {}
    for k in pairs(t) do
      if not (type(k) == "number" and k >= 1 and k <= len and k % 1 == 0) then
        keys[#keys + 1] = k
      end
    end
    sort(keys, function(a, b)
      local ta, tb = type(a), type(b)
      if ta ~= tb then return ta < tb end
      if ta == "number" or ta == "string" then return a < b end
      return tostring(a) < tostring(b)
    end)
    for _, k in ipairs(keys) do
      n = n + 1
      if n > MAX_ITEMS then more = true break end
      local key = is_ident(k) and k or "[" .. show(k, MAX_DEPTH, seen) .. "]"
      parts[n] = key .. " = " .. show(t[k], depth + 1, seen)
    end
  end
  seen[t] = nil
  if more then parts[MAX_ITEMS + 1] = "..." end
  local s = "{ " .. concat(parts, ", ", 1, math.min(#parts, MAX_ITEMS + 1)) ..
    " }"
  if #parts == 0 then s = "{}" end
  return s
end

-- show(v) -> how the REPL prints v: strings quoted, tables to a bounded
-- depth, width and count (cycles marked), weft objects by their tostring.
function show(v, depth, seen)
  local tv = type(v)
  if tv == "string" then
    local s = format("%q", v):gsub("\\\n", "\\n")
    if #s > MAX_WIDTH * 4 then s = s:sub(1, MAX_WIDTH * 4) .. '..."' end
    return s
  end
  if tv == "table" then return show_table(v, depth or 0, seen or {}) end
  return tostring(v)
end
M.show = show

-- print_values(n, ...) : every value of a line, nil included.
local function print_values(n, ...)
  if n == 0 then return end
  local parts = {}
  for i = 1, n do parts[i] = show((select(i, ...))) end
  print(concat(parts, "\t"))
end

--[[ Running lines ]]

-- run(fn): start a line's compiled chunk as a task.
function M.run(fn)
  local body = function()
    local function done(...)
      print_values(select("#", ...), ...)
    end
    return done(fn())
  end
  if vt then
    line = S.spawn_line(function()
      return weft.virtual_time(body)
    end, "stdin", session)
  else
    line = S.spawn_line(body, "stdin", session)
  end
end

-- busy() -> true while the line's function runs (its children may go on
-- after: they do not hold the prompt).
function M.busy()
  if not line then return false end
  local st = S.task_state(line)
  if st == "ready" or st == "running" or st == "blocked" then return true end
  line = nil
  return false
end

-- cancel(): Ctrl-C while a line runs cancels it and what it started.
function M.cancel()
  if line then line:cancel("interrupted") end
end

-- stuck() -> the deadlock report when the line is blocked and nothing in
-- the runtime can wake anything (runtime/repl.c asks weft_is_stuck first).
function M.deadlock()
  local report = S.deadlock_report()
  M.cancel()
  return report
end

-- quit(): the REPL ends: cancel what the lines started.
function M.quit()
  S.node_cancel(session, errors.canceled(errors.new("quit", "the REPL ended")))
end

--[[ Commands ]]

local HELP = [[
  expression or statement   run as a task (blocking calls block the prompt)
  = expr                    show the values of expr
  :tasks                    the tasks alive (weft.tasks())
  :dump                     every task with its traceback (weft.dump())
  :cancel ID                cancel task ID
  :vt on|off                virtual time for the following lines
  :help                     this text
  :quit                     leave (as Ctrl-D); Ctrl-C cancels a running line]]

-- command(text) -> true to quit
function M.command(text)
  local cmd, arg = text:match("^:(%a+)%s*(.-)%s*$")
  if cmd == "help" then
    print(HELP)
  elseif cmd == "tasks" then
    print(format("%4s  %-24s %-9s %s", "id", "name", "state", "waiting on"))
    for _, t in ipairs(weft.tasks()) do
      print(format("%4d  %-24s %-9s %s", t.id, t.name:sub(1, 24), t.state,
        t.waiting_on))
    end
  elseif cmd == "dump" then
    print(weft.dump())
  elseif cmd == "cancel" then
    local id = tonumber(arg)
    local found
    for _, t in ipairs(S.all_tasks()) do
      if S.T_ID and t[S.T_ID] == id then found = t end
    end
    if found then
      found:cancel("canceled at the prompt")
      print("canceled task " .. id)
    else
      print("no task " .. tostring(arg))
    end
  elseif cmd == "vt" then
    if arg ~= "on" and arg ~= "off" then
      print(":vt on|off")
    else
      vt = arg == "on"
      print("virtual time " .. (vt and "on" or "off"))
    end
  elseif cmd == "quit" then
    return true
  else
    print("unknown command " .. text .. " (:help lists them)")
  end
  return false
end

--[[ Completion ]]

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false",
  "for", "function", "goto", "if", "in", "local", "nil", "not", "or",
  "repeat", "return", "then", "true", "until", "while" }

-- complete(word) -> the candidates for word ("weft.se", "ch:", "pri").
function M.complete(word)
  local out = {}
  local base, sep, prefix = word:match("^(.-)([.:])([%w_]*)$")
  if base and base ~= "" then
    local t = _G
    for part in base:gmatch("[^.:]+") do
      if type(t) ~= "table" and type(t) ~= "userdata" then t = nil break end
      local ok, v = pcall(function() return t[part] end)
      t = ok and v or nil
      if t == nil then break end
    end
    local seen = {}
    local function add(k)
      if type(k) == "string" and k:sub(1, #prefix) == prefix and not seen[k]
          and is_ident(k) then
        seen[k] = true
        out[#out + 1] = base .. sep .. k
      end
    end
    if type(t) == "table" then
      for k in pairs(t) do add(k) end
    end
    local mt = getmetatable(t)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if type(idx) == "table" then
      for k in pairs(idx) do add(k) end
    end
  else
    for k in pairs(_G) do
      if type(k) == "string" and k:sub(1, #word) == word then
        out[#out + 1] = k
      end
    end
    for _, k in ipairs(KEYWORDS) do
      if k:sub(1, #word) == word then out[#out + 1] = k end
    end
  end
  sort(out)
  return out
end

return M
