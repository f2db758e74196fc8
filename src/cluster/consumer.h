/* The consuming half of a cluster instance: the partitions it owns, their
 * commit records in Redis, and the updates it reads from their streams and
 * hands to the runner. cluster.c decides which partitions this instance
 * owns (leases, membership) and tells the consumer; the consumer tells it
 * when a partition is drained (ready to be handed over) or when Redis
 * refused a write because the lease had moved on.
 *
 * The life of an update in a partition this instance owns:
 *
 *   read      XREAD from the partition's stream, after the read cursor. The
 *             entry is recorded in the commit record ("R": read, not
 *             admitted) with the high-water mark moved to it, in the same
 *             FCALL as whatever else is pending for the partition.
 *   gated     it queues behind every earlier update of its cluster key that
 *             has not ended (one FIFO per key, seqmap.h): an update never
 *             starts while an earlier one of its key runs. An earlier one
 *             that waits for its user (a conversation: UPDATE_IDLE)
 *             steps aside, as sequentialize does, so the answer it waits
 *             for can reach it.
 *   admitted  once at the head of its key and wanted by the runner (fetch),
 *             it is written ahead as admitted ("A": attempts + 1) and only
 *             when Redis has answered is it delivered to the runner, marked
 *             redelivered if an earlier owner admitted it before.
 *   ended     done, failed or timed out: "D", out of the record (batched,
 *             one FCALL per partition per loop turn). Cut short (a lease
 *             lost, the drain timeout): it stays in the record, for the
 *             next owner. Released unstarted at a stop: "U", the admission
 *             undone, and it stays too.
 *
 * A new owner first replays the record (tgc_takeover): every entry not
 * finished, in stream order, through the same gate, the ones admitted
 * before marked redelivered; an entry admitted max_attempts times without
 * finishing becomes a dead letter instead (it crashed or outlived owner
 * after owner). Then it reads on from the high-water mark. The stream is
 * trimmed (tgc_trim) below the oldest entry of the record, never past an
 * unfinished or unread one.
 *
 * Every write is fenced by the partition's lease epoch inside Redis; a
 * refusal (TGSTALE) means another owner holds the partition now: the
 * consumer reports it (on_refused) and cluster.c drops the partition.
 *
 * Layer: cluster. */
#ifndef TGHOST_CONSUMER_H
#define TGHOST_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "base/qlist.h"
#include "pipeline/source.h"
#include "store/redisconn.h"

struct consumer;

struct consumer_events {
  /* Updates admitted (written ahead): the callee takes the items. */
  void (*deliver)(void *ud, struct qlist *batch);
  /* Updates are ready to be admitted and the runner has asked for none
   * (or fewer): it should say again how many it wants (consumer_fetch). */
  void (*ready)(void *ud);
  /* The runner must drop these updates (cancel if started). */
  void (*revoke)(void *ud, bool (*match)(int64_t id, void *match_ud),
                 void *match_ud, const char *reason);
  /* Redis refused a write of partition p: its lease holds another epoch. */
  void (*on_refused)(void *ud, int partition, const char *what);
  /* Partition p, being drained, has nothing left in flight and its record
   * is written: its lease may be released. */
  void (*on_drained)(void *ud, int partition);
  /* Partition p has no update left from its last ownership: it may be
   * taken again. */
  void (*on_free)(void *ud, int partition);
  /* Partition p was taken over: replayed updates of its record resume
   * first. */
  void (*on_taken)(void *ud, int partition, size_t replayed);
};

struct consumer_config {
  int64_t bot_id;
  int partitions;
  int max_attempts;     /* admissions before a dead letter */
  long block_ms;        /* how long one XREAD waits for new entries */
};

/* cmd carries the FCALLs, reader the blocking XREADs (a connection of its
 * own, so that a read waiting for entries never delays a lease renewal). */
struct consumer *consumer_new(struct event_base *base, struct redisconn *cmd,
                              struct redisconn *reader,
                              const struct consumer_config *cfg,
                              const struct consumer_events *ev, void *ud);
void consumer_free(struct consumer *c);

/* This instance holds partition p's lease at epoch: take the partition
 * over (replay its record, then read on). p must be free (on_free came, or
 * it was never owned). */
void consumer_own(struct consumer *c, int p, long long epoch);
/* The lease is gone (expired by this instance's clock, or refused): every
 * update of p is dropped, those in the runner revoked (cancelled); nothing
 * more is written for p. on_free follows once none is left. */
void consumer_lose(struct consumer *c, int p, const char *reason);
/* p moves to another member: read and admit nothing more for it, let what
 * the runner has finish (conversations waiting for their user are
 * cancelled), write the record, then on_drained. */
void consumer_drain(struct consumer *c, int p);
/* on_drained came and the lease was released (or given up): p is free. */
void consumer_forget(struct consumer *c, int p);

/* The runner has room for limit updates. */
void consumer_fetch(struct consumer *c, int limit);
/* An outcome of an update this consumer delivered (others are ignored). */
void consumer_outcome(struct consumer *c, int64_t id,
                      enum update_outcome outcome);
/* A graceful stop: nothing more is read or admitted; updates end as the
 * runner drains them. */
void consumer_stop(struct consumer *c);
/* True once nothing is in flight and every record write has been
 * answered (or cannot be: the partition was lost). */
bool consumer_settled(const struct consumer *c);
/* Redis is reachable again: resend what failed. */
void consumer_retry(struct consumer *c);

/* For cluster.c and metrics. */
bool consumer_owns(const struct consumer *c, int p);   /* own or draining */
bool consumer_is_free(const struct consumer *c, int p);
bool consumer_draining(const struct consumer *c, int p);
/* Conversations of p waiting for their user. */
size_t consumer_waiting(const struct consumer *c, int p);
/* Updates of p still alive here (read, gated, in the runner). */
size_t consumer_live(const struct consumer *c, int p);
long long consumer_epoch(const struct consumer *c, int p);
/* The partition's stream length, measured by cluster.c (XLEN). */
void consumer_set_lag(struct consumer *c, int p, long long entries);

#endif
