#include "cluster/cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "cluster/clusterlib.h"
#include "cluster/consumer.h"
#include "cluster/ingress.h"
#include "cluster/rendezvous.h"
#include "store/redisconn.h"

enum cstate {
  CS_SETUP,       /* the library and the partition count are being checked */
  CS_READY,       /* set up, waiting for start */
  CS_RUNNING,
  CS_STOPPING,    /* the runner drains */
  CS_FINISHING,   /* drained: records written, leases released */
  CS_STOPPED,
};

/* One lease this instance holds or tries to (a partition's; the last one
 * is the ingress). */
struct lease {
  long long epoch;             /* 0: not held */
  uint64_t deadline_ms;        /* held until then by our clock */
  bool acquiring, releasing;
  uint64_t move_wanted_ms;     /* since when another member should own it */
};

struct cluster {
  struct update_source base;   /* first: the source the runner holds */
  struct event_base *evbase;
  int64_t bot_id;
  int partitions;
  long lease_ms;
  int max_attempts;
  long move_delay_ms;
  char member[160];
  char members_key[64], meta_key[64], stats_key[64];
  char (*lease_keys)[64];      /* partitions + 1 (the ingress last) */
  char (*epoch_keys)[64];
  char (*stream_keys)[64];
  struct redisconn *cmd, *reader;
  struct consumer *consumer;
  struct ingress *ingress;
  struct lease *leases;        /* partitions + 1 */
  enum cstate state;
  bool start_asked;            /* the runner started us */
  bool setup_done;             /* once: the partition count agreed */
  bool checking;               /* a library check is in flight */
  char **members;              /* the live ones, in name order */
  size_t nmembers;
  int *owners;                  /* each partition's, in members */
  bool heartbeat_in_flight, renew_in_flight;
  struct event *tick_timer;
  struct event *watchdog;      /* the lease deadline, highest priority */
  struct event *finish_timer;  /* a stop that cannot write gives up */
  bool ingress_stopped;
  int finish;                  /* enum finish_step, while CS_FINISHING */
  size_t releases_left;
  uint64_t finish_deadline_ms;
  /* Fault injection for the fencing test (TGHOST_CLUSTER_NO_SELF_STOP=1):
   * this instance never gives a lease up by itself (neither on its own
   * clock nor when a renewal is refused), so that what a paused owner
   * writes when it wakes reaches Redis, which must refuse it. Never for
   * production: per-key order then rests on fencing alone. */
  bool no_self_stop;
  struct event *log_event;
  struct buf taken;            /* partitions taken over this loop turn */
  size_t taken_count, taken_replayed;
};

#define INGRESS(c) ((c)->partitions)

static void tick(struct cluster *c);
static void arm_watchdog(struct cluster *c);
static void maybe_finish(struct cluster *c);

static struct cluster *cluster_of(struct update_source *s) {
  return (struct cluster *)s;
}

/* The lease's own clock: held until the send time of its last success,
 * plus the lease, less a fifth for clocks running apart. */
static uint64_t deadline_after(const struct cluster *c, uint64_t sent_ms) {
  return sent_ms + (uint64_t)c->lease_ms - (uint64_t)c->lease_ms / 5;
}

static void fatal(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fatal(struct cluster *c, const char *fmt, ...) {
  struct buf msg = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  source_fatal(&c->base, msg.data);
  buf_free(&msg);
}

static int owned_count(const struct cluster *c) {
  int n = 0;
  for (int p = 0; p < c->partitions; p++)
    if (c->leases[p].epoch) n++;
  return n;
}

/* --- losing a lease ------------------------------------------------------- */

static void lose_partition(struct cluster *c, int p, const char *reason,
                           const char *kind) {
  struct lease *l = &c->leases[p];
  if (!l->epoch) return;
  l->epoch = 0;
  l->move_wanted_ms = 0;
  metric_inc(METRIC_CLUSTER_LEASE_LOSSES, kind, NULL);
  consumer_lose(c->consumer, p, reason);
}

static void lose_ingress(struct cluster *c, const char *kind) {
  struct lease *l = &c->leases[INGRESS(c)];
  if (!l->epoch) return;
  l->epoch = 0;
  metric_inc(METRIC_CLUSTER_LEASE_LOSSES, kind, NULL);
  ingress_drop(c->ingress);
  if (c->state == CS_RUNNING && redisconn_is_up(c->cmd))
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_CLUSTER);
}

/* The watchdog: leases past their deadline by this instance's clock are
 * given up before anything else of this loop turn runs (a process that
 * was paused wakes up here first). */
