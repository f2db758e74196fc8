#include "net/apicall.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "net/trace.h"

struct apicalls {
  struct botapi *api;
  struct event_base *base;
  struct apicall_config cfg;
  struct throttle *throttle;     /* created when first turned on */
};

struct apicall {
  struct apicalls *a;
  struct http_request *req;
  char method[72];
  char *chat_key;
  bool is_group;
  bool throttled;
  bool no_retry;
  struct log_fields fields;
  char trace_chat[40];           /* for --trace */
  uint64_t started_us;
  int retries;
  struct event *timer;           /* a retry wait, or a deferred failure */
  bool start_failed;
  struct throttle_item item;     /* first member used by the throttle */
  apicall_done_fn done;
  void *ud;
};

void apicall_config_default(struct apicall_config *cfg) {
  cfg->max_retry_attempts = 3;
  cfg->max_delay_s = 60;
  cfg->throttle = false;
  throttle_limits_default(&cfg->limits);
}

struct apicalls *apicalls_new(struct botapi *api, struct event_base *base) {
  struct apicalls *a = xcalloc(1, sizeof *a);
  a->api = api;
  a->base = base;
  apicall_config_default(&a->cfg);
  return a;
}

void apicalls_free(struct apicalls *a) {
  if (!a) return;
  throttle_free(a->throttle);
  free(a);
}

void apicalls_configure(struct apicalls *a, const struct apicall_config *cfg) {
  a->cfg = *cfg;
  if (cfg->throttle) {
    if (!a->throttle) a->throttle = throttle_new(a->base, &cfg->limits);
    else throttle_set_limits(a->throttle, &cfg->limits);
  }
  /* When it is turned off, calls already queued still go through it. */
}

const struct apicall_config *apicalls_config(const struct apicalls *a) {
  return &a->cfg;
}


bool apicall_is_message_method(const char *m) {
  if (strncmp(m, "send", 4) == 0)
    return strcmp(m, "sendChatAction") != 0 && strcmp(m, "sendMessageDraft") != 0;
  return strncmp(m, "forwardMessage", 14) == 0 ||
         strncmp(m, "copyMessage", 11) == 0;
}

/* How a call ended, for the metrics: from the HTTP status (the Bot API
 * answers with its error_code as the status), without parsing the body. */
static const char *outcome_of(struct http_request *req, const char *error) {
  if (error) return "not_sent";
  if (!http_request_ok(req)) return "network_error";
  long status = http_request_status(req);
  return status == 200   ? "ok"
         : status == 429 ? "flood"
         : status >= 500 ? "server_error"
                         : "error";
}

static void note_throttle(const struct apicalls *a) {
  if (a->throttle)
    metric_set(METRIC_THROTTLE_QUEUED, (double)throttle_queued(a->throttle),
               NULL, NULL);
}

static void call_free(struct apicall *c) {
  if (c->timer) event_free(c->timer);
  free(c->chat_key);
  free(c);
}

/* Hands the request back and ends the call. */
static void finish(struct apicall *c, const char *error) {
  struct http_request *req = c->req;
  apicall_done_fn done = c->done;
  void *ud = c->ud;
  double ms = (clock_now_us() - c->started_us) / 1000.0;
  if (log_trace_enabled())
    trace_call(&c->fields, c->method, c->trace_chat, ms, req, error);
  metric_inc(METRIC_API_CALLS, c->method, outcome_of(req, error));
  metric_observe(METRIC_API_CALL_DURATION, ms / 1000, c->method, NULL);
  c->req = NULL;
  call_free(c);
  done(req, error, ud);
}

static void on_http_done(struct http_request *req, void *ud);

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* Sends (or sends again) the request; a failure to start is reported from
 * the loop, like every other outcome. */
static void send_now(struct apicall *c) {
  if (http_request_start(c->req, on_http_done, c) == 0) return;
  /* Not from here: this may run inside the throttle's start callback. */
  c->start_failed = true;
  if (!c->timer) c->timer = evtimer_new(c->a->base, on_timer, c);
  event_active(c->timer, EV_TIMEOUT, 0);
}

