/*
** stream.c: what TCP conns, pipes and ttys share: a read buffer in C,
** reads that wait for "whatever arrived", a line or an exact count, and
** writes with back pressure.
**
** Bytes go once from the kernel into the buffer (libuv reads into its
** tail) and once from the buffer into the Lua string a read returns.
** Reading starts when a task waits to read and stops when nobody waits and
** HWM bytes are buffered, so a slow reader bounds what a fast peer can make
** us hold (the kernel's window then pushes back on the peer). A write hands
** the bytes to the kernel at once when it can (uv_try_write) and copies
** only the rest into libuv's queue; the writer waits while more than HWM
** bytes are queued, so a fast writer cannot exhaust memory either.
**
** Waits follow io.c: a start function records the task's operation id in
** the stream (read_id, write_id, ...) and the libuv callback completes it.
** The Lua side first asks for what is already there (take, write), so a
** task parks only when it must. Closing clears every id and returns them to
** the Lua side, which wakes their tasks with a "closed" error: a callback
** that comes later (libuv cancels the requests of a closed handle) finds no
** id and only frees.
**
** A stream is on its runtime's live list (io.c) until its handle has
** closed: weft_free closes the streams Lua still holds (stream_end), so
** that a host keeping a conn after weft_free gets "attempt to use a closed
** conn", and the stream's callbacks have all run when weft_free returns.
*/
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define STREAM_MT "weft.stream"
#define HWM (1u << 20)   /* read-ahead and write queue high-water mark */
#define LINE_MAX_LEN HWM /* a longer line is an error, not a buffer */
#define READ_CHUNK 65536
#define WRITE_REF_MIN 16384 /* a queued write this long holds its string */

enum { MODE_ANY, MODE_LINE, MODE_EXACT, MODE_READY };

static void on_close(uv_handle_t *h) {
  struct weft__stream *s = h->data;
  if (s->fd >= 0) fcntl(s->fd, F_SETFL, s->fd_flags);
  weft__live_del(&s->live);
  free(s->buf);
  free(s);
}

/* Close s's handle (once); its memory goes in the close callback. */
void weft__stream_close(struct weft__stream *s) {
  if (s->box != NULL) *s->box = NULL;
  s->box = NULL;
  /* libuv writes nothing after uv_close: the held strings may go. */
  if (s->held != LUA_NOREF) luaL_unref(s->rt->L, LUA_REGISTRYINDEX, s->held);
  s->held = LUA_NOREF;
  s->read_id = s->write_id = s->shut_id = s->conn_id = 0;
  if (!uv_is_closing(&s->h.handle)) uv_close(&s->h.handle, on_close);
}

/* weft_free, on a stream Lua still holds (rt->L is the host's, alive). A
** closing one is left alone: its box may be gone with a closed state. */
static void stream_end(struct weft__live *l) {
  struct weft__stream *s = weft__container(l, struct weft__stream, live);
  if (!uv_is_closing(&s->h.handle)) weft__stream_close(s);
}

static int lstream__gc(lua_State *L);
static int lstream__tostring(lua_State *L);

/* Push the metatable of streams, made on first use. */
static void push_meta(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__gc", lstream__gc},
      {"__close", lstream__gc},
      {"__tostring", lstream__tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, STREAM_MT)) {
    luaL_register(L, NULL, meta);
    lua_pushliteral(L, STREAM_MT);
    lua_setfield(L, -2, "__name");
  }
}

/*
** NOTE: a write to a stream whose other end is closed (a TCP peer, a child
** that exited) raises SIGPIPE, which kills the process by default; libuv
** writes with write(2), which has no MSG_NOSIGNAL. We ignore it (as Go
** does) the first time a conn or a child's pipe is made, unless the host
** installed a handler of its own, and get EPIPE from the write instead.
** Stdin alone does not: a script only reading its stdin keeps dying of a
** closed stdout, as a Unix filter does. A weft.signal listener for SIGPIPE
** is a handler too, and when it stops, libuv and signal.c put back
** SIG_DFL: signal.c then asks again (weft__sigpipe_wanted), or the next
** write to a closed peer would kill the process.
*/
static atomic_int sigpipe_wanted; /* process-wide, as dispositions are */

