/*
** attach_free_test.c: weft_free of a runtime attached to a host's state and
** loop, while I/O of every kind is in flight, leaves nothing behind that
** touches the freed runtime. Before the fix, fs and DNS requests that
** completed on a later turn of the host's loop read the freed runtime,
** sockets, the child and the signal watcher kept the loop alive (and their
** finalizers, run later by the host's collector, used the runtime too).
**
** In flight when weft_free is called: a read_file of a FIFO nobody writes
** to yet (its open blocks on libuv's thread pool, so weft_free cannot wait
** for it: it must be detached, and complete harmlessly once this test
** opens the other end), read_files of a big file, DNS lookups, a TCP
** server's conn and its client both reading, a UDP recv, a `sleep 5`
** child, a signal wait (whose handler is the host's again once weft_free
** returns), and files: one the host keeps open and the temporary one of a
** write_file. Then the host's loop must run dry at once, no descriptor or
** temporary file of weft's may be left open, a full collection must run
** every finalizer, and the objects the host kept must raise clear errors,
** never crash; the loop closes and the state too.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "files.h"
#include "weft.h"

#define BIG_SIZE (32u << 20)
#define WATCHDOG_MS 5000 /* uv_run(UV_RUN_DEFAULT) must return before */
#define FREE_MAX_MS 3000 /* weft_free waits 1 s at most for the pool */

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "attach_free_test:%d: %s: ", __LINE__, #cond);           \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const char script[] =
    "local weft = require 'weft'\n"
    "setup, reads, resolves = 0, 0, 0\n"
    /* First, so that its open gets a thread of the pool to block in. */
    "weft.go(function() fifo = weft.fs.read_file(FIFO) end)\n"
    "for _ = 1, 3 do\n"
    "  weft.go(function()\n"
    "    while true do assert(weft.fs.read_file(BIG)); reads = reads + 1 end\n"
    "  end)\n"
    "end\n"
    "held = assert(weft.fs.open(BIG)) -- kept, never closed\n"
    "for _ = 1, 4 do\n"
    "  weft.go(function()\n"
    "    while true do assert(assert(weft.fs.open(BIG)):close()) end\n"
    "  end)\n"
    "end\n"
    "weft.go(function()\n"
    "  local data = string.rep('y', 2^24)\n"
    "  while true do assert(weft.fs.write_file(OUT, data)) end\n"
    "end)\n"
    "weft.go(function()\n"
    "  while true do\n"
    "    assert(weft.dns.resolve('localhost')); resolves = resolves + 1\n"
    "  end\n"
    "end)\n"
    "server = assert(weft.tcp.listen('127.0.0.1', 0))\n"
    "weft.go(function()\n"
    "  accepted = assert(server:accept()); setup = setup + 1\n"
    "  accepted:read() -- the client never writes\n"
    "end)\n"
    "weft.go(function()\n"
    "  client = assert(weft.tcp.connect('127.0.0.1', server:port()))\n"
    "  setup = setup + 1\n"
    "  client:read() -- nor does the server\n"
    "end)\n"
    "udp = assert(weft.udp.bind('127.0.0.1', 0))\n"
    "weft.go(function() udp:recv_from() end)\n"
    "weft.go(function()\n"
    "  proc = assert(weft.process.spawn{'sleep', args = {'5'}})\n"
    "  child_pid = proc:pid(); setup = setup + 1\n"
    "  proc:wait()\n"
    "end)\n"
    "weft.go(function() weft.signal.wait('SIGUSR2') end)\n";

