#include "pipeline/source.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"

#define PACE_STATS 16
#define MAX_BACKOFF_MS 60000L
#define CONFIRM_ATTEMPTS 3
/* The longest a 429 makes the source wait at once; it asks again then. */
#define MAX_FLOOD_WAIT_MS (3600L * 1000)
/* How much of a malformed update a log line shows. */
#define BAD_UPDATE_EXCERPT 200
/* While the Bot API stays unreachable an INFO line repeats, first after
 * 2 s, then each time the outage has doubled, at least every 15 min. */
#define FIRST_REPORT_MS 2000L
#define MAX_REPORT_INTERVAL_MS (15L * 60 * 1000)

enum request_kind { REQ_NONE, REQ_ME, REQ_UPDATES, REQ_CONFIRM };

struct source {
  struct botapi *api;
  struct event_base *base;
  struct source_config cfg;
  struct source_callbacks cb;
  void *ud;

  int64_t offset;
  int64_t confirmed;
  enum request_kind kind;        /* the request in flight or to retry */
  struct http_request *req;
  struct event *timer;           /* retry or pacing wait */
  bool waiting;                  /* the timer is armed */
  bool pacing;                   /* ... and it is a pacing wait */
  int limit;
  int64_t sent_offset;

  int failures;                  /* in the current burst */
  uint64_t burst_started_ms;
  long next_delay_ms;
  bool last_attempt;             /* the retry at maxRetryTime is scheduled */
  long next_report_ms;           /* into the burst */

  size_t bad_updates;            /* skipped: no usable update_id */
  int64_t confirm_offset;
  int confirm_attempts;
  void (*confirm_done)(void *ud, bool ok);

  int counts[PACE_STATS];
  long durations[PACE_STATS];
  long total_count, total_duration;
  int pace_index;
  uint64_t last_batch_ms;
};

static const char *method_of(enum request_kind k) {
  return k == REQ_ME ? "getMe" : "getUpdates";
}

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void send_request(struct source *s);

struct source *source_new(struct botapi *api, struct event_base *base,
                          const struct source_config *cfg,
                          const struct source_callbacks *cb, void *ud) {
  struct source *s = xcalloc(1, sizeof *s);
  s->api = api;
  s->base = base;
  s->cfg = *cfg;
  s->cfg.allowed_updates_json =
      cfg->allowed_updates_json ? xstrdup(cfg->allowed_updates_json) : NULL;
  s->cb = *cb;
  s->ud = ud;
  s->timer = evtimer_new(base, on_timer, s);
  for (int i = 0; i < PACE_STATS; i++) {
    s->counts[i] = 100;
    s->durations[i] = 1;
  }
  s->total_count = 100 * PACE_STATS;
  s->total_duration = PACE_STATS;
  return s;
}

void source_free(struct source *s) {
  if (!s) return;
  source_abort(s);
  event_free(s->timer);
  free((char *)s->cfg.allowed_updates_json);
  free(s);
}

void source_configure(struct source *s, const struct source_config *cfg) {
  free((char *)s->cfg.allowed_updates_json);
  s->cfg = *cfg;
  s->cfg.allowed_updates_json =
      cfg->allowed_updates_json ? xstrdup(cfg->allowed_updates_json) : NULL;
}

bool source_restart_poll(struct source *s) {
  if (s->kind != REQ_UPDATES || !s->req) return false;
  http_request_cancel(s->req);
  s->req = NULL;
  s->kind = REQ_NONE;
  return true;
}

bool source_idle(const struct source *s) { return !s->req && !s->waiting; }
int64_t source_offset(const struct source *s) { return s->offset; }
void source_set_offset(struct source *s, int64_t offset) {
  if (offset > s->offset) s->offset = offset;
}
int64_t source_confirmed(const struct source *s) { return s->confirmed; }
size_t source_bad_updates(const struct source *s) { return s->bad_updates; }

void source_abort(struct source *s) {
  if (s->req) {
    http_request_cancel(s->req);
    s->req = NULL;
  }
  if (s->waiting) evtimer_del(s->timer);
  s->waiting = s->pacing = false;
  s->kind = REQ_NONE;
}

