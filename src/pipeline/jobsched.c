#include "pipeline/jobsched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cron.h"
#include "base/keyhash.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/qlist.h"
#include "pipeline/tzcache.h"
#include "store/jobstores.h"

#define CLAIM_BATCH 256          /* records per claim at most */
#define RETRY_MS 1000            /* after a store error */
/* The wake-up timer runs on the monotonic clock, due times on the wall
 * clock: looking at least this often notices the wall clock being set
 * (NTP, a suspended machine) within a minute. */
#define MAX_SLEEP_MS 60000

/* --- schedules and bodies ------------------------------------------------- */

/* A schedule, parsed from its text: "once", "every MS", "cron TZ EXPR"
 * (TZ "-" for the system's zone). The text is what the store compares
 * when a declaration comes again. */
struct schedule {
  enum job_repeat repeat;
  int64_t interval_ms;
  char *tz;                      /* "" for the system's zone */
  struct cron_expr cron;
  char *cron_text;
};

static void schedule_free(struct schedule *s) {
  free(s->tz);
  free(s->cron_text);
  memset(s, 0, sizeof *s);
}

static char *schedule_text(const struct job_spec *spec) {
  struct buf b = BUF_INIT;
  switch (spec->repeat) {
    case JOB_ONCE:
      buf_append_str(&b, "once");
      if (spec->when) buf_printf(&b, " %s", spec->when);
      if (spec->cron && spec->tz && *spec->tz) buf_printf(&b, " %s", spec->tz);
      break;
    case JOB_EVERY:
      buf_printf(&b, "every %" PRId64, spec->interval_ms);
      break;
    case JOB_CRON:
      buf_printf(&b, "cron %s %s", spec->tz && *spec->tz ? spec->tz : "-",
                 spec->cron);
      break;
  }
  return buf_steal(&b, NULL);
}

static bool schedule_parse(const char *text, struct schedule *out) {
  memset(out, 0, sizeof *out);
  if (strncmp(text, "once", 4) == 0 && (text[4] == '\0' || text[4] == ' ')) {
    out->repeat = JOB_ONCE;
    return true;
  }
  if (strncmp(text, "every ", 6) == 0) {
    char *end;
    long long v = strtoll(text + 6, &end, 10);
    if (*end || v <= 0) return false;
    out->repeat = JOB_EVERY;
    out->interval_ms = v;
    return true;
  }
  if (strncmp(text, "cron ", 5) == 0) {
    const char *tz = text + 5;
    const char *sp = strchr(tz, ' ');
    if (!sp) return false;
    out->repeat = JOB_CRON;
    out->tz = (sp - tz == 1 && *tz == '-') ? xstrdup("")
                                           : xstrndup(tz, (size_t)(sp - tz));
    out->cron_text = xstrdup(sp + 1);
    struct buf err = BUF_INIT;
    bool ok = cron_parse(out->cron_text, &out->cron, &err) == 0;
    buf_free(&err);
    if (!ok) schedule_free(out);
    return ok;
  }
  return false;
}

/* What people read: "once", "every 90 s", "cron 0 9 * * * (Europe/Berlin)". */
static void schedule_display(const struct schedule *s, struct buf *out) {
  switch (s->repeat) {
    case JOB_ONCE:
      buf_append_str(out, "once");
      break;
    case JOB_EVERY:
      if (s->interval_ms % 1000 == 0)
        buf_printf(out, "every %" PRId64 " s", s->interval_ms / 1000);
      else
        buf_printf(out, "every %.3f s", (double)s->interval_ms / 1000);
      break;
    case JOB_CRON:
      buf_printf(out, "cron %s (%s)", s->cron_text, tzcache_display(s->tz));
      break;
  }
}

/* The body: what the store keeps opaque. Netstrings ("LEN:BYTES,") in a
 * fixed order after a version: name, data, misfire policy, limit, grace,
 * missed occurrences run in a row. */
struct body {
  char *name;
  char *data;
  size_t data_len;
  enum job_misfire misfire;
  int misfire_limit;
  int64_t grace_ms;
  int missed;
};

static void body_free(struct body *b) {
  free(b->name);
  free(b->data);
  memset(b, 0, sizeof *b);
}

static void put_netstring(struct buf *out, const char *s, size_t len) {
  buf_printf(out, "%zu:", len);
  buf_append(out, s, len);
  buf_append_char(out, ',');
}

static void put_number(struct buf *out, int64_t v) {
  char n[24];
  int len = snprintf(n, sizeof n, "%" PRId64, v);
  put_netstring(out, n, (size_t)len);
}

static char *body_encode(const struct body *b, size_t *len) {
  struct buf out = BUF_INIT;
  put_number(&out, 1);
  put_netstring(&out, b->name, strlen(b->name));
  put_netstring(&out, b->data ? b->data : "", b->data_len);
  put_number(&out, b->misfire);
  put_number(&out, b->misfire_limit);
  put_number(&out, b->grace_ms);
  put_number(&out, b->missed);
  return buf_steal(&out, len);
}

static bool get_netstring(const char **p, const char *end, const char **s,
                          size_t *len) {
  size_t n = 0;
  const char *q = *p;
  if (q >= end || *q < '0' || *q > '9') return false;
  while (q < end && *q >= '0' && *q <= '9') {
    n = n * 10 + (size_t)(*q++ - '0');
    if (n > (size_t)(end - *p)) return false;
  }
  if (q >= end || *q++ != ':' || (size_t)(end - q) < n + 1 || q[n] != ',')
    return false;
  *s = q;
  *len = n;
  *p = q + n + 1;
  return true;
}

