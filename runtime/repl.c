/*
** repl.c: the weft command's interactive prompt, on libedit. It uses only
** weft.h and the Lua API, as main.c does.
**
** The REPL is a stepping host: it steps the runtime and waits on both the
** terminal and the runtime's backend descriptor (poll, with the runtime's
** next timeout), so background tasks keep running while the prompt waits.
** libedit runs unbuffered: each readable key goes to el_gets, which
** returns at once, with the whole line when the key ended one. While a
** line runs (its task's function has not returned) the prompt is hidden
** and the terminal is not read; typed keys wait in the terminal's buffer.
** Output of background tasks while the prompt shows goes above it: print
** is replaced by one that clears the line being edited, writes, and has
** libedit redraw the prompt and the partial line. lua/weft/repl.lua holds
** the Lua side: running lines, showing values, commands and completion.
**
** NOTE: the REPL's state is a static: one REPL per process, which is the
** command's (the library has no REPL).
*/
#include <errno.h>
#include <histedit.h>
#include <lauxlib.h>
#include <luajit.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl.h"

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_MAX 1000
#define QUIT_GRACE_MS 2000.0

static struct {
  weft_runtime *rt;
  lua_State *L;
  EditLine *el;
  History *hist;
  int ref;       /* registry ref of the weft.repl module */
  char *pending; /* an incomplete chunk, waiting for more lines */
  int showing;   /* the prompt is on the screen */
  int quit;      /* Ctrl-D or :quit */
  int stuck;     /* the running line's deadlock was reported */
  volatile sig_atomic_t *sigint, *stop;
  int wake_fd; /* readable when a signal came: drained here */
  int dropped; /* Ctrl-C ended the line being read: ignore it */
  const char *history;
} R;

