#include "pipeline/runner.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/sink.h"

enum runner_state {
  RUNNER_IDLE,        /* created, not started */
  RUNNER_STARTING,    /* the owner learns the bot's identity */
  RUNNER_RUNNING,
  RUNNER_DRAINING,    /* stopped fetching; in-flight updates finish */
  RUNNER_FINISHING,   /* the source finishes its part (confirms) */
  RUNNER_STOPPED,
};

/* Updates cut short are listed by id at the stop, this many at most. */
#define CUT_SHORT_LISTED 20
/* Why a conversation still waiting for its user is cancelled at a stop. */
#define IDLE_CANCEL_REASON "cancelled: the bot stopped while it waited for its user"

struct runner {
  struct runner_env env;
  struct runner_callbacks cb;
  void *ud;
  struct run_options opts;
  enum runner_state state;
  struct update_source *source;
  struct job_owner *current;     /* new updates start here */
  struct sink sink;
  struct event *drain_timer;
  struct task **waiters;
  size_t nwaiters, waiters_cap;
  size_t cut_short;                       /* updates cancelled */
  int64_t cut_short_ids[CUT_SHORT_LISTED];
  bool cancelling_idle;                   /* inside sink_cancel_idle */
  bool kicking, kick_again;               /* kick() is on the stack */
};

static void kick(struct runner *r);
static void check_drained(struct runner *r);

/* --- sink callbacks ----------------------------------------------------- */

static struct job *start_update(void *ud, struct update_item *u,
                                job_end_fn on_end, void *end_ud) {
  struct runner *r = ud;
  int64_t id = u->id;
  /* Said before it starts: a source that records starts (the journal)
   * hands the record on before the handler's first instruction runs. */
  source_outcome(r->source, id, UPDATE_STARTED, NULL);
  struct job *job = r->env.update_ops->start(r->current, u, on_end, end_ud);
  /* Not started after all: it cannot be decoded (and never will be), or a
   * waiting conversation took it (that conversation's own update reports
   * how the dialog ends). */
  if (!job) source_outcome(r->source, id, UPDATE_DONE, "not started");
  return job;
}

static enum update_outcome outcome_of(const struct job *job) {
  switch (job_how_ended(job)) {
    case JOB_DONE: return UPDATE_DONE;
    case JOB_FAILED: return UPDATE_FAILED;
    case JOB_CANCELLED: {
      const char *error = job_error(job);
      return error && strcmp(error, SINK_TIMEOUT_REASON) == 0
                 ? UPDATE_TIMED_OUT
                 : UPDATE_CUT_SHORT;
    }
  }
  return UPDATE_CUT_SHORT;
}

static const char *const outcome_names[] = {
    [UPDATE_DONE] = "done", [UPDATE_FAILED] = "failed",
    [UPDATE_TIMED_OUT] = "timed_out", [UPDATE_CUT_SHORT] = "cancelled"};

/* An update that did not run to its end (timeout, drain timeout, forced
 * stop): logged with why, and listed at the stop. */
static void note_cut_short(struct runner *r, struct job *job) {
  if (r->cut_short < CUT_SHORT_LISTED)
    r->cut_short_ids[r->cut_short] = job_update_id(job);
  r->cut_short++;
  /* A timeout has its own line already, and so have the conversations a
   * stop cancels (one line for all). */
  const char *error = job_error(job);
  if (error && (strcmp(error, SINK_TIMEOUT_REASON) == 0 ||
                strcmp(error, IDLE_CANCEL_REASON) == 0))
    return;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_WARN, &f, "update cut short: %s", error ? error : "cancelled");
}

static void on_job_end(void *ud, struct job *job) {
  struct runner *r = ud;
  if (job_kind(job) == JOB_UPDATE) {
    enum update_outcome outcome = outcome_of(job);
    metric_inc(METRIC_UPDATES_HANDLED, outcome_names[outcome], NULL);
    source_outcome(r->source, job_update_id(job), outcome, job_error(job));
    if (job_how_ended(job) == JOB_CANCELLED) note_cut_short(r, job);
  }
  if (job_how_ended(job) == JOB_FAILED && !job_failure_reported(job))
    r->env.update_ops->report_failure(job);
  if (r->state == RUNNER_RUNNING) kick(r);
  else if (r->state == RUNNER_DRAINING) check_drained(r);
}