static bool get_number(const char **p, const char *end, int64_t *v) {
  const char *s;
  size_t len;
  if (!get_netstring(p, end, &s, &len) || len == 0 || len > 20) return false;
  char tmp[24];
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  char *e;
  long long x = strtoll(tmp, &e, 10);
  if (*e) return false;
  *v = x;
  return true;
}

static bool body_decode(const char *data, size_t len, struct body *b) {
  memset(b, 0, sizeof *b);
  const char *p = data, *end = data + len, *s;
  size_t n;
  int64_t version, misfire, limit, grace, missed;
  if (!get_number(&p, end, &version) || version != 1) return false;
  if (!get_netstring(&p, end, &s, &n)) return false;
  b->name = xstrndup(s, n);
  if (!get_netstring(&p, end, &s, &n)) goto bad;
  b->data = xmalloc(n + 1);
  memcpy(b->data, s, n);
  b->data[n] = '\0';
  b->data_len = n;
  if (!get_number(&p, end, &misfire) || !get_number(&p, end, &limit) ||
      !get_number(&p, end, &grace) || !get_number(&p, end, &missed) ||
      misfire < MISFIRE_ONCE || misfire > MISFIRE_ALL)
    goto bad;
  b->misfire = (enum job_misfire)misfire;
  b->misfire_limit = (int)limit;
  b->grace_ms = grace;
  b->missed = (int)missed;
  return true;
bad:
  body_free(b);
  return false;
}

static const char *const misfire_names[] = {"once", "skip", "all"};

const char jobsched_exiting[] = "tghost is exiting";

const char *job_misfire_name(enum job_misfire m) { return misfire_names[m]; }

int job_misfire_from_name(const char *name) {
  for (int i = 0; i < 3; i++)
    if (strcmp(misfire_names[i], name) == 0) return i;
  return -1;
}

/* --- the scheduler ---------------------------------------------------------- */

/* A store request in flight, with what to do when it completes. */
struct op {
  struct qnode node;             /* in s->ops */
  struct jobsched *s;
  enum { OP_PUT, OP_CANCEL, OP_LIST, OP_CLAIM, OP_FINISH, OP_RENEW } kind;
  jobsched_put_fn put_done;
  jobsched_cancel_fn cancel_done;
  jobsched_list_fn list_done;
  void *ud;
  struct jrun *run;              /* OP_FINISH */
  int64_t due_ms;                /* OP_PUT, OP_FINISH: the due time written */
  struct jobreq *req;            /* OP_FINISH waiting to be sent again */
};

/* A run: a claimed record from claim to FINISH. */
struct jrun {
  struct qnode node;             /* in s->runs while it holds a slot */
  struct jobsched *s;
  struct jobrec rec;
  struct schedule sch;
  struct body body;
  struct job_run_info info;
  char *label;                   /* "name id" for log lines */
  struct job *job;
  struct job_owner *gen;         /* the run's generation, while it runs */
  struct event *timer;           /* the jobs timeout */
  int64_t started_ms;            /* wall clock */
  uint64_t started_mono_us;
  bool late, timed_out, lost, waiting_zone;
};

/* A put that waits for its time zone before its due time is known. */
struct pending_put {
  struct qnode node;             /* in s->pending_puts */
  struct jobsched *s;
  struct jobreq *req;
  struct cron_expr cron;
  char *tz;
  jobsched_put_fn done;
  void *ud;
  int64_t first_ms;
};

struct jobsched {
  struct jobsched_env env;
  struct jobstore store;
  bool opened, started, draining;
  char *store_name;
  struct tzcache *tz;
  struct job_owner *gen;

  int concurrency;
  long timeout_ms, lease_ms, poll_ms, grace_ms;
  enum job_misfire misfire;
  int misfire_limit;
  char owner[96];

  struct qlist ops;              /* store requests in flight */
  struct qlist retrying;         /* FINISH ops the store failed: sent
                                  * again every RETRY_MS */
  struct jobreq *held_head, *held_tail;   /* made before the start */
  struct qlist runs;             /* holding a run slot */
  size_t nruns;
  struct qlist pending_puts;     /* puts waiting for a zone */
  size_t waiting_zones;
  bool claiming;
  int64_t next_ms;               /* earliest due time or lease end known */
  int64_t last_look_ms;
  int64_t retry_at_ms;
  bool store_failing;
  long stored;                   /* for the gauge; -1 unknown */
  struct event *wake, *renew, *drain_timer, *kick, *retry_timer;

  int64_t offset_ms;             /* the sandbox's clock */
  bool advancing;
  int64_t advance_target;
  void (*advance_done)(void *ud);
  void *advance_ud;
};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int64_t jobsched_now_ms(const struct jobsched *s) {
  return wall_ms() + s->offset_ms;
}

static void pump(struct jobsched *s);
static void settle(struct jobsched *s);

