-- Helpers shared by the specs.
local weft = require "weft"
local errors = require "weft.errors"
local S = require "weft.sched"

local H = {}

-- H.task(fn) -> a busted test body that runs fn in a task of its own, so
-- whatever it spawns is finished (structured lifetime) before the next test,
-- and fails if any task is still alive afterwards (as weft.tasks() sees).
function H.task(fn)
  return function()
    local live_before = #weft.tasks()
    local t = weft.spawn { name = "spec", fn = fn }
    local ok, err = t:join()
    if not ok and err ~= nil then
      if errors.is_error(err) and err.kind == "bug" and err.value ~= nil then
        error(err.value, 0)
      end
      error(tostring(err), 0)
    end
    local live_after = #weft.tasks()
    assert(live_after == live_before, ("%d task(s) left behind"):format(
      live_after - live_before))
    assert(S.stats() == live_after, "weft.tasks() missed a task")
  end
end

-- H.vtask(fn) -> as H.task, with fn on virtual time (weft.virtual_time):
-- the clock starts at 0 and jumps whenever every task is blocked, so the
-- spec runs in no time and the same way every time.
function H.vtask(fn)
  return H.task(function()
    local ok, err = weft.virtual_time(fn)
    if not ok and err ~= nil then error(err, 0) end
  end)
end

-- H.live() -> number of unfinished tasks in the runtime.
function H.live()
  return (S.stats())
end

-- H.sh(cmd) -> output, exit status: run a shell command (blocks the runtime;
-- for CLI specs only).
function H.sh(cmd)
  local f = io.popen(cmd .. "; echo \"::$?\"", "r")
  local out = f:read("*a")
  f:close()
  local body, status = out:match("^(.*)::(%d+)%s*$")
  return body, tonumber(status)
end

-- H.pid() -> this process's id.
function H.pid()
  local f = assert(io.open("/proc/self/stat"))
  local s = f:read("*l")
  f:close()
  return s:match("^(%d+)")
end

-- H.nfds() -> how many file descriptors this process has open (the one
-- that lists them included, the same every time): I/O specs check that
-- nothing is left open. Listed by weft.fs in this process: a child that
-- lists them (io.popen "ls") may see popen's pipe twice.
function H.nfds()
  return #assert(weft.fs.readdir("/proc/self/fd"))
end

-- H.zombies() -> how many children of this process are zombies (state Z
-- in /proc/<pid>/stat): process specs check that every child was reaped.
function H.zombies()
  local me, n = H.pid(), 0
  local p = io.popen("cat /proc/[0-9]*/stat 2>/dev/null")
  for line in p:lines() do
    local state, ppid = line:match("^%d+ %b() (%u) (%d+)")
    if state == "Z" and ppid == me then n = n + 1 end
  end
  p:close()
  return n
end

-- Descriptors libuv opens once and keeps: the spare one of the first
-- listen (its answer to EMFILE), the SIGCHLD and signal pipes. Opened
-- before counting, once per process.
local warm = false
local function warm_up()
  if warm then return end
  warm = true
  assert(weft.tcp.listen("127.0.0.1", 0)):close()
  assert(weft.process.run { "true" })
  local _, stop = weft.signal.notify("SIGURG")
  stop()
end

-- H.io_task(fn) -> as H.task, and it fails if fn leaves a descriptor open,
-- a task behind or a child unreaped: every I/O spec ends clean.
function H.io_task(fn)
  return H.task(function()
    warm_up()
    collectgarbage() -- what an earlier spec dropped closes now, not later
    collectgarbage()
    weft.sleep(0.01)
    local before, ntasks = H.nfds(), #weft.tasks()
    fn()
    collectgarbage()
    collectgarbage()
    weft.sleep(0.01) -- close callbacks run on a later loop turn
    -- luassert: busted puts its assert in spec files, not in modules.
    local check = require "luassert"
    check.equal(before, H.nfds(), "file descriptors left open")
    check.equal(ntasks, #weft.tasks(), "tasks left behind")
    check.equal(0, H.zombies(), "a child left a zombie")
  end)
end

-- H.script(text) -> the path of a new temporary Lua file holding text.
function H.script(text)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- H.luajit(code) -> output, status: run code in a stock luajit that finds
-- the weft module (outside any task: what a Lua host does).
function H.luajit(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("package.cpath = ", string.format("%q", H.module_dir .. "/?.so;"),
    " .. package.cpath\n", code)
  f:close()
  local preload = os.getenv("WEFT_LUAJIT_PRELOAD")
  local env = preload and ("LD_PRELOAD=" .. preload .. " ") or ""
  local out, status = H.sh(env .. "luajit " .. path .. " 2>&1")
  os.remove(path)
  return out, status
end

-- Paths of the build, from the environment ctest sets.
H.weft_bin = os.getenv("WEFT_BIN") or "build/weft"
H.module_dir = os.getenv("WEFT_MODULE_DIR") or "build/lib"

-- H.rmtree(path): remove path and, for a directory, all below it (in a
-- task: it uses weft.fs).
function H.rmtree(path)
  local fs = weft.fs
  local st = fs.stat(path)
  if not st then return end
  if st.type == "directory" then
    for _, name in ipairs(assert(fs.readdir(path))) do
      H.rmtree(path .. "/" .. name)
    end
  end
  assert(fs.remove(path))
end

return H
