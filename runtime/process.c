/*
** process.c: child processes for tasks, on uv_spawn, and the pipes that
** talk to them.
**
** A child's uv_process_t lives in a struct proc outside the Lua heap; the
** userdata (struct lproc) holds a pointer to it and, once the child has
** exited, its status. The handle is closed when the child exits (libuv has
** reaped it by then), never before: closing the handle of a running child
** would leave its exit unobserved and the child a zombie. So a proc that
** is collected while its child runs is only detached (and unreferenced, so
** that it does not hide a deadlock); its exit callback reaps it and closes
** the handle. Only when the Lua state closes (the runtime is freed) are the
** handles of children still running closed, after a SIGTERM: the list of
** live procs hangs off a registry object whose finalizer runs only then.
**
** A wait is an I/O operation (io.c): the exit callback completes the ids of
** the tasks waiting. Cancelling a wait terminates the child: SIGTERM at
** once, SIGKILL when the grace period ends (a timer, closed with the
** process handle).
**
** The pipes section is a minimal stream for a child's pipes and for stdio
** (pipes and terminals): reads only while a task waits (so a child that
** writes faster than we read is held back by its pipe), writes through
** write requests that copy their data.
*/
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PROCESS_MT "weft.process"
#define PIPE_MT "weft.process.pipe"
#define PROCS_KEY "weft.process.procs"

struct lproc;

struct proc {
  uv_process_t h;
  uv_timer_t grace; /* SIGKILL when the grace ends; initialised on demand */
  weft_runtime *rt;
  struct lproc *u; /* the userdata, or NULL once collected */
  struct procs *list;
  struct proc *prev, *next; /* in list, while open */
  int nopen;                /* handles not yet closed: freed at 0 */
  int has_timer, closing;
  int *waits; /* ids of the tasks waiting */
  int nwaits, capwaits;
};

struct lproc {
  struct proc *p; /* NULL once the handles are closed */
  int pid;
  int exited;
  int64_t code;
  int sig;
};

/* The open procs of a runtime (see the top of the file). */
struct procs {
  struct proc *head;
  int closed;
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
  struct proc *p = h->data;
  if (--p->nopen > 0) return;
  if (p->u != NULL) p->u->p = NULL;
  free(p->waits);
  free(p);
}

/* Close p's handles (once) and take it off its runtime's list. */
static void proc_close(struct proc *p) {
  if (p->closing) return;
  p->closing = 1;
  if (p->list != NULL) {
    if (p->prev) p->prev->next = p->next;
    else p->list->head = p->next;
    if (p->next) p->next->prev = p->prev;
    p->list = NULL;
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
  struct proc *p = h->data;
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
  struct proc *p = t->data;
  uv_process_kill(&p->h, SIGKILL);
}

static struct lproc *check_proc(lua_State *L) {
  return luaL_checkudata(L, 1, PROCESS_MT);
}

/* The registry object listing a runtime's open procs, made on first use. */
static struct procs *procs_of(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, PROCS_KEY);
  struct procs *ps = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ps;
}

/*{======================================================================
** Pipes: a minimal stream over uv_pipe_t / uv_tty_t
**=======================================================================*/

#define READ_CHUNK 65536

struct lpipe;

struct pipe {
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } u;
  weft_runtime *rt;
  struct lpipe *ud; /* the userdata, or NULL once collected */
  char *buf;        /* bytes read that no task took yet: buf[off..len) */
  size_t off, len, cap;
  size_t want;  /* the waiting read's max */
  int read_id;  /* the waiting read, or 0 */
  int status;   /* 0, or the read side's end: UV_EOF or an error */
  int reading;
  int fd;       /* stdio: restore its flags after the close; else -1 */
  int fd_flags;
};

struct lpipe {
  struct pipe *p; /* NULL once closed */
  char what[80];  /* for error messages: "stdout of sleep" */
};

struct wreq {
  uv_write_t req;
  weft_runtime *rt;
  int id;
  int abandoned;
  int status;
  char what[80];
  char data[]; /* a copy: the string may be collected meanwhile */
};