static void arm_ms(struct event *ev, int64_t ms) {
  if (ms < 0) ms = 0;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

static void set_gauges(struct jobsched *s) {
  metric_set(METRIC_JOBS_RUNNING, (double)s->nruns, NULL, NULL);
  if (s->stored >= 0)
    metric_set(METRIC_JOBS_SCHEDULED, (double)s->stored, NULL, NULL);
}

static void learn_due(struct jobsched *s, int64_t due_ms) {
  if (due_ms < 0) return;
  if (s->next_ms < 0 || due_ms < s->next_ms) s->next_ms = due_ms;
}

/* Submits req for op (or holds it until the start). */
static void submit(struct jobsched *s, struct op *op, struct jobreq *req);

static struct op *op_new(struct jobsched *s, int kind) {
  struct op *op = xcalloc(1, sizeof *op);
  op->s = s;
  op->kind = kind;
  return op;
}

/* A store request ended: op leaves the list. */
static void op_end(struct op *op) {
  qlist_remove(&op->s->ops, &op->node);
}

/* Nothing in flight and the loop may go on. */
bool jobsched_idle(const struct jobsched *s) {
  return s->nruns == 0 && qlist_empty(&s->ops) && s->waiting_zones == 0 &&
         qlist_empty(&s->retrying);
}

static void check_idle(struct jobsched *s) {
  if (s->draining && jobsched_idle(s) && s->env.on_idle)
    s->env.on_idle(s->env.ud);
  if (s->advancing) event_active(s->kick, 0, 0);
}

/* --- store errors ------------------------------------------------------- */

static void store_failed(struct jobsched *s, const char *error) {
  if (!s->store_failing)
    log_error("jobs: %s (retrying every %d s)", error, RETRY_MS / 1000);
  s->store_failing = true;
  s->retry_at_ms = jobsched_now_ms(s) + RETRY_MS;
}

static void store_worked(struct jobsched *s) {
  if (s->store_failing) log_info("jobs: %s works again", s->store_name);
  s->store_failing = false;
  s->retry_at_ms = 0;
}

/* --- finishing runs ------------------------------------------------------- */

static void run_free(struct jrun *run) {
  if (run->timer) event_free(run->timer);
  jobrec_free(&run->rec);
  schedule_free(&run->sch);
  body_free(&run->body);
  free(run->label);
  free(run);
}

static void on_finish_done(struct jobreq *req, void *ud) {
  struct op *op = ud;
  struct jobsched *s = op->s;
  struct jrun *run = op->run;
  op_end(op);
  if (req->error && !s->draining) {
    /* The store is failing (Redis restarting, a locked file): the end is
     * sent again until it lands, the claim renewed meanwhile, so a short
     * outage does not make the job run twice. */
    store_failed(s, req->error);
    free(req->error);
    req->error = NULL;
    op->req = req;
    qlist_push_back(&s->retrying, &op->node);
    if (!evtimer_pending(s->retry_timer, NULL)) arm_ms(s->retry_timer, RETRY_MS);
    return;
  }
  if (req->error) {
    struct log_fields f = {0, -1};
    log_msg(LOG_ERROR, &f, "job %s: could not record the end of this run: "
            "%s; it will run again once its claim lapses (%ld s)", run->label,
            req->error,
            s->lease_ms / 1000);
  } else if (!req->found) {
    struct log_fields f = {0, -1};
    log_msg(LOG_DEBUG, &f, "job %s changed while this run lasted "
            "(cancelled, replaced, or its claim lapsed and was taken over): "
            "this run does not reschedule it", run->label);
  } else {
    learn_due(s, op->due_ms);
    if (op->due_ms < 0 && s->stored > 0 && !req->release) s->stored--;
  }
  set_gauges(s);
  jobreq_free(req);
  run_free(run);
  free(op);
  pump(s);
  check_idle(s);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  struct jobsched *s = arg;
  struct qnode *n;
  while ((n = qlist_pop_front(&s->retrying))) {
    struct op *op = qlist_entry(n, struct op, node);
    struct jobreq *req = op->req;
    op->req = NULL;
    qlist_push_back(&s->ops, &op->node);
    jobstore_submit(&s->store, req);
  }
}

/* The next due time of the run's job after this run (-1: none), and the
 * missed occurrences run in a row so far. */
static int64_t next_due(struct jrun *run, int64_t now, int *missed) {
  const struct schedule *sch = &run->sch;
  const struct body *b = &run->body;
  int64_t due = run->rec.due_ms;
  bool catch_up = b->misfire == MISFIRE_ALL && run->late;
  if (catch_up && b->missed + 1 >= b->misfire_limit) {
    struct log_fields f = {0, -1};
    log_msg(LOG_WARN, &f, "job %s ran %d missed occurrence(s) in a row "
            "(misfire \"all\", misfireLimit %d): skipping the rest",
            run->label, b->missed + 1, b->misfire_limit);
    catch_up = false;
  }
  *missed = catch_up ? b->missed + 1 : 0;
  int64_t base = catch_up ? due : now;
  switch (sch->repeat) {
    case JOB_ONCE:
      return -1;
    case JOB_EVERY: {
      if (base < due) base = due;
      int64_t k = (base - due) / sch->interval_ms + 1;
      return due + k * sch->interval_ms;
    }
    case JOB_CRON: {
      const struct tz_zone *z = tzcache_get(run->s->tz, sch->tz);
      if (!z) z = tz_utc();
      int64_t secs = base >= 0 ? base / 1000 : (base - 999) / 1000;
      int64_t next = cron_next(&sch->cron, z, secs);
      return next < 0 ? -1 : next * 1000;
    }
  }
  return -1;
}

enum run_outcome { RUN_DONE, RUN_FAILED, RUN_TIMED_OUT, RUN_SKIPPED,
                   RUN_RELEASED };
static const char *const outcome_names[] = {"done", "failed", "timed_out",
                                            "skipped", "released"};

/* The run is over: it gives its slot back and its job is rescheduled,
 * deleted or released. */
static void run_complete(struct jrun *run, enum run_outcome outcome) {
  struct jobsched *s = run->s;
  qlist_remove(&s->runs, &run->node);
  s->nruns--;
  metric_inc(METRIC_JOB_RUNS, outcome_names[outcome], NULL);
  if (log_trace_enabled() && outcome != RUN_SKIPPED) {
    struct log_fields f = {run->gen ? run->gen->id : 0, -1};
    double ms = (double)(mono_us() - run->started_mono_us) / 1000.0;
    log_trace(&f, NULL, "job %s %s (%.1f ms)", run->label,
              outcome_names[outcome], ms);
  }
  run->gen = NULL;
  struct op *op = op_new(s, OP_FINISH);
  op->run = run;
  struct jobreq *req = jobreq_new(JOBREQ_FINISH, on_finish_done, op);
  req->rec.id = xstrdup(run->rec.id);
  req->rec.token = xstrdup(run->rec.token);
  req->now_ms = jobsched_now_ms(s);
  if (outcome == RUN_RELEASED) {
    req->release = true;
    op->due_ms = run->rec.due_ms;
  } else {
    int missed;
    int64_t due = next_due(run, req->now_ms, &missed);
    req->rec.due_ms = due;
    op->due_ms = due;
    if (due >= 0 && missed != run->body.missed) {
      run->body.missed = missed;
      req->rec.body = body_encode(&run->body, &req->rec.body_len);
    }
  }
  submit(s, op, req);
  set_gauges(s);
  pump(s);
}

static void on_run_end(struct job *job, void *ud) {
  struct jrun *run = ud;
  struct jobsched *s = run->s;
  run->job = NULL;
  if (run->timer) evtimer_del(run->timer);
  enum job_end how = job_how_ended(job);
  enum run_outcome outcome;
  if (how == JOB_DONE) {
    outcome = RUN_DONE;
  } else if (how == JOB_FAILED) {
    if (!job_failure_reported(job))
      s->env.ops->report_failure(job, &run->info,
                                 job_error(job) ? job_error(job) : "failed");
    outcome = RUN_FAILED;
  } else {
    outcome = run->timed_out ? RUN_TIMED_OUT : RUN_RELEASED;
  }
  run_complete(run, outcome);
}

static void on_run_timeout(evutil_socket_t fd, short what, void *arg) {
  struct jrun *run = arg;
  if (!run->job) return;
  run->timed_out = true;
  char msg[160];
  snprintf(msg, sizeof msg, "the job %s timed out after %ld ms",
           run->body.name, run->s->timeout_ms);
  run->s->env.ops->report_failure(run->job, &run->info, msg);
  job_cancel(run->job, msg);
}

/* --- starting runs ---------------------------------------------------------- */

static void renew_soon(struct jobsched *s) {
  if (!evtimer_pending(s->renew, NULL)) arm_ms(s->renew, s->lease_ms / 3);
}

static void run_start(struct jrun *run) {
  struct jobsched *s = run->s;
  int64_t now = jobsched_now_ms(s);
  int64_t late_ms = now - run->rec.due_ms;
  run->late = late_ms > run->body.grace_ms;
  if (run->late && run->body.misfire == MISFIRE_SKIP && !run->info.redelivered) {
    struct log_fields f = {0, -1};
    log_msg(LOG_INFO, &f, "job %s skipped: due %.1f s ago (misfire \"skip\", "
            "grace %.1f s)", run->label, (double)late_ms / 1000,
            (double)run->body.grace_ms / 1000);
    run_complete(run, RUN_SKIPPED);
    return;
  }
  if (late_ms < 0) late_ms = 0;
  metric_observe(METRIC_JOB_LATENESS, (double)late_ms / 1000.0, NULL, NULL);
  run->started_ms = now;
  run->started_mono_us = mono_us();
  run->gen = s->gen;
  if (log_trace_enabled()) {
    struct log_fields f = {s->gen ? s->gen->id : 0, -1};
    log_trace(&f, NULL, "job %s started (%s%.1f ms late%s)", run->label,
              run->info.redelivered ? "redelivered, " : "",
              (double)late_ms, run->late ? ", misfired" : "");
  }
  struct job *job =
      s->gen ? s->env.ops->start(s->gen, &run->info, on_run_end, run) : NULL;
  if (!job) {
    run_complete(run, RUN_FAILED);
    return;
  }
  run->job = job;
  if (s->timeout_ms > 0) {
    run->timer = evtimer_new(s->env.base, on_run_timeout, run);
    arm_ms(run->timer, s->timeout_ms);
  }
  renew_soon(s);
}

static void on_run_zone(void *ud, const struct tz_zone *zone,
                        const char *error) {
  struct jrun *run = ud;
  run->waiting_zone = false;
  if (!zone) {
    struct log_fields f = {0, -1};
    log_msg(LOG_WARN, &f, "job %s: time zone %s: %s; its next fire time is "
            "computed in UTC", run->label, tzcache_display(run->sch.tz), error);
  }
  run_start(run);
}

/* A record this process has claimed. */
static void run_claimed(struct jobsched *s, const struct jobrec *rec) {
  struct jrun *run = xcalloc(1, sizeof *run);
  run->s = s;
  jobrec_copy(&run->rec, rec);
  qlist_push_back(&s->runs, &run->node);
  s->nruns++;
  struct buf label = BUF_INIT;
  bool ok = schedule_parse(rec->schedule, &run->sch) &&
            body_decode(rec->body, rec->body_len, &run->body);
  buf_printf(&label, "%s (id %s)", ok ? run->body.name : "?", rec->id);
  run->label = buf_steal(&label, NULL);
  if (!ok) {
    struct log_fields f = {0, -1};
    log_msg(LOG_ERROR, &f, "job %s: the stored job cannot be read (written "
            "by another program?); deleted", run->label);
    run->sch.repeat = JOB_ONCE;
    run->body.name = xstrdup("?");
    run_complete(run, RUN_FAILED);
    return;
  }
  run->info.id = run->rec.id;
  run->info.name = run->body.name;
  run->info.data = run->body.data;
  run->info.data_len = run->body.data_len;
  run->info.scheduled_ms = run->rec.due_ms;
  run->info.attempt = run->rec.attempts;
  run->info.redelivered = run->rec.attempts > 1;
  if (run->sch.repeat == JOB_CRON && !tzcache_get(s->tz, run->sch.tz)) {
    run->waiting_zone = true;
    tzcache_load(s->tz, run->sch.tz, on_run_zone, run);
    return;
  }
  run_start(run);
}

/* --- claiming ------------------------------------------------------------ */

static size_t free_slots(const struct jobsched *s) {
  return s->nruns >= (size_t)s->concurrency
             ? 0
             : (size_t)s->concurrency - s->nruns;
}

static void arm(struct jobsched *s) {
  if (!s->started || s->draining) {
    evtimer_del(s->wake);
    return;
  }
  int64_t at = s->next_ms;
  if (s->store.backend->shared) {
    int64_t look = s->last_look_ms + s->poll_ms;
    if (at < 0 || look < at) at = look;
  }
  if (s->retry_at_ms > 0 && (at < 0 || at < s->retry_at_ms)) at = s->retry_at_ms;
  if (at < 0) {
    evtimer_del(s->wake);
    return;
  }
  int64_t delay = at - jobsched_now_ms(s);
  arm_ms(s->wake, delay < MAX_SLEEP_MS ? delay : MAX_SLEEP_MS);
}

static void on_claimed(struct jobreq *req, void *ud) {
  struct op *op = ud;
  struct jobsched *s = op->s;
  op_end(op);
  free(op);
  s->claiming = false;
  int64_t now = jobsched_now_ms(s);
  if (req->error) {
    store_failed(s, req->error);
  } else {
    store_worked(s);
    s->next_ms = req->nrecs >= req->limit ? now : req->next_ms;
    if (req->stored >= 0) s->stored = req->stored;
    if (req->due >= 0) metric_set(METRIC_JOBS_DUE, (double)req->due, NULL, NULL);
    metric_set(METRIC_JOBS_LATE_SECONDS,
               req->oldest_due_ms >= 0 && req->oldest_due_ms < now
                   ? (double)(now - req->oldest_due_ms) / 1000.0
                   : 0.0,
               NULL, NULL);
    for (size_t i = 0; i < req->nrecs; i++) run_claimed(s, &req->recs[i]);
  }
  set_gauges(s);
  jobreq_free(req);
  pump(s);
  check_idle(s);
}

static void pump(struct jobsched *s) {
  if (!s->started || s->draining || s->claiming) return;
  if (s->env.accepting && !s->env.accepting(s->env.ud)) return;
  size_t slots = free_slots(s);
  if (slots == 0) return;
  int64_t now = jobsched_now_ms(s);
  bool look = s->next_ms >= 0 && s->next_ms <= now;
  if (s->store.backend->shared && now >= s->last_look_ms + s->poll_ms)
    look = true;
  if (s->retry_at_ms > now) look = false;
  if (!look) {
    arm(s);
    return;
  }
  s->claiming = true;
  s->last_look_ms = now;
  struct op *op = op_new(s, OP_CLAIM);
  struct jobreq *req = jobreq_new(JOBREQ_CLAIM, on_claimed, op);
  req->now_ms = now;
  req->limit = slots < CLAIM_BATCH ? slots : CLAIM_BATCH;
  req->lease_ms = now + s->lease_ms;
  req->owner = s->owner;
  submit(s, op, req);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  pump(arg);
}

/* --- renewing claims ----------------------------------------------------- */

static void on_renewed(struct jobreq *req, void *ud) {
  struct op *op = ud;
  struct jobsched *s = op->s;
  op_end(op);
  free(op);
  if (req->error) {
    store_failed(s, req->error);
  } else {
    for (size_t i = 0; i < req->nrecs; i++) {
      if (req->held[i]) continue;
      qlist_foreach(node, &s->runs) {
        struct jrun *run = qlist_entry(node, struct jrun, node);
        if (run->lost || strcmp(run->rec.id, req->recs[i].id) != 0 ||
            strcmp(run->rec.token, req->recs[i].token) != 0)
          continue;
        run->lost = true;
        metric_inc(METRIC_JOB_CLAIMS_LOST, NULL, NULL);
        struct log_fields f = {0, -1};
        log_msg(LOG_WARN, &f, "job %s: this run lost its claim (the job was "
                "cancelled or replaced, or its lease of %ld s ran out and "
                "another instance took it over)", run->label, s->lease_ms / 1000);
      }
    }
  }
  jobreq_free(req);
  check_idle(s);
}

static void on_renew(evutil_socket_t fd, short what, void *arg) {
  struct jobsched *s = arg;
  if (s->nruns == 0 && qlist_empty(&s->retrying)) return;
  struct op *op = op_new(s, OP_RENEW);
  struct jobreq *req = jobreq_new(JOBREQ_RENEW, on_renewed, op);
  req->lease_ms = jobsched_now_ms(s) + s->lease_ms;
  qlist_foreach(node, &s->runs) {
    struct jrun *run = qlist_entry(node, struct jrun, node);
    if (run->lost) continue;
    jobreq_add_rec(req, &(struct jobrec){.id = run->rec.id,
                                         .token = run->rec.token});
  }
  qlist_foreach(node, &s->retrying) {
    struct jrun *run = qlist_entry(node, struct op, node)->run;
    jobreq_add_rec(req, &(struct jobrec){.id = run->rec.id,
                                         .token = run->rec.token});
  }
  if (req->nrecs) submit(s, op, req);
  else {
    jobreq_free(req);
    free(op);
  }
  arm_ms(s->renew, s->lease_ms / 3);
}

/* --- requests from scripts ------------------------------------------------ */

static void submit(struct jobsched *s, struct op *op, struct jobreq *req) {
  qlist_push_back(&s->ops, &op->node);
  if (!s->started) {
    req->next = NULL;
    if (s->held_tail) s->held_tail->next = req;
    else s->held_head = req;
    s->held_tail = req;
    return;
  }
  jobstore_submit(&s->store, req);
}

static void on_put_done(struct jobreq *req, void *ud) {
  struct op *op = ud;
  struct jobsched *s = op->s;
  op_end(op);
  if (req->error) {
    op->put_done(op->ud, NULL, req->error);
  } else {
    if (!req->found && s->stored >= 0) s->stored++;
    learn_due(s, op->due_ms);
    set_gauges(s);
    op->put_done(op->ud, req->rec.id, NULL);
  }
  jobreq_free(req);
  free(op);
  pump(s);
  check_idle(s);
}

static void put_submit(struct jobsched *s, struct jobreq *req,
                       jobsched_put_fn done, void *ud) {
  struct op *op = op_new(s, OP_PUT);
  op->put_done = done;
  op->ud = ud;
  op->due_ms = req->rec.due_ms;
  req->done = on_put_done;
  req->ud = op;
  submit(s, op, req);
}

static void on_put_zone(void *ud, const struct tz_zone *zone,
                        const char *error) {
  struct pending_put *p = ud;
  struct jobsched *s = p->s;
  s->waiting_zones--;
  qlist_remove(&s->pending_puts, &p->node);
  if (!zone) {
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "time zone %s: %s", tzcache_display(p->tz), error);
    p->done(p->ud, NULL, msg.data);
    buf_free(&msg);
    jobreq_free(p->req);
  } else {
    int64_t from = p->first_ms >= 0 ? p->first_ms : jobsched_now_ms(s);
    int64_t secs = from >= 0 ? from / 1000 : (from - 999) / 1000;
    int64_t next = cron_next(&p->cron, zone, secs);
    if (next < 0) {
      p->done(p->ud, NULL, "the cron expression never fires again");
      jobreq_free(p->req);
    } else {
      p->req->rec.due_ms = next * 1000;
      put_submit(s, p->req, p->done, p->ud);
    }
  }
  free(p->tz);
  free(p);
  check_idle(s);
}

