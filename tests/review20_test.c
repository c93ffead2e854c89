/*
** review20_test.c: regressions found by the hostile review of the
** embedding API (review 20): a stepping host that slept for ever while
** work waited, the message on_error got from a failing post, and a
** runtime attached to a coroutine. Each test runs in a child process of
** its own (forked.h), so that a crash is reported by name.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forked.h"
#include "weft.h"

static long long global_int(lua_State *L, const char *name) {
  lua_getglobal(L, name);
  long long v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A host's loop as weft.h describes it: step, then sleep on the backend
** descriptor for weft_next_timeout's milliseconds (-1: until it is
** readable). Until global `done` is set, at most `steps` steps; 0 if a
** sleep with no timeout found nothing in 2 s (the host would have slept
** for ever), else 1. */
static int host_until_done(weft_runtime *rt, int steps) {
  for (int i = 0; i < steps; i++) {
    weft_step(rt, 10);
    if (global_int(weft_lua(rt), "done")) return 1;
    int ms = weft_next_timeout(rt);
    struct pollfd p = {weft_backend_fd(rt), POLLIN, 0};
    int n = poll(&p, 1, ms < 0 ? 2000 : ms);
    if (ms < 0 && n == 0) return 0;
  }
  return 1;
}

/* The script's tasks: `what` in a task that sets `done`, a task that keeps
** the CPU 50 ms (past the step's budget: the wait ends meanwhile), and an
** agent that lives on, as a game's do. */
static weft_runtime *start(const char *what, int workers) {
  weft_config cfg = {0};
  cfg.workers = workers;
  weft_runtime *rt = weft_new(&cfg);
  if (rt == NULL) return NULL;
  char chunk[512];
  snprintf(chunk, sizeof chunk,
           "weft.go(function() %s done = 1 end)\n"
           "weft.go(function() local t = os.clock()\n"
           "  while os.clock() - t < 0.05 do end end)\n"
           "weft.chan():recv()\n",
           what);
  if (weft_spawn_string(rt, chunk, "=host") != 0) {
    weft_free(rt);
    return NULL;
  }
  return rt;
}

/* A job that finished while a task kept the CPU: the step's last turn of
** the loop consumed the wake-up, the step returned with nothing counted
** ready, weft_next_timeout said -1, and the result waited for ever. */
static void test_job_result_wakes_host(void) {
  weft_runtime *rt = start("assert(weft.work(function() return 42 end) == 42)", 1);
  ASSERT(rt != NULL);
  ASSERT(host_until_done(rt, 100));
  ASSERT_EQ(global_int(weft_lua(rt), "done"), 1);
  weft_free(rt);
}

/* The same with a file read, which completes on libuv's pool. */
static void test_read_result_wakes_host(void) {
  weft_runtime *rt = start("assert(weft.fs.read_file('/proc/self/stat'))", 0);
  ASSERT(rt != NULL);
  ASSERT(host_until_done(rt, 100));
  weft_free(rt);
}

/* weft.go from the host's own Lua (a key press) between steps: the task is
** ready, but weft_next_timeout and weft_is_stuck read the count the last
** tick made: -1, and stuck. */
static void test_go_from_host_callback(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "weft.chan():recv()", "=agent"), 0);
  weft_step(rt, 1);
  ASSERT_EQ(weft_next_timeout(rt), -1);
  ASSERT_EQ(luaL_dostring(weft_lua(rt), "weft.go(function() done = 1 end)"),
            0);
  ASSERT_EQ(weft_next_timeout(rt), 0);
  ASSERT_EQ(weft_is_stuck(rt), 0);
  ASSERT(host_until_done(rt, 10));
  weft_free(rt);
}

/* ch:try_send from the host wakes a task waiting in recv. */
static void test_try_send_from_host_callback(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "ch = weft.chan()\n"
                              "weft.go(function() done = ch:recv() end)\n"
                              "weft.chan():recv()",
                              "=agent"),
            0);
  weft_step(rt, 1);
  ASSERT_EQ(weft_next_timeout(rt), -1);
  ASSERT_EQ(luaL_dostring(weft_lua(rt), "assert(ch:try_send(7))"), 0);
  ASSERT_EQ(weft_next_timeout(rt), 0);
  ASSERT(host_until_done(rt, 10));
  ASSERT_EQ(global_int(weft_lua(rt), "done"), 7);
  weft_free(rt);
}

/* on_error got rt->last_error itself for a failing post: a weft call in
** the hook that failed replaced (freed) it under the hook. */
static char seen[256];
static void hook_fails_again(weft_runtime *rt, const char *msg, void *ud) {
  (void)ud;
  if (strstr(msg, "posted") == NULL) return; /* the script's own failure */
  weft_spawn_string(rt, "x = = 1", "=again"); /* WEFT_ESCRIPT: sets it */
  snprintf(seen, sizeof seen, "%s", msg);
}
static void failing_post(lua_State *L, void *ud) {
  (void)ud;
  luaL_error(L, "a posted callback failed");
}
static void test_on_error_message_survives_hook(void) {
  weft_config cfg = {0};
  cfg.on_error = hook_fails_again;
  weft_runtime *rt = weft_new(&cfg);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.01)", "=m"), 0);
  ASSERT_EQ(weft_post(rt, failing_post, NULL), 0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_STR_CONTAINS(seen, "a posted callback failed");
  weft_free(rt);
}

/* A runtime attached to a coroutine kept it unanchored: collected, and the
** next call into the runtime crashed. */
static void test_attach_to_coroutine(void) {
  lua_State *L = luaL_newstate();
  ASSERT(L != NULL);
  luaL_openlibs(L);
  lua_State *co = lua_newthread(L);
  weft_runtime *rt = weft_attach(co, NULL, NULL);
  ASSERT(rt != NULL);
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
  ASSERT_EQ(weft_spawn_string(rt,
                              "local weft = require 'weft'\n"
                              "weft.sleep(0.01) done = 1",
                              "=co"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(L, "done"), 1);
  weft_free(rt);
  lua_close(L);
}

int main(void) {
  static const struct test tests[] = {
      T(test_job_result_wakes_host),
      T(test_read_result_wakes_host),
      T(test_go_from_host_callback),
      T(test_try_send_from_host_callback),
      T(test_on_error_message_survives_hook),
      T(test_attach_to_coroutine),
  };
  return run_forked(tests, sizeof tests / sizeof *tests);
}
