#include "pipeline/host.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "net/child.h"
#include "store/storages.h"

static void on_idle(void *ud) { host_exit_if_idle(ud); }

int host_init(struct host *h, const struct config *cfg,
              const struct host_update_ops *ops, struct buf *err) {
  memset(h, 0, sizeof *h);
  h->cfg = cfg;
  h->update_ops = ops;
  /* Precise timers: libevent otherwise reads CLOCK_MONOTONIC_COARSE, and a
   * tghost.sleep(1) could end a few milliseconds before tghost.now() says
   * a second has passed. */
  struct event_config *ev_cfg = event_config_new();
  if (ev_cfg) event_config_set_flag(ev_cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
  h->base = ev_cfg ? event_base_new_with_config(ev_cfg) : NULL;
  if (ev_cfg) event_config_free(ev_cfg);
  if (!h->base) {
    buf_append_str(err, "cannot create the event loop");
    return -1;
  }
  sched_init(&h->sched, h->base, cfg->cpu_budget_ms);
  h->sched.on_idle = on_idle;
  h->sched.idle_ud = h;
  h->http = http_client_new(h->base, NULL);
  h->poll_http = http_client_new(h->base, NULL);
  if (!h->http || !h->poll_http) {
    buf_append_str(err, "cannot set up libcurl");
    host_free(h);
    return -1;
  }
  struct botapi_config api_cfg = {cfg->api_root, cfg->token, 0, 0};
  h->api = botapi_new(h->http, &api_cfg);
  h->poll_api = botapi_new(h->poll_http, &api_cfg);
  h->calls = apicalls_new(h->api, h->base);
  h->storages = storages_new(h->base);
  return 0;
}

void host_free(struct host *h) {
  /* Close every coroutine first: their waits reference HTTP requests. */
  if (h->base) sched_cancel_all(&h->sched, "cancelled: the process is exiting");
  runner_free(h->runner);
  h->runner = NULL;
  if (h->current) h->current->unref(h->current);
  h->current = NULL;
  if (h->base) sched_free(&h->sched);
  /* Every job has released its processes by now: kill and reap the rest. */
  child_table_free(h->children);
  h->children = NULL;
  /* After the generations, whose Lua code may use a store to the end. */
  storages_free(h->storages);
  h->storages = NULL;
  apicalls_free(h->calls);
  botapi_free(h->api);
  botapi_free(h->poll_api);
  http_client_free(h->http);
  http_client_free(h->poll_http);
  http_client_free(h->stream_http);
  if (h->base) event_base_free(h->base);
  free(h->bot_info_json);
  h->calls = NULL;
  h->api = h->poll_api = NULL;
  h->http = h->poll_http = h->stream_http = NULL;
  h->base = NULL;
  h->bot_info_json = NULL;
}

struct job_owner *host_swap_generation(struct host *h, struct job_owner *g) {
  struct job_owner *old = h->current;
  h->current = g;
  metric_set(METRIC_GENERATION, g ? g->id : 0, NULL, NULL);
  return old;
}

void host_set_loading(struct host *h, bool loading) { h->loading = loading; }

/* --- the runner's callbacks --------------------------------------------- */

static struct job *start_update(void *ud, struct update_item *u,
                                job_end_fn on_end, void *end_ud) {
  struct host *h = ud;
  return h->update_ops->start(h->current, u, on_end, end_ud);
}

static void on_failure(void *ud, struct job *job) {
  struct host *h = ud;
  h->update_ops->report_failure(job);
}

static void on_timeout(void *ud, struct job *job, long timeout_ms) {
  struct host *h = ud;
  h->update_ops->report_timeout(job, timeout_ms);
}

static void on_identity(void *ud, const char *json, size_t len) {
  struct host *h = ud;
  free(h->bot_info_json);
  h->bot_info_json = xstrndup(json, len);
  h->bot_info_len = len;
  struct json_reader at;
  struct json_slice name = {0};
  struct buf username = BUF_INIT;
  if (json_find_member(json, len, "username", &at) &&
      json_read_string(&at, &name))
    json_unescape(&name, &username);
  log_info("running as @%s (generation %d)",
           username.data ? username.data : "?",
           h->current ? h->current->id : 0);
  buf_free(&username);
}

static void on_fatal(void *ud, const char *message) {
  host_fatal(ud, "%s", message);
}

static void on_stopped(void *ud) { host_exit_if_idle(ud); }

void host_start_runner(struct host *h, const struct run_options *o) {
  static const struct runner_callbacks cb = {
      start_update, on_failure, on_timeout, on_identity, on_fatal,
      on_stopped};
  /* --journal wins over run{ journal = ... }. */
  const char *journal = h->cfg->journal ? h->cfg->journal : o->journal;
  /* --webhook (with --listen) wins over run{ webhook = ... }, as a whole. */
  bool cli_webhook = h->cfg->webhook_url != NULL;
  struct runner_env env = {
      .base = h->base,
      .poll_api = h->poll_api,
      .calls_http = h->http,
      .drain_timeout_s = h->cfg->drain_timeout_s,
      .journal_path = journal,
      .bot_id = journal_bot_id_of_token(h->cfg->token),
      .webhook_url = cli_webhook ? h->cfg->webhook_url : o->webhook_url,
      .webhook_listen = cli_webhook ? h->cfg->webhook_listen
                                    : o->webhook_listen,
      .webhook_secret_file = cli_webhook ? h->cfg->webhook_secret_file
                                         : o->webhook_secret_file,
  };
  if (h->cfg->sandbox && env.webhook_url) {
    log_info("--sandbox: run()'s webhook options are ignored; the sandbox's "
             "Bot API is polled");
    env.webhook_url = env.webhook_listen = env.webhook_secret_file = NULL;
  }
  h->runner = runner_new(&env, o, &cb, h);
  runner_start(h->runner);
}

/* --- exits -------------------------------------------------------------- */

void host_fatal(struct host *h, const char *fmt, ...) {
  struct buf msg = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  log_error("%s", msg.data);
  buf_free(&msg);
  if (h->exiting) return;
  h->exit_code = 1;
  h->exiting = true;
  if (h->runner) runner_abort(h->runner);
  sched_cancel_all(&h->sched, "cancelled: fatal error");
  event_base_loopexit(h->base, NULL);
}

void host_set_exit_code(struct host *h, int code) { h->exit_code = code; }

void host_exit(struct host *h, int code) {
  h->exit_code = code;
  h->exiting = true;
  event_base_loopexit(h->base, NULL);
}

void host_exit_if_idle(struct host *h) {
  if (h->exiting || h->loading) return;
  if (h->runner && !runner_finished(h->runner)) return;
  if (h->sched.live_jobs > h->sched.background_jobs) return;
  /* Background tasks of a script that never started the bot are its
   * work: they run until a signal. Once the bot has stopped, they go. */
  if (h->sched.background_jobs > 0 && !h->runner) return;
  h->exiting = true;
  sched_cancel_kind(&h->sched, NULL, JOB_BACKGROUND,
                    "cancelled: the bot stopped");
  event_base_loopexit(h->base, NULL);
}

void host_stop(struct host *h, int sig) {
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
    h->exit_code = 128 + sig;
  }
  h->exiting = true;
  if (h->runner) runner_abort(h->runner);
  sched_cancel_all(&h->sched, "cancelled: the process is exiting");
  event_base_loopbreak(h->base);
}
