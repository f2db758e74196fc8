/* The process as far as the Lua bindings (the luaXXX.c modules) may
 * touch it: one struct, script_env, with the loop and the scheduler, the
 * HTTP and Bot API clients, the stores and the scheduled jobs, the few
 * flags of the command line they need, the bot (its runner and identity)
 * and what the host makes on first use behind script_host_ops, and the
 * bindings' own state that outlives reloads. Not the host, the runner,
 * the update sources or the journal.
 *
 * There is one per process: app/bindenv.c builds it from the host before
 * the first generation and is the writer of every field; each generation
 * points at it (luabind.h's env_of), and the bindings only read it.
 *
 * Layer: the bottom of the Lua state's (forward declarations only). */
#ifndef TGHOST_SCRIPTENV_H
#define TGHOST_SCRIPTENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct scheduler;
struct task;
struct http_client;
struct botapi;
struct apicalls;
struct storages;
struct jobsched;
struct job;
struct job_owner;
struct update_item;
struct luaseq;
struct luaconv;
struct finalizer_queue;
struct child_table;

/* What the bindings ask of the host: the bot (tghost.runner, tghost.core)
 * and what the host makes on first use. Before run() has been honoured
 * there is no runner: then the bot has not started, is not running and
 * has not finished. */
struct script_host_ops {
  bool (*started)(void *ud);        /* the runner exists */
  bool (*running)(void *ud);        /* ... and takes updates */
  bool (*finished)(void *ud);       /* ... and has stopped for good */
  size_t (*size)(void *ud);         /* updates in flight */
  /* A graceful stop; waiter (NULL: nobody) is woken once everything else
   * in flight is done (it must not be waiting already). */
  void (*stop)(void *ud, struct task *waiter);
  /* Wakes waiter once the bot has stopped; forget_waiter undoes it. */
  void (*wait_stopped)(void *ud, struct task *waiter);
  void (*forget_waiter)(void *ud, struct task *waiter);
  /* os.exit(code): the status tghost exits with, after a graceful stop
   * when the bot runs, at once otherwise. */
  void (*exit)(void *ud, int code);
  /* handle:start(): starts the bot again after a stop (at once if it has
   * completed, else once it does); false if it runs, is stopping for good,
   * or a start is asked for already (and under --check). */
  bool (*start_again)(void *ud);
  /* Starts u as an update of owner's generation, the way the runner
   * starts one (bot.handleUpdate: an update a script hands in itself);
   * on_end(job, end_ud) when it has ended. NULL when no job was needed
   * (a conversation took it) or it could not start. */
  struct job *(*start_update)(void *ud, struct job_owner *owner,
                              struct update_item *u,
                              void (*on_end)(struct job *job, void *end_ud),
                              void *end_ud);
  /* getMe's result (JSON), or NULL before it is known. */
  const char *(*identity)(void *ud, size_t *len);
  /* Made on first use and kept by the host (NULL if they cannot be): the
   * HTTP client of tghost.http's streams, tghost.exec's processes. */
  struct http_client *(*stream_http)(void *ud);
  struct child_table *(*children)(void *ud);
};

struct script_env {
  struct event_base *base;          /* the loop: timers and events */
  struct scheduler *sched;          /* jobs and tasks: wait, wake, spawn */
  struct http_client *http;         /* tghost.http's requests */
  struct botapi *api;               /* Bot API requests and downloads */
  struct apicalls *calls;           /* Bot API calls: retries, throttle */
  struct storages *storages;        /* tghost.storage's stores */
  struct jobsched *jobs;            /* tghost.jobs's scheduled jobs */
  const char *token;                /* tghost.token() */
  bool check;                       /* --check: no network, no runner */
  bool sandbox;                     /* --sandbox: the terminal is a chat */
  bool cluster;                     /* --cluster: several processes */
  const struct script_host_ops *host;
  void *host_ud;
  /* Told of an update that went through all the bot's middleware with no
   * handler taking it (the sandbox shows a note); NULL: nobody asks, and
   * the runtime does not watch for it. type: "message", ... */
  void (*on_unhandled)(void *ud, int64_t update_id, const char *type);
  void *on_unhandled_ud;
  /* The bindings' state that outlives reloads. */
  struct luaseq *seq;               /* sequentialize's keys */
  struct luaconv *conv;             /* conversations' keys */
  struct finalizer_queue *finalizers;   /* __gc run as tasks */
};

#endif