static void on_throttle_start(struct throttle_item *item) {
  struct apicall *c =
      (struct apicall *)((char *)item - offsetof(struct apicall, item));
  note_throttle(c->a);
  send_now(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  struct apicall *c = arg;
  if (c->start_failed) {
    if (c->throttled) throttle_done(c->a->throttle, &c->item);
    struct buf text = BUF_INIT;
    buf_printf(&text, "cannot start the request: %s",
               http_request_error(c->req));
    finish(c, text.data);
    buf_free(&text);
    return;
  }
  send_now(c);   /* the retry wait is over */
}

/* retry_after of a 429 reply, in seconds (0 when absent). */
static double retry_after_of(struct http_request *req) {
  struct botapi_reply reply;
  botapi_parse_reply(req, &reply);
  double secs = reply.outcome == BOTAPI_API_ERROR && reply.error_code == 429
                    ? reply.retry_after : -1;
  botapi_reply_free(&reply);
  return secs;
}

static void on_http_done(struct http_request *req, void *ud) {
  struct apicall *c = ud;
  struct apicalls *a = c->a;
  if (http_request_ok(req) && http_request_status(req) == 429 &&
      !c->no_retry && c->retries < a->cfg.max_retry_attempts) {
    double secs = retry_after_of(req);
    if (secs >= 0 && secs <= a->cfg.max_delay_s) {
      if (secs < 1) secs = 1;   /* no retry_after: a second, as Telegram's */
      c->retries++;
      long ms = (long)(secs * 1000);
      metric_inc(METRIC_API_FLOOD_WAITS, NULL, NULL);
      metric_add(METRIC_API_FLOOD_WAIT_SECONDS, secs, NULL, NULL);
      log_msg(c->retries == 1 ? LOG_INFO : LOG_WARN, &c->fields,
              "%s: flood limit (429): retrying in %.0f s (retry %d of %d)",
              c->method, secs, c->retries, a->cfg.max_retry_attempts);
      if (c->throttled) {
        throttle_requeue(a->throttle, &c->item, ms);
        note_throttle(a);
      } else {
        if (!c->timer) c->timer = evtimer_new(a->base, on_timer, c);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(c->timer, &tv);
      }
      return;
    }
  }
  if (c->throttled) throttle_done(a->throttle, &c->item);
  finish(c, NULL);
}

struct apicall *apicall_start(struct apicalls *a,
                              const struct apicall_params *p,
                              struct http_request *req, apicall_done_fn done,
                              void *ud, struct buf *err) {
  struct apicall *c = xcalloc(1, sizeof *c);
  c->a = a;
  c->req = req;
  snprintf(c->method, sizeof c->method, "%s", p->method);
  c->fields = p->fields;
  c->no_retry = p->no_retry;
  if (p->chat_key) snprintf(c->trace_chat, sizeof c->trace_chat, "%s", p->chat_key);
  c->started_us = clock_now_us();
  c->done = done;
  c->ud = ud;
  c->throttled = a->cfg.throttle && a->throttle && p->chat_key &&
                 apicall_is_message_method(p->method);
  if (c->throttled) {
    c->chat_key = xstrdup(p->chat_key);
    c->is_group = p->is_group;
    c->item.start = on_throttle_start;
    throttle_submit(a->throttle, &c->item, c->chat_key, c->is_group, false);
    note_throttle(a);
    return c;
  }
  if (http_request_start(req, on_http_done, c) != 0) {
    buf_printf(err, "cannot start the request: %s", http_request_error(req));
    http_request_free(req);
    call_free(c);
    return NULL;
  }
  return c;
}

void apicall_cancel(struct apicall *c) {
  metric_inc(METRIC_API_CALLS, c->method, "cancelled");
  if (c->throttled) {
    throttle_cancel(c->a->throttle, &c->item);
    note_throttle(c->a);
  }
  http_request_free(c->req);   /* removes it from curl if it is running */
  call_free(c);
}