/* What the host does with the objects it kept once the runtime is gone:
** each use raises a clear error or does nothing. Returns "ok" or what
** went wrong. */
static const char after[] =
    "local function raises(what, pat, f, ...)\n"
    "  local ok, err = pcall(f, ...)\n"
    "  if ok then error(what .. ' did not raise', 0) end\n"
    "  if not tostring(err):find(pat) then\n"
    "    error(what .. ': ' .. tostring(err), 0)\n"
    "  end\n"
    "end\n"
    "local closed = 'attempt to use a closed'\n"
    "raises('client:read()', closed, client.read, client)\n"
    "raises('client:write()', closed, client.write, client, 'x')\n"
    "raises('client:read_line()', closed, client.read_line, client)\n"
    "raises('accepted:read()', closed, accepted.read, accepted)\n"
    "raises('server:accept()', closed, server.accept, server)\n"
    /* A wait outside a task is refused before the sock is looked at. */
    "raises('udp:recv_from()', 'not inside a task', udp.recv_from, udp)\n"
    "raises('udp:send_to()', closed, udp.send_to, udp, 'x', '127.0.0.1', 9)\n"
    "assert(tostring(client):find('closed'), tostring(client))\n"
    "assert(client:close() == true and server:close() == true)\n"
    "assert(udp:close() == true)\n"
    "assert(proc:pid() == child_pid)\n"
    "raises('held:read()', 'not inside a task', held.read, held, 10)\n"
    "assert(held:close() == true)\n"
    "for _, v in ipairs {held, server, udp, accepted} do\n"
    "  assert(tostring(v):find('closed'), tostring(v))\n"
    "end\n"
    /* weft_free ended the child with SIGTERM, and kept how it ended. */
    "local code, sig = proc:wait()\n"
    "assert(code == 143 and sig == 'SIGTERM', tostring(code))\n"
    "assert(tostring(proc):find('exited'), tostring(proc))\n"
    "local ok, err = proc:kill()\n"
    "assert(ok == nil and err.kind == 'ESRCH', tostring(err))\n"
    "return 'ok'\n";

static int watchdog_fired;
static volatile sig_atomic_t usr2_seen;

static void on_usr2(int sig) {
  (void)sig;
  usr2_seen = 1;
}

static void on_watchdog(uv_timer_t *t) {
  watchdog_fired = 1;
  uv_stop(t->loop);
}

static void show_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "attach_free_test: left on the loop: %s%s\n",
          uv_handle_type_name(uv_handle_get_type(h)),
          uv_is_active(h) ? " (active)" : "");
}

static void make_big(const char *path) {
  FILE *f = fopen(path, "wb");
  static char block[1 << 16];
  memset(block, 'x', sizeof block);
  for (size_t n = 0; f != NULL && n < BIG_SIZE; n += sizeof block)
    fwrite(block, 1, sizeof block, f);
  if (f != NULL) fclose(f);
}

/* How many of our descriptors are open on path. */
static int fds_on(const char *path) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  while (d != NULL && (e = readdir(d)) != NULL) {
    char link[512], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t k = readlink(link, target, sizeof target - 1);
    if (k < 0) continue;
    target[k] = '\0';
    n += strcmp(target, path) == 0;
  }
  if (d != NULL) closedir(d);
  return n;
}

