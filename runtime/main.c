/*
** main.c: the weft command. It uses only weft.h (and the Lua API it
** includes), as lua.c uses only lua.h and lauxlib.h, which keeps the
** embedding API honest.
*/
#include <lauxlib.h>
#include <luajit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

/* NOTE: a signal handler can reach the runtime only through a static. This
** is the program's, not the library's: the library has no mutable statics. */
static weft_runtime *signal_rt;
static volatile sig_atomic_t interrupts;

/* signal_rt is NULL while the prompt waits for input: there, Ctrl-C only
** interrupts the read (fgets fails with EINTR) and must not cancel the
** next command. */
static void on_sigint(int sig) {
  (void)sig;
  if (signal_rt == NULL) return;
  if (++interrupts >= 2) _exit(EXIT_INTERRUPTED);
  weft_interrupt(signal_rt);
}

static void on_sigquit(int sig) {
  (void)sig;
  if (signal_rt != NULL) weft_request_dump(signal_rt);
}

static void install_signals(weft_runtime *rt) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  signal_rt = rt;
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_sigquit;
  sigaction(SIGQUIT, &sa, NULL);
}

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
    "  --virtual-time  run on virtual time: the clock starts at 0 and jumps\n"
    "              to the next timer whenever every task is blocked\n"
      "  --version   print the version and exit\n"
      "  --help      print this help and exit\n"
      "  --          stop handling options\n"
      "  -           run the script from standard input\n"
      "\n"
      "With no script and no -e: a prompt when standard input is a terminal,\n"
      "else the script is read from standard input.\n"
      "Exit status: 0 ok, 1 uncaught error, 2 usage, 130 interrupted.\n",
      f);
}

static int status_of(weft_runtime *rt, int rc) {
  switch (rc) {
  case 0: return EXIT_SUCCESS;
  case WEFT_EINTR: return EXIT_INTERRUPTED;
  case WEFT_ETASK: return EXIT_FAILURE; /* already printed by print_error */
  default: print_error(rt, weft_last_error(rt), NULL); return EXIT_FAILURE;
  }
}

static int run_chunk(weft_runtime *rt, const char *code, const char *name) {
  int rc = weft_spawn_string(rt, code, name);
  if (rc == 0) rc = weft_run(rt);
  return status_of(rt, rc);
}

/* Is `src` a complete chunk? 1: yes, with the chunk to run pushed (an
** expression is wrapped to print its values, as lua(1) does); 0: it needs
** more lines; -1: a syntax error, printed. */
static int complete(lua_State *L, const char *src) {
  lua_pushfstring(L, "return %s", src);
  int rc = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
  lua_pop(L, 2);
  if (rc == 0) {
    /* One line of wrapper, so messages keep the input's line numbers. */
    lua_pushfstring(L,
                    "local function show(...) if select('#', ...) > 0 then "
                    "print(...) end end show(%s\n)",
                    src);
    return 1;
  }
  rc = luaL_loadbuffer(L, src, strlen(src), "=stdin");
  if (rc == 0) {
    lua_pop(L, 1);
    lua_pushstring(L, src);
    return 1;
  }
  const char *msg = lua_tostring(L, -1);
  size_t n = strlen(msg);
  if (n >= 7 && strcmp(msg + n - 7, "'<eof>'") == 0) {
    lua_pop(L, 1);
    return 0;
  }
  fprintf(stderr, "%s\n", msg);
  lua_pop(L, 1);
  return -1;
}

/* A simple prompt: each complete chunk runs as a top-level task, to the end
** of every task it starts. */
static int repl(weft_runtime *rt) {
  lua_State *L = weft_lua(rt);
  char line[4096];
  char *src = NULL;
  size_t len = 0;
  printf("weft %s (%s) -- Ctrl-D to leave\n", WEFT_VERSION_STRING,
         LUAJIT_VERSION);
  signal_rt = NULL;
  for (;;) {
    fputs(len ? ">> " : "> ", stdout);
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) {
      if (feof(stdin)) break;
      clearerr(stdin); /* Ctrl-C at the prompt: drop the input */
      interrupts = 0;
      len = 0;
      fputc('\n', stdout);
      continue;
    }
    size_t n = strlen(line);
    char *grown = realloc(src, len + n + 1);
    if (grown == NULL) break;
    src = grown;
    memcpy(src + len, line, n + 1);
    len += n;
    int c = complete(L, src);
    if (c == 0) continue;
    len = 0;
    if (c < 0) continue;
    int rc = weft_spawn_string(rt, lua_tostring(L, -1), "=stdin");
    lua_pop(L, 1);
    signal_rt = rt;
    if (rc == 0) rc = weft_run(rt);
    signal_rt = NULL;
    if (rc != 0 && rc != WEFT_ETASK && rc != WEFT_EINTR)
      print_error(rt, weft_last_error(rt), NULL);
    interrupts = 0;
  }
  free(src);
  fputc('\n', stdout);
  return EXIT_SUCCESS;
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
  int script = 0, ran = 0, status = EXIT_SUCCESS;
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
    } else if (strcmp(a, "--virtual-time") == 0) {
      cfg.virtual_time = 1;
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
  install_signals(rt);

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
    if (rc == 0) rc = weft_run(rt);
    status = status_of(rt, rc);
  } else if (status == EXIT_SUCCESS && !ran) {
    if (isatty(STDIN_FILENO)) {
      status = repl(rt);
    } else {
      char dash[] = "-";
      char *args[] = {dash};
      int rc = weft_spawn_file(rt, NULL, 1, args);
      if (rc == 0) rc = weft_run(rt);
      status = status_of(rt, rc);
    }
  }
  signal_rt = NULL;
  weft_free(rt);
  return status;
}
