/* The process-wide context: the loop, HTTP, the Bot API client, the
 * scheduler, the live generation and the runner. One per process; modules
 * receive it explicitly (Lua C functions reach it through their
 * generation). */
#ifndef TGHOST_HOST_H
#define TGHOST_HOST_H

#include <stdbool.h>

#include <event2/event.h>

#include "botapi.h"
#include "cli.h"
#include "http.h"
#include "task.h"

struct generation;
struct reloader;
struct luaseq;
struct runner;
struct storages;

struct host {
  const struct config *cfg;
  struct event_base *base;
  struct http_client *http;
  struct botapi *api;
  /* getUpdates has a connection pool of its own: a long poll never takes a
   * connection (or an HTTP/2 stream slot) that method calls need. */
  struct http_client *poll_http;
  struct botapi *poll_api;
  struct apicalls *calls;       /* Bot API calls from Lua (src/apicall.h) */
  struct scheduler sched;
  struct generation *current;   /* new updates run here */
  int last_generation_id;
  struct runner *runner;        /* created by the first run() */
  struct reloader *reloader;    /* hot reload; NULL with --check */
  struct luaseq *seq;           /* sequentialize's keys: outlive reloads */
  struct storages *storages;    /* tghost.storage's stores: outlive reloads */
  char *bot_info_json;          /* getMe's result, once known */
  size_t bot_info_len;
  int exit_code;
  bool loading;                 /* the first generation's top level runs */
  bool exiting;
};

/* Ends the process with status 1 after logging msg: stops the runner
 * without confirming anything and cancels all work. */
void host_fatal(struct host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Leaves the loop if nothing is left to do: no runner activity and no live
 * job. */
void host_exit_if_idle(struct host *h);

#endif
