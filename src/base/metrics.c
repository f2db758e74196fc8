#include "base/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_type { COUNTER, GAUGE, HISTOGRAM, STATESET, INFO };

struct metric_def {
  const char *name;              /* full name, with _total for counters */
  enum metric_type type;
  const char *help;
  const char *labels[2];         /* label names; NULL for none */
  const double *buckets;         /* histograms: upper bounds, ascending */
  size_t nbuckets;
  const char *const *initial;    /* first-label values shown from the start
                                    (NULL-terminated), or the states */
  size_t max_values;             /* distinct first-label values; 0:
                                    METRIC_MAX_VALUES */
};

/* Handlers: from a few milliseconds (an echo) to minutes (a conversation
 * step that waits on a person is not a handler's duration, but a slow
 * upload is). */
static const double handler_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,  1,     2.5,  5,
                                         10,    30,   60,    300};
/* Bot API calls: loopback to a local Bot API server is sub-millisecond,
 * api.telegram.org tens of milliseconds, uploads and 429 retries seconds. */
static const double api_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,  0.1,    0.25,  0.5,  1,
                                     2.5,   5,      10,    30,   60};
/* How late a scheduled job starts: milliseconds on time, seconds under a
 * burst, minutes or hours after downtime (a misfire). */
static const double lateness_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1,
                                          0.25,  0.5,   1,    2.5,  5,
                                          10,    60,    300,  3600};
#define NB(a) (sizeof a / sizeof a[0])

static const char *const received_sources[] = {"polling", "webhook",
                                               "journal", NULL};
static const char *const handled_outcomes[] = {
    "done", "failed", "timed_out", "cancelled", "consumed", NULL};
static const char *const reload_results[] = {"ok", "failed", NULL};
static const char *const lease_loss_reasons[] = {"expired", "refused", NULL};
static const char *const move_directions[] = {"in", "out", NULL};
static const char *const ingest_results[] = {"added", "duplicate", NULL};
static const char *const job_outcomes[] = {"done", "failed", "timed_out",
                                           "skipped", "released", NULL};
static const char *const source_states[] = {
    SOURCE_STATE_STARTING, SOURCE_STATE_POLLING,  SOURCE_STATE_WEBHOOK,
    SOURCE_STATE_CLUSTER,
    SOURCE_STATE_FAILING,  SOURCE_STATE_STOPPING, SOURCE_STATE_STOPPED,
    NULL};

