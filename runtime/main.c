/*
** main.c: the weft command. It uses only weft.h (and the Lua API it
** includes), as lua.c uses only lua.h and lauxlib.h, which keeps the
** embedding API honest.
*/
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <luajit.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl.h"
#include "weft.h"

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

/* A stop signal this soon after the first is taken for the same request. */
#define GRACE_NS 250000000u

/* What the handlers tell the watchdog, besides a signal's number. */
#define WATCH_RESET 0
#define WATCH_STOP 255

/* ======================================================================
** Signals
**
** SIGINT, SIGTERM and SIGHUP ask the program to stop: the first cancels the
** root context, so that tasks unwind and clean up, and the program exits
** with 128 + its number once they have. A later one forces the exit, but
** not one that came with the first: a terminal can deliver two SIGINTs for
** one keypress, and a wrapper may pass on what the terminal also sent.
** Forcing is decided by a watchdog thread, which handlers reach through a
** pipe, so that they do nothing but what is async-signal-safe, and so that
** the forced exit can flush stdout like a normal one (exit flushes; _exit
** from a handler could not).
** ====================================================================== */

/* NOTE: a signal handler can reach the runtime only through statics. These
** are the program's, not the library's: the library has no mutable statics.
** signal_rt is NULL while the prompt waits for input: there, Ctrl-C only
** interrupts the read (fgets fails with EINTR) and must not cancel the
** next command. */
static weft_runtime *signal_rt;
static volatile sig_atomic_t first_signal;  /* that stopped the run, or 0 */
static volatile sig_atomic_t repl_sigint;   /* Ctrl-C for the REPL */
static int repl_fd[2] = {-1, -1};           /* and its wake-up, to poll */
static volatile sig_atomic_t forced_status; /* for on_alarm */
static int watch_fd[2] = {-1, -1};          /* handlers -> watchdog */
static uv_mutex_t watch_mu;                 /* guards watch_rt */
static weft_runtime *watch_rt;              /* NULL once it is stopped */

static void tell_watchdog(unsigned char what) {
  /* The write end does not block: a full pipe already holds a signal. */
  ssize_t n = write(watch_fd[1], &what, 1);
  (void)n;
}

static void on_stop_signal(int sig) {
  int saved = errno;
  if (signal_rt == NULL) {
    /* At the prompt only SIGINT keeps the program: the REPL cancels the
    ** running line or drops the input. */
    if (sig != SIGINT) {
      first_signal = sig;
    } else {
      repl_sigint = 1;
    }
    /* Wake the REPL's poll: the signal may have gone to another thread. */
    if (repl_fd[1] >= 0) {
      ssize_t n = write(repl_fd[1], "", 1);
      (void)n;
    }
  } else {
    if (first_signal == 0) {
      first_signal = sig;
      weft_interrupt(signal_rt);
    }
    tell_watchdog((unsigned char)sig);
  }
  errno = saved;
}

static void on_sigquit(int sig) {
  (void)sig;
  if (signal_rt != NULL) weft_request_dump(signal_rt);
}

static void on_alarm(int sig) {
  (void)sig;
  _exit(forced_status);
}

/* Exit at once. Output is flushed first, unless the stream is locked: the
** thread that holds it may be stuck in a write. A flush into a pipe that
** nobody reads blocks too, so an alarm ends the process a second later in
** any case. */
static void force_exit(int status) {
  FILE *streams[2] = {stdout, stderr};
  forced_status = status;
  alarm(1);
  for (int i = 0; i < 2; i++) {
    if (ftrylockfile(streams[i]) == 0) {
      fflush(streams[i]);
      funlockfile(streams[i]);
    }
  }
  _exit(status);
}

/* Has the runtime still not acted on the first stop signal? Never, once the
** watchdog is stopped: the runtime is being freed. */
static int still_pending(void) {
  uv_mutex_lock(&watch_mu);
  int pending = watch_rt != NULL && weft_has_pending_interrupt(watch_rt);
  uv_mutex_unlock(&watch_mu);
  return pending;
}

