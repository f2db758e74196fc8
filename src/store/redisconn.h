/* One connection to a Redis server, on the event loop: what the Redis
 * storage runs its commands on, and what a Redis Stream source or a job
 * store can share the code of (each opens its own connection).
 *
 * Layer: stores, the lowest module there (base/ below it). hiredis's
 * asynchronous API with its libevent adapter, so nothing waits on a
 * socket; a host name is resolved with libevent's asynchronous resolver
 * (evdns), never with a blocking getaddrinfo.
 *
 * URLs are parsed with libcurl's URL API (percent-decoding included):
 *   redis://[[user]:password@]host[:port][/db][?db=N]   (port 6379, db 0;
 *       host a name, an IPv4 address or [IPv6]; a user name is sent to
 *       AUTH with the password, for Redis 6+ ACL users)
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]
 * A password holding @ : / ? # % must be percent-encoded (%40 %3A %2F
 * %3F %23 %25); "redis://secret@host" (no colon) means the password
 * secret, as tghost has always read it.
 *
 * Life of a connection: it is opened at once and kept. On every new
 * connection AUTH (when the URL has a password), SELECT (db > 0) and the
 * setup commands of redisconn_add_setup are pipelined ahead of anything
 * else, then a PING; the connection counts as up once the PING is
 * answered (TCP connecting is not enough: a stopped Redis completes the
 * handshake). A failed AUTH or SELECT, a lost connection, a failed
 * attempt or a connection on which Redis has not answered for the reply
 * timeout while commands wait (stopped, swapping, a network that drops
 * packets) makes it down: commands in flight fail with the reason, new
 * ones fail (from the loop) until it is up again, and it reconnects in
 * the background with backoff (100 ms doubling to 2 s). The outage is
 * logged once and the recovery once ("<what> <name>: connected again").
 * The password never appears in a message or a log line.
 *
 * The command contract: redisconn_command never fails and never calls
 * back inside the call; every command's callback runs exactly once, on
 * the loop, in the order the commands were given (Redis answers one
 * connection in order), with the reply or with why there is none. */
#ifndef TGHOST_REDISCONN_H
#define TGHOST_REDISCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "base/buf.h"

#define REDISCONN_REPLY_TIMEOUT_MS 5000

struct redisconn;

/* What a URL names: the parts, decoded. */
struct redis_target {
  char *host;          /* a name or an address without brackets; NULL for
                        * unix:// */
  int port;
  char *socket_path;   /* unix:// only */
  char *user, *password;   /* NULL when absent */
  long db;
  char *name;          /* the URL without user and password, for messages */
};

/* Parses url into t (every field malloc'd; free with redis_target_free):
 * 0, or -1 with what is wrong in err (never the password). */
int redis_target_parse(const char *url, struct redis_target *t,
                       struct buf *err);
void redis_target_free(struct redis_target *t);

/* A command's answer. reply is Redis's (valid during the call only; a
 * command Redis refused is a reply of type REDIS_REPLY_ERROR), or NULL
 * with error saying why there is none ("<what> <name>: connection lost
 * (...)", "... is unreachable: ...", "...: no answer within 5 s
 * (connection dropped)"). Both NULL: the connection is being freed at
 * teardown; free ud and call nobody. */
typedef void (*redisconn_reply_fn)(struct redisconn *c, const redisReply *reply,
                                   const char *error, void *ud);

/* Parses url and starts connecting; NULL with a message in err for a URL
 * it cannot use. what names the user in messages ("redis storage"). */
struct redisconn *redisconn_new(struct event_base *base, const char *url,
                                const char *what, struct buf *err);

/* Sends a command (argv form; lens NULL: the arguments are C strings).
 * The arguments are copied. See the contract above. */
void redisconn_command(struct redisconn *c, int argc, const char *const *argv,
                       const size_t *lens, redisconn_reply_fn done, void *ud);

/* As redisconn_command, for a command Redis may legitimately hold for up
 * to block_ms before answering (XREADGROUP ... BLOCK, BLPOP): the stall
 * timer gives it that much longer. Such a command delays every command
 * behind it on this connection: blocking readers want a connection of
 * their own. */
void redisconn_blocking_command(struct redisconn *c, int64_t block_ms,
                                int argc, const char *const *argv,
                                const size_t *lens, redisconn_reply_fn done,
                                void *ud);

/* A command sent on every new connection after AUTH and SELECT and before
 * anything else (SCRIPT LOAD, FUNCTION LOAD, CLIENT SETNAME); done gets
 * each answer. A setup command Redis refuses makes the connection down
 * like a failed AUTH does. Arguments are C strings, copied. */
void redisconn_add_setup(struct redisconn *c, int argc, const char *const *argv,
                         redisconn_reply_fn done, void *ud);

/* Told when the connection comes up (its PING answered) and goes down
 * (reason: why). Either may be NULL. One watcher per call; they live as
 * long as the connection. */
void redisconn_watch(struct redisconn *c,
                     void (*on_up)(struct redisconn *c, void *ud),
                     void (*on_down)(struct redisconn *c, const char *reason,
                                     void *ud),
                     void *ud);

bool redisconn_is_up(const struct redisconn *c);
/* Its outages and recoveries go unlogged: for a second connection to the
 * same server whose user logs through the first (a cluster's blocking
 * reads), so that one outage is one line. Failed commands still say
 * why. */
void redisconn_set_quiet(struct redisconn *c, bool quiet);
/* The URL without user and password. */
const char *redisconn_name(const struct redisconn *c);
/* For tests: how long commands may go unanswered before the connection
 * counts as stalled (REDISCONN_REPLY_TIMEOUT_MS by default). */
void redisconn_set_reply_timeout(struct redisconn *c, int64_t ms);

/* Closes the connection; every command not answered yet gets its
 * callback with reply and error NULL. For teardown, after the loop has
 * stopped for good. */
void redisconn_free(struct redisconn *c);

#endif
