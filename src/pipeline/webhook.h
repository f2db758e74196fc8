/* The webhook receiver (--webhook URL --listen ADDR:PORT): Telegram POSTs
 * each update to tghost, instead of tghost polling getUpdates. An update
 * source (source.h): the runner takes updates from it as it would poll,
 * when the sink has room.
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
 * accepted. fetch hands held updates to the runner (oldest first) when the
 * sink has room; once they are in the sink (and durable, when the journal
 * wraps the webhook) accept sends their 200s.
 * So while the sink is full no answer goes out and Telegram, which keeps
 * at most max_connections requests open, waits: backpressure. Memory
 * stays bounded: at most WEBHOOK_MAX_HELD requests or WEBHOOK_MAX_HELD_BYTES
 * of bodies are held; a request beyond that is answered 503 (Telegram
 * delivers it again later).
 *
 * Duplicates: the ids of the last WEBHOOK_WINDOW updates handed over are
 * remembered (idwindow.h), and at the start also the ids the journal knew
 * (the source's known). A delivery of one of them (Telegram retries when a
 * 200 did not reach it) is answered 200 and not handed over again; so is a
 * copy that was held beside its original.
 *
 * A held request whose client has gone (Telegram gave up waiting) is
 * dropped without an answer: held connections are checked once a second.
 * Telegram delivers the update again later.
 *
 * A graceful stop answers every held request 503, so that Telegram
 * delivers those updates again, to the next start, and answers new ones
 * 503 as well; updates already handed over still get their 200 once
 * accepted, and run before the stop ends (releases_unstarted is false). The webhook stays set with Telegram: updates wait there
 * (up to 24 hours) until tghost is back. deleteWebhook removes it.
 *
 * Layer: pipeline (the HTTP server of httpd.h, the Bot API client). */
#ifndef TGHOST_WEBHOOK_H
#define TGHOST_WEBHOOK_H

#include "pipeline/source.h"

#define WEBHOOK_MAX_BODY (1u << 20)
#define WEBHOOK_MAX_HELD 1024
#define WEBHOOK_MAX_HELD_BYTES (16u << 20)
#define WEBHOOK_WINDOW 65536
/* Telegram's bounds for secret_token and max_connections. */
#define WEBHOOK_MAX_SECRET 256
#define WEBHOOK_MAX_CONNECTIONS 100

/* The table row (host.c): chosen when the run options give a webhook URL
 * (--webhook, or run{ webhook = { url = ... } }). */
extern const struct update_source_entry webhook_source_entry;

#endif
