/* tghost's own HTTP servers from an end-to-end test (probe.h). */
#include "probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"
#include "net/http.h"

#ifndef TGHOST_SOURCE_DIR
#error "TGHOST_SOURCE_DIR must name the source tree"
#endif

/* The exit status of a skipped test, and prom_check.py's when the parser
 * is not installed. */
#define SKIP 77

/* --- the ports tghost logs ----------------------------------------------- */

/* The port in the first stderr line containing marker, or 0. */
static int port_after(struct proc *p, const char *marker) {
  const char *at = strstr(proc_stderr(p), marker);
  if (!at) return 0;
  const char *colon = strchr(at + strlen(marker), ':');
  return colon ? atoi(colon + 1) : 0;
}

struct port_wait {
  struct proc *p;
  const char *marker;
};

static bool have_port(void *ud) {
  struct port_wait *w = ud;
  return port_after(w->p, w->marker) > 0 || proc_exited(w->p);
}

int wait_port(struct proc *p, const char *marker) {
  struct port_wait w = {p, marker};
  run_until(have_port, &w, 20000);
  int port = port_after(p, marker);
  CHECK(port > 0, "tghost did not log '%s'", marker);
  return port;
}

/* --- requests through libcurl -------------------------------------------- */

struct http_client *curl_client(void) {
  static struct http_client *c;
  if (!c) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = http_client_new(harness_base(), NULL);
    CHECK(c, "libcurl");
  }
  return c;
}

struct exchange {
  bool done;
  long status;
  struct buf body;
};

static void on_exchange(struct http_request *req, void *ud) {
  struct exchange *x = ud;
  x->status = http_request_ok(req) ? http_request_status(req) : -1;
  const struct buf *b = http_request_body(req);
  if (b->len) buf_append(&x->body, b->data, b->len);
  x->done = true;
}

static bool exchange_done(void *ud) { return ((struct exchange *)ud)->done; }

long curl_request(const char *method, const char *url,
                  const char *const *headers, const char *data, size_t len,
                  struct buf *body) {
  struct http_request *req = http_request_new(curl_client(), url);
  http_request_set_method(req, method);
  for (int i = 0; headers && headers[i]; i++)
    http_request_add_header(req, headers[i]);
  if (data) {
    char *copy = xmalloc(len + 1);
    memcpy(copy, data, len);
    http_request_set_body(req, copy, len);
  }
  http_request_set_timeout(req, 20000);
  struct exchange x = {0};
  CHECK(http_request_start(req, on_exchange, &x) == 0, "curl: %s",
        http_request_error(req));
  run_until(exchange_done, &x, 25000);
  CHECK(x.done, "no answer from %s", url);
  http_request_free(req);
  if (body) {
    buf_reset(body);
    if (x.body.len) buf_append(body, x.body.data, x.body.len);
  }
  buf_free(&x.body);
  return x.status;
}

long get_url(int port, const char *path, struct buf *body) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  return curl_request("GET", url, NULL, NULL, 0, body);
}

bool health_is(void *ud) {
  struct health_wait *h = ud;
  return get_url(h->port, "/healthz", &h->body) == h->want;
}

/* --- the metrics, through prometheus_client ----------------------------- */

static const char *python(void) {
  return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

int scrape(int port, struct samples *s) {
  struct buf body = BUF_INIT;
  long status = get_url(port, "/metrics", &body);
  CHECK(status == 200, "/metrics answered %ld", status);
  const char *file = harness_write("metrics.txt", body.data ? body.data : "");
  buf_free(&body);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s %s/tests/tools/prom_check.py %s", python(),
           TGHOST_SOURCE_DIR, file);
  FILE *f = popen(cmd, "r");
  CHECK(f, "cannot run %s", cmd);
  struct buf out = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&out, chunk, n);
  int rc = pclose(f);
  int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
  if (code == SKIP) {
    buf_free(&out);
    return SKIP;
  }
  CHECK(code == 0, "prometheus_client rejected /metrics (status %d)", code);
  free(s->text);
  s->text = buf_steal(&out, NULL);
  CHECK(s->text, "no samples");
  return 0;
}

double sample(const struct samples *s, const char *key) {
  size_t n = strlen(key);
  for (const char *p = s->text; p && *p;) {
    if (strncmp(p, key, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    p = strchr(p, '\n');
    if (p) p++;
  }
  return NAN;
}

void samples_free(struct samples *s) {
  free(s->text);
  s->text = NULL;
}

void require_parser(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "%s -c 'import prometheus_client.parser' "
           "2>/dev/null", python());
  if (system(cmd) != 0) {
    fprintf(stderr, "skipped: python3-prometheus-client is not installed\n");
    exit(SKIP);
  }
}

double value_in(const char *text, const char *name) {
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  const char *at = strstr(text, key);
  return at ? strtod(at + strlen(key), NULL) : NAN;
}

bool metric_is(void *ud) {
  struct metric_wait *w = ud;
  struct buf body = BUF_INIT;
  bool ok = get_url(w->port, "/metrics", &body) == 200 &&
            value_in(body.data, w->name) == w->want;
  buf_free(&body);
  return ok;
}
