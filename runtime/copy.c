/*
** copy.c: values between Lua states, as bytes.
**
** weft.work moves a function, its arguments and its results between the
** main state and a worker's. What crosses is nil, booleans, numbers (the
** 8 bytes of the double: integers, -0, NaN and infinities exact), strings
** (binary-safe), tables of these and Lua functions (as bytecode, with their
** upvalues copied the same way). Shared references and cycles are kept:
** every table or function is numbered when first met and later meetings
** refer to the number, so a graph arrives with the same shape, and a
** recursive local function (an upvalue that is the function itself) works.
** A loaded module (a table in package.loaded, `weft` or `string` say) and
** a C function found in one (`local floor = math.floor`) cross by name and
** are required on the other side, so a function may use the modules its
** file required. Anything else is refused before anything runs, with the
** path of the value: "args[2].x.y: cannot copy a coroutine".
**
** LuaJIT's string.buffer serializer is not used: it has no references (a
** cycle recurses until its depth limit), no functions and no paths in its
** errors, which is what this file exists for. The format is private to one
** process, so bytecode and doubles are copied as they are.
*/
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
  C_NIL,
  C_FALSE,
  C_TRUE,
  C_NUM,
  C_STR,
  C_TABLE,
  C_FUNC,
  C_REF,
  C_END,
  C_MODULE, /* a loaded module, by name: the receiver requires it */
  C_FIELD,  /* a C function of a loaded module: module name, key */
  C_UPVAL   /* an upvalue shared with function ref's upvalue n: ref, n */
};

#define MAX_DEPTH 200
/* Values in one message (a job's arguments, its results): the receiver
** keeps them all on its stack, and a LuaJIT C function may use at most
** LUAI_MAXCSTACK (8000) slots, so a few thousand more than fit failed
** late, as "corrupt data" or "out of memory". Refused up front instead. */
#define MAX_VALUES 7900

/*{======================================================================
** Buffers
**=======================================================================*/

void weft__buf_free(struct weft__buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

static int buf_put(struct weft__buf *b, const void *p, size_t n) {
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < n) {
      if (cap > ((size_t)-1) / 2) return -1;
      cap *= 2;
    }
    char *q = realloc(b->p, cap);
    if (q == NULL) return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 0;
}

static int buf_byte(struct weft__buf *b, int c) {
  unsigned char u = (unsigned char)c;
  return buf_put(b, &u, 1);
}

/* LEB128: seven bits a byte, the high bit set on all but the last. */
static int buf_size(struct weft__buf *b, size_t v) {
  unsigned char tmp[10];
  int n = 0;
  do {
    tmp[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) tmp[n] |= 0x80;
    n++;
  } while (v);
  return buf_put(b, tmp, (size_t)n);
}
/*}======================================================================*/

/*{======================================================================
** Encoding
**=======================================================================*/

/* One step of the path to the value being encoded. */
struct step {
  int kind;         /* S_INDEX: root[i]; S_KEY: a table key; S_UPVAL: upvalue */
  int idx;          /* S_INDEX: the number; S_KEY: the key's stack index */
  const char *name; /* S_UPVAL: the upvalue's name */
};
enum { S_INDEX, S_KEY, S_UPVAL };

struct enc {
  lua_State *L;
  struct weft__buf *b;
  int seen; /* stack index of a table: value -> reference number */
  int mods; /* stack index of a slot for the module map: module or its C
               function -> name (see push_mods), nil until first needed */
  int have_mods;
  int nref;
  int depth;
  const char *root;  /* value i is root[i], but see name1 */
  const char *name1; /* the name of value 1, when not root[1] ("fn") */
  struct step path[MAX_DEPTH + 2];
  char *err;
  size_t errlen;
};

/* A key that reads well after a dot: a Lua name. */
static int is_name(const char *s, size_t n) {
  if (n == 0 || n > 40 || isdigit((unsigned char)s[0])) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '_' || isalnum((unsigned char)s[i]))) return 0;
  return 1;
}