int weft__sigpipe_wanted(void) {
  return atomic_load(&sigpipe_wanted);
}

void weft__ignore_sigpipe(void) {
  struct sigaction sa;
  atomic_store(&sigpipe_wanted, 1);
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

/*
** Push a new stream userdata and return its stream, whose handle the caller
** initialises at once (uv_*_init, which cannot fail for these types once
** the loop exists). The box is NULL until s is made, so __gc is safe from
** the start.
*/
struct weft__stream *weft__stream_new(lua_State *L, const char *kind) {
  weft_runtime *rt = weft__rt(L); /* before the allocation: it may raise */
  struct weft__stream **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  push_meta(L);
  lua_setmetatable(L, -2);
  struct weft__stream *s = calloc(1, sizeof *s);
  if (s == NULL) luaL_error(L, "weft: out of memory");
  s->rt = rt;
  s->kind = kind;
  s->box = box;
  s->fd = -1;
  s->held = LUA_NOREF;
  s->h.handle.data = s;
  *box = s;
  weft__live_add(rt, &s->live, stream_end);
  return s;
}

/* Push a new stream over an unopened pipe (uv_pipe_init, for uv_spawn's
** UV_CREATE_PIPE or uv_pipe_open), unreferenced as every idle stream. */
struct weft__stream *weft__stream_new_pipe(lua_State *L, const char *kind) {
  struct weft__stream *s = weft__stream_new(L, kind);
  uv_pipe_init(s->rt->loop, &s->h.pipe, 0);
  uv_unref(&s->h.handle);
  weft__ignore_sigpipe();
  return s;
}

/* The open stream at idx; raises on a closed one. */
struct weft__stream *weft__stream_check(lua_State *L, int idx) {
  struct weft__stream **box = luaL_checkudata(L, idx, STREAM_MT);
  if (*box == NULL) luaL_error(L, "attempt to use a closed conn");
  return *box;
}

/* Waiting ties the loop's liveness to the handle (see internal.h). */
static void set_waiting(struct weft__stream *s, int on) {
  if (on) {
    uv_ref(&s->h.handle);
  } else if (s->read_id == 0) {
    uv_unref(&s->h.handle);
  }
}

/*{======================================================================
** Reading
**=======================================================================*/

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  struct weft__stream *s = h->data;
  (void)hint;
  if (s->len == 0) s->off = 0;
  if (s->cap - s->off - s->len < READ_CHUNK) {
    if (s->off > 0 && s->off >= s->len) {
      /* Mostly consumed: moving the rest costs less than growing. */
      memmove(s->buf, s->buf + s->off, s->len);
      s->off = 0;
    }
    if (s->cap - s->off - s->len < READ_CHUNK) {
      size_t cap = s->cap ? s->cap * 2 : READ_CHUNK;
      while (cap - s->off - s->len < READ_CHUNK)
        cap *= 2;
      char *p = realloc(s->buf, cap);
      if (p == NULL) { /* libuv reports UV_ENOBUFS to on_read */
        *b = uv_buf_init(NULL, 0);
        return;
      }
      s->buf = p;
      s->cap = cap;
    }
  }
  /* At most a chunk at a time: on_read stops at HWM, so a slow reader's
  ** buffer stays under HWM + READ_CHUNK. */
  *b = uv_buf_init(s->buf + s->off + s->len, READ_CHUNK);
}

/* Where the first "\n" is, or NULL; remembers how far it looked. */
static const char *find_nl(struct weft__stream *s) {
  if (s->scan >= s->len) return NULL; /* also: no buffer yet */
  const char *p = s->buf + s->off;
  const char *nl = memchr(p + s->scan, '\n', s->len - s->scan);
  if (nl == NULL) s->scan = s->len;
  return nl;
}

static int is_ready(struct weft__stream *s, int mode, size_t n) {
  if (s->status != 0) return 1;
  switch (mode) {
  case MODE_ANY:
  case MODE_READY: return s->len > 0;
  case MODE_EXACT: return s->len >= n;
  default: return find_nl(s) != NULL || s->len > LINE_MAX_LEN;
  }
}

