#include "pipeline/sink.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"

/* Kept beyond the slots in use, for the next burst. */
#define SPARE_SLOTS 256

/* The sink's record of one started job: where it is (running, with its
 * timer in the in-flight list; or waiting, its timer stopped) and its slot
 * account. Owned by the sink, attached to the job as its slot owner's
 * data, freed when the job ends. */
struct sink_slot {
  struct sink *sink;
  struct job *job;
  struct inflight_entry entry;     /* while running */
  struct qnode wait_node;          /* in sink->waiting, while waiting */
  bool holds_slot;                 /* counts against the concurrency */
  bool parked;                     /* gave its slot up while it waits */
  bool idle;                       /* ... for a later update (counted in
                                      sink->idle, not sink->parked) */
  bool expired;                    /* timed out: being cancelled */
  struct qnode unpark_node;        /* in sink->unparking */
  uint64_t started_us;             /* for the handler duration metric */
  struct sink_slot *next_spare;
};

static void on_job_end(struct job *job, void *ud);
static void pump(struct sink *k);
static bool may_start(const struct sink *k);

static void note_sizes(const struct sink *k) {
  metric_set(METRIC_UPDATES_IN_FLIGHT, (double)sink_size(k), NULL, NULL);
  metric_set(METRIC_UPDATES_PARKED, (double)k->parked, NULL, NULL);
}

static struct sink_slot *slot_new(struct sink *k) {
  struct sink_slot *sl = k->spare_slots;
  if (sl) {
    k->spare_slots = sl->next_spare;
    k->nspare--;
    memset(sl, 0, sizeof *sl);
  } else {
    sl = xcalloc(1, sizeof *sl);
  }
  sl->sink = k;
  return sl;
}

static void slot_free(struct sink *k, struct sink_slot *sl) {
  if (k->nspare >= SPARE_SLOTS) {
    free(sl);
    return;
  }
  sl->next_spare = k->spare_slots;
  k->spare_slots = sl;
  k->nspare++;
}

/* Its timer runs (again) from now: the time it waited does not count. */
static void run_timer(struct sink *k, struct sink_slot *sl) {
  bool waited = qnode_linked(&sl->wait_node);
  if (waited) qlist_remove(&k->waiting, &sl->wait_node);
  if (!sl->expired && !inflight_contains(&sl->entry))
    inflight_add(&k->inflight, &sl->entry, clock_now_ms());
  if (waited && !sl->expired && k->cb.on_waiting)
    k->cb.on_waiting(k->ud, sl->job, false);
}

/* The job leaves the sink's accounts: no slot, not parked, no timer. */
static void settle(struct sink *k, struct sink_slot *sl) {
  inflight_remove(&k->inflight, &sl->entry);
  if (qnode_linked(&sl->wait_node)) qlist_remove(&k->waiting, &sl->wait_node);
  if (sl->holds_slot) {
    sl->holds_slot = false;
    k->holding--;
  }
  if (sl->parked) {
    sl->parked = false;
    if (sl->idle) k->idle--;
    else k->parked--;
    sl->idle = false;
    if (qnode_linked(&sl->unpark_node))
      qlist_remove(&k->unparking, &sl->unpark_node);
  }
}

static void on_expired(struct inflight *q, struct inflight_entry *e,
                       void *ud) {
  struct sink *k = ud;
  struct sink_slot *sl = qlist_entry(e, struct sink_slot, entry);
  /* The slot is free from now on, even if the cancel is deferred. */
  sl->expired = true;
  settle(k, sl);
  k->cb.on_timeout(k->ud, sl->job);
  job_cancel(sl->job, SINK_TIMEOUT_REASON);
}

/* --- parking ------------------------------------------------------------ */

/* An idle job's wait is over: from now on it waits like any parked job
 * (for its keys or a slot), which fetching and a drain count. */
static void end_idle(struct sink *k, struct sink_slot *sl) {
  if (!sl->idle) return;
  sl->idle = false;
  k->idle--;
  k->parked++;
}