/*
** The watchdog thread. A stop signal more than the grace after the first
** forces the exit at once. One within the grace is held: when the grace
** ends, it forces the exit only if the runtime has still not acted on the
** first (a loop that never yields); if it has, the two were one request,
** and the clean-up goes on.
*/
static void watchdog(void *arg) {
  (void)arg;
  uint64_t first = 0; /* uv_hrtime() of the first signal, or 0 */
  int held = 0;       /* a signal held until the grace ends, or 0 */
  for (;;) {
    int timeout_ms = -1;
    if (held != 0) {
      uint64_t now = uv_hrtime(), end = first + GRACE_NS;
      if (now >= end) {
        if (still_pending()) force_exit(128 + held);
        held = 0;
        continue;
      }
      timeout_ms = (int)((end - now) / 1000000u) + 1;
    }
    struct pollfd p = {watch_fd[0], POLLIN, 0};
    unsigned char what;
    if (poll(&p, 1, timeout_ms) <= 0) continue;
    if (read(watch_fd[0], &what, 1) != 1) continue;
    if (what == WATCH_STOP) break;
    uint64_t now = uv_hrtime();
    if (what == WATCH_RESET) {
      first = 0;
      held = 0;
    } else if (first == 0) {
      first = now;
    } else if (now - first >= GRACE_NS) {
      force_exit(128 + what);
    } else {
      held = what;
    }
  }
}

static int start_watchdog(weft_runtime *rt) {
  sigset_t stops, old;
  uv_thread_t tid;
  if (pipe(watch_fd) != 0) return -1;
  for (int i = 0; i < 2; i++)
    fcntl(watch_fd[i], F_SETFD, FD_CLOEXEC); /* not for io.popen's child */
  fcntl(watch_fd[1], F_SETFL, O_NONBLOCK);
  if (uv_mutex_init(&watch_mu) != 0) return -1;
  watch_rt = rt;
  /* The thread inherits the mask: the signals must reach the main thread,
  ** whose reads (the prompt's fgets) they interrupt. */
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGHUP);
  sigaddset(&stops, SIGQUIT);
  pthread_sigmask(SIG_BLOCK, &stops, &old);
  int rc = uv_thread_create(&tid, watchdog, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == 0) pthread_detach(tid); /* see stop_watchdog */
  return rc;
}

/* NOTE: the watchdog is told to stop but not waited for, and its pipe stays
** open until the exit: waiting for a thread to wake up and end cost a
** fifth of `weft -e ''` (issue 14). Once watch_rt is NULL it touches
** nothing the program frees; closing the pipe under its read could hand
** it a descriptor that the finalizers open next. */
static void stop_watchdog(void) {
  signal_rt = NULL; /* the handlers write to the pipe no more */
  uv_mutex_lock(&watch_mu);
  watch_rt = NULL;
  uv_mutex_unlock(&watch_mu);
  tell_watchdog(WATCH_STOP);
}

static int install_signals(weft_runtime *rt) {
  struct sigaction sa;
  if (start_watchdog(rt) != 0) return -1;
  memset(&sa, 0, sizeof sa);
  /* No SA_RESTART: SIGINT must interrupt the prompt's read. The stop
  ** signals do not interrupt one another's handler. */
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGHUP);
  signal_rt = rt;
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = on_sigquit;
  sigaction(SIGQUIT, &sa, NULL);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  return 0;
}

/* ====================================================================== */

static void print_error(weft_runtime *rt, const char *msg, void *ud) {
  (void)rt;
  (void)ud;
  fprintf(stderr, "weft: %s\n", msg);
  fflush(stderr);
}