static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  struct cluster *c = arg;
  uint64_t now = clock_now_ms();
  struct buf lost = BUF_INIT;
  size_t n = 0;
  for (int p = 0; p < c->partitions; p++) {
    struct lease *l = &c->leases[p];
    if (!l->epoch || l->deadline_ms > now) continue;
    buf_printf(&lost, "%s%d", n++ ? ", " : "", p);
    lose_partition(c, p, "its lease was not renewed in time", "expired");
  }
  struct lease *in = &c->leases[INGRESS(c)];
  bool ingress = in->epoch && in->deadline_ms <= now;
  if (ingress) lose_ingress(c, "expired");
  /* One line for what this turn gave up. */
  if (n || ingress)
    log_warn("cluster: the lease of %s%s%s ran out before Redis renewed it "
             "(Redis unreachable or slow, or this process was paused)%s%s",
             n ? "partition(s) " : "", n ? lost.data : "",
             ingress ? (n ? " and the ingress" : "the ingress") : "",
             n ? ": their updates are cancelled here and run again at their "
                 "next owner"
               : "",
             ingress ? (n ? "; polling stops, unconfirmed updates stay with "
                            "Telegram"
                          : ": polling stops, unconfirmed updates stay with "
                            "Telegram")
                     : "");
  buf_free(&lost);
  metric_set(METRIC_CLUSTER_PARTITIONS_OWNED, owned_count(c), NULL, NULL);
  arm_watchdog(c);
}

static void arm_watchdog(struct cluster *c) {
  if (c->no_self_stop) return;
  uint64_t first = 0;
  for (int p = 0; p <= c->partitions; p++) {
    const struct lease *l = &c->leases[p];
    if (l->epoch && (!first || l->deadline_ms < first)) first = l->deadline_ms;
  }
  if (!first) {
    evtimer_del(c->watchdog);
    return;
  }
  uint64_t now = clock_now_ms();
  uint64_t ms = first > now ? first - now : 0;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(c->watchdog, &tv);
}

/* --- acquiring and releasing ---------------------------------------------- */

struct lease_req {
  struct cluster *c;
  int p;
  uint64_t sent_ms;
};

static void on_acquire(struct redisconn *conn, const redisReply *rep,
                       const char *error, void *ud) {
  (void)conn;
  struct lease_req *r = ud;
  struct cluster *c = r->c;
  int p = r->p;
  uint64_t sent = r->sent_ms;
  free(r);
  if (!rep && !error) return;
  struct lease *l = &c->leases[p];
  l->acquiring = false;
  if (error || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      rep->element[0]->type != REDIS_REPLY_INTEGER)
    return;   /* tried again at the next tick */
  if (rep->element[0]->integer != 1) return;   /* held by another member */
  long long epoch = rep->element[1]->integer;
  bool is_ingress = p == INGRESS(c);
  if (c->state != CS_RUNNING ||
      (!is_ingress && !consumer_is_free(c->consumer, p))) {
    /* Stopping meanwhile, or its last ownership still winds down: hand it
     * straight back. */
    char e[24];
    snprintf(e, sizeof e, "%lld", epoch);
    const char *argv[] = {"FCALL", "tgc_release", "1", c->lease_keys[p],
                          c->member, e};
    redisconn_command(c->cmd, 6, argv, NULL, NULL, NULL);
    return;
  }
  l->epoch = epoch;
  l->deadline_ms = deadline_after(c, sent);
  l->move_wanted_ms = 0;
  arm_watchdog(c);
  if (is_ingress) {
    ingress_take(c->ingress, epoch);
  } else {
    consumer_own(c->consumer, p, epoch);
    metric_set(METRIC_CLUSTER_PARTITIONS_OWNED, owned_count(c), NULL, NULL);
  }
}

static void acquire(struct cluster *c, int p) {
  struct lease *l = &c->leases[p];
  if (l->acquiring || l->epoch || l->releasing) return;
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%ld", c->lease_ms);
  const char *argv[] = {"FCALL", "tgc_acquire", "2", c->lease_keys[p],
                        c->epoch_keys[p], c->member, ttl};
  struct lease_req *r = xmalloc(sizeof *r);
  r->c = c;
  r->p = p;
  r->sent_ms = clock_now_ms();
  l->acquiring = true;
  redisconn_command(c->cmd, 7, argv, NULL, on_acquire, r);
}

static void on_release(struct redisconn *conn, const redisReply *rep,
                       const char *error, void *ud) {
  (void)conn;
  struct lease_req *r = ud;
  struct cluster *c = r->c;
  int p = r->p;
  free(r);
  if (!rep && !error) return;
  c->leases[p].releasing = false;
  if (c->state == CS_FINISHING && c->releases_left > 0) c->releases_left--;
  maybe_finish(c);
}

/* Gives the lease back (it is no longer renewed from here on: if the
 * release does not reach Redis, the lease runs out). */
static void release(struct cluster *c, int p) {
  struct lease *l = &c->leases[p];
  if (!l->epoch) return;
  char e[24];
  snprintf(e, sizeof e, "%lld", l->epoch);
  l->epoch = 0;
  l->releasing = true;
  const char *argv[] = {"FCALL", "tgc_release", "1", c->lease_keys[p],
                        c->member, e};
  struct lease_req *r = xmalloc(sizeof *r);
  r->c = c;
  r->p = p;
  r->sent_ms = clock_now_ms();
  redisconn_command(c->cmd, 6, argv, NULL, on_release, r);
}

/* --- renewing --------------------------------------------------------------- */

struct renew_req {
  struct cluster *c;
  uint64_t sent_ms;
  int *which;                  /* lease index of each key sent */
  long long *epochs;
  size_t n;
};