/* Append the text of path step s to out (at most cap bytes in all). */
static void step_text(struct enc *e, const struct step *s, char *out,
                      size_t cap) {
  size_t len = strlen(out);
  char *p = out + len;
  size_t room = cap - len;
  lua_State *L = e->L;
  switch (s->kind) {
  case S_INDEX:
    if (e->name1 != NULL && s->idx == 1)
      snprintf(p, room, "%s", e->name1);
    else
      snprintf(p, room, "%s[%d]", e->root, s->idx - (e->name1 ? 1 : 0));
    break;
  case S_UPVAL: snprintf(p, room, ".<upvalue %s>", s->name); break;
  default:
    switch (lua_type(L, s->idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *k = lua_tolstring(L, s->idx, &n);
      if (is_name(k, n))
        snprintf(p, room, ".%s", k);
      else
        snprintf(p, room, "[\"%.40s\"]", k);
      break;
    }
    case LUA_TNUMBER:
      snprintf(p, room, "[%.14g]", lua_tonumber(L, s->idx));
      break;
    case LUA_TBOOLEAN:
      snprintf(p, room, "[%s]", lua_toboolean(L, s->idx) ? "true" : "false");
      break;
    default: snprintf(p, room, "[%s key]", luaL_typename(L, s->idx)); break;
    }
  }
}

/* Refuse the value being encoded: "root[1].x: what". Returns -1. */
static int refuse(struct enc *e, const char *what) {
  e->err[0] = '\0';
  for (int i = 0; i < e->depth; i++) {
    /* A deep path keeps its ends: the start and where it failed. */
    if (e->depth > 12 && i == 4) {
      size_t len = strlen(e->err);
      snprintf(e->err + len, e->errlen - len, "...");
      i = e->depth - 6;
    }
    step_text(e, &e->path[i], e->err, e->errlen);
  }
  size_t len = strlen(e->err);
  snprintf(e->err + len, e->errlen - len, ": %s", what);
  return -1;
}

static int oom(struct enc *e) {
  snprintf(e->err, e->errlen, "%s: out of memory", e->root);
  return -1;
}

static int enc_value(struct enc *e, int idx);

/* Registry keys of the module map, and of the size and the shallow copy
** of package.loaded it was made from (their addresses). */
static const char mods_key = 0, mods_count_key = 0, mods_snap_key = 0;

/* 1 if t[stack[k]] is set (raw). */
static int has_key(lua_State *L, int t, int k) {
  lua_pushvalue(L, k);
  lua_rawget(L, t);
  int set = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return set;
}

/* Whether package.loaded (at loaded) holds what the snapshot taken when
** the map was made (at snap) held: n entries, each key with the same
** value. A count alone missed a module replaced by another, and the old
** table still crossed by name, as a module the worker could not load. */
static int same_loaded(lua_State *L, int loaded, int snap, int n) {
  lua_pushnil(L);
  while (lua_next(L, loaded) != 0) {
    lua_pushvalue(L, -2);
    lua_rawget(L, snap);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!same || --n < 0) {
      lua_pop(L, 1);
      return 0;
    }
  }
  return n == 0;
}

/* Push a shallow copy of the table at t; returns how many entries. */
static int push_snapshot(lua_State *L, int t) {
  int n = 0;
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
    n++;
  }
  return n;
}

/* The modules every LuaJIT state has loaded or preloaded, a worker's too. */
static int is_std_module(const char *name) {
  static const char *const std[] = {
      "_G",    "bit",       "coroutine",   "debug",    "ffi",
      "io",    "jit",       "jit.opt",     "jit.util", "jit.profile",
      "math",  "os",        "package",     "string",   "string.buffer",
      "table", "table.new", "table.clear", NULL};
  for (int i = 0; std[i] != NULL; i++)
    if (strcmp(name, std[i]) == 0) return 1;
  return 0;
}

