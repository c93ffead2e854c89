/*
** wait.c: the one place a task's coroutine yields to the scheduler.
**
** A blocking call registers its wait (queues the task where a waker finds
** it) and then yields. The yield fails when a C function is on the task's
** stack between the wait and the scheduler: a table.sort comparator, a
** string.gsub replacement, a load reader, a __gc finalizer, a module's top
** level during require. By then the wait is registered, and left so, a
** waker would hand a value to a task that never received it. So the yield
** is made here, in C, where lua_isyieldable tells before yielding whether
** it can work; when it cannot, the scheduler's handler undoes the wait and
** raises a clear error. This costs a C call per wait (~4 ns interpreted)
** where coroutine.isyieldable before every yield cost ~20 ns, because
** LuaJIT does not compile it and stitches the trace around it.
*/
#include <lauxlib.h>

#include "internal.h"

/*
** wait(WAIT, what) -> the waker's values. Upvalue 1 is the handler
** handler(what) that undoes the running task's registered wait and raises
** (or, in a finalizer, returns what the wait returns instead).
*/
static int wait(lua_State *L) {
  int n = lua_gettop(L);
  if (lua_isyieldable(L)) return lua_yield(L, n);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 2);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - n;
}

/*
** The scheduler runs ready tasks on the stack of the task it resumed
** (sched.lua, "The trampoline"), and nothing it does there may fail with a
** stack overflow halfway. LuaJIT cannot say cheaply from compiled code how
** close a stack is to its limit (65,500 slots), so this reads the slots a
** coroutine has allocated from LuaJIT 2.1's lua_State (GC64 layout), which
** the public API does not expose: a stack of at most STACK_SMALL slots is
** at least 32,000 slots from the limit. The layout is checked once on a
** new coroutine (layout_ok); where it does not match, no stack counts as
** small and the scheduler always yields instead.
*/
struct lj21_state {          /* the head of LuaJIT 2.1's lua_State, GC64 */
  void *nextgc;
  uint8_t marked, gct, dummy_ffid, status;
  void *glref, *gclist, *base, *top, *maxstack, *stack, *openupval, *env;
  void *cframe;
  uint32_t stacksize;
};
#define STACK_SMALL 32768
/* Set by every runtime's start, to the same value: runtimes on other
** threads write it too, hence atomic (relaxed: it is the only datum). */
static atomic_int layout_ok;

static int stack_small(void *co) {
  const struct lj21_state *s = co;
  return atomic_load_explicit(&layout_ok, memory_order_relaxed) &&
         s->stacksize <= STACK_SMALL;
}

/* A new coroutine's stack: LuaJIT's first size (40 slots and a few
** spare), its end at stack + stacksize. */
static void check_layout(lua_State *L) {
  lua_State *co = lua_newthread(L);
  const struct lj21_state *s = (const struct lj21_state *)co;
  int ok = s->stacksize >= 40 && s->stacksize <= 64 && s->stack != NULL &&
           (char *)s->maxstack > (char *)s->stack &&
           (char *)s->maxstack < (char *)s->stack + 16 * s->stacksize &&
           s->status == 0;
  atomic_store_explicit(&layout_ok, ok, memory_order_relaxed);
  lua_pop(L, 1);
}

/*
** api.yieldable(co): whether the coroutine co, which must be the running
** one, could yield here, with a small stack. Called through FFI, which LuaJIT compiles into the
** caller's trace, where a C function such as coroutine.isyieldable ends
** the trace and costs ~25 ns (measured on the ping-pong's every round trip:
** see the trampoline in sched.lua). It only reads co's state.
*/
int weft__yieldable(void *co) {
  return lua_isyieldable((lua_State *)co) && stack_small(co);
}

/*{======================================================================
** Lua binding
**=======================================================================*/

/* thread(co) -> co's lua_State as a light userdata, for api.yieldable. */
static int lthread(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_pushlightuserdata(L, lua_tothread(L, 1));
  return 1;
}

/* require("weft.wait")(handler) -> wait, thread */
static int lwait_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushcclosure(L, wait, 1);
  lua_pushcfunction(L, lthread);
  return 2;
}

int weft__open_wait(lua_State *L) {
  check_layout(L);
  lua_pushcfunction(L, lwait_new);
  return 1;
}
/*}======================================================================*/
