/*
** fs.c: file system requests for tasks, on libuv's fs requests (which run
** on libuv's thread pool, so the loop never blocks on a disk).
**
** Each binding starts one request tagged with an operation id (io.c) and
** returns the request as a light userdata, which lua/weft/fs.lua keeps
** while the task waits; the callback delivers the outcome and frees the
** request. A cancelled wait marks its request abandoned and tries
** uv_cancel: a request that had already started completes anyway, and its
** callback then only cleans up (an open that succeeded after its wait was
** cancelled closes its descriptor), so nothing leaks and nothing is
** delivered to a wait that is gone.
**
** An open file is a struct fsfile, which Lua holds through a box (FD_MT).
** Every request on its descriptor counts in nreq until its callback has
** run, so the descriptor is closed only when no thread of the pool can
** still use it: a descriptor closed under a queued or running request
** could be reused by the next open, and the request would then read or
** write that other file (gh-11). Closing a file with requests in flight
** cancels those still queued (they fail with EBADF) and leaves the close
** to the last one to call back.
**
** Every request is on its runtime's live list (io.c) until its callback.
** weft_free abandons and cancels them all; one already running on the
** thread pool when weft_free gives up waiting is detached (live.rt is
** NULL) and its callback then only cleans up, as for any abandoned one:
** it touches the request, its file (which Lua's box or the request count
** keeps alive, never the runtime) and nothing else. An open file is listed
** too while Lua holds its box, so that weft_free closes its descriptor
** (and removes its temporary file) even if the box lives on in a host's
** state; the box then only frees it.
*/
#include <fcntl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define FD_MT "weft.fs.fd"

/* An open descriptor and the requests that use it (see above). */
struct fsfile {
  uv_file fd;         /* -1 once closed, or handed to a close request */
  int nreq;           /* requests on fd whose callbacks have not run */
  int boxed;          /* a Lua box still points here */
  int closing;        /* no new requests; fd closes when nreq is 0 */
  int temp;           /* path is a temporary file, removed at the end */
  struct fsreq *reqs; /* the nreq requests, for close to cancel */
  struct weft__live live; /* while boxed: weft_free closes it (file_end) */
  char path[];        /* for error messages and the temporary file */
};

struct fsreq {
  uv_fs_t req;
  struct weft__live live; /* live.rt: the runtime, NULL once it is gone */
  int id;
  int abandoned;
  int temp; /* open: a file this open creates, removed if abandoned */
  struct fsfile *file;       /* the file this request uses, or NULL */
  struct fsfile *opened;     /* open: the file it makes, until Lua has it */
  struct fsreq *next, *prev; /* in file->reqs */
  char *buf;                 /* read: the bytes; write: a copy of the data */
  size_t len;
  int mapped;    /* buf is an anonymous mapping of len bytes (req_buf) */
  uv_file fd;    /* close: the descriptor it closes (on_fs) */
  char what[64]; /* the operation, for error messages */
};

/* A new request for operation id argument 1. What can raise comes before
** the allocation, which nothing would free. */
static struct fsreq *fsreq_new(lua_State *L, const char *what) {
  int id = (int)luaL_checkinteger(L, 1);
  weft_runtime *rt = weft__rt(L);
  struct fsreq *r = calloc(1, sizeof *r);
  if (r == NULL) luaL_error(L, "weft.fs: out of memory");
  r->live.rt = rt; /* listed once started (started_on) */
  r->id = id;
  r->req.data = r;
  snprintf(r->what, sizeof r->what, "%s", what);
  return r;
}

static void fsreq_free(struct fsreq *r) {
  uv_fs_req_cleanup(&r->req);
  free(r->opened);
  if (r->mapped)
    munmap(r->buf, r->len);
  else
    free(r->buf);
  free(r);
}

/* Buffers at least this long get a mapping of their own (req_buf). */
#define MAP_MIN (2u << 20)

/*
** The buffer of r, len bytes: what a read lands in, before
** lua_pushlstring copies it into the string (LuaJIT's API has no way to
** fill a string in place, so that second copy stays), or the copy of what
** a write writes. A large one is an anonymous mapping asking for huge
** pages: it faults in 2 MiB pages instead of 4 KiB ones, and page faults
** on fresh memory were most of read_file's time (bench/README.md).
** Without transparent huge pages it is an ordinary mapping.
*/
static int req_buf(struct fsreq *r, size_t len) {
  r->len = len;
  if (len >= MAP_MIN) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* NOTE: a hint; failure is harmless. */
#endif
    r->buf = p;
    r->mapped = 1;
    return 0;
  }
  r->buf = malloc(len > 0 ? len : 1);
  return r->buf != NULL ? 0 : -1;
}

