/* The source: getUpdates long polling.
 *
 * Keeps the offset (last update_id + 1), asks for as many updates as the
 * runner has room for, and splits each response into per-update raw JSON
 * items without decoding them (decoding happens when an update starts, in
 * the generation that runs it). Network errors, 5xx and bad JSON are
 * retried with backoff for at most max_retry_ms, logged once per burst;
 * 401, 409 and other 4xx are fatal; 429 waits retry_after. Optional pacing
 * trades latency for fewer requests (speedTrafficBalance, as in grammY
 * runner). */
#ifndef TGHOST_SOURCE_H
#define TGHOST_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "net/botapi.h"
#include "base/qlist.h"
#include "pipeline/update.h"

/* How long to wait before retrying after a failure: doubling from 100 ms,
 * growing by 100 ms, or a fixed number of ms (grammY's retryInterval). */
enum retry_kind { RETRY_EXPONENTIAL, RETRY_QUADRATIC, RETRY_FIXED };

struct source_config {
  int fetch_timeout_s;
  const char *allowed_updates_json;   /* copied; NULL: not sent */
  enum retry_kind retry;
  long retry_ms;
  long max_retry_ms;
  bool silent;
  double speed_traffic_balance;
  long max_delay_ms;
};

struct source_callbacks {
  /* A batch of update_items (possibly empty); the callee takes them. */
  void (*on_updates)(void *ud, struct qlist *batch);
  /* Pacing is over: the source may poll again. */
  void (*on_ready)(void *ud);
  /* getMe answered (the raw result JSON). */
  void (*on_me)(void *ud, const char *json, size_t len);
  /* An unrecoverable error: a one-line message. */
  void (*on_fatal)(void *ud, const char *message);
};

struct source;

struct source *source_new(struct botapi *api, struct event_base *base,
                          const struct source_config *cfg,
                          const struct source_callbacks *cb, void *ud);
void source_free(struct source *s);
/* Replaces the configuration while running (hot reload); it applies from
 * the next request, retry or pacing decision on. */
void source_configure(struct source *s, const struct source_config *cfg);

void source_get_me(struct source *s);
/* True when no request, retry wait or pacing wait is pending. */
bool source_idle(const struct source *s);
void source_poll(struct source *s, int limit);
/* Ends a pending long poll, so that the next poll (the caller sends it)
 * goes out with the configuration in force: a reload that changes
 * allowed_updates must not wait up to fetch_timeout_s for it. The offset is
 * untouched, so updates the aborted poll may have been answered with come
 * again with the next one: none is lost or handled twice. Returns false
 * (and does nothing) when no poll was pending. */
bool source_restart_poll(struct source *s);
/* Drops a pending request or wait; no callback follows. */
void source_abort(struct source *s);
/* The offset the next poll sends. */
int64_t source_offset(const struct source *s);
/* Polling resumes at offset (updates below it are known already: the
 * journal has them). */
void source_set_offset(struct source *s, int64_t offset);
/* Updates skipped because they had no usable update_id. */
size_t source_bad_updates(const struct source *s);
/* Everything below this offset is confirmed to the server. */
int64_t source_confirmed(const struct source *s);
/* Confirms offset with a last getUpdates (timeout 0); done(ok) follows. */
void source_confirm(struct source *s, int64_t offset,
                    void (*done)(void *ud, bool ok));

#endif
