/* The job scheduler: scheduled jobs (tghost.jobs.at/every/cron) kept in a
 * job store (store/jobstore.h), claimed when due and run, detached from
 * updates, in the current generation.
 *
 * A job is a name (the bot.job handler that runs it), data (bytes the
 * Lua half encodes), an id and a schedule: once at an instant, every
 * interval, or a cron expression in a time zone (base/cron.h). The
 * scheduler looks for due jobs when the earliest one it knows of falls
 * due, and, with a store other processes share, at least every poll
 * interval; it claims at most as many as it has free run slots (the jobs
 * concurrency), so another process sharing the store takes the rest.
 *
 * A run is a job of the task layer (JOB_SCHEDULED) started through
 * jobsched_ops, which the Lua half provides: it holds no sink slot, so
 * updates never wait for jobs, and jobs wait only for each other (the
 * concurrency). It runs under the CPU guard and memory limit as any job
 * does, and under the jobs timeout (cancelled and reported past it). Its
 * Bot API calls share the flood control with updates' (one apicall
 * queue per chat): a job's sendMessage to a chat waits behind that chat's
 * other messages, never beside them.
 *
 * While a run lasts its claim is renewed every third of the lease; when
 * it ends the job is rescheduled (its next fire time) or deleted (once),
 * under the claim's token: a claim that lapsed (this process stalled past
 * its lease) and was taken over is not written over. A run cut short by a
 * stop is released to run again, marked redelivered.
 *
 * Misfires: a run that starts more than `grace` after it was due is late
 * (the bot was down, or busy). The job's policy says what happens:
 *   once  it runs once, and the next fire time is the first after now
 *         (the default);
 *   skip  it does not run; the next fire time is the first after now
 *         (a once-job is dropped); a redelivered run is never skipped;
 *   all   each missed occurrence runs, oldest first, up to `limit` of
 *         them in a row, then the next fire time is the first after now.
 *
 * Time: due times are Unix milliseconds on the wall clock (plus an offset
 * the sandbox advances: jobsched_advance), since schedules name wall
 * times; delays are measured from jobsched_now_ms.
 *
 * Layer: jobs (pipeline folder), beside the runner; the host owns the one
 * scheduler of the process, so jobs in memory outlive hot reloads. */
#ifndef TGHOST_JOBSCHED_H
#define TGHOST_JOBSCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "base/buf.h"
#include "pipeline/runopts.h"
#include "sched/task.h"

struct jobsched;

enum job_misfire { MISFIRE_ONCE, MISFIRE_SKIP, MISFIRE_ALL };
enum job_repeat { JOB_ONCE, JOB_EVERY, JOB_CRON };

/* A run, as the Lua half sees it. Valid until the run's job has ended. */
struct job_run_info {
  const char *id;
  const char *name;
  const char *data;            /* the bytes given at scheduling */
  size_t data_len;
  int64_t scheduled_ms;        /* when it was due */
  int attempt;                 /* 1 for a first run */
  bool redelivered;            /* a run before it never ended */
};

struct jobsched_ops {
  /* Starts a run in gen; NULL if it cannot (reported by the callee). The
   * job must end through on_end(job, end_ud). */
  struct job *(*start)(struct job_owner *gen, const struct job_run_info *run,
                       job_end_fn on_end, void *end_ud);
  /* Reports a run's failure the run could not report itself (the CPU
   * budget, a timeout: message), in the run's generation. */
  void (*report_failure)(struct job *job, const struct job_run_info *run,
                         const char *message);
};

struct jobsched_env {
  struct event_base *base;
  const struct jobsched_ops *ops;
  /* Whether new runs may start (false while the bot stops). */
  bool (*accepting)(void *ud);
  /* The scheduler has nothing left in flight (runs, store requests). */
  void (*on_idle)(void *ud);
  void *ud;
};

