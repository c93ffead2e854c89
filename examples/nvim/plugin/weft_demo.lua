-- :WeftDemo [ticks] runs the weft demo and shows its scratch buffer.
vim.api.nvim_create_user_command("WeftDemo", function(cmd)
  local buf = require("weft_demo").start { ticks = tonumber(cmd.args) }
  vim.api.nvim_set_current_buf(buf)
end, { nargs = "?" })
