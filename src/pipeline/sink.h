/* The sink: runs fetched updates as jobs, within the concurrency limit.
 *
 *   concurrent  up to `concurrency` updates at once (default 500)
 *   sequential  one at a time, in order (what bot.start() uses)
 *   batch       a whole batch at once, the next batch when all are done
 *
 * sink_capacity() says how many updates to fetch now; updates that cannot
 * start yet wait in a backlog. With a timeout, an update running longer is
 * released from its slot, reported, and cancelled.
 *
 * Parking (concurrent sink only): an update that waits behind others
 * (sequentialize) gives its slot up, so one busy chat cannot fill every
 * slot with updates that only wait. When its wait is over it needs a slot
 * again and gets the next free one before the backlog, and fetching counts
 * it as taken. Fetching also stops while running + parked + backlog
 * reaches concurrency + max_parked, which bounds the memory a flood of one
 * chat can take. The sequential and batch sinks never give a slot up
 * (sequential means one update after another, in order).
 *
 * Timeouts count running time only: a job that waits on others (in any
 * sink) has its timer stopped, and it runs again from zero when the job
 * runs on, so an update is never cancelled before it ran.
 *
 * Idle jobs (job_park_idle: a conversation waiting for its user's next
 * message) give their slot up in every kind of sink and are not counted
 * against max_parked: 10,000 users in the middle of a dialog neither hold
 * slots nor stop fetching. They still count in sink_size() (they are in
 * flight), and sink_cancel_idle() ends them when a stop has nothing else
 * left to wait for. When an idle job's wait is over it waits for a slot
 * (and its keys) like any parked job.
 *
 * start() may return NULL: the update needs no job of its own, because it
 * could not be decoded (logged by whoever starts it) or because a waiting
 * conversation took it (it resumes that conversation's job, which then
 * asks for a slot again through job_unpark). Either way the update is
 * finished as far as the sink goes: it leaves at once, and its offset is
 * confirmed with the rest. */
#ifndef TGHOST_SINK_H
#define TGHOST_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "pipeline/inflight.h"
#include "base/qlist.h"
#include "sched/task.h"
#include "pipeline/update.h"

enum sink_kind { SINK_CONCURRENT, SINK_SEQUENTIAL, SINK_BATCH };

/* The reason a job that ran out of time is cancelled with. */
#define SINK_TIMEOUT_REASON "the update timed out"

struct sink_slot;

struct sink_callbacks {
  /* Starts a job for the update (taking u->json); NULL if it needs none
   * (see above). */
  struct job *(*start)(void *ud, struct update_item *u, job_end_fn on_end,
                       void *end_ud);
  /* A job ended and left the sink. */
  void (*on_job_end)(void *ud, struct job *job);
  /* A job ran out of time; it is cancelled right after this returns. */
  void (*on_timeout)(void *ud, struct job *job);
  /* A parked job freed a slot: there may be room to fetch (may be NULL). */
  void (*on_room)(void *ud);
  /* A started job stops running to wait (behind others, or idle), or runs
   * on after such a wait (may be NULL). */
  void (*on_waiting)(void *ud, struct job *job, bool waiting);
  /* A job parks idle (job_park_idle: a conversation waits for a later
   * update), whether or not it was waiting already; called while its Lua
   * code runs, so it must not cancel jobs (may be NULL). */
  void (*on_idle)(void *ud, struct job *job);
};

struct sink {
  enum sink_kind kind;
  int concurrency;
  struct qlist backlog;            /* update_items not started yet */
  struct inflight inflight;        /* running jobs, by when they (last)
                                      started running */
  struct qlist waiting;            /* started jobs waiting on others */
  size_t holding;                  /* jobs holding a slot */
  size_t parked;                   /* started jobs waiting without a slot */
  size_t idle;                     /* ... idle ones, not counted in parked */
  long max_waiting;                 /* as set; -1: the default */
  size_t max_parked;               /* in effect */
  struct qlist unparking;          /* parked jobs whose wait is over */
  struct sink_slot *spare_slots;   /* freed slot records, for reuse */
  size_t nspare;
  struct event *pump_event;        /* starts jobs after a park, from the loop */
  bool accepting;
  struct sink_callbacks cb;
  void *ud;
};

void sink_init(struct sink *k, struct event_base *base, enum sink_kind kind,
               int concurrency, long timeout_ms,
               const struct sink_callbacks *cb, void *ud);
void sink_free(struct sink *k);
/* How many updates may be in flight beyond the concurrency, parked
 * (-1: the default, 10 x concurrency, which follows later changes of the
 * concurrency). */
void sink_set_max_waiting(struct sink *k, long max_waiting);

/* Changes the concurrency limit, the per-update timeout and the parking
 * bound (as in sink_set_max_waiting) while running (hot reload). Updates in flight keep their slots; a lower limit only
 * delays new starts. The new timeout counts from each update's start,
 * including those already in flight. */
void sink_reconfigure(struct sink *k, int concurrency, long timeout_ms,
                      long max_waiting);

/* How many updates to fetch now (0: none). */
int sink_capacity(const struct sink *k);
/* Takes the batch's items and starts what may start. */
void sink_add(struct sink *k, struct qlist *batch);
/* Updates in flight: started and not ended, plus the backlog. */
size_t sink_size(const struct sink *k);
/* Whether job was started by this sink and still counts as in flight
 * (not ended, not timed out). */
bool sink_has_job(const struct sink *k, const struct job *job);
/* Stops starting updates and moves the backlog (update_items never
 * started, oldest first) to the end of released. */
void sink_close(struct sink *k, struct qlist *released);
void sink_cancel_all(struct sink *k, const char *reason);
/* The updates for which match(id, ud) is true: those not started are moved
 * from the backlog to released (the caller frees them), the others'
 * jobs are cancelled with reason. O(updates in flight). */
void sink_cancel_matching(struct sink *k, bool (*match)(int64_t id, void *ud),
                          void *ud, const char *reason,
                          struct qlist *released);
/* Idle jobs in flight; of them, those not being cancelled already. */
size_t sink_idle(const struct sink *k);
size_t sink_idle_to_cancel(const struct sink *k);
/* Cancels the idle jobs not being cancelled already; returns how many. */
size_t sink_cancel_idle(struct sink *k, const char *reason);

#endif
