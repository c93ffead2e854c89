/*
** forked.h: a runner that runs each test in a child process of its own,
** so that one that crashes is reported by name and the others still run
** (the review tests: the bugs they guard against crashed).
*/
#ifndef WEFT_TESTS_FORKED_H
#define WEFT_TESTS_FORKED_H

#include <stddef.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

struct test {
  const char *name;
  void (*fn)(void);
};

#define T(f)                                                                   \
  { #f, f }

/* Run the n tests, each in a child; 0 if all passed, else 1 (2: fork or
** wait failed). */
static int run_forked(const struct test *tests, size_t n) {
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      tests[i].fn();
      fflush(NULL);
      _exit(failures ? 1 : 0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return 2;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) failed++;
    fprintf(stderr, "%s %s", ok ? "ok  " : "FAIL", tests[i].name);
    if (WIFSIGNALED(status)) fprintf(stderr, " (signal %d)", WTERMSIG(status));
    fprintf(stderr, "\n");
  }
  if (failed) fprintf(stderr, "%d test(s) failed\n", failed);
  return failed ? 1 : 0;
}

#endif
