#include "pipeline/runopts.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

#define FIELD(name)                    \
  offsetof(struct run_options, name), \
      sizeof(((struct run_options *)0)->name)

const struct run_option_spec run_option_specs[] = {
    {"source.speedTrafficBalance", "speed_traffic_balance", RUNOPT_NUMBER, 0,
     1, FIELD(speed_traffic_balance)},
    {"source.maxDelayMilliseconds", "max_delay_ms", RUNOPT_INTEGER, 0,
     1L << 30, FIELD(max_delay_ms)},
    {"runner.fetch.timeout", "fetch_timeout", RUNOPT_INTEGER, 0, 3600,
     FIELD(fetch_timeout_s)},
    {"runner.fetch.allowed_updates", "allowed_updates", RUNOPT_UPDATE_TYPES,
     0, 0, FIELD(allowed_updates_json)},
    {"runner.retryInterval", "retry_interval", RUNOPT_RETRY, 0, 1L << 40,
     FIELD(retry)},
    {"runner.maxRetryTime", "max_retry_ms", RUNOPT_INTEGER, 0, 1L << 45,
     FIELD(max_retry_ms)},
    {"runner.silent", "silent", RUNOPT_BOOLEAN, 0, 0, FIELD(silent)},
    {"sink.kind", "sink", RUNOPT_SINK_KIND, 0, 0, FIELD(sink)},
    {"sink.concurrency", "concurrency", RUNOPT_INTEGER, 1, 1000000,
     FIELD(concurrency)},
    {"sink.maxWaiting", "max_waiting", RUNOPT_INTEGER, 0, 100000000,
     FIELD(max_waiting)},
    {"sink.timeout.milliseconds", "timeout_ms", RUNOPT_INTEGER, 0, 1L << 40,
     FIELD(timeout_ms)},
    {"sink.timeout.handler", "timeout_handler", RUNOPT_FUNCTION, 0, 0, 0, 0},
    {"journal", "journal", RUNOPT_STRING, 0, 0, FIELD(journal)},
    {"webhook.url", "webhook_url", RUNOPT_STRING, 0, 0, FIELD(webhook_url)},
    {"webhook.listen", "webhook_listen", RUNOPT_STRING, 0, 0,
     FIELD(webhook_listen)},
    {"webhook.secretFile", "webhook_secret_file", RUNOPT_STRING, 0, 0,
     FIELD(webhook_secret_file)},
    {"cluster.url", "cluster_url", RUNOPT_STRING, 0, 0, FIELD(cluster_url)},
    {"cluster.partitions", "cluster_partitions", RUNOPT_INTEGER, 1, 4096,
     FIELD(cluster_partitions)},
    {"cluster.lease", "cluster_lease", RUNOPT_NUMBER, 0.3, 3600,
     FIELD(cluster_lease_s)},
    {"cluster.maxAttempts", "cluster_max_attempts", RUNOPT_INTEGER, 1, 1000,
     FIELD(cluster_max_attempts)},
    {"cluster.moveDelay", "cluster_move_delay", RUNOPT_NUMBER, 0, 86400,
     FIELD(cluster_move_delay_s)},
    {"cluster.key", "cluster_key", RUNOPT_FUNCTION, 0, 0, 0, 0},
    {"feed", "feed", RUNOPT_BOOLEAN, 0, 0, FIELD(feed)},
    {"jobs.storage", "jobs_storage", RUNOPT_STORAGE, 0, 0, 0, 0},
    {"jobs.concurrency", "jobs_concurrency", RUNOPT_INTEGER, 1, 100000,
     FIELD(jobs_concurrency)},
    {"jobs.timeout", "jobs_timeout_ms", RUNOPT_INTEGER, 0, 1L << 40,
     FIELD(jobs_timeout_ms)},
    {"jobs.lease", "jobs_lease_ms", RUNOPT_INTEGER, 1000, 1L << 40,
     FIELD(jobs_lease_ms)},
    {"jobs.poll", "jobs_poll_ms", RUNOPT_INTEGER, 10, 1L << 40,
     FIELD(jobs_poll_ms)},
    {"jobs.misfire", "jobs_misfire", RUNOPT_STRING, 0, 0, FIELD(jobs_misfire)},
    {"jobs.misfireLimit", "jobs_misfire_limit", RUNOPT_INTEGER, 1, 100000,
     FIELD(jobs_misfire_limit)},
    {"jobs.grace", "jobs_grace_ms", RUNOPT_INTEGER, 0, 1L << 40,
     FIELD(jobs_grace_ms)},
    /* deleteWebhook before the first poll: done by lua/tghost.lua. */
    {"drop_pending_updates", "drop_pending_updates", RUNOPT_BOOLEAN, 0, 0, 0,
     0},
};
const size_t run_option_count =
    sizeof run_option_specs / sizeof run_option_specs[0];