static void on_waiting(void *ud, struct job *job, bool waiting) {
  struct runner *r = ud;
  source_outcome(r->source, job_update_id(job),
                 waiting ? UPDATE_WAITING : UPDATE_STARTED, NULL);
}

static void on_room(void *ud) {
  struct runner *r = ud;
  if (r->state == RUNNER_RUNNING) kick(r);
}

/* A conversation waits for its user: the source may let the updates its
 * update held back run (a cluster's per-key order). */
static void on_idle(void *ud, struct job *job) {
  struct runner *r = ud;
  if (job_kind(job) == JOB_UPDATE)
    source_outcome(r->source, job_update_id(job), UPDATE_IDLE, NULL);
}

static void on_timeout(void *ud, struct job *job) {
  struct runner *r = ud;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_WARN, &f, "update timed out after %ld ms and is cancelled",
          r->opts.timeout_ms);
  r->env.update_ops->report_timeout(job, r->opts.timeout_ms);
}

/* --- source events ------------------------------------------------------ */

static void on_batch(void *ud, struct qlist *batch, const char *via) {
  struct runner *r = ud;
  metric_add(METRIC_UPDATES_RECEIVED, (double)qlist_size(batch), via, NULL);
  sink_add(&r->sink, batch);
  /* In the sink: the runner answers for them now. */
  source_accept(r->source);
  kick(r);
}

static void on_source_ready(void *ud) { kick(ud); }

static void on_source_fatal(void *ud, const char *message) {
  struct runner *r = ud;
  r->cb.on_fatal(r->ud, message);
}

static void finish(struct runner *r);

static void on_source_stopped(void *ud) {
  struct runner *r = ud;
  if (r->state == RUNNER_FINISHING) finish(r);
}

/* The source may no longer run these updates (a cluster partition moved
 * away): cancelled if started, handed back if not. */
static void on_source_revoke(void *ud, bool (*match)(int64_t id, void *),
                             void *match_ud, const char *reason) {
  struct runner *r = ud;
  struct qlist released;
  qlist_init(&released);
  sink_cancel_matching(&r->sink, match, match_ud, reason, &released);
  struct qnode *n;
  while ((n = qlist_pop_front(&released))) {
    struct update_item *u = qlist_entry(n, struct update_item, node);
    source_outcome(r->source, u->id, UPDATE_RELEASED, NULL);
    update_item_free(u);
  }
}

static const struct update_source_events source_events = {
    on_batch, on_source_ready, on_source_fatal, on_source_stopped,
    on_source_revoke};

/* Asks the source for as many updates as the sink has room for. A source
 * may deliver from inside fetch (the webhook hands over what it holds),
 * and the delivery kicks again: that kick is done here, by the loop, not
 * by recursing. */
static void kick(struct runner *r) {
  if (r->state != RUNNER_RUNNING) return;
  if (r->kicking) {
    r->kick_again = true;
    return;
  }
  r->kicking = true;
  do {
    r->kick_again = false;
    int capacity = sink_capacity(&r->sink);
    if (capacity > 0) source_fetch(r->source, capacity);
  } while (r->kick_again && r->state == RUNNER_RUNNING);
  r->kicking = false;
}

/* --- lifecycle ---------------------------------------------------------- */

/* The source's gauges, set when /metrics asks. */
static void collect_health(void *ud) {
  struct runner *r = ud;
  source_health(r->source);
}


/* Every update in flight may have a call open (and a few have two): keep
 * that many connections for the next burst. */
static void size_connection_pool(struct runner *r) {
  long updates = r->opts.sink == SINK_CONCURRENT ? r->opts.concurrency : 1;
  http_client_set_max_connections(r->env.calls_http, updates + updates / 4);
}