void jobsched_put(struct jobsched *s, const struct job_spec *spec,
                  jobsched_put_fn done, void *ud) {
  struct body b = {
      .name = (char *)spec->name,
      .data = (char *)spec->data,
      .data_len = spec->data_len,
      .misfire = spec->misfire,
      .misfire_limit = spec->misfire_limit > 0 ? spec->misfire_limit
                                               : s->misfire_limit,
      .grace_ms = spec->grace_ms >= 0 ? spec->grace_ms : s->grace_ms,
  };
  if ((int)spec->misfire < 0) b.misfire = s->misfire;
  struct jobreq *req = jobreq_new(JOBREQ_PUT, NULL, NULL);
  req->rec.id = spec->id ? xstrdup(spec->id) : NULL;
  req->prefix = xstrdup(spec->prefix ? spec->prefix : "");
  req->rec.schedule = schedule_text(spec);
  req->rec.body = body_encode(&b, &req->rec.body_len);
  req->keep_if_same = spec->keep_if_same;
  req->done = on_put_done;
  int64_t now = jobsched_now_ms(s);
  if (spec->cron) {
    /* The first run is a local time: it needs the zone, which may need
     * reading. */
    struct pending_put *p = xcalloc(1, sizeof *p);
    struct buf err = BUF_INIT;
    if (cron_parse(spec->cron, &p->cron, &err) != 0) {
      free(p);
      jobreq_free(req);
      done(ud, NULL, err.data);
      buf_free(&err);
      return;
    }
    p->s = s;
    p->req = req;
    p->done = done;
    p->ud = ud;
    p->first_ms = spec->first_ms;
    p->tz = xstrdup(spec->tz ? spec->tz : "");
    s->waiting_zones++;
    qlist_push_back(&s->pending_puts, &p->node);
    tzcache_load(s->tz, p->tz, on_put_zone, p);
    return;
  }
  if (spec->first_ms >= 0) req->rec.due_ms = spec->first_ms;
  else if (spec->repeat == JOB_EVERY) req->rec.due_ms = now + spec->interval_ms;
  else req->rec.due_ms = now;
  put_submit(s, req, done, ud);
}