static long long global_int(lua_State *L, const char *name) {
  lua_getglobal(L, name);
  long long v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Step rt until the script's servers, conns and child are set up, the
** reads and the lookups have gone round at least once, and a write_file is
** writing its temporary file in dir. */
static int step_until_set_up(weft_runtime *rt, lua_State *L, const char *dir) {
  char tmp[512];
  int rounds = 0;
  for (int i = 0; i < 20000; i++) {
    if (weft_step(rt, 5) <= 0) return 0;
    if (global_int(L, "setup") == 3 && global_int(L, "reads") > 0 &&
        global_int(L, "resolves") > 0 &&
        find_entry(dir, "out.tmp-", tmp, sizeof tmp) &&
        ++rounds > 3) /* every loop back at its next request */
      return 1;
    uv_sleep(1);
  }
  return 0;
}

int main(void) {
  /* Two threads: the FIFO's open holds one, so the other requests queue
  ** behind the reads, and weft_free cancels some (a close among them, most
  ** likely: the churning tasks wait on one about half of the time). */
  setenv("UV_THREADPOOL_SIZE", "2", 1);
  char dir[] = "/tmp/weft-attach-free-XXXXXX";
  char big[64], fifo[64], out[64];
  if (mkdtemp(dir) == NULL) return perror("mkdtemp"), 1;
  snprintf(big, sizeof big, "%s/big", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  make_big(big);
  if (mkfifo(fifo, 0600) != 0) return perror("mkfifo"), 1;

  /* The host's own handler, which weft's signal wait takes over for a
  ** while: it must be back once weft_free returns. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return fprintf(stderr, "uv_loop_init\n"), 1;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_pushstring(L, big);
  lua_setglobal(L, "BIG");
  lua_pushstring(L, fifo);
  lua_setglobal(L, "FIFO");
  lua_pushstring(L, out);
  lua_setglobal(L, "OUT");
  weft_runtime *rt = weft_attach(L, &loop, NULL);
  if (rt == NULL) return fprintf(stderr, "weft_attach failed\n"), 1;
  if (weft_spawn_string(rt, script, "=attach_free") != 0) {
    fprintf(stderr, "attach_free_test: %s\n", weft_last_error(rt));
    return 1;
  }
  int set_up = step_until_set_up(rt, L, dir);
  CHECK(set_up, "never set up: %s", weft_last_error(rt));
  pid_t child = (pid_t)global_int(L, "child_pid");
  CHECK(child > 0, "no child");

  uint64_t t0 = uv_hrtime();
  weft_free(rt);
  uint64_t free_ms = (uv_hrtime() - t0) / 1000000u;
  CHECK(free_ms < FREE_MAX_MS, "weft_free took %llu ms",
        (unsigned long long)free_ms);

  struct sigaction now;
  sigaction(SIGUSR2, NULL, &now);
  CHECK(now.sa_handler == on_usr2, "the host's SIGUSR2 handler is not back");
  if (now.sa_handler == on_usr2) {
    raise(SIGUSR2);
    CHECK(usr2_seen, "the host's SIGUSR2 handler did not run");
  }

  /* The child was ended and reaped: not running, not a zombie of ours. */
  if (child > 0) {
    pid_t w = waitpid(child, NULL, WNOHANG);
    CHECK(w < 0 && errno == ECHILD, "the child %d was not reaped (%d)",
          (int)child, (int)w);
    if (w == 0) {
      kill(child, SIGKILL);
      waitpid(child, NULL, 0);
    }
  }

  /* The FIFO's open, still blocked on the pool, can end now: its late
  ** callback runs in uv_run below, after the runtime is gone. */
  int wfd = open(fifo, O_WRONLY | O_NONBLOCK);
  CHECK(wfd >= 0, "open %s for writing: %s (the read was not in flight)", fifo,
        strerror(errno));

  uv_timer_t watchdog;
  uv_timer_init(&loop, &watchdog);
  uv_timer_start(&watchdog, on_watchdog, WATCHDOG_MS, 0);
  uv_unref((uv_handle_t *)&watchdog); /* it keeps nothing alive itself */
  t0 = uv_hrtime();
  uv_run(&loop, UV_RUN_DEFAULT);
  uint64_t run_ms = (uv_hrtime() - t0) / 1000000u;
  CHECK(!watchdog_fired, "uv_run did not return in %d ms", WATCHDOG_MS);
  if (watchdog_fired) uv_walk(&loop, show_handle, NULL);
  uv_close((uv_handle_t *)&watchdog, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (wfd >= 0) close(wfd);

  /* The files Lua still holds were closed by weft_free, not left to the
  ** collector: no descriptor of the big file (the kept one, those of the
  ** reads), and write_file's temporary file is gone. */
  CHECK(fds_on(big) == 0, "%d descriptors of %s left open", fds_on(big), big);
  char left[512];
  CHECK(!find_entry(dir, "out.tmp-", left, sizeof left), "left %s", left);

  /* Every finalizer of what the runtime left in the host's state. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  if (luaL_loadbuffer(L, after, sizeof after - 1, "=after") != 0 ||
      lua_pcall(L, 0, 1, 0) != 0) {
    CHECK(0, "using the kept objects: %s", lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  /* Now nothing of weft's is reachable: its finalizers all run. */
  luaL_dostring(L, "client, accepted, server, udp, proc, held = nil");
  lua_gc(L, LUA_GCCOLLECT, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);

  int rc = uv_loop_close(&loop);
  CHECK(rc == 0, "uv_loop_close: %s", uv_err_name(rc));
  if (rc != 0) uv_walk(&loop, show_handle, NULL);
  lua_close(L);
  unlink(big);
  unlink(fifo);
  unlink(out);
  rmdir(dir);
  if (failures == 0)
    printf("attach_free_test: ok (weft_free %llu ms, loop ran dry in %llu "
           "ms)\n",
           (unsigned long long)free_ms, (unsigned long long)run_ms);
  return failures != 0;
}
