/*
** tcp.c: TCP conns (streams, stream.c) and servers for tasks.
**
** lua/weft/net.lua resolves names and tries each address: for each it makes
** an unconnected conn (tcpcore.new) and waits on tcpcore.connect; a failed
** or cancelled attempt closes that conn, whose request libuv then cancels.
**
** A server accepts only when a task asks: libuv stops watching the
** listening socket after a connection it was not given a place for, and
** the kernel's backlog holds the rest, so a server nobody accepts on holds
** no memory of ours. Like a conn, the server handle keeps the loop alive
** only while a task waits on it, so that a listening server does not hide
** a deadlock of the tasks around it. A server is on its runtime's live
** list (io.c) until its handle has closed: weft_free closes it.
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CONN_KIND "weft.tcp.conn"
#define SERVER_MT "weft.tcp.server"

struct server {
  uv_tcp_t h;
  weft_runtime *rt;
  struct weft__live live; /* in rt->live until the handle has closed */
  struct server **box; /* the userdata's pointer; NULL once closed */
  int accept_id;       /* the waiting accept, or 0 */
  int pending;         /* libuv holds a connection for uv_accept */
  int status;          /* a failed connection, for the next accept */
  char name[80];       /* "127.0.0.1:8080", for messages */
};

/* Push a new, unconnected conn. */
static struct weft__stream *conn_new(lua_State *L) {
  struct weft__stream *s = weft__stream_new(L, CONN_KIND);
  uv_tcp_init(s->rt->loop, &s->h.tcp);
  uv_unref(&s->h.handle);
  weft__ignore_sigpipe();
  return s;
}

