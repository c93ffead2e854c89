/*
** files.h: looking for a file in a directory, for the C tests that check
** what weft_free leaves behind (a write_file's temporary file).
*/
#ifndef WEFT_TESTS_FILES_H
#define WEFT_TESTS_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* The path of dir's entry whose name starts with prefix into out (n
** bytes), or 0 if there is none. */
static inline int find_entry(const char *dir, const char *prefix, char *out,
                             size_t n) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int found = 0;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      snprintf(out, n, "%s/%s", dir, e->d_name);
      found = 1;
    }
  }
  if (d != NULL) closedir(d);
  return found;
}

#endif
