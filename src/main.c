/* tghost: runs a Telegram bot written in Lua. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "cli.h"
#include "generation.h"
#include "host.h"
#include "log.h"
#include "looplag.h"
#include "luaseq.h"
#include "reload.h"
#include "runtime.h"

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
  host_set_loading(h, false);
  if (h->exiting) return;
  if (error) {
    report_load_error(g->script_path, error);
    host_exit(h, 1);
    return;
  }
  if (h->cfg->check) {
    if (g->run_called)
      printf("tghost: %s loads without errors and calls run()\n",
             g->script_path);
    else
      printf("tghost: %s loads without errors; it does not call run(bot) or "
             "bot.start()%s\n", g->script_path,
             runtime_has_handlers(g) ? ", so its handlers would never "
                                       "receive an update" : "");
    host_exit(h, 0);
    return;
  }
  if (!g->run_called) {
    /* A script without run() is a plain Lua program (the unit tests are);
     * one that registered handlers most likely forgot it. */
    if (runtime_has_handlers(g))
      log_warn("%s registered handlers but never called run(bot) or "
               "bot.start(), so no update is received; add run(bot) at the "
               "end of the script", g->script_path);
    host_exit_if_idle(h);
    return;
  }
  if (!botapi_has_token(h->api)) {
    host_fatal(h, "no bot token: set BOT_TOKEN in the environment or pass "
                  "--token-file FILE");
    return;
  }
  host_start_runner(h, &g->run_opts);
  if (h->reloader) reload_start(h->reloader);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  host_stop(arg, (int)sig);
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
  if (host_init(&h, &cfg, &runtime_update_ops, &err) != 0) {
    fprintf(stderr, "tghost: %s\n", err.data);
    host_free(&h);
    curl_global_cleanup();
    buf_free(&err);
    cli_free(&cfg);
    return 1;
  }
  h.seq = luaseq_new(&h);
  /* Before the first load: SIGHUP must never kill the process. */
  if (!cfg.check) h.reloader = reload_new(&h);
  struct looplag *lag = cfg.check ? NULL : looplag_new(h.base, cfg.cpu_budget_ms);

  struct generation *first = runtime_new_generation(&h, cfg.script, &err);
  if (first) {
    host_swap_generation(&h, &first->owner);
    host_set_loading(&h, true);
    if (runtime_load_script(first, on_loaded, &h, &err) != 0)
      host_set_loading(&h, false);
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
   * requests and sequentialize's keys), then what is attached to the host,
   * then the host. */
  sched_cancel_all(&h.sched, "cancelled: the process is exiting");
  reload_free(h.reloader);
  looplag_free(lag);
  luaseq_free(h.seq);
  int exit_code = h.exit_code;
  host_free(&h);
  curl_global_cleanup();
  buf_free(&err);
  cli_free(&cfg);
  log_clear_secrets();
  return exit_code;
}
