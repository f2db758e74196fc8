/* tghost's own HTTP servers (the webhook, /metrics and /healthz) from an
 * end-to-end test: the ports tghost logs, requests through libcurl
 * (net/http.h) on the harness's loop, and /metrics parsed by Python's
 * prometheus_client parser (tests/tools/prom_check.py, stricter than the
 * format needs; the tests that need it are skipped where it is not
 * installed). */
#ifndef TGHOST_TESTS_PROBE_H
#define TGHOST_TESTS_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

struct proc;

/* What tghost logs before the port it listens on. */
#define WEBHOOK_MARK "webhook: listening on 127.0.0.1"
#define METRICS_MARK "/healthz on http://127.0.0.1"

/* The port in p's first stderr line containing marker; fails the test if
 * none shows within 20 s. */
int wait_port(struct proc *p, const char *marker);

/* The libcurl client the requests share (made on first use). */
struct http_client *curl_client(void);
/* One request through libcurl; returns the status (-1: no answer) and the
 * body in *body if given. */
long curl_request(const char *method, const char *url,
                  const char *const *headers, const char *data, size_t len,
                  struct buf *body);
/* GET http://127.0.0.1:port/path. */
long get_url(int port, const char *path, struct buf *body);

/* For run_until: /healthz answers want (its body in body). */
struct health_wait {
  int port;
  long want;
  struct buf body;
};
bool health_is(void *ud);

/* /metrics as prometheus_client parsed it. */
struct samples {
  char *text;                     /* prom_check.py's output */
};

/* Skips the test (exit 77) when Python's parser is missing (CI installs
 * it). */
void require_parser(void);
/* Scrapes /metrics and parses it; returns 77 if the parser is not
 * installed, 0 when the output is valid (and fails the test otherwise). */
int scrape(int port, struct samples *s);
/* The value of a sample as prom_check.py printed it ("name{a=\"x\"}"), or
 * NAN when there is none. */
double sample(const struct samples *s, const char *key);
void samples_free(struct samples *s);

/* The value of an unlabelled sample in a /metrics text, or NAN. */
double value_in(const char *text, const char *name);
/* For run_until: the unlabelled sample `name` on /metrics equals want. */
struct metric_wait {
  int port;
  const char *name;
  double want;
};
bool metric_is(void *ud);

#endif