/* Push a map of package.loaded: each module table -> its name, and each C
** function field of one -> {name, key}. A value found under several names
** (`M.floor = math.floor`, `package.loaded.str = string`) keeps a standard
** module's name: the program's own module may not load on the other side
** (it was made in place, or comes from a path only this state has), and
** which name won depended on the order of a hash table. Walking every
** module's fields costs ~30 us, so the map is kept in the registry and
** made again only when package.loaded changed (same_loaded, ~1 us). */
static void push_mods(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  int loaded = lua_gettop(L);
  lua_pushlightuserdata(L, (void *)&mods_count_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  int cached = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, (void *)&mods_snap_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&mods_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1) && lua_istable(L, -2) &&
      same_loaded(L, loaded, loaded + 1, cached)) {
    lua_replace(L, loaded);
    lua_settop(L, loaded);
    return;
  }
  lua_settop(L, loaded);
  int count = push_snapshot(L, loaded);
  int snap = lua_gettop(L);
  lua_newtable(L);
  int mods = lua_gettop(L);
  if (count > 0) {
    lua_pushnil(L);
    while (lua_next(L, loaded) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
        int m = lua_gettop(L);
        int std = is_std_module(lua_tostring(L, m - 1));
        if (std || !has_key(L, mods, m)) {
          lua_pushvalue(L, m);
          lua_pushvalue(L, m - 1);
          lua_rawset(L, mods);
        }
        lua_pushnil(L);
        while (lua_next(L, m) != 0) {
          if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1) &&
              (std || !has_key(L, mods, lua_gettop(L)))) {
            lua_pushvalue(L, -1);
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, m - 1);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, -4);
            lua_rawseti(L, -2, 2);
            lua_rawset(L, mods);
          }
          lua_pop(L, 1);
        }
      }
      lua_pop(L, 1);
    }
  }
  lua_pushlightuserdata(L, (void *)&mods_key);
  lua_pushvalue(L, mods);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&mods_snap_key);
  lua_pushvalue(L, snap);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, (void *)&mods_count_key);
  lua_pushinteger(L, count);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_replace(L, loaded);
  lua_settop(L, loaded);
}

/* A module, or a module's C function: encode it by name. 1 if it was one,
** 0 if not, -1 on out of memory. */
static int enc_module(struct enc *e, int idx) {
  lua_State *L = e->L;
  if (!e->have_mods) {
    if (!lua_checkstack(L, 16)) return -1; /* push_mods' walk */
    push_mods(L);
    lua_replace(L, e->mods);
    e->have_mods = 1;
  }
  lua_pushvalue(L, idx);
  lua_rawget(L, e->mods);
  int rc = 0;
  size_t n;
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *name = lua_tolstring(L, -1, &n);
    rc = buf_byte(e->b, C_MODULE) || buf_size(e->b, n) || buf_put(e->b, name, n)
             ? -1
             : 1;
  } else if (lua_istable(L, -1)) {
    rc = buf_byte(e->b, C_FIELD) ? -1 : 1;
    for (int i = 1; i <= 2 && rc == 1; i++) {
      lua_rawgeti(L, -1, i);
      const char *s = lua_tolstring(L, -1, &n);
      if (buf_size(e->b, n) || buf_put(e->b, s, n)) rc = -1;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return rc;
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return buf_put(ud, p, n);
}

/* Number a table or function the first time it is met (0 returned), or
** return its number (>0) when it was met before. */
static int remember(struct enc *e, int idx) {
  lua_State *L = e->L;
  lua_pushvalue(L, idx);
  lua_rawget(L, e->seen);
  int ref = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (ref > 0) return ref;
  lua_pushvalue(L, idx);
  lua_pushinteger(L, ++e->nref);
  lua_rawset(L, e->seen);
  return 0;
}

static int enc_table(struct enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return refuse(e, "cannot copy a table with a metatable");
  }
  if (buf_byte(e->b, C_TABLE)) return oom(e);
  /* Sizes for the receiver's lua_createtable, patched in after the
  ** entries: a table made at its size is not rehashed as it fills. */
  size_t sizes = e->b->n;
  uint32_t narr = 0, nhash = 0;
  if (buf_put(e->b, &narr, sizeof narr) || buf_put(e->b, &nhash, sizeof nhash))
    return oom(e);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) >= 1)
      narr++;
    else
      nhash++;
    int top = lua_gettop(L);
    e->path[e->depth].kind = S_KEY;
    e->path[e->depth].idx = top - 1;
    e->depth++;
    int rc = enc_value(e, top - 1);
    if (rc == 0) rc = enc_value(e, top);
    e->depth--;
    if (rc != 0) return rc;
    lua_pop(L, 1);
  }
  memcpy(e->b->p + sizes, &narr, sizeof narr);
  memcpy(e->b->p + sizes + sizeof narr, &nhash, sizeof nhash);
  return buf_byte(e->b, C_END) ? oom(e) : 0;
}