static void arm_timer(struct source *s, long ms, bool pacing) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  s->waiting = true;
  s->pacing = pacing;
  evtimer_add(s->timer, &tv);
}

static void fatal(struct source *s, const char *msg) {
  s->kind = REQ_NONE;
  s->cb.on_fatal(s->ud, msg);
}

/* --- retry policy ------------------------------------------------------- */

static long first_delay(const struct source *s) {
  return s->cfg.retry == RETRY_FIXED ? s->cfg.retry_ms : 100;
}

static long following_delay(const struct source *s, long d) {
  switch (s->cfg.retry) {
    case RETRY_EXPONENTIAL: d = d * 2; break;
    case RETRY_QUADRATIC: d = d + 100; break;
    case RETRY_FIXED: return s->cfg.retry_ms;
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
static void report_outage(struct source *s, const char *method, uint64_t now,
                          long delay, const struct botapi_reply *reply) {
  long elapsed = (long)(now - s->burst_started_ms);
  if (s->cfg.silent || elapsed < s->next_report_ms) return;
  long interval = s->next_report_ms;
  if (interval > MAX_REPORT_INTERVAL_MS) interval = MAX_REPORT_INTERVAL_MS;
  s->next_report_ms += interval;
  char since[40], until[40];
  format_wall(-elapsed, since, sizeof since);
  format_wall(s->cfg.max_retry_ms - elapsed, until, sizeof until);
  log_info("%s still failing after %d attempts since %s (%.0f s): %s; "
           "next attempt in %.1f s, giving up at %s (maxRetryTime). Check "
           "the network, --api-root (%s) and the proxy variables "
           "(https_proxy, HTTPS_PROXY, ALL_PROXY, NO_PROXY)", method,
           s->failures, since, elapsed / 1000.0, reply->description.data,
           delay / 1000.0, until, botapi_api_root(s->api));
}

/* For the metrics: what kind of failure a reply is. */
static const char *error_kind(const struct botapi_reply *reply) {
  if (reply->outcome == BOTAPI_NETWORK_ERROR) return "network";
  if (reply->outcome == BOTAPI_BAD_RESPONSE) return "bad_response";
  if (reply->error_code == 429) return "flood";
  return reply->error_code >= 500 ? "server_error" : "fatal";
}

static void request_failed(struct source *s, const struct botapi_reply *reply) {
  const char *method = method_of(s->kind);
  metric_inc(METRIC_SOURCE_ERRORS, error_kind(reply), NULL);
  metric_set_info(METRIC_SOURCE_LAST_ERROR, error_kind(reply),
                  reply->description.data);
  if (reply->outcome == BOTAPI_API_ERROR && reply->error_code != 429 &&
      reply->error_code < 500) {
    struct buf msg = BUF_INIT;
    describe_fatal(reply, method, &msg);
    fatal(s, msg.data);
    buf_free(&msg);
    return;
  }
  uint64_t now = clock_now_ms();
  if (s->failures++ == 0) {
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_FAILING);
    metric_set(METRIC_SOURCE_FAILING_SINCE, (double)time(NULL), NULL, NULL);
    s->burst_started_ms = now;
    s->next_delay_ms = first_delay(s);
    s->last_attempt = false;
    s->next_report_ms = FIRST_REPORT_MS;
    if (!s->cfg.silent)
      log_warn("%s failed: %s; retrying with backoff", method,
               reply->description.data);
  } else {
    log_debug("%s failed again (attempt %d): %s", method, s->failures,
              reply->description.data);
  }
  long delay = s->next_delay_ms;
  if (reply->outcome == BOTAPI_API_ERROR && reply->error_code == 429) {
    delay = (long)(reply->retry_after * 1000);   /* clamped by botapi */
    if (delay <= 0) delay = 1000;
    metric_inc(METRIC_API_FLOOD_WAITS, NULL, NULL);
    if (delay > MAX_FLOOD_WAIT_MS) {
      log_warn("%s: flood limit (429): Telegram asks to wait %.0f s; "
               "waiting %ld s, then asking again", method,
               reply->retry_after, MAX_FLOOD_WAIT_MS / 1000);
      delay = MAX_FLOOD_WAIT_MS;
    } else if (!s->cfg.silent) {
      log_warn("%s: flood limit (429), waiting %.1f s", method, delay / 1000.0);
    }
    metric_add(METRIC_API_FLOOD_WAIT_SECONDS, delay / 1000.0, NULL, NULL);
  } else {
    s->next_delay_ms = following_delay(s, s->next_delay_ms);
  }
  /* Give up only once maxRetryTime has really passed: a delay that would
   * end beyond it is cut short so that one last attempt is made at the
   * deadline (a 429's retry_after is waited in full: retrying earlier is
   * what Telegram asked not to do). */
  long elapsed = (long)(now - s->burst_started_ms);
  if (s->last_attempt || elapsed >= s->cfg.max_retry_ms) {
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "%s kept failing for %.1f s (maxRetryTime): %s", method,
               elapsed / 1000.0, reply->description.data);
    fatal(s, msg.data);
    buf_free(&msg);
    return;
  }
  if (elapsed + delay >= s->cfg.max_retry_ms) {
    s->last_attempt = true;
    if (!(reply->outcome == BOTAPI_API_ERROR && reply->error_code == 429))
      delay = s->cfg.max_retry_ms - elapsed;
  }
  report_outage(s, method, now, delay, reply);
  arm_timer(s, delay, false);
}

