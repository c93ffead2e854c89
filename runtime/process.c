/*
** process.c: child processes for tasks, on uv_spawn.
**
** A child's uv_process_t lives in a struct weft__proc outside the Lua heap;
** the userdata (struct lproc) holds a pointer to it and, once the child has
** exited, its status. The handle is closed when the child exits (libuv has
** reaped it by then), never before: closing the handle of a running child
** would leave its exit unobserved and the child a zombie. So a proc that
** is collected while its child runs is only detached; its exit callback
** reaps it and closes the handle. The handle is referenced only while a
** task waits, so that a child does not hide a deadlock. Only when the
** runtime is freed are children still running ended and reaped by hand
** (weft__procs_free, called by weft_free: not by a finalizer, since a
** host's state that a runtime was attached to outlives it, and would run
** one too late or never). The runtime lists them (rt->procs) while they
** run, and every proc is on its live list (io.c) until its handles have
** closed.
**
** A wait is an I/O operation (io.c): the exit callback completes the ids of
** the tasks waiting. Cancelling a wait terminates the child: SIGTERM at
** once, SIGKILL when the grace period ends (a timer, closed with the
** process handle).
**
** A child's pipes are streams (stream.c), conns like TCP's: spawn makes
** them before the child and hands them to lua/weft/process.lua.
*/
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define PROCESS_MT "weft.process"
#define PIPE_KIND "weft.process.conn"
#define FREE_GRACE_NS 100000000ull /* weft_free: SIGTERM to SIGKILL */

struct lproc;

struct weft__proc {
  uv_process_t h;
  uv_timer_t grace; /* SIGKILL when the grace ends; initialised on demand */
  weft_runtime *rt;
  struct weft__live live; /* in rt->live until its handles have closed */
  struct lproc *u; /* the userdata, or NULL once collected */
  struct weft__proc *prev, *next; /* in rt->procs, while listed */
  int listed;
  int nopen;                /* handles not yet closed: freed at 0 */
  int has_timer, closing;
  int reaped; /* by weft__procs_free's waitpid: libuv will not see it */
  int wstatus; /* what that waitpid said, when reaped is 2 */
  int *waits; /* ids of the tasks waiting */
  int nwaits, capwaits;
};

struct lproc {
  struct weft__proc *p; /* NULL once the handles are closed */
  int pid;
  int exited;
  int64_t code;
  int sig;
};

/*{======================================================================
** Signal names (shared with signal.c)
**=======================================================================*/