static void on_cancel_done(struct jobreq *req, void *ud) {
  struct op *op = ud;
  struct jobsched *s = op->s;
  op_end(op);
  if (!req->error && req->found && s->stored > 0) s->stored--;
  set_gauges(s);
  op->cancel_done(op->ud, req->found, req->error);
  jobreq_free(req);
  free(op);
  check_idle(s);
}

void jobsched_cancel(struct jobsched *s, const char *id,
                     jobsched_cancel_fn done, void *ud) {
  struct op *op = op_new(s, OP_CANCEL);
  op->cancel_done = done;
  op->ud = ud;
  struct jobreq *req = jobreq_new(JOBREQ_DELETE, on_cancel_done, op);
  req->rec.id = xstrdup(id);
  submit(s, op, req);
}

static void on_list_done(struct jobreq *req, void *ud) {
  struct op *op = ud;
  struct jobsched *s = op->s;
  op_end(op);
  if (req->error) {
    op->list_done(op->ud, NULL, 0, req->error);
  } else {
    struct job_info *infos = xcalloc(req->nrecs ? req->nrecs : 1, sizeof *infos);
    size_t n = 0;
    int64_t now = jobsched_now_ms(s);
    for (size_t i = 0; i < req->nrecs; i++) {
      const struct jobrec *r = &req->recs[i];
      struct schedule sch;
      struct body b;
      if (!schedule_parse(r->schedule, &sch)) continue;
      if (!body_decode(r->body, r->body_len, &b)) {
        schedule_free(&sch);
        continue;
      }
      struct job_info *ji = &infos[n++];
      ji->id = xstrdup(r->id);
      ji->name = b.name;
      ji->data = b.data;
      ji->data_len = b.data_len;
      struct buf text = BUF_INIT;
      schedule_display(&sch, &text);
      ji->schedule = buf_steal(&text, NULL);
      ji->next_ms = r->due_ms;
      ji->running = r->token && r->lease_ms > now;
      ji->attempts = r->attempts;
      schedule_free(&sch);
    }
    op->list_done(op->ud, infos, n, NULL);
    for (size_t i = 0; i < n; i++) {
      free(infos[i].id);
      free(infos[i].name);
      free(infos[i].data);
      free(infos[i].schedule);
    }
    free(infos);
  }
  jobreq_free(req);
  free(op);
  check_idle(s);
}

