/* `tghost --sandbox bot.lua`: talk to a bot with no token and no network.
 *
 * The sandbox points the bot at an emulated Bot API on loopback
 * (sandbox_api.h) and turns the terminal into the chat: each line typed is
 * a message from the sandbox user (Alice, until :user changes it) in a
 * private chat or a group; what the bot does (messages, edits, deletions,
 * files by name and size, chat actions, keyboards as numbered buttons,
 * answers to button presses) is printed one readable line at a time.
 * Lines that start with ':' are sandbox commands (:help lists them). With
 * --script it plays a transcript instead (sandbox_script.h) and ends with
 * status 1 at the first expectation the bot does not meet; a transcript
 * with no expectation is refused, and one the bot stops in the middle of
 * fails (main.c fails one whose bot never starts).
 *
 * At a terminal the input is a line editor (sandbox_term.h): a prompt
 * naming who types ("Alice> "), arrow keys, history; log lines are dimmed
 * and printed above the line being typed. An update no handler took gets
 * a note. Reading the terminal never blocks the loop: stdin is a libevent
 * read event. End of input (Ctrl-D), :quit and the end of a transcript
 * stop the bot gracefully once the bot has been handed every update
 * queued.
 *
 * Layer: the front end, beside main (includes sandbox_api, sandbox_world,
 * sandbox_script, cli). It reaches the host only through the hooks main
 * gives it. */
#ifndef TGHOST_SANDBOX_CHAT_H
#define TGHOST_SANDBOX_CHAT_H

#include <stdint.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/cli.h"

struct sandbox;

struct sandbox_hooks {
  /* End the session: stop the bot gracefully, then exit with status. */
  void (*quit)(void *ud, int status);
  /* :wait: move the bot's clock for scheduled jobs forward by ms, running
   * what falls due on the way; done(arg, now_ms) once it has (now_ms: the
   * clock then, Unix ms). NULL: the clock cannot move. */
  void (*advance_clock)(void *ud, int64_t ms,
                        void (*done)(void *arg, int64_t now_ms), void *arg);
};

/* Before the host exists: reads the transcript (if any), binds the
 * emulator's socket and points cfg at it (api_root, and the sandbox's own
 * token in place of any real one). NULL with err set on failure. */
struct sandbox *sandbox_new(struct config *cfg, struct buf *err);
/* On the loop: serves the Bot API and starts the chat (or the script). */
int sandbox_start(struct sandbox *sb, struct event_base *base,
                  const struct sandbox_hooks *hooks, void *ud,
                  struct buf *err);
/* An update went through all the bot's middleware with no handler taking
 * it: shown as a note (never matched by a transcript's expectations). */
void sandbox_update_unhandled(struct sandbox *sb, int64_t update_id,
                              const char *type);
/* After the loop: the status the session ends with. 0, or for a
 * transcript 1 when it failed, and when the bot stopped before every
 * expectation was reached (then said on stderr, with the first one's
 * line). */
int sandbox_exit_status(struct sandbox *sb);
void sandbox_free(struct sandbox *sb);

#endif
