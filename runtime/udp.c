/*
** udp.c: UDP sockets for tasks.
**
** A socket receives only while a task waits in recv_from: datagrams that
** come meanwhile wait in the kernel's socket buffer (which drops what does
** not fit, as UDP may), so an idle socket holds no memory of ours. A send
** goes straight to the kernel when it can (uv_udp_try_send) and waits for
** libuv's queue only when the kernel pushes back. One task at a time may
** wait to receive; any number to send, each on its own queued request
** (once one is queued, libuv queues every later send behind it). As with
** streams (stream.c), closing returns the waiting operations' ids to the
** Lua side, and the handle keeps the loop alive only while a receiver
** waits. A socket is on its runtime's live list (io.c) until its handle
** has closed: weft_free closes it, which cancels its queued sends.
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define UDP_MT "weft.udp.sock"
#define DGRAM_MAX 65536

struct udp {
  uv_udp_t h;
  weft_runtime *rt;
  struct weft__live live; /* in rt->live until the handle has closed */
  struct udp **box; /* the userdata's pointer; NULL once closed */
  int recv_id;
  struct sendreq *sends; /* queued sends, a doubly linked list */
  ssize_t nread;         /* the datagram received, for push_recv */
  struct sockaddr_storage from;
  char name[80]; /* "127.0.0.1:5353", for messages */
  char buf[DGRAM_MAX];
};

struct sendreq {
  uv_udp_send_t req;
  int id;     /* the send_to waiting for it, or 0 */
  int status; /* its outcome, for push_sent */
  struct sendreq *prev, *next;
  char data[];
};

static void on_close(uv_handle_t *h) {
  struct udp *u = h->data;
  weft__live_del(&u->live);
  free(u);
}

static void udp_close(struct udp *u) {
  if (u->box != NULL) *u->box = NULL;
  u->box = NULL;
  u->recv_id = 0;
  for (struct sendreq *r = u->sends; r != NULL; r = r->next)
    r->id = 0;
  if (!uv_is_closing((uv_handle_t *)&u->h))
    uv_close((uv_handle_t *)&u->h, on_close);
}

/* weft_free (see stream_end in stream.c). */
static void udp_end(struct weft__live *l) {
  struct udp *u = weft__container(l, struct udp, live);
  if (!uv_is_closing((uv_handle_t *)&u->h)) udp_close(u);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  struct udp *u = h->data;
  (void)hint;
  *b = uv_buf_init(u->buf, sizeof u->buf);
}

static int push_recv(lua_State *L, void *ud) {
  struct udp *u = ud;
  if (u->nread < 0) {
    char what[128];
    snprintf(what, sizeof what, "recv_from %s", u->name);
    return weft__io_push_error(L, (int)u->nread, what);
  }
  char host[64];
  int port;
  lua_pushlstring(L, u->buf, (size_t)u->nread);
  /* io.c delivers two values: the sender comes as {host, port}. */
  weft__addr_name((struct sockaddr *)&u->from, host, sizeof host, &port);
  lua_createtable(L, 2, 0);
  lua_pushstring(L, host);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, port);
  lua_rawseti(L, -2, 2);
  return 2;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b,
                    const struct sockaddr *addr, unsigned flags) {
  struct udp *u = h->data;
  (void)b;
  (void)flags;
  /* Nothing more to read now (libuv's "0 bytes, no address"). */
  if (nread == 0 && addr == NULL) return;
  if (u->recv_id == 0) return;
  int id = u->recv_id;
  u->recv_id = 0;
  uv_udp_recv_stop(h);
  uv_unref((uv_handle_t *)h);
  u->nread = nread;
  if (addr != NULL) {
    memcpy(&u->from, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in));
  }
  weft__io_complete(u->rt, id, push_recv, u);
}