static const struct metric_def metric_defs[METRIC_COUNT] = {
    [METRIC_UPDATES_RECEIVED] = {
        "tghost_updates_received_total", COUNTER,
        "Updates received, by where they came from (polling: getUpdates; "
        "webhook: a POST from Telegram; journal: run again after a restart).",
        {"source"}, .initial = received_sources},
    [METRIC_UPDATES_HANDLED] = {
        "tghost_updates_handled_total", COUNTER,
        "Updates whose handling ended, by outcome (done, failed: an error or "
        "the update could not start, timed_out: the per-update timeout, "
        "cancelled: a stop or a reload cut it short, consumed: a waiting "
        "conversation took it, ctx:wait).",
        {"outcome"}, .initial = handled_outcomes},
    [METRIC_UPDATES_IN_FLIGHT] = {
        "tghost_updates_in_flight", GAUGE,
        "Updates accepted and not finished: running, waiting on others "
        "(sequentialize), in a conversation waiting for its user (ctx:wait), "
        "or in the backlog."},
    [METRIC_UPDATES_PARKED] = {
        "tghost_updates_parked", GAUGE,
        "Updates waiting behind others of the same sequentialize key, "
        "without a concurrency slot."},
    [METRIC_CONVERSATIONS_WAITING] = {
        "tghost_conversations_waiting", GAUGE,
        "Handlers suspended in a conversation, waiting for the next update "
        "of their chat (ctx:wait)."},
    [METRIC_HANDLER_DURATION] = {
        "tghost_handler_duration_seconds", HISTOGRAM,
        "Time from an update's start to the end of its handlers, including "
        "the Bot API calls and sleeps they wait on.",
        .buckets = handler_buckets, .nbuckets = NB(handler_buckets)},
    [METRIC_API_CALLS] = {
        "tghost_api_calls_total", COUNTER,
        "Bot API calls made by handlers, by method and outcome (ok; error: a "
        "4xx answer; flood: 429 after the retries; server_error: 5xx; "
        "network_error: no answer; not_sent; cancelled: its update ended "
        "first).",
        {"method", "outcome"}},
    [METRIC_API_CALL_DURATION] = {
        "tghost_api_call_duration_seconds", HISTOGRAM,
        "Latency of Bot API calls made by handlers, by method, including "
        "throttle queueing and 429 retries.",
        {"method"}, .buckets = api_buckets, .nbuckets = NB(api_buckets)},
    [METRIC_API_FLOOD_WAITS] = {
        "tghost_api_flood_waits_total", COUNTER,
        "Waits imposed by Telegram's flood control (429 with retry_after), on "
        "method calls and on getUpdates."},
    [METRIC_API_FLOOD_WAIT_SECONDS] = {
        "tghost_api_flood_wait_seconds_total", COUNTER,
        "Seconds of retry_after waited for after 429 answers."},
    [METRIC_THROTTLE_QUEUED] = {
        "tghost_throttle_queued_messages", GAUGE,
        "Messages queued by the flood-control throttle, not sent yet."},
    [METRIC_RELOADS] = {
        "tghost_reloads_total", COUNTER,
        "Hot reloads of the script, by result (ok: the new generation is "
        "live; failed: it was rejected and the old one keeps serving).",
        {"result"}, .initial = reload_results},
    [METRIC_GENERATION] = {
        "tghost_generation", GAUGE,
        "The generation (load of the script) new updates run on."},
    [METRIC_GENERATIONS_ALIVE] = {
        "tghost_generations_alive", GAUGE,
        "Loads of the script whose Lua state is alive: the current one, one "
        "being loaded, and old ones kept by updates or waiting "
        "conversations (ctx:wait) that started on them."},
    [METRIC_JOURNAL_BACKLOG] = {
        "tghost_journal_backlog_updates", GAUGE,
        "Updates recorded in the journal that have not finished: what a "
        "crash now would run again."},
    [METRIC_JOURNAL_UNSYNCED] = {
        "tghost_journal_unsynced_batches", GAUGE,
        "Batches appended to the journal and not yet durable (fsync "
        "pending)."},
    [METRIC_SOURCE_STATE] = {
        "tghost_source_state", STATESET,
        "Where updates come from, as a state set: starting, polling "
        "(getUpdates works), webhook (set, serving), failing (retrying), "
        "stopping, stopped.",
        {"state"}, .initial = source_states},
    [METRIC_SOURCE_FAILING_SINCE] = {
        "tghost_source_failing_since_seconds", GAUGE,
        "Unix time at which getUpdates (or setWebhook) started failing; 0 "
        "while it works."},
    [METRIC_SOURCE_ERRORS] = {
        "tghost_source_errors_total", COUNTER,
        "Failed getUpdates, getMe or setWebhook requests, by kind (network, "
        "server_error, bad_response, flood, fatal).",
        {"kind"}},
    [METRIC_SOURCE_LAST_ERROR] = {
        "tghost_source_last_error_info", INFO,
        "The last error of getUpdates, getMe or setWebhook (kind and message).",
        {"kind", "message"}},
    [METRIC_WEBHOOK_REQUESTS] = {
        "tghost_webhook_requests_total", COUNTER,
        "Webhook requests answered, by HTTP status (200 accepted or a "
        "duplicate, 400 malformed, 401 wrong secret, 405 not a POST, 503 "
        "too many held or stopping; 413 body too large, and the statuses "
        "of malformed requests: 411, 417, 431, 501, 505).",
        {"code"}},
    [METRIC_WEBHOOK_DUPLICATES] = {
        "tghost_webhook_duplicates_total", COUNTER,
        "Webhook deliveries of an update already accepted (Telegram "
        "retries), answered 200 and not handled again."},
    [METRIC_WEBHOOK_HELD] = {
        "tghost_webhook_held_requests", GAUGE,
        "Webhook requests whose answer is held until the update is "
        "accepted (backpressure while the sink is full)."},
    [METRIC_WEBHOOK_PENDING] = {
        "tghost_webhook_pending_updates", GAUGE,
        "Updates waiting at Telegram to be posted to the webhook "
        "(getWebhookInfo's pending_update_count)."},
    [METRIC_WEBHOOK_DELIVERY_FAILING] = {
        "tghost_webhook_delivery_failing", GAUGE,
        "1 while Telegram reports that it cannot deliver to the webhook (an "
        "error newer than the last update received) or posts to another "
        "URL; 0 otherwise."},
    [METRIC_WEBHOOK_LAST_ERROR] = {
        "tghost_webhook_last_error_info", INFO,
        "The last webhook error Telegram reported (kind delivery: "
        "getWebhookInfo's last_error_message; url_changed: the URL set "
        "there).",
        {"kind", "message"}},
    [METRIC_WEBHOOK_LAST_ERROR_TIME] = {
        "tghost_webhook_last_error_time_seconds", GAUGE,
        "Unix time of the last delivery error Telegram reported "
        "(getWebhookInfo's last_error_date); 0 if none."},
    [METRIC_HTTP_CONNECTIONS] = {
        "tghost_http_connections", GAUGE,
        "Connections open to tghost's HTTP servers, by listener (webhook, "
        "metrics).",
        {"listener"}},
    [METRIC_HTTP_CLOSED] = {
        "tghost_http_connections_closed_total", COUNTER,
        "Connections tghost closed before their client did, by listener and "
        "reason (evicted: room for a new one; over_limit: every connection "
        "busy; idle_timeout, head_timeout, body_timeout, write_timeout; "
        "accept_error: descriptors freed after accept() failed).",
        {"listener", "reason"}},
    [METRIC_CLUSTER_MEMBERS] = {
        "tghost_cluster_members", GAUGE,
        "Live members of the cluster, as this instance last saw them."},
    [METRIC_CLUSTER_PARTITIONS_OWNED] = {
        "tghost_cluster_partitions_owned", GAUGE,
        "Partitions whose lease this instance holds."},
    [METRIC_CLUSTER_PARTITION_LAG] = {
        "tghost_cluster_partition_lag", GAUGE,
        "Updates in a partition's stream not finished yet (read or not), "
        "as its owner last measured; 0 on instances that do not own it.",
        {"partition"}, NULL, 0, NULL, 4096},
    [METRIC_CLUSTER_LEASE_RENEWALS] = {
        "tghost_cluster_lease_renewals_total", COUNTER,
        "Partition and ingress leases renewed."},
    [METRIC_CLUSTER_LEASE_LOSSES] = {
        "tghost_cluster_lease_losses_total", COUNTER,
        "Leases lost, by why (expired: not renewed in time by this "
        "instance's clock; refused: Redis said another epoch holds it).",
        {"reason"}, NULL, 0, lease_loss_reasons},
    [METRIC_CLUSTER_PARTITION_MOVES] = {
        "tghost_cluster_partition_moves_total", COUNTER,
        "Partitions taken over (in) and handed over after draining (out).",
        {"direction"}, NULL, 0, move_directions},
    [METRIC_CLUSTER_INGRESS_HOLDER] = {
        "tghost_cluster_ingress_holder", GAUGE,
        "1 while this instance holds the ingress lease (polls getUpdates, "
        "or set the webhook)."},
    [METRIC_CLUSTER_INGESTED] = {
        "tghost_cluster_ingested_total", COUNTER,
        "Updates this instance appended to the partition streams (added), "
        "or found there already (duplicate).",
        {"result"}, NULL, 0, ingest_results},
    [METRIC_CLUSTER_FENCED_REFUSED] = {
        "tghost_cluster_fenced_writes_refused_total", COUNTER,
        "Writes of this instance that Redis refused because the lease they "
        "were made under had moved on (commit, trim, ingest, storage).",
        {"what"}},
    [METRIC_CLUSTER_REDELIVERED] = {
        "tghost_cluster_redelivered_total", COUNTER,
        "Updates run again because an earlier owner of their partition may "
        "have started them (ctx.redelivered)."},
    [METRIC_CLUSTER_DEAD_LETTERS] = {
        "tghost_cluster_dead_letters_total", COUNTER,
        "Updates this instance moved to the dead letters (their owners died "
        "or lost them during each of their runs alone in a process)."},
    [METRIC_JOBS_SCHEDULED] = {
        "tghost_jobs_scheduled", GAUGE,
        "Scheduled jobs in the job store (tghost.jobs), running ones "
        "included; with a shared store, as of the last look."},
    [METRIC_JOBS_DUE] = {
        "tghost_jobs_due", GAUGE,
        "Jobs due and not started, as of the last look (they wait for a "
        "free run slot: jobs.concurrency)."},
    [METRIC_JOBS_RUNNING] = {
        "tghost_jobs_running", GAUGE,
        "Runs of scheduled jobs in flight in this process."},
    [METRIC_JOBS_LATE_SECONDS] = {
        "tghost_jobs_late_seconds", GAUGE,
        "How far behind schedule the oldest due job not started yet was, as "
        "of the last look (0: none waits)."},
    [METRIC_JOB_LATENESS] = {
        "tghost_job_lateness_seconds", HISTOGRAM,
        "Time from a job's due time to the start of its run.",
        .buckets = lateness_buckets, .nbuckets = NB(lateness_buckets)},
    [METRIC_JOB_RUNS] = {
        "tghost_job_runs_total", COUNTER,
        "Runs of scheduled jobs, by outcome (done; failed: an error or the "
        "CPU budget; timed_out: jobs.timeout; skipped: misfired under "
        "misfire \"skip\"; released: cut short by a stop, runs again).",
        {"outcome"}, .initial = job_outcomes},
    [METRIC_JOB_CLAIMS_LOST] = {
        "tghost_job_claims_lost_total", COUNTER,
        "Runs that lost their claim while running (their lease ran out and "
        "another instance may have run the job too)."},
    [METRIC_START_TIME] = {
        "tghost_start_time_seconds", GAUGE,
        "Unix time at which tghost started."},
    [METRIC_BUILD_INFO] = {
        "tghost_build_info", INFO,
        "tghost's version.", {"version"}},
};

