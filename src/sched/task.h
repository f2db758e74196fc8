/* Tasks and jobs: the Lua coroutines the host runs, and the units of work
 * that own them.
 *
 * A job is one unit of work in one generation: handling an update, running
 * the script's top level, or a callback (a timeout handler, an error
 * report). It owns one or more tasks; it ends when its last task ends, and
 * then tells its owner through on_end.
 *
 * A task is one coroutine, anchored in its generation's registry so the GC
 * never collects it while it is suspended. A task suspends only through
 * task_wait(), which a C primitive (an API call, a sleep) calls after
 * registering what it waits for; the primitive later calls task_wake() with
 * a function that pushes the results. Resumes never happen inside the
 * primitive or inside a curl callback: woken tasks are queued and resumed
 * from the loop.
 *
 * Cancelling a job closes its coroutines (their to-be-closed variables
 * run) and cancels what they wait on. Cancellation requested while Lua code
 * is running is deferred to the loop, so a coroutine is never closed from
 * under itself.
 *
 * Every resume of a task, and every close of a cancelled one, is a run of
 * the CPU guard (cpuguard.h), which stops a task that keeps the CPU; this
 * module then ends the task as failed, with the guard's report. */
#ifndef TGHOST_TASK_H
#define TGHOST_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <lua.h>

#include "base/log.h"
#include "base/qlist.h"
#include "sched/cpuguard.h"

struct job;
struct task;

enum task_end_kind {
  TASK_RETURNED,    /* the function returned; its values are on co */
  TASK_FAILED,      /* an error escaped it, or it broke the CPU budget */
  TASK_CANCELLED,   /* its job was cancelled */
};

/* Called once when a task ends, before its coroutine is closed. For
 * TASK_RETURNED the nres returned values are on top of co (the callback
 * may copy them; it must not resume co); otherwise co is NULL, nres 0 and
 * message says why. It may wake other tasks but must not cancel jobs. */
typedef void (*task_end_fn)(struct task *t, enum task_end_kind kind,
                            lua_State *co, int nres, const char *message,
                            void *ud);

/* Pushes a woken task's resume values onto co and returns how many, in the
 * form the yielding primitive expects: true, results... or false, error.
 * Called with co == NULL when the task was cancelled before it resumed:
 * then it only frees data. */
typedef int (*task_push_fn)(lua_State *co, void *data);

struct task_wait_ops {
  const char *what;                /* for diagnostics: "sleep", "sendMessage" */
  void (*cancel)(void *data);      /* release the wait; no wake will follow */
};

struct scheduler {
  struct event_base *base;
  struct event *ready_event;
  struct qlist ready;              /* tasks to resume, in wake order */
  struct qlist cancels;            /* jobs whose cancel was deferred */
  struct qlist jobs;               /* every live job */
  struct task *volatile running;   /* the task whose Lua code runs now */
  size_t live_jobs;
  size_t background_jobs;          /* of live_jobs, JOB_BACKGROUND ones */
  /* Of live_jobs, those that wait idle with no slot owner (a resumed
   * conversation waiting for its user, which no sink runs): like
   * background jobs they keep nothing alive, and are cancelled at exit. */
  size_t loose_idle_jobs;

  /* The CPU guard: it watches every resume (task.c runs a task's resume
   * as one of the guard's runs). */
  struct cpuguard guard;

  /* Only background jobs are left: set by the scheduler's owner (host.c)
   * after sched_init. */
  void (*on_idle)(void *ud);
  void *idle_ud;
};

/* JOB_BACKGROUND: tasks the script's top level spawned (periodic work);
 * they live on after the top level returns, until their generation is
 * replaced or the bot stops, and never keep the process alive alone.
 * JOB_SCHEDULED: a run of a scheduled job (tghost.jobs), detached from
 * any update. */
enum job_kind { JOB_LOAD, JOB_UPDATE, JOB_CALLBACK, JOB_BACKGROUND,
                JOB_SCHEDULED };

/* Who a job runs for: the Lua state its tasks are threads of, kept alive
 * by ref/unref while the job lives (one load of the script: a
 * generation). The task layer knows nothing else about it. */
struct job_owner {
  lua_State *L;
  int id;                          /* for log lines ("gen N") */
  void (*ref)(struct job_owner *o);
  void (*unref)(struct job_owner *o);
};

