/* The runner: connects an update source (source.h: getUpdates, the
 * webhook, either inside the journal) to the sink (jobs in flight), as
 * grammY runner does, and owns start, stop and graceful shutdown. It never
 * asks which source it runs.
 *
 * Fetching follows free capacity: the source is asked for min(100,
 * capacity) and for none while the sink is full. A graceful stop stops the
 * source fetching, releases the updates not started when the source says
 * someone keeps them (or runs them), lets in-flight updates finish within
 * the drain timeout (then cancels the rest), and lets the source finish
 * its part (polling confirms the offset with a last getUpdates), so a
 * restart neither loses nor repeats an update. Updates whose job waits
 * idle (a conversation waiting for its user: see job_park_idle) are
 * cancelled as soon as nothing else is left to drain, with one line
 * saying how many.
 *
 * Every update the source delivers gets its outcome reported back to it
 * (started, then done / failed / timed out / cut short / released).
 *
 * The runner does not know what an update runs: it starts each one in the
 * current generation through update_ops, which the Lua half provides. */
#ifndef TGHOST_RUNNER_H
#define TGHOST_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "net/http.h"
#include "pipeline/runopts.h"
#include "pipeline/source.h"
#include "pipeline/update.h"
#include "sched/task.h"

struct runner;

/* How updates run: provided by the Lua half (runtime.c). */
struct update_ops {
  /* Starts a job in gen for the update (u->json may be taken); NULL if it
   * needs none (it cannot be decoded, or a waiting conversation took it).
   * The job must end through on_end(job, end_ud). */
  struct job *(*start)(struct job_owner *gen, struct update_item *u,
                       job_end_fn on_end, void *end_ud);
  /* Report a job's hard failure (CPU budget, a crash in the runtime) / its
   * timeout (it is cancelled after this), in the job's own generation. */
  void (*report_failure)(struct job *job);
  void (*report_timeout)(struct job *job, long timeout_ms);
  /* The script's cluster key for an update (run{ cluster = { key = fn }
   * }), computed in gen now: 1 with the key appended to key, 0 when the
   * script gives none (or fn returned nil), -1 with why in err. */
  int (*cluster_key)(struct job_owner *gen, const char *json, size_t len,
                     struct buf *key, struct buf *err);
};

struct runner_callbacks {
  /* An unrecoverable error (bad token, conflict, gave up retrying). */
  void (*on_fatal)(void *ud, const char *message);
  /* A stop has completed (drained, and the source's part done). */
  void (*on_stopped)(void *ud);
};

/* What the runner works with; owned by the caller. */
struct runner_env {
  struct event_base *base;
  struct http_client *calls_http;/* sized to the concurrency */
  double drain_timeout_s;
  const struct update_ops *update_ops;
};

/* A runner for source (taken over: freed with the runner); updates start
 * in current (see runner_set_generation). */
struct runner *runner_new(const struct runner_env *env,
                          const struct run_options *o,
                          struct update_source *source,
                          struct job_owner *current,
                          const struct runner_callbacks *cb, void *ud);
void runner_free(struct runner *r);
/* Hot reload: applies a reloaded script's run() options that can change
 * while running (concurrency, maxWaiting, per-update timeout, fetch
 * timeout, allowed_updates, retry settings, silent, pacing) and warns about
 * the others (the sink kind), which keep their values until a restart.
 * Logs what changed, for generation gen. */
void runner_reconfigure(struct runner *r, const struct run_options *o,
                        int gen);
/* New updates start in current from now on (a reload); the caller keeps
 * its reference. */
void runner_set_generation(struct runner *r, struct job_owner *current);
/* The runner counts as running from here on, while its owner learns the
 * bot's identity (getMe); a stop now ends it at once. */
void runner_start(struct runner *r);
/* The identity is known: the source starts and updates flow. */
void runner_run(struct runner *r);
/* Graceful stop. If waiter is given (a task inside a job of this runner or
 * elsewhere), it is woken once everything else in flight has finished. */
void runner_stop(struct runner *r, struct task *waiter);
/* Wakes waiter once the runner has stopped, without stopping it; a waiter
 * inside an update of this runner is woken, as runner_stop's is, once
 * everything else in flight is done. */
void runner_wait_stopped(struct runner *r, struct task *waiter);
/* A waiting task was cancelled: do not wake it. */
void runner_forget_waiter(struct runner *r, struct task *waiter);
/* Cancels everything at once; nothing is confirmed. */
void runner_abort(struct runner *r);
bool runner_is_running(const struct runner *r);
/* True once a stop has completed (drained, the source's part done), or
 * before runner_start. */
bool runner_finished(const struct runner *r);
/* The run() options in force. */
const struct run_options *runner_options(const struct runner *r);
/* Updates in flight (started or waiting to start). */
size_t runner_size(const struct runner *r);

#endif
