/*
** runtime.c: creating and freeing a runtime, and the driver that turns the
** libuv loop and runs the Lua-side scheduler (weft/sched.lua) from it.
**
** One turn of the driver: tick (fire due timers, resume up to `budget` ready
** tasks), then poll libuv: without blocking while tasks are ready, else
** blocking until the earliest timer or I/O. So tasks that are always ready
** cannot starve I/O, and many scheduling rounds share one loop turn.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#endif

#include "internal.h"

#define DEFAULT_BUDGET 4096
#define MAX_WAIT_S (365.0 * 24 * 3600)

const char weft__rt_key = 0;

static uint32_t api_events(weft_runtime *rt) {
  return atomic_exchange(&rt->events, 0u);
}

void weft__set_error(weft_runtime *rt, const char *msg) {
  size_t n = strlen(msg);
  char *s = realloc(rt->last_error, n + 1);
  if (s == NULL) return;
  memcpy(s, msg, n + 1);
  rt->last_error = s;
}

/* The runtime attached to L, or NULL. */
static weft_runtime *tort(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&weft__rt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  weft_runtime *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

/* The runtime of L, for weft.core's bindings: raises once weft_free has
** freed it (a host's state lives on, and code that kept weft's functions
** may still call them). */
static weft_runtime *checkrt(lua_State *L) {
  weft_runtime *rt = tort(L);
  if (rt == NULL)
    luaL_error(L, "weft: this Lua state's runtime was freed (weft_free)");
  return rt;
}

/* Push weft.sched's function `name` below the nargs values on top. */
static void push_sched_fn(weft_runtime *rt, lua_State *L, const char *name,
                          int nargs) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_sched);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (nargs > 0) lua_insert(L, -1 - nargs);
}

/* ======================================================================
** The driver
** ====================================================================== */

static void on_timer(uv_timer_t *h) {
  (void)h; /* waking the loop is all it is for: tick fires weft timers */
}

static void on_async(uv_async_t *h) {
  (void)h; /* likewise: tick reads rt->events */
}

/* Run one tick, stopping at `deadline` (the runtime's clock; < 0: none).
** *ready and *live receive the counts it returns. */
static int tick(weft_runtime *rt, lua_State *L, double deadline, int *ready,
                int *live) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_tick);
  lua_pushinteger(L, rt->cfg.budget);
  if (deadline >= 0)
    lua_pushnumber(L, deadline);
  else
    lua_pushnil(L);
  if (lua_pcall(L, 2, 2, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    weft__set_error(rt, msg ? msg : "error in the scheduler");
    lua_pop(L, 1);
    return WEFT_EINTERNAL;
  }
  *ready = (int)lua_tointeger(L, -2);
  *live = (int)lua_tointeger(L, -1);
  rt->ready = *ready;
  lua_pop(L, 2);
  return 0;
}

/*
** Waking the loop. libuv's timers count whole milliseconds, and so does
** epoll_wait's timeout: a weft.sleep(0.0002) woke after ~1.1 ms, and a
** rate limiter's wait for its next token ran late by up to a millisecond.
** On Linux a timerfd armed at the deadline itself, watched by a uv_poll
** handle, wakes the loop within microseconds; the libuv timer stays as the
** fallback where timerfd_create fails (or on other systems). The poll handle
** is active only while a timer is armed, so that, as the libuv timer, it
** keeps the loop alive exactly while a task sleeps (the deadlock check).
*/
#ifdef __linux__
static void on_tfd(uv_poll_t *h, int status, int events) {
  weft_runtime *rt = h->data;
  uint64_t n;
  (void)status;
  (void)events;
  /* Consume the expiry (EAGAIN if already read: nothing to do), and forget
  ** the deadline: if the tick leaves that timer for later (a step's budget),
  ** the next arm must set it again, or the loop would wait forever. */
  if (read(rt->tfd, &n, sizeof n) < 0) n = 0;
  rt->tfd_at = 0;
}

static void tfd_init(weft_runtime *rt) {
  rt->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (rt->tfd < 0) return;
  if (uv_poll_init(rt->loop, &rt->tfd_poll, rt->tfd) != 0) {
    close(rt->tfd);
    rt->tfd = -1;
    return;
  }
  rt->tfd_poll.data = rt;
}

