-- luacheck configuration: LuaJIT, with `weft` a global of the weft command.
std = "luajit"
globals = { "weft" }
max_line_length = 80
-- weft.sched installs coroutine.resume/wrap relays on purpose.
files["lua/weft/sched.lua"] = { globals = { "coroutine" } }
files["spec"] = { std = "+busted" }
-- The host examples run inside LÖVE and Neovim, which provide these.
files["examples/love"] = { globals = { "love" } }
files["examples/nvim"] = { read_globals = { "vim" } }
