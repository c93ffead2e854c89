-- Runs busted in a stock luajit that loads weft as a module (gh-12), as the
-- root task of weft.run: `luajit spec/run_module.lua spec/chan_spec.lua`.
package.cpath = (os.getenv("WEFT_MODULE_DIR") or "build/lib") .. "/?.so;" ..
  package.cpath
local weft = require "weft"
local ran, err = weft.run(function()
  local ok, e = pcall(require("busted.runner"), { standalone = false })
  -- busted raises nil after reporting failures (Lua 5.1 without forceExit).
  if not ok then return nil, e == nil and "failures" or e end
  return true
end)
if not ran then
  if err ~= "failures" then io.stderr:write(tostring(err), "\n") end
  os.exit(1)
end
