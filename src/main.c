/* tghost: runs a Telegram bot written in Lua. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "apicall.h"
#include "botapi.h"
#include "cli.h"
#include "generation.h"
#include "host.h"
#include "http.h"
#include "log.h"
#include "runner.h"

static void on_idle(void *ud) { host_exit_if_idle(ud); }

/* Prints a failure as one line (the first of a traceback); the rest only
 * at debug level. */
static void report_load_error(const char *script, const char *error) {
  const char *nl = strchr(error, '\n');
  int first = nl ? (int)(nl - error) : (int)strlen(error);
  char *line = log_redacted_copy(error, (size_t)first);
  fprintf(stderr, "tghost: %s\n", line);
  free(line);
  if (nl && log_enabled(LOG_DEBUG)) log_debug("%s", error);
  (void)script;
}

static void on_loaded(struct generation *g, const char *error, void *ud) {
  struct host *h = ud;
  h->loading = false;
  if (h->exiting) return;
  if (error) {
    report_load_error(g->script_path, error);
    h->exit_code = 1;
    h->exiting = true;
    event_base_loopexit(h->base, NULL);
    return;
  }
  if (h->cfg->check) {
    printf("tghost: %s loads without errors%s\n", g->script_path,
           g->run_called ? " and calls run()" : "");
    h->exiting = true;
    event_base_loopexit(h->base, NULL);
    return;
  }
  if (!g->run_called) {
    host_exit_if_idle(h);
    return;
  }
  if (!botapi_has_token(h->api)) {
    host_fatal(h, "no bot token: set BOT_TOKEN in the environment or pass "
                  "--token-file FILE");
    return;
  }
  h->runner = runner_new(h, &g->run_opts);
  runner_start(h->runner);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  struct host *h = arg;
  static int seen;
  if (++seen > 1 || !h->runner || !runner_is_running(h->runner)) {
    if (seen > 1) log_warn("second signal: cancelling everything and exiting");
    if (h->runner) runner_abort(h->runner);
    sched_cancel_all(&h->sched, "cancelled: the process is exiting");
    if (seen > 1) h->exit_code = 128 + (int)sig;
    h->exiting = true;
    event_base_loopbreak(h->base);
    return;
  }
  log_info("received %s: stopping gracefully (send it again to exit at once)",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
  runner_stop(h->runner, NULL);
}

int main(int argc, char **argv) {
  struct config cfg;
  struct buf err = BUF_INIT;
  switch (cli_parse(argc, argv, &cfg, &err)) {
    case CLI_EXIT_OK:
      return 0;
    case CLI_ERROR:
      fprintf(stderr, "tghost: %s\n", err.data);
      buf_free(&err);
      cli_free(&cfg);
      return 2;
    case CLI_RUN:
      break;
  }
  log_set_level(cfg.log_level);
  log_set_format(cfg.log_format);
  if (cfg.token) log_add_secret(cfg.token);
  signal(SIGPIPE, SIG_IGN);

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "tghost: cannot initialise libcurl\n");
    return 1;
  }
  struct host h;
  memset(&h, 0, sizeof h);
  h.cfg = &cfg;
  h.base = event_base_new();
  sched_init(&h.sched, h.base, cfg.cpu_budget_ms);
  h.sched.on_idle = on_idle;
  h.sched.idle_ud = &h;
  h.http = http_client_new(h.base, NULL);
  h.poll_http = http_client_new(h.base, NULL);
  struct botapi_config api_cfg = {cfg.api_root, cfg.token, 0, 0};
  h.api = botapi_new(h.http, &api_cfg);
  h.poll_api = botapi_new(h.poll_http, &api_cfg);
  h.calls = apicalls_new(h.api, h.base);

  h.current = gen_new(&h, cfg.script, &err);
  if (h.current) {
    h.loading = true;
    if (gen_load(h.current, on_loaded, &h, &err) != 0) h.loading = false;
  }
  if (!h.loading) {
    report_load_error(cfg.script, err.data);
    h.exit_code = 1;
  } else {
    struct event *sigint = evsignal_new(h.base, SIGINT, on_signal, &h);
    struct event *sigterm = evsignal_new(h.base, SIGTERM, on_signal, &h);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    event_base_dispatch(h.base);
    event_free(sigint);
    event_free(sigterm);
  }

  /* Teardown: close every coroutine first (their waits reference HTTP
   * requests), then the rest. */
  sched_cancel_all(&h.sched, "cancelled: the process is exiting");
  runner_free(h.runner);
  if (h.current) gen_unref(h.current);
  sched_free(&h.sched);
  apicalls_free(h.calls);
  botapi_free(h.api);
  botapi_free(h.poll_api);
  http_client_free(h.http);
  http_client_free(h.poll_http);
  event_base_free(h.base);
  curl_global_cleanup();
  free(h.bot_info_json);
  buf_free(&err);
  cli_free(&cfg);
  log_clear_secrets();
  return h.exit_code;
}