static void name_peer(struct weft__stream *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss, port;
  char host[64];
  if (uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  weft__addr_name((struct sockaddr *)&ss, host, sizeof host, &port);
  snprintf(s->name, sizeof s->name,
           ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

static void name_sock(char *name, size_t n, uv_tcp_t *h) {
  struct sockaddr_storage ss;
  int len = sizeof ss, port;
  char host[64];
  if (uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len) != 0) return;
  weft__addr_name((struct sockaddr *)&ss, host, sizeof host, &port);
  snprintf(name, n, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
           port);
}

static int push_connected(lua_State *L, void *ud) {
  struct weft__stream *s = ud;
  int status = s->werr;
  s->werr = 0;
  if (status < 0) {
    char what[128];
    snprintf(what, sizeof what, "connect %s", s->name);
    return weft__io_push_error(L, status, what);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void on_connect(uv_connect_t *req, int status) {
  struct weft__stream *s = req->handle->data;
  if (s->conn_id == 0) return;
  int id = s->conn_id;
  s->conn_id = 0;
  s->werr = status < 0 ? status : 0;
  if (status == 0) name_peer(s);
  weft__io_complete(s->rt, id, push_connected, s);
}

static void server_on_close(uv_handle_t *h) {
  struct server *v = h->data;
  weft__live_del(&v->live);
  free(v);
}

static void server_close(struct server *v) {
  if (v->box != NULL) *v->box = NULL;
  v->box = NULL;
  v->accept_id = 0;
  if (!uv_is_closing((uv_handle_t *)&v->h))
    uv_close((uv_handle_t *)&v->h, server_on_close);
}

/* weft_free (see stream_end in stream.c). */
static void server_end(struct weft__live *l) {
  struct server *v = weft__container(l, struct server, live);
  if (!uv_is_closing((uv_handle_t *)&v->h)) server_close(v);
}

/* Push the connection libuv holds as a conn, or nil, err. */
static int push_accepted(lua_State *L, void *ud) {
  struct server *v = ud;
  char what[128];
  snprintf(what, sizeof what, "accept %s", v->name);
  if (v->status < 0) {
    int status = v->status;
    v->status = 0;
    return weft__io_push_error(L, status, what);
  }
  v->pending = 0;
  struct weft__stream *s = conn_new(L);
  int rc = uv_accept((uv_stream_t *)&v->h, &s->h.stream);
  if (rc < 0) {
    weft__stream_close(s);
    lua_pop(L, 1);
    return weft__io_push_error(L, rc, what);
  }
  name_peer(s);
  return 1;
}

static void on_connection(uv_stream_t *h, int status) {
  struct server *v = h->data;
  if (status < 0) {
    v->status = status;
  } else {
    v->pending = 1;
  }
  if (v->accept_id != 0) {
    int id = v->accept_id;
    v->accept_id = 0;
    uv_unref((uv_handle_t *)&v->h);
    weft__io_complete(v->rt, id, push_accepted, v);
  }
}

/*{======================================================================
** Lua binding: weft.tcpcore, used by lua/weft/net.lua
**=======================================================================*/

static struct server *check_server(lua_State *L, int idx) {
  struct server **box = luaL_checkudata(L, idx, SERVER_MT);
  if (*box == NULL) luaL_error(L, "attempt to use a closed server");
  return *box;
}

static int checkport(lua_State *L, int idx) {
  lua_Integer port = luaL_checkinteger(L, idx);
  if (port < 0 || port > 65535) luaL_argerror(L, idx, "port from 0 to 65535");
  return (int)port;
}

/* tcpcore.new() -> an unconnected conn */
static int ltcp_new(lua_State *L) {
  conn_new(L);
  return 1;
}

/* tcpcore.connect(id, conn, ip, port) -> conn | nil, err */
static int ltcp_connect(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct weft__stream *s = weft__stream_check(L, 2);
  const char *ip = luaL_checkstring(L, 3);
  int port = checkport(L, 4);
  struct sockaddr_storage ss;
  int rc = weft__addr_parse(ip, port, &ss);
  snprintf(s->name, sizeof s->name, ss.ss_family == AF_INET6 ? "[%s]:%d"
           : "%s:%d", ip, port);
  if (rc == 0)
    rc = uv_tcp_connect(&s->connect, &s->h.tcp, (struct sockaddr *)&ss,
                        on_connect);
  if (rc < 0) {
    char what[128];
    snprintf(what, sizeof what, "connect %s", s->name);
    return weft__io_push_error(L, rc, what);
  }
  s->conn_id = id;
  lua_settop(L, 2);
  return 1;
}

/* tcpcore.connect_cancel(conn): the caller closes the conn next. */
static int ltcp_connect_cancel(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  s->conn_id = 0;
  return 0;
}

/* tcpcore.listen(ip, port, backlog) -> server | nil, err */
static int ltcp_listen(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = checkport(L, 2);
  int backlog = (int)luaL_optinteger(L, 3, 511);
  weft_runtime *rt = weft__rt(L); /* before the allocation: it may raise */
  struct server **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, SERVER_MT);
  lua_setmetatable(L, -2);
  struct server *v = calloc(1, sizeof *v);
  if (v == NULL) return luaL_error(L, "weft: out of memory");
  v->rt = rt;
  v->h.data = v;
  v->box = box;
  *box = v;
  uv_tcp_init(rt->loop, &v->h);
  weft__live_add(rt, &v->live, server_end);
  uv_unref((uv_handle_t *)&v->h);
  struct sockaddr_storage ss;
  int rc = weft__addr_parse(ip, port, &ss);
  snprintf(v->name, sizeof v->name, ss.ss_family == AF_INET6 ? "[%s]:%d"
           : "%s:%d", ip, port);
  if (rc == 0) rc = uv_tcp_bind(&v->h, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&v->h, backlog, on_connection);
  if (rc < 0) {
    char what[128];
    snprintf(what, sizeof what, "listen %s", v->name);
    server_close(v);
    return weft__io_push_error(L, rc, what);
  }
  name_sock(v->name, sizeof v->name, &v->h); /* port 0 picked one */
  weft__ignore_sigpipe();
  return 1;
}

/* tcpcore.accept_now(server) -> conn | nil, err | nothing (must wait) */
static int ltcp_accept_now(lua_State *L) {
  struct server *v = check_server(L, 1);
  if (!v->pending && v->status == 0) return 0;
  return push_accepted(L, v);
}

/* tcpcore.accept(id, server) -> server: wait for a connection. */
static int ltcp_accept(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  struct server *v = check_server(L, 2);
  if (v->accept_id != 0)
    return luaL_error(L, "another task is already accepting on this server");
  v->accept_id = id;
  uv_ref((uv_handle_t *)&v->h);
  lua_settop(L, 2);
  return 1;
}

/* tcpcore.accept_cancel(server) */
static int ltcp_accept_cancel(lua_State *L) {
  struct server **box = luaL_checkudata(L, 1, SERVER_MT);
  if (*box != NULL && (*box)->accept_id != 0) {
    (*box)->accept_id = 0;
    uv_unref((uv_handle_t *)&(*box)->h);
  }
  return 0;
}

/* tcpcore.server_close(server) -> the waiting accept's id, if any */
static int ltcp_server_close(lua_State *L) {
  struct server **box = luaL_checkudata(L, 1, SERVER_MT);
  struct server *v = *box;
  if (v == NULL) return 0;
  int id = v->accept_id;
  server_close(v);
  if (id == 0) return 0;
  lua_pushinteger(L, id);
  return 1;
}

static int push_sockname(lua_State *L, int rc, struct sockaddr_storage *ss) {
  char host[64];
  int port;
  if (rc < 0) return weft__io_push_error(L, rc, "getsockname");
  weft__addr_name((struct sockaddr *)ss, host, sizeof host, &port);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

/* tcpcore.server_addr(server) -> host, port */
static int ltcp_server_addr(lua_State *L) {
  struct server *v = check_server(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  return push_sockname(
      L, uv_tcp_getsockname(&v->h, (struct sockaddr *)&ss, &len), &ss);
}

/* tcpcore.peer(conn) -> host, port | nil, err */
static int ltcp_peer(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  return push_sockname(
      L, uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len), &ss);
}

/* tcpcore.sock(conn) -> host, port | nil, err */
static int ltcp_sock(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  return push_sockname(
      L, uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len), &ss);
}

static int push_status(lua_State *L, int rc, const char *what) {
  if (rc < 0) return weft__io_push_error(L, rc, what);
  lua_pushboolean(L, 1);
  return 1;
}

/* tcpcore.nodelay(conn, on) -> true | nil, err */
static int ltcp_nodelay(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  return push_status(L, uv_tcp_nodelay(&s->h.tcp, lua_toboolean(L, 2)),
                     "set_nodelay");
}

/* tcpcore.keepalive(conn, on, seconds) -> true | nil, err */
static int ltcp_keepalive(lua_State *L) {
  struct weft__stream *s = weft__stream_check(L, 1);
  unsigned delay = (unsigned)luaL_optinteger(L, 3, 60);
  return push_status(
      L, uv_tcp_keepalive(&s->h.tcp, lua_toboolean(L, 2), delay),
      "set_keepalive");
}

static int lserver__gc(lua_State *L) {
  struct server **box = luaL_checkudata(L, 1, SERVER_MT);
  if (*box != NULL) server_close(*box);
  return 0;
}

static int lserver__tostring(lua_State *L) {
  struct server **box = luaL_checkudata(L, 1, SERVER_MT);
  if (*box == NULL) {
    lua_pushfstring(L, SERVER_MT ": %p (closed)", (void *)box);
  } else {
    lua_pushfstring(L, SERVER_MT ": %p (%s)", (void *)box, (*box)->name);
  }
  return 1;
}

int weft__open_tcpcore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"new", ltcp_new},
      {"connect", ltcp_connect},
      {"connect_cancel", ltcp_connect_cancel},
      {"listen", ltcp_listen},
      {"accept_now", ltcp_accept_now},
      {"accept", ltcp_accept},
      {"accept_cancel", ltcp_accept_cancel},
      {"server_close", ltcp_server_close},
      {"server_addr", ltcp_server_addr},
      {"peer", ltcp_peer},
      {"sock", ltcp_sock},
      {"nodelay", ltcp_nodelay},
      {"keepalive", ltcp_keepalive},
      {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
      {"__gc", lserver__gc},
      {"__close", lserver__gc},
      {"__tostring", lserver__tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, SERVER_MT)) {
    luaL_register(L, NULL, meta);
    lua_pushliteral(L, SERVER_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
