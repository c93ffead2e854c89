/*
** internal.h: private to the weft runtime. Not installed.
*/
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"

/* Event bits the loop side sets for the Lua side (weft/sched.lua EV_*). */
#define WEFT__EV_INTERRUPT 1u
#define WEFT__EV_QUIT 2u
#define WEFT__EV_POST 4u
#define WEFT__EV_WORK 8u /* jobs of the worker pool are done */

/*
** The timer heap: a binary min-heap of ids ordered by (deadline, seq). Ids
** are small integers reused through a free list, so the Lua side can keep
** what each timer does in an array indexed by id. Id 0 means "none".
*/
struct weft__timer {
  double deadline;
  uint32_t seq;  /* insertion order breaks ties: equal deadlines fire FIFO */
  uint32_t link; /* armed: index in heap[] (1-based); free: next free id */
};

struct weft__timers {
  struct weft__timer *t; /* by id; t[0] unused */
  uint32_t *heap;        /* heap[1..n] = ids */
  uint32_t n;            /* timers armed */
  uint32_t cap;          /* ids allocated, including id 0 */
  uint32_t free;         /* head of the free list, or 0 */
  uint32_t seq;
};

/* What the Lua side calls through FFI (mirrored by a cdef in sched.lua). */
struct weft__api {
  double (*now)(weft_runtime *rt);
  uint32_t (*timer_add)(weft_runtime *rt, double deadline);
  void (*timer_del)(weft_runtime *rt, uint32_t id);
  uint32_t (*timer_pop)(weft_runtime *rt, double now);
  double (*timer_deadline)(weft_runtime *rt, uint32_t id);
  uint32_t (*events)(weft_runtime *rt);
  double (*wall)(weft_runtime *rt);
  int (*yieldable)(void *co);
};

struct weft__post {
  weft_post_cb fn;
  void *ud;
  struct weft__post *next;
};

/* Bytes that cross between Lua states (copy.c). */
struct weft__buf {
  char *p;
  size_t n, cap;
};

struct weft__pool;
struct weft__proc;

/*
** io.c: what weft_free must end. Every libuv handle the runtime opens and
** every request it starts whose callback would use the runtime is listed
** here from its start until its callback frees it; weft_free calls end on
** each (close the handle, cancel the request, cut it off from Lua; the
** callback still frees it) and turns the loop until the list is empty
** (see io.c). What nothing calls back (an open file, a saved signal
** handler) is listed too, and its end takes it off at once. rt is NULL
** once the entry is off the list: a request the runtime was freed under,
** which must then only free itself.
*/
struct weft__live {
  weft_runtime *rt;
  struct weft__live *prev, *next;
  void (*end)(struct weft__live *l);
};

/* The struct of type T whose field f is at p. */
#define weft__container(p, T, f) ((T *)(void *)((char *)(p)-offsetof(T, f)))

struct weft_runtime {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  lua_State *L; /* main thread of the state */
  int owns_L;
  uv_timer_t timer; /* wakes the loop at the earliest weft timer */
  /* The same to the nanosecond, on Linux (runtime.c, "Waking the loop"):
  ** a timerfd watched by tfd_poll; tfd is -1 where there is none. */
  uv_poll_t tfd_poll;
  int tfd;
  uint64_t tfd_at; /* the deadline it is armed for (uv_hrtime ns), 0: none */
  uv_async_t async; /* wakes the loop for posts and interrupts */
  struct weft__timers timers;
  struct weft__api api;
  uint64_t t0; /* uv_hrtime() at creation: weft.now() counts from it */
  weft_config cfg;
  int ref_tick; /* registry refs to weft.sched functions */
  int ref_sched;
  int running; /* a driver is on the stack */
  int free_asked; /* weft_free was called from inside that driver */
  _Atomic unsigned events;
  uv_mutex_t post_mu;
  struct weft__post *posts, *posts_tail;
  char *last_error;
  struct weft__pool *pool; /* the worker threads, made on first use */
  int ref_io_done;         /* registry ref of R.io_done (io.c) */
  lua_State *drive_L;      /* the thread ticks run on, while driving */
  int ready;               /* tasks ready after the last tick */
  struct weft__live *live;  /* handles and requests to end (io.c) */
  struct weft__proc *procs; /* children still running (process.c) */
};

/* timer.c */
int weft__timers_init(struct weft__timers *tm);
void weft__timers_destroy(struct weft__timers *tm);
uint32_t weft__timer_add(weft_runtime *rt, double deadline);
void weft__timer_del(weft_runtime *rt, uint32_t id);
uint32_t weft__timer_pop(weft_runtime *rt, double now);
double weft__timer_deadline(weft_runtime *rt, uint32_t id);
int weft__yieldable(void *co);
int weft__timer_next(const struct weft__timers *tm, double *deadline);
double weft__now(weft_runtime *rt);
double weft__wall(weft_runtime *rt);

/* preload.c: register the embedded Lua modules in package.preload. */
void weft__preload(lua_State *L);

/* wait.c: the loader of weft.wait, the scheduler's yield. */
int weft__open_wait(lua_State *L);

