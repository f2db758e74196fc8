/* tghost's own small HTTP servers (the webhook receiver, /metrics and
 * /healthz): libevent's evhttp on the loop, listening on an address given
 * as ADDR:PORT (netaddr.h; never a name to resolve), plus the few helpers
 * both need.
 *
 * Layer: loop and HTTP. */
#ifndef TGHOST_HTTPD_H
#define TGHOST_HTTPD_H

#include <stddef.h>

#include <event2/event.h>
#include <event2/http.h>

#include "base/buf.h"

/* A server listening on addr (what names the option in messages); the
 * address actually bound (the port, when 0 was asked for) goes to bound.
 * NULL with err set when the address is unusable or taken. */
struct evhttp *httpd_listen(struct event_base *base, const char *addr,
                            const char *what, char *bound, size_t bound_len,
                            struct buf *err);
/* Small answers go out at once, without waiting for a delayed ACK. */
void httpd_nodelay(struct evhttp_request *req);
/* Answers with a text body (Content-Type text/plain unless given). */
void httpd_reply(struct evhttp_request *req, int code, const char *reason,
                 const char *content_type, const char *body, size_t len);

#endif
