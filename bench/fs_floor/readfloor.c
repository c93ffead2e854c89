/*
** readfloor.c: what reading a whole file costs in C, by strategy, so that
** weft.fs.read_file can be held to the floor of what it does (see
** bench/fs_floor.sh). Usage: readfloor MODE FILE; prints MB/s, the median
** of five reads in this process (the file is in the page cache).
**
**   cat         128 KiB reads into one reused buffer, the bytes dropped
**               (cat's work without its exec)
**   fresh       the whole file into a fresh malloc'd buffer each time:
**               one copy into fresh memory, what any reader that returns
**               new memory must do at least
**   reused      the whole file into one buffer kept across reads
**   fresh2      a fresh buffer, then copied into another fresh buffer
**               (read_file before the fix: read, then lua_pushlstring)
**   reused2     a reused buffer, then copied into a fresh one
**   huge        fresh memory as in fresh, mapped asking for huge pages
**   huge2       huge, then copied into a fresh malloc'd buffer (what
**               read_file does now: the string is LuaJIT's fresh memory)
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 5
#define CHUNK (1 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Read len bytes of fd from offset 0 into buf, CHUNK at a time. */
static void read_into(int fd, char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    size_t want = len - off < CHUNK ? len - off : CHUNK;
    ssize_t n = pread(fd, buf + off, want, (off_t)off);
    if (n <= 0) {
      perror("pread");
      exit(1);
    }
    off += (size_t)n;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: readfloor MODE FILE\n");
    return 2;
  }
  const char *mode = argv[1];
  int fd = open(argv[2], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    perror(argv[2]);
    return 1;
  }
  size_t len = (size_t)st.st_size;
  char *keep = malloc(len > CHUNK ? len : CHUNK);
  if (keep == NULL) return 1;
  read_into(fd, keep, len); /* warm: the kept buffer has its pages */
  double t[ROUNDS];
  volatile char sink = 0;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now();
    if (strcmp(mode, "cat") == 0) {
      ssize_t n;
      lseek(fd, 0, SEEK_SET);
      while ((n = read(fd, keep, 128 * 1024)) > 0)
        sink ^= keep[0];
    } else if (strcmp(mode, "reused") == 0) {
      read_into(fd, keep, len);
      sink ^= keep[len / 2];
    } else if (strcmp(mode, "reused2") == 0) {
      read_into(fd, keep, len);
      char *s = malloc(len);
      memcpy(s, keep, len);
      sink ^= s[len / 2];
      free(s);
    } else if (strncmp(mode, "huge", 4) == 0) {
      char *b = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      madvise(b, len, MADV_HUGEPAGE);
      read_into(fd, b, len);
      if (mode[4] == '2') {
        char *s = malloc(len);
        memcpy(s, b, len);
        sink ^= s[len / 2];
        free(s);
      }
      sink ^= b[len / 2];
      munmap(b, len);
    } else {
      char *b = malloc(len);
      read_into(fd, b, len);
      if (strcmp(mode, "fresh2") == 0) {
        char *s = malloc(len);
        memcpy(s, b, len);
        free(b);
        b = s;
      }
      sink ^= b[len / 2];
      free(b);
    }
    t[r] = now() - t0;
  }
  qsort(t, ROUNDS, sizeof t[0], cmp);
  printf("%.0f\n", (double)len / t[ROUNDS / 2] / 1e6);
  free(keep);
  close(fd);
  return 0;
}