static void take_slot(struct sink *k, struct sink_slot *sl) {
  sl->parked = false;
  k->parked--;
  sl->holds_slot = true;
  k->holding++;
  run_timer(k, sl);
}

/* Every waiting job gives its slot up: slots are held only by jobs that
 * can run, so a job whose wait is over always gets one as running jobs end
 * (a waiting job keeping its slot could hold the very slot its predecessor
 * needs). The bound on parked jobs is enforced by fetching less (see
 * sink_capacity). */
static void slot_park(struct job *job, void *slot, enum job_park_kind kind) {
  struct sink_slot *sl = slot;
  struct sink *k = sl->sink;
  if (sl->expired) return;
  bool idle = kind == JOB_PARK_IDLE;
  if (idle && k->cb.on_idle) k->cb.on_idle(k->ud, job);
  if (qnode_linked(&sl->wait_node)) {
    if (!idle) end_idle(k, sl);
    return;
  }
  /* Waiting is not running: its timeout counts again when it runs on, so
   * an update is never cancelled for the time it spent queued behind
   * others. */
  inflight_remove(&k->inflight, &sl->entry);
  qlist_push_back(&k->waiting, &sl->wait_node);
  if (k->cb.on_waiting) k->cb.on_waiting(k->ud, job, true);
  /* An idle job gives its slot up in every kind of sink: a sequential bot
   * with a conversation waiting must still take the update it waits for;
   * and so does a handoff: the job it waits for needs the slot. */
  if ((k->kind != SINK_CONCURRENT && kind == JOB_PARK_BEHIND) ||
      !sl->holds_slot)
    return;
  sl->holds_slot = false;
  k->holding--;
  sl->parked = true;
  sl->idle = idle;
  if (idle) k->idle++;
  else k->parked++;
  note_sizes(k);
  /* Lua code is running: start the next updates from the loop. */
  event_active(k->pump_event, 0, 0);
}

static void slot_unpark(struct job *job, void *slot) {
  struct sink_slot *sl = slot;
  struct sink *k = sl->sink;
  if (!sl->parked) {
    /* It kept its slot (not a concurrent sink), or it timed out and has
     * none to get back. */
    run_timer(k, sl);
    job_slot_regained(job);
    return;
  }
  end_idle(k, sl);
  if (qnode_linked(&sl->unpark_node)) return;
  qlist_push_back(&k->unparking, &sl->unpark_node);
  /* Only a free slot is taken here; a busy sink serves the queue as slots
   * come free, before the backlog. */
  if (may_start(k) && qlist_is_front(&k->unparking, &sl->unpark_node)) {
    qlist_remove(&k->unparking, &sl->unpark_node);
    take_slot(k, sl);
    job_slot_regained(job);
  }
}

static const struct job_slot_ops sink_slot_ops = {slot_park, slot_unpark};

static void on_pump_event(evutil_socket_t fd, short what, void *arg) {
  struct sink *k = arg;
  pump(k);
  if (k->cb.on_room) k->cb.on_room(k->ud);
}

/* Unset (-1), the bound on parked jobs follows the concurrency. */
static size_t max_parked_for(const struct sink *k) {
  return k->max_waiting >= 0 ? (size_t)k->max_waiting
                             : (size_t)k->concurrency * 10;
}

void sink_init(struct sink *k, struct event_base *base, enum sink_kind kind,
               int concurrency, long timeout_ms,
               const struct sink_callbacks *cb, void *ud) {
  k->kind = kind;
  k->concurrency = concurrency > 0 ? concurrency : 1;
  qlist_init(&k->backlog);
  inflight_init(&k->inflight, base, timeout_ms, on_expired, k);
  k->holding = 0;
  k->parked = 0;
  k->idle = 0;
  k->max_waiting = -1;
  k->max_parked = max_parked_for(k);
  qlist_init(&k->unparking);
  qlist_init(&k->waiting);
  k->pump_event = event_new(base, -1, 0, on_pump_event, k);
  k->accepting = true;
  k->cb = *cb;
  k->ud = ud;
}