static int enc_function(struct enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_iscfunction(L, idx)) return refuse(e, "cannot copy a C function");
  if (buf_byte(e->b, C_FUNC)) return oom(e);
  struct weft__buf code = {NULL, 0, 0};
  lua_pushvalue(L, idx);
  int rc = lua_dump(L, dump_writer, &code);
  lua_pop(L, 1);
  if (rc != 0 || code.n == 0) {
    weft__buf_free(&code);
    return refuse(e, "cannot copy a function whose bytecode cannot be made");
  }
  rc = buf_size(e->b, code.n) || buf_put(e->b, code.p, code.n);
  weft__buf_free(&code);
  if (rc) return oom(e);
  int self = e->nref; /* this function's reference number (remember) */
  int nup = 0;
  while (lua_getupvalue(L, idx, nup + 1) != NULL) {
    lua_pop(L, 1);
    nup++;
  }
  if (buf_size(e->b, (size_t)nup)) return oom(e);
  for (int i = 1; i <= nup; i++) {
    /* Closures that share a variable share its upvalue (`inc` and `get`
    ** over one `n`): the first one met carries the value, and the others
    ** say whose upvalue it is, which the receiver joins. */
    void *id = lua_upvalueid(L, idx, i);
    lua_pushlightuserdata(L, id);
    lua_rawget(L, e->seen);
    if (lua_isnumber(L, -1)) {
      lua_Number at = lua_tonumber(L, -1);
      lua_pop(L, 1);
      size_t ref = (size_t)(at / 64), n = (size_t)at % 64;
      if (buf_byte(e->b, C_UPVAL) || buf_size(e->b, ref) || buf_size(e->b, n))
        return oom(e);
      continue;
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, id);
    lua_pushnumber(L, (lua_Number)self * 64 + i); /* i <= 60 in LuaJIT */
    lua_rawset(L, e->seen);
    const char *name = lua_getupvalue(L, idx, i);
    e->path[e->depth].kind = S_UPVAL;
    e->path[e->depth].name = name;
    e->depth++;
    rc = enc_value(e, lua_gettop(L));
    e->depth--;
    if (rc != 0) return rc;
    lua_pop(L, 1);
  }
  return 0;
}

