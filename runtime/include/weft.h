/*
** weft.h: the embedding API of the weft runtime.
**
** A runtime is one libuv loop, one Lua state and the tasks that run in it.
** Runtimes share nothing: several may live in one process, on one thread or
** on several, as long as each is used by one thread at a time (weft_post and
** weft_interrupt excepted, which any thread or signal handler may call).
*/
#ifndef WEFT_H
#define WEFT_H

#ifdef __cplusplus
extern "C" {
#endif

#include <lua.h>
#include <uv.h>

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"

/* How many script arguments weft_spawn_file passes as the script's `...`:
** below LuaJIT's limit of 8,000 values in one call (LUAI_MAXCSTACK), with
** room for the frames that start the task. */
#define WEFT_MAX_SCRIPT_ARGS 7900

typedef struct weft_runtime weft_runtime;

/* Error codes: 0 is success; weft's own codes are negative and far from
** libuv's UV_E* codes, which pass through unchanged. */
#define WEFT_ERRNO_MAP(XX)                                                     \
  XX(ETASK, -30001, "a top-level task failed")                                 \
  XX(EDEADLK, -30002, "every task is blocked and nothing can wake them")       \
  XX(EINTR, -30003, "interrupted")                                             \
  XX(ESCRIPT, -30004, "the script could not be loaded")                        \
  XX(EBUSY, -30005, "the runtime is already running")                          \
  XX(ENOMEM, -30006, "out of memory")                                          \
  XX(EINTERNAL, -30007, "internal error in the runtime")                       \
  XX(EINVAL, -30008, "invalid argument")

typedef enum {
  WEFT_OK = 0,
#define XX(name, code, _) WEFT_##name = code,
  WEFT_ERRNO_MAP(XX)
#undef XX
} weft_errno;

/* Called with each error a top-level task fails with, formatted. */
typedef void (*weft_error_cb)(weft_runtime *rt, const char *msg, void *ud);

/* Called from the runtime's thread with its Lua state (see weft_post). */
typedef void (*weft_post_cb)(lua_State *L, void *ud);

typedef struct weft_config {
  int verbose;            /* error reports carry causes and full details */
  unsigned budget;        /* task resumes per loop turn; 0: the default */
  weft_error_cb on_error; /* each top-level failure; NULL: weft_last_error */
  void *ud;               /* passed to on_error */
  const char *log_path;   /* append the full record of each top-level
                             failure to this file (WEFT_LOG); may be NULL */
  int virtual_time;       /* top-level tasks run on virtual time */
  int workers;            /* worker threads for weft.work; 0: WEFT_WORKERS,
                             else the number of CPUs */
} weft_config;

/* Create a runtime with its own loop and Lua state. NULL on out-of-memory,
** or when the runtime's Lua modules fail to load. cfg may be NULL. */
weft_runtime *weft_new(const weft_config *cfg);

/* Create a runtime on an existing Lua state and loop; loop may be NULL for
** a loop of its own. L is the state's main thread, or a coroutine, which
** the runtime then keeps alive (it runs weft_run and weft_free on it); the
** state must outlive the runtime, and
** weft_free does not close it. Do not call weft_free from a callback of the
** host's loop. A state has at most one runtime at a time: NULL when L
** already has one (or is NULL), or as weft_new. After weft_free the state
** may be attached again; what the old runtime's `weft` module returned must
** not be used any more. */
weft_runtime *weft_attach(lua_State *L, uv_loop_t *loop,
                          const weft_config *cfg);

/* Load a script (path NULL: standard input) and start it as a top-level
** task named after the path ("stdin" for NULL), with the global `arg` set as lua(1) does (argv[0] is
** the script) and argv[1..] as its `...`. LuaJIT passes at most about 8,000
** values in one call: `...` holds the first WEFT_MAX_SCRIPT_ARGS arguments,
** `arg` holds them all. WEFT_ESCRIPT when the script cannot be read or has
** a syntax error (weft_last_error says why); WEFT_EINVAL when rt is NULL or
** argv is NULL with argc > 0. An interrupt that came while the runtime was
** idle (no task alive) is dropped here: it is not meant for this script. */
int weft_spawn_file(weft_runtime *rt, const char *path, int argc, char **argv);

/* Load a chunk and start it as a top-level task; name is the chunk name
** used in messages (as lua_load's; NULL: "=?"), and the task is named
** after it (without a leading "=" or "@"; "main" for NULL). WEFT_EINVAL
** when rt or chunk is NULL. Drops an interrupt of an idle runtime, as
** weft_spawn_file. */
int weft_spawn_string(weft_runtime *rt, const char *chunk, const char *name);

/* Run until every task has finished. 0 when all top-level tasks succeeded;
** WEFT_ETASK when one failed; WEFT_EINTR when one failed because the runtime
** was interrupted; WEFT_EDEADLK when every task is blocked for good (the
** report is in weft_last_error). On WEFT_EDEADLK the blocked tasks have been
** cancelled (the deadlock as cause) and run to their end, and those that
** blocked again were dropped, so the runtime is ready for the next script;
** what the unwinding tasks fail with is not reported. WEFT_EINVAL when rt is
** NULL. */
int weft_run(weft_runtime *rt);

/* Run ready tasks, due timers and I/O callbacks without blocking, for
** about budget_ms: timers and resumes both count against it, and what is
** left runs at the next step, in order. Returns the number of unfinished
** tasks (0 when none is left), or a negative code as weft_run (WEFT_ETASK
** when the last tasks ended and one failed; WEFT_EINVAL for a NULL rt).
** A top-level task that fails is reported to on_error in the step it
** fails in. Never reports a deadlock: the host may still post work. For
** hosts that drive the runtime per frame. */
int weft_step(weft_runtime *rt, double budget_ms);

/* Milliseconds until the runtime has something to do: 0 when tasks are
** ready (also those the host's own Lua code made ready since the last
** step, with weft.go or ch:try_send) or a finished job or a post waits,
** -1 when nothing is due (only a post, a signal or I/O can wake it). With
** weft_backend_fd, a host with its own event loop steps only when needed
** (the cqueues protocol). WEFT_EINVAL for a NULL rt. */
int weft_next_timeout(weft_runtime *rt);

/* 1 when nothing can ever wake a task: none is
** ready, no timer is armed, no I/O is pending and no event is waiting
** (what weft_run reports as a deadlock when tasks are alive), else 0. A
** stepping host (the REPL) uses it to report a line that deadlocked. */
int weft_is_stuck(weft_runtime *rt);

/* The loop's backend descriptor (epoll on Linux): readable when I/O or a
** post is pending. WEFT_EINVAL for a NULL rt. */
int weft_backend_fd(weft_runtime *rt);

/* Cancel every task (the root context: kind "canceled", cause kind
** "shutdown") and step until they end or grace_ms passes. 0 when every
** task ended, else how many are still alive; WEFT_EBUSY inside a step. */
int weft_shutdown(weft_runtime *rt, double grace_ms);

/* Queue fn(L, ud) to run on the runtime's thread at its next step. Any
** thread may call this. 0, WEFT_ENOMEM, or WEFT_EINVAL when rt or fn is
** NULL. */
int weft_post(weft_runtime *rt, weft_post_cb fn, void *ud);

/* Cancel the root context: every task's waits fail with kind "canceled".
** Async-signal-safe, callable from any thread (it is what Ctrl-C does). It
** applies to the tasks alive when the runtime next acts on it; with none
** alive, the next weft_spawn_* drops it. */
void weft_interrupt(weft_runtime *rt);

/* 1 while an interrupt has been asked for and the runtime has not acted on
** it yet (its tasks are not cancelled yet), else 0. Async-signal-safe,
** callable from any thread: the weft command uses it to tell a second
** Ctrl-C meant to force the exit from one that came with the first. */
int weft_has_pending_interrupt(weft_runtime *rt);

/* Ask for a dump of every task on stderr at the next step (SIGQUIT).
** Async-signal-safe, callable from any thread. A NULL rt is ignored here,
** in weft_interrupt and in weft_free. */
void weft_request_dump(weft_runtime *rt);

/* Free the runtime: close its handles, its loop if it owns it, and its Lua
** state if it created it. Called from a callback the runtime runs (a
** weft_post function, on_error), it stops the weft_run, weft_step or
** weft_shutdown running it, which frees the runtime as it returns. */
void weft_free(weft_runtime *rt);

/* The last error report (failed task, deadlock, load error), or "". */
const char *weft_last_error(weft_runtime *rt);

/* The Lua state the runtime runs in (NULL for a NULL rt). */
lua_State *weft_lua(weft_runtime *rt);

/* The message and the name of a weft or libuv code: static strings, with a
** fixed text for a code neither knows ("unknown error", "UNKNOWN"). */
const char *weft_strerror(int err);
const char *weft_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif
