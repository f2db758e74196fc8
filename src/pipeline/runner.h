/* The runner: connects the source (getUpdates), or in webhook mode the
 * webhook receiver (webhook.h), to the sink (jobs in flight), as grammY
 * runner does, and owns start, stop and graceful shutdown.
 *
 * Fetching follows free capacity: a poll asks for min(100, capacity) and
 * none is made while the sink is full. A graceful stop aborts the pending
 * poll, lets in-flight updates finish within the drain timeout (then
 * cancels the rest), and confirms the offset of everything started with a
 * last getUpdates, so a restart neither loses nor repeats an update.
 * Updates whose job waits idle (a conversation waiting for its user: see
 * job_park_idle) are cancelled as soon as nothing else is left to drain,
 * with one line saying how many. 
 *
 * The runner does not know what an update runs: it asks its owner (the
 * host) through runner_callbacks, the way the source and the sink ask it. */
#ifndef TGHOST_RUNNER_H
#define TGHOST_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "net/botapi.h"
#include "net/http.h"
#include "pipeline/journal.h"
#include "pipeline/runopts.h"
#include "sched/task.h"
#include "pipeline/update.h"

struct runner;

struct runner_callbacks {
  /* Starts a job for the update (u->json may be taken); NULL if it cannot.
   * The job must end through on_end(job, end_ud). */
  struct job *(*start_update)(void *ud, struct update_item *u,
                              job_end_fn on_end, void *end_ud);
  /* A job failed hard (CPU budget, a crash in the runtime): report it. */
  void (*on_failure)(void *ud, struct job *job);
  /* A job ran longer than timeout_ms; it is cancelled after this. */
  void (*on_timeout)(void *ud, struct job *job, long timeout_ms);
  /* getMe answered: the bot's User object, raw JSON. */
  void (*on_identity)(void *ud, const char *json, size_t len);
  /* An unrecoverable error (bad token, conflict, gave up retrying). */
  void (*on_fatal)(void *ud, const char *message);
  /* A stop has completed (drained and confirmed). */
  void (*on_stopped)(void *ud);
};

/* What the runner works with; owned by the caller. */
struct runner_env {
  struct event_base *base;
  struct botapi *poll_api;       /* getUpdates and getMe */
  struct http_client *calls_http;/* sized to the concurrency */
  double drain_timeout_s;
  const char *journal_path;      /* --journal (see journal.h), or NULL */
  int64_t bot_id;                /* whose journal it is (-1: unknown) */
  /* --webhook (see webhook.h): updates are POSTed instead of polled.
   * Like journal_path, read by runner_start only. */
  const char *webhook_url;       /* NULL: getUpdates long polling */
  const char *webhook_listen;
  const char *webhook_secret_file;
};

struct runner *runner_new(const struct runner_env *env,
                          const struct run_options *o,
                          const struct runner_callbacks *cb, void *ud);
void runner_free(struct runner *r);
/* Hot reload: applies a reloaded script's run() options that can change
 * while running (concurrency, maxWaiting, per-update timeout, fetch
 * timeout, allowed_updates, retry settings, silent, pacing) and warns about
 * the others (the sink kind), which keep their values until a restart.
 * Logs what changed, for generation gen. */
void runner_reconfigure(struct runner *r, const struct run_options *o,
                        int gen);
/* Opens the journal if there is one (unfinished updates run first), fetches
 * the bot's identity (getMe) and starts polling, or, with a webhook URL,
 * listens and calls setWebhook. A journal or a webhook address that cannot
 * be used is fatal (on_fatal).
 *
 * In webhook mode, a POSTed update is taken when the sink has room, as a
 * poll would fetch it, and answered 200 once it is in the sink (and
 * durable, with a journal); a graceful stop answers what is still held
 * 503, runs what was answered 200, confirms nothing with getUpdates (it
 * cannot while a webhook is set) and leaves the webhook set. */
void runner_start(struct runner *r);
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
/* True once a stop has completed (drained and confirmed). */
bool runner_finished(const struct runner *r);
/* Updates in flight (started or waiting to start). */
size_t runner_size(const struct runner *r);

#endif
