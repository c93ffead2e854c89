/*
** signal.c: signals for tasks, on uv_signal_t.
**
** The weft command (main.c) handles SIGINT, SIGTERM and SIGHUP with its own
** sigaction handlers: they cancel the root context. libuv's uv_signal_start
** replaces a signal's handler with libuv's, and when the last uv_signal_t
** of that signal stops, libuv sets it to SIG_DFL, which would drop the
** command's handler for good. So a signal is libuv's only while a task
** listens (lua/weft/signal.lua counts the listeners): before the first
** listener starts, the handler in place is saved; after the last one
** stops, it is put back, but only if libuv left SIG_DFL (a uv_signal_t of
** another runtime in the process still listening keeps libuv's). While a
** script listens to SIGINT, Ctrl-C goes to the script alone; after, it
** cancels the root again. The same holds for any host's handlers.
**
** Each listener is one uv_signal_t in a struct sig outside the Lua heap,
** calling a Lua function (held by a registry reference, dropped on close)
** under pcall, which only wakes tasks. It is on its runtime's live list
** (io.c) until its handle has closed: weft_free stops it (sig_end).
*/
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SIGNAL_MT "weft.signal.listener"
#define SAVED_MT "weft.signal.saved"

struct sig {
  uv_signal_t h;
  weft_runtime *rt;
  struct weft__live live; /* in rt->live until the handle has closed */
  struct lsig *u;         /* the userdata, while open */
  int ref;                /* the Lua function to call, or LUA_NOREF */
  int signum;
};

struct lsig {
  struct sig *s; /* NULL once closed */
};

struct saved {
  struct sigaction sa; /* the handler before libuv's */
  int signum;
  int pending;            /* not restored yet */
  struct weft__live live; /* while pending: weft_free restores it */
};

static void sig_on_closed(uv_handle_t *h) {
  struct sig *s = h->data;
  weft__live_del(&s->live);
  free(s);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct sig *s = h->data;
  /* No Lua side any more: the runtime is being freed (see weft_free). */
  if (s->ref == LUA_NOREF || s->rt->ref_io_done == LUA_NOREF) return;
  lua_State *L = weft__io_state(s->rt);
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
  const char *name = weft__signal_name(signum);
  if (name) lua_pushstring(L, name);
  else lua_pushinteger(L, signum);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    weft__set_error(s->rt, msg ? msg : "error in a signal callback");
  }
  lua_settop(L, top);
}

static void sig_close(lua_State *L, struct lsig *u) {
  struct sig *s = u->s;
  if (s == NULL) return;
  u->s = NULL;
  s->u = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, s->ref);
  s->ref = LUA_NOREF;
  uv_close((uv_handle_t *)&s->h, sig_on_closed);
}

/* weft_free: stop a listener Lua still holds, in the host's state. */
static void sig_end(struct weft__live *l) {
  struct sig *s = weft__container(l, struct sig, live);
  if (uv_is_closing((uv_handle_t *)&s->h)) return;
  if (s->u != NULL)
    sig_close(s->rt->L, s->u);
  else /* lsig_start raised (out of memory) before Lua had it */
    uv_close((uv_handle_t *)&s->h, sig_on_closed);
}

/*{======================================================================
** Lua binding: weft.sigcore, used by lua/weft/signal.lua
**=======================================================================*/

/* sigcore.number(sig) -> signal number, name (raises on a bad one) */
static int lsig_number(lua_State *L) {
  int n = weft__check_signal(L, 1);
  const char *name = weft__signal_name(n);
  lua_pushinteger(L, n);
  if (name) lua_pushstring(L, name);
  else lua_pushvalue(L, 1);
  return 2;
}

static void saved_end(struct weft__live *l);

/* sigcore.save(signum) -> saved: the handler in place now */
static int lsig_save(lua_State *L) {
  int signum = (int)luaL_checkinteger(L, 1);
  weft_runtime *rt = weft__rt(L);
  struct saved *sv = lua_newuserdata(L, sizeof *sv);
  memset(sv, 0, sizeof *sv);
  luaL_getmetatable(L, SAVED_MT);
  lua_setmetatable(L, -2);
  if (sigaction(signum, NULL, &sv->sa) == 0) {
    sv->signum = signum;
    sv->pending = 1;
    weft__live_add(rt, &sv->live, saved_end);
  }
  return 1;
}