struct runner *runner_new(const struct runner_env *env,
                          const struct run_options *o,
                          struct update_source *source,
                          struct job_owner *current,
                          const struct runner_callbacks *cb, void *ud) {
  struct runner *r = xcalloc(1, sizeof *r);
  r->env = *env;
  r->cb = *cb;
  r->ud = ud;
  r->current = current;
  run_options_copy(&r->opts, o);
  r->source = source;
  source->events = &source_events;
  source->events_ud = r;
  static const struct sink_callbacks sink_cb = {
      start_update, on_job_end, on_timeout, on_room, on_waiting, on_idle};
  sink_init(&r->sink, env->base, o->sink, o->concurrency, o->timeout_ms,
            &sink_cb, r);
  sink_set_max_waiting(&r->sink, o->max_waiting);
  size_connection_pool(r);
  metrics_set_collector(collect_health, r);
  return r;
}

void runner_set_generation(struct runner *r, struct job_owner *current) {
  r->current = current;
}

void runner_reconfigure(struct runner *r, const struct run_options *o,
                        int gen) {
  struct log_fields f = {gen, -1};
  struct run_options next;
  run_options_copy(&next, o);
  if (next.sink != r->opts.sink) {
    log_msg(LOG_WARN, &f, "run(): sink.kind cannot change while running: it "
            "stays \"%s\" (the reloaded script asks for \"%s\"); restart "
            "tghost to change it", sink_kind_name(r->opts.sink),
            sink_kind_name(next.sink));
    next.sink = r->opts.sink;
  }
  /* Telegram keeps the last allowed_updates it was sent when a request
   * omits them: an empty list restores its default. */
  if (!next.allowed_updates_json && r->opts.allowed_updates_json)
    next.allowed_updates_json = xstrdup("[]");

  struct buf changes = BUF_INIT;
  const struct run_options *a = &r->opts, *b = &next;
#define CHANGED(cond, ...)                                 \
  do {                                                     \
    if (cond) {                                            \
      if (changes.len) buf_append_str(&changes, ", ");     \
      buf_printf(&changes, __VA_ARGS__);                   \
    }                                                      \
  } while (0)
  CHANGED(a->concurrency != b->concurrency, "concurrency %d -> %d",
          a->concurrency, b->concurrency);
  CHANGED(a->timeout_ms != b->timeout_ms, "timeout %ld -> %ld ms",
          a->timeout_ms, b->timeout_ms);
  CHANGED(a->fetch_timeout_s != b->fetch_timeout_s, "fetch.timeout %d -> %d s",
          a->fetch_timeout_s, b->fetch_timeout_s);
  bool allowed_changed =
      (a->allowed_updates_json == NULL) != (b->allowed_updates_json == NULL) ||
      (a->allowed_updates_json &&
       strcmp(a->allowed_updates_json, b->allowed_updates_json) != 0);
  CHANGED(allowed_changed, "allowed_updates %s -> %s",
          a->allowed_updates_json ? a->allowed_updates_json : "(unset)",
          b->allowed_updates_json ? b->allowed_updates_json : "(unset)");
  CHANGED(a->retry != b->retry || a->retry_ms != b->retry_ms,
          "retryInterval %s -> %s", retry_kind_name(a->retry),
          retry_kind_name(b->retry));
  CHANGED(a->max_retry_ms != b->max_retry_ms, "maxRetryTime %ld -> %ld ms",
          a->max_retry_ms, b->max_retry_ms);
  CHANGED(a->max_waiting != b->max_waiting, "maxWaiting %ld -> %ld",
          a->max_waiting, b->max_waiting);
  CHANGED(a->silent != b->silent, "silent %s -> %s",
          a->silent ? "true" : "false", b->silent ? "true" : "false");
  CHANGED(a->speed_traffic_balance != b->speed_traffic_balance ||
              a->max_delay_ms != b->max_delay_ms,
          "pacing %g/%ld ms -> %g/%ld ms", a->speed_traffic_balance,
          a->max_delay_ms, b->speed_traffic_balance, b->max_delay_ms);
#undef CHANGED
  if (changes.len)
    log_msg(LOG_INFO, &f, "run() options applied live: %s", changes.data);
  buf_free(&changes);

  run_options_free(&r->opts);
  r->opts = next;
  source_reconfigure(r->source, &r->opts);
  sink_reconfigure(&r->sink, r->opts.concurrency, r->opts.timeout_ms,
                   r->opts.max_waiting);
  size_connection_pool(r);
  kick(r);
}

