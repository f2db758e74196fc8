#include "pipeline/runner.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/sink.h"
#include "pipeline/source.h"
#include "pipeline/webhook.h"

enum runner_state {
  RUNNER_IDLE,        /* created, not started */
  RUNNER_STARTING,    /* getMe in flight */
  RUNNER_RUNNING,
  RUNNER_DRAINING,    /* stopped fetching; in-flight updates finish */
  RUNNER_CONFIRMING,  /* last getUpdates confirms the offset */
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
  struct source *source;         /* getMe; getUpdates unless webhook */
  struct webhook *webhook;       /* --webhook: updates are POSTed */
  struct sink sink;
  struct event *drain_timer;
  int64_t confirm_offset;
  struct task **waiters;
  size_t nwaiters, waiters_cap;
  size_t cut_short;                       /* updates cancelled */
  int64_t cut_short_ids[CUT_SHORT_LISTED];
  bool cancelling_idle;                   /* inside sink_cancel_idle */
  struct journal *journal;                /* NULL without --journal */
  struct qlist replay;                    /* the journal's unfinished ones */
};

static void kick(struct runner *r);
static void check_drained(struct runner *r);

/* --- sink callbacks ----------------------------------------------------- */

static struct job *start_update(void *ud, struct update_item *u,
                                job_end_fn on_end, void *end_ud) {
  struct runner *r = ud;
  struct job *job = r->cb.start_update(r->ud, u, on_end, end_ud);
  if (r->journal) {
    if (job) journal_record_start(r->journal, u->id);
    /* Not started: it cannot be decoded (and never will be), or a waiting
     * conversation took it (that conversation's own update records how
     * the dialog ends). */
    else journal_record_end(r->journal, u->id, JOURNAL_DONE, "not started");
  }
  return job;
}

static const char *const outcome_names[] = {
    [JOURNAL_DONE] = "done", [JOURNAL_FAILED] = "failed",
    [JOURNAL_TIMED_OUT] = "timed_out", [JOURNAL_CANCELLED] = "cancelled"};

static enum journal_outcome outcome_of(const struct job *job) {
  switch (job_how_ended(job)) {
    case JOB_DONE: return JOURNAL_DONE;
    case JOB_FAILED: return JOURNAL_FAILED;
    case JOB_CANCELLED:
      return job_error(job) && strcmp(job_error(job), SINK_TIMEOUT_REASON) == 0
                 ? JOURNAL_TIMED_OUT
                 : JOURNAL_CANCELLED;
  }
  return JOURNAL_CANCELLED;
}

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
  log_msg(LOG_WARN, &f, "update cut short: %s",
          error ? error : "cancelled");
}

static void on_job_end(void *ud, struct job *job) {
  struct runner *r = ud;
  bool update = job_kind(job) == JOB_UPDATE;
  if (update)
    metric_inc(METRIC_UPDATES_HANDLED, outcome_names[outcome_of(job)], NULL);
  if (r->journal && update)
    journal_record_end(r->journal, job_update_id(job), outcome_of(job),
                       job_error(job));
  if (job_how_ended(job) == JOB_FAILED && !job_failure_reported(job))
    r->cb.on_failure(r->ud, job);
  if (job_how_ended(job) == JOB_CANCELLED && update)
    note_cut_short(r, job);
  if (r->state == RUNNER_RUNNING) kick(r);
  else if (r->state == RUNNER_DRAINING) check_drained(r);
}

static void on_room(void *ud) {
  struct runner *r = ud;
  if (r->state == RUNNER_RUNNING) kick(r);
}

static void on_timeout(void *ud, struct job *job) {
  struct runner *r = ud;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_WARN, &f, "update timed out after %ld ms and is cancelled",
          r->opts.timeout_ms);
  r->cb.on_timeout(r->ud, job, r->opts.timeout_ms);
}

/* --- source callbacks --------------------------------------------------- */

