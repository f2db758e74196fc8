/* Telegram's side of the webhook: once it is set, getWebhookInfo is asked
 * every interval (WEBHOOK_INFO_INTERVAL_S, or TGHOST_WEBHOOK_INFO_INTERVAL
 * seconds), so that what only Telegram sees shows in tghost's log,
 * /metrics and /healthz:
 *
 *   - a delivery error (last_error_date, last_error_message: Telegram
 *     could not reach the URL, or got no 200): one WARN line per error
 *     Telegram reports, and the webhook counts as failing while the error
 *     is newer than the last update received and at most
 *     WEBHOOK_INFO_RECENT_S old. An update arriving ends it (logged);
 *   - the URL set there is not ours (another process called setWebhook:
 *     tghost receives nothing): a WARN line, failing until it is ours
 *     again;
 *   - the updates waiting at Telegram (pending_update_count).
 *
 * Metrics: tghost_webhook_pending_updates, tghost_webhook_delivery_failing
 * (0 or 1), tghost_webhook_last_error_info {kind, message} and
 * tghost_webhook_last_error_time_seconds. /healthz answers 200 "degraded:
 * ..." while failing (metrics_http.h): the process is fine, and a load
 * balancer taking it out would not help Telegram reach it.
 *
 * A getWebhookInfo that fails (network, 5xx) changes nothing; the next
 * comes an interval later.
 *
 * Layer: pipeline (the Bot API client, the loop). */
#ifndef TGHOST_WEBHOOKINFO_H
#define TGHOST_WEBHOOKINFO_H

#include <event2/event.h>

#include "net/botapi.h"

#define WEBHOOK_INFO_INTERVAL_S 60.0
#define WEBHOOK_INFO_RECENT_S 600

struct webhook_info;

/* url: the one tghost sets. */
struct webhook_info *webhook_info_new(struct botapi *api,
                                      struct event_base *base,
                                      const char *url);
void webhook_info_free(struct webhook_info *wi);
/* The webhook is set: asks an interval from now, and then every interval. */
void webhook_info_start(struct webhook_info *wi);
/* Stops asking (a graceful stop). */
void webhook_info_stop(struct webhook_info *wi);
/* An update arrived over the webhook: deliveries work. */
void webhook_info_update_received(struct webhook_info *wi);

#endif
