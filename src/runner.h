/* The runner: connects the source (getUpdates) to the sink (jobs in
 * flight), as grammY runner does, and owns start, stop and graceful
 * shutdown.
 *
 * Fetching follows free capacity: a poll asks for min(100, capacity) and
 * none is made while the sink is full. A graceful stop aborts the pending
 * poll, lets in-flight updates finish within the drain timeout (then
 * cancels the rest), and confirms the offset of everything started with a
 * last getUpdates, so a restart neither loses nor repeats an update. */
#ifndef TGHOST_RUNNER_H
#define TGHOST_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

struct host;
struct task;
struct runner;

enum sink_kind { SINK_CONCURRENT, SINK_SEQUENTIAL, SINK_BATCH };
enum retry_kind { RETRY_EXPONENTIAL, RETRY_QUADRATIC, RETRY_FIXED };

/* run(bot, opts), flattened and validated by lua/options.lua. */
struct run_options {
  enum sink_kind sink;
  int concurrency;
  long timeout_ms;               /* per update; 0 = none */
  int fetch_timeout_s;           /* getUpdates long-poll timeout */
  char *allowed_updates_json;    /* NULL: derived from the handlers */
  enum retry_kind retry;
  long retry_ms;                 /* RETRY_FIXED */
  long max_retry_ms;
  bool silent;
  double speed_traffic_balance;  /* 0..1 */
  long max_delay_ms;
  long max_waiting;              /* parked updates at most; -1: default */
};

void run_options_init(struct run_options *o);
void run_options_free(struct run_options *o);
void run_options_copy(struct run_options *dst, const struct run_options *src);

struct runner *runner_new(struct host *h, const struct run_options *o);
void runner_free(struct runner *r);
/* Hot reload: applies a reloaded script's run() options that can change
 * while running (concurrency, maxWaiting, per-update timeout, fetch
 * timeout, allowed_updates, retry settings, silent, pacing) and warns about the
 * others (the sink kind), which keep their values until a restart. Logs
 * what changed, for generation gen. */
void runner_reconfigure(struct runner *r, const struct run_options *o,
                        int gen);
/* Fetches the bot's identity (getMe) and starts polling. */
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
