/*
** io.c: how a libuv completion reaches the task that waits for it.
**
** Every I/O operation a task waits on (an fs request, a read, a connect, a
** child's exit) is started by a C binding with an operation id that
** lua/weft/io.lua made and recorded as the task's wait. When libuv calls
** back, the binding pushes the outcome and calls weft__io_complete, which
** calls the Lua side's R.io_done(id, ...) under pcall: it wakes the task
** (an O(1) push on the run queue; nothing runs there). An id whose wait was
** cancelled meanwhile is simply not found, so a late completion is dropped,
** never delivered to another wait.
**
** Callbacks run inside uv_run, between ticks, on the thread the driver
** runs ticks on (weft.run may be called from a coroutine of the host's), so
** they use that thread, not necessarily the state's main thread.
**
** Freeing an attached runtime (weft_attach): the host's state and loop
** live on, so no finalizer of weft's userdata can be counted on to close
** what it holds (lua_close runs them all only for a state weft owns), and
** no libuv callback may run after weft_free and find the freed runtime.
** So every handle the runtime opens and every request it starts is on
** rt->live (weft__live_add) until the callback that frees it, and
** weft_free: ends the children (process.c), calls end on every entry
** (handles close, which also cancels their write, connect and shutdown
** requests; fs and DNS requests are uv_cancel'led and marked abandoned;
** each Lua box is cleared, so that a later method call raises "attempt to
** use a closed ..." and the box's __gc does nothing), then turns the loop
** until the list is empty, for a bounded time: a request already running
** on libuv's thread pool cannot be cancelled and may never end (a read of
** a FIFO nobody writes to). What is still listed then is detached (rt set
** to NULL): its callback, on a later turn of the host's loop, only frees
** its own memory (and closes a descriptor it opened), never the runtime's.
*/
#include <lauxlib.h>
#include <string.h>

#include "internal.h"

weft_runtime *weft__rt(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&weft__rt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  weft_runtime *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (rt == NULL) luaL_error(L, "weft: no runtime in this Lua state");
  return rt;
}

lua_State *weft__io_state(weft_runtime *rt) {
  return rt->drive_L != NULL ? rt->drive_L : rt->L;
}

/*
** Deliver operation id's outcome: push(L, ud) pushes the values the wait
** returns and returns how many. An error in the Lua side is kept as the
** runtime's last error (it would be a bug of weft's own).
*/
void weft__io_complete(weft_runtime *rt, int id,
                       int (*push)(lua_State *, void *), void *ud) {
  /* No Lua side: the runtime is being freed (its state may be closed). */
  if (rt->ref_io_done == LUA_NOREF || id <= 0) return;
  lua_State *L = weft__io_state(rt);
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_io_done);
  lua_pushinteger(L, id);
  int n = push != NULL ? push(L, ud) : 0;
  if (lua_pcall(L, n + 1, 0, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    weft__set_error(rt, msg ? msg : "error in an I/O completion");
  }
  lua_settop(L, top);
}

void weft__live_add(weft_runtime *rt, struct weft__live *l,
                    void (*end)(struct weft__live *l)) {
  l->rt = rt;
  l->end = end;
  l->prev = NULL;
  l->next = rt->live;
  if (rt->live != NULL) rt->live->prev = l;
  rt->live = l;
}

void weft__live_del(struct weft__live *l) {
  weft_runtime *rt = l->rt;
  if (rt == NULL) return; /* detached: the runtime is gone */
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    rt->live = l->next;
  if (l->next != NULL) l->next->prev = l->prev;
  l->rt = NULL;
  l->prev = l->next = NULL;
}

/* An end function calls nothing back at once (libuv calls back on a
** later turn) and may take only its own entry off the list (an open file,
** a saved signal handler: nothing calls them back), so the walk is safe.
** The newest end first: what an entry was made for (a signal's listener,
** made after the handler it replaces was saved) ends before it. */
void weft__live_end(weft_runtime *rt) {
  for (struct weft__live *l = rt->live, *next; l != NULL; l = next) {
    next = l->next;
    l->end(l);
  }
}

void weft__live_detach(weft_runtime *rt) {
  while (rt->live != NULL)
    weft__live_del(rt->live);
}

/* Push nil and an error for libuv status `status` on `what` (the Lua side
** turns it into a weft error whose kind is libuv's error name). */
int weft__io_push_error(lua_State *L, int status, const char *what) {
  lua_pushnil(L);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, uv_err_name(status));
  lua_setfield(L, -2, "code");
  lua_pushstring(L, uv_strerror(status));
  lua_setfield(L, -2, "text");
  lua_pushstring(L, what);
  lua_setfield(L, -2, "what");
  return 2;
}

/*{======================================================================
** Lua binding: weft.iocore, used by lua/weft/io.lua
**=======================================================================*/

/* iocore.set_done(fn): the function completions call (R.io_done). */
static int liocore_set_done(lua_State *L) {
  weft_runtime *rt = weft__rt(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (rt->ref_io_done != LUA_NOREF)
    luaL_unref(L, LUA_REGISTRYINDEX, rt->ref_io_done);
  lua_settop(L, 1);
  rt->ref_io_done = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int weft__open_iocore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"set_done", liocore_set_done},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
