/* A key-value store in Redis, on the event loop: what
 * tghost.storage.redis(url [, prefix]) talks to.
 *
 * Layer: loop and HTTP (beside src/http.h). Requests are src/kvreq.h's;
 * ns is a prefix put before every key. Uses hiredis's asynchronous API with its
 * libevent adapter, so nothing waits on a socket; a host name in the URL
 * is resolved with libevent's asynchronous resolver (evdns), never with a
 * blocking getaddrinfo.
 *
 * Commands: GET, SET (PX for a time to live), DEL, pipelined on one
 * connection, answered in order. The connection is opened at once and
 * kept; requests made before the first attempt ends wait for it. When the
 * connection is lost, or an attempt fails, the store is down: requests
 * in flight fail ("connection lost"), new ones are refused at once with
 * the reason (redisstore_submit returns -1), and it reconnects in the
 * background with backoff (100 ms doubling to 2 s), logging the outage
 * once and the recovery once. A connection on which Redis has not
 * answered for REDIS_REPLY_TIMEOUT_MS while commands wait (a stopped or
 * unreachable server, a connect that never completes) is dropped and
 * handled the same way; it counts as up again once Redis answers a PING. The URL's password never appears in a
 * message. */
#ifndef TGHOST_REDISSTORE_H
#define TGHOST_REDISSTORE_H

#include <event2/event.h>

#include "base/buf.h"
#include "store/kvreq.h"

#define REDIS_REPLY_TIMEOUT_MS 5000

struct redisstore;

/* redis://[[user]:password@]host[:port][/db] (port 6379, db 0 by
 * default; host may be a name, an IPv4 address or [IPv6]), or
 * unix://[[user]:password@]/path/to/redis.sock[?db=N]. Returns NULL
 * with a message in err for a URL it cannot use; otherwise starts
 * connecting. */
struct redisstore *redisstore_new(struct event_base *base, const char *url,
                                  struct buf *err);

/* Whether url is one redisstore_new can use: 0, or -1 with a message in
 * err. Connects to nothing. */
int redisstore_check_url(const char *url, struct buf *err);

/* Sends req (the store owns it until it completes) and returns 0; or
 * returns -1, req->error set and req still the caller's, when the store
 * is down. */
int redisstore_submit(struct redisstore *s, struct kvreq *req);

/* The URL without its password, for messages. */
const char *redisstore_name(const struct redisstore *s);

/* Closes the connection; requests in flight are freed without being
 * completed. For teardown, after the loop has stopped for good (their
 * waiters are gone by then). */
void redisstore_free(struct redisstore *s);

#endif