static const struct {
  const char *name;
  int num;
} signames[] = {
    {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},     {"SIGQUIT", SIGQUIT},
    {"SIGILL", SIGILL},   {"SIGTRAP", SIGTRAP},   {"SIGABRT", SIGABRT},
    {"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},     {"SIGKILL", SIGKILL},
    {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV},   {"SIGUSR2", SIGUSR2},
    {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM},   {"SIGTERM", SIGTERM},
    {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT},   {"SIGSTOP", SIGSTOP},
    {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN},   {"SIGTTOU", SIGTTOU},
    {"SIGURG", SIGURG},   {"SIGXCPU", SIGXCPU},   {"SIGXFSZ", SIGXFSZ},
    {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
    {"SIGIO", SIGIO},     {"SIGSYS", SIGSYS},
};

const char *weft__signal_name(int num) {
  for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
    if (signames[i].num == num) return signames[i].name;
  return NULL;
}

/* The signal at argument arg: a name ("SIGTERM" or "TERM") or a number. */
int weft__check_signal(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer n = lua_tointeger(L, arg);
    if (n < 1 || n > 64) return luaL_argerror(L, arg, "no such signal");
    return (int)n;
  }
  const char *s = luaL_checkstring(L, arg);
  for (size_t i = 0; i < sizeof signames / sizeof signames[0]; i++)
    if (strcmp(signames[i].name, s) == 0 ||
        strcmp(signames[i].name + 3, s) == 0)
      return signames[i].num;
  return luaL_argerror(L, arg, lua_pushfstring(L, "no signal '%s'", s));
}

/*}======================================================================*/

static void proc_on_closed(uv_handle_t *h) {
  struct weft__proc *p = h->data;
  if (--p->nopen > 0) return;
  if (p->u != NULL) p->u->p = NULL;
  weft__live_del(&p->live);
  free(p->waits);
  free(p);
}

/* Close p's handles (once) and take it off its runtime's list. */
static void proc_close(struct weft__proc *p) {
  if (p->closing) return;
  p->closing = 1;
  if (p->listed) {
    if (p->prev) p->prev->next = p->next;
    else p->rt->procs = p->next;
    if (p->next) p->next->prev = p->prev;
    p->listed = 0;
  }
  uv_close((uv_handle_t *)&p->h, proc_on_closed);
  if (p->has_timer) uv_close((uv_handle_t *)&p->grace, proc_on_closed);
}

static int push_status(lua_State *L, void *ud) {
  struct lproc *u = ud;
  lua_pushinteger(L, (lua_Integer)u->code);
  if (u->sig != 0) {
    const char *name = weft__signal_name(u->sig);
    if (name) lua_pushstring(L, name);
    else lua_pushinteger(L, u->sig);
  } else {
    lua_pushnil(L);
  }
  return 2;
}

static void proc_on_exit(uv_process_t *h, int64_t status, int sig) {
  struct weft__proc *p = h->data;
  struct lproc st = {NULL, h->pid, 1, sig != 0 ? 128 + sig : status, sig};
  if (p->u != NULL) *p->u = st; /* which also detaches it from p */
  p->u = NULL;
  /* The waits are delivered before the close, and each at most once. */
  int n = p->nwaits;
  p->nwaits = 0;
  for (int i = 0; i < n; i++) weft__io_complete(p->rt, p->waits[i],
                                                push_status, &st);
  proc_close(p);
}

static void on_grace(uv_timer_t *t) {
  struct weft__proc *p = t->data;
  uv_process_kill(&p->h, SIGKILL);
}

static struct lproc *check_proc(lua_State *L) {
  return luaL_checkudata(L, 1, PROCESS_MT);
}

/* End p: cut it off from its userdata, which keeps how the child ended if
** weft__procs_free reaped it (kill then fails with ESRCH, a wait returns
** the status), and close it. weft__procs_free calls it once the child is
** reaped; by the time weft_free ends its live list, every proc is closing
** and this does nothing more. */
static void proc_end(struct weft__live *l) {
  struct weft__proc *p = weft__container(l, struct weft__proc, live);
  if (p->u != NULL && p->reaped == 2) {
    int w = p->wstatus, sig = WIFSIGNALED(w) ? WTERMSIG(w) : 0;
    struct lproc st = {NULL, p->h.pid, 1, sig ? 128 + sig : WEXITSTATUS(w),
                       sig};
    *p->u = st;
  } else if (p->u != NULL) {
    p->u->p = NULL;
  }
  p->u = NULL;
  p->nwaits = 0;
  proc_close(p);
}

/*{======================================================================
** Lua binding: weft.proccore, used by lua/weft/process.lua
**=======================================================================*/

/* Read the string array at t[k] (1..n) into a NULL-terminated vector.
** The vector is anchored on the stack, then the list above it, which
** anchors its strings: one slot each however long the list (a slot per
** string overflowed the stack at ~65,000 arguments). process.lua made
** the list, of strings only, with no zero byte. */
static char **strings(lua_State *L, int t, const char *k, int first) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  size_t n = lua_objlen(L, -1);
  char **v = lua_newuserdata(L, (n + (size_t)first + 1) * sizeof *v);
  lua_insert(L, -2);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "proccore.spawn: %s[%d] is not a string", k, (int)i + 1);
    v[i + (size_t)first] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n + (size_t)first] = NULL;
  return v;
}

static const char *const stdio_modes[] = {"inherit", "pipe", "null", NULL};