/* Drop the first k buffered bytes. */
static void drop(struct weft__stream *s, size_t k) {
  s->off += k;
  s->len -= k;
  s->scan = s->scan > k ? s->scan - k : 0;
  if (s->len == 0) s->off = 0;
}

static void consume(lua_State *L, struct weft__stream *s, size_t k,
                    size_t skip) {
  lua_pushlstring(L, s->buf + s->off, k);
  drop(s, k + skip);
}

static int push_read_error(lua_State *L, struct weft__stream *s, int code,
                           const char *op) {
  char what[128];
  snprintf(what, sizeof what, "%s %s", op, s->name);
  return weft__io_push_error(L, code, what);
}

/*
** Push what a read in `mode` gets now and return how many values, or 0 if
** it must wait. The bytes buffered before an end or an error are read
** first; a partial line at the end is the last line.
*/
static int take(lua_State *L, struct weft__stream *s, int mode, size_t n) {
  switch (mode) {
  case MODE_READY: /* read_into's wait: take_into reads what came */
    if (s->len > 0 || s->status != 0) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return 0;
  case MODE_ANY:
    if (s->len > 0) {
      consume(L, s, s->len < n ? s->len : n, 0);
      return 1;
    }
    break;
  case MODE_EXACT:
    if (s->len >= n) {
      consume(L, s, n, 0);
      return 1;
    }
    break;
  default: {
    const char *nl = find_nl(s);
    if (nl != NULL) {
      size_t k = (size_t)(nl - (s->buf + s->off));
      size_t cr = k > 0 && nl[-1] == '\r';
      consume(L, s, k - cr, 1 + cr);
      return 1;
    }
    if (s->len > LINE_MAX_LEN)
      return push_read_error(L, s, UV_ENOBUFS, "read_line (over 1 MiB)");
    if (s->status != 0 && s->len > 0) {
      consume(L, s, s->len, 0);
      return 1;
    }
  }
  }
  if (s->status == 0) return 0;
  return push_read_error(L, s, s->status,
                         mode == MODE_EXACT ? "read_exactly" : "read");
}

/* Stop reading when reading is over or nobody waits and HWM is held. */
static void flow(struct weft__stream *s) {
  if (s->reading && (s->status != 0 || (s->read_id == 0 && s->len >= HWM))) {
    uv_read_stop(&s->h.stream);
    s->reading = 0;
  }
}

static int push_take(lua_State *L, void *ud) {
  struct weft__stream *s = ud;
  return take(L, s, s->rmode, s->rn);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b) {
  struct weft__stream *s = h->data;
  (void)b;
  if (nread > 0) {
    s->len += (size_t)nread;
  } else if (nread < 0) {
    s->status = (int)nread;
  }
  if (s->read_id != 0 && is_ready(s, s->rmode, s->rn)) {
    int id = s->read_id;
    s->read_id = 0;
    set_waiting(s, 0);
    weft__io_complete(s->rt, id, push_take, s);
  }
  flow(s);
}

/*}======================================================================*/

/*{======================================================================
** Writing and shutting down
**=======================================================================*/

/*
** A queued write. A short one copies its bytes into data; a long one
** points into its Lua string instead, which s->held keeps alive until
** on_write (writes complete in queue order, so held is a FIFO), as Go
** keeps the writer's []byte: a bulk sender then copies nothing.
*/
struct wreq {
  uv_write_t req;
  int held;
  char data[];
};

/* Keep the string at idx alive for a write queued now (may raise, out of
** memory, before anything is queued). */
static void hold(lua_State *L, struct weft__stream *s, int idx) {
  if (s->held == LUA_NOREF) {
    lua_newtable(L);
    s->held = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->held);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, (int)++s->hlast);
  lua_pop(L, 1);
}

/* Let go of held[i]. */
static void unhold_at(lua_State *L, struct weft__stream *s, unsigned i) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->held);
  lua_pushnil(L);
  lua_rawseti(L, -2, (int)i);
  lua_pop(L, 1);
}

/* Let go of the oldest held string: its write is over. */
static void unhold(lua_State *L, struct weft__stream *s) {
  unhold_at(L, s, ++s->hfirst);
  if (s->hfirst == s->hlast) s->hfirst = s->hlast = 0;
}