/* Arm the timerfd at `next` (the runtime's clock). uv_hrtime is
** CLOCK_MONOTONIC's nanoseconds, the clock the timerfd counts. */
static int tfd_arm(weft_runtime *rt, double next) {
  if (rt->tfd < 0) return 0;
  /* A deadline past what a uint64_t of nanoseconds holds (weft.sleep(1e11))
  ** converted to 0 (undefined behaviour): armed in the past, the timerfd
  ** fired at once, every time, and the loop spun at 100% CPU for as long as
  ** the task slept. A year is as good as forever, as in arm_timer; such a
  ** deadline moves the cap, so it costs a syscall per arm, not a spin. */
  double cap = weft__now(rt) + MAX_WAIT_S;
  if (next > cap) next = cap;
  uint64_t at = rt->t0 + (next > 0 ? (uint64_t)(next * 1e9) : 0);
  if (at == 0) at = 1; /* 0 would disarm it */
  if (at != rt->tfd_at) {
    struct itimerspec its = {{0, 0}, {0, 0}};
    its.it_value.tv_sec = (time_t)(at / 1000000000u);
    its.it_value.tv_nsec = (long)(at % 1000000000u);
    if (timerfd_settime(rt->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) return 0;
    rt->tfd_at = at;
  }
  if (!uv_is_active((uv_handle_t *)&rt->tfd_poll))
    uv_poll_start(&rt->tfd_poll, UV_READABLE, on_tfd);
  return 1;
}

/* Stop watching; disarm it too, so that it does not make the descriptor
** readable for nothing later (one syscall, only when it was armed). Only a
** watching handle is stopped: uv_poll_stop always takes the descriptor out
** of epoll, a failing epoll_ctl syscall when it was not in (one per turn
** of the loop with no timer armed: a trivial job's round trip paid it). */
static void tfd_stop(weft_runtime *rt) {
  if (rt->tfd < 0) return;
  if (rt->tfd_at != 0) {
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(rt->tfd, 0, &off, NULL);
    rt->tfd_at = 0;
  }
  if (uv_is_active((uv_handle_t *)&rt->tfd_poll)) uv_poll_stop(&rt->tfd_poll);
}

/* uv_close takes the descriptor out of the backend at once, so it can be
** closed here; the handle's memory is the runtime's, freed after the loop
** has run its close callback (weft_free). */
static void tfd_close(weft_runtime *rt, uv_close_cb cb) {
  if (rt->tfd < 0) return;
  uv_close((uv_handle_t *)&rt->tfd_poll, cb);
  close(rt->tfd);
  rt->tfd = -1;
}
#else
static void tfd_init(weft_runtime *rt) {
  rt->tfd = -1;
}
static int tfd_arm(weft_runtime *rt, double next) {
  (void)rt;
  (void)next;
  return 0;
}
static void tfd_stop(weft_runtime *rt) {
  (void)rt;
}
static void tfd_close(weft_runtime *rt, uv_close_cb cb) {
  (void)rt;
  (void)cb;
}
#endif

/* Arm the loop's wake-up for the earliest weft timer, or stop it. */
static void arm_timer(weft_runtime *rt) {
  double next;
  if (!weft__timer_next(&rt->timers, &next)) {
    uv_timer_stop(&rt->timer);
    tfd_stop(rt);
    return;
  }
  if (tfd_arm(rt, next)) {
    uv_timer_stop(&rt->timer);
    return;
  }
  double wait = next - weft__now(rt);
  /* A double too large for uint64_t is undefined behaviour to convert (and
  ** gave 0 on x86-64: a busy loop); a year is as good as forever here. */
  if (wait > MAX_WAIT_S) wait = MAX_WAIT_S;
  uint64_t ms = wait <= 0 ? 0 : (uint64_t)ceil(wait * 1000.0);
  /* The loop's cached time may be stale after a long tick; a stale start
  ** would fire early and cost a spurious turn. */
  uv_update_time(rt->loop);
  /* Repeating, so it stays active: uv_run(UV_RUN_ONCE) runs due timers
  ** before it polls, and a timer that came due in between (a 0 ms one, or
  ** a millisecond boundary crossed) would leave it polling with no timeout
  ** whenever another handle keeps the loop alive (jobs in flight): stuck
  ** until that handle fires. The next tick re-arms it anyway. */
  uv_timer_start(&rt->timer, on_timer, ms, ms > 0 ? ms : 1);
}

/* Ask the scheduler whether it can still make progress when nothing can wake
** a task (a bubble on virtual time can fail on its own). */
static int idle(weft_runtime *rt, lua_State *L) {
  int progress = 0;
  push_sched_fn(rt, L, "idle", 0);
  if (lua_pcall(L, 0, 1, 0) == 0) progress = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return progress;
}

static int deadlock(weft_runtime *rt, lua_State *L) {
  push_sched_fn(rt, L, "deadlock_report", 0);
  if (lua_pcall(L, 0, 1, 0) == 0 && lua_isstring(L, -1))
    weft__set_error(rt, lua_tostring(L, -1));
  else
    weft__set_error(rt, "all tasks are asleep - deadlock!");
  lua_pop(L, 1);
  return WEFT_EDEADLK;
}

/* Report the failures of top-level tasks: each goes to cfg.on_error, the
** last to weft_last_error. Returns 0, WEFT_ETASK or WEFT_EINTR. */
static int outcome(weft_runtime *rt, lua_State *L) {
  int rc = 0;
  push_sched_fn(rt, L, "outcome", 0);
  lua_pushboolean(L, rt->cfg.verbose);
  if (lua_pcall(L, 1, 2, 0) != 0) {
    weft__set_error(rt, lua_tostring(L, -1));
    lua_pop(L, 1);
    return WEFT_EINTERNAL;
  }
  if (lua_istable(L, -2)) {
    int n = (int)lua_objlen(L, -2);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -2, i);
      const char *msg = lua_tostring(L, -1);
      if (msg != NULL) {
        weft__set_error(rt, msg);
        if (rt->cfg.on_error) rt->cfg.on_error(rt, msg, rt->cfg.ud);
      }
      lua_pop(L, 1);
    }
    rc = lua_toboolean(L, -1) ? WEFT_EINTR : WEFT_ETASK;
  }
  lua_pop(L, 2);
  return rc;
}

/* Drive the loop until no task is left, running ticks on thread L. With
** report 0 the failures of top-level tasks are left to the caller. */
static int drive(weft_runtime *rt, lua_State *L, int report) {
  int rc, ready, live;
  if (rt->running) return WEFT_EBUSY;
  rt->running = 1;
  rt->drive_L = L;
  for (;;) {
    rc = tick(rt, L, -1, &ready, &live);
    if (rc != 0 || rt->free_asked) break; /* freed from a callback */
    if (live == 0) {
      uv_timer_stop(&rt->timer);
      tfd_stop(rt);
      rc = report ? outcome(rt, L) : 0;
      break;
    }
    if (ready > 0) {
      uv_run(rt->loop, UV_RUN_NOWAIT);
      continue;
    }
    if (weft__pool_spin(rt)) continue; /* a job finished: no sleep */
    arm_timer(rt);
    /* Nothing is ready, no timer is armed, no I/O is pending and no event
    ** is waiting to be read: nothing can ever wake the blocked tasks. */
    if (!uv_loop_alive(rt->loop) && atomic_load(&rt->events) == 0) {
      if (idle(rt, L)) continue;
      rc = deadlock(rt, L);
      break;
    }
    uv_run(rt->loop, UV_RUN_ONCE);
  }
  rt->running = 0;
  rt->drive_L = NULL;
  return rc;
}