static int enc_value(struct enc *e, int idx) {
  lua_State *L = e->L;
  struct weft__buf *b = e->b;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return buf_byte(b, C_NIL) ? oom(e) : 0;
  case LUA_TBOOLEAN:
    return buf_byte(b, lua_toboolean(L, idx) ? C_TRUE : C_FALSE) ? oom(e) : 0;
  case LUA_TNUMBER: {
    lua_Number v = lua_tonumber(L, idx);
    return buf_byte(b, C_NUM) || buf_put(b, &v, sizeof v) ? oom(e) : 0;
  }
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return buf_byte(b, C_STR) || buf_size(b, n) || buf_put(b, s, n) ? oom(e)
                                                                    : 0;
  }
  case LUA_TTABLE:
  case LUA_TFUNCTION: {
    if (lua_type(L, idx) == LUA_TTABLE || lua_iscfunction(L, idx)) {
      int m = enc_module(e, idx);
      if (m != 0) return m < 0 ? oom(e) : 0;
    }
    /* depth counts the steps to this value: a root table is at 1, so 200
    ** tables nested are at 200 (">=" refused those, saying "more than"). */
    if (e->depth > MAX_DEPTH)
      return refuse(e, "cannot copy values nested more than 200 deep");
    if (!lua_checkstack(L, 8)) return refuse(e, "out of Lua stack");
    int ref = remember(e, idx);
    if (ref > 0)
      return buf_byte(b, C_REF) || buf_size(b, (size_t)ref) ? oom(e) : 0;
    return lua_type(L, idx) == LUA_TTABLE ? enc_table(e, idx)
                                          : enc_function(e, idx);
  }
  case LUA_TTHREAD: return refuse(e, "cannot copy a coroutine");
  case LUA_TUSERDATA:
  case LUA_TLIGHTUSERDATA: return refuse(e, "cannot copy a userdata");
  default: {
    char what[64];
    snprintf(what, sizeof what, "cannot copy a %s", luaL_typename(L, idx));
    return refuse(e, what);
  }
  }
}

int weft__copy_encode(lua_State *L, int from, int n, struct weft__buf *b,
                      const char *root, const char *name1, char *err,
                      size_t errlen) {
  struct enc e;
  int rc = 0;
  if (from < 0) from = lua_gettop(L) + from + 1;
  if (n > MAX_VALUES) {
    snprintf(err, errlen, "%s: too many values (%d; at most %d)", root, n,
             MAX_VALUES);
    return -1;
  }
  if (!lua_checkstack(L, 8)) {
    snprintf(err, errlen, "%s: out of Lua stack", root);
    return -1;
  }
  memset(&e, 0, sizeof e);
  e.L = L;
  e.b = b;
  e.root = root;
  e.name1 = name1;
  e.err = err;
  e.errlen = errlen;
  lua_newtable(L);
  e.seen = lua_gettop(L);
  lua_pushnil(L);
  e.mods = lua_gettop(L);
  if (buf_size(b, (size_t)n)) rc = oom(&e);
  for (int i = 0; i < n && rc == 0; i++) {
    e.path[0].kind = S_INDEX;
    e.path[0].idx = i + 1;
    e.depth = 1;
    rc = enc_value(&e, from + i);
  }
  lua_settop(L, e.seen - 1);
  return rc;
}
/*}======================================================================*/

/*{======================================================================
** Decoding
**=======================================================================*/

struct dec {
  lua_State *L;
  const unsigned char *p, *end;
  char err[200]; /* why decoding failed, when not corrupt bytes */
  int refs;      /* stack index of a table: reference number -> value */
  int nref;
  int depth;
};

static int get_size(struct dec *d, size_t *v) {
  size_t r = 0;
  for (int shift = 0; d->p < d->end && shift < 64; shift += 7) {
    unsigned char c = *d->p++;
    r |= (size_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = r;
      return 0;
    }
  }
  return -1;
}

static int dec_value(struct dec *d);

static int get_string(struct dec *d, const char **s, size_t *n) {
  if (get_size(d, n) || (size_t)(d->end - d->p) < *n) return -1;
  *s = (const char *)d->p;
  d->p += *n;
  return 0;
}

/* module_get(name [, key]) -> require(name) [, [key]]: protected, since
** a module's __index may raise (a strict module), and decoding runs in
** the scheduler's tick on the main state, where an error ends the run. */
static int module_get(lua_State *L) {
  int field = lua_gettop(L) == 2;
  lua_getglobal(L, "require");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (field) {
    if (!lua_istable(L, -1))
      lua_pushnil(L);
    else {
      lua_pushvalue(L, 2);
      lua_gettable(L, -2);
    }
  }
  return 1;
}

