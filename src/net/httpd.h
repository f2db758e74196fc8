/* tghost's own HTTP/1.1 servers (the webhook receiver, /metrics and
 * /healthz), on the loop, made to stand where anyone can reach them.
 *
 * A server listens on ADDR:PORT (netaddr.h; never a name to resolve) and
 * reads every request in steps, each bounded in bytes and in time:
 *
 *   1. The head (request line and headers): at most max_head_bytes (431
 *      beyond), checked strictly (httphead.h), within head_ms of the
 *      connection's start or of the request's first byte.
 *   2. The server's check, on the head alone: a wrong method, a wrong
 *      secret, a full queue are refused here, before a byte of the body is
 *      read. So is a body over max_body_bytes (413) and one without a
 *      Content-Length (411: Transfer-Encoding is not read).
 *   3. The body, exactly Content-Length bytes, within body_ms of the head
 *      (a client that asked "Expect: 100-continue" is told to go on).
 *   4. The request, to the server's callback, which answers it now or
 *      later (the webhook holds answers for backpressure): as long as it
 *      likes. Meanwhile the connection reads nothing more: a pipelined
 *      request waits in the kernel, not in tghost's memory.
 *   5. The answer, written within write_ms; then the connection waits for
 *      the next request, at most idle_ms, or closes.
 *
 * A refused request is answered at once; its body is never buffered: a
 * short one (at most HTTPD_DISCARD_MAX bytes, without Expect) is read and
 * dropped so that the connection can carry the next request; otherwise
 * the connection closes after the answer, dropping what the client still
 * sends for up to HTTPD_LINGER_MS so that the client reads the answer
 * rather than a reset.
 *
 * At most max_connections connections at once: one more closes the
 * connection idle the longest (closing ones first, then those between
 * requests, then the slowest head); one that comes while every connection
 * is busy with a request is closed at once. When accept() fails (out of
 * file descriptors), the connections idle the longest are closed to free
 * descriptors and the listener waits for the loop to close them, or
 * HTTPD_ACCEPT_PAUSE_MS when none is idle: it never spins. The log says
 * so in one line at most every HTTPD_LOG_EVERY_MS, with a count, as it
 * does for evictions. Deadlines are checked once a second.
 *
 * Metrics: tghost_http_connections{listener} and
 * tghost_http_connections_closed_total{listener, reason} (connections
 * tghost closed before their client did).
 *
 * Layer: HTTP. */
#ifndef TGHOST_HTTPD_H
#define TGHOST_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "base/buf.h"
#include "net/httphead.h"

#define HTTPD_DISCARD_MAX (64u << 10)
#define HTTPD_LINGER_MS 2000
#define HTTPD_ACCEPT_PAUSE_MS 100
#define HTTPD_LOG_EVERY_MS 10000
/* The default connection limit (the environment's
 * TGHOST_HTTP_MAX_CONNECTIONS replaces it), lowered to a quarter of the
 * open-files limit when that is smaller. */
#define HTTPD_MAX_CONNECTIONS 512

struct httpd_limits {
  size_t max_connections;        /* 0: the default, as above */
  size_t max_head_bytes;
  size_t max_body_bytes;
  unsigned idle_ms, head_ms, body_ms, write_ms;
};

/* A request's head while the server's check decides on it. */
struct httpd_head {
  const struct httphead *head;
  const char *peer;              /* the client's address, "1.2.3.4" */
};

/* How check refuses a request. */
struct httpd_refusal {
  int code;
  const char *reason;            /* "Unauthorized" */
  const char *text;              /* the body (text/plain), or NULL */
  const char *headers;           /* more header lines, each ending in
                                    "\r\n" ("Allow: POST\r\n"), or NULL */
};

struct httpd_req;

struct httpd_callbacks {
  /* Decides on a request from its head (step 2): true takes it; false
   * refuses it as *no says. NULL takes every request. */
  bool (*check)(const struct httpd_head *head, struct httpd_refusal *no,
                void *arg);
  /* A request taken, whole (step 4). It is the callee's until answered
   * (httpd_reply) or dropped (httpd_req_drop). */
  void (*request)(struct httpd_req *req, void *arg);
  /* Every refusal answered by the server (check's and its own), with its
   * status: for counting. May be NULL. */
  void (*refused)(int code, void *arg);
};

struct httpd;

/* A server listening on addr: name labels its logs and metrics ("webhook",
 * "metrics"), option names the address in messages ("--listen"); the
 * address actually bound (the port, when 0 was asked for) goes to bound.
 * NULL with err set when the address is unusable or taken. */
struct httpd *httpd_new(struct event_base *base, const char *addr,
                        const char *name, const char *option,
                        const struct httpd_limits *limits,
                        const struct httpd_callbacks *cb, void *arg,
                        char *bound, size_t bound_len, struct buf *err);
/* Closes every connection and stops listening. Requests the callee still
 * holds stay valid: answering or dropping one frees it. */
void httpd_free(struct httpd *s);

/* --- a request taken ------------------------------------------------------ */

enum httphead_method httpd_req_method(const struct httpd_req *r);
/* The request target ("/hook?x=1"), not NUL-terminated. */
const char *httpd_req_target(const struct httpd_req *r, size_t *len);
/* The value of the first header named name (any case), or NULL. */
const char *httpd_req_header(const struct httpd_req *r, const char *name,
                             size_t *len);
/* The body (NUL-terminated; "" when there is none), or NULL once taken. */
const char *httpd_req_body(const struct httpd_req *r, size_t *len);
/* Hands the body's memory to the caller, who frees it. */
char *httpd_req_take_body(struct httpd_req *r, size_t *len);
/* The client's address ("1.2.3.4", "::1"). */
const char *httpd_req_peer(const struct httpd_req *r);
/* Whether the client has closed its connection, or it is gone: for a
 * request held a long time. */
bool httpd_req_client_gone(const struct httpd_req *r);

/* Adds a header to the answer ("Retry-After", "1"). */
void httpd_add_header(struct httpd_req *r, const char *name,
                      const char *value);
/* Answers with a text body (Content-Type text/plain unless given) and
 * frees the request. A HEAD request gets the headers only. */
void httpd_reply(struct httpd_req *r, int code, const char *reason,
                 const char *content_type, const char *body, size_t len);
/* Frees the request without an answer and closes its connection. */
void httpd_req_drop(struct httpd_req *r);

#endif
