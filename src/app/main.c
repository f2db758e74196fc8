/* tghost: runs a Telegram bot written in Lua. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "base/cli.h"
#include "script/generation.h"
#include "app/host.h"
#include "cluster/cluster.h"
#include "pipeline/journal.h"
#include "base/log.h"
#include "net/botapi_methods.h"
#include "net/looplag.h"
#include "script/luajobs.h"
#include "base/metrics.h"
#include "net/metrics_http.h"
#include "app/bindenv.h"
#include "app/reload.h"
#include "script/runtime.h"
#include "base/signals.h"
#include "sandbox/sandbox_chat.h"

/* Each HTTP/1.1 request in flight holds a socket: thousands of updates in
 * flight need more descriptors than the usual soft limit of 1024. */
static void raise_file_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    log_debug("could not raise the open-files limit");
}

/* unsetenv only drops environ's pointer: the text stays in the process's
 * first environment block, which /proc/PID/environ shows (to anyone
 * running as the same user, a child reading its parent's included), so
 * the token's bytes are overwritten there first. */
static void forget_token_environment(void) {
  extern char **environ;
  static const char name[] = "BOT_TOKEN=";
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, name, sizeof name - 1) == 0) {
      char *value = *e + sizeof name - 1;
      memset(value, 0, strlen(value));
    }
  unsetenv("BOT_TOKEN");
}

/* Prints a failure as one line (the first of a traceback); the rest only
 * at debug level. */
static void report_load_error(const struct config *cfg, const char *error) {
  const char *nl = strchr(error, '\n');
  int first = nl ? (int)(nl - error) : (int)strlen(error);
  char *line = log_redacted_copy(error, (size_t)first);
  /* A JSON log stays JSON: the one line becomes an error record. */
  if (cfg->log_format == LOG_FORMAT_JSON) {
    log_error("%s", line);
  } else {
    log_screen_before(true);
    fprintf(stderr, "tghost: %s\n", line);
    log_screen_after(true);
  }
  free(line);
  if (nl && log_enabled(LOG_DEBUG)) log_debug("%s", error);
}

/* What main() runs: the host, the bindings' view of it, hot reload. */
struct app {
  struct host host;
  struct script_env env;        /* app/bindenv.c's */
  struct reloader *reloader;    /* NULL with --check */
};

static void on_loaded(struct generation *g, const char *error, void *ud) {
  struct app *app = ud;
  struct host *h = &app->host;
  host_set_loading(h, false);
  if (h->exiting) return;
  if (error) {
    report_load_error(h->cfg, error);
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
     * one that registered handlers most likely forgot it. A transcript
     * needs a bot: without one it fails rather than pass unchecked. */
    const char *why = g->run_stopped
                          ? "stops the bot before it starts (its run() "
                            "handle's stop() at the top level)"
                          : "does not call run(bot) or bot.start()";
    if (h->cfg->sandbox_script) {
      fprintf(stderr, "tghost: %s never starts the bot: it %s, so the "
              "transcript %s has nothing to talk to\n", g->script_path, why,
              h->cfg->sandbox_script);
      host_exit(h, 1);
      return;
    }
    if (h->cfg->sandbox)
      log_warn("%s %s: there is no bot to talk to", g->script_path, why);
    else if (g->run_stopped)
      log_warn("%s %s, so no update is received", g->script_path, why);
    else if (runtime_has_handlers(g))
      log_warn("%s registered handlers but never called run(bot) or "
               "bot.start(), so no update is received; add run(bot) at the "
               "end of the script", g->script_path);
    host_exit_if_idle(h);
    return;
  }
  if (!botapi_has_token(h->api)) {
    host_fatal(h, "no bot token: set BOT_TOKEN in the environment or pass "
                  "--token-file FILE (or try the bot without one: tghost "
                  "--sandbox %s)", g->script_path);
    return;
  }
  host_start_runner(h, g->run_opts);
  if (h->exiting) return;
  luajobs_go_live(g);
  if (app->reloader) reload_start(app->reloader);
}

/* The sandbox's Ctrl-D, :quit, or the end of its transcript: the same
 * graceful stop as a first SIGINT; the process then exits with the
 * sandbox's status (sandbox_exit_status) unless something worse happened. */
static void on_sandbox_quit(void *ud, int status) {
  struct host *h = ud;
  if (h->runner && !runner_finished(h->runner)) runner_stop(h->runner, NULL);
  else host_exit(h, h->exit_code);
}

/* The sandbox's :wait moves the jobs' clock (one move at a time: a
 * transcript waits for each, and a typed :wait during one restarts it). */
static struct clock_move {
  struct host *h;
  void (*done)(void *arg, int64_t now_ms);
  void *arg;
} clock_move;

static void on_clock_moved(void *ud) {
  struct clock_move *m = ud;
  m->done(m->arg, jobsched_now_ms(m->h->jobs));
}

static void on_sandbox_wait(void *ud, int64_t ms,
                            void (*done)(void *arg, int64_t now_ms),
                            void *arg) {
  struct host *h = ud;
  clock_move = (struct clock_move){h, done, arg};
  jobsched_advance(h->jobs, ms, on_clock_moved, &clock_move);
}

static void on_update_unhandled(void *ud, int64_t update_id,
                                const char *type) {
  sandbox_update_unhandled(ud, update_id, type);
}

static void on_signal(int sig, int count, void *ud) { host_stop(ud, sig); }

static unsigned long guard_stops(void *ud) {
  return cpuguard_stop_count(&((struct host *)ud)->sched.guard);
}