void runner_free(struct runner *r) {
  if (!r) return;
  metrics_set_collector(NULL, NULL);
  source_free(r->source);
  sink_free(&r->sink);
  if (r->drain_timer) event_free(r->drain_timer);
  run_options_free(&r->opts);
  free(r->waiters);
  free(r);
}

void runner_start(struct runner *r) {
  if (r->state != RUNNER_IDLE) return;
  r->state = RUNNER_STARTING;
}

void runner_run(struct runner *r) {
  if (r->state != RUNNER_STARTING) return;
  r->state = RUNNER_RUNNING;
  source_start(r->source);
  kick(r);
}

bool runner_is_running(const struct runner *r) {
  return r->state == RUNNER_STARTING || r->state == RUNNER_RUNNING;
}

bool runner_finished(const struct runner *r) {
  return r->state == RUNNER_STOPPED || r->state == RUNNER_IDLE;
}

size_t runner_size(const struct runner *r) { return sink_size(&r->sink); }

const struct run_options *runner_options(const struct runner *r) {
  return &r->opts;
}

static void wake_waiters(struct runner *r) {
  for (size_t i = 0; i < r->nwaiters; i++)
    task_wake(r->waiters[i], task_push_nothing, NULL);
  r->nwaiters = 0;
}

static void finish(struct runner *r) {
  r->state = RUNNER_STOPPED;
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STOPPED);
  if (r->cut_short) {
    struct buf ids = BUF_INIT;
    size_t listed = r->cut_short < CUT_SHORT_LISTED ? r->cut_short
                                                    : CUT_SHORT_LISTED;
    for (size_t i = 0; i < listed; i++)
      buf_printf(&ids, "%s%lld", i ? ", " : "",
                 (long long)r->cut_short_ids[i]);
    log_warn("%zu update(s) cut short: ids %s%s", r->cut_short, ids.data,
             r->cut_short > listed ? ", ..." : "");
    buf_free(&ids);
  }
  if (r->drain_timer) evtimer_del(r->drain_timer);
  wake_waiters(r);
  r->cb.on_stopped(r->ud);
}

/* Waiters inside updates of this sink do not count: they wait for the
 * others. */
static size_t waiters_in_sink(const struct runner *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->nwaiters; i++) {
    struct job *job = task_job(r->waiters[i]);
    if (job_kind(job) == JOB_UPDATE && sink_has_job(&r->sink, job)) n++;
  }
  return n;
}

/* Idle jobs (conversations waiting for their user) wait for updates that
 * no longer come: once nothing else is left to drain, they are cancelled
 * (their to-be-closed variables run) rather than waited for until the
 * drain timeout. */
static void cancel_idle(struct runner *r, size_t left) {
  if (r->cancelling_idle || sink_idle(&r->sink) == 0 ||
      left - sink_idle(&r->sink) > waiters_in_sink(r))
    return;
  size_t n = sink_idle_to_cancel(&r->sink);
  if (n == 0) return;
  log_warn("stopping: %zu conversation(s) still waiting for their user "
           "are cut short", n);
  r->cancelling_idle = true;
  sink_cancel_idle(&r->sink, IDLE_CANCEL_REASON);
  r->cancelling_idle = false;
}