/* The error of a failed request: "OPERATION PATH: text". */
static int push_fail(lua_State *L, struct fsreq *r) {
  char what[PATH_MAX + 80];
  const char *path = r->file != NULL ? r->file->path : r->req.path;
  snprintf(what, sizeof what, "%s%s%s", r->what, path ? " " : "",
           path ? path : "");
  return weft__io_push_error(L, (int)r->req.result, what);
}

static void push_time(lua_State *L, const char *k, uv_timespec_t t) {
  lua_pushnumber(L, (lua_Number)t.tv_sec + (lua_Number)t.tv_nsec * 1e-9);
  lua_setfield(L, -2, k);
}

static const char *type_of(uint64_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG: return "file";
  case S_IFDIR: return "directory";
  case S_IFLNK: return "link";
  case S_IFIFO: return "fifo";
  case S_IFSOCK: return "socket";
  case S_IFCHR: return "char";
  case S_IFBLK: return "block";
  default: return "unknown";
  }
}

static void file_end(struct weft__live *l);

static int push_result(lua_State *L, void *ud) {
  struct fsreq *r = ud;
  uv_fs_t *q = &r->req;
  if (q->result < 0) return push_fail(L, r);
  switch (q->fs_type) {
  case UV_FS_STAT:
  case UV_FS_FSTAT:
  case UV_FS_LSTAT: {
    const uv_stat_t *s = &q->statbuf;
    lua_createtable(L, 0, 8);
    lua_pushnumber(L, (lua_Number)s->st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)(s->st_mode & 07777));
    lua_setfield(L, -2, "mode");
    lua_pushstring(L, type_of(s->st_mode));
    lua_setfield(L, -2, "type");
    push_time(L, "mtime", s->st_mtim);
    push_time(L, "atime", s->st_atim);
    push_time(L, "ctime", s->st_ctim);
    lua_pushnumber(L, (lua_Number)s->st_ino);
    lua_setfield(L, -2, "ino");
    lua_pushnumber(L, (lua_Number)s->st_nlink);
    lua_setfield(L, -2, "nlink");
    return 1;
  }
  case UV_FS_READ: lua_pushlstring(L, r->buf, (size_t)q->result); return 1;
  case UV_FS_OPEN: {
    /* NOTE: a box, not a number: the task this wakes may never run (the
    ** runtime is freed first), and a bare number in its run queue entry
    ** leaked the descriptor (gh-11); a box nobody uses closes it when
    ** collected. */
    struct fsfile **box = lua_newuserdata(L, sizeof *box);
    *box = r->opened;
    r->opened = NULL;
    (*box)->fd = (uv_file)q->result;
    (*box)->boxed = 1;
    weft__live_add(r->live.rt, &(*box)->live, file_end);
    luaL_getmetatable(L, FD_MT);
    lua_setmetatable(L, -2);
    return 1;
  }
  case UV_FS_WRITE: lua_pushnumber(L, (lua_Number)q->result); return 1;
  case UV_FS_MKDTEMP: lua_pushstring(L, q->path); return 1;
  case UV_FS_SCANDIR: {
    uv_dirent_t ent;
    int i = 0;
    lua_newtable(L);
    while (uv_fs_scandir_next(q, &ent) != UV_EOF) {
      lua_pushstring(L, ent.name);
      lua_rawseti(L, -2, ++i);
    }
    return 1;
  }
  default: lua_pushboolean(L, 1); return 1;
  }
}

/* Close f's descriptor and remove its temporary file, synchronously (on
** the loop thread: a close and an unlink are quick, and the callers, a
** finalizer and the last request's callback, cannot wait); free f once
** Lua has no box for it. Only when no request uses f. */
static void file_finish(struct fsfile *f) {
  uv_fs_t c;
  if (f->fd >= 0) {
    uv_fs_close(NULL, &c, f->fd, NULL);
    uv_fs_req_cleanup(&c);
    f->fd = -1;
  }
  if (f->temp) {
    uv_fs_unlink(NULL, &c, f->path, NULL);
    uv_fs_req_cleanup(&c);
    f->temp = 0;
  }
  if (!f->boxed) {
    weft__live_del(&f->live);
    free(f);
  }
}