void jobsched_list(struct jobsched *s, const char *prefix, size_t limit,
                   jobsched_list_fn done, void *ud) {
  struct op *op = op_new(s, OP_LIST);
  op->list_done = done;
  op->ud = ud;
  struct jobreq *req = jobreq_new(JOBREQ_LIST, on_list_done, op);
  req->prefix = xstrdup(prefix ? prefix : "");
  req->limit = limit;
  submit(s, op, req);
}

/* --- the sandbox's clock ---------------------------------------------------- */

static bool settled(const struct jobsched *s) {
  return s->nruns == 0 && qlist_empty(&s->ops) && s->waiting_zones == 0 &&
         !s->claiming;
}

/* One step of an advance, whenever nothing is in flight: run what is due
 * now, else move the clock to the next due time on the way, else to the
 * end. */
static void settle(struct jobsched *s) {
  if (!s->advancing || !settled(s)) return;
  int64_t now = jobsched_now_ms(s);
  bool can_run = s->started && !s->draining &&
                 (!s->env.accepting || s->env.accepting(s->env.ud));
  if (can_run && s->next_ms >= 0 && s->next_ms <= now) {
    /* Due now: claim (its completion brings us back). */
    s->last_look_ms = 0;
    pump(s);
    if (s->claiming) return;
  } else if (can_run && s->next_ms > now && s->next_ms <= s->advance_target) {
    s->offset_ms += s->next_ms - now;
    event_active(s->kick, 0, 0);
    return;
  }
  if (s->advance_target > now) s->offset_ms += s->advance_target - now;
  s->advancing = false;
  arm(s);
  if (s->advance_done) s->advance_done(s->advance_ud);
}

