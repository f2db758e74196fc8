/* The cluster (tghost --cluster redis://HOST:PORT/DB bot.lua, or run(bot,
 * { cluster = { url = ... } })): any number of tghost processes, on any
 * number of machines, run one bot together through one Redis 7 (Debian
 * 12's), each handling a share of the updates, with per-chat order kept
 * and a dead or paused process's work taken over. An update source
 * (source.h) like polling or the webhook: the runner, the sink,
 * sequentialize, sessions, conversations and hot reload work as in one
 * process.
 *
 * THE PARTS (every instance runs all of them)
 *
 *   partitions  P streams (cluster.partitions, default 64), fixed for a bot:
 *               the first instance stores P in Redis and an instance with
 *               another P refuses to start. An update goes to the stream of
 *               clusterkey_partition(its cluster key): by default its chat,
 *               else its user, else itself (clusterkey.h); cluster.key = fn
 *               replaces the default.
 *   leases      each partition has at most one owner, the member holding its
 *               lease: a Redis string set with PX (cluster.lease seconds,
 *               default 10) carrying an epoch from INCR, taken anew (new
 *               epoch) by every acquisition. Every write an owner makes
 *               (commit record, trim, dead letters, session writes) is an
 *               FCALL that checks the lease still holds the writer's epoch
 *               and refuses it otherwise (redislib.lua: fencing).
 *   members     instances heartbeat every lease/3 (tgc_heartbeat) and read
 *               the live members back; partition owners follow rendezvous
 *               hashing with bounded loads over them (rendezvous.h: an
 *               even split): an instance acquires the free partitions it
 *               should own, and drains then releases those it should no
 *               longer own (consumer.h). A partition
 *               with conversations waiting for their user stays where it is
 *               for up to cluster.moveDelay seconds (default 60) before it
 *               moves anyway (they are cut short and resume from their
 *               update at the new owner).
 *   ingress     polling: the holder of the ingress lease polls; webhook:
 *               every instance takes POSTs, the holder sets the webhook
 *               (ingress.h). Either way an update is confirmed to Telegram
 *               only after it is in its stream.
 *   consumer    reads the owned partitions, writes their commit records
 *               ahead, hands updates to the runner in per-key order, and
 *               replays a partition's unfinished updates first when it
 *               takes one over (consumer.h).
 *
 * LEASES AND THIS INSTANCE'S OWN CLOCK
 *
 * A lease counts as held until D = t + lease - lease/5 by this process's
 * monotonic clock, t being when the acquisition or last successful renewal
 * was sent (so before Redis started its PX). Renewals go out every lease/3.
 * At D without a renewal (Redis down, slow or unreachable, or this process
 * was paused), the instance stops the partition on its own: its updates'
 * handlers are cancelled (their coroutines closed) and nothing more is
 * read, admitted or written for it. That check is a timer at libevent's
 * highest priority (the host sets up two): when a paused process wakes,
 * it runs before any network event of the same loop turn, so no reply
 * resumes a handler of a partition whose lease is past D.
 *
 * ORDER (the argument; docs/operations/cluster.md states the guarantee)
 *
 * Claim: for two updates a before b of one cluster key (b later in the
 * key's partition stream), no run of b starts before every run of a has
 * ended (or stepped aside waiting for its user, as sequentialize lets a
 * conversation do).
 *   1. Within one ownership of the partition, the consumer's gate admits b
 *      only after a's run has ended or waits for its user: one FIFO per
 *      key, in stream order (consumer.h). Sequentialize in the script is
 *      not needed for this and cannot give it across processes.
 *   2. Across ownerships: a new owner runs anything only after acquiring
 *      the lease (SET NX), which needs the old lease released (after the
 *      old owner drained: all its runs ended and its record written) or
 *      expired in Redis. Expiry in Redis comes after the old owner's D
 *      (Redis started the PX after t, and lease/5 covers clocks running up
 *      to 20% apart), and at D the old owner had cancelled every run of
 *      the partition. A paused old owner does nothing until it wakes, and
 *      then cancels first (the watchdog's priority). So when the new owner
 *      starts, every run of the old one has ended, except for effects
 *      already on the wire when the old one paused (below).
 *   3. The new owner replays the record first: every entry not finished, in
 *      stream order, through the same gate, then reads on from the
 *      record's high-water mark. The record was written ahead: an update
 *      is in it as admitted before it runs, and leaves it only when done.
 *      So a (unfinished) runs again before b, and an a that finished is
 *      not in it.
 * Not ordered: updates of different keys (different chats, even in one
 * partition), and sequentialize keys that span several cluster keys (a
 * user across chats): sequentialize orders those within one process only.
 *
 * DUPLICATES AND ctx.redelivered
 *
 * An update runs more than once only when an owner lost its partition
 * (crash, kill, pause past its lease, Redis unreachable for a lease
 * period, a drain timeout at a stop) after admitting it and before its end
 * reached the record. The next owner runs it again with ctx.redelivered =
 * true; it is true exactly when an earlier owner admitted the update (so
 * may have started it). Bound: per such loss, at most the updates that
 * owner had admitted and not finished in that partition (at most its sink's
 * concurrency, plus updates delivered and not started); and one update runs
 * at most cluster.maxAttempts times (default 5), after which it becomes a
 * dead letter (tghost --cluster URL --dead-letters) instead of crashing
 * owner after owner.
 *
 * THE ZOMBIE WINDOW
 *
 * A process paused (SIGSTOP, a VM freeze, a long GC of the host) past its
 * lease is fenced: every write it tries afterwards is refused by Redis.
 * What it cannot take back is what was on the wire when it paused: Bot
 * API calls already sent (Telegram executes them when they arrive) and
 * Redis writes already received by Redis (accepted, as they were made
 * under a valid lease). So a paused owner can add at most the effects of
 * the calls it had in flight at the moment it paused, seen after the new
 * owner has started.
 *
 * REDIS DOWN OR SLOW
 *
 * Ingest fails: polling sends no getUpdates (Telegram keeps the updates),
 * the webhook answers no 200 (Telegram retries). Leases are not renewed:
 * at D every instance stops its partitions (handlers cancelled, their
 * updates run again later). Both connections reconnect with backoff,
 * logged once per outage (redisconn.h); when Redis answers again the
 * library is loaded if it is gone, leases are taken again (new epochs) and
 * everything resumes from the records. Durability of what was confirmed to
 * Telegram is Redis's: appendonly yes with appendfsync always keeps every
 * acknowledged write; everysec may lose the last second on a crash of
 * Redis's host; tghost warns at start when the server's settings are not
 * one of those.
 *
 * Layer: cluster (an update source: below the runner and the host). */
#ifndef TGHOST_CLUSTER_H
#define TGHOST_CLUSTER_H

#include <stdbool.h>
#include <stdio.h>

#include "base/buf.h"
#include "pipeline/source.h"

/* The table row (host.c): chosen when the run options give a cluster URL
 * (--cluster, or run{ cluster = { url = ... } }). */
extern const struct update_source_entry cluster_source_entry;

/* Prints the cluster's dead letters (url: its Redis; bot_id: whose) to
 * out, oldest first; returns how many, or -1 with err set. Blocks: for
 * the command line only (tghost --cluster URL --dead-letters). */
int cluster_list_dead_letters(const char *url, int64_t bot_id, FILE *out,
                              struct buf *err);

#endif