static void usage(FILE *f) {
  fputs(
      "usage: weft [options] [script [args]]\n"
      "Run a Lua script as the root task of a weft runtime.\n"
      "\n"
      "  -e code     run code (may be given several times)\n"
      "  -l name     require library 'name' before the script\n"
      "  -v          verbose errors: the full record of each (also WEFT_LOG)\n"
      "  -i          the REPL after the script (and with no script)\n"
    "  --workers N worker threads for weft.work (default: WEFT_WORKERS, else\n"
    "              the number of CPUs)\n"
    "  --virtual-time  run on virtual time: the clock starts at 0 and jumps\n"
    "              to the next timer whenever every task is blocked\n"
      "  --version   print the version and exit\n"
      "  --help      print this help and exit\n"
      "  --          stop handling options\n"
      "  -           run the script from standard input\n"
      "\n"
      "With no script and no -e: a prompt when standard input is a terminal,\n"
      "else the script is read from standard input.\n"
      "Exit status: 0 ok, 1 uncaught error, 2 usage, 128+N after signal N\n"
      "(130 SIGINT, 143 SIGTERM, 129 SIGHUP).\n",
      f);
}

/* The exit status for what weft_run returned. After a stop signal it is
** 128 + its number, as a shell reports a process the signal killed, unless
** a task failed for another reason. */
static int status_of(weft_runtime *rt, int rc) {
  if (first_signal != 0 && (rc == 0 || rc == WEFT_EINTR))
    return 128 + first_signal;
  switch (rc) {
  case 0: return EXIT_SUCCESS;
  case WEFT_EINTR: return EXIT_INTERRUPTED;
  case WEFT_ETASK: return EXIT_FAILURE; /* already printed by print_error */
  default: print_error(rt, weft_last_error(rt), NULL); return EXIT_FAILURE;
  }
}

/* Run what weft_spawn_* just started (rc: what it returned). A signal that
** came before had no task to interrupt (the spawn drops an interrupt of an
** idle runtime), but the program was asked to stop: the task is not run. */
static int run_spawned(weft_runtime *rt, int rc) {
  if (rc == 0 && first_signal != 0) rc = WEFT_EINTR;
  if (rc == 0) rc = weft_run(rt);
  return status_of(rt, rc);
}

static int run_chunk(weft_runtime *rt, const char *code, const char *name) {
  return run_spawned(rt, weft_spawn_string(rt, code, name));
}

/* Would require find module `name`? Asked of package.loaders as require
** asks them, so `weft -l typo` is a usage error (status 2) rather than a
** failing task. A searcher that raises (a module with a syntax error)
** counts as found: require then reports the real error. */
static int module_exists(weft_runtime *rt, const char *name) {
  static const char probe[] =
      "local n = ...\n"
      "if package.loaded[n] ~= nil then return true end\n"
      "for _, search in ipairs(package.loaders) do\n"
      "  local f = search(n)\n"
      "  if type(f) == 'function' then return true end\n"
      "end\n"
      "return false\n";
  lua_State *L = weft_lua(rt);
  int found = 1;
  if (luaL_loadbuffer(L, probe, sizeof probe - 1, "=-l") != 0) goto done;
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 1, 0) != 0) goto done;
  found = lua_toboolean(L, -1);
done:
  lua_pop(L, 1);
  return found;
}

/* The REPL (repl.c). SIGTERM or SIGHUP, at the prompt or in a line, ends
** it and the program. */
static int repl(weft_runtime *rt) {
  if (pipe(repl_fd) != 0) return EXIT_FAILURE;
  for (int i = 0; i < 2; i++) {
    fcntl(repl_fd[i], F_SETFD, FD_CLOEXEC);
    fcntl(repl_fd[i], F_SETFL, O_NONBLOCK);
  }
  signal_rt = NULL; /* Ctrl-C is the REPL's: it cancels the running line */
  weft_repl(rt, &repl_sigint, &first_signal, repl_fd[0]);
  int fd = repl_fd[1];
  repl_fd[1] = -1;
  close(fd);
  close(repl_fd[0]);
  return first_signal != 0 ? 128 + first_signal : EXIT_SUCCESS;
}

