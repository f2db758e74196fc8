#include "pipeline/webhookinfo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/metrics.h"

struct webhook_info {
  struct botapi *api;
  char *url;
  long interval_ms;
  struct event *timer;
  struct http_request *req;
  bool started;
  int64_t error_date_logged;     /* the last error a line was logged for */
  int64_t error_date;            /* the last error Telegram reported */
  char *wrong_url;               /* where Telegram posts, when not ours */
  double last_update;            /* Unix time of the last update received */
  bool failing;
};

static long interval_from_env(void) {
  const char *v = getenv("TGHOST_WEBHOOK_INFO_INTERVAL");
  double s = WEBHOOK_INFO_INTERVAL_S;
  if (v && *v) {
    char *end;
    errno = 0;
    double given = strtod(v, &end);
    if (errno || *end || !(given >= 0.05 && given <= 86400))
      log_warn("TGHOST_WEBHOOK_INFO_INTERVAL=%s is not a number of seconds "
               "from 0.05 to 86400; using %.0f", v, WEBHOOK_INFO_INTERVAL_S);
    else
      s = given;
  }
  return (long)(s * 1000);
}

static void arm(struct webhook_info *wi) {
  struct timeval tv = {wi->interval_ms / 1000, (wi->interval_ms % 1000) * 1000};
  evtimer_add(wi->timer, &tv);
}

static void set_failing(struct webhook_info *wi, bool failing) {
  wi->failing = failing;
  metric_set(METRIC_WEBHOOK_DELIVERY_FAILING, failing ? 1 : 0, NULL, NULL);
}

/* A string member of obj, unescaped into out; false if absent. */
static bool string_member(const struct json_slice *obj, const char *name,
                          struct buf *out) {
  struct json_reader at;
  struct json_slice s;
  if (!json_find_member(obj->ptr, obj->len, name, &at) ||
      !json_read_string(&at, &s))
    return false;
  json_unescape(&s, out);
  return true;
}

static int64_t integer_member(const struct json_slice *obj, const char *name) {
  struct json_reader at;
  struct json_number n;
  if (!json_find_member(obj->ptr, obj->len, name, &at) ||
      !json_read_number(&at, &n) || !n.is_integer)
    return 0;
  return n.i;
}

static void read_info(struct webhook_info *wi, const struct json_slice *info) {
  double now = (double)time(NULL);
  int64_t pending = integer_member(info, "pending_update_count");
  metric_set(METRIC_WEBHOOK_PENDING, (double)pending, NULL, NULL);

  struct buf url = BUF_INIT;
  string_member(info, "url", &url);
  const char *set = url.data ? url.data : "";
  if (strcmp(set, wi->url) != 0) {
    if (!wi->wrong_url || strcmp(wi->wrong_url, set) != 0) {
      log_warn("webhook: Telegram posts updates to '%s', not to %s: another "
               "process changed the webhook, and tghost receives nothing",
               set, wi->url);
      metric_set_info(METRIC_WEBHOOK_LAST_ERROR, "url_changed", set);
      free(wi->wrong_url);
      wi->wrong_url = xstrdup(set);
    }
  } else if (wi->wrong_url) {
    log_info("webhook: Telegram posts updates to %s again", wi->url);
    free(wi->wrong_url);
    wi->wrong_url = NULL;
  }
  buf_free(&url);

  int64_t date = integer_member(info, "last_error_date");
  struct buf message = BUF_INIT;
  string_member(info, "last_error_message", &message);
  const char *text = message.data ? message.data : "?";
  if (date > 0) {
    wi->error_date = date;
    metric_set(METRIC_WEBHOOK_LAST_ERROR_TIME, (double)date, NULL, NULL);
    if (!wi->wrong_url) metric_set_info(METRIC_WEBHOOK_LAST_ERROR, "delivery", text);
  }
  bool recent = date > 0 && now - (double)date <= WEBHOOK_INFO_RECENT_S &&
                (double)date >= wi->last_update;
  if (recent && date != wi->error_date_logged) {
    wi->error_date_logged = date;
    log_warn("webhook: Telegram could not deliver an update %.0f s ago: %s "
             "(%lld update(s) waiting there; check the URL, the proxy in "
             "front of --listen and its certificate)", now - (double)date,
             text, (long long)pending);
  }
  buf_free(&message);
  set_failing(wi, recent || wi->wrong_url != NULL);
}

static void send_info(struct webhook_info *wi);

static void on_info(struct http_request *req, void *ud) {
  struct webhook_info *wi = ud;
  wi->req = NULL;
  struct botapi_reply reply;
  botapi_parse_reply(req, &reply);
  if (reply.outcome == BOTAPI_OK)
    read_info(wi, &reply.result);
  else
    log_debug("webhook: getWebhookInfo failed: %s", reply.description.data);
  botapi_reply_free(&reply);
  http_request_free(req);
  arm(wi);
}

static void send_info(struct webhook_info *wi) {
  struct buf err = BUF_INIT;
  struct http_request *req =
      botapi_request_json(wi->api, "getWebhookInfo", xstrdup("{}"), 2, &err);
  if (!req) {
    log_debug("webhook: getWebhookInfo: %s", err.data);
    buf_free(&err);
    arm(wi);
    return;
  }
  http_request_set_timeout(req, 30000);
  if (http_request_start(req, on_info, wi) != 0) {
    log_debug("webhook: getWebhookInfo: %s", http_request_error(req));
    http_request_free(req);
    arm(wi);
    return;
  }
  wi->req = req;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  send_info(arg);
}

struct webhook_info *webhook_info_new(struct botapi *api,
                                      struct event_base *base,
                                      const char *url) {
  struct webhook_info *wi = xcalloc(1, sizeof *wi);
  wi->api = api;
  wi->url = xstrdup(url);
  wi->interval_ms = interval_from_env();
  wi->timer = evtimer_new(base, on_timer, wi);
  wi->last_update = (double)time(NULL);
  set_failing(wi, false);
  return wi;
}

void webhook_info_free(struct webhook_info *wi) {
  if (!wi) return;
  webhook_info_stop(wi);
  event_free(wi->timer);
  free(wi->url);
  free(wi->wrong_url);
  free(wi);
}

void webhook_info_start(struct webhook_info *wi) {
  if (wi->started) return;
  wi->started = true;
  arm(wi);
}

void webhook_info_stop(struct webhook_info *wi) {
  evtimer_del(wi->timer);
  if (wi->req) {
    http_request_free(wi->req);
    wi->req = NULL;
  }
  wi->started = false;
}

void webhook_info_update_received(struct webhook_info *wi) {
  wi->last_update = (double)time(NULL);
  if (wi->failing && !wi->wrong_url) {
    log_info("webhook: updates arrive again");
    set_failing(wi, false);
  }
}