/* copy.c: encode n values from stack index `from` (value i is named
** root[i] in errors, value 1 name1 when not NULL); 0, or -1 with the
** refused value's path and why in err. Decode pushes the values and
** returns how many, or -1 with the reason pushed (corrupt bytes, a module
** that does not load on this side). */
int weft__copy_encode(lua_State *L, int from, int n, struct weft__buf *b,
                      const char *root, const char *name1, char *err,
                      size_t errlen);
int weft__copy_decode(lua_State *L, const char *p, size_t n);
void weft__buf_free(struct weft__buf *b);
int weft__open_copy(lua_State *L);

/* io.c: completions of I/O operations (see io.c). weft__rt raises when L
** has no runtime. */
weft_runtime *weft__rt(lua_State *L);
lua_State *weft__io_state(weft_runtime *rt);
void weft__io_complete(weft_runtime *rt, int id,
                       int (*push)(lua_State *, void *), void *ud);
int weft__io_push_error(lua_State *L, int status, const char *what);
int weft__open_iocore(lua_State *L);
/* io.c: list l (with its end), take it off (once its callback ran; a no-op
** once detached), end every entry, and detach what is left (weft_free). */
void weft__live_add(weft_runtime *rt, struct weft__live *l,
                    void (*end)(struct weft__live *l));
void weft__live_del(struct weft__live *l);
void weft__live_end(weft_runtime *rt);
void weft__live_detach(weft_runtime *rt);

/* fs.c: the loader of weft.fscore. */
int weft__open_fscore(lua_State *L);

/* process.c: the loader of weft.proccore; signal names and numbers (the
** argument's signal, by name or number, or a bad-argument error). */
int weft__open_proccore(lua_State *L);
void weft__procs_free(weft_runtime *rt); /* end and reap the children */
const char *weft__signal_name(int num);
int weft__check_signal(lua_State *L, int arg);

/* signal.c: the loader of weft.sigcore. */
int weft__open_sigcore(lua_State *L);

/*
** stream.c: a libuv stream (TCP, pipe, tty) with a read buffer in C, held
** by Lua through a pointer box (metatable "weft.stream"). The handle is
** unreferenced except while a task waits on it, so an idle conn does not
** hide a deadlock; requests in flight keep the loop alive by themselves.
*/
struct weft__stream {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h;
  weft_runtime *rt;
  struct weft__live live;    /* in rt->live until the handle has closed */
  struct weft__stream **box; /* the userdata's pointer; NULL once closed */
  const char *kind;          /* "weft.tcp.conn", for __tostring */
  char *buf;                 /* buffered bytes: buf[off, off + len) */
  size_t off, len, cap;
  size_t scan;   /* bytes at buf + off known to hold no "\n" */
  size_t rn;     /* what the waiting reader wants (max or exact count) */
  int rmode;     /* and how (stream.c MODE_*) */
  int status;    /* UV_EOF or a read error, once seen: reading is over */
  int werr;      /* the first failed write: later writes fail with it */
  int reading;   /* uv_read_start is on */
  int read_id, write_id, shut_id, conn_id; /* waiting operations, or 0 */
  int held;              /* registry ref of the strings queued writes point
                         ** into (stream.c), or LUA_NOREF */
  unsigned hfirst, hlast; /* held[hfirst + 1 .. hlast], oldest first */
  uv_connect_t connect;                     /* tcp.c's connect request */
  int fd;        /* stdio: whose flags to restore once closed, else -1 */
  int fd_flags;
  char name[80]; /* the peer ("127.0.0.1:80"), for error messages */
};

struct weft__stream *weft__stream_new(lua_State *L, const char *kind);
struct weft__stream *weft__stream_new_pipe(lua_State *L, const char *kind);
void weft__ignore_sigpipe(void); /* see stream.c */
int weft__sigpipe_wanted(void);
struct weft__stream *weft__stream_check(lua_State *L, int idx);
void weft__stream_close(struct weft__stream *s);
int weft__open_streamcore(lua_State *L);

/* tcp.c, udp.c, dns.c: the loaders of weft.tcpcore, udpcore, dnscore. */
int weft__open_tcpcore(lua_State *L);
int weft__open_udpcore(lua_State *L);
int weft__open_dnscore(lua_State *L);
/* dns.c: the host of a socket address into buf and its port; a sockaddr
** from a numeric host (0, or a UV_E* code when host is no address). */
void weft__addr_name(const struct sockaddr *sa, char *buf, size_t n,
                     int *port);
int weft__addr_parse(const char *host, int port, struct sockaddr_storage *ss);

/* pool.c: the loader of weft.pool; stopping and freeing the pool. */
int weft__open_pool(lua_State *L);
void weft__pool_free(weft_runtime *rt);
int weft__pool_spin(weft_runtime *rt);

/* runtime.c */
int weft__drive(weft_runtime *rt, lua_State *L);
/* weft_free from the state's own finalizer (module.c): no tomb. */
void weft__free_closing(weft_runtime *rt);
void weft__set_error(weft_runtime *rt, const char *msg);

/* Registry key of the runtime pointer in its Lua state (its address). */
extern const char weft__rt_key;

#endif
