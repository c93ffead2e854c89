/*
** review17_test.c: regressions found by the hostile review of the chain,
** the loop's timerfd wake-up and the tomb of a freed attached runtime.
** Each test runs in a child process of its own, so that one that crashes
** (the bugs here did) is reported by name and the others still run.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "forked.h"
#include "weft.h"

static long long global_int(lua_State *L, const char *name) {
  lua_getglobal(L, name);
  long long v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* ---------------------------------------------------------------------
** The timerfd (runtime.c "Waking the loop")
** --------------------------------------------------------------------- */

static void interrupt_later(void *arg) {
  uv_sleep(300);
  weft_interrupt(arg);
}

/* A sleep past what a uint64_t of nanoseconds holds (1e11 s): its deadline
** converted to 0, the timerfd was armed in the past, fired at once, and the
** loop spun at 100% CPU for as long as the task slept. It must sleep. */
static void test_huge_sleep_does_not_spin(void) {
  static const char *const sleeps[] = {"1e11", "1e300", "2^63"};
  for (size_t i = 0; i < sizeof sleeps / sizeof *sleeps; i++) {
    weft_runtime *rt = weft_new(NULL);
    ASSERT(rt != NULL);
    char chunk[128];
    snprintf(chunk, sizeof chunk,
             "local ok, err = weft.sleep(%s)\n"
             "kind = not ok and err.kind or 'woke'",
             sleeps[i]);
    ASSERT_EQ(weft_spawn_string(rt, chunk, "=huge"), 0);
    uv_thread_t th;
    ASSERT_EQ(uv_thread_create(&th, interrupt_later, rt), 0);
    uint64_t c0 = cpu_ns(), w0 = uv_hrtime();
    weft_run(rt);
    uint64_t cpu = cpu_ns() - c0, wall = uv_hrtime() - w0;
    uv_thread_join(&th);
    lua_State *L = weft_lua(rt);
    lua_getglobal(L, "kind");
    ASSERT_STR_CONTAINS(lua_tostring(L, -1), "canceled");
    lua_pop(L, 1);
    weft_free(rt);
    /* Interrupted after 300 ms of sleep; spinning took all 300 of CPU. */
    ASSERT(wall >= 250000000u);
    if (cpu > 100000000u)
      fprintf(stderr, "weft.sleep(%s): %.0f ms of CPU in %.0f ms\n", sleeps[i],
              cpu / 1e6, wall / 1e6);
    ASSERT(cpu < 100000000u);
  }
}

/* ---------------------------------------------------------------------
** Freeing an attached runtime, and attaching again
** --------------------------------------------------------------------- */

/* Attach, run a task that uses a nested coroutine, free: over and over on
** one state. Each runtime's coroutine relay wrapped the one before (it took
** coroutine.resume, the last runtime's relay, as the stock function), so
** every generation's whole Lua side stayed reachable (~120 KB each) and
** every resume went through all the relays. */
static void test_reattach_does_not_leak(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  ASSERT_EQ(luaL_dostring(L, "stock = { coroutine.resume, coroutine.wrap, "
                             "coroutine.running, dofile }"),
            0);
  int kb_at[2] = {0, 0};
  for (int round = 0; round < 24; round++) {
    weft_runtime *rt = weft_attach(L, NULL, NULL);
    ASSERT(rt != NULL);
    ASSERT_EQ(weft_spawn_string(rt,
                                "local w = require 'weft'\n"
                                "local gen = coroutine.wrap(function()\n"
                                "  w.sleep(0.0001) coroutine.yield(1)\n"
                                "end)\n"
                                "n = gen()",
                                "=round"),
              0);
    ASSERT_EQ(weft_run(rt), 0);
    ASSERT_EQ(global_int(L, "n"), 1);
    weft_free(rt);
    /* The state's coroutine library is the host's again. */
    ASSERT_EQ(luaL_dostring(L, "same = coroutine.resume == stock[1] and "
                               "coroutine.wrap == stock[2] and "
                               "coroutine.running == stock[3] and "
                               "dofile == stock[4]"),
              0);
    lua_getglobal(L, "same");
    ASSERT(lua_toboolean(L, -1));
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    if (round == 3) kb_at[0] = lua_gc(L, LUA_GCCOUNT, 0);
    if (round == 23) kb_at[1] = lua_gc(L, LUA_GCCOUNT, 0);
  }
  /* 20 more rounds: the tombs' boxes (a few dozen bytes each) may stay
  ** until lua_close; twenty runtimes' Lua sides (over 2 MB) may not. */
  if (kb_at[1] - kb_at[0] >= 200)
    fprintf(stderr, "Lua heap %d KB after 4 rounds, %d KB after 24\n", kb_at[0],
            kb_at[1]);
  ASSERT(kb_at[1] - kb_at[0] < 200);
  lua_close(L);
}

/* weft_free from a callback the runtime runs: a posted function or the
** on_error hook. It closed the state (weft_new) under the very Lua call
** running it, or left the driver reading a freed runtime: a crash. Now the
** free is done when the weft_run, weft_step or weft_shutdown that ran the
** callback returns (weft.h), and that call returns normally. */
static weft_runtime *self_freeing;
static int hooks_run;

static void free_in_post(lua_State *L, void *ud) {
  (void)L;
  (void)ud;
  hooks_run++;
  weft_free(self_freeing);
}

