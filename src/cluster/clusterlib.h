/* The cluster's Redis Functions library (src/cluster/redislib.lua, run by
 * Redis 7's FUNCTION/FCALL) and the names of the keys it works on.
 *
 * Every write a cluster instance makes (ingesting updates, taking and
 * renewing leases, the commit record, trimming, dead letters, fenced
 * session writes, membership) is one FCALL of this library, atomic on the
 * server; redislib.lua documents each function and every key. Reads that
 * need no atomicity (XREAD, XLEN, HGET) are plain commands.
 *
 * Keys: every key of one bot's cluster starts with "tgc:<bot id>:", so
 * several bots can share a Redis (and sessions, "tghost:..." by default,
 * never meet them). Partition keys end in the partition's number, the
 * ingress lease in "in".
 *
 * Layer: cluster (plain C, no loop). */
#ifndef TGHOST_CLUSTERLIB_H
#define TGHOST_CLUSTERLIB_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* The version tgc_version answers; bump it with every change of
 * redislib.lua that older tghosts could not call (they then refuse to
 * start against it, rather than calling functions that changed). */
#define CLUSTERLIB_VERSION 1
#define CLUSTERLIB_NAME "tghost_cluster"

/* The error reply of a fenced write whose epoch no longer holds. */
#define CLUSTERLIB_STALE "TGSTALE"

/* redislib.lua, NUL-terminated (generated at build time). */
extern const char clusterlib_code[];
extern const size_t clusterlib_code_len;

/* The key names of one bot's cluster. */
enum clusterlib_key {
  CK_META,       /* hash: partitions, format */
  CK_OFFSET,     /* string: next getUpdates offset */
  CK_SEEN,       /* zset: update ids ingested */
  CK_MEMBERS,    /* zset: member -> expiry */
  CK_DEAD,       /* stream: dead letters */
  CK_STATS,      /* hash: refused, dead */
  CK_LEASE,      /* string, per partition (or the ingress) */
  CK_EPOCH,      /* counter, per partition (or the ingress) */
  CK_STREAM,     /* stream, per partition */
  CK_COMMIT,     /* hash, per partition: the commit record */
};

/* The partition number that names the ingress lease and epoch ("in"). */
#define CLUSTERLIB_INGRESS (-1)

/* Appends the key to out: "tgc:<bot>:<name>" (partition ignored for the
 * bot-wide keys; CLUSTERLIB_INGRESS for the ingress lease and epoch). */
void clusterlib_key(struct buf *out, int64_t bot_id, enum clusterlib_key k,
                    int partition);

#endif
