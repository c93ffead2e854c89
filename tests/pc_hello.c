/* pc_hello.c: the smallest host, built with nothing but `pkg-config weft`
** (tests/pc_test.sh builds it against the build tree and an install). */
#include <stdio.h>
#include <weft.h>

int main(void) {
  weft_runtime *rt = weft_new(NULL);
  if (rt == NULL) return 1;
  int rc = weft_spawn_string(
      rt,
      "local ch = weft.chan() weft.go(function() ch:send('hello') end) "
      "print(ch:recv())",
      "=hello");
  if (rc == 0) rc = weft_run(rt);
  weft_free(rt);
  return rc == 0 ? 0 : 1;
}
