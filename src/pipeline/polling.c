#include "pipeline/polling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/retry.h"

#define PACE_STATS 16
#define CONFIRM_ATTEMPTS 3
/* How much of a malformed update a log line shows. */
#define BAD_UPDATE_EXCERPT 200

enum request_kind { REQ_NONE, REQ_UPDATES, REQ_CONFIRM };

struct polling {
  struct update_source base;
  struct botapi *api;
  struct event_base *base_loop;
  int fetch_timeout_s;
  char *allowed_updates_json;    /* NULL: not sent */
  struct retry_policy policy;
  double speed_traffic_balance;
  long max_delay_ms;

  int64_t offset;
  int64_t confirmed;
  enum request_kind kind;        /* the request in flight or to retry */
  struct http_request *req;
  struct event *timer;           /* retry or pacing wait */
  bool waiting;                  /* the timer is armed */
  bool pacing;                   /* ... and it is a pacing wait */
  int limit;
  int64_t sent_offset;
  struct retry_burst burst;
  /* The last batch delivered is accepted: the next poll, which confirms
   * it to Telegram, may go out. */
  bool accepted;
  bool stopping;
  int64_t first_released;        /* the lowest id released at a stop; -1 */

  size_t bad_updates;            /* skipped: no usable update_id */
  int64_t confirm_offset;
  int confirm_attempts;

  int counts[PACE_STATS];
  long durations[PACE_STATS];
  long total_count, total_duration;
  int pace_index;
  uint64_t last_batch_ms;
};

static struct polling *polling_of(struct update_source *s) {
  return (struct polling *)s;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void send_request(struct polling *s);

static bool idle(const struct polling *s) { return !s->req && !s->waiting; }

/* Drops a pending request or wait; no event follows. */
static void cancel_pending(struct polling *s) {
  if (s->req) {
    http_request_cancel(s->req);
    s->req = NULL;
  }
  if (s->waiting) evtimer_del(s->timer);
  s->waiting = s->pacing = false;
  s->kind = REQ_NONE;
}

static void arm_timer(struct polling *s, long ms, bool pacing) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  s->waiting = true;
  s->pacing = pacing;
  evtimer_add(s->timer, &tv);
}

static void fatal(struct polling *s, const char *msg) {
  s->kind = REQ_NONE;
  source_fatal(&s->base, msg);
}

static void request_failed(struct polling *s, const struct botapi_reply *reply) {
  struct buf msg = BUF_INIT;
  long delay = retry_after_failure(&s->burst, &s->policy, "getUpdates", reply,
                                   botapi_api_root(s->api), &msg);
  if (delay < 0) fatal(s, msg.data);
  else arm_timer(s, delay, false);
  buf_free(&msg);
}

/* --- pacing (speedTrafficBalance) -------------------------------------- */

