/* Scheduled jobs in Redis: what tghost.jobs uses with run{ jobs = {
 * storage = tghost.storage.redis(url [, prefix]) } }. Any number of
 * tghost processes sharing the Redis run each due job once: a claim is one
 * server-side script.
 *
 * Layer: stores. Implements store/jobstore.h for the "redis" kind on a
 * connection of its own (store/redisconn.h). With P the storage's prefix
 * and "jobs:" (tghost:jobs: by default):
 *
 *   P..due     sorted set: unclaimed job ids by due time (Unix ms)
 *   P..lease   sorted set: claimed job ids by the claim's end
 *   P..ids     sorted set (all scores 0): every id, for listing by prefix
 *              in byte order (ZRANGEBYLEX)
 *   P..job:ID  hash: schedule, due, body, attempts, token, lease
 *   P..seq     the counter new ids are numbered by
 *
 * Every operation is one Lua script (EVALSHA; the SHAs are learned with
 * SCRIPT LOAD on each new connection, EVAL until then and after
 * NOSCRIPT), so each is atomic: a claim moves the oldest due (or lapsed)
 * ids from due (or lease) to lease and stamps their hash with a fresh
 * token in one step, and a finish or renewal only applies while the
 * hash still holds the caller's token. Scripts build their keys from the
 * prefix (fine on one Redis server; not for Redis Cluster, whose slots
 * would need every key declared and hash-tagged).
 *
 * Processes compare due times with their own clocks: machines sharing the
 * store need their clocks synchronized (NTP), as leases do anyway. */
#ifndef TGHOST_REDISJOBS_H
#define TGHOST_REDISJOBS_H

#include "store/jobstore.h"

extern const struct jobstore_backend redisjobs_backend;

#endif
