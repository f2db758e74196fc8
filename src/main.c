/* tghost: runs a Telegram bot written in Lua. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
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
#include "reload.h"
#include "luaseq.h"
#include "runner.h"
#include "storages.h"

static void on_idle(void *ud) { host_exit_if_idle(ud); }

/* Each HTTP/1.1 request in flight holds a socket: thousands of updates in
 * flight need more descriptors than the usual soft limit of 1024. */
static void raise_file_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    log_debug("could not raise the open-files limit");
}

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
  if (h->reloader) reload_start(h->reloader);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  struct host *h = arg;
  static int seen;
  const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
  if (++seen == 1 && h->runner && !runner_finished(h->runner)) {
    log_info("received %s: stopping gracefully (send it again to exit at "
             "once)", name);
    runner_stop(h->runner, NULL);
    return;
  }
  /* No runner to drain (the script is still loading, or never called
   * run()), or a second signal: cancel everything now. */
  if (seen > 1) {
    log_warn("second signal: cancelling everything and exiting");
    h->exit_code = 128 + (int)sig;
  }
  h->exiting = true;
  if (h->runner) runner_abort(h->runner);
  sched_cancel_all(&h->sched, "cancelled: the process is exiting");
  event_base_loopbreak(h->base);
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
  raise_file_limit();

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "tghost: cannot initialise libcurl\n");
    return 1;
  }
  struct host h;
  memset(&h, 0, sizeof h);
  h.cfg = &cfg;
  /* Precise timers: libevent otherwise reads CLOCK_MONOTONIC_COARSE, and a
   * tghost.sleep(1) could end a few milliseconds before tghost.now() says
   * a second has passed. */
  struct event_config *ev_cfg = event_config_new();
  event_config_set_flag(ev_cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
  h.base = event_base_new_with_config(ev_cfg);
  event_config_free(ev_cfg);
  sched_init(&h.sched, h.base, cfg.cpu_budget_ms);
  h.sched.on_idle = on_idle;
  h.sched.idle_ud = &h;
  h.seq = luaseq_new(&h);
  h.storages = storages_new(h.base);
  h.http = http_client_new(h.base, NULL);
  h.poll_http = http_client_new(h.base, NULL);
  struct botapi_config api_cfg = {cfg.api_root, cfg.token, 0, 0};
  h.api = botapi_new(h.http, &api_cfg);
  h.poll_api = botapi_new(h.poll_http, &api_cfg);
  h.calls = apicalls_new(h.api, h.base);
  /* Before the first load: SIGHUP must never kill the process. */
  if (!cfg.check) h.reloader = reload_new(&h);

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
  reload_free(h.reloader);
  luaseq_free(h.seq);
  runner_free(h.runner);
  if (h.current) gen_unref(h.current);
  sched_free(&h.sched);
  storages_free(h.storages);
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
