/*
** pool.c: the runtime's worker threads, for CPU work (weft.work).
**
** Each runtime owns its pool (libuv's uv_queue_work pool is process-wide,
** shared with every other library in the process). Threads start on first
** use, up to the pool's size, and are joined when the runtime is freed.
** Each thread has a LuaJIT state of its own with the standard libraries and
** the main state's package.path and package.cpath; a job arrives there as
** bytes (copy.c), runs, and its results go back as bytes.
**
** The loop thread and the workers share the queue of jobs waiting, each
** worker's running job and the list of jobs done, under one mutex. A worker
** that finishes a job puts it on the done list, sets WEFT__EV_WORK and wakes
** the loop through the runtime's async handle; the scheduler then takes the
** results (lpool_take) and wakes the waiting task. While jobs are in flight
** the async handle keeps the loop alive, so a task waiting on the pool is
** never taken for a deadlock.
**
** Cancellation: a job still queued is dropped at once; a running one has
** its cancel flag set, which weft.worker.canceled() reads and a count hook
** checks every HOOK_COUNT instructions, raising in the job; either way its
** result is discarded and the caller has already returned. NOTE: LuaJIT
** runs no hooks in compiled code, so a job stuck in a compiled loop that
** never returns to the interpreter cannot be stopped: its thread stays busy
** until the job ends, and a replacement thread is started in its place.
** When the runtime is freed, such a thread is given a grace period, then
** left behind (detached, its state not freed) rather than waited for.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HOOK_COUNT 1000
/* How long a worker that finished a job, or a loop waiting for one, spins
** before it sleeps: a thread woken from sleep takes ~20 us here, which
** dominates a short job's round trip. */
#define SPIN_NS 50000u
#define GRACE_NS 2000000000ull /* how long weft_free waits for a job */

struct weft__job {
  struct weft__job *next;
  struct weft__buf in;  /* the function or module and name, then args */
  struct weft__buf out; /* results, or message and traceback */
  int module;           /* work_module: in starts with two names */
  int ok;               /* out holds results (1) or an error (0) */
  int discard;          /* cancelled while running: the worker frees it */
  atomic_int cancel;
};

struct weft__worker {
  struct weft__pool *pool;
  uv_thread_t tid;
  struct weft__job *job; /* running, or NULL */
  int exited;
  int lost;    /* its job ignored cancellation */
  int pathgen; /* the pool's pathgen its state has */
};

struct weft__pool {
  weft_runtime *rt;
  uv_mutex_t mu;
  uv_cond_t work_cv;               /* a job was queued, or the pool stops */
  uv_cond_t exit_cv;               /* a worker exited */
  struct weft__job *qhead, *qtail; /* queued */
  atomic_int nqueued;              /* how many, readable without the lock */
  struct weft__job *dhead, *dtail; /* done, for the loop to take */
  struct weft__worker **workers;   /* started, including lost ones */
  int nworkers, cap;
  int size;  /* how many may run jobs at once */
  int idle;  /* workers waiting for a job */
  int nlost; /* workers running a job that was cancelled and goes on */
  int nbusy; /* workers running a job that is not lost: at most size */
  int stopping;
  int inflight;       /* loop thread only: jobs submitted, not yet taken */
  char *path, *cpath; /* the main state's, as of the last submit */
  int pathgen;        /* bumped when they change */
};

static void job_free(struct weft__job *j) {
  if (j == NULL) return;
  weft__buf_free(&j->in);
  weft__buf_free(&j->out);
  free(j);
}

/*{======================================================================
** Workers
**=======================================================================*/

static const char worker_key = 0; /* registry: the worker of a state */

static struct weft__worker *worker_of(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&worker_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  struct weft__worker *w = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return w;
}

/* The job's cancel flag, read by the worker running it. The flag is set
** by the loop thread under the mutex; reading it needs no lock. */
static int is_canceled(struct weft__worker *w) {
  return w->job != NULL && atomic_load(&w->job->cancel);
}

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (is_canceled(worker_of(L)))
    luaL_error(L, "weft.work: the job was canceled");
}