int weft__drive(weft_runtime *rt, lua_State *L) {
  return drive(rt, L, 1);
}

/* Call sched's function `name` with no arguments and no results. */
static void call_sched(weft_runtime *rt, lua_State *L, const char *name) {
  push_sched_fn(rt, L, name, 0);
  lua_call(L, 0, 0);
}

/* Cancel the root context with a "deadlock" error whose message is the
** report, after dropping the failures seen so far (the report covers
** them). Run by lua_cpcall, with the runtime as its argument. */
static int cancel_stuck(lua_State *L) {
  weft_runtime *rt = lua_touserdata(L, 1);
  call_sched(rt, L, "take_failures");
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "weft.errors");
  lua_getfield(L, -1, "new");
  lua_pushliteral(L, "deadlock");
  lua_pushstring(L, weft_last_error(rt));
  lua_call(L, 2, 1);
  push_sched_fn(rt, L, "cancel_root", 1);
  lua_call(L, 1, 0);
  return 0;
}

/* Forget the tasks that blocked again, and the failures of the unwinding.
** Run by lua_cpcall, with the runtime as its argument. */
static int abandon_stuck(lua_State *L) {
  weft_runtime *rt = lua_touserdata(L, 1);
  call_sched(rt, L, "abandon");
  call_sched(rt, L, "take_failures");
  return 0;
}

static int drop_failures(lua_State *L) {
  call_sched(lua_touserdata(L, 1), L, "take_failures");
  return 0;
}

/*
** After a deadlock, do what weft.run does, so that the next script does not
** find the stuck tasks (and the deadlock) again: cancel them, with the
** deadlock as the cause, and drive them to their end, so that they unwind
** and clean up; drop those that block again. What the unwinding tasks fail
** with is a consequence of the deadlock, which was reported: it is not
** reported again. The deadlock report stays the last error.
*/
static void unstick(weft_runtime *rt, lua_State *L) {
  char *report = rt->last_error;
  int rc = lua_cpcall(L, cancel_stuck, rt);
  rt->last_error = NULL;
  if (rc != 0) goto done;
  rc = drive(rt, L, 0);
  rc = lua_cpcall(L, rc == WEFT_EDEADLK ? abandon_stuck : drop_failures, rt);
done:
  if (rc != 0) lua_pop(L, 1); /* an error in the scheduler: keep the report */
  free(rt->last_error);
  rt->last_error = report;
}

static void free_runtime(weft_runtime *rt, int entomb);

/* The free that weft_free left to the outermost driver (see weft_free),
** now that nothing of the runtime's is on the stack. Returns rc. */
static int free_if_asked(weft_runtime *rt, int rc) {
  if (rt->free_asked && !rt->running) free_runtime(rt, !rt->owns_L);
  return rc;
}

int weft_run(weft_runtime *rt) {
  if (rt == NULL) return WEFT_EINVAL;
  int rc = drive(rt, rt->L, 1);
  if (rc == WEFT_EDEADLK && !rt->free_asked) unstick(rt, rt->L);
  return free_if_asked(rt, rc);
}

/*
** The tasks ready now, as weft.sched counts them (-1 if it cannot tell).
** rt->ready is what the last tick counted; since then a callback may have
** made tasks ready: an I/O completion during the step's last turn of the
** loop, or a host's own Lua code that calls weft.go or ch:try_send between
** steps. Runs Lua on L, so only where weft may (not from a callback of a
** running step: see weft_next_timeout).
*/
static int lua_ready(weft_runtime *rt, lua_State *L) {
  if (!lua_checkstack(L, 4)) return -1;
  push_sched_fn(rt, L, "stats", 0);
  if (lua_pcall(L, 0, 2, 0) != 0) {
    lua_pop(L, 1);
    return -1;
  }
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return n;
}

/* Whether there is something to do at once: events to read (a post, a
** finished job, an interrupt), or ready tasks. Unknown counts as yes. */
static int due_now(weft_runtime *rt, lua_State *L) {
  if (rt->ready > 0 || atomic_load(&rt->events) != 0) return 1;
  return lua_ready(rt, L) != 0;
}

/*
** The budget holds: timers and resumes both stop at the deadline (tick),
** and what is left runs at the next step, in order. A failing top-level
** task is reported (on_error) in the step it fails in, not when the last
** task ends: a host that never empties (a game, an editor) hears of it.
*/
static int step(weft_runtime *rt, lua_State *L, double budget_ms) {
  int rc, ready, live, failed = 0;
  if (!(budget_ms > 0)) budget_ms = 0; /* NaN too */
  if (budget_ms > MAX_WAIT_S * 1e3) budget_ms = MAX_WAIT_S * 1e3;
  double deadline = weft__now(rt) + budget_ms / 1e3;
  if (rt->running) return WEFT_EBUSY;
  rt->running = 1;
  rt->drive_L = L;
  for (;;) {
    rc = tick(rt, L, deadline, &ready, &live);
    if (rc != 0) break;
    rc = outcome(rt, L);
    if (rc == WEFT_EINTERNAL) break;
    if (rc != 0) failed = rc;
    if (rt->free_asked) { /* freed from a callback: stop here */
      rc = failed ? failed : live;
      break;
    }
    if (live == 0) {
      rc = failed;
      break;
    }
    uv_run(rt->loop, UV_RUN_NOWAIT);
    /* That turn's callbacks may have made tasks ready or left events (a
    ** finished job): go on with them, rather than return with nothing
    ** due and the wake-up consumed, for a host to sleep on. */
    if (weft__now(rt) >= deadline || (ready == 0 && !due_now(rt, L))) {
      rc = live;
      break;
    }
  }
  rt->running = 0;
  rt->drive_L = NULL;
  return rc;
}

