#include "sink.h"

#include <stdlib.h>

#include "log.h"

static void on_job_end(struct job *job, void *ud);

static void on_expired(struct inflight *q, struct inflight_entry *e,
                       void *ud) {
  struct sink *k = ud;
  struct job *job = qlist_entry(e, struct job, sink_entry);
  /* The slot is free from now on, even if the cancel is deferred. */
  if (job->holds_slot) {
    job->holds_slot = false;
    k->holding--;
  }
  k->cb.on_timeout(k->ud, job);
  job_cancel(job, "the update timed out");
}

void sink_init(struct sink *k, struct event_base *base, enum sink_kind kind,
               int concurrency, long timeout_ms,
               const struct sink_callbacks *cb, void *ud) {
  k->kind = kind;
  k->concurrency = concurrency > 0 ? concurrency : 1;
  qlist_init(&k->backlog);
  inflight_init(&k->inflight, base, timeout_ms, on_expired, k);
  k->holding = 0;
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
  inflight_free(&k->inflight);
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
  while (k->accepting && !qlist_empty(&k->backlog) && may_start(k)) {
    struct update_item *u =
        qlist_entry(qlist_pop_front(&k->backlog), struct update_item, node);
    struct job *job = k->cb.start(k->ud, u, on_job_end, k);
    update_item_free(u);
    if (!job) continue;
    job->holds_slot = true;
    k->holding++;
    inflight_add(&k->inflight, &job->sink_entry, inflight_now_ms());
  }
}

static void on_job_end(struct job *job, void *ud) {
  struct sink *k = ud;
  inflight_remove(&k->inflight, &job->sink_entry);
  if (job->holds_slot) {
    job->holds_slot = false;
    k->holding--;
  }
  k->cb.on_job_end(k->ud, job);
  pump(k);
}

void sink_reconfigure(struct sink *k, int concurrency, long timeout_ms) {
  k->concurrency = concurrency > 0 ? concurrency : 1;
  inflight_set_timeout(&k->inflight, timeout_ms);
  pump(k);
}

int sink_capacity(const struct sink *k) {
  if (!k->accepting) return 0;
  switch (k->kind) {
    case SINK_CONCURRENT: {
      long free_slots = (long)k->concurrency - (long)k->holding -
                        (long)k->backlog.count;
      return free_slots > 0 ? (int)(free_slots > 100 ? 100 : free_slots) : 0;
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
  return inflight_size(&k->inflight) + k->backlog.count;
}

int64_t sink_close(struct sink *k) {
  k->accepting = false;
  struct qnode *n = qlist_front(&k->backlog);
  int64_t first = n ? qlist_entry(n, struct update_item, node)->id : -1;
  drop_backlog(k);
  return first;
}

void sink_cancel_all(struct sink *k, const char *reason) {
  size_t n = inflight_size(&k->inflight), i = 0;
  if (n == 0) return;
  struct job **jobs = xcalloc(n, sizeof *jobs);
  for (struct qnode *q = k->inflight.list.head.next;
       q != &k->inflight.list.head; q = q->next)
    jobs[i++] = qlist_entry(q, struct job, sink_entry.node);
  /* A cancel ends only its own job, so the snapshot stays valid. */
  for (i = 0; i < n; i++) job_cancel(jobs[i], reason);
  free(jobs);
}
