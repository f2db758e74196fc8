/* Lua scripts run on a Redis connection by their SHA: what the Redis
 * key-value store and the Redis job store share.
 *
 * Layer: stores, on redisconn.c. Each new connection is sent SCRIPT LOAD
 * for every script and keeps the SHAs Redis answers; until an answer
 * comes, and where SCRIPT is not allowed to the user, a script goes whole
 * (EVAL). A reply that is a NOSCRIPT error (Redis restarted or flushed
 * its scripts) means: send it again whole (use_sha false). */
#ifndef TGHOST_REDISSCRIPT_H
#define TGHOST_REDISSCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include "store/redisconn.h"

#define REDIS_SCRIPTS_MAX 8

struct redis_scripts {
  struct redisconn *conn;
  size_t n;
  const char *const *text;
  /* What Redis answered to SCRIPT LOAD ("" until then: EVAL instead). */
  char sha[REDIS_SCRIPTS_MAX][41];
};

/* Sets s up for the n (at most REDIS_SCRIPTS_MAX) scripts in text on the
 * connection c and watches c for new connections; s must stay where it
 * is until c is freed. */
void redis_scripts_init(struct redis_scripts *s, struct redisconn *c,
                        size_t n, const char *const *text);

/* Runs script which with nkeys keys first in argv (lens NULL: C
 * strings), by its SHA when use_sha and Redis gave one. The command
 * contract is redisconn_command's. */
void redis_scripts_eval(struct redis_scripts *s, size_t which, bool use_sha,
                        int nkeys, int argc, const char *const *argv,
                        const size_t *lens, redisconn_reply_fn done,
                        void *ud);

/* Whether the reply says Redis does not know the script's SHA. */
bool redis_reply_noscript(const redisReply *rep);

#endif