/* weft.worker.canceled() -> true once the running job is cancelled. */
static int lworker_canceled(lua_State *L) {
  lua_pushboolean(L, is_canceled(worker_of(L)));
  return 1;
}

/* In a worker, `weft` offers only weft.worker: the task API lives on the
** main thread, and a call to it says so. */
static const char worker_setup[] =
    "local worker, path, cpath, version = ...\n"
    "package.path, package.cpath = path, cpath\n"
    "local wweft = setmetatable({ worker = worker, _VERSION = version }, {\n"
    "  __index = function(_, k)\n"
    "    return function()\n"
    "      error('weft.' .. tostring(k) .. ': not available on a worker '\n"
    "        .. 'thread (the task API lives on the main thread; a job '\n"
    "        .. 'returns its results instead)', 2)\n"
    "    end\n"
    "  end })\n"
    "package.loaded.weft, package.loaded['weft.worker'] = wweft, worker\n"
    "weft = wweft\n";

static lua_State *worker_state(struct weft__worker *w, const char *path,
                               const char *cpath) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  luaL_openlibs(L);
  lua_pushlightuserdata(L, (void *)&worker_key);
  lua_pushlightuserdata(L, w);
  lua_rawset(L, LUA_REGISTRYINDEX);
  if (luaL_loadbuffer(L, worker_setup, sizeof worker_setup - 1,
                      "=weft.worker") != 0)
    goto fail;
  lua_newtable(L);
  lua_pushcfunction(L, lworker_canceled);
  lua_setfield(L, -2, "canceled");
  lua_pushstring(L, path);
  lua_pushstring(L, cpath);
  lua_pushliteral(L, WEFT_VERSION_STRING);
  if (lua_pcall(L, 4, 0, 0) != 0) goto fail;
  return L;
fail:
  lua_close(L);
  return NULL;
}

/* tostring_meta(v) -> v's __tostring result, or nothing. */
static int tostring_meta(lua_State *L) {
  return luaL_callmeta(L, 1, "__tostring") ? 1 : 0;
}

/* The error handler of a job: {message, traceback}. A __tostring that
** fails is called protected: raising in the handler itself left the
** caller "error in error handling", and the job's error was lost. The
** message says what a task's failure says then. */
static int on_error(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    lua_pushcfunction(L, tostring_meta);
    lua_pushvalue(L, 1);
    int rc = lua_pcall(L, 1, 1, 0);
    if (rc == 0 && lua_isstring(L, -1))
      msg = lua_tostring(L, -1);
    else if (rc != 0)
      msg = lua_pushfstring(L, "error object whose __tostring failed: %s",
                            lua_isstring(L, -1) ? lua_tostring(L, -1)
                                                : "(not a string)");
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  lua_createtable(L, 2, 0);
  lua_pushstring(L, msg);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, NULL, 1);
  lua_rawseti(L, -2, 2);
  return 1;
}