/* Request r starts using f. */
static void file_use(struct fsfile *f, struct fsreq *r) {
  r->file = f;
  r->prev = NULL;
  r->next = f->reqs;
  if (f->reqs != NULL) f->reqs->prev = r;
  f->reqs = r;
  f->nreq++;
}

/* Request r called back: the last one on a closing file closes it. */
static void file_unuse(struct fsreq *r) {
  struct fsfile *f = r->file;
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    f->reqs = r->next;
  if (r->next != NULL) r->next->prev = r->prev;
  r->file = NULL;
  if (--f->nreq == 0 && f->closing) file_finish(f);
}

/* No new requests on f; those still queued are cancelled (their callbacks
** report EBADF) and the last one closes f. Returns whether f is idle. */
static int file_close(struct fsfile *f) {
  f->closing = 1;
  for (struct fsreq *r = f->reqs; r != NULL; r = r->next)
    uv_cancel((uv_req_t *)&r->req);
  return f->nreq == 0;
}

/* weft_free, on a file Lua still holds: a host's state may keep its box
** (and so the descriptor and a temporary file) for as long as it likes. It
** closes now, or when its last request calls back; the box's __gc frees
** it. Nothing of a file calls back, so it leaves the list at once. */
static void file_end(struct weft__live *l) {
  struct fsfile *f = weft__container(l, struct fsfile, live);
  weft__live_del(l);
  file_close(f);
  if (f->nreq == 0) file_finish(f);
}

static void on_fs(uv_fs_t *q) {
  struct fsreq *r = q->data;
  /* A close is never left undone: its descriptor is the request's alone
  ** (the file forgot it), so one cancelled before it ran (weft_free
  ** cancels every queued request) would leak it. It is done here. */
  if (q->fs_type == UV_FS_CLOSE && q->result == UV_ECANCELED) {
    uv_fs_t c;
    q->result = uv_fs_close(NULL, &c, r->fd, NULL);
    uv_fs_req_cleanup(&c);
  }
  /* Abandoned also when the runtime is freed (fsreq_end), even detached:
  ** then live.rt is NULL and nothing here may reach the runtime. */
  if (r->abandoned) {
    /* The wait is gone: a descriptor opened for it would leak. */
    if (q->fs_type == UV_FS_OPEN && q->result >= 0) {
      uv_fs_t c;
      uv_fs_close(NULL, &c, (uv_file)q->result, NULL);
      uv_fs_req_cleanup(&c);
      /* A temporary file made for a caller who is gone: nobody else knows
      ** its name, so it would stay (gh-11). */
      if (r->temp) {
        uv_fs_unlink(NULL, &c, q->path, NULL);
        uv_fs_req_cleanup(&c);
      }
    }
  } else {
    /* Cancelled by the file's close, not by its waiter. */
    if (q->result == UV_ECANCELED && r->file != NULL && r->file->closing)
      q->result = UV_EBADF;
    weft__io_complete(r->live.rt, r->id, push_result, r);
  }
  if (r->file != NULL) file_unuse(r);
  weft__live_del(&r->live);
  fsreq_free(r);
}

/* weft_free: nobody will ever get the result (see the top of the file). */
static void fsreq_end(struct weft__live *l) {
  struct fsreq *r = weft__container(l, struct fsreq, live);
  r->abandoned = 1;
  uv_cancel((uv_req_t *)&r->req);
}

/* Start request r (rc is what the uv_fs_* call returned); a request on
** file f (or NULL) counts in f->nreq until it calls back. */
static int started_on(lua_State *L, struct fsreq *r, struct fsfile *f, int rc) {
  if (rc < 0) {
    r->req.result = rc;
    int n = push_fail(L, r);
    fsreq_free(r);
    return n;
  }
  if (f != NULL) file_use(f, r);
  weft__live_add(r->live.rt, &r->live, fsreq_end);
  lua_pushlightuserdata(L, r);
  return 1;
}

static int started(lua_State *L, struct fsreq *r, int rc) {
  return started_on(L, r, NULL, rc);
}

