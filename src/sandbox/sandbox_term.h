/* The sandbox's terminal when a person types at it: a line editor on the
 * event loop, with a prompt and history, and a way to print lines above
 * the line being typed.
 *
 * The editing is libedit's (BSD-licensed, Debian's libedit2): arrow keys
 * move and recall earlier lines, Ctrl-A/E/U/W and the rest of its emacs
 * bindings (or ~/.editrc) work, UTF-8 is edited by character. libedit
 * reads a character at a time (EL_UNBUFFERED) when the loop says stdin is
 * readable, so the loop never blocks on the terminal; a finished line is
 * handed to events.line. The terminal stays in libedit's raw mode (no
 * kernel echo) until term_stop or term_free, which restore it; signals
 * keep their keys (Ctrl-C is SIGINT).
 *
 * Output while a line is being typed: term_hide() before writing clears
 * the input line, term_show() after draws the prompt and what was typed
 * again, so a bot's answer or a log line never lands inside the input.
 *
 * Layer: the sandbox terminal (libevent, libedit, base). */
#ifndef TGHOST_SANDBOX_TERM_H
#define TGHOST_SANDBOX_TERM_H

#include <event2/event.h>

struct term;

struct term_events {
  /* A line was entered (without its newline; may be empty). */
  void (*line)(void *ud, const char *line);
  /* Ctrl-D on an empty line, or the terminal went away. */
  void (*eof)(void *ud);
};

/* A line editor on stdin/stdout, or NULL when either is not a terminal
 * (or TERM is "dumb"): then the caller reads plain lines itself. */
struct term *term_new(struct event_base *base, const char *prompt,
                      const struct term_events *ev, void *ud);
/* The prompt shown before the input ("Alice> "); redrawn at once. */
void term_set_prompt(struct term *t, const char *prompt);
/* Around output to the terminal (see above). Nested calls and calls while
 * a line is being handed over do nothing. */
void term_hide(struct term *t);
void term_show(struct term *t);
/* Stops reading and gives the terminal back its normal mode. */
void term_stop(struct term *t);
void term_free(struct term *t);

#endif