static long pacing_delay(struct polling *s, int count) {
  double balance = s->speed_traffic_balance;
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
  double wanted = 100.0 * balance / (s->max_delay_ms > 1 ? s->max_delay_ms : 1);
  double estimate = wanted * (double)s->total_duration /
                    (double)(s->total_count > 0 ? s->total_count : 1);
  long wait = (long)(s->max_delay_ms * tanh(estimate));
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
static void skip_bad_update(struct polling *s, const struct json_slice *span,
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

/* Reads one update of the result, validating it, in one pass: its
 * extent, its (first) update_id and whether that name repeats. */
static bool read_update(struct json_reader *r, struct json_slice *span,
                        bool *have_id, bool *have_number,
                        struct json_number *n, bool *repeated) {
  memset(n, 0, sizeof *n);
  *have_id = *have_number = *repeated = false;
  if (json_peek(r) != JSON_OBJECT) return json_skip(r, span);
  const char *start = r->p;
  json_object_begin(r);
  struct json_slice key;
  while (json_object_next(r, &key)) {
    bool ok;
    if (json_slice_is(&key, "update_id")) {
      if (*have_id) {
        *repeated = true;
        ok = json_skip(r, NULL);
      } else {
        *have_id = true;
        *have_number = json_peek(r) == JSON_NUMBER;
        ok = *have_number ? json_read_number(r, n) : json_skip(r, NULL);
      }
    } else {
      ok = json_skip(r, NULL);
    }
    if (!ok) return false;
  }
  if (json_error(r)) return false;
  span->ptr = start;
  span->len = (size_t)(r->p - start);
  span->has_escapes = false;
  return true;
}

/* Splits result into update items (ids at or above the offset, each once)
 * and returns, in *skip_to, an offset that also passes the malformed
 * updates it skipped (or 0). */
static bool split_updates(struct polling *s, const struct json_slice *result,
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
    struct json_number n;
    bool have_id, have_number, repeated;
    if (!read_update(&r, &span, &have_id, &have_number, &n, &repeated)) break;
    const char *why = !have_id        ? "no update_id"
                      : !have_number  ? "update_id is not a number"
                      : !n.is_integer ? "update_id is not an integer"
                      : n.i < 0       ? "update_id is negative"
                      : n.i == INT64_MAX ? "update_id is too large"
                      : repeated      ? "update_id appears twice"
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

static void handle_updates(struct polling *s, const struct botapi_reply *reply) {
  struct qlist batch;
  qlist_init(&batch);
  struct buf err = BUF_INIT;
  int64_t skip_to = 0;
  if (!split_updates(s, &reply->result, &batch, &skip_to, &err)) {
    update_batch_free(&batch);
    struct botapi_reply bad = *reply;
    bad.outcome = BOTAPI_BAD_RESPONSE;
    bad.description = err;
    request_failed(s, &bad);
    buf_free(&err);
    return;
  }
  buf_free(&err);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_POLLING);
  retry_succeeded(&s->burst, &s->policy, "getUpdates");
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
  /* An empty batch needs no accepting: the next poll confirms nothing. */
  s->accepted = count == 0;
  source_deliver(&s->base, &batch, "polling");
}

static void finish_stop(struct polling *s, bool confirmed) {
  if (confirmed)
    log_info("stopped; offset %lld confirmed to Telegram",
             (long long)s->confirm_offset);
  if (s->bad_updates)
    log_warn("%zu malformed update(s) were skipped while running (logged "
             "above with their text)", s->bad_updates);
  source_stopped(&s->base);
}

static void on_response(struct http_request *req, void *ud) {
  struct polling *s = ud;
  s->req = NULL;
  struct botapi_reply reply;
  /* The result is validated once, by split_updates as it reads it. */
  botapi_parse_reply_with(req, &reply, NULL, NULL);
  switch (s->kind) {
    case REQ_UPDATES:
      if (reply.outcome == BOTAPI_OK) handle_updates(s, &reply);
      else request_failed(s, &reply);
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
        finish_stop(s, ok);
      }
      break;
    }
    case REQ_NONE:
      break;
  }
  botapi_reply_free(&reply);
  http_request_free(req);
}

static void send_request(struct polling *s) {
  struct buf body = BUF_INIT, err = BUF_INIT;
  long timeout_ms = 15000;
  if (s->kind == REQ_UPDATES) {
    s->sent_offset = s->offset;
    /* After a failure the retry does not wait for updates: its answer says
     * at once that Telegram is reachable again (the log line, the health
     * check), and the long poll resumes with the next request. */
    int wait_s = s->burst.failures > 0 ? 0 : s->fetch_timeout_s;
    buf_printf(&body, "{\"offset\":%lld,\"limit\":%d,\"timeout\":%d",
               (long long)s->offset, s->limit, wait_s);
    if (s->allowed_updates_json)
      buf_printf(&body, ",\"allowed_updates\":%s", s->allowed_updates_json);
    buf_append_char(&body, '}');
    timeout_ms = (s->fetch_timeout_s + 15) * 1000L;
  } else {
    buf_printf(&body, "{\"offset\":%lld,\"limit\":1,\"timeout\":0}",
               (long long)s->confirm_offset);
  }
  size_t len;
  char *json = buf_steal(&body, &len);
  struct http_request *req =
      botapi_request_json(s->api, "getUpdates", json, len, &err);
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
  struct polling *s = arg;
  bool pacing = s->pacing;
  s->waiting = s->pacing = false;
  if (pacing) {
    source_ready(&s->base);
    return;
  }
  if (s->kind != REQ_NONE) send_request(s);   /* a retry */
}

/* --- the source operations ---------------------------------------------- */

static void polling_start(struct update_source *src) { (void)src; }

static void polling_fetch(struct update_source *src, int limit) {
  struct polling *s = polling_of(src);
  if (s->stopping || !s->accepted || !idle(s)) return;
  s->kind = REQ_UPDATES;
  s->limit = limit < 1 ? 1 : limit > 100 ? 100 : limit;
  send_request(s);
}

static void polling_accept(struct update_source *src) {
  polling_of(src)->accepted = true;
}

