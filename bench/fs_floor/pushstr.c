/*
** pushstr.c: what lua_pushlstring of a whole file's bytes costs, the copy
** read_file cannot avoid (bench/fs_floor.sh). Usage: pushstr MODE FILE;
** prints MB/s, the median of five pushes of the file's bytes (read once
** into memory first) in one Lua state.
**
**   luajit  a state with LuaJIT's own allocator, as weft's: a large string
**           is a fresh mapping, faulted in 4 KiB pages
**   huge    LuaJIT's allocator for small blocks, and for blocks of 2 MiB
**           or more a mapping asking for huge pages (lua_setallocf): what
**           weft's state could do to make that copy cheap
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BIG (2u << 20)
#define ROUNDS 5

struct base {
  lua_Alloc f;
  void *ud;
};

static void *big_new(size_t n) {
  void *p =
      mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  madvise(p, n, MADV_HUGEPAGE);
  return p;
}

/* Blocks of BIG bytes or more are ours, the rest LuaJIT's: LuaJIT always
** passes a block's size, so whose a block is needs no header. */
static void *huge_alloc(void *ud, void *p, size_t o, size_t n) {
  struct base *b = ud;
  if (p != NULL && o < BIG && n < BIG) return b->f(b->ud, p, o, n);
  if (p == NULL && n < BIG) return b->f(b->ud, NULL, 0, n);
  void *q = n == 0 ? NULL : n < BIG ? b->f(b->ud, NULL, 0, n) : big_new(n);
  if (n != 0 && q == NULL) return NULL;
  if (p != NULL) {
    memcpy(q, p, o < n ? o : n);
    if (o >= BIG)
      munmap(p, o);
    else
      b->f(b->ud, p, o, 0);
  }
  return q;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pushstr luajit|huge FILE\n");
    return 2;
  }
  int fd = open(argv[2], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return perror(argv[2]), 1;
  size_t len = (size_t)st.st_size, off = 0;
  char *bytes = malloc(len);
  while (off < len) {
    ssize_t n = read(fd, bytes + off, len - off);
    if (n <= 0) return perror("read"), 1;
    off += (size_t)n;
  }
  close(fd);
  lua_State *L = luaL_newstate();
  struct base b;
  b.f = lua_getallocf(L, &b.ud);
  if (strcmp(argv[1], "huge") == 0) lua_setallocf(L, huge_alloc, &b);
  double t[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now();
    lua_pushlstring(L, bytes, len);
    t[r] = now() - t0;
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT, 0);
  }
  qsort(t, ROUNDS, sizeof t[0], cmp);
  printf("%.0f\n", (double)len / t[ROUNDS / 2] / 1e6);
  lua_close(L);
  free(bytes);
  return 0;
}
