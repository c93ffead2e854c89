-- weft in a LÖVE game (gh-12): love.update steps the runtime with a 2 ms
-- budget a frame; agents move on weft.sleep, a ticker counts, key presses
-- reach a task through ch:try_send, a failing task reaches weft.on_error,
-- and love.quit shuts weft down.
--
--   love examples/love                   a window; keys: space adds an
--                                        agent, r reverses them, e fails
--   love examples/love --headless --frames 120
--                                        no window (conf.lua), scripted
--                                        keys, quits with a summary line
--
-- The module is found in $WEFT_MODULE_DIR, then in ../../build/lib from the
-- game's directory (the tree's build), then where it was installed.

local function find_module()
  local dirs = { love.filesystem.getSource() .. "/../../build/lib" }
  local env = os.getenv("WEFT_MODULE_DIR")
  if env and env ~= "" then table.insert(dirs, 1, env) end
  for i = #dirs, 1, -1 do
    package.cpath = dirs[i] .. "/?.so;" .. package.cpath
  end
end
find_module()

local weft = require "weft"

local W, H = 640, 360
local state = {
  frames = 0, moves = 0, ticks = 0, keys = 0, dropped = 0, errors = 0,
  last_key = "-", last_error = nil, live = 0, worst_step = 0,
}
local agents = {}
local keys = weft.chan(16)
local options = { frames = nil }

local function agent(a)
  while true do
    a.x = a.x + a.vx
    if a.x < 10 or a.x > W - 10 then a.vx = -a.vx end
    a.moves = a.moves + 1
    state.moves = state.moves + 1
    -- nil once weft shuts down (the task is cancelled): leave.
    if not weft.sleep(a.period) then return end
  end
end

local function add_agent()
  local i = #agents + 1
  local a = { x = 20 + (i * 53) % (W - 40), y = 30 + (i * 37) % (H - 100),
    vx = (i % 2 == 0) and 4 or -4, period = 0.01 + (i % 5) * 0.005,
    moves = 0 }
  agents[i] = a
  weft.go(agent, a)
end

local function clock()
  local ticks, stop = weft.ticker(0.05)
  for _ in ticks:iter() do state.ticks = state.ticks + 1 end
  stop()
end

-- Key presses, one at a time, in the order they were pressed.
local function input()
  for key in keys:iter() do
    state.keys, state.last_key = state.keys + 1, key
    if key == "space" then
      add_agent()
    elseif key == "r" then
      for _, a in ipairs(agents) do a.vx = -a.vx end
    elseif key == "e" then
      -- A top-level task of its own: its failure goes to on_error, not up
      -- to this task.
      weft.start(function() error("the e key fails on purpose") end)
    elseif key == "escape" then
      love.event.quit(0)
    end
  end
end

function love.load(args)
  for i = 1, #args do
    if args[i] == "--frames" then options.frames = tonumber(args[i + 1]) end
  end
  weft.on_error(function(_, text)
    state.errors, state.last_error = state.errors + 1, text
  end)
  weft.start(function()
    for _ = 1, 8 do add_agent() end
    weft.go(clock)
    input()
  end)
  options.t0 = love.timer.getTime()
end

-- From outside any task: try_send never waits (a full queue drops a key).
function love.keypressed(key)
  if not keys:try_send(key) then state.dropped = state.dropped + 1 end
end

-- The headless script: a few keys in the first frames, then quit once the
-- frames are done and every part has run (or after 20 s, incomplete).
local SCRIPT = { [2] = "space", [3] = "r", [4] = "e", [5] = "x" }

local function complete()
  if state.ticks < 3 or state.keys < 4 or state.errors < 1 then
    return false
  end
  for _, a in ipairs(agents) do
    if a.moves < 3 then return false end
  end
  return true
end

local function script()
  local key = SCRIPT[state.frames]
  if key then love.event.push("keypressed", key, key, false) end
  if state.frames >= options.frames and complete() then
    love.event.quit(0)
  elseif love.timer.getTime() - options.t0 > 20 then
    options.incomplete = true
    love.event.quit(1)
  end
end

function love.update()
  state.frames = state.frames + 1
  local t0 = love.timer.getTime()
  state.live = weft.step(2)
  local dt = love.timer.getTime() - t0
  if dt > state.worst_step then state.worst_step = dt end
  if options.frames then script() end
end

function love.draw()
  local g = love.graphics
  g.clear(0.08, 0.08, 0.1)
  for _, a in ipairs(agents) do
    g.setColor(0.3, 0.8, 1)
    g.circle("fill", a.x, a.y, 6)
  end
  g.setColor(1, 1, 1)
  g.print(("frame %d   tasks %d   ticks %d   moves %d   worst step %.2f ms")
    :format(state.frames, state.live, state.ticks, state.moves,
      state.worst_step * 1000), 10, H - 60)
  g.print(("keys %d (last %s, dropped %d)   space: agent  r: reverse  " ..
    "e: fail"):format(state.keys, state.last_key, state.dropped), 10, H - 40)
  if state.last_error then
    g.setColor(1, 0.4, 0.4)
    g.print(state.last_error:match("[^\n]*"), 10, H - 20)
  end
end

function love.quit()
  local clean = weft.shutdown(1)
  print(("weft-love: %s frames=%d agents=%d moves=%d ticks=%d keys=%d " ..
    "errors=%d shutdown=%s worst_step_ms=%.2f"):format(
    options.incomplete and "incomplete" or "ok", state.frames, #agents,
    state.moves, state.ticks, state.keys, state.errors,
    clean and "clean" or "unclean", state.worst_step * 1000))
  io.stdout:flush()
end