static void drop_backlog(struct sink *k) {
  struct qnode *n;
  while ((n = qlist_pop_front(&k->backlog)))
    update_item_free(qlist_entry(n, struct update_item, node));
}

void sink_free(struct sink *k) {
  drop_backlog(k);
  while (k->spare_slots) {
    struct sink_slot *sl = k->spare_slots;
    k->spare_slots = sl->next_spare;
    free(sl);
  }
  inflight_free(&k->inflight);
  if (k->pump_event) event_free(k->pump_event);
  k->pump_event = NULL;
}

void sink_set_max_waiting(struct sink *k, long max_waiting) {
  k->max_waiting = max_waiting;
  k->max_parked = max_parked_for(k);
}

static bool may_start(const struct sink *k) {
  switch (k->kind) {
    case SINK_CONCURRENT: return k->holding < (size_t)k->concurrency;
    case SINK_SEQUENTIAL: return k->holding == 0;
    case SINK_BATCH: return true;
  }
  return false;
}

static void pump(struct sink *k) {
  /* Parked jobs whose wait is over come first, even while draining. */
  while (!qlist_empty(&k->unparking) && may_start(k)) {
    struct sink_slot *sl = qlist_entry(qlist_pop_front(&k->unparking),
                                       struct sink_slot, unpark_node);
    take_slot(k, sl);
    job_slot_regained(sl->job);
  }
  while (k->accepting && !qlist_empty(&k->backlog) && may_start(k)) {
    struct update_item *u =
        qlist_entry(qlist_pop_front(&k->backlog), struct update_item, node);
    struct sink_slot *sl = slot_new(k);
    struct job *job = k->cb.start(k->ud, u, on_job_end, sl);
    update_item_free(u);
    if (!job) {
      slot_free(k, sl);
      continue;
    }
    sl->job = job;
    sl->started_us = clock_now_us();
    sl->holds_slot = true;
    k->holding++;
    job_set_slot_owner(job, &sink_slot_ops, sl);
    inflight_add(&k->inflight, &sl->entry, clock_now_ms());
  }
  note_sizes(k);
}

static void on_job_end(struct job *job, void *ud) {
  struct sink_slot *sl = ud;
  struct sink *k = sl->sink;
  if (job_kind(job) == JOB_UPDATE)
    metric_observe(METRIC_HANDLER_DURATION,
                   (double)(clock_now_us() - sl->started_us) / 1e6, NULL,
                   NULL);
  settle(k, sl);
  job_set_slot_owner(job, NULL, NULL);
  slot_free(k, sl);
  k->cb.on_job_end(k->ud, job);
  pump(k);
}

bool sink_has_job(const struct sink *k, const struct job *job) {
  const struct sink_slot *sl = job_slot_of(job, &sink_slot_ops);
  return sl && sl->sink == k &&
         (inflight_contains(&sl->entry) || qnode_linked(&sl->wait_node));
}

void sink_reconfigure(struct sink *k, int concurrency, long timeout_ms,
                      long max_waiting) {
  k->concurrency = concurrency > 0 ? concurrency : 1;
  sink_set_max_waiting(k, max_waiting);
  inflight_set_timeout(&k->inflight, timeout_ms);
  pump(k);
}

int sink_capacity(const struct sink *k) {
  if (!k->accepting) return 0;
  switch (k->kind) {
    case SINK_CONCURRENT: {
      /* Parked jobs whose wait is over need a slot before anything new;
       * and all that is fetched and not done (running, parked, backlog)
       * stays within concurrency + max_parked. */
      long free_slots = (long)k->concurrency - (long)k->holding -
                        (long)qlist_size(&k->backlog) - (long)qlist_size(&k->unparking);
      long room = (long)k->concurrency + (long)k->max_parked -
                  (long)(k->holding + k->parked + qlist_size(&k->backlog));
      long n = free_slots < room ? free_slots : room;
      return n > 0 ? (int)(n > 100 ? 100 : n) : 0;
    }
    case SINK_SEQUENTIAL:
    case SINK_BATCH:
      return k->holding == 0 && qlist_empty(&k->backlog) ? 100 : 0;
  }
  return 0;
}

