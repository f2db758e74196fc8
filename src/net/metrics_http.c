#include "net/metrics_http.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/httpd.h"
#include "base/log.h"
#include "base/metrics.h"

struct metrics_server {
  struct httpd *http;
  double grace_s;
};

/* A scraper sends a small GET and reads a few kilobytes back. */
static const struct httpd_limits limits = {
    .max_head_bytes = 8192,
    .max_body_bytes = 4096,
    .idle_ms = 30000,
    .head_ms = 10000,
    .body_ms = 10000,
    .write_ms = 30000,
};

bool metrics_health(double now, double grace_s, struct buf *reason) {
  const char *state = metric_state(METRIC_SOURCE_STATE);
  if (!state || strcmp(state, SOURCE_STATE_STARTING) == 0) {
    buf_append_str(reason, "starting: the bot is not receiving updates yet");
    return false;
  }
  if (strcmp(state, SOURCE_STATE_WEBHOOK) == 0 &&
      metric_value(METRIC_WEBHOOK_DELIVERY_FAILING, NULL, NULL) > 0) {
    const char *error = metric_info_text(METRIC_WEBHOOK_LAST_ERROR);
    buf_printf(reason, "degraded: webhook: Telegram cannot deliver: %s",
               error && *error ? error : "?");
    return true;
  }
  if (strcmp(state, SOURCE_STATE_POLLING) == 0 ||
      strcmp(state, SOURCE_STATE_WEBHOOK) == 0 ||
      strcmp(state, SOURCE_STATE_CLUSTER) == 0) {
    buf_printf(reason, "ok: %s", state);
    return true;
  }
  if (strcmp(state, SOURCE_STATE_FAILING) == 0) {
    double since = metric_value(METRIC_SOURCE_FAILING_SINCE, NULL, NULL);
    double failing = since > 0 && now > since ? now - since : 0;
    const char *error = metric_info_text(METRIC_SOURCE_LAST_ERROR);
    bool healthy = failing < grace_s;
    buf_printf(reason, "%s: failing for %.0f s (%s %.0f s): %s",
               healthy ? "ok" : "unhealthy", failing,
               healthy ? "unhealthy after" : "grace period",
               grace_s, error && *error ? error : "?");
    return healthy;
  }
  buf_printf(reason, "unhealthy: %s", state);
  return false;
}

static bool check(const struct httpd_head *head, struct httpd_refusal *no,
                  void *arg) {
  (void)arg;
  if (head->head->method == HTTPHEAD_GET ||
      head->head->method == HTTPHEAD_HEAD)
    return true;
  *no = (struct httpd_refusal){405, NULL, "GET /metrics or /healthz\n",
                               "Allow: GET, HEAD\r\n"};
  return false;
}

static void on_request(struct httpd_req *req, void *arg) {
  struct metrics_server *m = arg;
  size_t len;
  const char *uri = httpd_req_target(req, &len);
  size_t plen = 0;
  while (plen < len && uri[plen] != '?') plen++;
  struct buf body = BUF_INIT;
  if (plen == 8 && strncmp(uri, "/metrics", 8) == 0) {
    metrics_render(&body);
    httpd_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                body.data, body.len);
  } else if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    bool ok = metrics_health(ts.tv_sec + ts.tv_nsec / 1e9, m->grace_s, &body);
    buf_append_char(&body, '\n');
    httpd_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", NULL,
                body.data, body.len);
  } else {
    buf_append_str(&body, "not found: try /metrics or /healthz\n");
    httpd_reply(req, 404, "Not Found", NULL, body.data, body.len);
  }
  buf_free(&body);
}

static double grace_from_env(void) {
  const char *v = getenv("TGHOST_HEALTH_GRACE");
  if (!v || !*v) return METRICS_HEALTH_GRACE_S;
  char *end;
  errno = 0;
  double s = strtod(v, &end);
  if (errno || *end || !(s >= 0) || !isfinite(s)) {
    log_warn("TGHOST_HEALTH_GRACE=%s is not a number of seconds; using %.0f",
             v, METRICS_HEALTH_GRACE_S);
    return METRICS_HEALTH_GRACE_S;
  }
  return s;
}

struct metrics_server *metrics_server_new(struct event_base *base,
                                          const char *addr, struct buf *err) {
  char bound[80];
  struct metrics_server *m = xcalloc(1, sizeof *m);
  static const struct httpd_callbacks cb = {check, on_request, NULL};
  m->http = httpd_new(base, addr, "metrics", "--metrics", &limits, &cb, m,
                      bound, sizeof bound, err);
  if (!m->http) {
    free(m);
    return NULL;
  }
  m->grace_s = grace_from_env();
  log_info("metrics: serving /metrics and /healthz on http://%s", bound);
  return m;
}

void metrics_server_free(struct metrics_server *m) {
  if (!m) return;
  httpd_free(m->http);
  free(m);
}
