/*
** embed_test.c: the embedding API, one function per contract. Each test ends
** with the runtime freed, so ASan's leak check covers every path.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "weft.h"

/* Read global `name` as an integer. */
static long long global_int(weft_runtime *rt, const char *name) {
  lua_State *L = weft_lua(rt);
  lua_getglobal(L, name);
  long long v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static void test_run_script(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(
      weft_spawn_string(rt,
                        "local ch = weft.chan()\n"
                        "weft.go(function() for i = 1, 10 do ch:send(i) end "
                        "ch:close() end)\n"
                        "total = 0\n"
                        "for v in ch:iter() do total = total + v end\n",
                        "=test"),
      0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "total"), 55);
  weft_free(rt);
}

static void test_syntax_error(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "x = = 1", "=bad"), WEFT_ESCRIPT);
  ASSERT_STR_CONTAINS(weft_last_error(rt), "bad:1:");
  ASSERT_EQ(weft_spawn_file(rt, "/nonexistent/x.lua", 0, NULL), WEFT_ESCRIPT);
  ASSERT_STR_CONTAINS(weft_last_error(rt), "cannot open");
  weft_free(rt);
}

struct errors_seen {
  int n;
  char last[256];
};

static void on_error(weft_runtime *rt, const char *msg, void *ud) {
  struct errors_seen *e = ud;
  (void)rt;
  e->n++;
  snprintf(e->last, sizeof e->last, "%s", msg);
}

static void test_task_error_hook(void) {
  struct errors_seen seen = {0, ""};
  weft_config cfg = {0};
  cfg.on_error = on_error;
  cfg.ud = &seen;
  weft_runtime *rt = weft_new(&cfg);
  ASSERT(rt != NULL);
  ASSERT_EQ(
      weft_spawn_string(rt, "weft.go(function() error('boom') end)", "=t"), 0);
  ASSERT_EQ(weft_run(rt), WEFT_ETASK);
  ASSERT_EQ(seen.n, 1);
  ASSERT_STR_CONTAINS(seen.last, "boom");
  ASSERT_STR_CONTAINS(seen.last, "in task");
  /* The runtime is usable again after a failure. */
  ASSERT_EQ(weft_spawn_string(rt, "ok = 1", "=t2"), 0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "ok"), 1);
  weft_free(rt);
}

static void test_deadlock(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "weft.chan():recv()", "=dl"), 0);
  ASSERT_EQ(weft_run(rt), WEFT_EDEADLK);
  ASSERT_STR_CONTAINS(weft_last_error(rt), "deadlock");
  ASSERT_STR_CONTAINS(weft_last_error(rt), "recv on weft.chan");
  weft_free(rt);
}

static void test_step(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "n = 0\n"
                              "for i = 1, 3 do weft.sleep(0.01); n = n + 1 end",
                              "=step"),
            0);
  int frames = 0, rc;
  while ((rc = weft_step(rt, 1.0)) > 0) {
    frames++;
    uv_sleep(1);
  }
  ASSERT_EQ(rc, 0);
  ASSERT(frames >= 3); /* it slept three times; frames never block */
  ASSERT_EQ(global_int(rt, "n"), 3);
  weft_free(rt);
}

static void post_set(lua_State *L, void *ud) {
  lua_pushinteger(L, (lua_Integer)(size_t)ud);
  lua_setglobal(L, "posted");
}

static void test_post(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.05)", "=post"), 0);
  ASSERT_EQ(weft_post(rt, post_set, (void *)(size_t)7), 0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "posted"), 7);
  weft_free(rt);
}

static void test_interrupt(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "local ok, err = weft.sleep(100)\n"
                              "kind = err.kind\n"
                              "return ok, err",
                              "=intr"),
            0);
  ASSERT(weft_step(rt, 1.0) > 0);
  weft_interrupt(rt);
  ASSERT_EQ(weft_run(rt), WEFT_EINTR);
  lua_State *L = weft_lua(rt);
  lua_getglobal(L, "kind");
  ASSERT(strcmp(lua_tostring(L, -1), "canceled") == 0);
  lua_pop(L, 1);
  weft_free(rt);
}

static void post_now(lua_State *L, void *ud) {
  (void)ud;
  lua_getglobal(L, "weft");
  lua_getfield(L, -1, "now");
  lua_call(L, 0, 1);
  lua_setglobal(L, "posted_at");
  lua_pop(L, 1);
}

