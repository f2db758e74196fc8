#include "app/host.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/child.h"
#include "net/retry.h"
#include "cluster/cluster.h"
#include "pipeline/feed.h"
#include "pipeline/journal.h"
#include "pipeline/polling.h"
#include "pipeline/webhook.h"
#include "store/storages.h"

/* The update sources the host picks from, by the run options: the first
 * that wants them. Adding a source is one line here (and its module). */
static const struct update_source_entry *const sources[] = {
    &cluster_source_entry,   /* wraps polling or the webhook itself */
    &feed_source_entry,
    &webhook_source_entry,
    &polling_source_entry,   /* the default: always wanted */
};

static void on_idle(void *ud) { host_exit_if_idle(ud); }

static bool jobs_accepting(void *ud) {
  struct host *h = ud;
  return h->runner && runner_is_running(h->runner) && !h->exiting;
}

void host_init_jobs(struct host *h, const struct jobsched_ops *ops) {
  struct jobsched_env env = {h->base, ops, jobs_accepting, on_idle, h};
  h->jobs = jobsched_new(&env);
}

static void getme_free(struct getme *g);

int host_init(struct host *h, const struct config *cfg,
              const struct update_ops *ops, struct buf *err) {
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
  /* Two priorities, before any event exists: everything runs at 1; 0 is
   * for what must run before any other event of a loop turn (a cluster's
   * lease deadline, src/cluster/cluster.h). */
  event_base_priority_init(h->base, 2);
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
  getme_free(h->getme);
  h->getme = NULL;
  runner_free(h->runner);
  h->runner = NULL;
  feed_shutdown();
  /* Its runs were cancelled above; their last writes go with the store. */
  jobsched_free(h->jobs);
  h->jobs = NULL;
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
  /* The clients first: requests still in flight borrow the APIs' URLs. */
  http_client_free(h->http);
  http_client_free(h->poll_http);
  http_client_free(h->stream_http);
  botapi_free(h->api);
  botapi_free(h->poll_api);
  if (h->base) event_base_free(h->base);
  free(h->bot_info_json);
  h->calls = NULL;
  h->api = h->poll_api = NULL;
  h->http = h->poll_http = h->stream_http = NULL;
  h->base = NULL;
  h->bot_info_json = NULL;
}

struct http_client *host_stream_http(struct host *h) {
  if (!h->stream_http) h->stream_http = http_client_new(h->base, NULL);
  return h->stream_http;
}

struct child_table *host_children(struct host *h) {
  if (!h->children) h->children = child_table_new(h->base);
  return h->children;
}

struct job_owner *host_swap_generation(struct host *h, struct job_owner *g) {
  struct job_owner *old = h->current;
  h->current = g;
  if (h->runner) runner_set_generation(h->runner, g);
  if (h->jobs) jobsched_set_generation(h->jobs, g);
  metric_set(METRIC_GENERATION, g ? g->id : 0, NULL, NULL);
  return old;
}

void host_set_loading(struct host *h, bool loading) { h->loading = loading; }

/* --- the bot's identity (getMe) ---------------------------------------- */

struct getme {
  struct host *h;
  struct http_request *req;
  struct event *retry_timer;
  struct retry_policy policy;
  struct retry_burst burst;
};

static void getme_free(struct getme *g) {
  if (!g) return;
  if (g->req) http_request_cancel(g->req);
  event_free(g->retry_timer);
  free(g);
}