static void on_kick(evutil_socket_t fd, short what, void *arg) {
  settle(arg);
}

void jobsched_advance(struct jobsched *s, int64_t ms,
                      void (*done)(void *ud), void *ud) {
  s->advancing = true;
  s->advance_target = jobsched_now_ms(s) + (ms > 0 ? ms : 0);
  s->advance_done = done;
  s->advance_ud = ud;
  event_active(s->kick, 0, 0);
}

/* --- life -------------------------------------------------------------------- */

struct jobsched *jobsched_new(const struct jobsched_env *env) {
  struct jobsched *s = xcalloc(1, sizeof *s);
  s->env = *env;
  s->tz = tzcache_new(env->base);
  qlist_init(&s->ops);
  qlist_init(&s->runs);
  qlist_init(&s->pending_puts);
  qlist_init(&s->retrying);
  s->next_ms = -1;
  s->stored = 0;
  s->wake = evtimer_new(env->base, on_wake, s);
  s->renew = evtimer_new(env->base, on_renew, s);
  s->kick = event_new(env->base, -1, 0, on_kick, s);
  s->retry_timer = evtimer_new(env->base, on_retry, s);
  s->concurrency = 100;
  s->lease_ms = 30000;
  s->poll_ms = 1000;
  s->grace_ms = 60000;
  s->misfire_limit = 10;
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  snprintf(s->owner, sizeof s->owner, "%s:%ld:%08" PRIx64, host,
           (long)getpid(), keyhash_random_seed() & 0xffffffffu);
  return s;
}

