/* --metrics ADDR:PORT: serves the metric registry (metrics.h) and a health
 * check over HTTP, on the loop.
 *
 *   GET /metrics   every metric, Prometheus text format 0.0.4
 *   GET /healthz   200 "ok ..." or 503 with a one-line reason
 *
 * The health rule (metrics_health): healthy while updates can flow, that
 * is, while getUpdates works (state "polling") or the webhook is set
 * ("webhook"), and also while they have been failing for less than the
 * grace period (TGHOST_HEALTH_GRACE seconds, default 60), so that one
 * network blip does not take the bot out of a load balancer; "degraded"
 * (still 200) while Telegram reports that it cannot deliver to the webhook
 * (webhookinfo.h). Unhealthy
 * while starting (getMe, setWebhook), once the failures have lasted the
 * grace period, and while stopping or stopped.
 *
 * Rendering is synchronous and small; nothing here blocks the loop.
 *
 * Layer: loop and HTTP. */
#ifndef TGHOST_METRICS_HTTP_H
#define TGHOST_METRICS_HTTP_H

#include <stdbool.h>

#include <event2/event.h>

#include "base/buf.h"

#define METRICS_HEALTH_GRACE_S 60.0

struct metrics_server;

/* Listens on addr; NULL with err set when it cannot. */
struct metrics_server *metrics_server_new(struct event_base *base,
                                          const char *addr, struct buf *err);
void metrics_server_free(struct metrics_server *m);

/* The health rule at Unix time now: true if healthy; reason gets a short
 * explanation either way. */
bool metrics_health(double now, double grace_s, struct buf *reason);

#endif