/* job_call(job) -> the job's results: decode the job, find its function
** (decoded, or require(mod)[func]) and call it. Run under lua_pcall, as
** all of it may raise: a module's top level, its __index, a C function
** of a module looked up while decoding. An error outside a pcall would
** panic the worker's state and abort the whole process. */
static int job_call(lua_State *L) {
  struct weft__job *j = lua_touserdata(L, 1);
  lua_settop(L, 0);
  int n = weft__copy_decode(L, j->in.p, j->in.n);
  if (n < 0) return lua_error(L); /* the message is pushed */
  if (n < 1 || (j->module && n < 2))
    return luaL_error(L, "weft.work: corrupt job");
  if (j->module) {
    /* args..., module name, function name (last, so that the paths in
    ** refusals number the arguments from 1): require(mod)[func]. */
    const char *mod = lua_tostring(L, n - 1), *func = lua_tostring(L, n);
    lua_getglobal(L, "require");
    lua_pushvalue(L, n - 1);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1))
      return luaL_error(L, "module '%s' is not a table", mod);
    lua_getfield(L, -1, func);
    if (!lua_isfunction(L, -1))
      return luaL_error(L, "module '%s' has no function '%s'", mod, func);
    lua_insert(L, 1);
    n -= 2;
    lua_settop(L, n + 1);
  } else {
    n--;
  }
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* Write an error (message, traceback) as the job's outcome. The message
** and traceback are strings (on_error, or lua_pcall's own for an error in
** the handler), so copying them fails only for want of memory. */
static void job_fail(lua_State *L, struct weft__job *j, int err_idx) {
  char err[256];
  j->ok = 0;
  weft__buf_free(&j->out);
  if (err_idx < 0) err_idx = lua_gettop(L) + err_idx + 1;
  if (lua_istable(L, err_idx)) {
    lua_rawgeti(L, err_idx, 1);
    lua_rawgeti(L, err_idx, 2);
  } else {
    lua_pushvalue(L, err_idx);
    lua_pushnil(L);
  }
  if (weft__copy_encode(L, -2, 2, &j->out, "error", NULL, err, sizeof err) != 0)
    weft__buf_free(&j->out);
}

static void job_run(lua_State *L, struct weft__job *j) {
  char err[256];
  lua_settop(L, 0);
  lua_pushcfunction(L, on_error);
  lua_pushcfunction(L, job_call);
  lua_pushlightuserdata(L, j);
  /* The hook covers a module's top level too: it may loop as well. */
  lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);
  int rc = lua_pcall(L, 1, LUA_MULTRET, 1);
  lua_sethook(L, NULL, 0, 0);
  if (rc != 0) {
    job_fail(L, j, -1);
    goto done;
  }
  j->ok = 1;
  if (weft__copy_encode(L, 2, lua_gettop(L) - 1, &j->out, "results", NULL, err,
                        sizeof err) != 0) {
    /* Drop the results first: with thousands of them the stack has no
    ** room left for the message (job_fail then failed as well, and the
    ** caller read "out of memory"). */
    lua_settop(L, 1);
    lua_pushfstring(L, "weft.work: %s", err);
    job_fail(L, j, -1);
  }
done:
  lua_settop(L, 0);
}

/* Tell the loop that jobs are done. Called with the mutex held. */
static void post_done(struct weft__pool *p) {
  atomic_fetch_or(&p->rt->events, WEFT__EV_WORK);
  uv_async_send(&p->rt->async);
}

/* package.path and cpath as the main state's are now (see submit). */
static void set_paths(lua_State *L, const char *path, const char *cpath) {
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, cpath);
    lua_setfield(L, -2, "cpath");
  }
  lua_pop(L, 1);
}