void jobsched_configure(struct jobsched *s, const struct run_options *o) {
  s->concurrency = o->jobs_concurrency > 0 ? o->jobs_concurrency : 100;
  s->timeout_ms = o->jobs_timeout_ms >= 0 ? o->jobs_timeout_ms : o->timeout_ms;
  s->lease_ms = o->jobs_lease_ms > 0 ? o->jobs_lease_ms : 30000;
  s->poll_ms = o->jobs_poll_ms > 0 ? o->jobs_poll_ms : 1000;
  s->grace_ms = o->jobs_grace_ms >= 0 ? o->jobs_grace_ms : 60000;
  s->misfire_limit = o->jobs_misfire_limit > 0 ? o->jobs_misfire_limit : 10;
  int m = o->jobs_misfire ? job_misfire_from_name(o->jobs_misfire) : 0;
  s->misfire = m >= 0 ? (enum job_misfire)m : MISFIRE_ONCE;
  pump(s);
}

int jobsched_open(struct jobsched *s, const char *kind, const char *target,
                  const char *ns, struct buf *err) {
  if (s->opened) return 0;
  const struct jobstore_backend *b = jobstore_backend(kind ? kind : "memory");
  if (!b) {
    buf_printf(err, "jobs.storage: a %s storage cannot keep jobs (memory, "
               "sqlite and redis can)", kind);
    return -1;
  }
  void *impl = b->open(s->env.base, target, ns, err);
  if (!impl) return -1;
  s->store.backend = b;
  s->store.impl = impl;
  s->opened = true;
  struct buf name = BUF_INIT;
  b->describe(impl, &name);
  s->store_name = buf_steal(&name, NULL);
  /* A shared store's count is learned at the first claim. */
  s->stored = b->shared ? -1 : 0;
  return 0;
}

bool jobsched_opened(const struct jobsched *s, struct buf *describe) {
  if (s->opened && describe) buf_append_str(describe, s->store_name);
  return s->opened;
}

void jobsched_start(struct jobsched *s) {
  if (s->started || !s->opened) return;
  s->started = true;
  struct jobreq *r = s->held_head;
  s->held_head = s->held_tail = NULL;
  while (r) {
    struct jobreq *next = r->next;
    r->next = NULL;
    jobstore_submit(&s->store, r);
    r = next;
  }
  s->next_ms = 0;   /* look at once: jobs may be due from before */
  pump(s);
}

void jobsched_set_generation(struct jobsched *s, struct job_owner *gen) {
  s->gen = gen;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
  struct jobsched *s = arg;
  size_t n = 0;
  qlist_foreach(node, &s->runs) {
    if (qlist_entry(node, struct jrun, node)->job) n++;
  }
  if (n) log_warn("drain timeout: cancelling %zu job run(s) still in flight; "
                  "they run again at the next start", n);
  /* Each cancel ends its run, which leaves the list. */
  for (;;) {
    struct jrun *victim = NULL;
    qlist_foreach(node, &s->runs) {
      struct jrun *run = qlist_entry(node, struct jrun, node);
      if (run->job) {
        victim = run;
        break;
      }
    }
    if (!victim) break;
    job_cancel(victim->job, "cancelled: the drain timeout passed");
  }
}

void jobsched_drain(struct jobsched *s, double drain_s) {
  if (s->draining) return;
  s->draining = true;
  evtimer_del(s->wake);
  if (s->nruns > 0) {
    log_info("stopping: %zu job run(s) in flight, drain timeout %.0f s",
             s->nruns, drain_s);
    s->drain_timer = evtimer_new(s->env.base, on_drain_timeout, s);
    arm_ms(s->drain_timer, (int64_t)(drain_s * 1000));
  }
  check_idle(s);
}

void jobsched_free(struct jobsched *s) {
  if (!s) return;
  /* Requests held for a start that never came were never submitted. */
  struct jobreq *r = s->held_head;
  while (r) {
    struct jobreq *next = r->next;
    jobreq_free(r);
    r = next;
  }
  s->held_head = s->held_tail = NULL;
  if (s->opened) s->store.backend->close(s->store.impl);
  /* The store freed its requests without completing them: tell the
   * callers (whose waits are gone by now) and free the runs. */
  struct qnode *n;
  while ((n = qlist_pop_front(&s->ops))) {
    struct op *op = qlist_entry(n, struct op, node);
    if (op->put_done) op->put_done(op->ud, NULL, jobsched_exiting);
    if (op->cancel_done) op->cancel_done(op->ud, false, jobsched_exiting);
    if (op->list_done) op->list_done(op->ud, NULL, 0, jobsched_exiting);
    if (op->run) run_free(op->run);
    free(op);
  }
  while ((n = qlist_pop_front(&s->runs)))
    run_free(qlist_entry(n, struct jrun, node));
  while ((n = qlist_pop_front(&s->retrying))) {
    struct op *op = qlist_entry(n, struct op, node);
    jobreq_free(op->req);
    run_free(op->run);
    free(op);
  }
  /* Loads not ended are dropped: so are the puts that waited for them. */
  tzcache_free(s->tz);
  while ((n = qlist_pop_front(&s->pending_puts))) {
    struct pending_put *p = qlist_entry(n, struct pending_put, node);
    p->done(p->ud, NULL, jobsched_exiting);
    jobreq_free(p->req);
    free(p->tz);
    free(p);
  }
  event_free(s->wake);
  event_free(s->renew);
  event_free(s->kick);
  event_free(s->retry_timer);
  if (s->drain_timer) event_free(s->drain_timer);
  free(s->store_name);
  free(s);
}
