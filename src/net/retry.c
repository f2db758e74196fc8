#include "net/retry.h"

#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"

#define MAX_BACKOFF_MS 60000L
/* The longest a 429 makes a request wait at once; it asks again then. */
#define MAX_FLOOD_WAIT_MS (3600L * 1000)
/* While the Bot API stays unreachable an INFO line repeats, first after
 * 2 s, then each time the outage has doubled, at least every 15 min. */
#define FIRST_REPORT_MS 2000L
#define MAX_REPORT_INTERVAL_MS (15L * 60 * 1000)

static long first_delay(const struct retry_policy *p) {
  return p->kind == RETRY_FIXED ? p->interval_ms : 100;
}

static long following_delay(const struct retry_policy *p, long d) {
  switch (p->kind) {
    case RETRY_EXPONENTIAL: d = d * 2; break;
    case RETRY_QUADRATIC: d = d + 100; break;
    case RETRY_FIXED: return p->interval_ms;
  }
  return d > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : d;
}

static void describe_fatal(const struct botapi_reply *reply, const char *method,
                           struct buf *out) {
  if (reply->error_code == 401) {
    buf_printf(out, "%s: 401 Unauthorized: Telegram rejected the bot token; "
               "check BOT_TOKEN (or --token-file)", method);
  } else if (reply->error_code == 409) {
    const char *desc = reply->description.data ? reply->description.data : "";
    if (strncmp(desc, "Conflict: ", 10) == 0) desc += 10;
    if (strstr(desc, "webhook"))
      buf_printf(out, "%s: 409 Conflict: %s. A webhook is set for this bot "
                 "(tghost --webhook leaves it set when it stops): run with "
                 "--webhook to receive updates that way, or remove it with "
                 "deleteWebhook (curl https://api.telegram.org/bot<token>/"
                 "deleteWebhook) and poll again", method, desc);
    else
      buf_printf(out, "%s: 409 Conflict: %s. Another instance is polling "
                 "with this token, or a webhook is set (call deleteWebhook)",
                 method, desc);
  } else if (reply->error_code == 404) {
    buf_printf(out, "%s: 404 Not Found: check the bot token and --api-root",
               method);
  } else {
    buf_printf(out, "%s failed: %lld %s", method,
               (long long)reply->error_code, reply->description.data);
  }
}

/* A wall-clock time ms milliseconds from now, as "2026-11-30 14:03:05 UTC",
 * to the millisecond before it is cut to the second: down for a time past,
 * up for a deadline (one said early is a promise broken; whole seconds
 * added to a truncated now said it up to 2 s early). */