static void on_identity(struct host *h, const char *json, size_t len) {
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

static void send_getme(struct getme *g);

static void getme_failed(struct getme *g, const struct botapi_reply *reply) {
  struct buf msg = BUF_INIT;
  long delay = retry_after_failure(&g->burst, &g->policy, "getMe", reply,
                                   botapi_api_root(g->h->poll_api), &msg);
  if (delay < 0) {
    host_fatal(g->h, "%s", msg.data);
  } else {
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(g->retry_timer, &tv);
  }
  buf_free(&msg);
}

static void on_getme(struct http_request *req, void *ud) {
  struct getme *g = ud;
  struct host *h = g->h;
  g->req = NULL;
  struct botapi_reply reply;
  botapi_parse_reply(req, &reply);
  if (reply.outcome == BOTAPI_OK) {
    retry_succeeded(&g->burst, &g->policy, "getMe");
    on_identity(h, reply.result.ptr, reply.result.len);
    h->getme = NULL;
    getme_free(g);
    runner_run(h->runner);
  } else {
    getme_failed(g, &reply);
  }
  botapi_reply_free(&reply);
  http_request_free(req);
}

static void send_getme(struct getme *g) {
  struct buf err = BUF_INIT;
  char *body = xstrdup("{}");
  struct http_request *req =
      botapi_request_json(g->h->poll_api, "getMe", body, 2, &err);
  if (!req) {
    host_fatal(g->h, "%s", err.data);
    buf_free(&err);
    return;
  }
  http_request_set_timeout(req, 15000);
  if (http_request_start(req, on_getme, g) != 0) {
    struct botapi_reply reply = {.outcome = BOTAPI_NETWORK_ERROR};
    buf_printf(&reply.description, "cannot start the request: %s",
               http_request_error(req));
    http_request_free(req);
    getme_failed(g, &reply);
    botapi_reply_free(&reply);
    return;
  }
  g->req = req;
}

static void on_getme_retry(evutil_socket_t fd, short what, void *arg) {
  send_getme(arg);
}

/* --- the runner ---------------------------------------------------------- */

static void on_fatal(void *ud, const char *message) {
  host_fatal(ud, "%s", message);
}

static void restart_now(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct host *h = arg;
  if (h->exiting || !h->runner || !runner_finished(h->runner)) return;
  host_restart_runner(h);
}

static void on_stopped(void *ud) {
  struct host *h = ud;
  /* Stopped before the identity was known. */
  getme_free(h->getme);
  h->getme = NULL;
  if (h->restart_wanted && !h->exiting) {
    /* handle:start() during the stop: once out of the runner's callback.
     * Scheduled jobs go on meanwhile (no drain). */
    h->restart_wanted = false;
    struct timeval now = {0, 0};
    event_base_once(h->base, -1, EV_TIMEOUT, restart_now, h, &now);
    return;
  }
  /* Job runs get their drain too; host_exit_if_idle follows theirs. */
  if (h->jobs) jobsched_drain(h->jobs, h->cfg->drain_timeout_s);
  host_exit_if_idle(h);
}

/* The run() options with the command line applied: --journal wins over
 * run{ journal = ... }, --webhook (with --listen) over run{ webhook = ... }
 * as a whole; --sandbox polls its own Bot API. */
static void effective_options(const struct host *h, const struct run_options *o,
                              struct run_options *eff) {
  run_options_copy(eff, o);
  const struct config *cfg = h->cfg;
  if (cfg->journal) {
    free(eff->journal);
    eff->journal = xstrdup(cfg->journal);
  }
  if (cfg->webhook_url) {
    free(eff->webhook_url);
    free(eff->webhook_listen);
    free(eff->webhook_secret_file);
    eff->webhook_url = xstrdup(cfg->webhook_url);
    eff->webhook_listen =
        cfg->webhook_listen ? xstrdup(cfg->webhook_listen) : NULL;
    eff->webhook_secret_file =
        cfg->webhook_secret_file ? xstrdup(cfg->webhook_secret_file) : NULL;
  }
  if (cfg->cluster_url) {
    free(eff->cluster_url);
    eff->cluster_url = xstrdup(cfg->cluster_url);
  }
  if (cfg->sandbox && eff->webhook_url) {
    log_info("--sandbox: run()'s webhook options are ignored; the sandbox's "
             "Bot API is polled");
    free(eff->webhook_url);
    free(eff->webhook_listen);
    free(eff->webhook_secret_file);
    eff->webhook_url = eff->webhook_listen = eff->webhook_secret_file = NULL;
  }
}

/* The script's cluster.key, in the generation new updates start in. */
static int script_key(void *ud, const char *json, size_t len, struct buf *key,
                      struct buf *err) {
  struct host *h = ud;
  if (!h->current || !h->update_ops->cluster_key) return 0;
  return h->update_ops->cluster_key(h->current, json, len, key, err);
}

static struct update_source *make_source(struct host *h,
                                         const struct run_options *eff,
                                         struct buf *err) {
  struct update_source_params p = {
      .base = h->base,
      .api = h->poll_api,
      .opts = eff,
      .bot_id = journal_bot_id_of_token(h->cfg->token),
      .script_key = script_key,
      .script_key_ud = h,
  };
  if (eff->cluster_url && eff->journal) {
    buf_append_str(err, "run(): journal and cluster do not go together: a "
                        "cluster keeps every update in Redis until it is "
                        "handled (drop the journal)");
    return NULL;
  }
  const struct update_source_entry *entry = NULL;
  for (size_t i = 0; !entry && i < sizeof sources / sizeof *sources; i++)
    if (sources[i]->wanted(&p)) entry = sources[i];
  struct update_source *src = entry->create(&p, NULL, NULL, err);
  if (src && eff->journal)
    src = journal_source_new(eff->journal, p.bot_id, src, h->base, err);
  return src;
}

void host_start_runner(struct host *h, const struct run_options *o) {
  static const struct runner_callbacks cb = {on_fatal, on_stopped};
  struct run_options eff;
  effective_options(h, o, &eff);
  struct buf err = BUF_INIT;
  struct update_source *src = make_source(h, &eff, &err);
  run_options_free(&eff);
  if (!src) {
    host_fatal(h, "%s", err.data);
    buf_free(&err);
    return;
  }
  struct runner_env env = {
      .base = h->base,
      .calls_http = h->http,
      .drain_timeout_s = h->cfg->drain_timeout_s,
      .update_ops = h->update_ops,
  };
  h->runner = runner_new(&env, o, src, h->current, &cb, h);
  if (h->jobs) {
    jobsched_configure(h->jobs, o);
    if (jobsched_open(h->jobs, o->jobs_store_kind, o->jobs_store_target,
                      o->jobs_store_ns, &err) != 0) {
      host_fatal(h, "%s", err.data);
      buf_free(&err);
      return;
    }
  }
  runner_start(h->runner);
  if (h->jobs) jobsched_start(h->jobs);
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STARTING);
  struct getme *g = xcalloc(1, sizeof *g);
  g->h = h;
  g->retry_timer = evtimer_new(h->base, on_getme_retry, g);
  g->policy = (struct retry_policy){o->retry, o->retry_ms, o->max_retry_ms,
                                    o->silent};
  h->getme = g;
  send_getme(g);
}

