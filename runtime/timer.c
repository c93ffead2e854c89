/*
** timer.c: the runtime's clock and its timer heap.
**
** One libuv timer per runtime is armed for the earliest deadline (runtime.c);
** every sleep, deadline and weft.after is an entry here, so adding and
** removing one is O(log n) without a libuv handle each.
*/
#include <math.h>
#include <stdlib.h>

#include "internal.h"

int weft__timers_init(struct weft__timers *tm) {
  tm->cap = 64;
  tm->t = calloc(tm->cap, sizeof *tm->t);
  tm->heap = calloc(tm->cap, sizeof *tm->heap);
  tm->n = 0;
  tm->seq = 0;
  tm->free = 0;
  if (tm->t == NULL || tm->heap == NULL) {
    weft__timers_destroy(tm);
    return WEFT_ENOMEM;
  }
  /* Ids 1..cap-1 start on the free list, lowest first. */
  for (uint32_t id = tm->cap - 1; id >= 1; id--) {
    tm->t[id].link = tm->free;
    tm->free = id;
  }
  return 0;
}

void weft__timers_destroy(struct weft__timers *tm) {
  free(tm->t);
  free(tm->heap);
  tm->t = NULL;
  tm->heap = NULL;
  tm->n = tm->cap = tm->free = 0;
}

static int grow(struct weft__timers *tm) {
  uint32_t cap = tm->cap * 2;
  struct weft__timer *t = realloc(tm->t, cap * sizeof *t);
  if (t == NULL) return WEFT_ENOMEM;
  tm->t = t;
  uint32_t *heap = realloc(tm->heap, cap * sizeof *heap);
  if (heap == NULL) return WEFT_ENOMEM;
  tm->heap = heap;
  for (uint32_t id = cap - 1; id >= tm->cap; id--) {
    t[id].link = tm->free;
    tm->free = id;
  }
  tm->cap = cap;
  return 0;
}

/* Sequence numbers wrap; comparing their difference keeps FIFO order as
** long as the armed timers span less than 2^31 insertions. */
static int earlier(const struct weft__timers *tm, uint32_t a, uint32_t b) {
  const struct weft__timer *x = &tm->t[a], *y = &tm->t[b];
  return x->deadline < y->deadline ||
         (x->deadline == y->deadline && (int32_t)(x->seq - y->seq) < 0);
}

static void place(struct weft__timers *tm, uint32_t i, uint32_t id) {
  tm->heap[i] = id;
  tm->t[id].link = i;
}

/* A free id is never in the heap, so this cannot mistake one for armed. */
static int armed(const struct weft__timers *tm, uint32_t id) {
  if (id == 0 || id >= tm->cap) return 0;
  uint32_t i = tm->t[id].link;
  return i >= 1 && i <= tm->n && tm->heap[i] == id;
}

static void sift_up(struct weft__timers *tm, uint32_t i) {
  uint32_t id = tm->heap[i];
  while (i > 1 && earlier(tm, id, tm->heap[i / 2])) {
    place(tm, i, tm->heap[i / 2]);
    i /= 2;
  }
  place(tm, i, id);
}

static void sift_down(struct weft__timers *tm, uint32_t i) {
  uint32_t id = tm->heap[i];
  for (;;) {
    uint32_t c = 2 * i;
    if (c > tm->n) break;
    if (c < tm->n && earlier(tm, tm->heap[c + 1], tm->heap[c])) c++;
    if (!earlier(tm, tm->heap[c], id)) break;
    place(tm, i, tm->heap[c]);
    i = c;
  }
  place(tm, i, id);
}

/* Remove the entry at heap index i and put its id on the free list. */
static void remove_at(struct weft__timers *tm, uint32_t i) {
  uint32_t id = tm->heap[i];
  uint32_t last = tm->heap[tm->n--];
  if (i <= tm->n) {
    place(tm, i, last);
    if (i > 1 && earlier(tm, last, tm->heap[i / 2]))
      sift_up(tm, i);
    else
      sift_down(tm, i);
  }
  tm->t[id].link = tm->free;
  tm->free = id;
}

/* Returns the new timer's id, or 0 when out of memory or destroyed (a
** freed runtime's tomb: see weft_free). */
uint32_t weft__timer_add(weft_runtime *rt, double deadline) {
  struct weft__timers *tm = &rt->timers;
  if (tm->t == NULL) return 0;
  if (tm->free == 0 && grow(tm) != 0) return 0;
  uint32_t id = tm->free;
  tm->free = tm->t[id].link;
  tm->t[id].deadline = deadline;
  tm->t[id].seq = tm->seq++;
  tm->heap[++tm->n] = id;
  sift_up(tm, tm->n);
  return id;
}

/* Stop a timer; a no-op for an id that is not armed. */
void weft__timer_del(weft_runtime *rt, uint32_t id) {
  struct weft__timers *tm = &rt->timers;
  if (!armed(tm, id)) return;
  remove_at(tm, tm->t[id].link);
}

/* Remove and return the earliest timer due at `now`, or 0. */
uint32_t weft__timer_pop(weft_runtime *rt, double now) {
  struct weft__timers *tm = &rt->timers;
  if (tm->n == 0) return 0;
  uint32_t id = tm->heap[1];
  if (tm->t[id].deadline > now) return 0;
  remove_at(tm, 1);
  return id;
}

/* A timer's deadline, or NaN when it is not armed. */
double weft__timer_deadline(weft_runtime *rt, uint32_t id) {
  struct weft__timers *tm = &rt->timers;
  if (!armed(tm, id)) return NAN;
  return tm->t[id].deadline;
}

/* 1 and the earliest deadline in *deadline, or 0 when no timer is armed. */
int weft__timer_next(const struct weft__timers *tm, double *deadline) {
  if (tm->n == 0) return 0;
  *deadline = tm->t[tm->heap[1]].deadline;
  return 1;
}

/* Seconds since the epoch, for the time stamp of errors. */
double weft__wall(weft_runtime *rt) {
  uv_timeval64_t tv;
  (void)rt;
  if (uv_gettimeofday(&tv) != 0) return 0;
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Seconds since the runtime was created, on the monotonic clock. */
double weft__now(weft_runtime *rt) {
  return (double)(uv_hrtime() - rt->t0) / 1e9;
}
