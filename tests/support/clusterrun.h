/* Several tghost processes in one cluster, for the e2e tests of
 * --cluster (tests/e2e/cluster*.c): a redis-server of the test's own, a bot
 * that records every run where the tests can check it, members started,
 * killed, paused and restarted, and the tally of what the fake Bot API
 * received.
 *
 * The bot (clusterrun_script): for each text message it sleeps the
 * handler's time, appends the update id to its chat's session (a string
 * of ids, in the cluster's Redis, written through the partition's fence)
 * unless the id is in it already (a run again after an owner died), and
 * replies "u<update id> r<1 if ctx.redelivered else 0> m<member>
 * s<start> c<reply call>" (times in microseconds of CLOCK_MONOTONIC, which
 * every process on the machine shares). So:
 *   - every update answered at least once: nothing lost;
 *   - per chat, the first runs (r0) started in update order, each after
 *     the one before it called reply, and the session's list exactly the
 *     chat's updates in order: per-key order kept, and no write of a
 *     process that lost its partition accepted (it would have put back an
 *     older list). Times are taken where the runs happen: a call that
 *     reached the fake server late (on the wire when its process lost the
 *     partition, the zombie window) is no reordering;
 *   - every run after an update's first is marked redelivered (at most one
 *     r0 reply per update). */
#ifndef TGHOST_TESTS_CLUSTERRUN_H
#define TGHOST_TESTS_CLUSTERRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "redisproc.h"

#define CLUSTER_MAX_MEMBERS 8

struct cluster_run {
  struct redisproc redis;
  const char *script;
  const char *const *extra_args;   /* more tghost options, NULL-terminated */
  struct proc *members[CLUSTER_MAX_MEMBERS];
  unsigned starts[CLUSTER_MAX_MEMBERS];
  size_t nmembers;
  /* The updates pushed: ids first..first+n-1, chat of each. */
  int64_t first;
  int n;
  int64_t *chat_of;
};

/* Starts redis-server (appendonly yes, appendfsync always) and writes the
 * bot: lease seconds, handler milliseconds, sink concurrency. */
void clusterrun_init(struct cluster_run *r, double lease_s, int handler_ms,
                     int concurrency);
/* Starts member i (a new process in slot i, replacing a dead one). */
struct proc *clusterrun_start(struct cluster_run *r, size_t i);
/* The same with more environment entries ("NAME=value", NULL-terminated). */
struct proc *clusterrun_start_env(struct cluster_run *r, size_t i,
                                  const char *const *env);
/* Starts the Redis server only; the test writes its own bot (r->script). */
void clusterrun_redis(struct cluster_run *r);
/* Queues n text messages over chats chats (ids from r->first on). */
void clusterrun_push(struct cluster_run *r, int n, int chats);
/* Plans n text messages over chats chats with ids from first on, without
 * queueing them at the fake Bot API (a webhook test posts them). */
void clusterrun_plan(struct cluster_run *r, int64_t first, int n, int chats);

/* Posts the planned updates as Telegram posts webhooks: lanes requests at
 * a time, a chat's updates one after another (the next once the last was
 * answered 200), each request to the next of the ports in turn, anything
 * but a 200 (an error, 503, a connection refused or reset) sent again
 *100 ms later, to the next port. */
struct cluster_poster;
struct cluster_poster *clusterrun_poster(struct cluster_run *r,
                                         const int *ports, int nports,
                                         const char *secret, int lanes);
/* Every planned update has had its 200. */
bool clusterrun_posted(const struct cluster_poster *p);
size_t clusterrun_post_failures(const struct cluster_poster *p);
void clusterrun_poster_free(struct cluster_poster *p);

/* The member holding the ingress lease (from Redis), or -1. */
int clusterrun_ingress_holder(struct cluster_run *r);
/* Runs the loop until every update pushed has a reply, or timeout_ms;
 * false on timeout. */
bool clusterrun_wait_all(struct cluster_run *r, int timeout_ms);

struct cluster_tally {
  int lost;               /* updates without a reply */
  int duplicates;         /* replies beyond each update's first */
  int unmarked;           /* updates with more than one r0 reply */
  int order_violations;   /* r0 replies of a chat out of update order */
  int session_missing;    /* updates absent from their chat's session */
  int session_disorder;   /* session lists not in update order */
  int refused;            /* fenced writes Redis refused (its counter) */
};
/* Reads the replies and the sessions; prints a line. */
struct cluster_tally clusterrun_tally(struct cluster_run *r);
/* Stops every live member gracefully (exit 0, clean output) and the
 * Redis server. */
void clusterrun_finish(struct cluster_run *r);

#endif
