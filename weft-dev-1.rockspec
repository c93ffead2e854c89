-- luarocks make weft-dev-1.rockspec   (from a checkout; see docs/guide.md)
rockspec_format = "3.0"
package = "weft"
version = "dev-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Go-style concurrency for LuaJIT on libuv",
  detailed = [[
weft gives Lua tasks, channels, select, contexts with cancellation and
deadlines, and structured lifetime. This rock builds the module that
`require "weft"` loads into a stock LuaJIT (and LÖVE, Neovim, ...).]],
  license = "MIT",
}
dependencies = {
  "lua == 5.1",
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
}
-- The cmake backend, because the module embeds lua/weft/*.lua as bytecode
-- made at build time (scripts/bcsave.lua, run by luajit), which the
-- builtin backend cannot do.
-- CMake's install would also put the command, the libraries and weft.pc
-- in the rock, where luarocks would deploy them as Lua modules, so only
-- the build pass runs and the module is installed by name.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    WEFT_BUILD_TESTS = "OFF",
  },
  install_pass = false,
  install = {
    lib = { weft = "build.luarocks/lib/weft.so" },
  },
}