static int push_true(lua_State *L, void *ud) {
  (void)ud;
  lua_pushboolean(L, 1);
  return 1;
}

static int push_werr(lua_State *L, void *ud) {
  struct weft__stream *s = ud;
  return push_read_error(L, s, s->werr, "write");
}

static void on_write(uv_write_t *req, int status) {
  struct weft__stream *s = req->handle->data;
  /* Closed: close let go of the strings, and the Lua side may be gone. */
  if (((struct wreq *)req)->held && s->box != NULL)
    unhold(weft__io_state(s->rt), s);
  free(req);
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) s->werr = status;
  if (s->write_id != 0 &&
      (s->werr != 0 || uv_stream_get_write_queue_size(&s->h.stream) <= HWM)) {
    int id = s->write_id;
    s->write_id = 0;
    weft__io_complete(s->rt, id, s->werr ? push_werr : push_true, s);
  }
}

struct sreq {
  uv_shutdown_t req;
};

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct weft__stream *s = req->handle->data;
  free(req);
  if (s->shut_id != 0) {
    int id = s->shut_id;
    s->shut_id = 0;
    if (status < 0) {
      s->werr = status;
      weft__io_complete(s->rt, id, push_werr, s);
    } else {
      weft__io_complete(s->rt, id, push_true, s);
    }
  }
}

/*}======================================================================*/

/*{======================================================================
** Lua binding: weft.streamcore, used by lua/weft/stream.lua (the conn
** methods of every stream: the functions take the stream userdata).
**=======================================================================*/

static int checkmode(lua_State *L, int idx) {
  static const char *const modes[] = {"any", "line", "exact", "ready", NULL};
  return luaL_checkoption(L, idx, NULL, modes);
}

static size_t checksize(lua_State *L, int idx) {
  lua_Number n = luaL_optnumber(L, idx, READ_CHUNK);
  if (!(n >= 0 && n <= 0x7fffffff))
    luaL_argerror(L, idx, "size from 0 to 2^31-1 expected");
  return (size_t)n;
}

/* streamcore.take(s, mode, n) -> data | nil, err | nothing (must wait) */
static int lstream_take(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  int mode = checkmode(L, 2);
  return take(L, s, mode, checksize(L, 3));
}

/*
** NOTE: p is the cdata a string.buffer's reserve() returns (a uint8_t *);
** LuaJIT's lua_topointer gives the address of a cdata's payload, which for
** a pointer holds the pointer. Only stream.lua calls this, with reserve()'s
** result, so no other cdata reaches it.
*/
static char *checkptr(lua_State *L, int idx) {
  if (lua_type(L, idx) != 10 /* LUA_TCDATA */)
    luaL_argerror(L, idx, "cdata expected");
  return *(char *const *)lua_topointer(L, idx);
}

/*
** streamcore.take_into(s, ptr, n) -> k | nil, err | nothing (must wait):
** move at most n buffered bytes to ptr, so that no Lua string is made.
** NOTE: reading the socket straight into ptr when nothing is buffered was
** measured slower (bench/net_ab.sh, bulk_into): the reader then drains the
** socket in small reads, where libuv's reads fill whole chunks.
*/
static int lstream_take_into(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  char *p = checkptr(L, 2);
  size_t n = checksize(L, 3);
  size_t k = s->len < n ? s->len : n;
  if (k > 0) {
    memcpy(p, s->buf + s->off, k);
    drop(s, k);
  } else if (s->status != 0) {
    return push_read_error(L, s, s->status, "read_into");
  } else if (n > 0) {
    return 0;
  }
  lua_pushinteger(L, (lua_Integer)k);
  return 1;
}

/* streamcore.read(id, s, mode, n) -> s: wait for take to succeed. */
static int lstream_read(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct weft__stream *s = weft__stream_check(L, 2);
  int mode = checkmode(L, 3);
  size_t n = checksize(L, 4);
  if (s->read_id != 0)
    return luaL_error(L, "another task is already reading from this conn");
  if (!s->reading && s->status == 0) {
    int rc = uv_read_start(&s->h.stream, on_alloc, on_read);
    if (rc < 0) return push_read_error(L, s, rc, "read");
    s->reading = 1;
  }
  s->read_id = id;
  s->rmode = mode;
  s->rn = n;
  set_waiting(s, 1);
  lua_settop(L, 2);
  return 1;
}

