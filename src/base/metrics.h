/* Metrics: one process-wide registry of counters, gauges and histograms,
 * rendered in the Prometheus text exposition format (version 0.0.4) for
 * --metrics (see metrics_http.h).
 *
 * Every metric is declared once, in metric_defs (metrics.c): its name,
 * help text, type, label names and, for a histogram, its buckets. Modules
 * update a metric with one call at the point where the thing happens:
 *
 *   metric_inc(METRIC_UPDATES_RECEIVED, "webhook", NULL);
 *   metric_observe(METRIC_HANDLER_DURATION, seconds, NULL, NULL);
 *   metric_set(METRIC_UPDATES_IN_FLIGHT, (double)n, NULL, NULL);
 *
 * Labels: a metric has at most two label names, fixed where it is
 * declared; the two values are given in order (NULL for none). Cardinality
 * stays bounded: a metric keeps at most METRIC_MAX_VALUES distinct values
 * of its first label, and a value beyond that, or one that is not a short
 * identifier ([A-Za-z0-9_.-], at most 64 characters), is counted as
 * "other". So a method name a script makes up cannot grow the output
 * without bound, and nothing like a chat id or a message can become a
 * label. The one exception is an info metric (metric_set_info), whose text
 * label holds one escaped, truncated line and is replaced, not added to.
 *
 * The registry is not thread-safe: it is updated and read on the loop's
 * thread only (the journal's thread never touches it).
 *
 * Layer: base (no loop, no I/O). */
#ifndef TGHOST_METRICS_H
#define TGHOST_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

enum metric_id {
  /* the pipeline */
  METRIC_UPDATES_RECEIVED,     /* counter {source} */
  METRIC_UPDATES_HANDLED,      /* counter {outcome} */
  METRIC_UPDATES_IN_FLIGHT,    /* gauge */
  METRIC_UPDATES_PARKED,       /* gauge */
  METRIC_CONVERSATIONS_WAITING,/* gauge (see metrics_set_conversations_waiting) */
  METRIC_HANDLER_DURATION,     /* histogram */
  /* the Bot API */
  METRIC_API_CALLS,            /* counter {method, outcome} */
  METRIC_API_CALL_DURATION,    /* histogram {method} */
  METRIC_API_FLOOD_WAITS,      /* counter */
  METRIC_API_FLOOD_WAIT_SECONDS, /* counter */
  METRIC_THROTTLE_QUEUED,      /* gauge */
  /* hot reload */
  METRIC_RELOADS,              /* counter {result} */
  METRIC_GENERATION,           /* gauge */
  METRIC_GENERATIONS_ALIVE,    /* gauge */
  /* the journal */
  METRIC_JOURNAL_BACKLOG,      /* gauge */
  METRIC_JOURNAL_UNSYNCED,     /* gauge */
  /* where updates come from */
  METRIC_SOURCE_STATE,         /* gauge {state}: a state set */
  METRIC_SOURCE_FAILING_SINCE, /* gauge, Unix time; 0 while it works */
  METRIC_SOURCE_ERRORS,        /* counter {kind} */
  METRIC_SOURCE_LAST_ERROR,    /* info {kind, message} */
  METRIC_WEBHOOK_REQUESTS,     /* counter {code} */
  METRIC_WEBHOOK_DUPLICATES,   /* counter */
  METRIC_WEBHOOK_HELD,         /* gauge */
  METRIC_WEBHOOK_PENDING,      /* gauge (getWebhookInfo) */
  METRIC_WEBHOOK_DELIVERY_FAILING, /* gauge, 0 or 1 */
  METRIC_WEBHOOK_LAST_ERROR,   /* info {kind, message} */
  METRIC_WEBHOOK_LAST_ERROR_TIME, /* gauge, Unix time */
  /* tghost's HTTP servers (httpd.h) */
  METRIC_HTTP_CONNECTIONS,     /* gauge {listener} */
  METRIC_HTTP_CLOSED,          /* counter {listener, reason} */
  /* the cluster (--cluster) */
  METRIC_CLUSTER_MEMBERS,      /* gauge */
  METRIC_CLUSTER_PARTITIONS_OWNED, /* gauge */
  METRIC_CLUSTER_PARTITION_LAG,/* gauge {partition} */
  METRIC_CLUSTER_LEASE_RENEWALS,   /* counter */
  METRIC_CLUSTER_LEASE_LOSSES, /* counter {reason} */
  METRIC_CLUSTER_PARTITION_MOVES,  /* counter {direction} */
  METRIC_CLUSTER_INGRESS_HOLDER,   /* gauge: 1 while this instance holds it */
  METRIC_CLUSTER_INGESTED,     /* counter {result} */
  METRIC_CLUSTER_FENCED_REFUSED,   /* counter {what} */
  METRIC_CLUSTER_REDELIVERED,  /* counter */
  METRIC_CLUSTER_DEAD_LETTERS, /* counter */
  /* scheduled jobs */
  METRIC_JOBS_SCHEDULED,       /* gauge */
  METRIC_JOBS_DUE,             /* gauge */
  METRIC_JOBS_RUNNING,         /* gauge */
  METRIC_JOBS_LATE_SECONDS,    /* gauge */
  METRIC_JOB_LATENESS,         /* histogram */
  METRIC_JOB_RUNS,             /* counter {outcome} */
  METRIC_JOB_CLAIMS_LOST,      /* counter */
  /* the process */
  METRIC_START_TIME,           /* gauge, Unix time */
  METRIC_BUILD_INFO,           /* info {version} */
  METRIC_COUNT
};

