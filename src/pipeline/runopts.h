/* run(bot, options): the options a script gives the runner, and their one
 * schema.
 *
 * Every option is described once, in run_option_specs (runopts.c): the
 * name a script writes (grammY runner's, e.g. "sink.concurrency"), the
 * flat name the Lua half hands to C, its type and range, and the field of
 * struct run_options it fills. lua/options.lua validates a script's table
 * against this schema (unknown names with a suggestion, types, ranges) and
 * flattens it; the C binding fills struct run_options from the flat table
 * with the same schema. Adding an option is one line there plus the
 * field here. */
#ifndef TGHOST_RUNOPTS_H
#define TGHOST_RUNOPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "pipeline/sink.h"
#include "net/retry.h"

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
  char *journal;                 /* run{ journal = FILE }, or NULL */
  char *webhook_url;             /* run{ webhook = { url, listen, */
  char *webhook_listen;          /*   secretFile } } (see webhook.h), */
  char *webhook_secret_file;     /*   or NULL */
  char *cluster_url;             /* run{ cluster = { url, partitions, */
  int cluster_partitions;        /*   lease, maxAttempts, moveDelay, */
  double cluster_lease_s;        /*   key } } (src/cluster/cluster.h) */
  int cluster_max_attempts;
  double cluster_move_delay_s;
  bool feed;                     /* updates from tghost.feed (feed.h) */
  /* run{ jobs = { ... } }: scheduled jobs (pipeline/jobsched.h). */
  int jobs_concurrency;          /* runs at once */
  long jobs_timeout_ms;          /* per run; 0: none; -1: the sink's */
  long jobs_lease_ms;            /* a claim lasts this long unrenewed */
  long jobs_poll_ms;             /* a shared store is looked at this often */
  char *jobs_misfire;            /* "once" | "skip" | "all"; NULL: once */
  int jobs_misfire_limit;
  long jobs_grace_ms;
  /* jobs.storage, as the Lua half describes it: the storage's kind
   * ("sqlite"), target (a path, a URL) and namespace; NULL: memory. */
  char *jobs_store_kind, *jobs_store_target, *jobs_store_ns;
};

enum run_option_type {
  RUNOPT_INTEGER,        /* a whole number in [min, max] */
  RUNOPT_NUMBER,         /* any number in [min, max] */
  RUNOPT_BOOLEAN,
  RUNOPT_SINK_KIND,      /* "concurrent" | "sequential" | "batch" */
  RUNOPT_RETRY,          /* "exponential" | "quadratic" | ms in [min, max] */
  RUNOPT_UPDATE_TYPES,   /* a list of update type names (JSON in C) */
  RUNOPT_FUNCTION,       /* kept by the Lua half, not by C */
  RUNOPT_STRING,         /* a non-empty string (copied) */
  RUNOPT_STORAGE,        /* a storage (tghost.storage.*), kept by the Lua
                          * half, which describes it in C's fields */
};

struct run_option_spec {
  const char *path;              /* as a script writes it: "sink.concurrency" */
  const char *flat;              /* in the flattened table */
  enum run_option_type type;
  double min, max;
  size_t offset, size;           /* the field in struct run_options; size
                                  * 0: kept by the Lua half, not by C */
};

extern const struct run_option_spec run_option_specs[];
extern const size_t run_option_count;

void run_options_init(struct run_options *o);
void run_options_free(struct run_options *o);
void run_options_copy(struct run_options *dst, const struct run_options *src);

const char *sink_kind_name(enum sink_kind k);
/* -1 if name is not a sink kind. */
int sink_kind_from_name(const char *name);
const char *retry_kind_name(enum retry_kind k);

#endif