/*{======================================================================
** Lua binding: weft.fscore, used by lua/weft/fs.lua. Each function takes
** an operation id first and returns the request, or nil, err when it
** could not start. The file functions take an open's box.
**=======================================================================*/

static uv_loop_t *loop_of(struct fsreq *r) {
  return r->live.rt->loop;
}

/* A path argument: a string with no zero byte, which the system call
** would take for its end (and so open another file). */
static const char *checkpath(lua_State *L, int arg) {
  size_t n;
  const char *p = luaL_checklstring(L, arg, &n);
  if (strlen(p) != n) luaL_argerror(L, arg, "path contains a zero byte");
  return p;
}

static struct fsfile *checkfile(lua_State *L, int arg) {
  struct fsfile *f = *(struct fsfile **)luaL_checkudata(L, arg, FD_MT);
  if (f == NULL) luaL_error(L, "attempt to use a closed file");
  return f;
}

/* Argument arg: a file's box, or a bare descriptor number, which
** lua/weft/stdio.lua passes for the standard ones (weft never closes
** those, so no count keeps them open). The file, or NULL for a number. */
static struct fsfile *checkfd(lua_State *L, int arg, uv_file *fd) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    *fd = (uv_file)luaL_checkinteger(L, arg);
    return NULL;
  }
  struct fsfile *f = checkfile(L, arg);
  *fd = f->fd;
  return f;
}

/* A request on file argument 2 fails at once, with EBADF, once the file is
** closing: its descriptor may be another file's by now. */
static int closed_fail(lua_State *L, struct fsreq *r, struct fsfile *f) {
  r->file = f; /* for the path in the message; not counted */
  r->req.result = UV_EBADF;
  int n = push_fail(L, r);
  r->file = NULL;
  fsreq_free(r);
  return n;
}

/* An offset argument: -1 (at the file's position) or a byte offset. */
static int64_t checkoffset(lua_State *L, int arg) {
  lua_Number off = luaL_optnumber(L, arg, -1);
  if (!(off == -1 || (off >= 0 && off <= 9007199254740992.0)))
    luaL_argerror(L, arg, "offset from 0 to 2^53 expected");
  return (int64_t)off;
}

/* fscore.stat(id, path) / lstat */
static int lfs_stat(lua_State *L) {
  const char *path = checkpath(L, 2);
  struct fsreq *r = fsreq_new(L, "stat");
  return started(L, r, uv_fs_stat(loop_of(r), &r->req, path, on_fs));
}

/* fscore.fstat(id, file) */
static int lfs_fstat(lua_State *L) {
  struct fsfile *f = checkfile(L, 2);
  struct fsreq *r = fsreq_new(L, "fstat");
  if (f->closing) return closed_fail(L, r, f);
  return started_on(L, r, f, uv_fs_fstat(loop_of(r), &r->req, f->fd, on_fs));
}

static int open_flags(lua_State *L, const char *mode) {
  if (strcmp(mode, "r") == 0) return O_RDONLY;
  if (strcmp(mode, "r+") == 0) return O_RDWR;
  if (strcmp(mode, "w") == 0) return O_WRONLY | O_CREAT | O_TRUNC;
  if (strcmp(mode, "w+") == 0) return O_RDWR | O_CREAT | O_TRUNC;
  if (strcmp(mode, "a") == 0) return O_WRONLY | O_CREAT | O_APPEND;
  if (strcmp(mode, "a+") == 0) return O_RDWR | O_CREAT | O_APPEND;
  if (strcmp(mode, "wx") == 0) return O_WRONLY | O_CREAT | O_EXCL;
  return luaL_argerror(L, 3, "mode 'r', 'r+', 'w', 'w+', 'a', 'a+' or 'wx'");
}

/* fscore.open(id, path, mode, perm [, temp]) -> file box: temp (with mode
** "wx") makes a temporary file, removed when the file is collected (or the
** runtime freed) unless fscore.keep says otherwise, or at once if the
** wait is abandoned. */
static int lfs_open(lua_State *L) {
  size_t n;
  const char *path = checkpath(L, 2);
  int flags = open_flags(L, luaL_optstring(L, 3, "r")) | O_CLOEXEC;
  int perm = (int)luaL_optinteger(L, 4, 0666);
  int temp = lua_toboolean(L, 5) && (flags & O_EXCL);
  struct fsreq *r = fsreq_new(L, "open");
  n = strlen(path);
  /* Made now: the callback cannot fail, and a box needs nothing else. */
  r->opened = calloc(1, sizeof *r->opened + n + 1);
  if (r->opened == NULL) {
    fsreq_free(r);
    return luaL_error(L, "weft.fs: out of memory");
  }
  r->opened->fd = -1;
  r->opened->temp = temp;
  memcpy(r->opened->path, path, n + 1);
  r->temp = temp;
  return started(L, r,
                 uv_fs_open(loop_of(r), &r->req, path, flags, perm, on_fs));
}