static void on_renew(struct redisconn *conn, const redisReply *rep,
                     const char *error, void *ud) {
  (void)conn;
  struct renew_req *r = ud;
  struct cluster *c = r->c;
  if (rep || error) {
    c->renew_in_flight = false;
    if (!error && rep->type == REDIS_REPLY_ARRAY && rep->elements == r->n) {
      for (size_t i = 0; i < r->n; i++) {
        int p = r->which[i];
        struct lease *l = &c->leases[p];
        /* Lost, released or taken anew since the renewal went out. */
        if (l->epoch != r->epochs[i]) continue;
        if (rep->element[i]->integer == 1) {
          l->deadline_ms = deadline_after(c, r->sent_ms);
          metric_inc(METRIC_CLUSTER_LEASE_RENEWALS, NULL, NULL);
        } else if (c->no_self_stop) {
          continue;
        } else if (p == INGRESS(c)) {
          log_warn("cluster: Redis says another instance holds the ingress "
                   "lease now: this one stops polling");
          lose_ingress(c, "refused");
        } else {
          log_warn("cluster: Redis says partition %d's lease is no longer "
                   "this instance's: its updates here are cancelled", p);
          lose_partition(c, p, "Redis gave its lease to another epoch",
                         "refused");
        }
      }
      arm_watchdog(c);
      metric_set(METRIC_CLUSTER_PARTITIONS_OWNED, owned_count(c), NULL, NULL);
    }
  }
  free(r->which);
  free(r->epochs);
  free(r);
}

static void renew_all(struct cluster *c) {
  if (c->renew_in_flight) return;
  size_t n = 0;
  for (int p = 0; p <= c->partitions; p++)
    if (c->leases[p].epoch) n++;
  if (n == 0) return;
  const char **argv = xcalloc(5 + 2 * n, sizeof *argv);
  char *epochs_s = xcalloc(n, 24);
  char nkeys[24], ttl[24];
  snprintf(nkeys, sizeof nkeys, "%zu", n);
  snprintf(ttl, sizeof ttl, "%ld", c->lease_ms);
  struct renew_req *r = xcalloc(1, sizeof *r);
  r->c = c;
  r->which = xcalloc(n, sizeof *r->which);
  r->epochs = xcalloc(n, sizeof *r->epochs);
  r->n = n;
  size_t argc = 0, i = 0;
  argv[argc++] = "FCALL";
  argv[argc++] = "tgc_renew";
  argv[argc++] = nkeys;
  for (int p = 0; p <= c->partitions; p++) {
    if (!c->leases[p].epoch) continue;
    r->which[i] = p;
    r->epochs[i] = c->leases[p].epoch;
    snprintf(epochs_s + i * 24, 24, "%lld", c->leases[p].epoch);
    argv[argc++] = c->lease_keys[p];
    i++;
  }
  argv[argc++] = c->member;
  argv[argc++] = ttl;
  for (i = 0; i < n; i++) argv[argc++] = epochs_s + i * 24;
  r->sent_ms = clock_now_ms();
  c->renew_in_flight = true;
  redisconn_command(c->cmd, (int)argc, argv, NULL, on_renew, r);
  free(argv);
  free(epochs_s);
}

/* --- membership and rebalancing ------------------------------------------- */

static void free_members(struct cluster *c) {
  for (size_t i = 0; i < c->nmembers; i++) free(c->members[i]);
  free(c->members);
  c->members = NULL;
  c->nmembers = 0;
}

/* Takes the free partitions this member should own; drains those another
 * live member should own now (those with conversations waiting for their
 * user stay up to moveDelay). */
static void rebalance(struct cluster *c) {
  if (c->state != CS_RUNNING || c->nmembers == 0) return;
  uint64_t now = clock_now_ms();
  const char *const *members = (const char *const *)c->members;
  for (int p = 0; p < c->partitions; p++) {
    bool mine = strcmp(members[c->owners[p]], c->member) == 0;
    struct lease *l = &c->leases[p];
    if (mine) {
      l->move_wanted_ms = 0;
      if (!l->epoch && consumer_is_free(c->consumer, p)) acquire(c, p);
      continue;
    }
    if (!l->epoch || consumer_draining(c->consumer, p)) continue;
    if (!l->move_wanted_ms) l->move_wanted_ms = now;
    if (consumer_waiting(c->consumer, p) > 0 &&
        now - l->move_wanted_ms < (uint64_t)c->move_delay_ms)
      continue;
    consumer_drain(c->consumer, p);
  }
}