static void restore(struct saved *sv) {
  struct sigaction cur;
  if (!sv->pending) return;
  sv->pending = 0;
  weft__live_del(&sv->live);
  if (sigaction(sv->signum, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL &&
      !(cur.sa_flags & SA_SIGINFO))
    sigaction(sv->signum, &sv->sa, NULL);
  /* The saved SIG_DFL may predate the first conn, which would have ignored
  ** SIGPIPE but for this listener (stream.c). */
  if (sv->signum == SIGPIPE && weft__sigpipe_wanted()) weft__ignore_sigpipe();
}

/*
** weft_free: the handler goes back now, not when a host's collector gets
** to the saved userdata (a host's SIGINT handler, say, would be the
** default meanwhile). Nothing calls back, so it leaves the list at once.
** The listeners of the signal were made after it and so ended before it
** (io.c ends the newest first): libuv has left SIG_DFL by now.
*/
static void saved_end(struct weft__live *l) {
  restore(weft__container(l, struct saved, live));
}

/* sigcore.restore(saved): put the saved handler back if libuv left none */
static int lsig_restore(lua_State *L) {
  restore(luaL_checkudata(L, 1, SAVED_MT));
  return 0;
}

/* sigcore.start(signum, fn) -> listener | nil, err: fn(name) on each. */
static int lsig_start(lua_State *L) {
  weft_runtime *rt = weft__rt(L);
  int signum = (int)luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct lsig *u = lua_newuserdata(L, sizeof *u);
  u->s = NULL;
  luaL_getmetatable(L, SIGNAL_MT);
  lua_setmetatable(L, -2);
  struct sig *s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "weft.signal: out of memory");
  s->rt = rt;
  s->signum = signum;
  s->ref = LUA_NOREF;
  s->h.data = s;
  int rc = uv_signal_init(rt->loop, &s->h);
  if (rc < 0) { /* no handle was made: nothing to close */
    free(s);
    return weft__io_push_error(L, rc, "weft.signal");
  }
  weft__live_add(rt, &s->live, sig_end);
  rc = uv_signal_start(&s->h, on_signal, signum);
  if (rc < 0) {
    uv_close((uv_handle_t *)&s->h, sig_on_closed);
    return weft__io_push_error(L, rc, "weft.signal");
  }
  lua_pushvalue(L, 2);
  s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  u->s = s;
  s->u = u;
  return 1;
}

/* sigcore.ref(listener, on): whether it keeps the loop alive (a pending
** wait does; a listener kept between two waits does not). */
static int lsig_ref(lua_State *L) {
  struct lsig *u = luaL_checkudata(L, 1, SIGNAL_MT);
  if (u->s == NULL) return 0;
  if (lua_toboolean(L, 2)) {
    uv_ref((uv_handle_t *)&u->s->h);
  } else {
    uv_unref((uv_handle_t *)&u->s->h);
  }
  return 0;
}

/* sigcore.raise(signum): send the signal to this process again, to the
** handler restored after the last listener stopped. */
static int lsig_raise(lua_State *L) {
  int signum = (int)luaL_checkinteger(L, 1);
  uv_kill(uv_os_getpid(), signum);
  return 0;
}

/* sigcore.stop(listener): idempotent */
static int lsig_stop(lua_State *L) {
  sig_close(L, luaL_checkudata(L, 1, SIGNAL_MT));
  return 0;
}

static int lsig__tostring(lua_State *L) {
  struct lsig *u = luaL_checkudata(L, 1, SIGNAL_MT);
  lua_pushfstring(L, SIGNAL_MT ": %p (%s)", (void *)u,
                  u->s ? "listening" : "stopped");
  return 1;
}

static int lsaved__gc(lua_State *L) {
  restore(luaL_checkudata(L, 1, SAVED_MT));
  return 0;
}

static int lsaved__tostring(lua_State *L) {
  struct saved *sv = luaL_checkudata(L, 1, SAVED_MT);
  lua_pushfstring(L, SAVED_MT ": %d (%s)", sv->signum,
                  sv->pending ? "saved" : "restored");
  return 1;
}

int weft__open_sigcore(lua_State *L) {
  static const luaL_Reg sig_meta[] = {
      {"__gc", lsig_stop},
      {"__close", lsig_stop},
      {"__tostring", lsig__tostring},
      {NULL, NULL},
  };
  static const luaL_Reg saved_meta[] = {
      {"__gc", lsaved__gc},
      {"__close", lsaved__gc},
      {"__tostring", lsaved__tostring},
      {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"number", lsig_number}, {"save", lsig_save}, {"restore", lsig_restore},
      {"start", lsig_start},   {"stop", lsig_stop}, {"ref", lsig_ref},
      {"raise", lsig_raise},   {NULL, NULL},
  };
  luaL_newmetatable(L, SIGNAL_MT);
  luaL_register(L, NULL, sig_meta);
  lua_pushliteral(L, SIGNAL_MT);
  lua_setfield(L, -2, "__name");
  luaL_newmetatable(L, SAVED_MT);
  luaL_register(L, NULL, saved_meta);
  lua_pushliteral(L, SAVED_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 2);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
