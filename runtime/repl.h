/*
** repl.h: the weft command's REPL (repl.c), private to the command.
*/
#ifndef WEFT_REPL_H
#define WEFT_REPL_H

#include <signal.h>

#include "weft.h"

/* Run the REPL on rt until Ctrl-D, :quit or *stop; *sigint is set by the
** command's SIGINT handler and cleared here (Ctrl-C cancels the running
** line, or drops the line being typed); the handler also writes a byte to
** wake_fd's pipe, which the REPL polls (the signal may reach another
** thread). Returns an exit status. */
int weft_repl(weft_runtime *rt, volatile sig_atomic_t *sigint,
              volatile sig_atomic_t *stop, int wake_fd);

#endif