static void pipe_on_closed(uv_handle_t *h) {
  struct pipe *p = h->data;
  if (p->fd >= 0) fcntl(p->fd, F_SETFL, p->fd_flags);
  free(p->buf);
  free(p);
}

static void pipe_close(struct pipe *p) {
  if (uv_is_closing(&p->u.h)) return;
  if (p->ud != NULL) p->ud->p = NULL;
  p->ud = NULL;
  uv_close(&p->u.h, pipe_on_closed);
}

static void pipe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  struct pipe *p = h->data;
  (void)hint;
  if (p->off > 0 && p->off == p->len) p->off = p->len = 0;
  if (p->cap - p->len < READ_CHUNK) {
    size_t cap = p->len + READ_CHUNK;
    char *nb = realloc(p->buf, cap);
    if (nb == NULL) {
      *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    p->buf = nb;
    p->cap = cap;
  }
  *b = uv_buf_init(p->buf + p->len, READ_CHUNK);
}

/* Push what a read returns: up to p->want buffered bytes, else the end. */
static int push_taken(lua_State *L, void *ud) {
  struct pipe *p = ud;
  size_t n = p->len - p->off;
  if (n > 0) {
    if (n > p->want) n = p->want;
    lua_pushlstring(L, p->buf + p->off, n);
    p->off += n;
    return 1;
  }
  const char *what = p->ud != NULL ? p->ud->what : "read";
  if (p->status == UV_EOF) {
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "EOF");
    lua_setfield(L, -2, "code");
    lua_pushliteral(L, "end of file");
    lua_setfield(L, -2, "text");
    lua_pushstring(L, what);
    lua_setfield(L, -2, "what");
    return 2;
  }
  return weft__io_push_error(L, p->status, what);
}

static void pipe_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct pipe *p = s->data;
  (void)b;
  if (nread == 0) return; /* EAGAIN */
  if (nread > 0) {
    p->len += (size_t)nread;
  } else {
    p->status = (int)nread;
  }
  if (p->read_id != 0) {
    int id = p->read_id;
    p->read_id = 0;
    p->reading = 0;
    uv_read_stop(s);
    weft__io_complete(p->rt, id, push_taken, p);
  } else if (nread < 0) {
    p->reading = 0;
    uv_read_stop(s);
  }
}

static int push_written(lua_State *L, void *ud) {
  struct wreq *w = ud;
  if (w->status == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return weft__io_push_error(L, w->status, w->what);
}

static void on_write(uv_write_t *req, int status) {
  struct wreq *w = req->data;
  w->status = status;
  if (!w->abandoned) weft__io_complete(w->rt, w->id, push_written, w);
  free(w);
}

static struct pipe *pipe_new(weft_runtime *rt) {
  struct pipe *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->rt = rt;
  p->fd = -1;
  return p;
}

/* Push a userdata for pipe p (already initialised), named `what`. */
static void push_pipe(lua_State *L, struct pipe *p, const char *what) {
  struct lpipe *u = lua_newuserdata(L, sizeof *u);
  u->p = p;
  size_t n = strlen(what); /* a long command name is cut short */
  if (n >= sizeof u->what) n = sizeof u->what - 1;
  memcpy(u->what, what, n);
  u->what[n] = '\0';
  p->ud = u;
  p->u.h.data = p;
  luaL_getmetatable(L, PIPE_MT);
  lua_setmetatable(L, -2);
}

static struct pipe *check_pipe(lua_State *L, int arg) {
  struct lpipe *u = luaL_checkudata(L, arg, PIPE_MT);
  if (u->p == NULL) luaL_error(L, "attempt to use a closed pipe");
  return u->p;
}

/*}======================================================================*/

/*{======================================================================
** Lua binding: weft.proccore, used by lua/weft/process.lua and stdio.lua
**=======================================================================*/

/* Read the string array at t[k] (1..n) into a NULL-terminated vector. */
static char **strings(lua_State *L, int t, const char *k, int first) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t n = lua_objlen(L, -1);
  char **v = lua_newuserdata(L, (n + (size_t)first + 1) * sizeof *v);
  /* The vector is anchored below the table, and each string in it. */
  lua_insert(L, -2);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (int)i + 1);
    v[i + (size_t)first] = (char *)lua_tostring(L, -1);
    lua_insert(L, -3);
  }
  v[n + (size_t)first] = NULL;
  lua_pop(L, 1);
  return v;
}

