/* The retry policy of the Bot API requests tghost cannot do without
 * (getMe, getUpdates): grammY runner's retryInterval and maxRetryTime.
 *
 * Network errors, 5xx and bad responses are retried with backoff for at
 * most max_retry_ms (a last attempt is made at that deadline, not before
 * it); a 429 waits its retry_after in full (at most an hour at once);
 * 401, 404, 409 and any other 4xx are fatal, with a message saying what
 * to check. The first failure of a burst is logged once (WARN), then an
 * INFO line repeats while the outage lasts (after 2 s, then each time it
 * has doubled, at least every 15 min); the end of a burst is logged too.
 * The source metrics (state "failing", errors by kind, the last error,
 * failing since) follow every failure.
 *
 * A caller keeps one struct retry_burst per request it repeats and owns
 * the request and its timer: this module only decides.
 *
 * Layer: Bot API client. */
#ifndef TGHOST_RETRY_H
#define TGHOST_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/botapi.h"

/* How long to wait before retrying after a failure: doubling from 100 ms,
 * growing by 100 ms, or a fixed number of ms (grammY's retryInterval). */
enum retry_kind { RETRY_EXPONENTIAL, RETRY_QUADRATIC, RETRY_FIXED };

struct retry_policy {
  enum retry_kind kind;
  long interval_ms;              /* RETRY_FIXED */
  long max_retry_ms;
  bool silent;                   /* no WARN/INFO lines for failures */
};

/* One request's current burst of failures; zeroed = no failure. */
struct retry_burst {
  int failures;
  uint64_t started_ms;
  long next_delay_ms;
  bool last_attempt;             /* the retry at max_retry_ms is scheduled */
  long next_report_ms;           /* into the burst */
};

/* A request (method) failed with reply. Returns how many ms to wait before
 * the next attempt, or -1 with fatal set to a one-line message when it
 * must not be retried (a fatal status, or max_retry_ms has passed).
 * api_root is named in outage reports. */
long retry_after_failure(struct retry_burst *b, const struct retry_policy *p,
                         const char *method, const struct botapi_reply *reply,
                         const char *api_root, struct buf *fatal);
/* The request succeeded: ends the burst (with a log line if there was
 * one). The caller sets the source state it is in now. */
void retry_succeeded(struct retry_burst *b, const struct retry_policy *p,
                     const char *method);

#endif