static void on_updates(void *ud, struct qlist *batch) {
  struct runner *r = ud;
  metric_add(METRIC_UPDATES_RECEIVED, (double)qlist_size(batch),
             r->webhook ? "webhook" : "polling", NULL);
  /* On disk before the next poll confirms them (see kick). */
  if (r->journal && !qlist_empty(batch))
    journal_append_batch(r->journal, batch);
  sink_add(&r->sink, batch);
  kick(r);
}

static void on_durable(void *ud, bool ok, const char *message) {
  struct runner *r = ud;
  if (!ok) {
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "%s: polling stops, so that no update is confirmed to "
               "Telegram without a record", message);
    r->cb.on_fatal(r->ud, msg.data);
    buf_free(&msg);
    return;
  }
  /* What the webhook handed over is on disk: answer Telegram. */
  if (r->webhook && !journal_pending(r->journal))
    webhook_accepted(r->webhook);
  if (r->state == RUNNER_RUNNING) kick(r);
  else if (r->state == RUNNER_DRAINING) check_drained(r);
}

static void on_source_ready(void *ud) { kick(ud); }

static void on_me(void *ud, const char *json, size_t len) {
  struct runner *r = ud;
  r->state = RUNNER_RUNNING;
  r->cb.on_identity(r->ud, json, len);
  /* What the journal had unfinished runs before anything new. */
  if (!qlist_empty(&r->replay)) {
    metric_add(METRIC_UPDATES_RECEIVED, (double)qlist_size(&r->replay),
               "journal", NULL);
    sink_add(&r->sink, &r->replay);
  }
  if (r->webhook) webhook_start(r->webhook);
  kick(r);
}

static void on_fatal(void *ud, const char *message) {
  struct runner *r = ud;
  r->cb.on_fatal(r->ud, message);
}

/* Webhook mode: what was POSTed enters the sink as a polled batch would;
 * its 200s go out once it is there (and on disk, with a journal). */
static void take_posted(struct runner *r, int capacity) {
  struct qlist batch;
  qlist_init(&batch);
  if (webhook_take(r->webhook, capacity, &batch) == 0) return;
  on_updates(r, &batch);
  if (!r->journal) webhook_accepted(r->webhook);
}

static void kick(struct runner *r) {
  if (r->state != RUNNER_RUNNING) return;
  if (!r->webhook && !source_idle(r->source)) return;
  /* The next poll confirms the last batch (the next 200s acknowledge what
   * was taken): not before it is on disk. */
  if (r->journal && journal_pending(r->journal)) return;
  int capacity = sink_capacity(&r->sink);
  if (capacity <= 0) return;
  if (r->webhook) take_posted(r, capacity);
  else source_poll(r->source, capacity);
}

static void on_webhook_set(void *ud) { kick(ud); }

/* --- lifecycle ---------------------------------------------------------- */

static bool same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Telegram opens at most this many connections at once: as many as
 * updates may run at once (one for the sequential sink). */
static int webhook_connections(const struct run_options *o) {
  return o->sink == SINK_SEQUENTIAL ? 1 : o->concurrency;
}

static void on_webhook_ready(void *ud) { kick(ud); }

static int start_webhook(struct runner *r) {
  static const struct webhook_callbacks cb = {on_webhook_ready,
                                              on_webhook_set, on_fatal};
  struct webhook_config wc = {
      .url = r->env.webhook_url,
      .listen = r->env.webhook_listen,
      .secret_file = r->env.webhook_secret_file,
      .allowed_updates_json = r->opts.allowed_updates_json,
      .max_connections = webhook_connections(&r->opts),
      .max_retry_ms = r->opts.max_retry_ms,
  };
  struct buf err = BUF_INIT;
  r->webhook = webhook_new(r->env.poll_api, r->env.base, &wc, &cb, r, &err);
  if (!r->webhook) {
    r->state = RUNNER_STOPPED;
    r->cb.on_fatal(r->ud, err.data);
    buf_free(&err);
    return -1;
  }
  return 0;
}