static void post_later(void *arg) {
  uv_sleep(20);
  weft_post(arg, post_now, NULL);
}

/* A post from another thread wakes a loop blocked in weft_run at once. */
static void test_post_from_thread(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.5)", "=post2"), 0);
  uv_thread_t th;
  ASSERT_EQ(uv_thread_create(&th, post_later, rt), 0);
  ASSERT_EQ(weft_run(rt), 0);
  uv_thread_join(&th);
  lua_State *L = weft_lua(rt);
  lua_getglobal(L, "posted_at");
  double at = lua_tonumber(L, -1);
  lua_pop(L, 1);
  ASSERT(at > 0.0 && at < 0.4);
  weft_free(rt);
}

/* Two runtimes on two threads at once, each running a script with tasks,
** channels and timers: no state is shared between them. */
struct job {
  int id;
  long long result;
  int rc;
};

static void run_job(void *arg) {
  struct job *j = arg;
  weft_runtime *rt = weft_new(NULL);
  if (rt == NULL) {
    j->rc = -1;
    return;
  }
  char code[512];
  snprintf(code, sizeof code,
           "local ch = weft.chan(4)\n"
           "local g = weft.go(function()\n"
           "  for i = 1, 20000 do ch:send(i * %d) end ch:close()\n"
           "end)\n"
           "weft.go(function() weft.sleep(0.02) end)\n"
           "result = 0\n"
           "for v in ch:iter() do result = result + v end\n",
           j->id);
  j->rc = weft_spawn_string(rt, code, "=job");
  if (j->rc == 0) j->rc = weft_run(rt);
  j->result = global_int(rt, "result");
  weft_free(rt);
}

static void test_two_threads(void) {
  struct job a = {1, 0, -1}, b = {2, 0, -1};
  uv_thread_t ta, tb;
  ASSERT_EQ(uv_thread_create(&ta, run_job, &a), 0);
  ASSERT_EQ(uv_thread_create(&tb, run_job, &b), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  ASSERT_EQ(a.rc, 0);
  ASSERT_EQ(b.rc, 0);
  ASSERT_EQ(a.result, 200010000LL);
  ASSERT_EQ(b.result, 400020000LL);
}

static void test_two_in_one_thread(void) {
  weft_runtime *x = weft_new(NULL), *y = weft_new(NULL);
  ASSERT(x != NULL && y != NULL);
  ASSERT_EQ(weft_spawn_string(x,
                              "n = 0; for i = 1, 5 do weft.sleep(0.005) "
                              "n = n + 1 end",
                              "=x"),
            0);
  ASSERT_EQ(weft_spawn_string(y,
                              "n = 0; for i = 1, 5 do weft.sleep(0.005) "
                              "n = n + 10 end",
                              "=y"),
            0);
  int lx = 1, ly = 1;
  while (lx > 0 || ly > 0) {
    if (lx > 0) lx = weft_step(x, 1.0);
    if (ly > 0) ly = weft_step(y, 1.0);
    uv_sleep(1);
  }
  ASSERT_EQ(lx, 0);
  ASSERT_EQ(ly, 0);
  ASSERT_EQ(global_int(x, "n"), 5);
  ASSERT_EQ(global_int(y, "n"), 50);
  weft_free(x);
  weft_free(y);
}

static void test_attach(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  weft_runtime *rt = weft_attach(L, &loop, NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "local w = require 'weft'\n"
                              "w.sleep(0.001); attached = 1",
                              "=a"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "attached"), 1);
  weft_free(rt);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  lua_close(L);
}