static void free_in_on_error(weft_runtime *rt, const char *msg, void *ud) {
  (void)msg;
  (void)ud;
  hooks_run++;
  weft_free(rt);
}

enum { VIA_RUN, VIA_STEP, VIA_SHUTDOWN };

static void free_from_callback(int attached, int on_error, int via) {
  weft_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (on_error) cfg.on_error = free_in_on_error;
  lua_State *L = NULL;
  uv_loop_t loop;
  weft_runtime *rt;
  if (attached) {
    L = luaL_newstate();
    luaL_openlibs(L);
    ASSERT_EQ(uv_loop_init(&loop), 0);
    rt = weft_attach(L, &loop, &cfg);
  } else {
    rt = weft_new(&cfg);
  }
  ASSERT(rt != NULL);
  self_freeing = rt;
  hooks_run = 0;
  if (on_error) {
    ASSERT_EQ(weft_spawn_string(rt, "error('boom')", "=fails"), 0);
    /* weft_run reports failures once no task is left; a step, at once. */
    if (via != VIA_RUN)
      ASSERT_EQ(weft_spawn_string(rt, "require('weft').sleep(30)", "=sleeps"),
                0);
  } else {
    ASSERT_EQ(weft_spawn_string(rt, "require('weft').sleep(30)", "=sleeps"), 0);
    ASSERT_EQ(weft_post(rt, free_in_post, NULL), 0);
  }
  /* None of these may wait the 30 s out: the free ends the driving. */
  uint64_t t0 = uv_hrtime();
  if (via == VIA_RUN) {
    weft_run(rt);
  } else if (via == VIA_STEP) {
    for (int i = 0; i < 50 && hooks_run == 0; i++)
      weft_step(rt, 1.0);
  } else {
    weft_shutdown(rt, 20000.0);
  }
  ASSERT(uv_hrtime() - t0 < 10000000000ull);
  ASSERT_EQ(hooks_run, 1);
  if (attached) {
    /* The host's state and loop live on, and hold nothing of weft's. */
    ASSERT_EQ(luaL_dostring(L, "x = 1 + 1"), 0);
    ASSERT_EQ(global_int(L, "x"), 2);
    ASSERT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    /* Attached again, a new runtime works. */
    rt = weft_attach(L, NULL, NULL);
    ASSERT(rt != NULL);
    ASSERT_EQ(
        weft_spawn_string(rt, "require('weft').sleep(0.001) y = 7", "=again"),
        0);
    ASSERT_EQ(weft_run(rt), 0);
    ASSERT_EQ(global_int(L, "y"), 7);
    weft_free(rt);
    lua_close(L);
  }
}

static void test_free_in_post_run(void) {
  free_from_callback(0, 0, VIA_RUN);
}
static void test_free_in_post_step(void) {
  free_from_callback(0, 0, VIA_STEP);
}
static void test_free_in_post_attached(void) {
  free_from_callback(1, 0, VIA_RUN);
}
static void test_free_in_post_attached_step(void) {
  free_from_callback(1, 0, VIA_STEP);
}
static void test_free_in_on_error_run(void) {
  free_from_callback(0, 1, VIA_RUN);
}
static void test_free_in_on_error_step(void) {
  free_from_callback(0, 1, VIA_STEP);
}
static void test_free_in_on_error_attached(void) {
  free_from_callback(1, 1, VIA_RUN);
}
static void test_free_in_on_error_attached_step(void) {
  free_from_callback(1, 1, VIA_STEP);
}
static void test_free_in_on_error_shutdown(void) {
  free_from_callback(0, 1, VIA_SHUTDOWN);
}

/* The same from the on_error hook of a weft.run that the host's Lua code
** calls: the runtime is freed as that weft.run returns, and the Lua code
** goes on, with the errors of a freed runtime. */
static void test_free_in_on_error_lua_run(void) {
  weft_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.on_error = free_in_on_error;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  weft_runtime *rt = weft_attach(L, NULL, &cfg);
  ASSERT(rt != NULL);
  hooks_run = 0;
  ASSERT_EQ(luaL_dostring(L, "local w = require 'weft'\n"
                             "ok, err = w.run(function()\n"
                             "  w.spawn { name = 'fails', fn = function() "
                             "error('boom') end }\n"
                             "end)\n"
                             "after = select(2, pcall(w.run, function() end))"),
            0);
  ASSERT_EQ(hooks_run, 1);
  lua_getglobal(L, "after");
  ASSERT_STR_CONTAINS(lua_tostring(L, -1), "runtime was freed");
  lua_pop(L, 1);
  /* Freed: a new runtime may be attached. */
  rt = weft_attach(L, NULL, NULL);
  ASSERT(rt != NULL);
  weft_free(rt);
  lua_close(L);
}

/* ---------------------------------------------------------------------
** The runner
** --------------------------------------------------------------------- */

int main(void) {
  static const struct test tests[] = {
      T(test_huge_sleep_does_not_spin),  T(test_reattach_does_not_leak),
      T(test_free_in_post_run),          T(test_free_in_post_step),
      T(test_free_in_post_attached),     T(test_free_in_post_attached_step),
      T(test_free_in_on_error_run),      T(test_free_in_on_error_step),
      T(test_free_in_on_error_attached), T(test_free_in_on_error_attached_step),
      T(test_free_in_on_error_shutdown), T(test_free_in_on_error_lua_run),
  };
  return run_forked(tests, sizeof tests / sizeof *tests);
}