static struct source_config source_config_of(const struct run_options *o) {
  struct source_config sc = {
      .fetch_timeout_s = o->fetch_timeout_s,
      .allowed_updates_json = o->allowed_updates_json,
      .retry = o->retry,
      .retry_ms = o->retry_ms,
      .max_retry_ms = o->max_retry_ms,
      .silent = o->silent,
      .speed_traffic_balance = o->speed_traffic_balance,
      .max_delay_ms = o->max_delay_ms,
  };
  return sc;
}

/* Every update in flight may have a call open (and a few have two): keep
 * that many connections for the next burst. */
static void size_connection_pool(struct runner *r) {
  long updates = r->opts.sink == SINK_CONCURRENT ? r->opts.concurrency : 1;
  http_client_set_max_connections(r->env.calls_http, updates + updates / 4);
}

struct runner *runner_new(const struct runner_env *env,
                          const struct run_options *o,
                          const struct runner_callbacks *cb, void *ud) {
  struct runner *r = xcalloc(1, sizeof *r);
  r->env = *env;
  r->cb = *cb;
  r->ud = ud;
  run_options_copy(&r->opts, o);
  qlist_init(&r->replay);
  struct source_config sc = source_config_of(o);
  static const struct source_callbacks source_cb = {
      on_updates, on_source_ready, on_me, on_fatal};
  r->source = source_new(env->poll_api, env->base, &sc, &source_cb, r);
  static const struct sink_callbacks sink_cb = {start_update, on_job_end,
                                                on_timeout, on_room};
  sink_init(&r->sink, env->base, o->sink, o->concurrency, o->timeout_ms,
            &sink_cb, r);
  sink_set_max_waiting(&r->sink, o->max_waiting);
  size_connection_pool(r);
  return r;
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
  if ((next.journal == NULL) != (r->opts.journal == NULL) ||
      (next.journal && strcmp(next.journal, r->opts.journal) != 0))
    log_msg(LOG_WARN, &f, "run(): journal cannot change while running; "
            "restart tghost to use another");
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
  if (!same_string(next.webhook_url, r->opts.webhook_url) ||
      !same_string(next.webhook_listen, r->opts.webhook_listen) ||
      !same_string(next.webhook_secret_file, r->opts.webhook_secret_file))
    log_msg(LOG_WARN, &f, "run(): webhook cannot change while running; "
            "restart tghost to change it");
  if (changes.len)
    log_msg(LOG_INFO, &f, "run() options applied live: %s", changes.data);
  buf_free(&changes);

  run_options_free(&r->opts);
  r->opts = next;
  struct source_config sc = source_config_of(&r->opts);
  source_configure(r->source, &sc);
  /* New update types (a chat_member handler) arrive now, not when the
   * pending long poll ends; kick() below sends the next one. */
  if (allowed_changed && r->state == RUNNER_RUNNING &&
      source_restart_poll(r->source))
    log_msg(LOG_DEBUG, &f, "the pending getUpdates was restarted with the "
            "new allowed_updates");
  sink_reconfigure(&r->sink, r->opts.concurrency, r->opts.timeout_ms,
                   r->opts.max_waiting);
  size_connection_pool(r);
  if (r->webhook)
    webhook_configure(r->webhook, r->opts.allowed_updates_json,
                      webhook_connections(&r->opts));
  kick(r);
}

void runner_free(struct runner *r) {
  if (!r) return;
  webhook_free(r->webhook);
  journal_close(r->journal);
  struct qnode *n;
  while ((n = qlist_pop_front(&r->replay)))
    update_item_free(qlist_entry(n, struct update_item, node));
  source_free(r->source);
  sink_free(&r->sink);
  if (r->drain_timer) event_free(r->drain_timer);
  run_options_free(&r->opts);
  free(r->waiters);
  free(r);
}