/* Code in a host's state that kept weft's functions and calls them after
** weft_free: a clear error, never freed memory (the runtime's struct is a
** tomb until the state closes; ASan checks it is not read after free and
** freed then). */
static void test_lua_after_free(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  weft_runtime *rt = weft_attach(L, &loop, NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "W = require 'weft'\n"
                              "W.sleep(0.001); ch = W.chan(1)",
                              "=keep"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  weft_free(rt);
  ASSERT_EQ(luaL_dostring(
                L,
                /* A field loaded on first use may fail as it loads. */
                "local function fails(f)\n"
                "  local ok, e = pcall(f)\n"
                "  return not ok and tostring(e)\n"
                "end\n"
                "step_err = fails(function() return W.step(1) end)\n"
                "run_err = fails(function() W.run(function() end) end)\n"
                "after_err = fails(function() return W.after(0.01) end)\n"
                "timeout_err = fails(function() return W.timeout() end)\n"
                "now_ok = type(W.now()) == 'number'\n"
                "sent = ch:try_send(1)\n"
                "start_err = fails(function() W.start(function() end) end)\n"),
            0);
  const char *names[] = {"step_err", "run_err", "timeout_err", "start_err"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    lua_getglobal(L, names[i]);
    ASSERT(lua_isstring(L, -1));
    ASSERT_STR_CONTAINS(lua_tostring(L, -1), "runtime was freed");
    lua_pop(L, 1);
  }
  lua_getglobal(L, "after_err");
  ASSERT(lua_isstring(L, -1));
  ASSERT_STR_CONTAINS(lua_tostring(L, -1), "cannot start a timer");
  lua_pop(L, 1);
  lua_getglobal(L, "now_ok");
  ASSERT(lua_toboolean(L, -1));
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  lua_close(L); /* frees the tomb */
}

static void test_errors(void) {
  ASSERT(strcmp(weft_err_name(WEFT_EDEADLK), "WEFT_EDEADLK") == 0);
  ASSERT(strcmp(weft_err_name(UV_ENOENT), "ENOENT") == 0);
  ASSERT_STR_CONTAINS(weft_strerror(WEFT_ETASK), "task failed");
  ASSERT(strcmp(weft_strerror(0), "success") == 0);
  ASSERT(strcmp(weft_strerror(UV_ENOENT), uv_strerror(UV_ENOENT)) == 0);
  ASSERT(strcmp(weft_err_name(WEFT_EINVAL), "WEFT_EINVAL") == 0);
}

/* gh-8: libuv's text for a code it does not know is allocated anew on each
** call, and never freed. weft's is one static string. */
static void test_errors_unknown_code(void) {
  const char *msg = weft_strerror(12345), *name = weft_err_name(12345);
  ASSERT(strcmp(msg, "unknown error") == 0);
  ASSERT(strcmp(name, "UNKNOWN") == 0);
  for (int i = 0; i < 2000; i++) {
    ASSERT(weft_strerror(12345 + i) == msg);
    ASSERT(weft_err_name(-12345 - i) == name);
  }
}

/* Read package.loaded[name] as a pointer, to tell module instances apart. */
static const void *loaded(lua_State *L, const char *name) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, name);
  const void *p = lua_topointer(L, -1);
  lua_pop(L, 3);
  return p;
}

