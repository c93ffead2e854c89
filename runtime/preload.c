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

void weft__preload(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushcclosure(L, load, 1);
    lua_setfield(L, -2, modules[i].name);
  }
  /* The C part of the scheduler: see wait.c. */
  lua_pushcfunction(L, weft__open_wait);
  lua_setfield(L, -2, "weft.wait");
  lua_pushcfunction(L, weft__open_copy);
  lua_setfield(L, -2, "weft.copy");
  lua_pushcfunction(L, weft__open_pool);
  lua_setfield(L, -2, "weft.pool");
  lua_pushcfunction(L, weft__open_iocore);
  lua_setfield(L, -2, "weft.iocore");
  lua_pushcfunction(L, weft__open_fscore);
  lua_setfield(L, -2, "weft.fscore");
  lua_pushcfunction(L, weft__open_streamcore);
  lua_setfield(L, -2, "weft.streamcore");
  lua_pushcfunction(L, weft__open_tcpcore);
  lua_setfield(L, -2, "weft.tcpcore");
  lua_pushcfunction(L, weft__open_udpcore);
  lua_setfield(L, -2, "weft.udpcore");
  lua_pushcfunction(L, weft__open_dnscore);
  lua_setfield(L, -2, "weft.dnscore");
  lua_pushcfunction(L, weft__open_proccore);
  lua_setfield(L, -2, "weft.proccore");
  lua_pushcfunction(L, weft__open_sigcore);
  lua_setfield(L, -2, "weft.sigcore");
  lua_pop(L, 2);
}
