/* The process-wide context: the loop, HTTP, the Bot API client, the
 * scheduler, the runner, the bot's identity and the generation new updates
 * run in. One per process, owned by this module: host_init builds it,
 * host_free tears it down, and the other modules change it only through
 * the functions below. Lua bindings reach it through their generation.
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
#include "pipeline/runner.h"
#include "sched/task.h"

struct reloader;
struct luaseq;
struct luaconv;
struct finalizer_queue;
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
  struct child_table *children; /* tghost.exec's processes (made on first use) */
  /* Owned by the modules above that create them (main.c attaches them);
   * the host only carries them. */
  struct reloader *reloader;    /* hot reload; NULL with --check */
  struct luaseq *seq;           /* sequentialize's keys: outlive reloads */
  struct luaconv *conv;         /* conversations' keys: outlive reloads */
  struct finalizer_queue *finalizers;   /* __gc run as tasks (luaguard.h) */
  /* Told of an update that went through all the bot's middleware with no
   * handler taking it (the sandbox shows a note); NULL: nobody asks, and
   * the runtime does not watch for it. type: "message", ... */
  void (*on_unhandled)(void *ud, int64_t update_id, const char *type);
  void *on_unhandled_ud;

  /* Read-only outside host.c: */
  struct job_owner *current;    /* new updates run here (one reference) */
  const struct update_ops *update_ops;
  struct getme *getme;          /* getMe in flight or waiting to retry */
  char *bot_info_json;          /* getMe's result, once known */
  size_t bot_info_len;
  int exit_code;
  bool loading;                 /* the first generation's top level runs */
  bool exiting;
};

/* Builds the loop, HTTP clients, Bot API clients and the scheduler from
 * cfg (which must outlive the host). Returns 0, or -1 with err set. */
int host_init(struct host *h, const struct config *cfg,
              const struct update_ops *ops, struct buf *err);
/* Cancels whatever is left, releases the current generation and frees
 * everything host_init built. The attached modules must be freed first. */
void host_free(struct host *h);

/* Makes g (whose reference the host takes over) the generation new
 * updates run in; returns the previous one, whose reference passes to the
 * caller (NULL the first time). */
struct job_owner *host_swap_generation(struct host *h, struct job_owner *g);

/* Picks the update source the first generation's run() options (and the
 * command line) ask for from the table of sources, wraps it in the journal
 * when there is one, creates the runner with it, asks getMe (retried as
 * getUpdates is) and, once the bot's identity is known, runs the runner.
 * A source that cannot be used (a journal for another bot, an address in
 * use) is fatal. */
void host_start_runner(struct host *h, const struct run_options *o);
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
