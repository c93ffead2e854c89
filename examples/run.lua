-- run.lua: run a list of commands, at most 3 at a time, each with a
-- timeout, and report each one's exit and output.
--
--   weft examples/run.lua
--
-- weft.process.run captures a command's stdout and stderr in full; a
-- command that outlives its timeout is ended (SIGTERM, then SIGKILL) and
-- reaped, so nothing is left running when the program ends.

local weft = require "weft"

local commands = {
  { "echo", "hello" },
  { "sh", "-c", "echo to stderr >&2; exit 3" },
  { "printf", "%s\\n", "a", "b", "c" },
  { "sh", "-c", "sleep 0.1; echo slow" },
  { "sleep", "30" }, -- ended by its timeout
  { "no-such-command" },
  { "wc", "-c" }, -- fed from input
}

-- show(s): s quoted on one line.
local function show(s)
  return (("%q"):format(s):gsub("\\\n", "\\n"))
end

local limiter = weft.limiter(3)
local results = {}
local ctx = weft.context()

for i, argv in ipairs(commands) do
  limiter:go(ctx, function()
    local r, err = weft.process.run(argv, { timeout = 1,
      input = argv[1] == "wc" and ("x"):rep(1000) or nil })
    if not r then
      results[i] = ("%-28s failed: %s"):format(table.concat(argv, " "), err)
    else
      results[i] = ("%-28s exit %d%s, stdout %s, stderr %s"):format(
        table.concat(argv, " "), r.code, r.signal and " " .. r.signal or "",
        show(r.stdout), show(r.stderr))
    end
  end)
end

limiter:close()
for _, line in ipairs(results) do print(line) end
