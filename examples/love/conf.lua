-- LÖVE configuration of the weft demo. Headless (no window, graphics or
-- audio: what ctest runs) when WEFT_LOVE_HEADLESS is set or the game is
-- given --headless.
local function headless()
  if os.getenv("WEFT_LOVE_HEADLESS") then return true end
  for _, a in ipairs(arg or {}) do
    if a == "--headless" then return true end
  end
  return false
end

function love.conf(t)
  t.identity = "weft-demo"
  t.window.title = "weft in LÖVE"
  t.window.width, t.window.height = 640, 360
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
  if headless() then
    t.window = false
    t.modules.window = false
    t.modules.graphics = false
    t.modules.audio = false
    t.modules.sound = false
    t.modules.image = false
    t.modules.font = false
    t.modules.mouse = false
    t.modules.touch = false
  end
end
