/* The sandbox's Bot API: an HTTP server on loopback, on tghost's own event
 * loop, that answers the bot's calls from the emulated chat world
 * (sandbox_world.h) the way api.telegram.org would: getUpdates with real
 * long polling and offsets, messages with ids, edits (including "message
 * is not modified"), deletions, callback queries, reply and inline
 * keyboards, files (uploads by name and size, getFile and downloads),
 * chat actions, reactions, commands, inline query answers, invoices and
 * pre-checkout answers; text and captions parsed as Telegram parses them
 * (entities.h: HTML, MarkdownV2, Markdown, explicit entities); Telegram's
 * limits and error texts where a bot is likely to meet them; 404 for a
 * method the Bot API does not have (net/botapi_methods.h). Methods it does
 * not emulate answer true.
 *
 * Layer: loop/HTTP (libevent's evhttp); includes sandbox_world and below.
 * It reports what the bot did through the callbacks it is given; it never
 * prints. The token it accepts is a fixed internal one that never leaves
 * the process (it is registered with the log redactor all the same). */
#ifndef TGHOST_SANDBOX_API_H
#define TGHOST_SANDBOX_API_H

#include <stdbool.h>

#include <event2/event.h>

#include "base/buf.h"
#include "sandbox/sandbox_world.h"

struct sandbox_api;

/* What the bot did, for the terminal. Every callback runs from the loop,
 * after the world has changed and before the bot gets its answer. */
struct sandbox_api_events {
  void (*sent)(void *ud, const struct sbx_message *m);
  /* markup_only: only the inline keyboard changed. */
  void (*edited)(void *ud, const struct sbx_message *m, bool markup_only);
  void (*deleted)(void *ud, const struct sbx_message *m);
  void (*action)(void *ud, const struct sbx_chat *c, const char *action);
  /* answerCallbackQuery; text may be NULL. */
  void (*answered)(void *ud, const struct sbx_query *q, const char *text,
                   bool alert);
  /* Anything else worth a line (chat may be NULL): reactions, pins, the
   * command list, a method Telegram does not have. */
  void (*note)(void *ud, const struct sbx_chat *c, const char *text);
  /* answerInlineQuery: results is the raw JSON array of InlineQueryResult. */
  void (*inline_answered)(void *ud, const struct sbx_query *q,
                          const char *results, size_t len);
  /* answerPreCheckoutQuery; error may be NULL. */
  void (*pre_checkout_answered)(void *ud, const struct sbx_query *q, bool ok,
                                const char *error);
};

/* Binds a listening socket on 127.0.0.1 (no loop needed yet). NULL with
 * err set on failure. The world stays the caller's. */
struct sandbox_api *sandbox_api_new(struct sbx_world *w, struct buf *err);
void sandbox_api_free(struct sandbox_api *a);
/* "http://127.0.0.1:PORT": the --api-root the bot is given. */
const char *sandbox_api_url(const struct sandbox_api *a);
/* The token the server accepts (never print it). */
const char *sandbox_api_token(void);

/* Starts serving on base. */
int sandbox_api_start(struct sandbox_api *a, struct event_base *base,
                      const struct sandbox_api_events *ev, void *ud,
                      struct buf *err);

/* Queues an update for the bot (see world_push_update) and answers a
 * waiting getUpdates. Returns the update id, or 0 if allowed_updates
 * leave the type out. */
int64_t sandbox_api_push_update(struct sandbox_api *a, const char *type,
                                const char *object_json);
/* Whether the bot has asked for updates yet (it is running). */
bool sandbox_api_polled(const struct sandbox_api *a);

#endif