/* fscore.release(file) -> whether the caller must close it now: no new
** request may use it; if requests still do, the last one closes it. */
static int lfs_release(lua_State *L) {
  struct fsfile *f = checkfile(L, 1);
  if (f->closing) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, file_close(f) && f->fd >= 0);
  return 1;
}

/* fscore.close(id, file): after fscore.release said so. */
static int lfs_close(lua_State *L) {
  struct fsfile *f = checkfile(L, 2);
  uv_file fd = f->fd;
  if (!f->closing || f->nreq > 0 || fd < 0)
    return luaL_error(L, "weft.fs: close of a busy or closed file");
  struct fsreq *r = fsreq_new(L, "close"); /* may raise: fd is still f's */
  f->fd = -1; /* the close request's now */
  r->fd = fd;
  return started(L, r, uv_fs_close(loop_of(r), &r->req, fd, on_fs));
}

/* fscore.keep(file): its temporary file is no longer one (renamed, or
** removed by the caller). */
static int lfs_keep(lua_State *L) {
  checkfile(L, 1)->temp = 0;
  return 0;
}

/* fscore.read(id, file, len, offset): offset -1 reads at the position;
** file is a box or a bare descriptor (checkfd), as for write. */
static int lfs_read(lua_State *L) {
  uv_file fd;
  struct fsfile *f = checkfd(L, 2, &fd);
  lua_Number len = luaL_checknumber(L, 3);
  int64_t off = checkoffset(L, 4);
  if (!(len >= 0 && len <= 0x7fffffff))
    return luaL_argerror(L, 3, "length from 0 to 2^31-1 expected");
  struct fsreq *r = fsreq_new(L, "read");
  if (f != NULL && f->closing) return closed_fail(L, r, f);
  if (req_buf(r, (size_t)len) != 0) {
    fsreq_free(r);
    return luaL_error(L, "weft.fs: out of memory");
  }
  uv_buf_t b = uv_buf_init(r->buf, (unsigned)r->len);
  return started_on(L, r, f,
                    uv_fs_read(loop_of(r), &r->req, fd, &b, 1, off, on_fs));
}

/* fscore.write(id, file, data, offset [, from]): data from byte from
** (0-based, default 0), so a short write goes on without a substring. */
static int lfs_write(lua_State *L) {
  uv_file fd;
  struct fsfile *f = checkfd(L, 2, &fd);
  size_t n;
  const char *data = luaL_checklstring(L, 3, &n);
  int64_t off = checkoffset(L, 4);
  lua_Number from = luaL_optnumber(L, 5, 0);
  if (!(from >= 0 && from <= (lua_Number)n))
    return luaL_argerror(L, 5, "start within the data expected");
  data += (size_t)from;
  n -= (size_t)from;
  if (n > 0x7fffffff) n = 0x7fffffff; /* a short write: the caller goes on */
  struct fsreq *r = fsreq_new(L, "write");
  if (f != NULL && f->closing) return closed_fail(L, r, f);
  /* NOTE: a copy, though the caller's string would do: weft_free closes
  ** the Lua state before the loop drains, so the string could be freed
  ** while the thread pool still writes from it. */
  if (req_buf(r, n) != 0) {
    fsreq_free(r);
    return luaL_error(L, "weft.fs: out of memory");
  }
  memcpy(r->buf, data, n);
  uv_buf_t b = uv_buf_init(r->buf, (unsigned)n);
  return started_on(L, r, f,
                    uv_fs_write(loop_of(r), &r->req, fd, &b, 1, off, on_fs));
}