static const char *const stdio_modes[] = {"inherit", "pipe", "null", NULL};

/* proccore.spawn{file=, args=, cwd=, env=, stdio={m0, m1, m2}}
**   -> proc, stdin, stdout, stderr (pipes or false) | nil, err
** args holds argv[1..]; env, when given, is a list of "K=V". */
static int lproc_spawn(lua_State *L) {
  weft_runtime *rt = weft__rt(L);
  struct procs *ps = procs_of(L);
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  struct pipe *pipes[3] = {NULL, NULL, NULL};
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
  for (int i = 0; i < 3; i++) {
    lua_rawgeti(L, -1, i + 1);
    int m = luaL_checkoption(L, -1, "inherit", stdio_modes);
    lua_pop(L, 1);
    if (m == 1) {
      pipes[i] = pipe_new(rt);
      if (pipes[i] == NULL) {
        rc = UV_ENOMEM;
        goto fail;
      }
      uv_pipe_init(rt->loop, &pipes[i]->u.pipe, 0);
      pipes[i]->u.h.data = pipes[i];
      io[i].flags = UV_CREATE_PIPE |
                    (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      io[i].data.stream = &pipes[i]->u.s;
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
  struct proc *p = calloc(1, sizeof *p);
  if (p == NULL) {
    rc = UV_ENOMEM;
    goto fail;
  }
  p->rt = rt;
  p->h.data = p;
  p->grace.data = p;
  p->nopen = 1;
  /* What the child inherits is written in order with what it writes. */
  fflush(stdout);
  fflush(stderr);
  rc = uv_spawn(rt->loop, &p->h, &o);
  if (rc < 0) {
    proc_close(p); /* libuv initialised the handle even so */
    goto fail;
  }
  p->u = u;
  u->p = p;
  u->pid = p->h.pid;
  p->list = ps;
  p->next = ps->head;
  if (ps->head) ps->head->prev = p;
  ps->head = p;
  if (nullfd >= 0) close(nullfd);
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  lua_pushvalue(L, ui);
  for (int i = 0; i < 3; i++) {
    if (pipes[i] != NULL) {
      snprintf(what, sizeof what, "%s of %s", names[i], file);
      push_pipe(L, pipes[i], what);
    } else {
      lua_pushboolean(L, 0);
    }
  }
  return 4;

fail:
  if (nullfd >= 0) close(nullfd);
  for (int i = 0; i < 3; i++)
    if (pipes[i] != NULL) uv_close(&pipes[i]->u.h, pipe_on_closed);
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
  struct proc *p = u->p;
  if (p == NULL || u->exited) return luaL_error(L, "wait: process exited");
  if (p->nwaits == p->capwaits) {
    int cap = p->capwaits ? 2 * p->capwaits : 4;
    int *nw = realloc(p->waits, (size_t)cap * sizeof *nw);
    if (nw == NULL) return luaL_error(L, "weft.process: out of memory");
    p->waits = nw;
    p->capwaits = cap;
  }
  p->waits[p->nwaits++] = id;
  lua_settop(L, 2);
  return 1;
}

/* proccore.terminate(proc, id, grace): wait id is gone; end the child with
** SIGTERM now and SIGKILL after `grace` seconds. */
static int lproc_terminate(lua_State *L) {
  struct lproc *u = check_proc(L);
  int id = (int)luaL_checkinteger(L, 2);
  lua_Number grace = luaL_checknumber(L, 3);
  struct proc *p = u->p;
  if (p == NULL || u->exited || p->closing) return 0;
  for (int i = 0; i < p->nwaits; i++) {
    if (p->waits[i] == id) {
      p->waits[i] = p->waits[--p->nwaits];
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
    double ms = grace > 0 ? grace * 1000 : 0;
    uv_timer_start(&p->grace, on_grace, (uint64_t)ms, 0);
  }
  return 0;
}

static int lproc__gc(lua_State *L) {
  struct lproc *u = check_proc(L);
  struct proc *p = u->p;
  if (p == NULL) return 0;
  u->p = NULL;
  p->u = NULL;
  p->nwaits = 0; /* nobody can wait on a proc that was collected */
  if (p->closing) return 0;
  if (p->list == NULL || p->list->closed) {
    uv_process_kill(&p->h, SIGTERM);
    proc_close(p);
  } else {
    /* Its exit callback reaps it; it keeps no task waiting meanwhile. */
    uv_unref((uv_handle_t *)&p->h);
  }
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

/* The runtime is going: children still running get SIGTERM and their
** handles are closed (init reaps them once this process is gone). */
static int lprocs__gc(lua_State *L) {
  struct procs *ps = lua_touserdata(L, 1);
  ps->closed = 1;
  while (ps->head != NULL) {
    struct proc *p = ps->head;
    if (p->u != NULL) p->u->p = NULL;
    p->u = NULL;
    p->nwaits = 0;
    uv_process_kill(&p->h, SIGTERM);
    proc_close(p);
  }
  return 0;
}

/* proccore.open_stdio(fd) -> "tty" | "pipe", pipe | "file" | other kind */
static int lproc_open_stdio(lua_State *L) {
  weft_runtime *rt = weft__rt(L);
  int fd = (int)luaL_checkinteger(L, 1);
  uv_handle_type t = uv_guess_handle(fd);
  const char *kind = t == UV_TTY ? "tty" : t == UV_NAMED_PIPE ? "pipe"
                     : t == UV_FILE ? "file" : t == UV_TCP ? "tcp"
                     : "unknown";
  lua_pushstring(L, kind);
  if (t != UV_TTY && t != UV_NAMED_PIPE) return 1;
  struct pipe *p = pipe_new(rt);
  if (p == NULL) return luaL_error(L, "weft.stdin: out of memory");
  /* libuv makes the descriptor non-blocking; print and io.read expect it
  ** blocking again once the stream is closed. */
  p->fd = fd;
  p->fd_flags = fcntl(fd, F_GETFL);
  int rc = t == UV_TTY ? uv_tty_init(rt->loop, &p->u.tty, fd, fd == 0)
                       : uv_pipe_init(rt->loop, &p->u.pipe, 0);
  if (rc == 0 && t == UV_NAMED_PIPE) {
    rc = uv_pipe_open(&p->u.pipe, fd);
    if (rc < 0) {
      p->u.h.data = p;
      uv_close(&p->u.h, pipe_on_closed);
      return weft__io_push_error(L, rc, "open stdin");
    }
  } else if (rc < 0) {
    free(p);
    return weft__io_push_error(L, rc, "open stdin");
  }
  push_pipe(L, p, fd == 0 ? "stdin" : fd == 1 ? "stdout" : "stderr");
  return 2;
}

/* proccore.take(pipe, max) -> data | false (nothing yet) | nil, err */
static int lpipe_take(lua_State *L) {
  struct pipe *p = check_pipe(L, 1);
  lua_Number max = luaL_checknumber(L, 2);
  if (p->len - p->off == 0 && p->status == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  p->want = max >= 1 ? (size_t)max : 1;
  return push_taken(L, p);
}

/* proccore.read(id, pipe, max) -> pipe: the next bytes complete id. */
static int lpipe_read(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct pipe *p = check_pipe(L, 2);
  lua_Number max = luaL_checknumber(L, 3);
  if (p->read_id != 0) return luaL_error(L, "pipe: another task reads");
  int rc = 0;
  if (!p->reading) rc = uv_read_start(&p->u.s, pipe_alloc, pipe_on_read);
  if (rc < 0) return weft__io_push_error(L, rc, p->ud->what);
  p->reading = 1;
  p->read_id = id;
  p->want = max >= 1 ? (size_t)max : 1;
  lua_settop(L, 2);
  return 1;
}

/* proccore.read_cancel(pipe): the waiting read is gone. */
static int lpipe_read_cancel(lua_State *L) {
  struct lpipe *u = luaL_checkudata(L, 1, PIPE_MT);
  struct pipe *p = u->p;
  if (p == NULL) return 0;
  p->read_id = 0;
  if (p->reading) uv_read_stop(&p->u.s);
  p->reading = 0;
  return 0;
}

/* proccore.write(id, pipe, data) -> request | nil, err */
static int lpipe_write(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct pipe *p = check_pipe(L, 2);
  size_t n;
  const char *data = luaL_checklstring(L, 3, &n);
  struct wreq *w = malloc(sizeof *w + (n > 0 ? n : 1));
  if (w == NULL) return luaL_error(L, "weft.process: out of memory");
  memset(w, 0, sizeof *w);
  w->rt = p->rt;
  w->id = id;
  w->req.data = w;
  snprintf(w->what, sizeof w->what, "%s", p->ud->what);
  memcpy(w->data, data, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  int rc = uv_write(&w->req, &p->u.s, &b, 1, on_write);
  if (rc < 0) {
    free(w);
    return weft__io_push_error(L, rc, p->ud->what);
  }
  lua_pushlightuserdata(L, w);
  return 1;
}

/* proccore.write_cancel(req): the data still goes; nobody hears of it. */
static int lpipe_write_cancel(lua_State *L) {
  struct wreq *w = lua_touserdata(L, 1);
  if (w != NULL) w->abandoned = 1;
  return 0;
}

/* pipe:close(): idempotent. A task waiting to read gets ECANCELED. */
static int lpipe_close(lua_State *L) {
  struct lpipe *u = luaL_checkudata(L, 1, PIPE_MT);
  struct pipe *p = u->p;
  if (p == NULL) return 0;
  if (p->read_id != 0) {
    int id = p->read_id;
    p->read_id = 0;
    p->status = UV_ECANCELED;
    p->off = p->len;
    weft__io_complete(p->rt, id, push_taken, p);
  }
  pipe_close(p);
  return 0;
}

static int lpipe__gc(lua_State *L) {
  struct lpipe *u = luaL_checkudata(L, 1, PIPE_MT);
  if (u->p == NULL) return 0;
  u->p->read_id = 0; /* the state closes: no wait to complete */
  pipe_close(u->p);
  return 0;
}

static int lpipe_is_closed(lua_State *L) {
  struct lpipe *u = luaL_checkudata(L, 1, PIPE_MT);
  lua_pushboolean(L, u->p == NULL);
  return 1;
}

static int lpipe__tostring(lua_State *L) {
  struct lpipe *u = luaL_checkudata(L, 1, PIPE_MT);
  lua_pushfstring(L, PIPE_MT ": %s (%s)", u->what,
                  u->p == NULL ? "closed" : "open");
  return 1;
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
  static const luaL_Reg pipe_meta[] = {
      {"__gc", lpipe__gc},
      {"__close", lpipe_close},
      {"__tostring", lpipe__tostring},
      {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
      {"spawn", lproc_spawn},
      {"pid", lproc_pid},
      {"status", lproc_status},
      {"kill", lproc_kill},
      {"wait", lproc_wait},
      {"terminate", lproc_terminate},
      {"open_stdio", lproc_open_stdio},
      {"take", lpipe_take},
      {"read", lpipe_read},
      {"read_cancel", lpipe_read_cancel},
      {"write", lpipe_write},
      {"write_cancel", lpipe_write_cancel},
      {"close", lpipe_close},
      {"is_closed", lpipe_is_closed},
      {NULL, NULL},
  };
  new_meta(L, PROCESS_MT, proc_meta);
  new_meta(L, PIPE_MT, pipe_meta);
  lua_getfield(L, LUA_REGISTRYINDEX, PROCS_KEY);
  if (lua_isnil(L, -1)) {
    struct procs *ps = lua_newuserdata(L, sizeof *ps);
    memset(ps, 0, sizeof *ps);
    lua_newtable(L);
    lua_pushcfunction(L, lprocs__gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, PROCS_KEY);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
