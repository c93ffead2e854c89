/*
** module.c: weft as a Lua C module, for `require "weft"` from a stock
** luajit. The runtime lives as long as the Lua state: a userdata in the
** registry frees it when the state closes.
*/
#include <lauxlib.h>

#include "internal.h"

static const char box_key = 0;

static int box_gc(lua_State *L) {
  weft_runtime **box = lua_touserdata(L, 1);
  if (*box != NULL) {
    weft__free_closing(*box);
    *box = NULL;
  }
  return 0;
}

int luaopen_weft(lua_State *L);

int luaopen_weft(lua_State *L) {
  /* Whoever made it (this module, or a host with weft_attach): the state
  ** cannot have two. A box left by a failed attach is simply replaced. */
  lua_pushlightuserdata(L, (void *)&weft__rt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isnil(L, -1))
    return luaL_error(L, "weft: this Lua state already has a runtime");
  lua_pop(L, 1);
  /* The box exists, with its __gc, before the runtime it will free. */
  weft_runtime **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  lua_newtable(L);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushlightuserdata(L, (void *)&box_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  *box = weft_attach(L, NULL, NULL);
  /* weft_attach anchors the thread that required it (a coroutine, may be). */
  if (*box == NULL) return luaL_error(L, "weft: cannot create the runtime");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "weft");
  return 1;
}
