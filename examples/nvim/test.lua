-- The demo run headless (ctest):
--   nvim --headless -u NONE -c "luafile examples/nvim/test.lua"
-- Puts this directory on 'runtimepath', loads plugin/, runs :WeftDemo and
-- prints the scratch buffer to stdout once the demo is done, then a summary
-- line ("weft-nvim: ok ..." when the buffer holds what the demo writes and
-- the poll handle woke weft at least once); exits 1 when the buffer is
-- wrong or the demo does not finish within 20 s.
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") or "."
vim.opt.runtimepath:prepend(here)
vim.cmd("runtime plugin/weft_demo.lua")

local function finish(code, lines)
  for _, l in ipairs(lines) do io.stdout:write(l, "\n") end
  io.stdout:flush()
  vim.cmd((code == 0) and "qa!" or "cq!")
end

local demo = require "weft_demo"
local buf = demo.start {
  ticks = 5,
  on_done = function(b)
    local lines = vim.api.nvim_buf_get_lines(b, 1, -1, false)
    local text = table.concat(lines, "\n")
    local ok = text:match("^tick 1 .*\ntick 5 [^\n]*\necho: HELLO\n" ..
      "echo: FROM\necho: NEOVIM\ndone: [^\n]*$") and demo.polls > 0
    table.insert(lines, ("weft-nvim: %s lines=%d steps=%d polls=%d"):format(
      ok and "ok" or "wrong", #lines, demo.steps, demo.polls))
    finish(ok and 0 or 1, lines)
  end,
}
vim.defer_fn(function()
  local lines = vim.api.nvim_buf_get_lines(buf, 1, -1, false)
  table.insert(lines, "weft-nvim: incomplete after 20 s")
  finish(1, lines)
end, 20000)