/* Distinct values of a metric's first label; more are counted as
 * "other". */
#define METRIC_MAX_VALUES 48

/* The states METRIC_SOURCE_STATE takes (metric_set_state). */
#define SOURCE_STATE_STARTING "starting"  /* getMe, setWebhook */
#define SOURCE_STATE_POLLING "polling"    /* getUpdates works */
#define SOURCE_STATE_WEBHOOK "webhook"    /* the webhook is set; serving */
#define SOURCE_STATE_CLUSTER "cluster"    /* a cluster member taking its share
                                             (another one polls) */
#define SOURCE_STATE_FAILING "failing"    /* retrying after errors */
#define SOURCE_STATE_STOPPING "stopping"  /* draining after a stop */
#define SOURCE_STATE_STOPPED "stopped"

/* Counters: adds v (>= 0). */
void metric_add(enum metric_id id, double v, const char *l1, const char *l2);
static inline void metric_inc(enum metric_id id, const char *l1,
                              const char *l2) {
  metric_add(id, 1, l1, l2);
}
/* Gauges. */
void metric_set(enum metric_id id, double v, const char *l1, const char *l2);
/* Histograms: one observation (seconds, for the *_seconds ones). */
void metric_observe(enum metric_id id, double v, const char *l1,
                    const char *l2);
/* A state set: the series of state is 1, every other state's 0. */
void metric_set_state(enum metric_id id, const char *state);
/* The state a state set is in (NULL before the first metric_set_state). */
const char *metric_state(enum metric_id id);
/* An info metric: its one series becomes {l1, text} with value 1; text
 * is cut at its first line and at 160 bytes. NULL l1 removes it. */
void metric_set_info(enum metric_id id, const char *l1, const char *text);
/* The text label of an info metric, or NULL. */
const char *metric_info_text(enum metric_id id);
/* A counter's or gauge's value, a histogram's count (0 when the series
 * does not exist). */
double metric_value(enum metric_id id, const char *l1, const char *l2);

/* The number of handlers waiting in a conversation right now (ctx:wait;
 * luaconv.c keeps it). */
static inline void metrics_set_conversations_waiting(size_t n) {
  metric_set(METRIC_CONVERSATIONS_WAITING, (double)n, NULL, NULL);
}

/* A collector runs before the metrics are rendered, so that a module can
 * keep gauges lazily (set when asked, not on every change): the update
 * source's health hook is one. One at a time; NULL removes it. */
void metrics_set_collector(void (*fn)(void *ud), void *ud);
/* Appends every metric in the Prometheus text format (after running the
 * collector). */
void metrics_render(struct buf *out);
/* The metric's full name ("tghost_updates_received_total"). */
const char *metric_name(enum metric_id id);
/* Forgets every value (tests). */
void metrics_reset(void);

#endif
