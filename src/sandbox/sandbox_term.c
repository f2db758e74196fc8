#include "sandbox/sandbox_term.h"

#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/buf.h"

#define HISTORY_SIZE 500
#define CTRL_D '\004'

struct term {
  EditLine *el;
  History *hist;
  struct event *stdin_ev;
  struct event *winch_ev;
  struct term_events ev;
  void *ud;
  char *prompt;
  bool reading;   /* the editor owns the input line: its prompt is shown */
  int hidden;     /* term_hide calls not yet matched by term_show */
};

static char *prompt_of(EditLine *el) {
  struct term *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  return t && t->prompt ? t->prompt : "";
}

/* Draws the prompt and the input line again, from scratch. */
static void redraw(struct term *t) {
  el_set(t->el, EL_REFRESH);
  fflush(stdout);
}

/* libedit resets its line (and the terminal's mode) when unbuffered
 * reading is turned off, and draws a fresh prompt when it is turned on. */
static void stop_reading(struct term *t) {
  if (!t->reading) return;
  t->reading = false;
  el_set(t->el, EL_UNBUFFERED, 0);
}

static void start_reading(struct term *t) {
  if (t->reading) return;
  t->reading = true;
  t->hidden = 0;
  el_set(t->el, EL_UNBUFFERED, 1);
  fflush(stdout);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg) {
  struct term *t = arg;
  /* Readable with nothing to read: the terminal hung up (libedit would
   * report it as "no line yet", and the loop would call again at once). */
  int pending = 0;
  if (ioctl(STDIN_FILENO, FIONREAD, &pending) == 0 && pending == 0) {
    term_stop(t);
    t->ev.eof(t->ud);
    return;
  }
  int count = 0;
  const char *s = el_gets(t->el, &count);
  if (!s || count <= 0) return;   /* a key that edits: no line yet */
  if (count == 1 && s[0] == CTRL_D) {
    term_stop(t);
    t->ev.eof(t->ud);
    return;
  }
  if (s[count - 1] != '\n' && s[count - 1] != '\r') return;
  char *line = xstrndup(s, (size_t)count - 1);
  HistEvent he;
  if (*line) history(t->hist, &he, H_ENTER, line);
  /* A fresh prompt at once, before the line is handled: the terminal is
   * in cooked mode (echo, ^D as end of file) only for that instant, not
   * while the handler runs, so keys typed meanwhile wait for the editor.
   * What the handler prints goes above the prompt like any output. */
  stop_reading(t);
  start_reading(t);
  t->ev.line(t->ud, line);
  free(line);
}

static void on_winch(evutil_socket_t fd, short what, void *arg) {
  struct term *t = arg;
  el_resize(t->el);
  if (t->reading && !t->hidden) redraw(t);
}

struct term *term_new(struct event_base *base, const char *prompt,
                      const struct term_events *ev, void *ud) {
  const char *term_name = getenv("TERM");
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) ||
      (term_name && strcmp(term_name, "dumb") == 0))
    return NULL;
  /* libedit edits by character: UTF-8 input needs the locale's encoding.
   * Only LC_CTYPE: numbers keep the "C" format JSON and Lua expect. */
  setlocale(LC_CTYPE, "");
  struct term *t = xcalloc(1, sizeof *t);
  t->ev = *ev;
  t->ud = ud;
  t->prompt = xstrdup(prompt);
  t->el = el_init("tghost", stdin, stdout, stderr);
  t->hist = history_init();
  if (!t->el || !t->hist) {
    term_free(t);
    return NULL;
  }
  HistEvent he;
  history(t->hist, &he, H_SETSIZE, HISTORY_SIZE);
  history(t->hist, &he, H_SETUNIQUE, 1);
  el_set(t->el, EL_CLIENTDATA, t);
  el_set(t->el, EL_EDITOR, "emacs");
  el_set(t->el, EL_HIST, history, t->hist);
  el_set(t->el, EL_PROMPT, prompt_of);
  /* The loop owns the signals: Ctrl-C stays SIGINT, as everywhere. */
  el_set(t->el, EL_SIGNAL, 0);
  el_source(t->el, NULL);   /* ~/.editrc, for those who have one */
  t->stdin_ev = event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, t);
  t->winch_ev = evsignal_new(base, SIGWINCH, on_winch, t);
  event_add(t->stdin_ev, NULL);
  event_add(t->winch_ev, NULL);
  start_reading(t);
  return t;
}

void term_set_prompt(struct term *t, const char *prompt) {
  free(t->prompt);
  t->prompt = xstrdup(prompt);
  if (t->reading && !t->hidden) {
    fputs("\r\033[K", stdout);
    redraw(t);
  }
}

void term_hide(struct term *t) {
  if (!t->reading || t->hidden++) return;
  fputs("\r\033[K", stdout);
  fflush(stdout);
}

void term_show(struct term *t) {
  if (!t->reading || !t->hidden || --t->hidden) return;
  redraw(t);
}

void term_stop(struct term *t) {
  if (!t || !t->stdin_ev) return;
  event_free(t->stdin_ev);
  t->stdin_ev = NULL;
  if (t->reading) {
    /* What is left of the input line (a "^D") goes. */
    fputs("\r\033[K", stdout);
    fflush(stdout);
  }
  stop_reading(t);
}

void term_free(struct term *t) {
  if (!t) return;
  term_stop(t);
  if (t->winch_ev) event_free(t->winch_ev);
  if (t->el) el_end(t->el);
  if (t->hist) history_end(t->hist);
  free(t->prompt);
  free(t);
}