/* fscore.fsync(id, file) */
static int lfs_fsync(lua_State *L) {
  struct fsfile *f = checkfile(L, 2);
  struct fsreq *r = fsreq_new(L, "fsync");
  if (f->closing) return closed_fail(L, r, f);
  return started_on(L, r, f, uv_fs_fsync(loop_of(r), &r->req, f->fd, on_fs));
}

/* fscore.rename(id, from, to) */
static int lfs_rename(lua_State *L) {
  const char *from = checkpath(L, 2);
  const char *to = checkpath(L, 3);
  struct fsreq *r = fsreq_new(L, "rename");
  return started(L, r, uv_fs_rename(loop_of(r), &r->req, from, to, on_fs));
}

/* fscore.unlink(id, path) */
static int lfs_unlink(lua_State *L) {
  const char *path = checkpath(L, 2);
  struct fsreq *r = fsreq_new(L, "remove");
  return started(L, r, uv_fs_unlink(loop_of(r), &r->req, path, on_fs));
}

/* fscore.rmdir(id, path) */
static int lfs_rmdir(lua_State *L) {
  const char *path = checkpath(L, 2);
  struct fsreq *r = fsreq_new(L, "remove");
  return started(L, r, uv_fs_rmdir(loop_of(r), &r->req, path, on_fs));
}

/* fscore.mkdir(id, path, perm) */
static int lfs_mkdir(lua_State *L) {
  const char *path = checkpath(L, 2);
  int perm = (int)luaL_optinteger(L, 3, 0777);
  struct fsreq *r = fsreq_new(L, "mkdir");
  return started(L, r, uv_fs_mkdir(loop_of(r), &r->req, path, perm, on_fs));
}

/* fscore.scandir(id, path) */
static int lfs_scandir(lua_State *L) {
  const char *path = checkpath(L, 2);
  struct fsreq *r = fsreq_new(L, "readdir");
  return started(L, r, uv_fs_scandir(loop_of(r), &r->req, path, 0, on_fs));
}

/* fscore.mkdtemp(id, template) */
static int lfs_mkdtemp(lua_State *L) {
  const char *tpl = checkpath(L, 2);
  struct fsreq *r = fsreq_new(L, "tmpdir");
  return started(L, r, uv_fs_mkdtemp(loop_of(r), &r->req, tpl, on_fs));
}

/* fscore.pid() -> this process's id, for temporary file names */
static int lfs_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_os_getpid());
  return 1;
}

/* fscore.cancel(req): its wait is gone (see the top of this file). */
static int lfs_cancel(lua_State *L) {
  struct fsreq *r = lua_touserdata(L, 1);
  if (r == NULL) return 0;
  r->abandoned = 1;
  uv_cancel((uv_req_t *)&r->req);
  return 0;
}

/* A box Lua dropped (or lua_close collected): the file closes now, or when
** its last request calls back; a temporary file not kept goes with it. */
static int lfd__gc(lua_State *L) {
  struct fsfile **box = luaL_checkudata(L, 1, FD_MT);
  struct fsfile *f = *box;
  if (f == NULL) return 0;
  *box = NULL;
  f->boxed = 0;
  if (file_close(f)) file_finish(f);
  return 0;
}

static int lfd__tostring(lua_State *L) {
  struct fsfile **box = luaL_checkudata(L, 1, FD_MT);
  struct fsfile *f = *box;
  if (f == NULL || f->closing)
    lua_pushfstring(L, FD_MT ": %p (closed)", (void *)box);
  else
    lua_pushfstring(L, FD_MT ": %p (%d)", (void *)box, f->fd);
  return 1;
}

int weft__open_fscore(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__gc", lfd__gc},
      {"__close", lfd__gc},
      {"__tostring", lfd__tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, FD_MT)) {
    luaL_register(L, NULL, meta);
    lua_pushliteral(L, FD_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {
      {"stat", lfs_stat},
      {"fstat", lfs_fstat},
      {"open", lfs_open},
      {"close", lfs_close},
      {"read", lfs_read},
      {"write", lfs_write},
      {"fsync", lfs_fsync},
      {"rename", lfs_rename},
      {"unlink", lfs_unlink},
      {"rmdir", lfs_rmdir},
      {"mkdir", lfs_mkdir},
      {"scandir", lfs_scandir},
      {"mkdtemp", lfs_mkdtemp},
      {"cancel", lfs_cancel},
      {"release", lfs_release},
      {"keep", lfs_keep},
      {"pid", lfs_pid},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