/* streamcore.read_cancel(s): the reader is gone; the bytes stay. */
static int lstream_read_cancel(lua_State *L) {
  struct weft__stream **box = luaL_checkudata(L, 1, STREAM_MT);
  struct weft__stream *s = *box;
  if (s == NULL || s->read_id == 0) return 0;
  s->read_id = 0;
  set_waiting(s, 0);
  if (s->reading) {
    uv_read_stop(&s->h.stream);
    s->reading = 0;
  }
  return 0;
}

/* streamcore.write(s, data) -> true (queued) | false (wait for drain) |
** nil, err */
static int lstream_write(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  if (n > 0x7fffffff) return luaL_argerror(L, 2, "at most 2 GiB at once");
  if (s->werr != 0) return push_werr(L, s);
  size_t done = 0;
  if (uv_stream_get_write_queue_size(&s->h.stream) == 0 && n > 0) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
    int rc = uv_try_write(&s->h.stream, &b, 1);
    if (rc >= 0) {
      done = (size_t)rc;
    } else if (rc != UV_EAGAIN) {
      s->werr = rc;
      return push_werr(L, s);
    }
  }
  if (done < n) {
    size_t rest = n - done;
    int held = rest >= WRITE_REF_MIN;
    if (held) hold(L, s, 2);
    struct wreq *w = malloc(sizeof *w + (held ? 0 : rest));
    if (w == NULL) {
      if (held) unhold_at(L, s, s->hlast--);
      return luaL_error(L, "weft: out of memory");
    }
    w->held = held;
    /* Short: a copy, as the string may be collected before libuv writes. */
    if (!held) memcpy(w->data, data + done, rest);
    char *base = held ? (char *)data + done : w->data;
    uv_buf_t b = uv_buf_init(base, (unsigned)rest);
    int rc = uv_write(&w->req, &s->h.stream, &b, 1, on_write);
    if (rc < 0) {
      if (held) unhold_at(L, s, s->hlast--); /* the newest, never queued */
      free(w);
      s->werr = rc;
      return push_werr(L, s);
    }
  }
  lua_pushboolean(L, uv_stream_get_write_queue_size(&s->h.stream) <= HWM);
  return 1;
}

/* streamcore.drain(id, s) -> s: wait until at most HWM bytes are queued. */
static int lstream_drain(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct weft__stream *s = weft__stream_check(L, 2);
  if (s->write_id != 0)
    return luaL_error(L, "another task is already writing to this conn");
  s->write_id = id;
  lua_settop(L, 2);
  return 1;
}

/* streamcore.drain_cancel(s): the writer is gone; its bytes stay queued. */
static int lstream_drain_cancel(lua_State *L) {
  struct weft__stream **box = luaL_checkudata(L, 1, STREAM_MT);
  if (*box != NULL) (*box)->write_id = 0;
  return 0;
}

/* streamcore.shutdown(id, s) -> s: end the sending side once the queue is
** written. */
static int lstream_shutdown(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct weft__stream *s = weft__stream_check(L, 2);
  if (s->werr != 0) return push_werr(L, s);
  if (s->shut_id != 0)
    return luaL_error(L, "another task is already shutting down this conn");
  struct sreq *r = malloc(sizeof *r);
  if (r == NULL) return luaL_error(L, "weft: out of memory");
  int rc = uv_shutdown(&r->req, &s->h.stream, on_shutdown);
  if (rc < 0) {
    free(r);
    return push_read_error(L, s, rc, "shutdown");
  }
  s->shut_id = id;
  lua_settop(L, 2);
  return 1;
}

/* streamcore.shutdown_cancel(s) */
static int lstream_shutdown_cancel(lua_State *L) {
  struct weft__stream **box = luaL_checkudata(L, 1, STREAM_MT);
  if (*box != NULL) (*box)->shut_id = 0;
  return 0;
}