int weft_step(weft_runtime *rt, double budget_ms) {
  if (rt == NULL) return WEFT_EINVAL;
  return free_if_asked(rt, step(rt, rt->L, budget_ms));
}

/* weft_next_timeout; ask_lua: whether it may count ready tasks in Lua
** (not when Lua calls it: core.timeout's caller has counted them). */
static int next_timeout(weft_runtime *rt, int ask_lua) {
  double next;
  if (rt->ready > 0 || atomic_load(&rt->events) != 0) return 0;
  /* From a callback of a running step, the step goes on anyway. */
  if (ask_lua && !rt->running && due_now(rt, rt->L)) return 0;
  /* An idle loop's backend timeout is 0 ("nothing to wait for"): here
  ** that means nothing is due, -1. */
  int ms = uv_loop_alive(rt->loop) ? uv_backend_timeout(rt->loop) : -1;
  if (weft__timer_next(&rt->timers, &next)) {
    double wait = next - weft__now(rt);
    int t = wait <= 0 ? 0 : wait > 1e6 ? 1000000000 : (int)ceil(wait * 1e3);
    if (ms < 0 || t < ms) ms = t;
  }
  return ms;
}

int weft_next_timeout(weft_runtime *rt) {
  if (rt == NULL) return WEFT_EINVAL;
  return next_timeout(rt, 1);
}

/* Cancel the root context, as weft.shutdown does. Run by lua_cpcall. */
static int shutdown_cancel(lua_State *L) {
  weft_runtime *rt = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "weft.errors");
  lua_getfield(L, -1, "new");
  lua_pushliteral(L, "shutdown");
  lua_pushliteral(L, "the host shut the runtime down");
  lua_call(L, 2, 1);
  push_sched_fn(rt, L, "cancel_root", 1);
  lua_call(L, 1, 0);
  return 0;
}

int weft_shutdown(weft_runtime *rt, double grace_ms) {
  if (rt == NULL) return WEFT_EINVAL;
  if (rt->running) return WEFT_EBUSY;
  if (!(grace_ms > 0)) grace_ms = 0; /* NaN too */
  if (grace_ms > MAX_WAIT_S * 1e3) grace_ms = MAX_WAIT_S * 1e3;
  if (lua_cpcall(rt->L, shutdown_cancel, rt) != 0) {
    weft__set_error(rt, lua_tostring(rt->L, -1));
    lua_pop(rt->L, 1);
    return WEFT_EINTERNAL;
  }
  double end = weft__now(rt) + grace_ms / 1e3;
  for (;;) {
    int live = step(rt, rt->L, 10);
    if (rt->free_asked) return free_if_asked(rt, live > 0 ? live : 0);
    if (live <= 0) return live == WEFT_ETASK ? 0 : live;
    double left = end - weft__now(rt);
    if (left <= 0) return live;
    /* Sleep until something is due or the grace ends, not spin. */
    int ms = weft_next_timeout(rt);
    int cap = (int)ceil(left * 1e3);
    if (ms < 0 || ms > cap) ms = cap;
    struct pollfd p = {uv_backend_fd(rt->loop), POLLIN, 0};
    if (ms > 0) poll(&p, 1, ms);
  }
}

int weft_is_stuck(weft_runtime *rt) {
  double next;
  if (rt == NULL) return WEFT_EINVAL;
  return rt->ready == 0 && !weft__timer_next(&rt->timers, &next) &&
         !uv_loop_alive(rt->loop) && atomic_load(&rt->events) == 0 &&
         (rt->running || lua_ready(rt, rt->L) == 0);
}

int weft_backend_fd(weft_runtime *rt) {
  if (rt == NULL) return WEFT_EINVAL;
  return uv_backend_fd(rt->loop);
}

/* ======================================================================
** Posting work from other threads
** ====================================================================== */

int weft_post(weft_runtime *rt, weft_post_cb fn, void *ud) {
  if (rt == NULL || fn == NULL) return WEFT_EINVAL;
  struct weft__post *p = malloc(sizeof *p);
  if (p == NULL) return WEFT_ENOMEM;
  p->fn = fn;
  p->ud = ud;
  p->next = NULL;
  uv_mutex_lock(&rt->post_mu);
  if (rt->posts_tail)
    rt->posts_tail->next = p;
  else
    rt->posts = p;
  rt->posts_tail = p;
  uv_mutex_unlock(&rt->post_mu);
  atomic_fetch_or(&rt->events, WEFT__EV_POST);
  uv_async_send(&rt->async);
  return 0;
}

void weft_interrupt(weft_runtime *rt) {
  if (rt == NULL) return;
  atomic_fetch_or(&rt->events, WEFT__EV_INTERRUPT);
  uv_async_send(&rt->async);
}

/* The Lua side clears the bit when it reads the events (api_events), just
** before it cancels the root context. */
int weft_has_pending_interrupt(weft_runtime *rt) {
  if (rt == NULL) return 0;
  return (atomic_load(&rt->events) & WEFT__EV_INTERRUPT) != 0;
}

void weft_request_dump(weft_runtime *rt) {
  if (rt == NULL) return;
  atomic_fetch_or(&rt->events, WEFT__EV_QUIT);
  uv_async_send(&rt->async);
}

static int call_post(lua_State *L) {
  struct weft__post *p = lua_touserdata(L, 1);
  p->fn(L, p->ud);
  return 0;
}

/* ======================================================================
** The weft.core module: what the Lua side needs from C
** ====================================================================== */

/* core.drain_posts(): run what weft_post queued, each protected. */
static int lcore_drain_posts(lua_State *L) {
  weft_runtime *rt = checkrt(L);
  uv_mutex_lock(&rt->post_mu);
  struct weft__post *p = rt->posts;
  rt->posts = rt->posts_tail = NULL;
  uv_mutex_unlock(&rt->post_mu);
  while (p != NULL) {
    struct weft__post *next = p->next;
    if (lua_cpcall(L, call_post, p) != 0) {
      const char *msg = lua_tostring(L, -1);
      if (msg == NULL) msg = "error in a posted callback";
      weft__set_error(rt, msg);
      /* The hook gets the Lua string, on the stack until the pop, not
      ** rt->last_error: a weft call in the hook that fails replaces that
      ** (a use after free). */
      if (rt->cfg.on_error) rt->cfg.on_error(rt, msg, rt->cfg.ud);
      lua_pop(L, 1);
    }
    free(p);
    p = next;
  }
  return 0;
}