struct series {
  char *l1, *l2;
  double value;                  /* counter, gauge, state, info */
  double sum;                    /* histogram */
  double *counts;                /* histogram: per bucket, not cumulative;
                                    [nbuckets] is +Inf */
};

struct family {
  struct series *s;
  size_t n, cap;
  size_t values;                 /* distinct first-label values */
  size_t last;                   /* the series found last time */
  const char *state;             /* STATESET: the current one */
};

static struct family families[METRIC_COUNT];

const char *metric_name(enum metric_id id) { return metric_defs[id].name; }

/* A label value as it may appear: a short identifier. */
static bool plain_value(const char *v) {
  size_t n = 0;
  for (; v[n]; n++) {
    char c = v[n];
    if (n >= 64 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                     c == '-'))
      return false;
  }
  return n > 0;
}

static bool same(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static struct series *find(struct family *f, const char *l1, const char *l2) {
  if (f->last < f->n && same(f->s[f->last].l1, l1) &&
      same(f->s[f->last].l2, l2))
    return &f->s[f->last];
  for (size_t i = 0; i < f->n; i++) {
    if (same(f->s[i].l1, l1) && same(f->s[i].l2, l2)) {
      f->last = i;
      return &f->s[i];
    }
  }
  return NULL;
}

static bool has_first_value(const struct family *f, const char *l1) {
  for (size_t i = 0; i < f->n; i++)
    if (same(f->s[i].l1, l1)) return true;
  return false;
}

static struct series *add_series(enum metric_id id, const char *l1,
                                 const char *l2) {
  struct family *f = &families[id];
  const struct metric_def *d = &metric_defs[id];
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 4;
    f->s = xrealloc(f->s, f->cap * sizeof *f->s);
  }
  struct series *s = &f->s[f->n];
  memset(s, 0, sizeof *s);
  s->l1 = l1 ? xstrdup(l1) : NULL;
  s->l2 = l2 ? xstrdup(l2) : NULL;
  if (d->type == HISTOGRAM) s->counts = xcalloc(d->nbuckets + 1, sizeof *s->counts);
  f->last = f->n++;
  return s;
}