static bool have_member(const struct cluster *c, const char *name) {
  for (size_t i = 0; i < c->nmembers; i++)
    if (strcmp(c->members[i], name) == 0) return true;
  return false;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void on_heartbeat(struct redisconn *conn, const redisReply *rep,
                         const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct cluster *c = ud;
  c->heartbeat_in_flight = false;
  if (error || rep->type != REDIS_REPLY_ARRAY) return;
  size_t before = c->nmembers;
  char **old = c->members;
  c->members = xcalloc(rep->elements + 1, sizeof *c->members);
  c->nmembers = 0;
  for (size_t i = 0; i < rep->elements; i++)
    if (rep->element[i]->type == REDIS_REPLY_STRING)
      c->members[c->nmembers++] = xstrdup(rep->element[i]->str);
  /* In name order, so that an unchanged set compares equal (Redis lists
   * them by heartbeat). */
  qsort(c->members, c->nmembers, sizeof *c->members, by_name);
  bool same = c->nmembers == before;
  for (size_t i = 0; same && i < before; i++)
    same = strcmp(old[i], c->members[i]) == 0;
  for (size_t i = 0; i < before; i++) free(old[i]);
  free(old);
  if (c->nmembers != before)
    log_info("cluster: %zu member(s) alive", c->nmembers);
  /* The owners change only with the members. */
  if (!same)
    rendezvous_assign((const char *const *)c->members, c->nmembers,
                      c->partitions, c->owners);
  metric_set(METRIC_CLUSTER_MEMBERS, (double)c->nmembers, NULL, NULL);
  /* Our own heartbeat is in: the rendezvous includes us. */
  if (have_member(c, c->member)) rebalance(c);
}

static void heartbeat(struct cluster *c) {
  if (c->heartbeat_in_flight) return;
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%ld", c->lease_ms);
  const char *argv[] = {"FCALL", "tgc_heartbeat", "1", c->members_key,
                        c->member, ttl};
  c->heartbeat_in_flight = true;
  redisconn_command(c->cmd, 6, argv, NULL, on_heartbeat, c);
}

struct lag_req {
  struct cluster *c;
  int p;
};

static void on_xlen(struct redisconn *conn, const redisReply *rep,
                    const char *error, void *ud) {
  (void)conn;
  struct lag_req *r = ud;
  if (rep && rep->type == REDIS_REPLY_INTEGER)
    consumer_set_lag(r->c->consumer, r->p, rep->integer);
  free(r);
}

static void measure_lag(struct cluster *c) {
  for (int p = 0; p < c->partitions; p++) {
    if (!c->leases[p].epoch) continue;
    const char *argv[] = {"XLEN", c->stream_keys[p]};
    struct lag_req *r = xmalloc(sizeof *r);
    r->c = c;
    r->p = p;
    redisconn_command(c->cmd, 2, argv, NULL, on_xlen, r);
  }
}

static void tick(struct cluster *c) {
  if (c->state != CS_RUNNING && c->state != CS_STOPPING &&
      c->state != CS_FINISHING)
    return;
  renew_all(c);
  if (c->state == CS_RUNNING) {
    heartbeat(c);
    if (!c->leases[INGRESS(c)].epoch) acquire(c, INGRESS(c));
    measure_lag(c);
  }
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  tick(arg);
}

/* --- consumer and ingress events ------------------------------------------ */

static void on_deliver(void *ud, struct qlist *batch) {
  struct cluster *c = ud;
  source_deliver(&c->base, batch, "cluster");
}

static void on_consumer_ready(void *ud) {
  struct cluster *c = ud;
  source_ready(&c->base);
}

static void on_revoke(void *ud, bool (*match)(int64_t id, void *match_ud),
                      void *match_ud, const char *reason) {
  struct cluster *c = ud;
  source_revoke(&c->base, match, match_ud, reason);
}

static void on_refused(void *ud, int p, const char *what) {
  struct cluster *c = ud;
  if (!c->leases[p].epoch) return;
  log_warn("cluster: Redis refused this instance's %s for partition %d: its "
           "lease holds another epoch now; the partition is dropped here",
           what, p);
  lose_partition(c, p, "Redis refused a write under its old epoch",
                 "refused");
  metric_set(METRIC_CLUSTER_PARTITIONS_OWNED, owned_count(c), NULL, NULL);
  arm_watchdog(c);
}

static void on_drained(void *ud, int p) {
  struct cluster *c = ud;
  release(c, p);
  consumer_forget(c->consumer, p);
  metric_set(METRIC_CLUSTER_PARTITIONS_OWNED, owned_count(c), NULL, NULL);
  arm_watchdog(c);
}

static void on_free(void *ud, int p) {
  struct cluster *c = ud;
  (void)p;
  /* It may be ours again at once, if the rendezvous says so. */
  rebalance(c);
}

/* Takeovers are logged in one line per loop turn. */
static void on_taken(void *ud, int p, size_t replayed) {
  struct cluster *c = ud;
  buf_printf(&c->taken, "%s%d", c->taken.len ? ", " : "", p);
  c->taken_count++;
  c->taken_replayed += replayed;
  event_active(c->log_event, 0, 0);
}

static void on_log_event(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  struct cluster *c = arg;
  if (!c->taken_count) return;
  if (c->taken_replayed)
    log_info("cluster: took over partition(s) %s: %zu unfinished update(s) "
             "of their records resume first, in order (marked redelivered "
             "when an earlier owner had started them)", c->taken.data,
             c->taken_replayed);
  else
    log_info("cluster: took over partition(s) %s", c->taken.data);
  buf_reset(&c->taken);
  c->taken_count = c->taken_replayed = 0;
}

static const struct consumer_events consumer_events = {
    on_deliver, on_consumer_ready, on_revoke, on_refused,
    on_drained, on_free,           on_taken};

static void on_ingress_fatal(void *ud, const char *message) {
  fatal(ud, "%s", message);
}

static void on_ingress_refused(void *ud) {
  struct cluster *c = ud;
  log_warn("cluster: Redis refused this instance's ingest: another instance "
           "holds the ingress lease now; this one stops polling");
  lose_ingress(c, "refused");
  arm_watchdog(c);
}

static void on_ingress_stopped(void *ud) {
  struct cluster *c = ud;
  c->ingress_stopped = true;
  maybe_finish(c);
}

static const struct ingress_events ingress_events = {
    on_ingress_fatal, on_ingress_refused, on_ingress_stopped};

/* --- setting Redis up ------------------------------------------------------- */

static void check_library(struct cluster *c);

static void start_running(struct cluster *c) {
  if (c->state != CS_READY || !c->start_asked) return;
  c->state = CS_RUNNING;
  /* Healthy as a member; the ingress holder's polling or webhook states
   * replace this while it holds the lease. */
  if (!c->leases[INGRESS(c)].epoch)
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_CLUSTER);
  tick(c);
  struct timeval tv = {(time_t)(c->lease_ms / 3 / 1000),
                       (suseconds_t)(c->lease_ms / 3 % 1000) * 1000};
  event_add(c->tick_timer, &tv);
}

