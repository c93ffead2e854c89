/*
** dns.c: names to addresses for tasks (uv_getaddrinfo, which runs on
** libuv's thread pool), and the address helpers tcp.c and udp.c share.
**
** A cancelled resolve clears its request's id and tries uv_cancel; a
** request already running completes anyway and its callback only frees.
** The Lua side holds each request through a box (metatable "weft.dns.req")
** whose __gc also clears the id: when the Lua state is closed under a
** waiting resolve, the late callback must not call into it. weft_free
** clears the id and the box of every request (dns_end) and, for one still
** resolving when it stops waiting, the runtime (live.rt): that callback
** then only frees the request.
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define REQ_MT "weft.dns.req"

void weft__addr_name(const struct sockaddr *sa, char *buf, size_t n,
                     int *port) {
  buf[0] = '\0';
  *port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, buf, n);
    *port = ntohs(a->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, buf, n);
    *port = ntohs(a->sin6_port);
  }
}

int weft__addr_parse(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
}

struct dnsreq {
  uv_getaddrinfo_t req;
  struct weft__live live; /* live.rt: the runtime, NULL once it is gone */
  int id;
  int status;
  struct dnsreq **box; /* the Lua side's box, until either side goes */
  struct addrinfo *res;
  char host[];
};

static int push_addrs(lua_State *L, void *ud) {
  struct dnsreq *r = ud;
  if (r->status < 0) {
    char what[300];
    snprintf(what, sizeof what, "resolve %.256s", r->host);
    return weft__io_push_error(L, r->status, what);
  }
  lua_newtable(L);
  int n = 0;
  for (struct addrinfo *a = r->res; a != NULL; a = a->ai_next) {
    char name[64];
    int port;
    weft__addr_name(a->ai_addr, name, sizeof name, &port);
    if (name[0] == '\0') continue;
    /* One entry per address, in the resolver's order. */
    int seen = 0;
    for (int i = 1; i <= n && !seen; i++) {
      lua_rawgeti(L, -1, i);
      seen = strcmp(lua_tostring(L, -1), name) == 0;
      lua_pop(L, 1);
    }
    if (seen) continue;
    lua_pushstring(L, name);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  struct dnsreq *r = req->data;
  r->status = status;
  r->res = res;
  if (r->box != NULL) *r->box = NULL;
  if (r->id != 0) weft__io_complete(r->live.rt, r->id, push_addrs, r);
  uv_freeaddrinfo(res);
  weft__live_del(&r->live);
  free(r);
}

/* weft_free: the result goes nowhere, and the box may outlive us. */
static void dns_end(struct weft__live *l) {
  struct dnsreq *r = weft__container(l, struct dnsreq, live);
  r->id = 0;
  if (r->box != NULL) *r->box = NULL;
  r->box = NULL;
  uv_cancel((uv_req_t *)&r->req);
}

/*{======================================================================
** Lua binding: weft.dnscore, used by lua/weft/net.lua
**=======================================================================*/

/* dnscore.resolve(id, host) -> req | nil, err */
static int ldns_resolve(lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  size_t n;
  const char *host = luaL_checklstring(L, 2, &n);
  weft_runtime *rt = weft__rt(L);
  struct dnsreq **box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, REQ_MT);
  lua_setmetatable(L, -2);
  struct dnsreq *r = calloc(1, sizeof *r + n + 1);
  if (r == NULL) return luaL_error(L, "weft: out of memory");
  memcpy(r->host, host, n + 1);
  r->id = id;
  r->req.data = r;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM; /* one entry per address, not per type */
  int rc = uv_getaddrinfo(rt->loop, &r->req, on_resolved, r->host, NULL,
                          &hints);
  if (rc < 0) {
    r->status = rc;
    int k = push_addrs(L, r);
    free(r);
    return k;
  }
  r->box = box;
  *box = r;
  weft__live_add(rt, &r->live, dns_end);
  return 1;
}

/* dnscore.cancel(req): its wait is gone. */
static int ldns_cancel(lua_State *L) {
  struct dnsreq **box = luaL_checkudata(L, 1, REQ_MT);
  struct dnsreq *r = *box;
  if (r == NULL) return 0;
  r->id = 0;
  uv_cancel((uv_req_t *)&r->req);
  return 0;
}

static int lreq__gc(lua_State *L) {
  struct dnsreq **box = luaL_checkudata(L, 1, REQ_MT);
  if (*box != NULL) {
    (*box)->id = 0;
    (*box)->box = NULL;
    *box = NULL;
  }
  return 0;
}

static int lreq__tostring(lua_State *L) {
  struct dnsreq **box = luaL_checkudata(L, 1, REQ_MT);
  if (*box == NULL) {
    lua_pushfstring(L, REQ_MT ": %p (done)", (void *)box);
  } else {
    lua_pushfstring(L, REQ_MT ": %p (%s)", (void *)box, (*box)->host);
  }
  return 1;
}

/* dnscore.numeric(host) -> true if host is an IPv4 or IPv6 address */
static int ldns_numeric(lua_State *L) {
  struct sockaddr_storage ss;
  const char *host = luaL_checkstring(L, 1);
  lua_pushboolean(L, weft__addr_parse(host, 0, &ss) == 0);
  return 1;
}

int weft__open_dnscore(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"resolve", ldns_resolve},
      {"cancel", ldns_cancel},
      {"numeric", ldns_numeric},
      {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
      {"__gc", lreq__gc},
      {"__close", lreq__gc},
      {"__tostring", lreq__tostring},
      {NULL, NULL},
  };
  if (luaL_newmetatable(L, REQ_MT)) {
    luaL_register(L, NULL, meta);
    lua_pushliteral(L, REQ_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