/* gh-8: one runtime per state. A second attach would share the first's
** modules (each running the other's tasks); one after weft_free found the
** freed runtime's modules still loaded (heap-use-after-free). */
static void test_attach_once_per_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  weft_runtime *rt = weft_attach(L, NULL, NULL);
  ASSERT(rt != NULL);
  ASSERT(weft_attach(L, NULL, NULL) == NULL);
  ASSERT_EQ(weft_spawn_string(rt, "require('weft').sleep(0.001) n = 1", "=a"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  const void *sched = loaded(L, "weft.sched");
  ASSERT(sched != NULL);
  weft_free(rt);
  ASSERT(loaded(L, "weft.sched") == NULL);
  rt = weft_attach(L, NULL, NULL);
  ASSERT(rt != NULL);
  ASSERT(loaded(L, "weft.sched") != NULL);
  ASSERT(loaded(L, "weft.sched") != sched);
  ASSERT_EQ(weft_spawn_string(rt,
                              "local w = require 'weft'\n"
                              "local t0 = w.now(); w.sleep(0.001)\n"
                              "n = n + 1; fresh = t0 < 1 and 1 or 0",
                              "=b"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "n"), 2);
  ASSERT_EQ(global_int(rt, "fresh"), 1);
  weft_free(rt);
  lua_close(L);
}

/* gh-8: NULL where a runtime, a function or a chunk is due is an error
** code, never a crash. */
static void test_null_arguments(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, NULL, "=x"), WEFT_EINVAL);
  ASSERT_EQ(weft_spawn_string(NULL, "x = 1", "=x"), WEFT_EINVAL);
  ASSERT_EQ(weft_spawn_file(NULL, NULL, 0, NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_spawn_file(rt, "x.lua", 2, NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_spawn_file(rt, "x.lua", -1, NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_post(rt, NULL, NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_post(NULL, post_set, NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_run(NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_step(NULL, 1.0), WEFT_EINVAL);
  ASSERT(weft_attach(NULL, NULL, NULL) == NULL);
  ASSERT(weft_lua(NULL) == NULL);
  ASSERT(strcmp(weft_last_error(NULL), "") == 0);
  ASSERT_EQ(weft_has_pending_interrupt(NULL), 0);
  weft_interrupt(NULL);
  weft_request_dump(NULL);
  weft_free(NULL);
  /* A chunk with no name is named as lua_load names one. */
  ASSERT_EQ(weft_spawn_string(rt, "x = = 1", NULL), WEFT_ESCRIPT);
  ASSERT_STR_CONTAINS(weft_last_error(rt), "?:1:");
  ASSERT_EQ(weft_run(rt), 0);
  weft_free(rt);
}

/* gh-8: after a deadlock the stuck tasks are cancelled (and unwind) or
** dropped, so the next script is not reported as deadlocked too. What the
** unwinding fails with is not reported again. */
static void test_deadlock_then_next_script(void) {
  struct errors_seen seen = {0, ""};
  weft_config cfg = {0};
  cfg.on_error = on_error;
  cfg.ud = &seen;
  weft_runtime *rt = weft_new(&cfg);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "local ch = weft.chan()\n"
                              "weft.go(function()\n"
                              "  ch:recv(weft.background()) -- stays stuck\n"
                              "  zombie = 1\n"
                              "end)\n"
                              "local _, err = ch:recv()\n"
                              "unwound = err.kind\n"
                              "return nil, err",
                              "=dl"),
            0);
  ASSERT_EQ(weft_run(rt), WEFT_EDEADLK);
  ASSERT_STR_CONTAINS(weft_last_error(rt), "deadlock");
  ASSERT_EQ(seen.n, 0);
  lua_State *L = weft_lua(rt);
  lua_getglobal(L, "unwound");
  ASSERT(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "canceled") == 0);
  lua_pop(L, 1);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.001) ok = 1", "=next"), 0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "ok"), 1);
  ASSERT_EQ(global_int(rt, "zombie"), 0);
  ASSERT_EQ(seen.n, 0);
  weft_free(rt);
}

/* gh-8: an interrupt of a runtime with nothing running is not kept for the
** next script. */
static void test_interrupt_when_idle(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  weft_interrupt(rt);
  ASSERT_EQ(weft_spawn_string(rt, "ok = weft.sleep(0.001) and 1", "=idle"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "ok"), 1);
  /* Once more after a run: an interrupt between scripts. */
  weft_interrupt(rt);
  ASSERT_EQ(weft_spawn_string(rt, "ok = weft.sleep(0.001) and 2", "=idle2"),
            0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "ok"), 2);
  weft_free(rt);
}

/* weft_has_pending_interrupt tells whether the runtime has acted on an
** interrupt yet (the weft command's second Ctrl-C depends on it). */
static void test_pending_interrupt(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(100)", "=p"), 0);
  ASSERT(weft_step(rt, 1.0) > 0);
  ASSERT_EQ(weft_has_pending_interrupt(rt), 0);
  weft_interrupt(rt);
  ASSERT_EQ(weft_has_pending_interrupt(rt), 1);
  ASSERT_EQ(weft_run(rt), 0); /* the chunk ignores the failed sleep */
  ASSERT_EQ(weft_has_pending_interrupt(rt), 0);
  weft_free(rt);
}

/* gh-8: more script arguments than LuaJIT passes in one call failed (too
** many results to unpack, stack overflow, then a LuaJIT PANIC). */
static void test_many_script_args(void) {
  enum { N = 100000 };
  char path[] = "/tmp/weft_embed_XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  ASSERT(f != NULL);
  fputs("n = select('#', ...); total = #arg; last = tonumber(arg[#arg])\n"
        "first = tonumber((...))",
        f);
  fclose(f);
  char **argv = malloc(N * sizeof *argv);
  char *text = malloc(N * 8);
  ASSERT(argv != NULL && text != NULL);
  argv[0] = path;
  for (int i = 1; i < N; i++) {
    argv[i] = text + i * 8;
    snprintf(argv[i], 8, "%d", i);
  }
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_file(rt, path, N, argv), 0);
  ASSERT_EQ(weft_run(rt), 0);
  ASSERT_EQ(global_int(rt, "n"), WEFT_MAX_SCRIPT_ARGS);
  ASSERT_EQ(global_int(rt, "total"), N - 1);
  ASSERT_EQ(global_int(rt, "last"), N - 1);
  ASSERT_EQ(global_int(rt, "first"), 1);
  weft_free(rt);
  free(text);
  free(argv);
  remove(path);
}