static void on_persistence(struct redisconn *conn, const redisReply *rep,
                           const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct cluster *c = ud;
  if (error || rep->type == REDIS_REPLY_ERROR) {
    log_warn("cluster: cannot read Redis's persistence settings (%s): make "
             "sure it runs with appendonly yes and appendfsync always (or "
             "everysec), or updates confirmed to Telegram can be lost when "
             "Redis restarts",
             error ? error : rep->str);
    return;
  }
  const char *aof = NULL, *fsync = NULL;
  for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
       i += 2) {
    if (strcmp(rep->element[i]->str, "appendonly") == 0)
      aof = rep->element[i + 1]->str;
    else if (strcmp(rep->element[i]->str, "appendfsync") == 0)
      fsync = rep->element[i + 1]->str;
  }
  if (!aof || strcmp(aof, "yes") != 0)
    log_warn("cluster: Redis %s runs with appendonly %s: updates are "
             "confirmed to Telegram once they are in Redis's memory, and a "
             "restart of Redis loses those not handled yet; set appendonly "
             "yes with appendfsync always (nothing lost) or everysec (up to "
             "the last second lost if Redis's machine crashes)",
             redisconn_name(c->cmd), aof ? aof : "?");
  else if (fsync && strcmp(fsync, "everysec") == 0)
    log_info("cluster: Redis %s runs with appendfsync everysec: if Redis's "
             "machine crashes, up to the last second of updates confirmed "
             "to Telegram can be lost (appendfsync always loses none)",
             redisconn_name(c->cmd));
  else if (fsync && strcmp(fsync, "always") != 0)
    log_warn("cluster: Redis %s runs with appendfsync %s: a crash of Redis "
             "or its machine can lose updates confirmed to Telegram; set "
             "appendfsync always (or everysec: up to one second)",
             redisconn_name(c->cmd), fsync);
}

static void on_setup(struct redisconn *conn, const redisReply *rep,
                     const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct cluster *c = ud;
  if (error || rep->type != REDIS_REPLY_INTEGER) {
    c->checking = false;
    return;   /* tried again when the connection is back */
  }
  if (rep->integer != c->partitions) {
    fatal(c, "cluster: this bot's cluster in Redis %s has %lld partitions, "
          "and this instance is configured with %d: every instance must use "
          "the same (cluster.partitions); the count is fixed once the "
          "cluster exists (to change it, stop every instance and delete the "
          "keys tgc:%" PRId64 ":*)",
          redisconn_name(c->cmd), rep->integer, c->partitions, c->bot_id);
    return;
  }
  c->checking = false;
  if (!c->setup_done) {
    c->setup_done = true;
    const char *argv[] = {"CONFIG", "GET", "append*"};
    redisconn_command(c->cmd, 3, argv, NULL, on_persistence, c);
    log_info("cluster: member %s of bot %" PRId64 "'s cluster on %s (%d "
             "partitions, lease %.1f s)", c->member, c->bot_id,
             redisconn_name(c->cmd), c->partitions, c->lease_ms / 1000.0);
  }
  if (c->state == CS_SETUP) c->state = CS_READY;
  start_running(c);
}

static void send_setup(struct cluster *c) {
  char p[16];
  snprintf(p, sizeof p, "%d", c->partitions);
  const char *argv[] = {"FCALL", "tgc_setup", "1", c->meta_key, p};
  redisconn_command(c->cmd, 5, argv, NULL, on_setup, c);
}

static void on_load(struct redisconn *conn, const redisReply *rep,
                    const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct cluster *c = ud;
  if (error) {
    c->checking = false;
    return;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    fatal(c, "cluster: Redis %s refused tghost's function library: %s "
          "(the cluster needs Redis 7 with FUNCTION allowed for this user)",
          redisconn_name(c->cmd), rep->str);
    return;
  }
  send_setup(c);
}