void host_restart_runner(struct host *h) {
  struct run_options o;
  run_options_copy(&o, runner_options(h->runner));
  runner_free(h->runner);
  h->runner = NULL;
  log_info("starting the bot again (handle:start())");
  host_start_runner(h, &o);
  run_options_free(&o);
}

bool host_start_again(struct host *h) {
  if (h->cfg->check || !h->runner) return false;
  if (h->exiting || runner_is_running(h->runner) || h->restart_wanted)
    return false;
  if (runner_finished(h->runner)) host_restart_runner(h);
  else h->restart_wanted = true;   /* once the stop has completed */
  return true;
}

static bool same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

void host_reconfigure(struct host *h, const struct run_options *o, int gen) {
  const struct run_options *was = runner_options(h->runner);
  struct log_fields f = {gen, -1};
  if (!same_string(o->journal, was->journal))
    log_msg(LOG_WARN, &f, "run(): journal cannot change while running; "
            "restart tghost to use another");
  if (!same_string(o->cluster_url, was->cluster_url) ||
      o->cluster_partitions != was->cluster_partitions ||
      o->cluster_lease_s != was->cluster_lease_s ||
      o->cluster_max_attempts != was->cluster_max_attempts ||
      o->cluster_move_delay_s != was->cluster_move_delay_s)
    log_msg(LOG_WARN, &f, "run(): cluster options cannot change while "
            "running (cluster.key can: it applies at once); restart tghost "
            "to change them");
  if (!same_string(o->webhook_url, was->webhook_url) ||
      !same_string(o->webhook_listen, was->webhook_listen) ||
      !same_string(o->webhook_secret_file, was->webhook_secret_file))
    log_msg(LOG_WARN, &f, "run(): webhook cannot change while running; "
            "restart tghost to change it");
  if (!same_string(o->jobs_store_kind, was->jobs_store_kind) ||
      !same_string(o->jobs_store_target, was->jobs_store_target) ||
      !same_string(o->jobs_store_ns, was->jobs_store_ns))
    log_msg(LOG_WARN, &f, "run(): jobs.storage cannot change while running; "
            "restart tghost to use another");
  runner_reconfigure(h->runner, o, gen);
  if (h->jobs) jobsched_configure(h->jobs, o);
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
  getme_free(h->getme);
  h->getme = NULL;
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
  if (h->exiting || h->loading || h->restart_wanted) return;
  if (h->runner && !runner_finished(h->runner)) return;
  if (h->sched.live_jobs > h->sched.background_jobs + h->sched.loose_idle_jobs)
    return;
  /* Job runs are live jobs; their last store writes must land too. */
  if (h->jobs && !jobsched_idle(h->jobs)) return;
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
  getme_free(h->getme);
  h->getme = NULL;
  if (h->runner) runner_abort(h->runner);
  sched_cancel_all(&h->sched, "cancelled: the process is exiting");
  event_base_loopbreak(h->base);
}
