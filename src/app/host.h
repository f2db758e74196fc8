/* The process-wide context: the loop, HTTP, the Bot API client, the
 * scheduler, the runner, the bot's identity and the generation new updates
 * run in. One per process, owned by this module: host_init builds it,
 * host_free tears it down, and the other modules change it only through
 * the functions below (every field's writer is this module). The Lua half
 * sees none of it but what app/bindenv.c puts in struct script_env.
 *
 * The host sits above the runner and below the Lua half: it knows the
 * current generation only as a job owner (task.h), and hands the runner
 * update_ops (runner.h), which the layer that owns the Lua states
 * provides: the runner starts updates in the current generation itself. */
#ifndef TGHOST_HOST_H
#define TGHOST_HOST_H

#include <stdbool.h>

#include <event2/event.h>

#include "net/apicall.h"
#include "net/botapi.h"
#include "base/cli.h"
#include "net/http.h"
#include "pipeline/jobsched.h"
#include "pipeline/runner.h"
#include "sched/task.h"

struct storages;
struct child_table;
struct getme;

struct host {
  const struct config *cfg;
  struct event_base *base;
  struct http_client *http;
  struct botapi *api;
  /* getUpdates has a connection pool of its own: a long poll never takes a
   * connection (or an HTTP/2 stream slot) that method calls need. */
  struct http_client *poll_http;
  struct botapi *poll_api;
  /* Streams (tghost.http.stream, sse) have a pool of their own too: each
   * holds its connection for as long as it lasts, and thousands of them
   * must not crowd the method calls' pool (made on first use). */
  struct http_client *stream_http;
  struct apicalls *calls;       /* Bot API calls from Lua (src/apicall.h) */
  struct scheduler sched;
  struct runner *runner;        /* from host_start_runner; NULL before */
  struct storages *storages;    /* tghost.storage's stores: outlive reloads */
  struct jobsched *jobs;        /* tghost.jobs: outlive reloads */
  struct child_table *children; /* tghost.exec's processes (made on first use) */

  /* Read-only outside host.c: */
  struct job_owner *current;    /* new updates run here (one reference) */
  const struct update_ops *update_ops;
  struct getme *getme;          /* getMe in flight or waiting to retry */
  char *bot_info_json;          /* getMe's result, once known */
  size_t bot_info_len;
  int exit_code;
  bool loading;                 /* the first generation's top level runs */
  bool restart_wanted;          /* handle:start() while stopping */
  bool exiting;
};

/* Builds the loop, HTTP clients, Bot API clients and the scheduler from
 * cfg (which must outlive the host). Returns 0, or -1 with err set. */
int host_init(struct host *h, const struct config *cfg,
              const struct update_ops *ops, struct buf *err);
/* Cancels whatever is left, releases the current generation and frees
 * everything host_init built. What is built on the host (hot reload, the
 * bindings' environment) must be freed first. */
void host_free(struct host *h);

/* Made on first use and kept until host_free (NULL if they cannot be):
 * the HTTP client of tghost.http's streams (a pool of their own, so a long
 * stream never takes a method call's connection), and tghost.exec's child
 * processes. */
struct http_client *host_stream_http(struct host *h);
struct child_table *host_children(struct host *h);

/* Creates the job scheduler, whose runs start through ops (the Lua
 * half's); right after host_init. */
void host_init_jobs(struct host *h, const struct jobsched_ops *ops);

/* Makes g (whose reference the host takes over) the generation new
 * updates run in; returns the previous one, whose reference passes to the
 * caller (NULL the first time). */
struct job_owner *host_swap_generation(struct host *h, struct job_owner *g);

/* Picks the update source the first generation's run() options (and the
 * command line) ask for from the table of sources, wraps it in the journal
 * when there is one, creates the runner with it, asks getMe (retried as
 * getUpdates is) and, once the bot's identity is known, runs the runner.
 * Opens the job store the options name and starts the job scheduler. A
 * source or job store that cannot be used (a journal for another bot, an
 * address in use) is fatal. */
void host_start_runner(struct host *h, const struct run_options *o);
/* handle:start() after a stop has completed (runner_finished): a new
 * runner with the same options, its source made afresh, getMe asked
 * again. While a stop is under way, set restart_wanted instead: the
 * restart follows its end (and the process does not exit meanwhile). */
void host_restart_runner(struct host *h);
/* handle:start(): host_restart_runner at once if the stop has completed,
 * else once it does. False, doing nothing, under --check, with no runner,
 * while exiting, while the bot runs, or with a start asked for already. */
bool host_start_again(struct host *h);
/* Hot reload: a reloaded script's run() options (see runner_reconfigure);
 * a change of what chose the source (journal, webhook) waits for a
 * restart, with a warning. */
void host_reconfigure(struct host *h, const struct run_options *o, int gen);

/* The first generation's top level runs / has finished. */
void host_set_loading(struct host *h, bool loading);

/* Ends the process with status 1 after logging msg: stops the runner
 * without confirming anything and cancels all work. */
void host_fatal(struct host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The status tghost exits with once it has stopped (os.exit). */
void host_set_exit_code(struct host *h, int code);
/* Leaves the loop with status code once the current pass is over; nothing
 * more is started. */
void host_exit(struct host *h, int code);
/* Leaves the loop if nothing is left to do: no runner activity and no live
 * job. */
void host_exit_if_idle(struct host *h);
/* SIGINT/SIGTERM: a graceful stop when there is a runner to drain and this
 * is the first request; otherwise cancels everything and leaves the loop at
 * once (status 128 + sig for a repeated signal). */
void host_stop(struct host *h, int sig);

#endif