/* What a parked job waits for: other jobs, which will end (sequentialize);
 * or, idle, for something only a later update can bring and which may
 * never come (a conversation waiting for its user's next message); or, a
 * handoff, for a job that needs this one's slot to go on (a conversation
 * that took this job's update as its answer). */
enum job_park_kind { JOB_PARK_BEHIND, JOB_PARK_IDLE, JOB_PARK_HANDOFF };

/* How a job that waits gives its concurrency slot up meanwhile.
 * Implemented by whoever counts slots (the sink), which attaches itself
 * with job_set_slot_owner() to the jobs it starts. */
struct job_slot_ops {
  /* The job starts waiting: its slot may serve another update. Parking a
   * job that is parked idle again as JOB_PARK_BEHIND says its wait is now
   * on other jobs. */
  void (*park)(struct job *job, void *slot, enum job_park_kind kind);
  /* The wait is over: job_slot_regained(job) follows once the job holds a
   * slot again, possibly before this returns. */
  void (*unpark)(struct job *job, void *slot);
};
enum job_end { JOB_DONE, JOB_FAILED, JOB_CANCELLED };

typedef void (*job_end_fn)(struct job *job, void *ud);

/* A cleanup handler (OpenResty's shape): embedded in its owner's own
 * struct, registered on a job, and run once when the job ends, however it
 * ends, before the job's end callback. Handlers run newest first. */
struct job_cleanup {
  void (*fn)(struct job *job, struct job_cleanup *c);
  struct job_cleanup *next;        /* the job's list; set by job_add_cleanup */
};

/* What a job is, given when it is created. */
struct job_params {
  enum job_kind kind;
  int64_t update_id;               /* -1 unless it handles an update */
  char *update_json;               /* the raw update, taken over (or NULL) */
  size_t update_len;
  job_end_fn on_end;               /* runs once when the job has ended */
  void *end_ud;
};

/* What other modules read of a job; struct job is task.c's own. */
enum job_kind job_kind(const struct job *job);
/* The update the job handles, or -1 (not a JOB_UPDATE). */
int64_t job_update_id(const struct job *job);
/* The raw update while the job still holds it (until
 * job_take_update_json), or NULL. */
const char *job_update_json(const struct job *job, size_t *len);
struct job_owner *job_owner_of(const struct job *job);
/* How the job ended: meaningful once it has (in its on_end and cleanup
 * handlers). */
enum job_end job_how_ended(const struct job *job);
/* The first hard failure, or why it was cancelled; NULL if none. */
const char *job_error(const struct job *job);
/* job_mark_failed was called: the failure has been reported already. */
bool job_failure_reported(const struct job *job);
/* A cancel was asked while Lua code ran and waits for the loop. */
bool job_cancel_pending(const struct job *job);
/* The Lua heap its tasks grew, net (>= 0). */
long job_lua_bytes(const struct job *job);
/* The slot owner's per-job data, if ops is the job's slot owner (see
 * job_set_slot_owner); NULL otherwise. */
void *job_slot_of(const struct job *job, const struct job_slot_ops *ops);

void sched_init(struct scheduler *s, struct event_base *base,
                long cpu_budget_ms);
void sched_free(struct scheduler *s);
/* Cancels every live job (shutdown). */
void sched_cancel_all(struct scheduler *s, const char *reason);
/* Cancels the live jobs of kind (of owner, unless owner is NULL). */
void sched_cancel_kind(struct scheduler *s, struct job_owner *owner,
                       enum job_kind kind, const char *reason);
struct task *sched_running(const struct scheduler *s);

/* A new job for owner (which it references until it ends), complete with
 * its end callback and payload. It ends once its last task has ended (see
 * job_spawn) or through job_abandon/job_cancel. */
struct job *job_new(struct scheduler *s, struct job_owner *owner,
                    const struct job_params *p);
/* Registers c (whose fn is set) to run when the job ends. */
void job_add_cleanup(struct job *job, struct job_cleanup *c);
/* The handler registered with fn, or NULL: a module finds its own data on
 * a job this way. */
struct job_cleanup *job_find_cleanup(const struct job *job,
                                     void (*fn)(struct job *,
                                                struct job_cleanup *));