/* Call weft.repl's function `name` with nargs arguments on the stack;
** nres results, or the error printed and nothing pushed (-1). */
static int call(const char *name, int nargs, int nres) {
  lua_State *L = R.L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, R.ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, -1 - nargs);
  if (lua_pcall(L, nargs, nres, 0) != 0) {
    fprintf(stderr, "weft: repl: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

static int busy(void) {
  if (call("busy", 0, 1) != 0) return 0;
  int b = lua_toboolean(R.L, -1);
  lua_pop(R.L, 1);
  return b;
}

/* print, at the REPL: above the prompt and the partial line, if shown. */
static int lprint(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  lua_getglobal(L, "tostring");
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, n + 1);
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    if (!lua_isstring(L, -1))
      return luaL_error(L, "'tostring' must return a string to 'print'");
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (R.showing) fputs("\r\033[K", stdout);
  fwrite(s, 1, len, stdout);
  fflush(stdout);
  if (R.showing) el_set(R.el, EL_REFRESH);
  return 0;
}

/* Load src wrapped in fmt (one %s); 0 with the chunk pushed, or not 0. */
static int load_wrapped(lua_State *L, const char *fmt, const char *src) {
  lua_pushfstring(L, fmt, src);
  int rc = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
  lua_remove(L, -2);
  if (rc != 0) lua_pop(L, 1);
  return rc;
}

/* Is src a complete chunk? 1: yes, with the chunk to run pushed (an
** expression is wrapped to return its values, as lua(1) prints them); 0:
** it needs more lines; -1: a syntax error, printed. */
static int compile(lua_State *L, const char *src) {
  const char *expr = src[0] == '=' ? src + 1 : src;
  /* select(1, ...) keeps every value and, unlike `return expr`, is not a
  ** tail call of expr's last function: error("x") still blames stdin:1.
  ** The newline lets a line end in a comment. But a line is an expression
  ** only if `return LINE` parses: `f() ) (g` is no expression, yet
  ** `select(1, f() ) (g)` is one, and ran. */
  if (load_wrapped(L, "return %s\n", expr) == 0) {
    lua_pop(L, 1);
    if (load_wrapped(L, "return select(1, %s\n)", expr) == 0) return 1;
  }
  if (src[0] == '=') src++;
  int rc = luaL_loadbuffer(L, src, strlen(src), "=stdin");
  if (rc == 0) return 1;
  const char *msg = lua_tostring(L, -1);
  size_t n = strlen(msg);
  if (n >= 7 && strcmp(msg + n - 7, "'<eof>'") == 0) {
    lua_pop(L, 1);
    return 0;
  }
  fprintf(stdout, "%s\n", msg);
  lua_pop(L, 1);
  return -1;
}

static const char *prompt(EditLine *el) {
  (void)el;
  if (!R.showing) return "";
  return R.pending ? PROMPT2 : PROMPT;
}

static void remember(const char *src) {
  HistEvent ev;
  if (src[0] != '\0') history(R.hist, &ev, H_ENTER, src);
}

/* A whole line, without its newline. */
static void on_line(const char *line) {
  lua_State *L = R.L;
  if (R.pending == NULL && line[0] == ':') {
    remember(line);
    lua_pushstring(L, line);
    if (call("command", 1, 1) == 0) {
      if (lua_toboolean(L, -1)) R.quit = 1;
      lua_pop(L, 1);
    }
    return;
  }
  size_t old = R.pending ? strlen(R.pending) : 0, n = strlen(line);
  char *src = malloc(old + n + 2);
  if (src == NULL) return;
  if (old) {
    memcpy(src, R.pending, old);
    src[old++] = '\n';
  }
  memcpy(src + old, line, n + 1);
  free(R.pending);
  R.pending = NULL;
  int c = compile(L, src);
  if (c == 0) {
    R.pending = src; /* more lines */
    return;
  }
  remember(src);
  free(src);
  if (c < 0) return;
  R.stuck = 0;
  call("run", 1, 0);
  R.showing = 0; /* back when the line's function returns */
}

static void drain_wake(void) {
  char buf[64];
  while (read(R.wake_fd, buf, sizeof buf) > 0) {
  }
}

/* Step the runtime until a key is typed: libedit's read function, so
** that el_gets waits for a line while every task goes on. Ctrl-C on the
** prompt erases the line (^U); 0 at the end of input. */
static int getc_stepping(EditLine *el, wchar_t *c) {
  (void)el;
  for (;;) {
    if (*R.stop) return 0;
    if (*R.sigint) {
      /* Drop the chunk and the line being typed, and start afresh on a
      ** new line: as a shell does. */
      *R.sigint = 0;
      free(R.pending);
      R.pending = NULL;
      fputs("^C", stdout);
      fflush(stdout);
      R.dropped = 1; /* read_line ignores the line this newline ends */
      *c = '\n';
      return 1;
    }
    weft_step(R.rt, 10.0);
    int ms = weft_next_timeout(R.rt);
    struct pollfd p[3] = {{STDIN_FILENO, POLLIN, 0},
                          {weft_backend_fd(R.rt), POLLIN, 0},
                          {R.wake_fd, POLLIN, 0}};
    int n = poll(p, 3, ms);
    int err = errno;
    drain_wake(); /* changes errno */
    if (n < 0 && err != EINTR) return -1;
    if (n <= 0 || !(p[0].revents & (POLLIN | POLLHUP))) continue;
    unsigned char b;
    ssize_t r = read(STDIN_FILENO, &b, 1);
    if (r == 0) return 0;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    if (b == 0x03) {
      /* Ctrl-C while libedit has the terminal (no signal then): as SIGINT. */
      *R.sigint = 1;
      continue;
    }
    /* UTF-8 sequences go to libedit byte by byte as Latin-1: it only
    ** echoes and stores them, and the line is rebuilt from bytes. */
    *c = (wchar_t)b;
    return 1;
  }
}

/* Read a line with libedit (the runtime steps meanwhile) and act on it. */
static void read_line(void) {
  int n;
  const char *s = el_gets(R.el, &n);
  /* Until the next el_gets, libedit's buffer still holds this line: what
  ** the line prints must not redraw it. */
  R.showing = 0;
  if (n < 0) return; /* interrupted: the loop reads on */
  if (s == NULL || n == 0) {
    if (*R.stop) return;
    fputc('\n', stdout);
    R.quit = 1; /* Ctrl-D, or the terminal went away */
    return;
  }
  if (R.dropped) {
    R.dropped = 0;
    return;
  }
  char *line = malloc((size_t)n + 1);
  if (line == NULL) return;
  memcpy(line, s, (size_t)n);
  line[n] = '\0';
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
  on_line(line);
  free(line);
}

/* Ctrl-C: cancel the running line, or drop the line being typed. */
static void interrupt(void) {
  if (busy()) call("cancel", 0, 0);
}

/*{======================================================================
** Completion
**=======================================================================*/

/* Tab: complete the word before the cursor (weft.se, ch:, pri) from
** weft.repl's candidates: one is inserted; several are listed above the
** line, and their common prefix inserted. */
static unsigned char on_tab(EditLine *el, int ch) {
  (void)ch;
  lua_State *L = R.L;
  const LineInfo *li = el_line(el);
  const char *from = li->cursor;
  while (from > li->buffer &&
         (from[-1] == '.' || from[-1] == ':' || from[-1] == '_' ||
          (from[-1] >= '0' && from[-1] <= '9') ||
          ((from[-1] | 32) >= 'a' && (from[-1] | 32) <= 'z')))
    from--;
  size_t wlen = (size_t)(li->cursor - from);
  lua_pushlstring(L, from, wlen);
  if (call("complete", 1, 1) != 0) return CC_ERROR;
  int n = (int)lua_objlen(L, -1);
  unsigned char rc = CC_REFRESH;
  if (n == 0) {
    rc = CC_REFRESH_BEEP;
  } else {
    /* The common prefix of all candidates. */
    lua_rawgeti(L, -1, 1);
    size_t common;
    const char *first = lua_tolstring(L, -1, &common);
    for (int i = 2; i <= n; i++) {
      lua_rawgeti(L, -2, i);
      const char *c = lua_tostring(L, -1);
      size_t k = 0;
      while (k < common && c[k] == first[k])
        k++;
      common = k;
      lua_pop(L, 1);
    }
    if (common > wlen) {
      char *ins = strndup(first + wlen, common - wlen);
      if (ins != NULL) el_insertstr(el, ins);
      free(ins);
    }
    lua_pop(L, 1);
    if (n > 1) {
      fputc('\n', stdout);
      for (int i = 1; i <= n && i <= 100; i++) {
        lua_rawgeti(L, -1, i);
        printf("%s%s", i > 1 ? "  " : "", lua_tostring(L, -1));
        lua_pop(L, 1);
      }
      fputc('\n', stdout);
      rc = CC_REDISPLAY;
    }
  }
  lua_pop(L, 1);
  return rc;
}
/*}======================================================================*/

static void history_path(void) {
  const char *h = getenv("WEFT_HISTORY");
  static char buf[4096];
  if (h != NULL) {
    R.history = h[0] ? h : NULL; /* empty: no history */
    return;
  }
  const char *home = getenv("HOME");
  if (home == NULL) return;
  snprintf(buf, sizeof buf, "%s/.weft_history", home);
  R.history = buf;
}

static int load_module(void) {
  lua_State *L = R.L;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "weft.repl");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "weft: repl: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  R.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, lprint);
  lua_setglobal(L, "print");
  return 0;
}