/* What a script asks to schedule. */
struct job_spec {
  const char *id;              /* NULL: a new one, prefix + a number */
  const char *prefix;
  const char *name;
  const char *data;
  size_t data_len;
  enum job_repeat repeat;
  /* The first run: at first_ms; or, with cron set, at the expression's
   * first fire time after first_ms (-1: after now) in tz; or (EVERY) one
   * interval from now; or (ONCE) now. */
  int64_t first_ms;
  int64_t interval_ms;         /* EVERY */
  const char *cron;            /* CRON: the schedule; ONCE, EVERY: the
                                * first run (a local time), or NULL */
  const char *tz;              /* a zone name; NULL or "": the system's */
  const char *when;            /* ONCE: how the script said when, kept in
                                * the schedule (a declaration that says it
                                * again keeps its place) */
  enum job_misfire misfire;
  int misfire_limit;           /* ALL: runs in a row at most */
  int64_t grace_ms;            /* late beyond this: misfired */
  /* A declaration (the top level's): a job with this id and schedule
   * keeps its place (due time, a run in progress); only its data and
   * policy change. */
  bool keep_if_same;
};

/* A scheduled job, as tghost.jobs.list shows it. */
struct job_info {
  char *id, *name;
  char *data;
  size_t data_len;
  char *schedule;              /* "once", "every 90 s", "cron 0 9 * * * (Europe/Berlin)" */
  int64_t next_ms;
  bool running;
  int attempts;
};

/* The error requests still in flight end with when the scheduler is
 * freed (compare the pointer: nobody needs telling). */
extern const char jobsched_exiting[];

typedef void (*jobsched_put_fn)(void *ud, const char *id, const char *error);
typedef void (*jobsched_cancel_fn)(void *ud, bool found, const char *error);
typedef void (*jobsched_list_fn)(void *ud, const struct job_info *jobs,
                                 size_t n, const char *error);

struct jobsched *jobsched_new(const struct jobsched_env *env);
/* After the loop has stopped and every job has been cancelled. */
void jobsched_free(struct jobsched *s);

/* The run() options in force (concurrency, timeout, lease, poll): at
 * start and at each reload. */
void jobsched_configure(struct jobsched *s, const struct run_options *o);
/* Opens the job store for a storage of kind at target, namespace ns
 * (kind NULL: memory), once: 0, or -1 with err. */
int jobsched_open(struct jobsched *s, const char *kind, const char *target,
                  const char *ns, struct buf *err);
/* Whether a store was opened, and which ("sqlite job store ..."). */
bool jobsched_opened(const struct jobsched *s, struct buf *describe);
/* Starts claiming due jobs (requests made before wait for this). */
void jobsched_start(struct jobsched *s);
/* New runs start in gen (the host's current generation). */
void jobsched_set_generation(struct jobsched *s, struct job_owner *gen);
/* The bot has stopped: no new runs; runs in flight get drain_s seconds,
 * then are cancelled (and released). env.on_idle follows once nothing is
 * in flight. */
void jobsched_drain(struct jobsched *s, double drain_s);
/* Nothing in flight: no run, no store request. */
bool jobsched_idle(const struct jobsched *s);

/* Requests from scripts; each done runs once, from the loop. */
void jobsched_put(struct jobsched *s, const struct job_spec *spec,
                  jobsched_put_fn done, void *ud);
void jobsched_cancel(struct jobsched *s, const char *id,
                     jobsched_cancel_fn done, void *ud);
/* The jobs whose id starts with prefix, by id, at most limit. */
void jobsched_list(struct jobsched *s, const char *prefix, size_t limit,
                   jobsched_list_fn done, void *ud);

/* The scheduler's wall clock, Unix ms. */
int64_t jobsched_now_ms(const struct jobsched *s);
/* The sandbox's clock: moves the clock forward by ms, stopping at each
 * due time on the way to run what is due and wait for it, then calls
 * done. One advance at a time. */
void jobsched_advance(struct jobsched *s, int64_t ms,
                      void (*done)(void *ud), void *ud);

/* Names for messages and options. */
const char *job_misfire_name(enum job_misfire m);
int job_misfire_from_name(const char *name);   /* -1: unknown */

#endif