/* streamcore.close(s) -> ids of the operations that waited on it (the Lua
** side wakes them with a "closed" error); closing twice returns none. */
static int lstream_close(lua_State *L) {
  struct weft__stream **box = luaL_checkudata(L, 1, STREAM_MT);
  struct weft__stream *s = *box;
  if (s == NULL) return 0;
  int ids[4] = {s->read_id, s->write_id, s->shut_id, s->conn_id}, n = 0;
  for (int i = 0; i < 4; i++) {
    if (ids[i] != 0) {
      lua_pushinteger(L, ids[i]);
      n++;
    }
  }
  weft__stream_close(s);
  return n;
}

/* streamcore.buffered(s) -> bytes read ahead, bytes queued to write */
static int lstream_buffered(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  lua_pushnumber(L, (lua_Number)s->len);
  lua_pushnumber(L, (lua_Number)uv_stream_get_write_queue_size(&s->h.stream));
  return 2;
}

/* streamcore.name(s) -> the peer's name given by the stream's maker */
static int lstream_name(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  lua_pushstring(L, s->name);
  return 1;
}

/* streamcore.open_stdio(fd) -> kind [, stream]: kind is what fd is
** ("tty", "pipe", "file", "tcp", "unknown"); a stream for the first two,
** which libuv can poll (a regular file it cannot). */
static int lstream_open_stdio(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  uv_handle_type t = uv_guess_handle(fd);
  const char *kind = t == UV_TTY          ? "tty"
                     : t == UV_NAMED_PIPE ? "pipe"
                     : t == UV_FILE       ? "file"
                     : t == UV_TCP        ? "tcp"
                                          : "unknown";
  lua_pushstring(L, kind);
  if (t != UV_TTY && t != UV_NAMED_PIPE) return 1;
  struct weft__stream *s = weft__stream_new(L, "weft.stdio");
  snprintf(s->name, sizeof s->name, "%s",
           fd == 0   ? "stdin"
           : fd == 1 ? "stdout"
           : fd == 2 ? "stderr"
                     : "stdio");
  /* libuv makes the descriptor non-blocking; print and io.read expect it
  ** blocking again once the stream is closed (on_close restores it). */
  int flags = fcntl(fd, F_GETFL);
  int rc;
  if (t == UV_TTY) {
    rc = uv_tty_init(s->rt->loop, &s->h.tty, fd, fd == 0);
  } else {
    uv_pipe_init(s->rt->loop, &s->h.pipe, 0);
    rc = uv_pipe_open(&s->h.pipe, fd);
  }
  if (rc < 0 && t == UV_TTY) {
    /* No handle was made: nothing to close. */
    *s->box = NULL;
    weft__live_del(&s->live);
    free(s);
    lua_pop(L, 1);
    return weft__io_push_error(L, rc, "open stdio");
  }
  s->fd = flags >= 0 ? fd : -1;
  s->fd_flags = flags;
  uv_unref(&s->h.handle);
  if (rc < 0) {
    weft__stream_close(s);
    lua_pop(L, 1);
    return weft__io_push_error(L, rc, "open stdio");
  }
  return 2;
}

static int lstream__gc(lua_State *L) {
  struct weft__stream **box = luaL_checkudata(L, 1, STREAM_MT);
  if (*box != NULL) weft__stream_close(*box);
  return 0;
}

static int lstream__tostring(lua_State *L) {
  struct weft__stream **box = luaL_checkudata(L, 1, STREAM_MT);
  struct weft__stream *s = *box;
  if (s == NULL) {
    lua_pushfstring(L, "weft.stream: %p (closed)", (void *)box);
  } else {
    lua_pushfstring(L, "%s: %p (%s)", s->kind, (void *)box, s->name);
  }
  return 1;
}

int weft__open_streamcore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"take", lstream_take},
      {"take_into", lstream_take_into},
      {"read", lstream_read},
      {"read_cancel", lstream_read_cancel},
      {"write", lstream_write},
      {"drain", lstream_drain},
      {"drain_cancel", lstream_drain_cancel},
      {"shutdown", lstream_shutdown},
      {"shutdown_cancel", lstream_shutdown_cancel},
      {"close", lstream_close},
      {"buffered", lstream_buffered},
      {"name", lstream_name},
      {"open_stdio", lstream_open_stdio},
      {NULL, NULL},
  };
  push_meta(L);
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
