/*
** host.c: a C host that drives weft once per frame, as a game engine would.
** Each of 60 frames a second calls weft_step with a 2 ms budget while the
** Lua side (agents.lua) runs 10,000 agents; a second thread plays the input
** system, posting events into a channel with weft_post. At the end it
** prints how long the steps took.
**
**   build/examples/host/weft_host examples/host/agents.lua [seconds]
*/
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "weft.h"

#define FPS 60
#define BUDGET_MS 2.0

static void push_event(lua_State *L, void *ud) {
  lua_getglobal(L, "inputs");
  lua_getfield(L, -1, "try_send");
  lua_insert(L, -2);
  lua_pushstring(L, ud != NULL ? "quit" : "key");
  lua_call(L, 2, 0);
}

struct input {
  weft_runtime *rt;
  int events;
};

/* The input thread: an event every 5 ms, then "quit". */
static void input_thread(void *arg) {
  struct input *in = arg;
  for (int i = 0; i < in->events; i++) {
    weft_post(in->rt, push_event, NULL);
    uv_sleep(5);
  }
  weft_post(in->rt, push_event, (void *)1);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  double seconds = argc > 2 ? atof(argv[2]) : 1.0;
  int frames = (int)(seconds * FPS);
  weft_runtime *rt = weft_new(NULL);
  if (rt == NULL || argc < 2 || weft_spawn_file(rt, argv[1], 1, argv + 1)) {
    fprintf(stderr, "usage: weft_host agents.lua [seconds]: %s\n",
            rt ? weft_last_error(rt) : "no runtime");
    return 2;
  }
  weft_step(rt, 50.0); /* set-up: spawn the agents, make the channels */
  struct input in = {rt, frames * 3};
  uv_thread_t th;
  uv_thread_create(&th, input_thread, &in);
  double *ms = calloc((size_t)frames, sizeof *ms);
  uint64_t next = uv_hrtime();
  for (int f = 0; f < frames; f++) {
    uint64_t t0 = uv_hrtime();
    weft_step(rt, BUDGET_MS);
    ms[f] = (double)(uv_hrtime() - t0) / 1e6;
    next += 1000000000u / FPS; /* the rest of the frame is the game's */
    uint64_t now = uv_hrtime();
    if (next > now) uv_sleep((unsigned)((next - now) / 1000000u));
  }
  uv_thread_join(&th);
  weft_step(rt, 5.0); /* the last events */
  lua_State *L = weft_lua(rt);
  lua_getglobal(L, "stats");
  lua_getfield(L, -1, "moves");
  lua_getfield(L, -2, "shots");
  lua_getfield(L, -3, "inputs");
  printf("%d frames, steps of %.1f ms: moves %ld, shots %ld, inputs %ld\n",
         frames, BUDGET_MS, (long)lua_tointeger(L, -3),
         (long)lua_tointeger(L, -2), (long)lua_tointeger(L, -1));
  lua_pop(L, 4);
  qsort(ms, (size_t)frames, sizeof *ms, cmp);
  printf("step time: median %.2f ms, p99 %.2f ms, max %.2f ms\n",
         ms[frames / 2], ms[frames * 99 / 100], ms[frames - 1]);
  free(ms);
  int left = weft_shutdown(rt, 1000);
  weft_free(rt);
  return left == 0 ? 0 : 1;
}