static void worker_main(void *arg) {
  struct weft__worker *w = arg;
  struct weft__pool *p = w->pool;
  uv_mutex_lock(&p->mu);
  char *path = strdup(p->path), *cpath = strdup(p->cpath);
  w->pathgen = p->pathgen;
  uv_mutex_unlock(&p->mu);
  lua_State *L = path && cpath ? worker_state(w, path, cpath) : NULL;
  free(path);
  free(cpath);
  uv_mutex_lock(&p->mu);
  for (;;) {
    if (!p->stopping && p->qhead == NULL) {
      uv_mutex_unlock(&p->mu);
      uint64_t end = uv_hrtime() + SPIN_NS;
      while (atomic_load(&p->nqueued) == 0 && uv_hrtime() < end) {
      }
      uv_mutex_lock(&p->mu);
    }
    /* A thread started to stand in for a lost one is still there once
    ** that one's job ended: without the nbusy gate, more than size jobs
    ** ran at once from then on (--workers 1 ran two). */
    while (!p->stopping && (p->qhead == NULL || p->nbusy >= p->size)) {
      p->idle++;
      uv_cond_wait(&p->work_cv, &p->mu);
      p->idle--;
    }
    if (p->stopping) break;
    struct weft__job *j = p->qhead;
    p->qhead = j->next;
    if (p->qhead == NULL) p->qtail = NULL;
    atomic_fetch_sub(&p->nqueued, 1);
    j->next = NULL;
    w->job = j;
    p->nbusy++;
    path = cpath = NULL;
    if (w->pathgen != p->pathgen) {
      path = strdup(p->path);
      cpath = strdup(p->cpath);
      w->pathgen = p->pathgen;
    }
    uv_mutex_unlock(&p->mu);
    if (L != NULL && path != NULL && cpath != NULL) set_paths(L, path, cpath);
    free(path);
    free(cpath);
    if (L != NULL) {
      job_run(L, j);
    } else {
      j->ok = 0;
      j->out.n = 0; /* no state: the loop reports it */
    }
    uv_mutex_lock(&p->mu);
    w->job = NULL;
    if (w->lost)
      p->nlost--;
    else
      p->nbusy--;
    w->lost = 0;
    if (j->discard) {
      job_free(j);
    } else {
      if (p->dtail)
        p->dtail->next = j;
      else
        p->dhead = j;
      p->dtail = j;
      post_done(p);
    }
  }
  uv_mutex_unlock(&p->mu);
  if (L != NULL) lua_close(L);
  uv_mutex_lock(&p->mu);
  w->exited = 1;
  uv_cond_broadcast(&p->exit_cv);
  uv_mutex_unlock(&p->mu);
}

/* Start a worker if the job about to be queued would find none free, and
** the pool may grow (a lost worker does not count, see lpool_cancel). Every
** live worker not running a job takes one: an idle one once signalled, a
** spinning or starting one by itself. Counting only the idle ones missed
** that a worker signalled but not yet awake still counts as idle and takes
** one job, not all: jobs queued at once all went to the one idle worker,
** one after the other (the 16-job benchmark's speed-up was 1.0 in most
** runs). Called with the mutex held. Returns 0, or -1 when no thread could
** be started (the job waits for a busy worker, or fails if there is none). */
static int maybe_grow(struct weft__pool *p) {
  int live = p->nworkers - p->nlost;
  if (live >= p->size || atomic_load(&p->nqueued) < live - p->nbusy) return 0;
  if (p->nworkers == p->cap) {
    int cap = p->cap ? p->cap * 2 : 4;
    struct weft__worker **ws = realloc(p->workers, (size_t)cap * sizeof *ws);
    if (ws == NULL) return -1;
    p->workers = ws;
    p->cap = cap;
  }
  struct weft__worker *w = calloc(1, sizeof *w);
  if (w == NULL) return -1;
  w->pool = p;
  if (uv_thread_create(&w->tid, worker_main, w) != 0) {
    free(w);
    return -1;
  }
  p->workers[p->nworkers++] = w;
  return 0;
}
/*}======================================================================*/

/*{======================================================================
** The pool
**=======================================================================*/

static int pool_size(const weft_runtime *rt) {
  if (rt->cfg.workers > 0) return rt->cfg.workers;
  const char *env = getenv("WEFT_WORKERS");
  if (env != NULL && atoi(env) > 0) return atoi(env);
  unsigned n = uv_available_parallelism();
  return n > 0 ? (int)n : 1;
}

/* A copy of package[name] (path or cpath: the workers search as the main
** state does), or "" if there is none. Raw reads of the package library
** itself, not the global `package`, which a program may have removed or
** replaced: this must not raise once pool_get has allocated. */
static char *field_copy(lua_State *L, const char *name) {
  const char *s = NULL;
  int top = lua_gettop(L);
  lua_pushliteral(L, "_LOADED");
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1)) {
    lua_pushliteral(L, "package");
    lua_rawget(L, -2);
    if (lua_istable(L, -1)) {
      lua_pushstring(L, name);
      lua_rawget(L, -2);
      if (lua_type(L, -1) == LUA_TSTRING) s = lua_tostring(L, -1);
    }
  }
  char *c = strdup(s ? s : "");
  lua_settop(L, top);
  return c;
}