static void request_succeeded(struct source *s) {
  metric_set_state(METRIC_SOURCE_STATE, s->kind == REQ_ME
                                            ? SOURCE_STATE_STARTING
                                            : SOURCE_STATE_POLLING);
  if (s->failures > 0) metric_set(METRIC_SOURCE_FAILING_SINCE, 0, NULL, NULL);
  if (s->failures > 0 && !s->cfg.silent)
    log_info("%s works again after %d failed attempts in %.1f s",
             method_of(s->kind), s->failures,
             (clock_now_ms() - s->burst_started_ms) / 1000.0);
  s->failures = 0;
}

/* --- pacing (speedTrafficBalance) -------------------------------------- */

static long pacing_delay(struct source *s, int count) {
  double balance = s->cfg.speed_traffic_balance;
  uint64_t now = clock_now_ms();
  long duration = s->last_batch_ms ? (long)(now - s->last_batch_ms) : 1;
  s->last_batch_ms = now;
  if (balance <= 0) return 0;
  int i = s->pace_index;
  s->total_count += count - s->counts[i];
  s->total_duration += duration - s->durations[i];
  s->counts[i] = count;
  s->durations[i] = duration;
  s->pace_index = (i + 1) % PACE_STATS;
  /* Wanted updates per call, scaled to the delay cap; the wait estimate
   * approaches max_delay smoothly. */
  double wanted = 100.0 * balance / (s->cfg.max_delay_ms > 1 ? s->cfg.max_delay_ms : 1);
  double estimate = wanted * (double)s->total_duration /
                    (double)(s->total_count > 0 ? s->total_count : 1);
  long wait = (long)(s->cfg.max_delay_ms * tanh(estimate));
  return count < 100 ? wait : 0;
}

/* --- responses ---------------------------------------------------------- */

/* Whether id appeared earlier in this batch. Telegram sends ids in
 * ascending order, so only an id not above the highest seen needs a look. */
static bool seen_in_batch(const struct qlist *batch, int64_t id,
                          int64_t highest) {
  if (id > highest) return false;
  qlist_foreach(n, batch)
    if (qlist_entry(n, struct update_item, node)->id == id) return true;
  return false;
}

/* An update without a usable update_id (or with two: which would Lua
 * see?) is skipped, with its text in the log. Ids are sequential (the Bot API says so), so it stands at the id
 * after the one before it, or at an integral value it gave: the offset
 * moves past it, and a server sending it again cannot stall the bot. */