static void check_drained(struct runner *r) {
  if (r->state != RUNNER_DRAINING) return;
  size_t left = sink_size(&r->sink);
  cancel_idle(r, left);
  /* The cancels may have ended jobs (and the drain) already. */
  if (r->state != RUNNER_DRAINING) return;
  left = sink_size(&r->sink);
  if (r->nwaiters && left <= waiters_in_sink(r)) wake_waiters(r);
  if (left > 0) return;
  /* Every update delivered has its end: the source's part (on_stopped). */
  r->state = RUNNER_FINISHING;
  source_drained(r->source);
}

/* Stops starting updates; the backlog goes back to the source. */
static void release_backlog(struct runner *r) {
  struct qlist released;
  qlist_init(&released);
  sink_close(&r->sink, &released);
  struct qnode *n;
  while ((n = qlist_pop_front(&released))) {
    struct update_item *u = qlist_entry(n, struct update_item, node);
    source_outcome(r->source, u->id, UPDATE_RELEASED, NULL);
    update_item_free(u);
  }
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
  struct runner *r = arg;
  if (r->state != RUNNER_DRAINING) return;
  log_warn("drain timeout: cancelling %zu update(s) still in flight",
           sink_size(&r->sink));
  release_backlog(r);
  sink_cancel_all(&r->sink, "cancelled: the drain timeout passed");
  check_drained(r);
}

static void add_waiter(struct runner *r, struct task *waiter) {
  if (r->nwaiters == r->waiters_cap) {
    r->waiters_cap = r->waiters_cap ? r->waiters_cap * 2 : 4;
    r->waiters = xrealloc(r->waiters, r->waiters_cap * sizeof *r->waiters);
  }
  r->waiters[r->nwaiters++] = waiter;
}

void runner_wait_stopped(struct runner *r, struct task *waiter) {
  if (r->state == RUNNER_STOPPED || r->state == RUNNER_IDLE) {
    task_wake(waiter, task_push_nothing, NULL);
    return;
  }
  add_waiter(r, waiter);
  if (r->state == RUNNER_DRAINING) check_drained(r);
}

void runner_stop(struct runner *r, struct task *waiter) {
  if (waiter && r->state != RUNNER_STOPPED && r->state != RUNNER_IDLE)
    add_waiter(r, waiter);
  switch (r->state) {
    case RUNNER_IDLE:
    case RUNNER_STOPPED:
      if (waiter) task_wake(waiter, task_push_nothing, NULL);
      return;
    case RUNNER_STARTING:
      /* Nothing was delivered: nothing to drain or confirm. */
      source_abort(r->source);
      finish(r);
      return;
    case RUNNER_RUNNING: {
      r->state = RUNNER_DRAINING;
      metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STOPPING);
      source_stop(r->source);
      /* Updates not started go back when someone keeps them; otherwise
       * (a webhook answered them 200) they run, within the drain
       * timeout. */
      if (r->source->type->releases_unstarted) release_backlog(r);
      log_info("stopping: %zu update(s) in flight, drain timeout %.0f s",
               sink_size(&r->sink), r->env.drain_timeout_s);
      long ms = (long)(r->env.drain_timeout_s * 1000);
      struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
      r->drain_timer = evtimer_new(r->env.base, on_drain_timeout, r);
      evtimer_add(r->drain_timer, &tv);
      check_drained(r);
      return;
    }
    case RUNNER_DRAINING:
      check_drained(r);
      return;
    case RUNNER_FINISHING:
      return;
  }
}

void runner_forget_waiter(struct runner *r, struct task *waiter) {
  for (size_t i = 0; i < r->nwaiters; i++) {
    if (r->waiters[i] == waiter) {
      r->waiters[i] = r->waiters[--r->nwaiters];
      return;
    }
  }
}

void runner_abort(struct runner *r) {
  source_abort(r->source);
  struct qlist dropped;
  qlist_init(&dropped);
  sink_close(&r->sink, &dropped);
  update_batch_free(&dropped);
  sink_cancel_all(&r->sink, "cancelled: forced stop");
  r->nwaiters = 0;
  r->state = RUNNER_STOPPED;
  if (r->drain_timer) evtimer_del(r->drain_timer);
}