static struct weft__pool *pool_get(lua_State *L, weft_runtime *rt) {
  if (rt->pool != NULL) return rt->pool;
  struct weft__pool *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->rt = rt;
  p->size = pool_size(rt);
  p->path = field_copy(L, "path");
  p->cpath = field_copy(L, "cpath");
  if (p->path == NULL || p->cpath == NULL) goto fail;
  if (uv_mutex_init(&p->mu) != 0) goto fail;
  if (uv_cond_init(&p->work_cv) != 0) goto fail_mu;
  if (uv_cond_init(&p->exit_cv) != 0) goto fail_cv;
  rt->pool = p;
  return p;
fail_cv:
  uv_cond_destroy(&p->work_cv);
fail_mu:
  uv_mutex_destroy(&p->mu);
fail:
  free(p->path);
  free(p->cpath);
  free(p);
  return NULL;
}

/* All workers gone, or the grace period over: 1 if every one exited. */
static int wait_exits(struct weft__pool *p) {
  uint64_t end = uv_hrtime() + GRACE_NS;
  for (;;) {
    int all = 1;
    for (int i = 0; i < p->nworkers; i++)
      if (!p->workers[i]->exited) all = 0;
    if (all) return 1;
    uint64_t now = uv_hrtime();
    if (now >= end) return 0;
    uv_cond_timedwait(&p->exit_cv, &p->mu, end - now);
  }
}

void weft__pool_free(weft_runtime *rt) {
  struct weft__pool *p = rt->pool;
  if (p == NULL) return;
  rt->pool = NULL;
  uv_mutex_lock(&p->mu);
  p->stopping = 1;
  for (struct weft__job *j = p->qhead, *next; j != NULL; j = next) {
    next = j->next;
    job_free(j);
  }
  p->qhead = p->qtail = NULL;
  atomic_store(&p->nqueued, 0);
  for (int i = 0; i < p->nworkers; i++) {
    struct weft__job *j = p->workers[i]->job;
    if (j != NULL) {
      j->discard = 1;
      atomic_store(&j->cancel, 1);
    }
  }
  uv_cond_broadcast(&p->work_cv);
  int all = wait_exits(p);
  uv_mutex_unlock(&p->mu);
  if (!all) {
    /* NOTE: a job that ignores cancellation (a compiled loop, see the top
    ** of this file) keeps its thread; the pool stays allocated for it,
    ** since it still takes the mutex when its job ends. */
    fprintf(stderr, "weft: a job on the worker pool ignored cancellation;"
                    " its thread is left running\n");
    for (int i = 0; i < p->nworkers; i++)
      if (!p->workers[i]->exited) pthread_detach(p->workers[i]->tid);
    return;
  }
  for (int i = 0; i < p->nworkers; i++) {
    uv_thread_join(&p->workers[i]->tid);
    free(p->workers[i]);
  }
  for (struct weft__job *j = p->dhead, *next; j != NULL; j = next) {
    next = j->next;
    job_free(j);
  }
  free(p->workers);
  uv_cond_destroy(&p->exit_cv);
  uv_cond_destroy(&p->work_cv);
  uv_mutex_destroy(&p->mu);
  free(p->path);
  free(p->cpath);
  free(p);
}

/* Wait a little for a job to finish before the loop sleeps (see SPIN_NS).
** 1 if events came in meanwhile. Loop thread only. */
int weft__pool_spin(weft_runtime *rt) {
  struct weft__pool *p = rt->pool;
  if (p == NULL || p->inflight == 0) return 0;
  uint64_t end = uv_hrtime() + SPIN_NS;
  while (uv_hrtime() < end)
    if (atomic_load(&rt->events) != 0) return 1;
  return 0;
}