static void on_version(struct redisconn *conn, const redisReply *rep,
                       const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct cluster *c = ud;
  if (error) {
    c->checking = false;
    return;
  }
  if (rep->type == REDIS_REPLY_INTEGER && rep->integer > CLUSTERLIB_VERSION) {
    fatal(c, "cluster: Redis %s has tghost's cluster library version %lld, "
          "newer than this tghost's (%d): upgrade this instance to match the "
          "others", redisconn_name(c->cmd), rep->integer, CLUSTERLIB_VERSION);
    return;
  }
  if (rep->type == REDIS_REPLY_INTEGER && rep->integer == CLUSTERLIB_VERSION) {
    send_setup(c);
    return;
  }
  if (rep->type == REDIS_REPLY_ERROR && !strstr(rep->str, "not found") &&
      !strstr(rep->str, "unknown command")) {
    fatal(c, "cluster: Redis %s cannot run tghost's cluster functions (%s): "
          "the cluster needs Redis 7 or later", redisconn_name(c->cmd),
          rep->str);
    return;
  }
  /* None yet (a new or restarted Redis), or an older one: ours. */
  const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", clusterlib_code};
  size_t lens[] = {8, 4, 7, clusterlib_code_len};
  redisconn_command(c->cmd, 4, argv, lens, on_load, c);
}

static void check_library(struct cluster *c) {
  if (c->checking) return;
  c->checking = true;
  const char *argv[] = {"FCALL_RO", "tgc_version", "0"};
  redisconn_command(c->cmd, 3, argv, NULL, on_version, c);
}

/* Redis unreachable: the process takes no share meanwhile (failing, with
 * /healthz's grace period); back up, a member again. */
static void on_down(struct redisconn *conn, const char *reason, void *ud) {
  (void)conn;
  struct cluster *c = ud;
  if (c->state != CS_RUNNING) return;
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_FAILING);
  metric_set(METRIC_SOURCE_FAILING_SINCE, (double)time(NULL), NULL, NULL);
  metric_set_info(METRIC_SOURCE_LAST_ERROR, "redis", reason);
}

static void on_up(struct redisconn *conn, void *ud) {
  (void)conn;
  struct cluster *c = ud;
  if (c->state == CS_RUNNING &&
      strcmp(metric_state(METRIC_SOURCE_STATE) ? metric_state(
                 METRIC_SOURCE_STATE) : "", SOURCE_STATE_FAILING) == 0) {
    metric_set(METRIC_SOURCE_FAILING_SINCE, 0, NULL, NULL);
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_CLUSTER);
  }
  /* A Redis that restarted without its data has no library. */
  check_library(c);
  consumer_retry(c->consumer);
  if (c->ingress) ingress_retry(c->ingress);
}

/* --- stopping --------------------------------------------------------------- */

/* The last steps of a graceful stop, once the runner has drained. */
enum finish_step {
  FIN_SETTLING,    /* the ingress stops; the last record writes go out */
  FIN_RELEASING,   /* the leases go back */
  FIN_LEAVING,     /* out of the members */
  FIN_DONE,
};

static void finish(struct cluster *c) {
  c->state = CS_STOPPED;
  evtimer_del(c->tick_timer);
  evtimer_del(c->watchdog);
  evtimer_del(c->finish_timer);
  source_stopped(&c->base);
}

static void on_leave(struct redisconn *conn, const redisReply *rep,
                     const char *error, void *ud) {
  (void)conn;
  if (!rep && !error) return;
  struct cluster *c = ud;
  if (c->state != CS_FINISHING) return;
  c->finish = FIN_DONE;
  log_info("cluster: stopped; this instance's partitions go to the others");
  finish(c);
}

/* A stop ends once the ingress has stopped, every update has ended and
 * its record is written, and every lease is given back; then the member
 * leaves, so the others take its partitions at once. */
static void maybe_finish(struct cluster *c) {
  if (c->state != CS_FINISHING) return;
  if (c->finish == FIN_SETTLING) {
    if (!c->ingress_stopped || !consumer_settled(c->consumer)) return;
    c->finish = FIN_RELEASING;
    c->releases_left = 0;
    for (int p = 0; p <= c->partitions; p++) {
      if (!c->leases[p].epoch) continue;
      c->releases_left++;
      release(c, p);
    }
  }
  if (c->finish == FIN_RELEASING) {
    if (c->releases_left > 0) return;
    c->finish = FIN_LEAVING;
    const char *argv[] = {"FCALL", "tgc_leave", "1", c->members_key,
                          c->member};
    redisconn_command(c->cmd, 5, argv, NULL, on_leave, c);
  }
}

static void on_finish_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  struct cluster *c = arg;
  if (c->state != CS_FINISHING) return;
  if (clock_now_ms() < c->finish_deadline_ms) {
    maybe_finish(c);
    return;
  }
  log_warn("cluster: Redis did not take the last writes of this stop in "
           "time: this instance's partitions go to others when their leases "
           "run out, and updates whose end was not written run again");
  finish(c);
}

/* --- the source operations -------------------------------------------------- */

static void cluster_start(struct update_source *s) {
  struct cluster *c = cluster_of(s);
  c->start_asked = true;
  start_running(c);
}

static void cluster_fetch(struct update_source *s, int limit) {
  struct cluster *c = cluster_of(s);
  if (c->state == CS_RUNNING) consumer_fetch(c->consumer, limit);
}

/* What the consumer delivers is written ahead already. */
static void cluster_accept(struct update_source *s) { (void)s; }

static void cluster_outcome(struct update_source *s, int64_t id,
                            enum update_outcome o, const char *reason) {
  (void)reason;
  struct cluster *c = cluster_of(s);
  consumer_outcome(c->consumer, id, o);
  if (c->state == CS_FINISHING) maybe_finish(c);
}