static void skip_bad_update(struct source *s, const struct json_slice *span,
                            const char *why, const struct json_number *n,
                            bool have_number, int64_t before,
                            int64_t *skip_to) {
  int64_t at = before + 1;
  if (have_number && !n->is_integer && n->d == floor(n->d) && n->d >= 0 &&
      n->d < 9007199254740992.0 && (int64_t)n->d > before)
    at = (int64_t)n->d;
  else if (have_number && n->is_integer && n->i > before && n->i < INT64_MAX)
    at = n->i;   /* a usable first id (it repeats) */
  if (at + 1 > *skip_to) *skip_to = at + 1;
  s->bad_updates++;
  struct buf text = BUF_INIT;
  buf_append(&text, span->ptr,
             span->len > BAD_UPDATE_EXCERPT ? BAD_UPDATE_EXCERPT : span->len);
  log_error("skipped a malformed update (%s; %zu so far), taken to be update "
            "%lld: %s%s", why, s->bad_updates, (long long)at,
            text.data ? text.data : "", span->len > BAD_UPDATE_EXCERPT ? "..."
                                                                       : "");
  buf_free(&text);
}

/* Splits result into update items (ids at or above the offset, each once)
 * and returns, in *skip_to, an offset that also passes the malformed
 * updates it skipped (or 0). */
static bool split_updates(struct source *s, const struct json_slice *result,
                          struct qlist *batch, int64_t *skip_to,
                          struct buf *err) {
  struct json_reader r;
  json_reader_init(&r, result->ptr, result->len);
  if (!json_array_begin(&r)) {
    buf_append_str(err, "bad response: result is not an array");
    return false;
  }
  int64_t before = s->sent_offset - 1, highest = INT64_MIN;
  *skip_to = 0;
  while (json_array_next(&r)) {
    struct json_slice span;
    struct json_reader at;
    struct json_number n;
    memset(&n, 0, sizeof n);
    if (!json_skip(&r, &span)) break;
    bool have_id = json_find_member(span.ptr, span.len, "update_id", &at);
    bool have_number = have_id && json_read_number(&at, &n);
    const char *why = !have_id        ? "no update_id"
                      : !have_number  ? "update_id is not a number"
                      : !n.is_integer ? "update_id is not an integer"
                      : n.i < 0       ? "update_id is negative"
                      : n.i == INT64_MAX ? "update_id is too large"
                      : json_member_repeated(span.ptr, span.len, "update_id")
                          ? "update_id appears twice"
                          : NULL;
    if (why) {
      skip_bad_update(s, &span, why, &n, have_number, before, skip_to);
      before++;
      continue;
    }
    before = n.i;
    if (n.i < s->offset) continue;   /* already handed out */
    if (seen_in_batch(batch, n.i, highest)) {
      log_warn("update %lld came twice in one getUpdates answer; it is "
               "handled once", (long long)n.i);
      continue;
    }
    if (n.i > highest) highest = n.i;
    struct update_item *u = xcalloc(1, sizeof *u);
    u->id = n.i;
    u->json = xstrndup(span.ptr, span.len);
    u->len = span.len;
    qlist_push_back(batch, &u->node);
  }
  if (json_error(&r)) {
    buf_printf(err, "bad response: %s", json_error(&r));
    return false;
  }
  return true;
}

static void free_batch(struct qlist *batch) {
  struct qnode *n;
  while ((n = qlist_pop_front(batch)))
    update_item_free(qlist_entry(n, struct update_item, node));
}

static void handle_updates(struct source *s, const struct botapi_reply *reply) {
  struct qlist batch;
  qlist_init(&batch);
  struct buf err = BUF_INIT;
  int64_t skip_to = 0;
  if (!split_updates(s, &reply->result, &batch, &skip_to, &err)) {
    free_batch(&batch);
    struct botapi_reply bad = *reply;
    bad.outcome = BOTAPI_BAD_RESPONSE;
    bad.description = err;
    request_failed(s, &bad);
    buf_free(&err);
    return;
  }
  buf_free(&err);
  request_succeeded(s);
  s->confirmed = s->sent_offset;
  qlist_foreach(n, &batch) {
    int64_t id = qlist_entry(n, struct update_item, node)->id;
    if (id >= s->offset) s->offset = id + 1;
  }
  if (skip_to > s->offset) s->offset = skip_to;
  int count = (int)qlist_size(&batch);
  s->kind = REQ_NONE;
  long pace = pacing_delay(s, count);
  if (pace > 0) arm_timer(s, pace, true);
  s->cb.on_updates(s->ud, &batch);
}