/* require(name) on this side; with key, require(name)[key]. */
static int dec_module(struct dec *d, int field) {
  lua_State *L = d->L;
  const char *name, *key = NULL;
  size_t n, kn = 0;
  if (get_string(d, &name, &n)) return -1;
  if (field && get_string(d, &key, &kn)) return -1;
  lua_pushcfunction(L, module_get);
  lua_pushlstring(L, name, n);
  if (field) lua_pushlstring(L, key, kn);
  if (lua_pcall(L, field ? 2 : 1, 1, 0) != 0) {
    snprintf(d->err, sizeof d->err, "module '%.*s': %s", (int)n, name,
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "cannot load");
    lua_pop(L, 1);
    return -1;
  }
  if (!field || !lua_isnil(L, -1)) return 0;
  snprintf(d->err, sizeof d->err, "module '%.*s' has no field '%.*s'", (int)n,
           name, (int)kn, key);
  lua_pop(L, 1);
  return -1;
}

/* f's upvalue i is the upvalue n of function ref, decoded before (or
** being decoded: its value is set through either). */
static int dec_upval(struct dec *d, int f, int i) {
  lua_State *L = d->L;
  size_t ref, n;
  d->p++;
  if (get_size(d, &ref) || get_size(d, &n) || ref == 0 ||
      ref > (size_t)d->nref || n == 0 || n > 255)
    return -1;
  lua_rawgeti(L, d->refs, (int)ref);
  int g = lua_gettop(L);
  int ok = lua_isfunction(L, g) && !lua_iscfunction(L, g) &&
           lua_getupvalue(L, g, (int)n) != NULL &&
           lua_getupvalue(L, f, i) != NULL;
  lua_settop(L, g);
  if (ok) lua_upvaluejoin(L, f, i, g, (int)n);
  lua_pop(L, 1);
  return ok ? 0 : -1;
}

static int dec_function(struct dec *d) {
  lua_State *L = d->L;
  size_t n, nup;
  if (get_size(d, &n) || (size_t)(d->end - d->p) < n) return -1;
  if (luaL_loadbuffer(L, (const char *)d->p, n, "=weft.work") != 0) {
    lua_pop(L, 1);
    return -1;
  }
  d->p += n;
  int f = lua_gettop(L);
  lua_pushvalue(L, f);
  lua_rawseti(L, d->refs, ++d->nref);
  if (get_size(d, &nup)) return -1;
  for (size_t i = 1; i <= nup; i++) {
    if (d->p < d->end && *d->p == C_UPVAL) {
      if (dec_upval(d, f, (int)i)) return -1;
      continue;
    }
    if (dec_value(d)) return -1;
    if (lua_setupvalue(L, f, (int)i) == NULL) lua_pop(L, 1);
  }
  return 0;
}

static int dec_table(struct dec *d) {
  lua_State *L = d->L;
  uint32_t narr, nhash;
  if ((size_t)(d->end - d->p) < sizeof narr + sizeof nhash) return -1;
  memcpy(&narr, d->p, sizeof narr);
  memcpy(&nhash, d->p + sizeof narr, sizeof nhash);
  d->p += sizeof narr + sizeof nhash;
  /* Hints only: capped, so that bad bytes cannot ask for gigabytes. */
  lua_createtable(L, narr > (1u << 24) ? 0 : (int)narr,
                  nhash > (1u << 24) ? 0 : (int)nhash);
  int t = lua_gettop(L);
  lua_pushvalue(L, t);
  lua_rawseti(L, d->refs, ++d->nref);
  for (;;) {
    if (d->p >= d->end) return -1;
    if (*d->p == C_END) {
      d->p++;
      return 0;
    }
    if (dec_value(d) || dec_value(d)) return -1;
    if (lua_isnil(L, -2)) return -1;
    lua_rawset(L, t);
  }
}