static void cluster_reconfigure(struct update_source *s,
                                const struct run_options *o) {
  ingress_reconfigure(cluster_of(s)->ingress, o);
}

static void cluster_stop(struct update_source *s) {
  struct cluster *c = cluster_of(s);
  if (c->state != CS_RUNNING && c->state != CS_READY && c->state != CS_SETUP)
    return;
  bool was_running = c->state == CS_RUNNING;
  c->state = CS_STOPPING;
  consumer_stop(c->consumer);
  ingress_stop(c->ingress);
  if (!was_running) return;
  log_info("cluster: stopping: %d partition(s) finish here, then go to the "
           "other members", owned_count(c));
}

static void cluster_drained(struct update_source *s) {
  struct cluster *c = cluster_of(s);
  if (c->state == CS_STOPPED) {
    source_stopped(s);
    return;
  }
  c->state = CS_FINISHING;
  c->finish = FIN_SETTLING;
  c->finish_deadline_ms = clock_now_ms() + (uint64_t)c->lease_ms * 2;
  /* The last writes are checked for every 20 ms. */
  struct timeval tv = {0, 20000};
  evtimer_add(c->finish_timer, &tv);
  maybe_finish(c);
}

static void cluster_abort(struct update_source *s) {
  struct cluster *c = cluster_of(s);
  c->state = CS_STOPPED;
  evtimer_del(c->tick_timer);
  evtimer_del(c->watchdog);
  evtimer_del(c->finish_timer);
}

static void cluster_health(struct update_source *s) {
  struct cluster *c = cluster_of(s);
  metric_set(METRIC_CLUSTER_PARTITIONS_OWNED, owned_count(c), NULL, NULL);
}

static void cluster_free(struct update_source *s) {
  struct cluster *c = cluster_of(s);
  ingress_free(c->ingress);
  consumer_free(c->consumer);
  redisconn_free(c->cmd);
  redisconn_free(c->reader);
  free_members(c);
  if (c->tick_timer) event_free(c->tick_timer);
  if (c->watchdog) event_free(c->watchdog);
  if (c->finish_timer) event_free(c->finish_timer);
  if (c->log_event) event_free(c->log_event);
  buf_free(&c->taken);
  free(c->lease_keys);
  free(c->epoch_keys);
  free(c->stream_keys);
  free(c->leases);
  free(c->owners);
  free(c);
}

static const struct update_source_type cluster_type = {
    .name = "cluster",
    /* Updates not started stay in their stream, for the next owner. */
    .releases_unstarted = true,
    .start = cluster_start,
    .fetch = cluster_fetch,
    .accept = cluster_accept,
    .outcome = cluster_outcome,
    .known = NULL,
    .reconfigure = cluster_reconfigure,
    .stop = cluster_stop,
    .drained = cluster_drained,
    .abort = cluster_abort,
    .health = cluster_health,
    .free = cluster_free,
};

/* --- creation --------------------------------------------------------------- */

/* "<host>:<pid>:<random>": unique for each start of each process. */
static void make_member(struct cluster *c) {
  char host[64] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "host");
  uint32_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != sizeof nonce)
    nonce = (uint32_t)clock_now_us();
  snprintf(c->member, sizeof c->member, "%s:%d:%06x", host, (int)getpid(),
           nonce & 0xffffff);
}

static bool cluster_wanted(const struct update_source_params *p) {
  return p->opts->cluster_url != NULL;
}

