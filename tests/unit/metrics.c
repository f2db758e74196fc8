/* The metric registry (src/metrics.c) and the health rule
 * (src/metrics_http.c) on their own: the text format line by line, label
 * values bounded and escaped, histograms cumulative, state sets, info
 * metrics, and each branch of the health rule. (The e2e test
 * e2e_metrics.metrics_parse runs the whole output of a running tghost through
 * Python's prometheus_client parser.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testreg.h"
#include "base/metrics.h"
#include "net/metrics_http.h"

static char *render(void) {
  struct buf out = BUF_INIT;
  metrics_render(&out);
  return buf_steal(&out, NULL);
}

/* The value of the sample line that starts with prefix followed by ' ',
 * or NAN. */
static double sample(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
    if (strncmp(p, prefix, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
  }
  return NAN;
}

static size_t count_lines(const char *text, const char *prefix) {
  size_t k = 0, n = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, prefix, n) == 0) k++;
  return k;
}

/* Every line is a HELP, a TYPE or a sample of the family last typed. */
static void check_format(const char *text) {
  char family[128] = "";
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    CHECK(nl, "the output must end with a newline");
    size_t len = (size_t)(nl - p);
    char line[1024];
    CHECK(len < sizeof line, "a line of %zu bytes", len);
    memcpy(line, p, len);
    line[len] = '\0';
    if (strncmp(line, "# HELP ", 7) == 0) {
      sscanf(line + 7, "%127s", family);
      CHECK(strncmp(family, "tghost_", 7) == 0, "unprefixed: %s", line);
    } else if (strncmp(line, "# TYPE ", 7) == 0) {
      char name[128], type[32];
      CHECK(sscanf(line + 7, "%127s %31s", name, type) == 2, "%s", line);
      CHECK(strcmp(name, family) == 0, "TYPE %s after HELP %s", name, family);
      bool counter = strcmp(type, "counter") == 0;
      size_t nl2 = strlen(name);
      bool total = nl2 > 6 && strcmp(name + nl2 - 6, "_total") == 0;
      CHECK(counter == total, "%s: counters and only counters end in _total",
            name);
      CHECK(counter || strcmp(type, "gauge") == 0 ||
                strcmp(type, "histogram") == 0, "type %s", type);
    } else {
      CHECK(strncmp(line, family, strlen(family)) == 0,
            "sample outside its family %s: %s", family, line);
      const char *space = strrchr(line, ' ');
      CHECK(space, "no value: %s", line);
      char *end;
      strtod(space + 1, &end);
      CHECK(*end == '\0' || strcmp(space + 1, "+Inf") == 0, "bad value: %s",
            line);
    }
    p = nl + 1;
  }
}

static void test_format_and_counters(void) {
  metrics_reset();
  metric_inc(METRIC_UPDATES_RECEIVED, "webhook", NULL);
  metric_add(METRIC_UPDATES_RECEIVED, 41, "webhook", NULL);
  metric_add(METRIC_UPDATES_RECEIVED, -5, "webhook", NULL);   /* ignored */
  metric_set(METRIC_UPDATES_IN_FLIGHT, 7, NULL, NULL);
  metric_inc(METRIC_API_CALLS, "sendMessage", "ok");
  char *text = render();
  check_format(text);
  CHECK(sample(text, "tghost_updates_received_total{source=\"webhook\"}") == 42,
        "received: %s", text);
  CHECK(sample(text, "tghost_updates_received_total{source=\"polling\"}") == 0,
        "known label values are shown from the start");
  CHECK(sample(text, "tghost_updates_in_flight") == 7, "in flight");
  CHECK(sample(text, "tghost_api_calls_total{method=\"sendMessage\","
                     "outcome=\"ok\"}") == 1, "api calls: %s", text);
  CHECK(metric_value(METRIC_UPDATES_RECEIVED, "webhook", NULL) == 42, "value");
  for (int id = 0; id < METRIC_COUNT; id++) {
    char help[160];
    snprintf(help, sizeof help, "# HELP %s ", metric_name((enum metric_id)id));
    CHECK(count_lines(text, help) == 1, "HELP of %s",
          metric_name((enum metric_id)id));
  }
  free(text);
}

static void test_bounded_labels(void) {
  metrics_reset();
  /* 100 made-up methods, each called 3 times: the first METRIC_MAX_VALUES
   * keep their name, the rest are "other"; nothing is lost. */
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 100; i++) {
      char method[32];
      snprintf(method, sizeof method, "madeUpMethod%d", i);
      metric_inc(METRIC_API_CALLS, method, "error");
    }
  metric_inc(METRIC_API_CALLS, "has space", "ok");
  metric_inc(METRIC_API_CALLS, "quote\"d", "ok");
  metric_inc(METRIC_API_CALLS, "", "ok");
  char long_name[100];
  memset(long_name, 'a', 70);
  long_name[70] = '\0';
  metric_inc(METRIC_API_CALLS, long_name, "ok");
  metric_inc(METRIC_API_CALLS, "sendMessage", "strange outcome!");
  char *text = render();
  check_format(text);
  size_t series = count_lines(text, "tghost_api_calls_total{");
  CHECK(series <= METRIC_MAX_VALUES + 3, "%zu series for %d values", series,
        METRIC_MAX_VALUES);
  double total = 0;
  for (const char *p = strstr(text, "tghost_api_calls_total{"); p;
       p = strstr(p + 1, "tghost_api_calls_total{"))
    total += strtod(strchr(p, ' ') + 1, NULL);
  CHECK(total == 305, "every call is counted once: %g", total);
  CHECK(sample(text, "tghost_api_calls_total{method=\"madeUpMethod0\","
                     "outcome=\"error\"}") == 3, "the first values keep "
        "their name");
  CHECK(sample(text, "tghost_api_calls_total{method=\"other\","
                     "outcome=\"error\"}") ==
            3.0 * (100 - (METRIC_MAX_VALUES - 0)),
        "past the bound: other (%s)", text);
  CHECK(sample(text, "tghost_api_calls_total{method=\"other\","
                     "outcome=\"ok\"}") == 4, "odd values are other");
  CHECK(!strstr(text, "has space") && !strstr(text, "quote"),
        "odd values never reach the output");
  free(text);
}