/* gh-10: weft_free with jobs queued and running on the worker pool: the
** queued ones are dropped, the running ones (an interpreted loop that
** never looks at weft.worker.canceled) stopped by the hook, the threads
** joined and every state freed (ASan's leak check covers it). */
static void test_free_with_jobs(void) {
  weft_config cfg = {0};
  cfg.workers = 2;
  weft_runtime *rt = weft_new(&cfg);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "for i = 1, 20 do\n"
                              "  weft.go(function()\n"
                              "    weft.work(function()\n"
                              "      local function spin() while true do end "
                              "end\n"
                              "      jit.off(spin) spin()\n"
                              "    end)\n"
                              "  end)\n"
                              "end\n",
                              "=jobs"),
            0);
  for (int i = 0; i < 5; i++) ASSERT(weft_step(rt, 1.0) > 0);
  uint64_t t0 = uv_hrtime();
  weft_free(rt);
  /* Well within the grace period given to a job that ignores the hook. */
  ASSERT((uv_hrtime() - t0) < 1000000000ull);
}

/* Two runtimes on two threads, each with a pool of its own; one is freed
** (with a job running) while the other's jobs go on. */
struct pool_job {
  int spin; /* leave a job running at weft_free */
  long long result;
  int rc;
};

static void run_pool_job(void *arg) {
  struct pool_job *j = arg;
  weft_config cfg = {0};
  cfg.workers = 2;
  weft_runtime *rt = weft_new(&cfg);
  if (rt == NULL) {
    j->rc = -1;
    return;
  }
  j->rc = weft_spawn_string(
      rt,
      "result = 0\n"
      "local g = weft.group()\n"
      "for i = 1, 200 do\n"
      "  g:go(function()\n"
      "    local v = weft.work(function(x) return x * 2 end, i)\n"
      "    result = result + v\n"
      "  end)\n"
      "end\n"
      "g:wait()\n",
      "=pool");
  if (j->rc == 0) j->rc = weft_run(rt);
  j->result = global_int(rt, "result");
  if (j->spin && j->rc == 0) {
    j->rc = weft_spawn_string(rt,
                              "weft.work(function()\n"
                              "  local function spin() while true do end end\n"
                              "  jit.off(spin) spin()\n"
                              "end)",
                              "=spin");
    for (int i = 0; i < 3 && j->rc == 0; i++) weft_step(rt, 1.0);
  }
  weft_free(rt);
}

static void test_two_pools(void) {
  struct pool_job a = {1, 0, -1}, b = {0, 0, -1};
  uv_thread_t ta, tb;
  ASSERT_EQ(uv_thread_create(&ta, run_pool_job, &a), 0);
  ASSERT_EQ(uv_thread_create(&tb, run_pool_job, &b), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  ASSERT_EQ(a.rc, 0);
  ASSERT_EQ(b.rc, 0);
  ASSERT_EQ(a.result, 40200);
  ASSERT_EQ(b.result, 40200);
}

/* gh-12: weft_post from 4 threads x 10,000 posts, each callback handing
** its value to a task through ch:try_send: every one delivered exactly
** once, and in order per thread. */
struct poster {
  weft_runtime *rt;
  int id;
};

static void post_value(lua_State *L, void *ud) {
  long v = (long)(intptr_t)ud;
  lua_getglobal(L, "inbox");
  lua_getfield(L, -1, "try_send");
  lua_insert(L, -2);
  lua_pushnumber(L, (lua_Number)v);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) {
    lua_pushboolean(L, 1);
    lua_setglobal(L, "refused");
  }
  lua_pop(L, 1);
}

static void post_many(void *arg) {
  struct poster *p = arg;
  for (long i = 1; i <= 10000; i++)
    while (weft_post(p->rt, post_value,
                     (void *)(intptr_t)(p->id * 100000L + i)) != 0) {
    }
}