/* proccore.spawn{file=, args=, cwd=, env=, stdio={m0, m1, m2}}
**   -> proc, stdin, stdout, stderr (streams or false) | nil, err
** args holds argv[1..]; env, when given, is a list of "K=V". */
static int lproc_spawn(lua_State *L) {
  weft_runtime *rt = weft__rt(L);
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  struct weft__stream *pipes[3] = {NULL, NULL, NULL};
  int pipe_at[3] = {0, 0, 0}; /* their userdata on the stack */
  int nullfd = -1, rc = 0;
  char what[300];
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "file");
  const char *file = luaL_checkstring(L, -1);
  memset(&o, 0, sizeof o);
  o.file = file;
  char **args = strings(L, 1, "args", 1);
  if (args == NULL) {
    args = lua_newuserdata(L, 2 * sizeof *args);
    args[1] = NULL;
  }
  args[0] = (char *)file;
  o.args = args;
  o.env = strings(L, 1, "env", 0);
  lua_getfield(L, 1, "cwd");
  o.cwd = lua_tostring(L, -1);
  lua_getfield(L, 1, "stdio");
  int stdio = lua_gettop(L);
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  for (int i = 0; i < 3; i++) {
    lua_rawgeti(L, stdio, i + 1);
    int m = luaL_checkoption(L, -1, "inherit", stdio_modes);
    lua_pop(L, 1);
    if (m == 1) {
      /* A stream userdata is safe to leave to __gc even if we raise. */
      pipes[i] = weft__stream_new_pipe(L, PIPE_KIND);
      pipe_at[i] = lua_gettop(L);
      snprintf(pipes[i]->name, sizeof pipes[i]->name, "%s of %s", names[i],
               file);
      io[i].flags = UV_CREATE_PIPE |
                    (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      io[i].data.stream = &pipes[i]->h.stream;
    } else if (m == 2) {
      if (nullfd < 0) nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (nullfd < 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
      }
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = nullfd;
    } else {
      io[i].flags = UV_INHERIT_FD;
      io[i].data.fd = i;
    }
  }
  o.stdio = io;
  o.stdio_count = 3;
  o.exit_cb = proc_on_exit;

  struct lproc *u = lua_newuserdata(L, sizeof *u);
  memset(u, 0, sizeof *u);
  luaL_getmetatable(L, PROCESS_MT);
  lua_setmetatable(L, -2);
  int ui = lua_gettop(L);
  struct weft__proc *p = calloc(1, sizeof *p);
  if (p == NULL) {
    rc = UV_ENOMEM;
    goto fail;
  }
  p->rt = rt;
  p->h.data = p;
  p->grace.data = p;
  p->nopen = 1;
  /* Listed before uv_spawn, which initialises the handle even when it
  ** fails (proc_on_closed takes it off). */
  weft__live_add(rt, &p->live, proc_end);
  /* What the child inherits is written in order with what it writes. */
  fflush(stdout);
  fflush(stderr);
  rc = uv_spawn(rt->loop, &p->h, &o);
  if (rc < 0) {
    proc_close(p); /* libuv initialised the handle even so */
    goto fail;
  }
  /* NOTE: unreferenced, as an idle conn is: a running child nobody waits
  ** for cannot wake a task, so it must not hide a deadlock of the tasks
  ** around it for as long as it runs (gh-11). lproc_wait refs it. */
  uv_unref((uv_handle_t *)&p->h);
  p->u = u;
  u->p = p;
  u->pid = p->h.pid;
  p->listed = 1;
  p->next = rt->procs;
  if (rt->procs) rt->procs->prev = p;
  rt->procs = p;
  if (nullfd >= 0) close(nullfd);
  lua_pushvalue(L, ui);
  for (int i = 0; i < 3; i++) {
    if (pipes[i] != NULL) {
      lua_pushvalue(L, pipe_at[i]);
    } else {
      lua_pushboolean(L, 0);
    }
  }
  return 4;

fail:
  if (nullfd >= 0) close(nullfd);
  for (int i = 0; i < 3; i++)
    if (pipes[i] != NULL) weft__stream_close(pipes[i]);
  snprintf(what, sizeof what, "spawn %s", file);
  return weft__io_push_error(L, rc, what);
}

/* proc:pid() -> pid */
static int lproc_pid(lua_State *L) {
  lua_pushinteger(L, check_proc(L)->pid);
  return 1;
}

/* proccore.status(proc) -> code, signal if it exited | false */
static int lproc_status(lua_State *L) {
  struct lproc *u = check_proc(L);
  if (!u->exited) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return push_status(L, u);
}