/* After a weft.run or weft.step that Lua code called on thread L: a free
** asked for from one of its callbacks. Only on a host's state (weft_new's
** cannot be closed under the Lua code calling this) and from its main
** thread, which freeing runs Lua on. NOTE: otherwise the free stays asked
** for, and is done by the next weft_run, weft_step or weft_shutdown. */
static void lua_free_if_asked(lua_State *L, weft_runtime *rt) {
  if (!rt->owns_L && L == rt->L) free_if_asked(rt, 0);
}

/* core.drive() -> "ok" | "failed" | "deadlock", report: weft.run's loop. */
static int lcore_drive(lua_State *L) {
  weft_runtime *rt = checkrt(L);
  int rc = weft__drive(rt, L);
  lua_free_if_asked(L, rt);
  switch (rc) {
  case 0: lua_pushliteral(L, "ok"); break;
  case WEFT_ETASK:
  case WEFT_EINTR: lua_pushliteral(L, "failed"); break;
  case WEFT_EDEADLK: lua_pushliteral(L, "deadlock"); break;
  case WEFT_EBUSY: return luaL_error(L, "weft.run: the runtime is running");
  default: return luaL_error(L, "weft: %s", weft_last_error(rt));
  }
  lua_pushstring(L, weft_last_error(rt));
  return 2;
}

/* Push the runtime's tag: four base-36 digits from its address and its
** creation time, so that log ids ("TAG-N") of runtimes alive at the same
** time in one process differ, without a counter shared between them. */
static void push_tag(lua_State *L, weft_runtime *rt) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  uint64_t h = (uint64_t)(uintptr_t)rt ^ (rt->t0 * 0x9e3779b97f4a7c15ull);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  char tag[4];
  for (int i = 0; i < 4; i++) {
    tag[i] = digits[h % 36];
    h /= 36;
  }
  lua_pushlstring(L, tag, sizeof tag);
}

/* core.step(budget_ms) -> live: weft.step, on the calling thread. */
static int lcore_step(lua_State *L) {
  weft_runtime *rt = checkrt(L);
  int rc = step(rt, L, luaL_optnumber(L, 1, 1.0));
  lua_free_if_asked(L, rt);
  if (rc == WEFT_EBUSY)
    return luaL_error(L, "weft.step: the runtime is running");
  if (rc == WEFT_EINTERNAL)
    return luaL_error(L, "weft: %s", weft_last_error(rt));
  lua_pushinteger(L, rc < 0 ? 0 : rc);
  return 1;
}

/* core.busy() -> whether a driver runs the runtime now (a step, a run, or
** one of their callbacks, such as on_error). */
static int lcore_busy(lua_State *L) {
  lua_pushboolean(L, checkrt(L)->running);
  return 1;
}

/* core.timeout() -> ms (-1: nothing due). */
static int lcore_timeout(lua_State *L) {
  lua_pushinteger(L, next_timeout(checkrt(L), 0));
  return 1;
}

/* core.pollfd() -> the loop's backend descriptor. */
static int lcore_pollfd(lua_State *L) {
  lua_pushinteger(L, weft_backend_fd(checkrt(L)));
  return 1;
}

/* core.block(ms): wait up to ms (< 0: for ever) for the loop's backend
** descriptor to be readable: weft.shutdown's wait between steps. */
static int lcore_block(lua_State *L) {
  weft_runtime *rt = checkrt(L);
  struct pollfd p = {uv_backend_fd(rt->loop), POLLIN, 0};
  poll(&p, 1, (int)luaL_checkinteger(L, 1));
  return 0;
}

static int luaopen_weft_core(lua_State *L) {
  weft_runtime *rt = checkrt(L); /* required again after weft_free */
  static const luaL_Reg funcs[] = {
      {"drain_posts", lcore_drain_posts},
      {"drive", lcore_drive},
      {"step", lcore_step},
      {"timeout", lcore_timeout},
      {"busy", lcore_busy},
      {"pollfd", lcore_pollfd},
      {"block", lcore_block},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  lua_pushlightuserdata(L, rt);
  lua_setfield(L, -2, "rt");
  lua_pushlightuserdata(L, &rt->api);
  lua_setfield(L, -2, "api");
  lua_pushliteral(L, WEFT_VERSION_STRING);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, rt->cfg.verbose);
  lua_setfield(L, -2, "verbose");
  if (rt->cfg.log_path != NULL) {
    lua_pushstring(L, rt->cfg.log_path);
    lua_setfield(L, -2, "log_path");
  }
  push_tag(L, rt);
  lua_setfield(L, -2, "tag");
  lua_pushboolean(L, rt->cfg.virtual_time);
  lua_setfield(L, -2, "virtual_time");
  return 1;
}

/* ======================================================================
** Creating and freeing
** ====================================================================== */

/* Load the Lua side: weft.core, the embedded modules, then `weft` itself,
** whose value is left on the stack. */
static int boot(lua_State *L) {
  weft_runtime *rt = lua_touserdata(L, 1);
  lua_pushlightuserdata(L, (void *)&weft__rt_key);
  lua_pushlightuserdata(L, rt);
  lua_rawset(L, LUA_REGISTRYINDEX);
  weft__preload(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_weft_core);
  lua_setfield(L, -2, "weft.core");
  /* Not require("weft"): when the module form is being required, "weft"
  ** is marked as loading and a nested require would fail. */
  lua_getfield(L, -1, "weft");
  lua_pushliteral(L, "weft");
  lua_call(L, 1, 1);
  lua_getfield(L, -3, "loaded");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "weft");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "weft.sched");
  lua_call(L, 1, 1);
  rt->ref_sched = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_sched);
  lua_getfield(L, -1, "tick");
  rt->ref_tick = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  return 1;
}