/* Hands the raw update over to the caller (NULL if already taken). */
char *job_take_update_json(struct job *job, size_t *len);
/* Starts a task in job: the function and its nargs arguments on top of
 * from's stack (a thread of job's generation) are moved to a new coroutine,
 * which is queued to run from the loop. */
struct task *job_spawn(struct job *job, lua_State *from, int nargs);
/* Cancels every task of the job. The job's on_end runs (now, or from the
 * loop if Lua code is running) with end == JOB_CANCELLED. */
void job_cancel(struct job *job, const char *reason);
/* Closes every task of the job as job_cancel does, but the job ends as
 * done: it decided to end itself (os.exit in a handler). */
void job_close(struct job *job);
/* Ends the job as done without closing its coroutines: their pending
 * to-be-closed variables never run, as if the code had stopped where it
 * waits. For work that goes on elsewhere (a durable conversation that
 * resumes in another generation by replaying its record). */
void job_drop(struct job *job);
/* The job's handler failed and the failure has been reported (bot.catch,
 * or the log): the job will end as JOB_FAILED, without a second report. */
void job_mark_failed(struct job *job, const char *error);
/* Ends a job that never got a task (e.g. its update could not be decoded). */
void job_abandon(struct job *job, const char *error);
struct log_fields job_log_fields(const struct job *job);
/* The coroutine of the job's first task, or NULL (for diagnostics: where
 * a job that must be cancelled is waiting). */
lua_State *job_thread(const struct job *job);

/* For primitives that make a job wait on other jobs: job_park() lets the
 * job's slot go (if the owner allows); job_unpark() asks for it back and
 * calls regained(job, arg) once the job holds one (at once for a job
 * without slot_ops). regained may be NULL (the job only settles its
 * account). job_park_idle() is for a wait that no job in flight will end
 * (a conversation's): the slot goes in every kind of sink, the job does
 * not hold fetching back, and a graceful stop cancels it once the rest has
 * drained instead of waiting for it. A job no sink runs (a resumed
 * conversation) counts as loose_idle_jobs meanwhile: it does not keep the
 * process from exiting, and is cancelled then. */
void job_park(struct job *job);
void job_park_idle(struct job *job);
/* Waits for a job that needs this one's slot to go on: the slot goes in
 * every kind of sink, as for an idle wait, but the job counts as busy (a
 * graceful stop waits for it, as it waits for the job it is waiting for). */
void job_park_handoff(struct job *job);
void job_unpark(struct job *job, void (*regained)(struct job *job, void *arg),
                void *arg);
/* For slot owners: attach to a job (ops and the owner's own per-job data);
 * and tell it that it holds a slot again. */
void job_set_slot_owner(struct job *job, const struct job_slot_ops *ops,
                        void *slot);
void job_slot_regained(struct job *job);
struct job *task_job(const struct task *t);
/* Asks to be told when t ends (one callback per task; NULL removes it). */
void task_set_on_end(struct task *t, task_end_fn fn, void *ud);

/* For primitives. Raises a Lua error unless L may suspend the running task
 * here (inside a task, in a yieldable context). `what` names the call. */
struct task *task_check_can_wait(lua_State *L, struct scheduler *s,
                                 const char *what);
/* Registers the wait and yields; use as `return task_wait(...)`. */
int task_wait(lua_State *L, struct task *t, const struct task_wait_ops *ops,
              void *data);
/* Drops the running task's pending wait, if any (a yield that could not
 * reach the host). */
void task_drop_wait(struct task *t);
/* The wait is over: resume the task from the loop with push's values. */
void task_wake(struct task *t, task_push_fn push, void *data);

/* Stock push functions. */
int task_push_nothing(lua_State *co, void *data);   /* resumes with true */
/* Resumes with false, message (data is a malloc'd string). */
int task_push_error_message(lua_State *co, void *data);

/* The Lua allocator's accounting: adds delta bytes to the running job if
 * it belongs to owner (a generation's allocation made while one of its
 * tasks runs). Returns that job, or NULL. */
struct job *sched_charge_memory(struct scheduler *s, struct job_owner *owner,
                                long delta);

/* The sentinel a task yields to reach the host (for coroutine wrappers). */
void *task_yield_sentinel(void);

#endif