void sink_add(struct sink *k, struct qlist *batch) {
  struct qnode *n;
  while ((n = qlist_pop_front(batch))) qlist_push_back(&k->backlog, n);
  pump(k);
}

size_t sink_size(const struct sink *k) {
  return inflight_size(&k->inflight) + qlist_size(&k->waiting) +
         qlist_size(&k->backlog);
}

void sink_close(struct sink *k, struct qlist *released) {
  k->accepting = false;
  struct qnode *n;
  while ((n = qlist_pop_front(&k->backlog))) qlist_push_back(released, n);
  note_sizes(k);
}

size_t sink_idle(const struct sink *k) { return k->idle; }

/* Idle jobs not being cancelled already; into jobs if given. */
static size_t collect_idle(const struct sink *k, struct job **jobs) {
  size_t n = 0;
  qlist_foreach(q, &k->waiting) {
    struct sink_slot *sl = qlist_entry(q, struct sink_slot, wait_node);
    if (!sl->idle || job_cancel_pending(sl->job)) continue;
    if (jobs) jobs[n] = sl->job;
    n++;
  }
  return n;
}

size_t sink_idle_to_cancel(const struct sink *k) {
  return k->idle ? collect_idle(k, NULL) : 0;
}

size_t sink_cancel_idle(struct sink *k, const char *reason) {
  size_t n = sink_idle_to_cancel(k);
  if (n == 0) return 0;
  struct job **jobs = xcalloc(n, sizeof *jobs);
  collect_idle(k, jobs);
  /* A cancel ends only its own job, so the snapshot stays valid. */
  for (size_t i = 0; i < n; i++) job_cancel(jobs[i], reason);
  free(jobs);
  return n;
}

void sink_cancel_all(struct sink *k, const char *reason) {
  size_t n = inflight_size(&k->inflight) + qlist_size(&k->waiting), i = 0;
  if (n == 0) return;
  struct job **jobs = xcalloc(n, sizeof *jobs);
  qlist_foreach(q, &k->inflight.list)
    jobs[i++] = qlist_entry(q, struct sink_slot, entry.node)->job;
  qlist_foreach(q, &k->waiting)
    jobs[i++] = qlist_entry(q, struct sink_slot, wait_node)->job;
  /* A cancel ends only its own job, so the snapshot stays valid. */
  for (i = 0; i < n; i++) job_cancel(jobs[i], reason);
  free(jobs);
}

void sink_cancel_matching(struct sink *k, bool (*match)(int64_t id, void *ud),
                          void *ud, const char *reason,
                          struct qlist *released) {
  struct qlist keep;
  qlist_init(&keep);
  struct qnode *n;
  while ((n = qlist_pop_front(&k->backlog))) {
    struct update_item *u = qlist_entry(n, struct update_item, node);
    qlist_push_back(match(u->id, ud) ? released : &keep, n);
  }
  while ((n = qlist_pop_front(&keep))) qlist_push_back(&k->backlog, n);
  size_t total = inflight_size(&k->inflight) + qlist_size(&k->waiting), i = 0;
  if (total == 0) {
    note_sizes(k);
    return;
  }
  struct job **jobs = xcalloc(total, sizeof *jobs);
  qlist_foreach(q, &k->inflight.list) {
    struct job *job = qlist_entry(q, struct sink_slot, entry.node)->job;
    if (match(job_update_id(job), ud)) jobs[i++] = job;
  }
  qlist_foreach(q, &k->waiting) {
    struct job *job = qlist_entry(q, struct sink_slot, wait_node)->job;
    if (match(job_update_id(job), ud)) jobs[i++] = job;
  }
  /* A cancel ends only its own job, so the snapshot stays valid. */
  for (size_t j = 0; j < i; j++) job_cancel(jobs[j], reason);
  free(jobs);
  note_sizes(k);
}
