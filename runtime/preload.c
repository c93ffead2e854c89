/*
** preload.c: the Lua side of weft (the files in lua/weft), compiled to LuaJIT
** bytecode at build time and registered in package.preload, so that the
** binary and the module need no files beside them. It also registers
** weft.wait, the scheduler's C part (wait.c).
**
** For development, WEFT_LUA_DIR=<dir> loads <dir>/weft/<name>.lua from
** source instead (so edits need no rebuild).
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "weft_lua_modules.h" /* generated: WEFT_LUA_MODULES(XX) */

struct module {
  const char *name;
  const char *file; /* path under lua/, for WEFT_LUA_DIR */
  const unsigned char *code;
  size_t size;
};

static const struct module modules[] = {
#define XX(name, file, sym) {name, file, sym, sizeof(sym)},
    WEFT_LUA_MODULES(XX)
#undef XX
};

/* package.preload loader: upvalue 1 is the index in modules[]. */
static int load(lua_State *L) {
  const struct module *m = &modules[lua_tointeger(L, lua_upvalueindex(1))];
  const char *dir = getenv("WEFT_LUA_DIR");
  int rc;
  if (dir != NULL && *dir != '\0') {
    lua_pushfstring(L, "%s/%s", dir, m->file);
    rc = luaL_loadfile(L, lua_tostring(L, -1));
    lua_remove(L, -2);
  } else {
    rc = luaL_loadbuffer(L, (const char *)m->code, m->size, m->name);
  }
  if (rc != 0) return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

/* The C modules the Lua side wraps: the scheduler's yield (wait.c), the
** worker pool and its copies (pool.c, copy.c), and the I/O cores. */
static const luaL_Reg cmodules[] = {
    {"weft.wait", weft__open_wait},
    {"weft.copy", weft__open_copy},
    {"weft.pool", weft__open_pool},
    {"weft.iocore", weft__open_iocore},
    {"weft.fscore", weft__open_fscore},
    {"weft.streamcore", weft__open_streamcore},
    {"weft.tcpcore", weft__open_tcpcore},
    {"weft.udpcore", weft__open_udpcore},
    {"weft.dnscore", weft__open_dnscore},
    {"weft.proccore", weft__open_proccore},
    {"weft.sigcore", weft__open_sigcore},
};

void weft__preload(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushcclosure(L, load, 1);
    lua_setfield(L, -2, modules[i].name);
  }
  for (size_t i = 0; i < sizeof cmodules / sizeof cmodules[0]; i++) {
    lua_pushcfunction(L, cmodules[i].func);
    lua_setfield(L, -2, cmodules[i].name);
  }
  lua_pop(L, 2);
}