int weft_repl(weft_runtime *rt, volatile sig_atomic_t *sigint,
              volatile sig_atomic_t *stop, int wake_fd) {
  HistEvent ev;
  memset(&R, 0, sizeof R);
  R.rt = rt;
  R.sigint = sigint;
  R.stop = stop;
  R.wake_fd = wake_fd;
  R.L = weft_lua(rt);
  if (load_module() != 0) return 1;
  history_path();
  R.el = el_init("weft", stdin, stdout, stderr);
  R.hist = history_init();
  if (R.el == NULL || R.hist == NULL) {
    fprintf(stderr, "weft: cannot start the line editor\n");
    return 1;
  }
  history(R.hist, &ev, H_SETSIZE, HISTORY_MAX);
  history(R.hist, &ev, H_SETUNIQUE, 1);
  if (R.history) history(R.hist, &ev, H_LOAD, R.history);
  el_set(R.el, EL_EDITOR, "emacs");
  /* The command's handlers keep the signals: Ctrl-C reaches getc. */
  el_set(R.el, EL_SIGNAL, 0);
  el_set(R.el, EL_PROMPT, prompt);
  el_set(R.el, EL_HIST, history, R.hist);
  el_set(R.el, EL_ADDFN, "weft-complete", "complete a name", on_tab);
  el_set(R.el, EL_BIND, "^I", "weft-complete", NULL);
  /* el_gets reads through getc_stepping, which steps the runtime while it
  ** waits for a key. The terminal stays in libedit's mode from start to
  ** end, so keys typed while a line runs wait unechoed for the prompt. */
  el_set(R.el, EL_GETCFN, getc_stepping);
  el_set(R.el, EL_PREP_TERM, 1);
  printf("weft %s (%s) -- :help for help, Ctrl-D to leave\n",
         WEFT_VERSION_STRING, LUAJIT_VERSION);
  fflush(stdout);
  while (!R.quit && !*stop) {
    weft_step(rt, 10.0);
    if (*sigint) {
      *sigint = 0;
      interrupt();
      continue; /* step first: the line's wait just ended */
    }
    int running = busy();
    if (running && !R.stuck && weft_is_stuck(rt)) {
      /* Reported once, then cancelled: it could never go on. */
      if (call("deadlock", 0, 1) == 0) {
        printf("%s\n", lua_tostring(R.L, -1));
        lua_pop(R.L, 1);
      }
      R.stuck = 1;
      continue;
    }
    if (!running) {
      R.showing = 1;
      read_line();
      continue;
    }
    /* A line runs: step, and wait for the runtime (or a signal) only. */
    int ms = weft_next_timeout(rt);
    struct pollfd p[2] = {{weft_backend_fd(rt), POLLIN, 0},
                          {R.wake_fd, POLLIN, 0}};
    int n = poll(p, 2, ms);
    int err = errno;
    drain_wake();
    if (n < 0 && err != EINTR) break;
  }
  if (R.history) history(R.hist, &ev, H_SAVE, R.history);
  el_set(R.el, EL_PREP_TERM, 0);
  el_end(R.el);
  history_end(R.hist);
  free(R.pending);
  /* Background tasks are cancelled gracefully, within a bound. */
  call("quit", 0, 0);
  weft_shutdown(rt, QUIT_GRACE_MS);
  luaL_unref(R.L, LUA_REGISTRYINDEX, R.ref);
  return 0;
}