static void polling_outcome(struct update_source *src, int64_t id,
                            enum update_outcome outcome, const char *reason) {
  struct polling *s = polling_of(src);
  (void)reason;
  if (outcome == UPDATE_RELEASED &&
      (s->first_released < 0 || id < s->first_released))
    s->first_released = id;
}

/* Polling resumes after the highest id known (those below are in a
 * wrapper's record). */
static void polling_known(struct update_source *src, const int64_t *ids,
                          size_t n) {
  struct polling *s = polling_of(src);
  for (size_t i = 0; i < n; i++)
    if (ids[i] >= s->offset) s->offset = ids[i] + 1;
}

static void configure(struct polling *s, const struct run_options *o) {
  free(s->allowed_updates_json);
  s->allowed_updates_json =
      o->allowed_updates_json ? xstrdup(o->allowed_updates_json) : NULL;
  s->fetch_timeout_s = o->fetch_timeout_s;
  s->policy = (struct retry_policy){o->retry, o->retry_ms, o->max_retry_ms,
                                    o->silent};
  s->speed_traffic_balance = o->speed_traffic_balance;
  s->max_delay_ms = o->max_delay_ms;
}

static bool same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The new settings apply from the next request, retry or pacing decision
 * on; a change of allowed_updates ends the pending long poll, so that new
 * update types (a chat_member handler) arrive now, not when it ends. The
 * offset is untouched, so updates the aborted poll may have been answered
 * with come again with the next one (the runner sends it). */
static void polling_reconfigure(struct update_source *src,
                                const struct run_options *o) {
  struct polling *s = polling_of(src);
  bool allowed_changed =
      !same_string(s->allowed_updates_json, o->allowed_updates_json);
  configure(s, o);
  if (allowed_changed && !s->stopping && s->kind == REQ_UPDATES && s->req) {
    http_request_cancel(s->req);
    s->req = NULL;
    s->kind = REQ_NONE;
    log_debug("the pending getUpdates was restarted with the new "
              "allowed_updates");
  }
}

static void polling_stop(struct update_source *src) {
  struct polling *s = polling_of(src);
  s->stopping = true;
  cancel_pending(s);
}

/* Confirms what ran, and what a wrapper kept, with a last getUpdates
 * (timeout 0): everything below the first update released unstarted
 * (Telegram keeps that one and those after it), or all that was fetched. */
static void polling_drained(struct update_source *src) {
  struct polling *s = polling_of(src);
  cancel_pending(s);
  int64_t offset = s->first_released >= 0 ? s->first_released : s->offset;
  if (offset <= s->confirmed) {
    log_info("stopped");
    finish_stop(s, false);
    return;
  }
  s->kind = REQ_CONFIRM;
  s->confirm_offset = offset;
  s->confirm_attempts = 0;
  send_request(s);
}

static void polling_abort(struct update_source *src) {
  struct polling *s = polling_of(src);
  s->stopping = true;
  cancel_pending(s);
}

static void polling_free(struct update_source *src) {
  struct polling *s = polling_of(src);
  cancel_pending(s);
  event_free(s->timer);
  free(s->allowed_updates_json);
  free(s);
}

static const struct update_source_type polling_type = {
    .name = "polling",
    .releases_unstarted = true,
    .start = polling_start,
    .fetch = polling_fetch,
    .accept = polling_accept,
    .outcome = polling_outcome,
    .known = polling_known,
    .reconfigure = polling_reconfigure,
    .stop = polling_stop,
    .drained = polling_drained,
    .abort = polling_abort,
    .free = polling_free,
};

struct update_source *polling_new(const struct update_source_params *p,
                                  const struct update_source_events *ev,
                                  void *ud, struct buf *err) {
  (void)err;
  struct polling *s = xcalloc(1, sizeof *s);
  update_source_init(&s->base, &polling_type, ev, ud);
  s->api = p->api;
  s->base_loop = p->base;
  configure(s, p->opts);
  s->accepted = true;
  s->first_released = -1;
  s->timer = evtimer_new(p->base, on_timer, s);
  for (int i = 0; i < PACE_STATS; i++) {
    s->counts[i] = 100;
    s->durations[i] = 1;
  }
  s->total_count = 100 * PACE_STATS;
  s->total_duration = PACE_STATS;
  return &s->base;
}

static bool polling_wanted(const struct update_source_params *p) {
  (void)p;
  return true;
}

const struct update_source_entry polling_source_entry = {
    "polling", polling_wanted, polling_new};