static void init_family(enum metric_id id) {
  struct family *f = &families[id];
  const struct metric_def *d = &metric_defs[id];
  if (f->s || f->cap) return;
  f->cap = 1;   /* marks it initialised */
  f->s = xcalloc(1, sizeof *f->s);
  if (!d->labels[0]) {
    add_series(id, NULL, NULL);
    return;
  }
  if (d->initial && d->type != INFO)
    for (size_t i = 0; d->initial[i]; i++) {
      add_series(id, d->initial[i], NULL);
      f->values++;
    }
}

/* The series for the labels, created if need be, with the first label
 * folded into "other" past the bound. */
static struct series *series_of(enum metric_id id, const char *l1,
                                const char *l2) {
  struct family *f = &families[id];
  const struct metric_def *d = &metric_defs[id];
  init_family(id);
  if (!d->labels[0]) return &f->s[0];
  if (!l1 || !plain_value(l1)) l1 = "other";
  if (d->labels[1]) {
    if (!l2 || !plain_value(l2)) l2 = "other";
  } else {
    l2 = NULL;
  }
  struct series *s = find(f, l1, l2);
  if (s) return s;
  if (!has_first_value(f, l1)) {
    if (f->values >= (d->max_values ? d->max_values : METRIC_MAX_VALUES)) {
      l1 = "other";
      if ((s = find(f, l1, l2))) return s;
      if (!has_first_value(f, l1)) f->values++;
    } else {
      f->values++;
    }
  }
  return add_series(id, l1, l2);
}