static int dec_value(struct dec *d) {
  lua_State *L = d->L;
  if (d->p >= d->end || !lua_checkstack(L, 8)) return -1;
  int tag = *d->p++;
  switch (tag) {
  case C_NIL: lua_pushnil(L); return 0;
  case C_FALSE: lua_pushboolean(L, 0); return 0;
  case C_TRUE: lua_pushboolean(L, 1); return 0;
  case C_NUM: {
    lua_Number v;
    if ((size_t)(d->end - d->p) < sizeof v) return -1;
    memcpy(&v, d->p, sizeof v);
    d->p += sizeof v;
    lua_pushnumber(L, v);
    return 0;
  }
  case C_STR: {
    size_t n;
    if (get_size(d, &n) || (size_t)(d->end - d->p) < n) return -1;
    lua_pushlstring(L, (const char *)d->p, n);
    d->p += n;
    return 0;
  }
  case C_MODULE:
  case C_FIELD: return dec_module(d, tag == C_FIELD);
  case C_REF: {
    size_t ref;
    if (get_size(d, &ref) || ref == 0 || ref > (size_t)d->nref) return -1;
    lua_rawgeti(L, d->refs, (int)ref);
    return 0;
  }
  case C_TABLE:
  case C_FUNC: {
    if (++d->depth > MAX_DEPTH + 1) return -1;
    int rc = tag == C_TABLE ? dec_table(d) : dec_function(d);
    d->depth--;
    return rc;
  }
  default: return -1;
  }
}

int weft__copy_decode(lua_State *L, const char *p, size_t n) {
  struct dec d;
  size_t count;
  int base = lua_gettop(L);
  memset(&d, 0, sizeof d);
  d.L = L;
  d.p = (const unsigned char *)p;
  d.end = d.p + n;
  if (get_size(&d, &count) || count > MAX_VALUES) {
    lua_pushliteral(L, "corrupt data");
    return -1;
  }
  if (!lua_checkstack(L, (int)count + 8)) {
    lua_pushliteral(L, "too many values for the Lua stack");
    return -1;
  }
  lua_newtable(L);
  d.refs = lua_gettop(L);
  for (size_t i = 0; i < count; i++) {
    if (dec_value(&d)) {
      lua_settop(L, base);
      lua_pushstring(L, d.err[0] ? d.err : "corrupt data");
      return -1;
    }
  }
  lua_remove(L, d.refs);
  return (int)count;
}
/*}======================================================================*/

/*{======================================================================
** Lua binding: weft.copy, for tests of what crosses between states
**=======================================================================*/

/* copy.roundtrip(...) -> copies of the values, made through the bytes a
** worker would receive; raises with the refused value's path. */
static int lcopy_roundtrip(lua_State *L) {
  struct weft__buf b = {NULL, 0, 0};
  char err[256];
  int n = lua_gettop(L);
  if (weft__copy_encode(L, 1, n, &b, "args", NULL, err, sizeof err) != 0) {
    weft__buf_free(&b);
    return luaL_error(L, "%s", err);
  }
  lua_settop(L, 0);
  n = weft__copy_decode(L, b.p, b.n);
  weft__buf_free(&b);
  if (n < 0) return lua_error(L);
  return n;
}

/* copy.size(...) -> how many bytes the values take. */
static int lcopy_size(lua_State *L) {
  struct weft__buf b = {NULL, 0, 0};
  char err[256];
  int rc =
      weft__copy_encode(L, 1, lua_gettop(L), &b, "args", NULL, err, sizeof err);
  size_t n = b.n;
  weft__buf_free(&b);
  if (rc != 0) return luaL_error(L, "%s", err);
  lua_pushnumber(L, (lua_Number)n);
  return 1;
}

int weft__open_copy(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"roundtrip", lcopy_roundtrip},
      {"size", lcopy_size},
      {NULL, NULL},
  };
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
/*}======================================================================*/
