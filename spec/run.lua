-- Runs busted inside the weft runtime, as the root task, so that specs can
-- spawn tasks and block: `weft spec/run.lua spec/chan_spec.lua`.
local ok, err = pcall(require("busted.runner"), { standalone = false })
if not ok then
  -- busted raises nil after reporting failures (Lua 5.1 without forceExit).
  if err ~= nil then error(err, 0) end
  os.exit(1)
end
