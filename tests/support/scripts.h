/* Bots and update feeds that the end-to-end tests of several features
 * share, on the running test's fake server (harness_api()). */
#ifndef TGHOST_TESTS_SCRIPTS_H
#define TGHOST_TESTS_SCRIPTS_H

#include <stdint.h>

struct fakeapi;
struct proc;

/* Pushes the texts "0".."n-1", update i from and to chat 1 + i % chats. */
void push_numbered(int n, int chats);
/* Writes the script `name` (in the test's folder) of a bot that answers
 * every message with "r<text>", started with run(bot, opts), opts a Lua
 * table; returns its path. */
const char *write_reply_script(const char *name, const char *opts);
/* Starts (--cpu-budget 0.2 --drain-timeout 5) a bot whose handler runs
 * the Lua `body` on the text "evil" and answers every other text with
 * "r<text>"; errors go to the chat through bot.catch ("caught: ..."). */
struct proc *start_guard_bot(const char *name, const char *body);
/* Pushes a callback query `id` with `data` from user (in their private
 * chat), on the bot's message message_id. */
void push_callback_query(struct fakeapi *api, const char *id, int64_t user,
                         int64_t message_id, const char *data);

#endif
