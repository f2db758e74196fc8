/* The job-store interface: where scheduled jobs are kept (in memory, in an
 * SQLite file, in Redis), and the one contract the scheduler above
 * (pipeline/jobsched.h) relies on. One struct of operations per backend,
 * registered once (jobstores.c), as the key-value stores are
 * (store/kvstore.h); the scheduler never asks which backend it holds.
 *
 * Why not the key-value interface: a job store must answer "which jobs are
 * due now" and hand each due job to exactly one of several processes. Over
 * get/set/list/compare-and-set that is a scan of every job on every look,
 * and in Redis a SCAN of every key; here each backend keeps an index of
 * due times (a heap in memory, an index on the due column in SQLite, a
 * sorted set in Redis) and claims atomically in one step (a transaction,
 * a server-side script).
 *
 * A record is a job as stored: its id, its schedule's text (so a script
 * declaring the same job again can keep its place), when it is due, an
 * opaque body (the scheduler's encoding of everything else), and its
 * claim. A store never reads the body or the schedule.
 *
 * Claims. CLAIM takes, atomically across processes sharing the store, up
 * to `limit` records that are due (due <= now, not claimed) or whose claim
 * has lapsed (lease <= now: its claimer died or hung), oldest first,
 * marks each claimed with a fresh token until now + lease, and counts the
 * claim in its attempts (a record claimed with attempts > 1 again is being
 * run again after a run that never ended: redelivered). Only the holder of
 * the current token can FINISH (reschedule or delete), RENEW (extend the
 * lease) or release it; a replaced or deleted record, or a lapsed claim
 * taken over by another process, answers found = false, and the old
 * holder's results are dropped (at-least-once: a job whose claimer died
 * mid-run runs again).
 *
 * The submit contract, the same as the key-value stores': submit never
 * fails (an error is the request's result) and never completes inside the
 * call; every request completes exactly once, on the loop, through its
 * done callback, in submission order.
 *
 * Layer: stores. */
#ifndef TGHOST_JOBSTORE_H
#define TGHOST_JOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "base/buf.h"

struct jobrec {
  char *id;
  char *schedule;        /* the scheduler's text ("every 60000") */
  int64_t due_ms;        /* Unix time in ms */
  char *body;            /* opaque bytes */
  size_t body_len;
  int attempts;          /* claims since the last FINISH that reset it */
  char *token;           /* the claim, or NULL */
  int64_t lease_ms;      /* the claim's end (Unix ms) */
};

void jobrec_free(struct jobrec *r);    /* its fields, not r */
void jobrec_copy(struct jobrec *dst, const struct jobrec *src);

enum jobreq_op {
  JOBREQ_PUT,      /* rec (id, or NULL and prefix: a new id) -> rec.id */
  JOBREQ_DELETE,   /* rec.id -> found */
  JOBREQ_GET,      /* rec.id -> recs[0..1] */
  JOBREQ_LIST,     /* prefix, limit -> recs, ordered by id */
  JOBREQ_CLAIM,    /* now, limit, lease -> recs, next_ms, counts */
  JOBREQ_FINISH,   /* rec.id, rec.token, rec.due_ms (-1: delete), body */
  JOBREQ_RENEW,    /* recs[i].id, .token, lease -> held[i] */
};

struct jobreq;
typedef void (*jobreq_done_fn)(struct jobreq *r, void *ud);

struct jobreq {
  enum jobreq_op op;
  /* Inputs (owned by the request). */
  struct jobrec rec;
  char *prefix;          /* PUT without id: the new id's; LIST: the ids' */
  /* PUT: a record with this id and the same schedule keeps its due time,
   * attempts and claim (the body is replaced); otherwise it is replaced
   * whole (its claim dropped: the old run's FINISH will find nothing). */
  bool keep_if_same;
  /* FINISH: only the claim ends (the due time and body are kept, and the
   * attempts go on counting): a run that was cut short is released to
   * run again. Otherwise attempts start again from 0. */
  bool release;
  int64_t now_ms;        /* CLAIM, and expiry checks */
  int64_t lease_ms;      /* CLAIM, RENEW: the claims' new end (Unix ms) */
  size_t limit;          /* CLAIM, LIST */
  const char *owner;     /* CLAIM: who claims (tokens start with it) */

  /* Results. */
  char *error;           /* NULL: it worked */
  bool found;
  struct jobrec *recs;   /* CLAIM, GET, LIST results; RENEW inputs */
  size_t nrecs;
  bool *held;            /* RENEW: recs[i]'s claim is still ours */
  int64_t next_ms;       /* CLAIM: the earliest due or lease end left (-1) */
  int64_t oldest_due_ms; /* CLAIM: the oldest due record left unclaimed
                          * (-1: none is due) */
  long stored, due;      /* CLAIM: records stored, due ones left (-1 if the
                          * backend cannot tell cheaply) */

  jobreq_done_fn done;
  void *ud;
  struct jobreq *next;   /* free for the backend's queues */
};

struct jobreq *jobreq_new(enum jobreq_op op, jobreq_done_fn done, void *ud);
void jobreq_free(struct jobreq *r);
void jobreq_set_error(struct jobreq *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends a copy of rec to the results. */
void jobreq_add_rec(struct jobreq *r, const struct jobrec *rec);
/* Completes the request: calls done (which owns it from then on). */
static inline void jobreq_complete(struct jobreq *r) { r->done(r, r->ud); }

struct jobstore_backend {
  const char *kind;      /* the storage kind it serves: "sqlite" */
  /* Other processes may change it: the scheduler must look again from
   * time to time, and claims must be atomic across processes. */
  bool shared;
  /* The store of jobs for a storage of this kind at target with
   * namespace ns (a table, a key prefix); NULL with err. */
  void *(*open)(struct event_base *base, const char *target, const char *ns,
                struct buf *err);
  /* Appends how messages name it: sqlite job store "bot.db" (table
   * kv_jobs). */
  void (*describe)(void *impl, struct buf *out);
  void (*submit)(void *impl, struct jobreq *req);
  /* Teardown after the loop has stopped: finishes queued writes where it
   * can (SQLite), frees requests not completed without completing them. */
  void (*close)(void *impl);
};

/* An open job store. */
struct jobstore {
  const struct jobstore_backend *backend;
  void *impl;
};

static inline void jobstore_submit(struct jobstore *s, struct jobreq *r) {
  s->backend->submit(s->impl, r);
}

/* For backends that do the work at once: completes requests from the loop,
 * one event per batch, in order. */
struct jobreq_deferred {
  struct event *event;
  struct jobreq *head, *tail;
};
void jobreq_deferred_init(struct jobreq_deferred *d, struct event_base *base);
void jobreq_deferred_add(struct jobreq_deferred *d, struct jobreq *r);
void jobreq_deferred_free(struct jobreq_deferred *d);

/* A claim token: owner, a colon and a counter unique in the process. */
char *jobstore_new_token(const char *owner);

#endif
