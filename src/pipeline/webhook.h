/* The webhook receiver (--webhook URL --listen ADDR:PORT): Telegram POSTs
 * each update to tghost, instead of tghost polling getUpdates. The runner
 * uses it in place of the source and takes updates from it as it would
 * poll: when the sink has room.
 *
 * At the start it listens on the address (behind a TLS-terminating proxy:
 * Telegram speaks only HTTPS) and calls setWebhook with the URL, the
 * secret token, allowed_updates and max_connections (network errors and
 * 5xx are retried with backoff for at most max_retry_ms; a 4xx is fatal).
 * Each request is checked, in this order, the first four on its head
 * alone, before a byte of its body is read (httpd.h, which also bounds
 * connections, heads and time):
 *   - it is a POST (405 otherwise);
 *   - its X-Telegram-Bot-Api-Secret-Token header equals the secret,
 *     compared in constant time (401 otherwise; logged, never the secret);
 *   - tghost is not stopping and has room to hold it (503);
 *   - its Content-Length is at most WEBHOOK_MAX_BODY (413);
 *   - its body is one JSON object with an integer update_id >= 0 (400).
 * Then the request is held: its answer waits until the update has been
 * accepted. webhook_take hands held updates to the runner (oldest first)
 * when the sink has room; once they are in the sink, and durable when the
 * journal is on, the runner calls webhook_accepted and their 200s go out.
 * So while the sink is full no answer goes out and Telegram, which keeps
 * at most max_connections requests open, waits: backpressure. Memory
 * stays bounded: at most WEBHOOK_MAX_HELD requests or WEBHOOK_MAX_HELD_BYTES
 * of bodies are held; a request beyond that is answered 503 (Telegram
 * delivers it again later).
 *
 * Duplicates: the ids of the last WEBHOOK_WINDOW updates handed over are
 * remembered (idwindow.h), and at the start also the ids the journal knew
 * (webhook_remember). A delivery of one of them (Telegram retries when a
 * 200 did not reach it) is answered 200 and not handed over again; so is a
 * copy that was held beside its original.
 *
 * A held request whose client has gone (Telegram gave up waiting) is
 * dropped without an answer: held connections are checked once a second.
 * Telegram delivers the update again later.
 *
 * webhook_stop (a graceful stop) answers every held request 503, so that
 * Telegram delivers those updates again, to the next start, and answers
 * new ones 503 as well; updates already handed over still get their 200
 * once accepted. The webhook stays set with Telegram: updates wait there
 * (up to 24 hours) until tghost is back. deleteWebhook removes it.
 *
 * Layer: pipeline (the HTTP server of httpd.h, the Bot API client). */
#ifndef TGHOST_WEBHOOK_H
#define TGHOST_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "net/botapi.h"
#include "base/qlist.h"
#include "pipeline/update.h"

#define WEBHOOK_MAX_BODY (1u << 20)
#define WEBHOOK_MAX_HELD 1024
#define WEBHOOK_MAX_HELD_BYTES (16u << 20)
#define WEBHOOK_WINDOW 65536
/* Telegram's bounds for secret_token and max_connections. */
#define WEBHOOK_MAX_SECRET 256
#define WEBHOOK_MAX_CONNECTIONS 100

struct webhook_config {
  const char *url;                    /* given to setWebhook */
  const char *listen;                 /* ADDR:PORT (netaddr.h) */
  const char *secret_file;            /* NULL: a random secret */
  const char *allowed_updates_json;   /* NULL: not sent */
  int max_connections;                /* clamped to 1..100 */
  long max_retry_ms;                  /* for setWebhook */
};

struct webhook_callbacks {
  /* Held updates wait to be taken (called from the loop). */
  void (*on_ready)(void *ud);
  /* setWebhook succeeded: Telegram delivers to the URL from now on. */
  void (*on_set)(void *ud);
  /* An unrecoverable error: a one-line message. */
  void (*on_fatal)(void *ud, const char *message);
};

struct webhook;

/* Reads or makes the secret (registered with the log redactor) and starts
 * listening. NULL with err set when the address, the URL or the secret
 * file cannot be used. */
struct webhook *webhook_new(struct botapi *api, struct event_base *base,
                            const struct webhook_config *cfg,
                            const struct webhook_callbacks *cb, void *ud,
                            struct buf *err);
/* Answers what is still held or handed over 503 and stops listening. */
void webhook_free(struct webhook *w);
/* Calls setWebhook. */
void webhook_start(struct webhook *w);
/* A reload changed allowed_updates or the concurrency: setWebhook again
 * if they differ from what was set. */
void webhook_configure(struct webhook *w, const char *allowed_updates_json,
                       int max_connections);
/* Ids known to have been accepted before (the journal's, at a restart). */
void webhook_remember(struct webhook *w, const int64_t *ids, size_t n);

/* Moves up to limit held updates (oldest first) into batch as
 * update_items; returns how many. Their answers wait for
 * webhook_accepted. */
size_t webhook_take(struct webhook *w, int limit, struct qlist *batch);
/* Everything taken so far is accepted: their 200s go out. */
void webhook_accepted(struct webhook *w);
/* Requests held, waiting to be taken. */
size_t webhook_held(const struct webhook *w);
/* A graceful stop: see above. */
void webhook_stop(struct webhook *w);

#endif