static void test_post_many_threads(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "inbox = weft.chan(40000)\n"
                              "local last = {0, 0, 0, 0}\n"
                              "bad = 0\n"
                              "for _ = 1, 40000 do\n"
                              "  local v = inbox:recv()\n"
                              "  local t, i = math.floor(v / 100000), v % 100000\n"
                              "  if i ~= last[t] + 1 then bad = bad + 1 end\n"
                              "  last[t] = i\n"
                              "end\n"
                              "total = last[1] + last[2] + last[3] + last[4]\n",
                              "=inbox"),
            0);
  /* The script's first step makes the channel before any post runs. */
  ASSERT(weft_step(rt, 1.0) > 0);
  struct poster ps[4];
  uv_thread_t th[4];
  for (int i = 0; i < 4; i++) {
    ps[i].rt = rt;
    ps[i].id = i + 1;
    ASSERT_EQ(uv_thread_create(&th[i], post_many, &ps[i]), 0);
  }
  int live;
  while ((live = weft_step(rt, 2.0)) > 0) {
  }
  for (int i = 0; i < 4; i++) uv_thread_join(&th[i]);
  ASSERT_EQ(live, 0);
  ASSERT_EQ(global_int(rt, "total"), 40000);
  ASSERT_EQ(global_int(rt, "bad"), 0);
  ASSERT_EQ(global_int(rt, "refused"), 0);
  weft_free(rt);
}

/* Step rt with a 2 ms budget, sleeping until it has something to do, until
** no task is left: each step's CPU time into cpu[] (at most cap). Returns
** how many steps it took, or -1 if tasks were left after cap steps. */
static int step_all(weft_runtime *rt, uint64_t *cpu, int cap) {
  int steps = 0, live;
  do {
    uint64_t t0 = cpu_ns();
    live = weft_step(rt, 2.0);
    cpu[steps++] = cpu_ns() - t0;
    int ms = weft_next_timeout(rt);
    if (ms > 0) uv_sleep((unsigned)ms);
  } while (live > 0 && steps < cap);
  return live == 0 ? steps : -1;
}

/* gh-12: a step holds its budget with 10,000 agents whose timers come due
** together (the review measured 43.7 ms for a 2 ms step before). */
static void test_step_budget(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "for i = 1, 10000 do weft.go(function()\n"
                              "  for _ = 1, 3 do weft.sleep(0.02) end\n"
                              "end) end\n",
                              "=agents"),
            0);
  enum { CAP = 100000 };
  uint64_t *cpu = calloc(CAP, sizeof *cpu);
  ASSERT(cpu != NULL);
  int steps = step_all(rt, cpu, CAP);
  ASSERT(steps > 0);
  uint64_t worst = 0;
  for (int i = 0; i < steps; i++)
    if (cpu[i] > worst) worst = cpu[i];
  free(cpu);
  /* CPU time (see cpu_ns), generous for ASan: 43.7 ms before the fix. */
  ASSERT(worst < 20000000u);
  weft_free(rt);
}

/* Sort helper for step times. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* gh-12: 100,000 agents (121 ms for a 2 ms step before the budget held).
** Their first resumes allocate their coroutines, so collection cycles come
** while they run, and a cycle's atomic phase (~10-45 ms at 100,000
** coroutines, LuaJIT's, not weft's) is one step that no budget can split:
** the bound is on the 99th percentile of the steps' CPU time, as the
** issue's target is, not on the worst. */
static void test_step_budget_100k(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "for i = 1, 100000 do weft.go(function()\n"
                              "  for _ = 1, 2 do weft.sleep(0.02 + i % 7 * 0.001)"
                              " end\n"
                              "end) end\n",
                              "=agents"),
            0);
  ASSERT(weft_step(rt, 2.0) > 0); /* the chunk spawns them */
  enum { CAP = 100000 };
  uint64_t *cpu = calloc(CAP, sizeof *cpu);
  ASSERT(cpu != NULL);
  int steps = step_all(rt, cpu, CAP);
  ASSERT(steps > 0);
  ASSERT(steps > 50); /* the budget split the work into many steps */
  qsort(cpu, (size_t)steps, sizeof *cpu, cmp_u64);
  /* Generous for ASan: Release measures p99 2.1-2.5 ms (bench/). */
  ASSERT(cpu[steps * 99 / 100] < 10000000u);
  free(cpu);
  weft_free(rt);
}