/* Set arg[-k] to the interpreter and the options before the script. */
static void set_arg_prefix(weft_runtime *rt, char **argv, int script) {
  lua_State *L = weft_lua(rt);
  lua_getglobal(L, "arg");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "arg");
  }
  for (int i = 0; i < script; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_pop(L, 1);
}

int main(int argc, char **argv) {
  weft_config cfg;
  int script = 0, ran = 0, interactive = 0, status = EXIT_SUCCESS;
  memset(&cfg, 0, sizeof cfg);
  cfg.on_error = print_error;
  cfg.log_path = getenv("WEFT_LOG");

  /* First pass: options that shape the runtime, and where the script is. */
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) break;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return EXIT_SUCCESS;
    }
    if (strcmp(a, "--version") == 0) {
      printf("weft %s (%s, libuv %s)\n", WEFT_VERSION_STRING, LUAJIT_VERSION,
             uv_version_string());
      return EXIT_SUCCESS;
    }
    if (strcmp(a, "-v") == 0) {
      cfg.verbose = 1;
    } else if (strcmp(a, "-i") == 0) {
      interactive = 1;
    } else if (strcmp(a, "--virtual-time") == 0) {
      cfg.virtual_time = 1;
    } else if (strcmp(a, "--workers") == 0) {
      char *end = NULL;
      long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
      if (end == NULL || *end != '\0' || n < 1 || n > 1024) {
        fprintf(stderr, "weft: '--workers' needs a number from 1 to 1024\n");
        usage(stderr);
        return EXIT_USAGE;
      }
      cfg.workers = (int)n;
      i++;
    } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "weft: '%s' needs an argument\n", a);
        usage(stderr);
        return EXIT_USAGE;
      }
    } else {
      fprintf(stderr, "weft: unknown option '%s'\n", a);
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  script = i;

  weft_runtime *rt = weft_new(&cfg);
  if (rt == NULL) {
    fprintf(stderr, "weft: cannot create the runtime\n");
    return EXIT_FAILURE;
  }
  if (install_signals(rt) != 0) {
    fprintf(stderr, "weft: cannot set up signal handling\n");
    weft_free(rt);
    return EXIT_FAILURE;
  }

  /* Second pass: -e and -l, in order. */
  for (i = 1; i < script && status == EXIT_SUCCESS; i++) {
    if (strcmp(argv[i], "-e") == 0) {
      status = run_chunk(rt, argv[++i], "=(command line)");
      ran = 1;
    } else if (strcmp(argv[i], "-l") == 0) {
      const char *name = argv[++i];
      if (strpbrk(name, "\"\\\n") != NULL) {
        fprintf(stderr, "weft: bad library name '%s'\n", name);
        status = EXIT_USAGE;
        break;
      }
      if (!module_exists(rt, name)) {
        fprintf(stderr, "weft: module '%s' not found\n", name);
        status = EXIT_USAGE;
        break;
      }
      char code[512];
      snprintf(code, sizeof code, "require(\"%s\")", name);
      status = run_chunk(rt, code, "=(command line)");
    }
  }

  if (status == EXIT_SUCCESS && script < argc) {
    const char *path = argv[script];
    int rc = weft_spawn_file(rt, strcmp(path, "-") == 0 ? NULL : path,
                             argc - script, argv + script);
    set_arg_prefix(rt, argv, script);
    status = run_spawned(rt, rc);
  } else if (status == EXIT_SUCCESS && !ran) {
    if (isatty(STDIN_FILENO)) {
      status = repl(rt);
    } else {
      char dash[] = "-";
      char *args[] = {dash};
      status = run_spawned(rt, weft_spawn_file(rt, NULL, 1, args));
    }
  }
  /* -i: the REPL after the script and -e chunks, with what they left. */
  if (interactive && status == EXIT_SUCCESS && (ran || script < argc))
    status = repl(rt);
  stop_watchdog();
  /* Out before the state closes: its finalizers run user code, which may
  ** crash LuaJIT (one that raises in compiled code can), and exit's flush
  ** would then never come. */
  fflush(stdout);
  fflush(stderr);
  weft_free(rt);
  return status;
}