static void on_response(struct http_request *req, void *ud) {
  struct source *s = ud;
  s->req = NULL;
  struct botapi_reply reply;
  botapi_parse_reply(req, &reply);
  switch (s->kind) {
    case REQ_UPDATES:
      if (reply.outcome == BOTAPI_OK) handle_updates(s, &reply);
      else request_failed(s, &reply);
      break;
    case REQ_ME:
      if (reply.outcome == BOTAPI_OK) {
        request_succeeded(s);
        s->kind = REQ_NONE;
        s->cb.on_me(s->ud, reply.result.ptr, reply.result.len);
      } else {
        request_failed(s, &reply);
      }
      break;
    case REQ_CONFIRM: {
      bool ok = reply.outcome == BOTAPI_OK;
      if (ok) s->confirmed = s->confirm_offset;
      if (!ok && ++s->confirm_attempts < CONFIRM_ATTEMPTS &&
          botapi_reply_retryable(&reply)) {
        arm_timer(s, 200, false);
      } else {
        if (!ok)
          log_warn("could not confirm the offset to Telegram: %s; updates "
                   "from %lld on may be delivered again",
                   reply.description.data, (long long)s->confirm_offset);
        s->kind = REQ_NONE;
        s->confirm_done(s->ud, ok);
      }
      break;
    }
    case REQ_NONE:
      break;
  }
  botapi_reply_free(&reply);
  http_request_free(req);
}

static void send_request(struct source *s) {
  struct buf body = BUF_INIT, err = BUF_INIT;
  long timeout_ms = 15000;
  const char *method = method_of(s->kind);
  if (s->kind == REQ_UPDATES) {
    s->sent_offset = s->offset;
    /* After a failure the retry does not wait for updates: its answer says
     * at once that Telegram is reachable again (the log line, the health
     * check), and the long poll resumes with the next request. */
    int wait_s = s->failures > 0 ? 0 : s->cfg.fetch_timeout_s;
    buf_printf(&body, "{\"offset\":%lld,\"limit\":%d,\"timeout\":%d",
               (long long)s->offset, s->limit, wait_s);
    if (s->cfg.allowed_updates_json)
      buf_printf(&body, ",\"allowed_updates\":%s", s->cfg.allowed_updates_json);
    buf_append_char(&body, '}');
    timeout_ms = (s->cfg.fetch_timeout_s + 15) * 1000L;
  } else if (s->kind == REQ_CONFIRM) {
    buf_printf(&body, "{\"offset\":%lld,\"limit\":1,\"timeout\":0}",
               (long long)s->confirm_offset);
  } else {
    buf_append_str(&body, "{}");
  }
  size_t len;
  char *json = buf_steal(&body, &len);
  struct http_request *req = botapi_request_json(s->api, method, json, len, &err);
  if (!req) {
    fatal(s, err.data);
    buf_free(&err);
    return;
  }
  http_request_set_timeout(req, timeout_ms);
  if (s->kind == REQ_UPDATES) {
    http_request_set_recv_buffer(req, 65536);
    http_request_set_compressed(req, true);
  }
  if (http_request_start(req, on_response, s) != 0) {
    struct botapi_reply reply = {.outcome = BOTAPI_NETWORK_ERROR};
    buf_printf(&reply.description, "cannot start the request: %s",
               http_request_error(req));
    http_request_free(req);
    request_failed(s, &reply);
    botapi_reply_free(&reply);
    return;
  }
  s->req = req;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  struct source *s = arg;
  bool pacing = s->pacing;
  s->waiting = s->pacing = false;
  if (pacing) {
    s->cb.on_ready(s->ud);
    return;
  }
  if (s->kind != REQ_NONE) send_request(s);   /* a retry */
}

void source_get_me(struct source *s) {
  source_abort(s);
  s->kind = REQ_ME;
  send_request(s);
}

void source_poll(struct source *s, int limit) {
  if (!source_idle(s)) return;
  s->kind = REQ_UPDATES;
  s->limit = limit < 1 ? 1 : limit > 100 ? 100 : limit;
  send_request(s);
}

void source_confirm(struct source *s, int64_t offset,
                    void (*done)(void *ud, bool ok)) {
  source_abort(s);
  s->kind = REQ_CONFIRM;
  s->confirm_offset = offset;
  s->confirm_attempts = 0;
  s->confirm_done = done;
  send_request(s);
}
