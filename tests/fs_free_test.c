/*
** fs_free_test.c: weft_free while weft.fs.write_file is in flight leaves
** no temporary file behind (gh-11). The write is seen in flight from here:
** the temporary file exists and has bytes, but was not renamed yet.
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "weft.h"

/* Step rt until the temporary file of dir/big has bytes; 0 if it never
** did (the write finished first, or failed). */
static int step_until_writing(weft_runtime *rt, const char *dir) {
  char tmp[4096];
  struct stat st;
  for (int i = 0; i < 200000; i++) {
    if (weft_step(rt, 1) <= 0) return 0;
    if (find_entry(dir, "big.tmp-", tmp, sizeof tmp) && stat(tmp, &st) == 0 &&
        st.st_size > 0)
      return 1;
    usleep(50);
  }
  return 0;
}

int main(void) {
  char dir[] = "/tmp/weft-fs-free-XXXXXX"; /* no quote: goes in a chunk */
  char chunk[8192], left[4096];
  int failures = 0;
  if (mkdtemp(dir) == NULL) return perror("mkdtemp"), 1;
  /* Each round: a fresh runtime freed mid-write. A 256 MiB write keeps
  ** the thread pool busy long enough to be seen. */
  snprintf(chunk, sizeof chunk,
           "local fs = require('weft').fs\n"
           "assert(fs.write_file('%s', string.rep('x', 2^28)))\n",
           strcat(strcpy(left, dir), "/big"));
  for (int round = 0; round < 3; round++) {
    weft_runtime *rt = weft_new(NULL);
    if (rt == NULL || weft_spawn_string(rt, chunk, "=fs_free") != 0) {
      fprintf(stderr, "fs_free_test: cannot start the script\n");
      weft_free(rt);
      failures++;
      break;
    }
    int writing = step_until_writing(rt, dir);
    weft_free(rt);
    if (!writing) {
      fprintf(stderr, "fs_free_test: round %d: never saw the write\n", round);
      failures++;
    }
    if (find_entry(dir, "big.tmp-", left, sizeof left)) {
      fprintf(stderr, "fs_free_test: round %d: left %s\n", round, left);
      unlink(left);
      failures++;
    }
  }
  char big[4096];
  snprintf(big, sizeof big, "%s/big", dir);
  unlink(big);
  rmdir(dir);
  if (failures == 0) printf("fs_free_test: ok\n");
  return failures != 0;
}