void metric_add(enum metric_id id, double v, const char *l1, const char *l2) {
  if (!(v >= 0)) return;
  series_of(id, l1, l2)->value += v;
}

void metric_set(enum metric_id id, double v, const char *l1, const char *l2) {
  series_of(id, l1, l2)->value = v;
}

void metric_observe(enum metric_id id, double v, const char *l1,
                    const char *l2) {
  const struct metric_def *d = &metric_defs[id];
  if (d->type != HISTOGRAM || isnan(v)) return;
  struct series *s = series_of(id, l1, l2);
  size_t b = 0;
  while (b < d->nbuckets && v > d->buckets[b]) b++;
  s->counts[b] += 1;
  s->value += 1;
  s->sum += v;
}

void metric_set_state(enum metric_id id, const char *state) {
  struct family *f = &families[id];
  init_family(id);
  struct series *on = NULL;
  for (size_t i = 0; i < f->n; i++) {
    bool match = strcmp(f->s[i].l1, state) == 0;
    f->s[i].value = match ? 1 : 0;
    if (match) on = &f->s[i];
  }
  f->state = on ? on->l1 : NULL;
}

const char *metric_state(enum metric_id id) { return families[id].state; }

static void free_series(struct series *s) {
  free(s->l1);
  free(s->l2);
  free(s->counts);
}

void metric_set_info(enum metric_id id, const char *l1, const char *text) {
  struct family *f = &families[id];
  init_family(id);
  for (size_t i = 0; i < f->n; i++) free_series(&f->s[i]);
  f->n = 0;
  f->values = 0;
  if (!l1) return;
  struct series *s = add_series(id, NULL, NULL);
  s->l1 = xstrdup(plain_value(l1) ? l1 : "other");
  if (metric_defs[id].labels[1]) {
    const char *t = text ? text : "";
    size_t n = strcspn(t, "\r\n");
    if (n > 160) n = 160;
    /* Not in the middle of a UTF-8 sequence. */
    while (n > 0 && n < strlen(t) && ((unsigned char)t[n] & 0xC0) == 0x80) n--;
    s->l2 = xstrndup(t, n);
  }
  s->value = 1;
}

const char *metric_info_text(enum metric_id id) {
  const struct family *f = &families[id];
  return f->n ? f->s[0].l2 : NULL;
}