static weft_runtime *init(lua_State *L, int owns_L, uv_loop_t *loop,
                          const weft_config *cfg) {
  /* Two runtimes on one state would share its weft modules: each would
  ** run the other's tasks, and the first freed would leave the other's
  ** modules pointing at freed memory. */
  if (L == NULL || tort(L) != NULL) return NULL;
  weft_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL) return NULL;
  if (cfg) rt->cfg = *cfg;
  if (rt->cfg.budget == 0) rt->cfg.budget = DEFAULT_BUDGET;
  if (rt->cfg.log_path != NULL) {
    /* Our copy: the caller's string need not outlive this call. */
    size_t n = strlen(rt->cfg.log_path) + 1;
    char *copy = malloc(n);
    if (copy == NULL) {
      free(rt);
      return NULL;
    }
    memcpy(copy, rt->cfg.log_path, n);
    rt->cfg.log_path = copy;
  }
  rt->L = L;
  rt->owns_L = owns_L;
  rt->ref_tick = rt->ref_sched = rt->ref_io_done = LUA_NOREF;
  rt->t0 = uv_hrtime();
  atomic_init(&rt->events, 0u);
  rt->api.now = weft__now;
  rt->api.timer_add = weft__timer_add;
  rt->api.timer_del = weft__timer_del;
  rt->api.timer_pop = weft__timer_pop;
  rt->api.timer_deadline = weft__timer_deadline;
  rt->api.events = api_events;
  rt->api.wall = weft__wall;
  rt->api.yieldable = weft__yieldable;
  if (loop == NULL) {
    if (uv_loop_init(&rt->own_loop) != 0) goto fail_loop;
    loop = &rt->own_loop;
    rt->owns_loop = 1;
  }
  rt->loop = loop;
  if (weft__timers_init(&rt->timers) != 0) goto fail_timers;
  if (uv_mutex_init(&rt->post_mu) != 0) goto fail_mutex;
  uv_timer_init(loop, &rt->timer);
  tfd_init(rt);
  uv_async_init(loop, &rt->async, on_async);
  /* Neither keeps the loop alive: the deadlock check relies on it. */
  uv_unref((uv_handle_t *)&rt->async);
  rt->timer.data = rt->async.data = rt;
  /* Loading is all allocation and no garbage: a collector running
  ** meanwhile would only trace and sweep what stays. */
  int gc_on = lua_gc(L, LUA_GCISRUNNING, 0);
  if (gc_on) lua_gc(L, LUA_GCSTOP, 0);
  lua_pushcfunction(L, boot);
  lua_pushlightuserdata(L, rt);
  int failed = lua_pcall(L, 1, 1, 0) != 0;
  if (gc_on) lua_gc(L, LUA_GCRESTART, 0);
  if (failed) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "weft: cannot start the runtime: %s\n",
            msg ? msg : "(no message)");
    lua_pop(L, 1);
    rt->owns_L = 0; /* the caller closes the state it made */
    weft_free(rt);
    return NULL;
  }
  lua_pop(L, 1);
  return rt;

fail_mutex:
  weft__timers_destroy(&rt->timers);
fail_timers:
  if (rt->owns_loop) uv_loop_close(&rt->own_loop);
fail_loop:
  free((char *)rt->cfg.log_path);
  free(rt);
  return NULL;
}

weft_runtime *weft_new(const weft_config *cfg) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  luaL_openlibs(L);
  weft_runtime *rt = init(L, 1, NULL, cfg);
  if (rt == NULL) {
    lua_close(L);
    return NULL;
  }
  /* A runtime of its own also offers `weft` as a global, as LuaJIT offers
  ** `jit` and `bit`. */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "weft");
  lua_setglobal(L, "weft");
  lua_pop(L, 2);
  return rt;
}

/* Anchor the running thread (L) in its registry. Run by lua_cpcall. */
static int anchor_thread(lua_State *L) {
  lua_pushthread(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "weft.thread");
  return 0;
}

weft_runtime *weft_attach(lua_State *L, uv_loop_t *loop,
                          const weft_config *cfg) {
  weft_runtime *rt = init(L, 0, loop, cfg);
  /* The runtime keeps L for weft_run, weft_step and weft_free: anchored,
  ** it outlives the runtime even when it is a coroutine (a host may pass
  ** one, and `require "weft"` from a coroutine passes that coroutine),
  ** which the collector took otherwise, and weft crashed. A later attach
  ** replaces the anchor. */
  if (rt != NULL && lua_cpcall(L, anchor_thread, NULL) != 0) {
    lua_pop(L, 1);
    weft_free(rt);
    return NULL;
  }
  return rt;
}

static void on_close(uv_handle_t *h) {
  (void)h;
}

static int is_weft_module(const char *name) {
  return strncmp(name, "weft", 4) == 0 && (name[4] == '\0' || name[4] == '.');
}

/* Forget the weft modules in package.loaded. They hold this runtime's
** address: a runtime attached to the state later must load its own. */
static void unload(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      lua_pop(L, 1);
      /* Clearing a field that exists is allowed during a traversal. */
      if (lua_type(L, -1) == LUA_TSTRING &&
          is_weft_module(lua_tostring(L, -1))) {
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -4);
      }
    }
  }
  lua_pop(L, 1);
}

/*
** Freeing (see "Freeing an attached runtime" in io.c and
** docs/internals.md). A loop weft owns is closed, which waits for all. On a
** host's loop weft_free turns the loop until the runtime's handles have
** closed and its requests called back, for FREE_WAIT_MS at most: what
** still runs then on libuv's thread pool (uv_cancel cannot stop it, and a
** read of a FIFO or a resolve of a dead DNS server may take for ever) is
** detached, and only frees itself when it ends.
*/
#define FREE_WAIT_MS 1000