/* proccore.kill(proc, sig) -> true | nil, err */
static int lproc_kill(lua_State *L) {
  struct lproc *u = check_proc(L);
  int sig = weft__check_signal(L, 2);
  int rc = u->p != NULL && !u->exited ? uv_process_kill(&u->p->h, sig)
                                      : UV_ESRCH;
  if (rc < 0) {
    char what[64];
    snprintf(what, sizeof what, "kill %d", u->pid);
    return weft__io_push_error(L, rc, what);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* proccore.wait(id, proc) -> proc: the exit completes id. */
static int lproc_wait(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct lproc *u = luaL_checkudata(L, 2, PROCESS_MT);
  struct weft__proc *p = u->p;
  if (p == NULL || u->exited) return luaL_error(L, "wait: process exited");
  if (p->nwaits == p->capwaits) {
    int cap = p->capwaits ? 2 * p->capwaits : 4;
    int *nw = realloc(p->waits, (size_t)cap * sizeof *nw);
    if (nw == NULL) return luaL_error(L, "weft.process: out of memory");
    p->waits = nw;
    p->capwaits = cap;
  }
  /* A child keeps the loop alive only while a task waits for it (see
  ** lproc_spawn). */
  if (p->nwaits++ == 0) uv_ref((uv_handle_t *)&p->h);
  p->waits[p->nwaits - 1] = id;
  lua_settop(L, 2);
  return 1;
}

/* proccore.terminate(proc, id, grace): wait id is gone; end the child with
** SIGTERM now and SIGKILL after `grace` seconds. */
static int lproc_terminate(lua_State *L) {
  struct lproc *u = check_proc(L);
  int id = (int)luaL_checkinteger(L, 2);
  lua_Number grace = luaL_checknumber(L, 3);
  struct weft__proc *p = u->p;
  if (p == NULL || u->exited || p->closing) return 0;
  for (int i = 0; i < p->nwaits; i++) {
    if (p->waits[i] == id) {
      p->waits[i] = p->waits[--p->nwaits];
      if (p->nwaits == 0) uv_unref((uv_handle_t *)&p->h);
      break;
    }
  }
  uv_process_kill(&p->h, SIGTERM);
  if (!p->has_timer) {
    uv_timer_init(p->rt->loop, &p->grace);
    p->has_timer = 1;
    p->nopen++;
  }
  if (!uv_is_active((uv_handle_t *)&p->grace)) {
    /* A double past 2^64 does not convert (undefined; 0 on x86-64, which
    ** was a SIGKILL at once for grace = math.huge): past 2^63 ms, which is
    ** never, libuv is given its own "never" (it clamps the sum). */
    double ms = grace > 0 ? grace * 1000 : 0;
    uint64_t due = ms < 0x1p63 ? (uint64_t)ms : UINT64_MAX;
    uv_timer_start(&p->grace, on_grace, due, 0);
  }
  return 0;
}

static int lproc__gc(lua_State *L) {
  struct lproc *u = check_proc(L);
  struct weft__proc *p = u->p;
  if (p == NULL) return 0;
  u->p = NULL;
  p->u = NULL;
  p->nwaits = 0; /* nobody can wait on a proc that was collected */
  if (p->closing) return 0;
  /* Its exit callback reaps it (or weft__procs_free, if the runtime goes
  ** first); it keeps no task waiting meanwhile. */
  uv_unref((uv_handle_t *)&p->h);
  return 0;
}

static int lproc__tostring(lua_State *L) {
  struct lproc *u = check_proc(L);
  if (u->exited)
    lua_pushfstring(L, PROCESS_MT ": %d (exited)", u->pid);
  else
    lua_pushfstring(L, PROCESS_MT ": %d (running)", u->pid);
  return 1;
}

/*
** The runtime is going: children still running are ended and reaped here.
** libuv reaps a child only in its exit callback, which no loop turn runs
** once the handle is closed, so closing it alone left the child a zombie
** of the host (and one ignoring SIGTERM an orphan outliving it, holding
** the host's stdout). So: SIGTERM to all, up to FREE_GRACE_NS for them to
** exit, SIGKILL to the rest, and waitpid for each, before the handles are
** closed (gh-11). Each proc's userdata, if Lua still has it (a host's
** state), is cut off from it (proc_end).
*/
void weft__procs_free(weft_runtime *rt) {
  for (struct weft__proc *p = rt->procs; p != NULL; p = p->next)
    uv_process_kill(&p->h, SIGTERM);
  uint64_t until = uv_hrtime() + FREE_GRACE_NS;
  for (int left = 1; left;) {
    left = 0;
    for (struct weft__proc *p = rt->procs; p != NULL; p = p->next) {
      if (p->reaped) continue;
      pid_t rc = waitpid(p->h.pid, &p->wstatus, WNOHANG);
      if (rc == 0 || (rc < 0 && errno == EINTR))
        left++;
      else
        p->reaped = rc > 0 ? 2 : 1;
    }
    if (left && uv_hrtime() >= until) {
      for (struct weft__proc *p = rt->procs; p != NULL; p = p->next) {
        if (p->reaped) continue;
        kill(p->h.pid, SIGKILL);
        pid_t rc;
        do
          rc = waitpid(p->h.pid, &p->wstatus, 0);
        while (rc < 0 && errno == EINTR);
        p->reaped = rc > 0 ? 2 : 1;
      }
      left = 0;
    }
    if (left) uv_sleep(1);
  }
  while (rt->procs != NULL)
    proc_end(&rt->procs->live); /* which takes it off rt->procs */
}

static void new_meta(lua_State *L, const char *name, const luaL_Reg *m) {
  luaL_newmetatable(L, name);
  luaL_register(L, NULL, m);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

int weft__open_proccore(lua_State *L) {
  static const luaL_Reg proc_meta[] = {
      {"__gc", lproc__gc},
      {"__close", lproc__gc},
      {"__tostring", lproc__tostring},
      {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"spawn", lproc_spawn},
      {"pid", lproc_pid},
      {"status", lproc_status},
      {"kill", lproc_kill},
      {"wait", lproc_wait},
      {"terminate", lproc_terminate},
      {NULL, NULL},
  };
  new_meta(L, PROCESS_MT, proc_meta);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