double metric_value(enum metric_id id, const char *l1, const char *l2) {
  struct family *f = &families[id];
  init_family(id);
  if (!metric_defs[id].labels[1]) l2 = NULL;
  struct series *s = metric_defs[id].labels[0] ? find(f, l1, l2) : &f->s[0];
  return s ? s->value : 0;
}

/* --- the text format --------------------------------------------------- */

static void put_number(struct buf *out, double v) {
  if (isinf(v)) {
    buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
  } else if (isnan(v)) {
    buf_append_str(out, "NaN");
  } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    buf_printf(out, "%.0f", v);
  } else {
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    buf_append_str(out, tmp);
  }
}

/* HELP text escapes backslash and newline; label values also '"'. */
static void put_escaped(struct buf *out, const char *s, bool quote) {
  for (; *s; s++) {
    if (*s == '\\') buf_append_str(out, "\\\\");
    else if (*s == '\n') buf_append_str(out, "\\n");
    else if (quote && *s == '"') buf_append_str(out, "\\\"");
    else buf_append_char(out, *s);
  }
}

static void put_labels(struct buf *out, const struct metric_def *d,
                       const struct series *s, const char *le) {
  const char *values[2] = {s->l1, s->l2};
  bool any = false;
  for (int i = 0; i < 2; i++) {
    if (!d->labels[i] || !values[i]) continue;
    buf_append_str(out, any ? "," : "{");
    buf_printf(out, "%s=\"", d->labels[i]);
    put_escaped(out, values[i], true);
    buf_append_char(out, '"');
    any = true;
  }
  if (le) {
    buf_append_str(out, any ? "," : "{");
    buf_printf(out, "le=\"%s\"", le);
    any = true;
  }
  if (any) buf_append_char(out, '}');
}

static void render_histogram(struct buf *out, const struct metric_def *d,
                             const struct series *s) {
  double cumulative = 0;
  for (size_t b = 0; b <= d->nbuckets; b++) {
    cumulative += s->counts[b];
    struct buf le = BUF_INIT;
    if (b < d->nbuckets) put_number(&le, d->buckets[b]);
    else buf_append_str(&le, "+Inf");
    buf_printf(out, "%s_bucket", d->name);
    put_labels(out, d, s, le.data);
    buf_append_char(out, ' ');
    put_number(out, cumulative);
    buf_append_char(out, '\n');
    buf_free(&le);
  }
  buf_printf(out, "%s_sum", d->name);
  put_labels(out, d, s, NULL);
  buf_append_char(out, ' ');
  put_number(out, s->sum);
  buf_printf(out, "\n%s_count", d->name);
  put_labels(out, d, s, NULL);
  buf_append_char(out, ' ');
  put_number(out, s->value);
  buf_append_char(out, '\n');
}

static void (*collector)(void *ud);
static void *collector_ud;

void metrics_set_collector(void (*fn)(void *ud), void *ud) {
  collector = fn;
  collector_ud = ud;
}

void metrics_render(struct buf *out) {
  if (collector) collector(collector_ud);
  for (int id = 0; id < METRIC_COUNT; id++) {
    const struct metric_def *d = &metric_defs[id];
    struct family *f = &families[id];
    init_family((enum metric_id)id);
    static const char *const type_names[] = {"counter", "gauge", "histogram",
                                             "gauge", "gauge"};
    buf_printf(out, "# HELP %s ", d->name);
    put_escaped(out, d->help, false);
    buf_printf(out, "\n# TYPE %s %s\n", d->name, type_names[d->type]);
    for (size_t i = 0; i < f->n; i++) {
      const struct series *s = &f->s[i];
      if (d->type == HISTOGRAM) {
        render_histogram(out, d, s);
        continue;
      }
      buf_append_str(out, d->name);
      put_labels(out, d, s, NULL);
      buf_append_char(out, ' ');
      put_number(out, s->value);
      buf_append_char(out, '\n');
    }
  }
}

void metrics_reset(void) {
  for (int id = 0; id < METRIC_COUNT; id++) {
    struct family *f = &families[id];
    for (size_t i = 0; i < f->n; i++) free_series(&f->s[i]);
    free(f->s);
    memset(f, 0, sizeof *f);
  }
}
