/*
** host_bench.c: the embedding figures of issue 12, as "name value..." lines
** for bench/run.
**
**   weft_host_bench idle        ns per weft_step on an idle runtime
**   weft_host_bench post        steps from weft_post (another thread) to
**                               the task that receives it, 1 being the
**                               first step after the post: p50 max
**   weft_host_bench agents N    weft_step(rt, 2 ms) with N agents whose
**                               timers come due together: p99 max (ms)
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "weft.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void idle(void) {
  weft_runtime *rt = weft_new(NULL);
  const int n = 1000000;
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < n; i++)
    weft_step(rt, 0);
  printf("idle %.1f\n", (double)(uv_hrtime() - t0) / n);
  weft_free(rt);
}

/* The post callback runs in a step: it records that step's number and
** hands the value to the task. */
static long step_now;
static long *post_step, *recv_step;

static void deliver(lua_State *L, void *ud) {
  long i = (long)(intptr_t)ud;
  recv_step[i] = step_now;
  lua_getglobal(L, "inbox");
  lua_getfield(L, -1, "try_send");
  lua_insert(L, -2);
  lua_pushnumber(L, (lua_Number)i);
  lua_call(L, 2, 0);
}

struct poster {
  weft_runtime *rt;
  int n;
};

static volatile long current_step;

static void poster(void *arg) {
  struct poster *p = arg;
  for (long i = 0; i < p->n; i++) {
    post_step[i] = current_step;
    weft_post(p->rt, deliver, (void *)(intptr_t)i);
    uv_sleep(1);
  }
}

static void post(void) {
  const int n = 500;
  weft_runtime *rt = weft_new(NULL);
  post_step = calloc(n, sizeof *post_step);
  recv_step = calloc(n, sizeof *recv_step);
  weft_spawn_string(rt,
                    "inbox = weft.chan(1000) local got = 0\n"
                    "while got < 500 do inbox:recv() got = got + 1 end\n",
                    "=inbox");
  weft_step(rt, 1.0);
  struct poster p = {rt, n};
  uv_thread_t th;
  uv_thread_create(&th, poster, &p);
  while (weft_step(rt, 2.0) > 0) {
    step_now = ++current_step;
    uv_sleep(4); /* a frame's own work */
  }
  uv_thread_join(&th);
  double *d = calloc(n, sizeof *d);
  /* 1: handled by the first step that began after the post. */
  for (int i = 0; i < n; i++)
    d[i] = (double)(recv_step[i] - post_step[i] + 1);
  qsort(d, n, sizeof *d, cmp_double);
  printf("post %.0f %.0f\n", d[n / 2], d[n - 1]);
  free(d);
  free(post_step);
  free(recv_step);
  weft_free(rt);
}

static void agents(int n) {
  char code[256];
  weft_runtime *rt = weft_new(NULL);
  snprintf(code, sizeof code,
           "for i = 1, %d do weft.go(function()\n"
           "  for _ = 1, 5 do weft.sleep(0.05 + (i %% 7) * 0.001) end\n"
           "end) end\n",
           n);
  weft_spawn_string(rt, code, "=agents");
  weft_step(rt, 2.0); /* set-up: the chunk spawns them in one resume */
  int cap = 100000, k = 0;
  double *ms = calloc((size_t)cap, sizeof *ms);
  int live;
  do {
    uint64_t t0 = uv_hrtime();
    live = weft_step(rt, 2.0);
    if (k < cap) ms[k++] = (double)(uv_hrtime() - t0) / 1e6;
    int to = weft_next_timeout(rt);
    if (to > 0) uv_sleep((unsigned)to);
  } while (live > 0);
  qsort(ms, (size_t)k, sizeof *ms, cmp_double);
  printf("agents%d %.2f %.2f\n", n, ms[k * 99 / 100], ms[k - 1]);
  free(ms);
  weft_free(rt);
}

int main(int argc, char **argv) {
  const char *w = argc > 1 ? argv[1] : "";
  if (strcmp(w, "idle") == 0) {
    idle();
  } else if (strcmp(w, "post") == 0) {
    post();
  } else if (strcmp(w, "agents") == 0 && argc > 2) {
    agents(atoi(argv[2]));
  } else {
    fprintf(stderr, "usage: weft_host_bench idle|post|agents N\n");
    return 2;
  }
  return 0;
}