static struct update_source *cluster_create(
    const struct update_source_params *p, const struct update_source_events *ev,
    void *ud, struct buf *err) {
  const struct run_options *o = p->opts;
  if (p->bot_id < 0) {
    buf_append_str(err, "--cluster needs the bot's token (its id names the "
                        "cluster's keys in Redis)");
    return NULL;
  }
  struct cluster *c = xcalloc(1, sizeof *c);
  update_source_init(&c->base, &cluster_type, ev, ud);
  c->evbase = p->base;
  c->bot_id = p->bot_id;
  c->partitions = o->cluster_partitions;
  c->lease_ms = (long)(o->cluster_lease_s * 1000);
  c->max_attempts = o->cluster_max_attempts;
  c->move_delay_ms = (long)(o->cluster_move_delay_s * 1000);
  make_member(c);
  const char *nss = getenv("TGHOST_CLUSTER_NO_SELF_STOP");
  c->no_self_stop = nss && strcmp(nss, "1") == 0;
  if (c->no_self_stop)
    log_warn("cluster: TGHOST_CLUSTER_NO_SELF_STOP=1: this instance keeps "
             "running partitions whose lease ran out (a test of fencing; "
             "never use it in production)");
  struct buf k = BUF_INIT;
#define KEY(field, which, part)                     \
  do {                                              \
    buf_reset(&k);                                  \
    clusterlib_key(&k, c->bot_id, which, part);     \
    snprintf(field, 64, "%s", k.data);              \
  } while (0)
  KEY(c->members_key, CK_MEMBERS, 0);
  KEY(c->meta_key, CK_META, 0);
  KEY(c->stats_key, CK_STATS, 0);
  c->lease_keys = xcalloc((size_t)c->partitions + 1, 64);
  c->epoch_keys = xcalloc((size_t)c->partitions + 1, 64);
  c->stream_keys = xcalloc((size_t)c->partitions, 64);
  for (int i = 0; i <= c->partitions; i++) {
    int part = i == c->partitions ? CLUSTERLIB_INGRESS : i;
    KEY(c->lease_keys[i], CK_LEASE, part);
    KEY(c->epoch_keys[i], CK_EPOCH, part);
    if (i < c->partitions) KEY(c->stream_keys[i], CK_STREAM, i);
  }
#undef KEY
  buf_free(&k);
  c->leases = xcalloc((size_t)c->partitions + 1, sizeof *c->leases);
  c->owners = xcalloc((size_t)c->partitions, sizeof *c->owners);
  c->cmd = redisconn_new(p->base, o->cluster_url, "cluster", err);
  c->reader = c->cmd ? redisconn_new(p->base, o->cluster_url,
                                     "cluster (reads)", err)
                     : NULL;
  if (!c->cmd || !c->reader) {
    cluster_free(&c->base);
    return NULL;
  }
  /* One outage, one line: the command connection says it. */
  redisconn_set_quiet(c->reader, true);
  long block = c->lease_ms / 4 < 1000 ? c->lease_ms / 4 : 1000;
  struct consumer_config cc = {c->bot_id, c->partitions, c->max_attempts,
                               block};
  c->consumer = consumer_new(p->base, c->cmd, c->reader, &cc,
                             &consumer_events, c);
  c->ingress = ingress_new(p, c->cmd, c->partitions, &ingress_events, c, err);
  if (!c->ingress) {
    cluster_free(&c->base);
    return NULL;
  }
  c->tick_timer = event_new(p->base, -1, EV_PERSIST, on_tick, c);
  c->watchdog = evtimer_new(p->base, on_watchdog, c);
  /* Before any other event of a loop turn (see cluster.h). */
  event_priority_set(c->watchdog, 0);
  c->finish_timer = event_new(p->base, -1, EV_PERSIST, on_finish_timer, c);
  c->log_event = event_new(p->base, -1, 0, on_log_event, c);
  redisconn_watch(c->cmd, on_up, on_down, c);
  return &c->base;
}

const struct update_source_entry cluster_source_entry = {
    "cluster", cluster_wanted, cluster_create};

/* --- dead letters (the command line) ----------------------------------------- */

int cluster_list_dead_letters(const char *url, int64_t bot_id, FILE *out,
                              struct buf *err) {
  struct redis_target t;
  if (redis_target_parse(url, &t, err) != 0) return -1;
  struct timeval tv = {5, 0};
  redisContext *rc = t.socket_path
                         ? redisConnectUnixWithTimeout(t.socket_path, tv)
                         : redisConnectWithTimeout(t.host, t.port, tv);
  int n = -1;
  if (!rc || rc->err) {
    buf_printf(err, "cannot reach Redis %s: %s", t.name,
               rc ? rc->errstr : "out of memory");
    goto done;
  }
  redisReply *r;
  if (t.password) {
    r = t.user ? redisCommand(rc, "AUTH %s %s", t.user, t.password)
               : redisCommand(rc, "AUTH %s", t.password);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r) freeReplyObject(r);
    if (!ok) {
      buf_printf(err, "Redis %s refused the credentials in the URL", t.name);
      goto done;
    }
  }
  if (t.db) {
    r = redisCommand(rc, "SELECT %ld", t.db);
    if (r) freeReplyObject(r);
  }
  struct buf key = BUF_INIT;
  clusterlib_key(&key, bot_id, CK_DEAD, 0);
  char key_name[64];
  snprintf(key_name, sizeof key_name, "%s", key.data);
  r = redisCommand(rc, "XRANGE %s - +", key_name);
  buf_free(&key);
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    buf_printf(err, "cannot read the dead letters from Redis %s: %s", t.name,
               r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
    if (r) freeReplyObject(r);
    goto done;
  }
  n = 0;
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
    const redisReply *f = e->element[1];
    const char *u = "", *p = "", *attempts = "", *reason = "", *at = "",
               *j = "null";
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
      const char *name = f->element[k]->str, *v = f->element[k + 1]->str;
      if (strcmp(name, "u") == 0) u = v;
      else if (strcmp(name, "p") == 0) p = v;
      else if (strcmp(name, "attempts") == 0) attempts = v;
      else if (strcmp(name, "reason") == 0) reason = v;
      else if (strcmp(name, "at") == 0) at = v;
      else if (strcmp(name, "j") == 0 && *v) j = v;
    }
    char when[40] = "?";
    long long ms = atoll(at);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms > 0 && gmtime_r(&secs, &tm))
      strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    fprintf(out, "update %s (%s, partition %s, admitted %s times): %s\n  %s\n",
            *u ? u : "?", when, *p ? p : "?", *attempts ? attempts : "?",
            reason, j);
    n++;
  }
  freeReplyObject(r);
  if (n)
    fprintf(out, "%d dead letter(s) in the Redis stream %s of %s (each with "
            "its whole update, as above)\n", n, key_name, t.name);
  else
    fprintf(out, "no dead letters in the Redis stream %s of %s\n", key_name,
            t.name);
done:
  if (rc) redisFree(rc);
  redis_target_free(&t);
  return n;
}
