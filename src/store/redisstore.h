/* The Redis backend: tghost.storage.redis(url [, prefix]), a key-value
 * store in Redis strings, on a src/store/redisconn.h connection (one per
 * URL and process, whatever prefixes are used on it).
 *
 * Layer: stores. Implements src/store/kvstore.h; the namespace is a
 * prefix put before every key ("tghost:" by default), so the session of
 * chat 42 is the Redis string tghost:42, readable with redis-cli.
 *
 * Commands, pipelined on the connection and answered in order: GET, SET
 * (PX for a time to live), DEL; compare-and-set is one Lua script run by
 * EVALSHA (EVAL until Redis has told the script's SHA, or when it forgot
 * the script), atomic on the server: GET, compare, SET or DEL. Listing
 * runs SCAN ... MATCH <prefix>* from a script, a bounded number of times
 * per page; keys SCAN returns beyond the page's limit ride in the cursor
 * to the next page, so no key is skipped and a page never exceeds its
 * limit. SCAN may list a key twice.
 *
 * Failures come from the connection: "redis storage redis://host:port:
 * connection lost (...)", "... is unreachable: ...; reconnecting in the
 * background", "...: no answer within 5 s (connection dropped)", or what
 * Redis answered. */
#ifndef TGHOST_REDISSTORE_H
#define TGHOST_REDISSTORE_H

#include "store/kvstore.h"

extern const struct kv_backend redisstore_backend;

#endif