static void on_free_wait(uv_timer_t *h) {
  (void)h; /* the bound is up: drain sees the timer inactive */
}

static void drain(weft_runtime *rt) {
  if (rt->live == NULL) return;
  uv_update_time(rt->loop);
  uv_timer_start(&rt->timer, on_free_wait, FREE_WAIT_MS, 0);
  uv_ref((uv_handle_t *)&rt->timer); /* UV_RUN_ONCE wakes at the bound */
  while (rt->live != NULL && uv_is_active((uv_handle_t *)&rt->timer))
    uv_run(rt->loop, UV_RUN_ONCE);
  uv_timer_stop(&rt->timer);
}

struct own {
  weft_runtime *rt;
  int n;
};

static void count_own(uv_handle_t *h, void *arg) {
  struct own *o = arg;
  /* As integers: comparing pointers into different objects is undefined. */
  uintptr_t p = (uintptr_t)h, rt = (uintptr_t)o->rt;
  if (p >= rt && p < rt + sizeof *o->rt) o->n++;
}

/* Whether the loop still has a handle in rt's memory (the timer, the async
** handle...): uv_walk sees a closing handle until its close callback. */
static int has_own_handles(weft_runtime *rt) {
  struct own o = {rt, 0};
  uv_walk(rt->loop, count_own, &o);
  return o.n > 0;
}

/*
** A freed runtime's tomb. An attached runtime's Lua state lives on after
** weft_free, and so may code that kept weft's functions: the scheduler's
** FFI calls hold this struct's address (sched.lua: `rt`, `api`), and
** weft.now or weft.after would read or write freed memory. So the struct
** itself is freed with the state, by a finalizer anchored in its registry;
** until then its timers are destroyed (timer_add fails: "cannot start a
** timer") and weft.core's bindings raise (checkrt); nothing else of it
** is used.
*/
static int tomb_gc(lua_State *L) {
  weft_runtime **box = lua_touserdata(L, 1);
  free(*box);
  *box = NULL;
  return 0;
}

static int bury_in(lua_State *L) {
  weft_runtime *rt = lua_touserdata(L, 1);
  weft_runtime **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, tomb_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  luaL_ref(L, LUA_REGISTRYINDEX);
  *box = rt; /* set last: any error above leaves rt to the caller */
  return 0;
}

static void bury(weft_runtime *rt, lua_State *L) {
  /* Out of memory: no tomb, so free it now, as before. */
  if (lua_cpcall(L, bury_in, rt) != 0) {
    lua_pop(L, 1);
    free(rt);
  }
}

/* Put back the host's coroutine.resume, wrap, running and dofile where
** they are still weft's relays (sched.lua install_coroutine_relay keeps
** both in S.stock and S.relays). Raw accesses only, as unload: no Lua code
** runs, since another of the state's threads may be the running one. */
static void restore_stock(weft_runtime *rt, lua_State *L) {
  static const char *const names[] = {"resume", "wrap", "running", "dofile"};
  if (rt->ref_sched == LUA_NOREF || !lua_checkstack(L, 12)) return;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_sched); /* top + 1: S */
  if (!lua_istable(L, -1)) goto done;
  lua_pushliteral(L, "relays"); /* top + 2 */
  lua_rawget(L, top + 1);
  lua_pushliteral(L, "stock"); /* top + 3 */
  lua_rawget(L, top + 1);
  lua_pushvalue(L, LUA_GLOBALSINDEX); /* top + 4 */
  lua_pushliteral(L, "coroutine");    /* top + 5 */
  lua_rawget(L, top + 4);
  if (!lua_istable(L, top + 2) || !lua_istable(L, top + 3) ||
      !lua_istable(L, top + 5))
    goto done;
  for (int i = 0; i < 4; i++) {
    int owner = i < 3 ? top + 5 : top + 4; /* dofile is a global */
    lua_pushstring(L, names[i]);
    lua_rawget(L, owner);
    lua_pushstring(L, names[i]);
    lua_rawget(L, top + 2);
    if (lua_rawequal(L, -1, -2)) {
      lua_pushstring(L, names[i]);
      lua_pushstring(L, names[i]);
      lua_rawget(L, top + 3);
      lua_rawset(L, owner);
    }
    lua_pop(L, 2);
  }
done:
  lua_settop(L, top);
}

void weft_free(weft_runtime *rt) {
  if (rt == NULL) return;
  /* From a callback the runtime runs (a post, on_error), the driver that
  ** runs it still uses the runtime, and weft_new's state would be closed
  ** under the Lua call running the callback: a crash either way. So the
  ** driver stops, and frees the runtime as it returns (free_if_asked). */
  if (rt->running) {
    rt->free_asked = 1;
    return;
  }
  free_runtime(rt, !rt->owns_L);
}

/* module.c: the state is closing, so nothing can call weft again. */
void weft__free_closing(weft_runtime *rt) {
  if (rt == NULL) return;
  free_runtime(rt, 0);
}