static void test_histogram(void) {
  metrics_reset();
  double values[] = {0.001, 0.005, 0.3, 100, 1000};
  for (int i = 0; i < 5; i++)
    metric_observe(METRIC_HANDLER_DURATION, values[i], NULL, NULL);
  metric_observe(METRIC_API_CALL_DURATION, 0.02, "getChat", NULL);
  char *text = render();
  check_format(text);
  const char *h = "tghost_handler_duration_seconds_bucket";
  char key[128];
  snprintf(key, sizeof key, "%s{le=\"0.005\"}", h);
  CHECK(sample(text, key) == 2, "le is inclusive: %s", text);
  snprintf(key, sizeof key, "%s{le=\"0.5\"}", h);
  CHECK(sample(text, key) == 3, "cumulative");
  snprintf(key, sizeof key, "%s{le=\"300\"}", h);
  CHECK(sample(text, key) == 4, "cumulative");
  snprintf(key, sizeof key, "%s{le=\"+Inf\"}", h);
  CHECK(sample(text, key) == 5, "+Inf holds everything");
  CHECK(sample(text, "tghost_handler_duration_seconds_count") == 5, "count");
  CHECK(fabs(sample(text, "tghost_handler_duration_seconds_sum") - 1100.306) <
            1e-9, "sum");
  CHECK(sample(text, "tghost_api_call_duration_seconds_bucket{method="
                     "\"getChat\",le=\"0.025\"}") == 1, "labels before le");
  /* Buckets never decrease. */
  double last = -1;
  for (const char *p = strstr(text, h); p; p = strstr(p + 1, h)) {
    double v = strtod(strchr(p, ' ') + 1, NULL);
    CHECK(v >= last, "a bucket decreased");
    last = v;
  }
  free(text);
}

static void test_info_and_state(void) {
  metrics_reset();
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_POLLING);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_FAILING);
  CHECK(strcmp(metric_state(METRIC_SOURCE_STATE), "failing") == 0, "state");
  metric_set_info(METRIC_SOURCE_LAST_ERROR, "network",
                  "a \"quoted\" back\\slash\nsecond line");
  metric_set_info(METRIC_SOURCE_LAST_ERROR, "network",
                  "Could not \"connect\" \\ here\nsecond line");
  char *text = render();
  check_format(text);
  CHECK(sample(text, "tghost_source_state{state=\"failing\"}") == 1, "on");
  CHECK(sample(text, "tghost_source_state{state=\"polling\"}") == 0, "off");
  CHECK(count_lines(text, "tghost_source_last_error_info{") == 1,
        "an info metric has one series");
  CHECK(sample(text, "tghost_source_last_error_info{kind=\"network\","
                     "message=\"Could not \\\"connect\\\" \\\\ here\"}") == 1,
        "escaped, cut at the line's end: %s", text);
  char big[400];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  metric_set_info(METRIC_SOURCE_LAST_ERROR, "fatal", big);
  CHECK(strlen(metric_info_text(METRIC_SOURCE_LAST_ERROR)) == 160, "cut");
  free(text);
}

static void test_health(void) {
  metrics_reset();
  struct buf why = BUF_INIT;
  CHECK(!metrics_health(1000, 60, &why), "no state yet: starting");
  buf_reset(&why);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STARTING);
  CHECK(!metrics_health(1000, 60, &why) && strstr(why.data, "starting"), "%s",
        why.data);
  buf_reset(&why);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_POLLING);
  CHECK(metrics_health(1000, 60, &why), "polling: %s", why.data);
  buf_reset(&why);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_WEBHOOK);
  CHECK(metrics_health(1000, 60, &why), "webhook: %s", why.data);
  buf_reset(&why);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_FAILING);
  metric_set(METRIC_SOURCE_FAILING_SINCE, 1000, NULL, NULL);
  metric_set_info(METRIC_SOURCE_LAST_ERROR, "network", "connection refused");
  CHECK(metrics_health(1059, 60, &why), "a blip is not an outage: %s",
        why.data);
  buf_reset(&why);
  CHECK(!metrics_health(1060, 60, &why), "failing past the grace period");
  CHECK(strstr(why.data, "failing for 60 s") &&
            strstr(why.data, "connection refused"),
        "the reason says for how long and why: %s", why.data);
  buf_reset(&why);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STOPPING);
  CHECK(!metrics_health(1000, 60, &why) && strstr(why.data, "stopping"), "%s",
        why.data);
  buf_reset(&why);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STOPPED);
  CHECK(!metrics_health(1000, 60, &why) && strstr(why.data, "stopped"), "%s",
        why.data);
  buf_free(&why);
}

TEST(registry) {
  test_format_and_counters();
  test_bounded_labels();
  test_histogram();
  test_info_and_state();
  test_health();
  metrics_reset();
  printf("metrics: ok\n");
}