/* gh-12: a step stops close to its deadline when each resume is slow (a
** resume that pays the collector's debt takes ~10 us): the clock is read
** every 8 resumes, so 1 ms resumes end a 2 ms step within ~10 ms, where
** reading every 64 let it run ~64 ms. */
static void test_step_slow_resumes(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "for i = 1, 200 do weft.go(function()\n"
                              "  local t = os.clock() + 0.001\n"
                              "  while os.clock() < t do end\n"
                              "end) end\n",
                              "=slow"),
            0);
  ASSERT(weft_step(rt, 1.0) > 0); /* the chunk spawns them */
  uint64_t t0 = cpu_ns();
  ASSERT(weft_step(rt, 2.0) > 0);
  uint64_t dt = cpu_ns() - t0;
  /* CPU time, generous for ASan; 64 slow resumes take 64 ms. */
  ASSERT(dt < 40000000u);
  ASSERT_EQ(weft_shutdown(rt, 5000), 0);
  weft_free(rt);
}

/* gh-12: an idle step returns at once; next_timeout says when to step. */
static void test_step_idle_and_timeout(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_step(rt, 50.0), 0);
  ASSERT_EQ(weft_next_timeout(rt), -1);
  ASSERT(weft_backend_fd(rt) >= 0);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.2)", "=sleeper"), 0);
  ASSERT_EQ(weft_next_timeout(rt), 0); /* ready: it has not run yet */
  ASSERT(weft_step(rt, 1.0) > 0);
  int ms = weft_next_timeout(rt);
  ASSERT(ms > 100 && ms <= 200);
  ASSERT_EQ(weft_next_timeout(NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_backend_fd(NULL), WEFT_EINVAL);
  ASSERT_EQ(weft_shutdown(rt, 1000), 0);
  weft_free(rt);
}

/* gh-12: a failure reaches on_error in the step it happens in, though a
** task keeps the runtime alive. */
static int reported;
static void count_error(weft_runtime *rt, const char *msg, void *ud) {
  (void)rt;
  (void)ud;
  if (strstr(msg, "boom") != NULL) reported++;
}

static void test_failure_in_step(void) {
  weft_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.on_error = count_error;
  weft_runtime *rt = weft_new(&cfg);
  ASSERT(rt != NULL);
  reported = 0;
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(3600)", "=forever"), 0);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.01) error('boom')", "=f"), 0);
  int steps = 0;
  while (reported == 0 && steps++ < 1000) {
    ASSERT(weft_step(rt, 1.0) > 0);
    if (reported) break;
    int ms = weft_next_timeout(rt);
    if (ms > 0) uv_sleep(ms > 20 ? 20 : (unsigned)ms);
  }
  ASSERT_EQ(reported, 1);
  ASSERT_EQ(weft_shutdown(rt, 1000), 0);
  weft_free(rt);
}

/* gh-12: shutdown cancels every task; one that ignores it is still alive
** when the grace ends. */
static void test_shutdown(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt,
                              "weft.spawn{ctx = weft.background(), fn = "
                              "function() weft.sleep(3600) end}\n"
                              "weft.sleep(3600)",
                              "=two"),
            0);
  ASSERT(weft_step(rt, 1.0) > 0);
  uint64_t t0 = uv_hrtime();
  ASSERT_EQ(weft_shutdown(rt, 5000), 0);
  ASSERT(uv_hrtime() - t0 < 2000000000u);
  ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(3600, weft.background())",
                              "=shielded"),
            0);
  ASSERT(weft_step(rt, 1.0) > 0);
  ASSERT_EQ(weft_shutdown(rt, 100), 1);
  ASSERT_EQ(weft_shutdown(NULL, 1), WEFT_EINVAL);
  weft_free(rt);
}

/* How many descriptors this process has open. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL) return -1;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

/* The loop's sub-millisecond wake-up (a timerfd, runtime.c "Waking the
** loop") is closed with its runtime: runtimes made and freed, on their own
** loop or a host's, armed or not, leave no descriptor behind. */
static void make_and_free(void) {
  for (int i = 0; i < 20; i++) {
    weft_runtime *rt = weft_new(NULL);
    ASSERT(rt != NULL);
    /* Armed at the end: a sleeper is left when it is freed. */
    ASSERT_EQ(weft_spawn_string(rt, "weft.sleep(0.0001) weft.sleep(60)",
                                "=sleeper"),
              0);
    for (int k = 0; k < 5; k++) weft_step(rt, 1.0), uv_sleep(1);
    weft_free(rt);
  }
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  weft_runtime *rt = weft_attach(L, &loop, NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(weft_spawn_string(rt, "require('weft').sleep(0.0001)", "=a"), 0);
  ASSERT_EQ(weft_run(rt), 0);
  weft_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT); /* the close callbacks; nothing keeps it */
  ASSERT_EQ(uv_loop_close(&loop), 0);
  lua_close(L);
}