/* In flight: keep the loop alive (the runtime's async handle is otherwise
** unreferenced, for the deadlock check). Loop thread only. */
static void inflight_add(struct weft__pool *p, int d) {
  int before = p->inflight;
  p->inflight += d;
  if (before == 0 && p->inflight > 0) uv_ref((uv_handle_t *)&p->rt->async);
  if (before > 0 && p->inflight == 0) uv_unref((uv_handle_t *)&p->rt->async);
}
/*}======================================================================*/

/*{======================================================================
** Lua binding: weft.pool, used by lua/weft/work.lua
**=======================================================================*/

static weft_runtime *rt_of(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&weft__rt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  weft_runtime *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (rt == NULL) luaL_error(L, "weft.work: no runtime in this state");
  return rt;
}

/* Take the main state's package.path and cpath for the jobs to come, if
** they changed since the last submit: a program that sets package.path
** after its first job (or a spec, after another's) found its modules in
** the main state and not in the workers. Loop thread only. */
static int paths_update(lua_State *L, struct weft__pool *p) {
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "cpath");
  const char *path = lua_tostring(L, -2), *cpath = lua_tostring(L, -1);
  if (path == NULL) path = "";
  if (cpath == NULL) cpath = "";
  int rc = 0;
  if (strcmp(path, p->path) != 0 || strcmp(cpath, p->cpath) != 0) {
    char *np = strdup(path), *ncp = strdup(cpath);
    if (np == NULL || ncp == NULL) {
      free(np);
      free(ncp);
      rc = -1;
    } else {
      uv_mutex_lock(&p->mu);
      free(p->path);
      free(p->cpath);
      p->path = np;
      p->cpath = ncp;
      p->pathgen++;
      uv_mutex_unlock(&p->mu);
    }
  }
  lua_pop(L, 3);
  return rc;
}

/* Queue job j (its input encoded). Raises on failure, freeing j. */
static void submit(lua_State *L, struct weft__pool *p, struct weft__job *j) {
  uv_mutex_lock(&p->mu);
  if (p->stopping || maybe_grow(p) != 0 || p->nworkers == 0) {
    uv_mutex_unlock(&p->mu);
    job_free(j);
    luaL_error(L, "weft.work: cannot start a worker thread");
  }
  if (p->qtail)
    p->qtail->next = j;
  else
    p->qhead = j;
  p->qtail = j;
  atomic_fetch_add(&p->nqueued, 1);
  uv_cond_signal(&p->work_cv);
  uv_mutex_unlock(&p->mu);
  inflight_add(p, 1);
  lua_pushlightuserdata(L, j);
}

/* pool.submit(what, module, fn_or_mod, [func,] ...) -> job: encode and
** queue. `what` names the call in errors; module is a boolean. */
static int lpool_submit(lua_State *L) {
  weft_runtime *rt = rt_of(L);
  const char *what = luaL_checkstring(L, 1);
  int module = lua_toboolean(L, 2);
  char err[256], msg[300];
  struct weft__pool *p = pool_get(L, rt);
  if (p == NULL) return luaL_error(L, "%s: out of memory", what);
  if (paths_update(L, p) != 0) return luaL_error(L, "%s: out of memory", what);
  struct weft__job *j = calloc(1, sizeof *j);
  if (j == NULL) return luaL_error(L, "%s: out of memory", what);
  j->module = module;
  /* One buffer for the function and its arguments, so that references
  ** between them are kept. Paths read "fn" and "args[i]". A module's name
  ** and function (always strings) go after the arguments, so that
  ** args[1] is the first argument here too (see job_call). */
  if (module) {
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    lua_remove(L, 3);
    lua_remove(L, 3);
  }
  int rc = weft__copy_encode(L, 3, lua_gettop(L) - 2, &j->in, "args",
                             module ? NULL : "fn", err, sizeof err);
  if (rc != 0) {
    job_free(j);
    snprintf(msg, sizeof msg, "%s: %s", what, err);
    lua_pushstring(L, msg);
    return lua_error(L);
  }
  submit(L, p, j);
  return 1;
}

