/*
** check.h: what the C tests share. An ASSERT that fails counts a failure
** and returns from the test function (each test's main reports the count);
** cpu_ns for bounds on what a step costs.
*/
#ifndef WEFT_TESTS_CHECK_H
#define WEFT_TESTS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int failures;

#define ASSERT(cond)                                                           \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                          \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define ASSERT_EQ(a, b)                                                        \
  do {                                                                         \
    long long a_ = (long long)(a), b_ = (long long)(b);                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,      \
              __LINE__, #a, #b, a_, b_);                                       \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define ASSERT_STR_CONTAINS(s, sub)                                            \
  do {                                                                         \
    const char *s_ = (s);                                                      \
    if (s_ == NULL || strstr(s_, (sub)) == NULL) {                             \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,     \
              __LINE__, s_ ? s_ : "(null)", (sub));                            \
      failures++;                                                              \
      return;                                                                  \
    }                                                                          \
  } while (0)

/* This thread's CPU time in ns: what a step's own work costs, which a
** loaded machine's preemption (another test, ASan's other half) does not
** add to, as it does to wall time. */
static inline uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