void runner_start(struct runner *r) {
  if (r->state != RUNNER_IDLE) return;
  if (r->env.journal_path) {
    struct buf err = BUF_INIT;
    int64_t max_id = -1;
    r->journal = journal_open(r->env.journal_path, r->env.bot_id,
                              r->env.base, on_durable, r, &r->replay,
                              &max_id, &err);
    if (!r->journal) {
      r->state = RUNNER_STOPPED;
      r->cb.on_fatal(r->ud, err.data);
      buf_free(&err);
      return;
    }
    if (max_id >= 0) source_set_offset(r->source, max_id + 1);
  }
  if (r->env.webhook_url && start_webhook(r) != 0) return;
  if (r->journal) {
    /* Telegram may deliver again what was accepted before a crash. */
    int64_t *ids;
    size_t n = journal_take_known_ids(r->journal, &ids);
    if (r->webhook) webhook_remember(r->webhook, ids, n);
    free(ids);
  }
  r->state = RUNNER_STARTING;
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STARTING);
  source_get_me(r->source);
}

bool runner_is_running(const struct runner *r) {
  return r->state == RUNNER_STARTING || r->state == RUNNER_RUNNING;
}

bool runner_finished(const struct runner *r) {
  return r->state == RUNNER_STOPPED || r->state == RUNNER_IDLE;
}

size_t runner_size(const struct runner *r) { return sink_size(&r->sink); }

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
  size_t bad = source_bad_updates(r->source);
  if (bad)
    log_warn("%zu malformed update(s) were skipped while running (logged "
             "above with their text)", bad);
  if (r->drain_timer) evtimer_del(r->drain_timer);
  wake_waiters(r);
  r->cb.on_stopped(r->ud);
}

static void on_confirmed(void *ud, bool ok) {
  struct runner *r = ud;
  if (ok)
    log_info("stopped; offset %lld confirmed to Telegram",
             (long long)r->confirm_offset);
  finish(r);
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
  if (r->journal && journal_pending(r->journal)) return;   /* on_durable */
  if (r->webhook) {
    /* getUpdates cannot confirm anything while a webhook is set: every
     * update handed over was answered 200 already. */
    log_info("stopped; the webhook stays set, so Telegram keeps new updates "
             "until tghost is back (deleteWebhook removes it)");
    finish(r);
  } else if (r->confirm_offset > source_confirmed(r->source)) {
    r->state = RUNNER_CONFIRMING;
    source_confirm(r->source, r->confirm_offset, on_confirmed);
  } else {
    log_info("stopped");
    finish(r);
  }
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
  struct runner *r = arg;
  if (r->state != RUNNER_DRAINING) return;
  log_warn("drain timeout: cancelling %zu update(s) still in flight",
           sink_size(&r->sink));
  sink_close(&r->sink);
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
      source_abort(r->source);
      finish(r);
      return;
    case RUNNER_RUNNING: {
      r->state = RUNNER_DRAINING;
      metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STOPPING);
      source_abort(r->source);
      /* Updates a webhook handed over were answered 200: Telegram will not
       * send them again, so the backlog runs (within the drain timeout). */
      if (r->webhook) webhook_stop(r->webhook);
      int64_t first_unstarted = r->webhook ? -1 : sink_close(&r->sink);
      /* With a journal, updates fetched and not started are on disk and
       * run at the next start: confirm them all. Without one, Telegram
       * keeps them. */
      r->confirm_offset = first_unstarted >= 0 && !r->journal
                              ? first_unstarted
                              : source_offset(r->source);
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
    case RUNNER_CONFIRMING:
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
  if (r->webhook) webhook_stop(r->webhook);
  sink_close(&r->sink);
  sink_cancel_all(&r->sink, "cancelled: forced stop");
  r->nwaiters = 0;
  r->state = RUNNER_STOPPED;
  if (r->drain_timer) evtimer_del(r->drain_timer);
}