static void test_free_closes_timerfd(void) {
  make_and_free(); /* what libuv opens once per process (signal pipes) */
  int before = count_fds();
  make_and_free();
  ASSERT_EQ(count_fds(), before);
}

/* Step rt until global `name` is set (at most ~2 s); 1 if it was. */
static int step_until(weft_runtime *rt, const char *name) {
  for (int i = 0; i < 2000; i++) {
    lua_State *L = weft_lua(rt);
    lua_getglobal(L, name);
    int set = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (set) return 1;
    weft_step(rt, 1.0);
    uv_sleep(1);
  }
  return 0;
}

/* gh-11: weft_free with children running, one of them ignoring SIGTERM:
** each is ended and reaped before weft_free returns, leaving neither a
** zombie in the host nor an orphan that outlives it. */
static void test_free_with_children(void) {
  weft_runtime *rt = weft_new(NULL);
  ASSERT(rt != NULL);
  ASSERT_EQ(
      weft_spawn_string(rt,
                        "local P = weft.process\n"
                        "local a = assert(P.spawn{'sleep', args={'30'}})\n"
                        "local b = assert(P.spawn{'sh', args={'-c', "
                        "'trap \"\" TERM; echo ready; exec sleep 30'}, "
                        "stdout='pipe'})\n"
                        "assert(b.stdout:read_line() == 'ready')\n"
                        "pa, pb = a:pid(), b:pid()\n"
                        "weft.chan():recv()\n",
                        "=children"),
      0);
  ASSERT(step_until(rt, "pb"));
  pid_t pa = (pid_t)global_int(rt, "pa"), pb = (pid_t)global_int(rt, "pb");
  uint64_t t0 = uv_hrtime();
  weft_free(rt);
  ASSERT((uv_hrtime() - t0) < 2000000000ull);
  /* Reaped: not even a zombie is left to signal. */
  ASSERT_EQ(kill(pa, 0) == -1 && errno == ESRCH, 1);
  ASSERT_EQ(kill(pb, 0) == -1 && errno == ESRCH, 1);
}

/* gh-11: weft_free with I/O in flight (an open and a read on the fs pool,
** a pending connect, a server in accept, a conn reading): nothing is
** delivered to the closed state (ASan), and no descriptor is left open,
** not even one whose open completed while the loop was closing. */
static void test_free_with_io(void) {
  int before = count_fds();
  for (int round = 0; round < 20; round++) {
    weft_runtime *rt = weft_new(NULL);
    ASSERT(rt != NULL);
    ASSERT_EQ(weft_spawn_string(
                  rt,
                  "local srv = assert(weft.tcp.listen('127.0.0.1', 0))\n"
                  "weft.go(function() srv:accept() end)\n"
                  "weft.go(function()\n"
                  "  local c = weft.tcp.connect('127.0.0.1', srv:port())\n"
                  "  if c then c:read() end\n"
                  "end)\n"
                  "for i = 1, 8 do\n"
                  "  weft.go(function() weft.fs.open('/proc/self/stat') end)\n"
                  "end\n"
                  "weft.go(function()\n"
                  "  local f = weft.fs.open('/proc/self/stat')\n"
                  "  if f then f:read(100) end\n"
                  "end)\n"
                  "weft.chan():recv()\n",
                  "=inflight"),
              0);
    for (int i = 0; i < round % 4; i++)
      weft_step(rt, 1.0);
    weft_free(rt);
  }
  ASSERT_EQ(count_fds(), before);
}

int main(void) {
  test_run_script();
  test_syntax_error();
  test_task_error_hook();
  test_deadlock();
  test_step();
  test_post();
  test_post_from_thread();
  test_interrupt();
  test_two_threads();
  test_two_in_one_thread();
  test_attach();
  test_lua_after_free();
  test_errors();
  test_errors_unknown_code();
  test_attach_once_per_state();
  test_null_arguments();
  test_deadlock_then_next_script();
  test_interrupt_when_idle();
  test_pending_interrupt();
  test_many_script_args();
  test_free_with_jobs();
  test_two_pools();
  test_post_many_threads();
  test_step_budget();
  test_step_budget_100k();
  test_step_slow_resumes();
  test_free_closes_timerfd();
  test_step_idle_and_timeout();
  test_failure_in_step();
  test_shutdown();
  test_free_with_children();
  test_free_with_io();
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  puts("embed: all tests passed");
  return 0;
}