static int push_sent(lua_State *L, void *ud) {
  struct sendreq *r = ud;
  if (r->status < 0) {
    struct udp *u = r->req.handle->data;
    char what[128];
    snprintf(what, sizeof what, "send_to from %s", u->name);
    return weft__io_push_error(L, r->status, what);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* libuv calls this for every queued send, even once the handle closes
** (then with UV_ECANCELED, before the close callback frees u). */
static void on_send(uv_udp_send_t *req, int status) {
  struct sendreq *r = (struct sendreq *)req;
  struct udp *u = req->handle->data;
  if (r->prev != NULL) {
    r->prev->next = r->next;
  } else {
    u->sends = r->next;
  }
  if (r->next != NULL) r->next->prev = r->prev;
  r->status = status;
  if (r->id != 0) weft__io_complete(u->rt, r->id, push_sent, r);
  free(r);
}

/*{======================================================================
** Lua binding: weft.udpcore, used by lua/weft/net.lua
**=======================================================================*/

static struct udp *check_udp(lua_State *L, int idx) {
  struct udp **box = luaL_checkudata(L, idx, UDP_MT);
  if (*box == NULL) luaL_error(L, "attempt to use a closed sock");
  return *box;
}

static int checkport(lua_State *L, int idx) {
  lua_Integer port = luaL_checkinteger(L, idx);
  if (port < 0 || port > 65535) luaL_argerror(L, idx, "port from 0 to 65535");
  return (int)port;
}

/* udpcore.bind(ip, port) -> sock | nil, err */
static int ludp_bind(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = checkport(L, 2);
  weft_runtime *rt = weft__rt(L); /* before the allocation: it may raise */
  struct udp **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, UDP_MT);
  lua_setmetatable(L, -2);
  struct udp *u = calloc(1, sizeof *u);
  if (u == NULL) return luaL_error(L, "weft: out of memory");
  u->rt = rt;
  u->h.data = u;
  u->box = box;
  *box = u;
  uv_udp_init(rt->loop, &u->h);
  weft__live_add(rt, &u->live, udp_end);
  uv_unref((uv_handle_t *)&u->h);
  struct sockaddr_storage ss;
  int rc = weft__addr_parse(ip, port, &ss);
  snprintf(u->name, sizeof u->name,
           ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
  if (rc == 0) rc = uv_udp_bind(&u->h, (struct sockaddr *)&ss, 0);
  if (rc < 0) {
    char what[128];
    snprintf(what, sizeof what, "bind %s", u->name);
    udp_close(u);
    return weft__io_push_error(L, rc, what);
  }
  int len = sizeof ss;
  if (uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &len) == 0) {
    char host[64];
    weft__addr_name((struct sockaddr *)&ss, host, sizeof host, &port);
    snprintf(u->name, sizeof u->name,
             ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
  }
  return 1;
}

/* udpcore.recv(id, sock) -> sock: wait for a datagram. */
static int ludp_recv(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct udp *u = check_udp(L, 2);
  if (u->recv_id != 0)
    return luaL_error(L, "another task is already receiving on this sock");
  int rc = uv_udp_recv_start(&u->h, on_alloc, on_recv);
  if (rc < 0) {
    char what[128];
    snprintf(what, sizeof what, "recv_from %s", u->name);
    return weft__io_push_error(L, rc, what);
  }
  u->recv_id = id;
  uv_ref((uv_handle_t *)&u->h);
  lua_settop(L, 2);
  return 1;
}

/* udpcore.recv_cancel(sock) */
static int ludp_recv_cancel(lua_State *L) {
  struct udp **box = luaL_checkudata(L, 1, UDP_MT);
  struct udp *u = *box;
  if (u == NULL || u->recv_id == 0) return 0;
  u->recv_id = 0;
  uv_udp_recv_stop(&u->h);
  uv_unref((uv_handle_t *)&u->h);
  return 0;
}

/* udpcore.send(sock, data, ip, port) -> true | req | nil, err: true when
** the kernel took it at once, else its queued request (wait with
** udpcore.sent). */
static int ludp_send(lua_State *L) {
  struct udp *u = check_udp(L, 1);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  const char *ip = luaL_checkstring(L, 3);
  int port = checkport(L, 4);
  char what[160];
  snprintf(what, sizeof what, "send_to %s:%d", ip, port);
  if (n > DGRAM_MAX) return luaL_argerror(L, 2, "at most 64 KiB at once");
  struct sockaddr_storage ss;
  int rc = weft__addr_parse(ip, port, &ss);
  if (rc < 0) return weft__io_push_error(L, rc, what);
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
  rc = uv_udp_try_send(&u->h, &b, 1, (struct sockaddr *)&ss);
  if (rc >= 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc != UV_EAGAIN) return weft__io_push_error(L, rc, what);
  struct sendreq *r = malloc(sizeof *r + n);
  if (r == NULL) return luaL_error(L, "weft: out of memory");
  memcpy(r->data, data, n);
  b = uv_buf_init(r->data, (unsigned)n);
  r->id = 0;
  rc = uv_udp_send(&r->req, &u->h, &b, 1, (struct sockaddr *)&ss, on_send);
  if (rc < 0) {
    free(r);
    return weft__io_push_error(L, rc, what);
  }
  r->prev = NULL;
  r->next = u->sends;
  if (u->sends != NULL) u->sends->prev = r;
  u->sends = r;
  lua_pushlightuserdata(L, r);
  return 1;
}

/*
** udpcore.sent(id, sock, req) -> req: wait for the queued datagram. req is
** what udpcore.send returned just before, with no yield in between, so it
** is still queued: on_send, which frees it, runs only in the loop, and
** completes the wait before anything could cancel it.
*/
static int ludp_sent(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  check_udp(L, 2);
  luaL_checktype(L, 3, LUA_TLIGHTUSERDATA);
  struct sendreq *r = lua_touserdata(L, 3);
  r->id = id;
  lua_settop(L, 3);
  return 1;
}

/* udpcore.send_cancel(req): the datagram may still go out. */
static int ludp_send_cancel(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  ((struct sendreq *)lua_touserdata(L, 1))->id = 0;
  return 0;
}

/* udpcore.close(sock) -> the ids of the operations that waited */
static int ludp_close(lua_State *L) {
  struct udp **box = luaL_checkudata(L, 1, UDP_MT);
  struct udp *u = *box;
  if (u == NULL) return 0;
  int n = 0;
  if (u->recv_id != 0) {
    lua_pushinteger(L, u->recv_id);
    n++;
  }
  for (struct sendreq *r = u->sends; r != NULL; r = r->next) {
    if (r->id != 0) {
      luaL_checkstack(L, 1, "too many sends");
      lua_pushinteger(L, r->id);
      n++;
    }
  }
  udp_close(u);
  return n;
}

/* udpcore.addr(sock) -> host, port */
static int ludp_addr(lua_State *L) {
  struct udp *u = check_udp(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss, port;
  char host[64];
  int rc = uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &len);
  if (rc < 0) return weft__io_push_error(L, rc, "getsockname");
  weft__addr_name((struct sockaddr *)&ss, host, sizeof host, &port);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

static int ludp__gc(lua_State *L) {
  struct udp **box = luaL_checkudata(L, 1, UDP_MT);
  if (*box != NULL) udp_close(*box);
  return 0;
}

static int ludp__tostring(lua_State *L) {
  struct udp **box = luaL_checkudata(L, 1, UDP_MT);
  if (*box == NULL) {
    lua_pushfstring(L, UDP_MT ": %p (closed)", (void *)box);
  } else {
    lua_pushfstring(L, UDP_MT ": %p (%s)", (void *)box, (*box)->name);
  }
  return 1;
}

int weft__open_udpcore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"bind", ludp_bind},
      {"recv", ludp_recv},
      {"recv_cancel", ludp_recv_cancel},
      {"send", ludp_send},
      {"sent", ludp_sent},
      {"send_cancel", ludp_send_cancel},
      {"close", ludp_close},
      {"addr", ludp_addr},
      {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
      {"__gc", ludp__gc},
      {"__close", ludp__gc},
      {"__tostring", ludp__tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, UDP_MT)) {
    luaL_register(L, NULL, meta);
    lua_pushliteral(L, UDP_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