static void free_runtime(weft_runtime *rt, int entomb) {
  /* First: workers post to the async handle closed below. */
  weft__pool_free(rt);
  if (rt->owns_L) {
    lua_close(rt->L);
  } else {
    restore_stock(rt, rt->L);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, rt->ref_tick);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, rt->ref_sched);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, rt->ref_io_done);
    unload(rt->L);
    lua_pushlightuserdata(rt->L, (void *)&weft__rt_key);
    lua_pushnil(rt->L);
    lua_rawset(rt->L, LUA_REGISTRYINDEX);
  }
  /* I/O requests still in flight complete while the loop closes below:
  ** they must find no Lua side to call into (io.c checks this). */
  rt->ref_io_done = LUA_NOREF;
  rt->drive_L = NULL;
  /* What no finalizer may close now (a host's state lives on): end the
  ** children, close every handle, cancel every request (io.c). */
  weft__procs_free(rt);
  weft__live_end(rt);
  drain(rt);
  weft__live_detach(rt);
  uv_close((uv_handle_t *)&rt->timer, on_close);
  tfd_close(rt, on_close);
  uv_close((uv_handle_t *)&rt->async, on_close);
  if (rt->owns_loop) {
    /* Closing callbacks run on the next turn; keep turning until the loop
    ** has nothing left (libuv: memory is released only after close_cb). */
    while (uv_loop_close(rt->loop) == UV_EBUSY)
      uv_run(rt->loop, UV_RUN_ONCE);
  } else {
    /* Their memory is ours: the host's loop must be done with them. */
    while (has_own_handles(rt))
      uv_run(rt->loop, UV_RUN_NOWAIT);
  }
  weft__timers_destroy(&rt->timers);
  uv_mutex_destroy(&rt->post_mu);
  for (struct weft__post *p = rt->posts, *next; p != NULL; p = next) {
    next = p->next;
    free(p);
  }
  free(rt->last_error);
  free((char *)rt->cfg.log_path);
  rt->last_error = NULL;
  rt->cfg.log_path = NULL;
  if (entomb)
    bury(rt, rt->L);
  else
    free(rt);
}

/* ======================================================================
** Scripts
** ====================================================================== */

/* weft_interrupt applies to what runs: one that came while no task was
** alive (the bit is read only by a tick) is not meant for the task about to
** start. From inside a driver (a posted callback) a tick is due anyway. */
static void drop_idle_interrupt(weft_runtime *rt, lua_State *L) {
  if (rt->running) return;
  push_sched_fn(rt, L, "stats", 0);
  if (lua_pcall(L, 0, 1, 0) == 0 && lua_tointeger(L, -1) == 0)
    atomic_fetch_and(&rt->events, ~WEFT__EV_INTERRUPT);
  lua_pop(L, 1);
}

/* Start the function on top of L's stack, followed by nargs arguments, as a
** top-level task. Pops them. */
static int spawn_loaded(weft_runtime *rt, lua_State *L, const char *name,
                        int nargs) {
  drop_idle_interrupt(rt, L);
  lua_pushstring(L, name);
  lua_insert(L, -1 - nargs); /* fn, name, args... */
  push_sched_fn(rt, L, "spawn_root", nargs + 2);
  if (lua_pcall(L, nargs + 2, 0, 0) != 0) {
    weft__set_error(rt, lua_tostring(L, -1));
    lua_pop(L, 1);
    return WEFT_EINTERNAL;
  }
  rt->ready++; /* weft_next_timeout: something to do now */
  return 0;
}

int weft_spawn_file(weft_runtime *rt, const char *path, int argc, char **argv) {
  if (rt == NULL || argc < 0 || (argc > 0 && argv == NULL)) return WEFT_EINVAL;
  lua_State *L = rt->L;
  /* More values than LuaJIT passes in one call stay in `arg` only, as
  ** luajit(1) does with more than it passes. */
  int nargs = argc > 1 ? argc - 1 : 0;
  if (nargs > WEFT_MAX_SCRIPT_ARGS) nargs = WEFT_MAX_SCRIPT_ARGS;
  /* The function, its arguments, then what spawn_loaded pushes. */
  if (!lua_checkstack(L, nargs + 8)) {
    weft__set_error(rt, "too many script arguments for the Lua stack");
    return WEFT_EINVAL;
  }
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, path) != 0) {
    weft__set_error(rt, lua_tostring(L, -1));
    lua_pop(L, 1);
    return WEFT_ESCRIPT;
  }
  for (int i = 1; i <= nargs; i++)
    lua_pushstring(L, argv[i]);
  /* Named after its script, so that a host running many can tell them
  ** apart in reports and dumps. */
  return spawn_loaded(rt, L, path != NULL ? path : "stdin", nargs);
}

int weft_spawn_string(weft_runtime *rt, const char *chunk, const char *name) {
  if (rt == NULL || chunk == NULL) return WEFT_EINVAL;
  lua_State *L = rt->L;
  if (luaL_loadbuffer(L, chunk, strlen(chunk), name ? name : "=?") != 0) {
    weft__set_error(rt, lua_tostring(L, -1));
    lua_pop(L, 1);
    return WEFT_ESCRIPT;
  }
  /* Named after the chunk: its chunk name without Lua's "=" or "@". */
  const char *task = name == NULL ? "main"
                     : (name[0] == '=' || name[0] == '@') ? name + 1
                                                          : name;
  return spawn_loaded(rt, L, *task ? task : "main", 0);
}

/* ======================================================================
** Small accessors
** ====================================================================== */

const char *weft_last_error(weft_runtime *rt) {
  return rt != NULL && rt->last_error ? rt->last_error : "";
}

lua_State *weft_lua(weft_runtime *rt) {
  return rt != NULL ? rt->L : NULL;
}

/* Only codes libuv knows go to it: for others uv_strerror and uv_err_name
** allocate a message that nobody frees. */
const char *weft_strerror(int err) {
  switch (err) {
#define XX(name, code, msg)                                                    \
  case code: return msg;
    WEFT_ERRNO_MAP(XX)
#undef XX
#define XX(code, msg)                                                          \
  case UV_##code: return msg;
    UV_ERRNO_MAP(XX)
#undef XX
  case 0: return "success";
  default: return "unknown error";
  }
}

const char *weft_err_name(int err) {
  switch (err) {
#define XX(name, code, _)                                                      \
  case code: return "WEFT_" #name;
    WEFT_ERRNO_MAP(XX)
#undef XX
#define XX(code, _)                                                            \
  case UV_##code: return #code;
    UV_ERRNO_MAP(XX)
#undef XX
  case 0: return "WEFT_OK";
  default: return "UNKNOWN";
  }
}