void run_options_init(struct run_options *o) {
  memset(o, 0, sizeof *o);
  o->sink = SINK_CONCURRENT;
  o->concurrency = 500;
  o->fetch_timeout_s = 30;
  o->retry = RETRY_EXPONENTIAL;
  o->max_retry_ms = 15L * 60 * 60 * 1000;
  o->max_delay_ms = 500;
  o->max_waiting = -1;
  o->cluster_partitions = 64;
  o->cluster_lease_s = 10;
  o->cluster_max_attempts = 2;
  o->cluster_move_delay_s = 60;
  o->jobs_concurrency = 100;
  o->jobs_timeout_ms = -1;
  o->jobs_lease_ms = 30000;
  o->jobs_poll_ms = 1000;
  o->jobs_misfire_limit = 10;
  o->jobs_grace_ms = 60000;
}

void run_options_free(struct run_options *o) {
  free(o->allowed_updates_json);
  o->allowed_updates_json = NULL;
  free(o->journal);
  o->journal = NULL;
  free(o->webhook_url);
  free(o->webhook_listen);
  free(o->webhook_secret_file);
  o->webhook_url = o->webhook_listen = o->webhook_secret_file = NULL;
  free(o->cluster_url);
  o->cluster_url = NULL;
  free(o->jobs_misfire);
  free(o->jobs_store_kind);
  free(o->jobs_store_target);
  free(o->jobs_store_ns);
  o->jobs_misfire = o->jobs_store_kind = o->jobs_store_target =
      o->jobs_store_ns = NULL;
}

void run_options_copy(struct run_options *dst, const struct run_options *src) {
  *dst = *src;
  dst->allowed_updates_json =
      src->allowed_updates_json ? xstrdup(src->allowed_updates_json) : NULL;
  dst->journal = src->journal ? xstrdup(src->journal) : NULL;
  dst->webhook_url = src->webhook_url ? xstrdup(src->webhook_url) : NULL;
  dst->webhook_listen =
      src->webhook_listen ? xstrdup(src->webhook_listen) : NULL;
  dst->webhook_secret_file =
      src->webhook_secret_file ? xstrdup(src->webhook_secret_file) : NULL;
  dst->cluster_url = src->cluster_url ? xstrdup(src->cluster_url) : NULL;
  dst->jobs_misfire = src->jobs_misfire ? xstrdup(src->jobs_misfire) : NULL;
  dst->jobs_store_kind =
      src->jobs_store_kind ? xstrdup(src->jobs_store_kind) : NULL;
  dst->jobs_store_target =
      src->jobs_store_target ? xstrdup(src->jobs_store_target) : NULL;
  dst->jobs_store_ns = src->jobs_store_ns ? xstrdup(src->jobs_store_ns) : NULL;
}

static const char *const sink_kind_names[] = {"concurrent", "sequential",
                                              "batch"};

const char *sink_kind_name(enum sink_kind k) { return sink_kind_names[k]; }

int sink_kind_from_name(const char *name) {
  for (int i = 0; i < 3; i++)
    if (strcmp(sink_kind_names[i], name) == 0) return i;
  return -1;
}

const char *retry_kind_name(enum retry_kind k) {
  return k == RETRY_QUADRATIC ? "quadratic"
         : k == RETRY_FIXED   ? "fixed"
                              : "exponential";
}
