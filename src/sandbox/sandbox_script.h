/* Transcripts for `tghost --sandbox bot.lua --script chat.txt`: a
 * conversation written down, played without a terminal, that fails when
 * the bot does not answer as written. Bot authors run them in CI.
 *
 * The format, one step a line:
 *
 *   # a comment (blank lines are skipped too)
 *   > /start              you send this message
 *   < Hi Alice            the bot must print a line containing this text,
 *                         after what the previous expectation matched and
 *                         within the timeout (5 s; ":timeout SECS")
 *   :click 1              any sandbox command (:user, :group, :photo, ...)
 *   :sleep 0.5            wait
 *   :wait 3h              move the bot's clock 3 hours on (scheduled jobs
 *                         due meanwhile run, in order, before the next
 *                         step): "90s", "10m", "1h30m", "2d" or seconds
 *
 * ${NAME} anywhere in a line is the environment variable NAME (an unset
 * one is an error when the transcript is read).
 *
 * Layer: pure data (parsing only; sandbox_chat.c plays it). */
#ifndef TGHOST_SANDBOX_SCRIPT_H
#define TGHOST_SANDBOX_SCRIPT_H

#include <stddef.h>

#include "base/buf.h"

enum script_step_kind {
  STEP_SAY,       /* "> text" */
  STEP_EXPECT,    /* "< text" */
  STEP_COMMAND,   /* ":name args" */
};

struct script_step {
  enum script_step_kind kind;
  char *text;     /* the message, the expected text, or the command line */
  int line;       /* 1-based, for messages */
};

struct script {
  char *path;
  char *dir;      /* relative file names in commands start here */
  struct script_step *steps;
  size_t nsteps;
};

/* The sandbox commands (without ':'), for the parser and :help alike. */
extern const char *const script_commands[];

/* Reads and checks a transcript. Returns 0, or -1 with err set to
 * "FILE:LINE: what is wrong". */
int script_load(const char *path, struct script *s, struct buf *err);
void script_free(struct script *s);

#endif