/* pool.take() -> job, ok, ... | nil: one finished job, its results (ok
** true) or its message and traceback (ok false). */
static int lpool_take(lua_State *L) {
  weft_runtime *rt = rt_of(L);
  struct weft__pool *p = rt->pool;
  if (p == NULL) return 0;
  uv_mutex_lock(&p->mu);
  struct weft__job *j = p->dhead;
  if (j != NULL) {
    p->dhead = j->next;
    if (p->dhead == NULL) p->dtail = NULL;
  }
  uv_mutex_unlock(&p->mu);
  if (j == NULL) return 0;
  inflight_add(p, -1);
  lua_settop(L, 0);
  lua_pushlightuserdata(L, j);
  lua_pushboolean(L, j->ok);
  int n = -1;
  if (j->out.n > 0)
    n = weft__copy_decode(L, j->out.p, j->out.n);
  else
    lua_pushliteral(L, "the worker could not start (out of memory)");
  job_free(j);
  if (n < 0) {
    /* The message is on top: a module of the results failed to load. */
    lua_replace(L, 2);
    lua_settop(L, 2);
    lua_pushboolean(L, 0);
    lua_insert(L, 2);
    return 3;
  }
  return 2 + n;
}

/* pool.cancel(job): drop a queued or finished job, or discard a running
** one's result and ask it to stop. The job is never taken after this. */
static int lpool_cancel(lua_State *L) {
  weft_runtime *rt = rt_of(L);
  struct weft__pool *p = rt->pool;
  struct weft__job *j = lua_touserdata(L, 1);
  if (p == NULL || j == NULL) return 0;
  uv_mutex_lock(&p->mu);
  int found = 0;
  /* Queued or done: unlink it. */
  struct weft__job **lists[2] = {&p->qhead, &p->dhead};
  struct weft__job **tails[2] = {&p->qtail, &p->dtail};
  for (int l = 0; l < 2 && !found; l++) {
    struct weft__job *prev = NULL;
    for (struct weft__job *q = *lists[l]; q != NULL; prev = q, q = q->next) {
      if (q != j) continue;
      if (prev)
        prev->next = q->next;
      else
        *lists[l] = q->next;
      if (*tails[l] == q) *tails[l] = prev;
      if (l == 0) atomic_fetch_sub(&p->nqueued, 1);
      job_free(q);
      found = 1;
      break;
    }
  }
  /* Running: the worker frees it. Its thread counts as lost until the job
  ** ends, so that a new job gets a thread of its own meanwhile. */
  for (int i = 0; i < p->nworkers && !found; i++) {
    struct weft__worker *w = p->workers[i];
    if (w->job != j) continue;
    j->discard = 1;
    atomic_store(&j->cancel, 1);
    if (!w->lost) {
      w->lost = 1;
      p->nlost++;
      p->nbusy--;
      uv_cond_signal(&p->work_cv); /* a queued job may run now */
    }
    found = 1;
  }
  uv_mutex_unlock(&p->mu);
  if (found) inflight_add(p, -1);
  return 0;
}

/* pool.size() -> how many jobs may run at once. */
static int lpool_size(lua_State *L) {
  weft_runtime *rt = rt_of(L);
  lua_pushinteger(L, pool_size(rt));
  return 1;
}

/* pool.stats() -> threads started, idle, lost, jobs in flight. */
static int lpool_stats(lua_State *L) {
  weft_runtime *rt = rt_of(L);
  struct weft__pool *p = rt->pool;
  if (p == NULL) {
    for (int i = 0; i < 4; i++)
      lua_pushinteger(L, 0);
    return 4;
  }
  uv_mutex_lock(&p->mu);
  lua_pushinteger(L, p->nworkers);
  lua_pushinteger(L, p->idle);
  lua_pushinteger(L, p->nlost);
  uv_mutex_unlock(&p->mu);
  lua_pushinteger(L, p->inflight);
  return 4;
}

int weft__open_pool(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"submit", lpool_submit}, {"take", lpool_take},
      {"cancel", lpool_cancel}, {"size", lpool_size},
      {"stats", lpool_stats},   {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