static void format_wall(long long ms, char *out, size_t n) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  long long at = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + ms;
  time_t t = (time_t)(ms > 0 ? (at + 999) / 1000 : at / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* While the burst goes on: how long, until when, and what to check. */
static void report_outage(struct retry_burst *b, const struct retry_policy *p,
                          const char *method, uint64_t now, long delay,
                          const struct botapi_reply *reply,
                          const char *api_root) {
  long elapsed = (long)(now - b->started_ms);
  if (p->silent || elapsed < b->next_report_ms) return;
  long interval = b->next_report_ms;
  if (interval > MAX_REPORT_INTERVAL_MS) interval = MAX_REPORT_INTERVAL_MS;
  b->next_report_ms += interval;
  char since[40], until[40];
  format_wall(-elapsed, since, sizeof since);
  format_wall(p->max_retry_ms - elapsed, until, sizeof until);
  log_info("%s still failing after %d attempts since %s (%.0f s): %s; "
           "next attempt in %.1f s, giving up at %s (maxRetryTime). Check "
           "the network, --api-root (%s) and the proxy variables "
           "(https_proxy, HTTPS_PROXY, ALL_PROXY, NO_PROXY)", method,
           b->failures, since, elapsed / 1000.0, reply->description.data,
           delay / 1000.0, until, api_root);
}

/* For the metrics: what kind of failure a reply is. */
static const char *error_kind(const struct botapi_reply *reply) {
  if (reply->outcome == BOTAPI_NETWORK_ERROR) return "network";
  if (reply->outcome == BOTAPI_BAD_RESPONSE) return "bad_response";
  if (reply->error_code == 429) return "flood";
  return reply->error_code >= 500 ? "server_error" : "fatal";
}

long retry_after_failure(struct retry_burst *b, const struct retry_policy *p,
                         const char *method, const struct botapi_reply *reply,
                         const char *api_root, struct buf *fatal) {
  metric_inc(METRIC_SOURCE_ERRORS, error_kind(reply), NULL);
  metric_set_info(METRIC_SOURCE_LAST_ERROR, error_kind(reply),
                  reply->description.data);
  bool flood = reply->outcome == BOTAPI_API_ERROR && reply->error_code == 429;
  if (reply->outcome == BOTAPI_API_ERROR && !flood &&
      reply->error_code < 500) {
    describe_fatal(reply, method, fatal);
    return -1;
  }
  uint64_t now = clock_now_ms();
  if (b->failures++ == 0) {
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_FAILING);
    metric_set(METRIC_SOURCE_FAILING_SINCE, (double)time(NULL), NULL, NULL);
    b->started_ms = now;
    b->next_delay_ms = first_delay(p);
    b->last_attempt = false;
    b->next_report_ms = FIRST_REPORT_MS;
    if (!p->silent)
      log_warn("%s failed: %s; retrying with backoff", method,
               reply->description.data);
  } else {
    log_debug("%s failed again (attempt %d): %s", method, b->failures,
              reply->description.data);
  }
  long delay = b->next_delay_ms;
  if (flood) {
    delay = (long)(reply->retry_after * 1000);   /* clamped by botapi */
    if (delay <= 0) delay = 1000;
    metric_inc(METRIC_API_FLOOD_WAITS, NULL, NULL);
    if (delay > MAX_FLOOD_WAIT_MS) {
      log_warn("%s: flood limit (429): Telegram asks to wait %.0f s; "
               "waiting %ld s, then asking again", method,
               reply->retry_after, MAX_FLOOD_WAIT_MS / 1000);
      delay = MAX_FLOOD_WAIT_MS;
    } else if (!p->silent) {
      log_warn("%s: flood limit (429), waiting %.1f s", method, delay / 1000.0);
    }
    metric_add(METRIC_API_FLOOD_WAIT_SECONDS, delay / 1000.0, NULL, NULL);
  } else {
    b->next_delay_ms = following_delay(p, b->next_delay_ms);
  }
  /* Give up only once maxRetryTime has really passed: a delay that would
   * end beyond it is cut short so that one last attempt is made at the
   * deadline (a 429's retry_after is waited in full: retrying earlier is
   * what Telegram asked not to do). */
  long elapsed = (long)(now - b->started_ms);
  if (b->last_attempt || elapsed >= p->max_retry_ms) {
    buf_printf(fatal, "%s kept failing for %.1f s (maxRetryTime): %s", method,
               elapsed / 1000.0, reply->description.data);
    return -1;
  }
  if (elapsed + delay >= p->max_retry_ms) {
    b->last_attempt = true;
    if (!flood) delay = p->max_retry_ms - elapsed;
  }
  report_outage(b, p, method, now, delay, reply, api_root);
  return delay;
}

void retry_succeeded(struct retry_burst *b, const struct retry_policy *p,
                     const char *method) {
  if (b->failures > 0) {
    metric_set(METRIC_SOURCE_FAILING_SINCE, 0, NULL, NULL);
    if (!p->silent)
      log_info("%s works again after %d failed attempts in %.1f s", method,
               b->failures, (clock_now_ms() - b->started_ms) / 1000.0);
  }
  b->failures = 0;
}