int main(int argc, char **argv) {
  struct config cfg;
  struct buf err = BUF_INIT;
  cli_set_botapi_version(botapi_version);
  switch (cli_parse(argc, argv, &cfg, &err)) {
    case CLI_EXIT_OK:
      cli_free(&cfg);
      return 0;
    case CLI_ERROR:
      if (cfg.log_format == LOG_FORMAT_JSON) {
        log_set_format(LOG_FORMAT_JSON);
        log_error("%s", err.data);
      } else {
        fprintf(stderr, "tghost: %s\n", err.data);
      }
      buf_free(&err);
      cli_free(&cfg);
      return 2;
    case CLI_RUN:
      break;
  }
  if (cfg.dead_letters) {
    int n;
    if (cfg.cluster_url) {
      int64_t bot_id = journal_bot_id_of_token(cfg.token);
      if (bot_id < 0) {
        buf_append_str(&err, "--cluster --dead-letters needs the bot's token "
                             "(BOT_TOKEN or --token-file): its id names the "
                             "cluster's keys");
        n = -1;
      } else {
        n = cluster_list_dead_letters(cfg.cluster_url, bot_id, stdout, &err);
      }
    } else {
      n = journal_list_dead_letters(cfg.journal, stdout, &err);
    }
    if (n < 0) fprintf(stderr, "tghost: %s\n", err.data);
    buf_free(&err);
    cli_free(&cfg);
    return n < 0 ? 1 : 0;
  }
  log_set_level(cfg.log_level);
  log_set_format(cfg.log_format);
  log_set_trace(cfg.trace);
  if (cfg.token) log_add_secret(cfg.token);
  /* --sandbox: points cfg at the emulated Bot API before anything uses it. */
  struct sandbox *sandbox = NULL;
  if (cfg.sandbox && !(sandbox = sandbox_new(&cfg, &err))) {
    fprintf(stderr, "tghost: %s\n", err.data);
    buf_free(&err);
    cli_free(&cfg);
    log_clear_secrets();
    return 1;
  }
  /* Children of os.execute and io.popen, and os.getenv, never see it;
   * a script that needs it asks tghost.token(). */
  forget_token_environment();
  signal(SIGPIPE, SIG_IGN);
  /* A file size limit makes a write fail (EFBIG): reported, not fatal. */
  signal(SIGXFSZ, SIG_IGN);
  raise_file_limit();

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "tghost: cannot initialise libcurl\n");
    sandbox_free(sandbox);
    return 1;
  }
  struct app app = {0};
  struct host *h = &app.host;
  if (host_init(h, &cfg, &runtime_update_ops, &err) != 0) {
    fprintf(stderr, "tghost: %s\n", err.data);
    sandbox_free(sandbox);
    host_free(h);
    curl_global_cleanup();
    buf_free(&err);
    cli_free(&cfg);
    return 1;
  }
  /* As early as there is a loop: a signal during start-up is heard once
   * the loop runs, instead of killing the process. */
  host_init_jobs(h, &runtime_job_ops);
  struct signals *sig = signals_new(h->base, on_signal, h);
  bindenv_init(&app.env, h, sandbox ? on_update_unhandled : NULL, sandbox);
  gen_set_memory_limits((size_t)cfg.memory_limit_mb << 20,
                        (size_t)cfg.update_memory_limit_mb << 20);
  static const struct sandbox_hooks sandbox_hooks = {on_sandbox_quit,
                                                     on_sandbox_wait};
  bool start_failed =
      sandbox && sandbox_start(sandbox, h->base, &sandbox_hooks, h, &err) != 0;
  /* Before the first load: SIGHUP must never kill the process. */
  if (!cfg.check) app.reloader = reload_new(h, &app.env);
  struct looplag *lag =
      cfg.check ? NULL
                : looplag_new(h->base, cfg.cpu_budget_ms, guard_stops, h);
  metric_set(METRIC_START_TIME, (double)time(NULL), NULL, NULL);
  metric_set_info(METRIC_BUILD_INFO, TGHOST_VERSION, NULL);
  struct metrics_server *metrics = NULL;
  if (cfg.metrics_addr && !cfg.check && !start_failed &&
      !(metrics = metrics_server_new(h->base, cfg.metrics_addr, &err)))
    start_failed = true;

  struct generation *first =
      start_failed ? NULL : runtime_new_generation(&app.env, cfg.script, &err);
  if (first) {
    host_swap_generation(h, &first->owner);
    host_set_loading(h, true);
    if (runtime_load_script(first, on_loaded, &app, &err) != 0)
      host_set_loading(h, false);
  }
  if (!h->loading) {
    if (start_failed) fprintf(stderr, "tghost: %s\n", err.data);
    else report_load_error(&cfg, err.data);
    host_set_exit_code(h, 1);
  } else {
    event_base_dispatch(h->base);
  }

  signals_free(sig);
  /* Teardown: close every coroutine first (their waits reference HTTP
   * requests, sequentialize's keys and conversations), then what is built
   * on the host, then the host. */
  sched_cancel_all(&h->sched, "cancelled: the process is exiting");
  reload_free(app.reloader);
  looplag_free(lag);
  metrics_server_free(metrics);
  bindenv_free(&app.env);
  int exit_code = h->exit_code ? h->exit_code
                 : sandbox     ? sandbox_exit_status(sandbox)
                               : 0;
  sandbox_free(sandbox);
  host_free(h);
  curl_global_cleanup();
  buf_free(&err);
  cli_free(&cfg);
  log_clear_secrets();
  metrics_reset();
  return exit_code;
}
