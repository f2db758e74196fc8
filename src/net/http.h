/* HTTP on the event loop: one libcurl multi handle driven by libevent
 * through curl's socket and timer callbacks (no polling, no busy loop).
 *
 * A request is created, configured, started, and reported once through its
 * done callback, which always runs from the loop after curl has handed the
 * transfer back (never from inside a curl callback). The caller owns the
 * request: free it after the callback, or cancel it before (cancel removes
 * it from curl at once and no callback follows). Easy handles are pooled,
 * so kept-alive connections and TLS sessions are reused.
 *
 * Transport: HTTP/2 with multiplexing over https when the server offers it,
 * HTTP/1.1 otherwise; TLS peers are always verified; idle connections are
 * recycled before servers typically drop them. A client is one connection
 * pool: the long poll uses a client of its own so it never occupies a
 * connection or stream slot that method calls need. Inside, a client with
 * many plain-http transfers in flight spreads them over several curl multi
 * handles, so that finding a reusable connection stays cheap with
 * thousands of HTTP/1.1 connections open. */
#ifndef TGHOST_HTTP_H
#define TGHOST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "base/buf.h"

struct http_client;
struct http_request;
struct http_url;

typedef void (*http_done_fn)(struct http_request *req, void *ud);

struct http_client_config {
  long max_idle_connections;   /* connection cache size (CURLMOPT_MAXCONNECTS) */
  bool verbose;                /* curl's own debug output to stderr */
};

/* NULL (after logging why) if libcurl cannot be set up. */
struct http_client *http_client_new(struct event_base *base,
                                    const struct http_client_config *cfg);
/* How many connections the pool keeps open between requests (never fewer
 * than HTTP_DEFAULT_MAX_CONNECTIONS). Over HTTP/1.1 each request in flight
 * needs a connection of its own: a pool smaller than the calls made at
 * once closes connections only to open them again on the next burst. */
#define HTTP_DEFAULT_MAX_CONNECTIONS 64
void http_client_set_max_connections(struct http_client *c, long n);
/* Cancels whatever is still in flight (no callbacks) and frees all. */
void http_client_free(struct http_client *c);

struct http_request *http_request_new(struct http_client *c, const char *url);

/* A URL parsed once for many requests (libcurl's CURLU): a request made
 * from it spares curl parsing and rebuilding the URL text on every
 * transfer. NULL if curl rejects the URL. */
struct http_url *http_url_new(const char *url);
void http_url_free(struct http_url *u);
/* The request borrows u: it must outlive the request, unchanged. */
struct http_request *http_request_new_parsed(struct http_client *c,
                                             const struct http_url *u);
void http_request_set_method(struct http_request *req, const char *method);
void http_request_add_header(struct http_request *req, const char *line);
/* Headers shared by many requests (the caller keeps the list alive and
 * unchanged while they exist): a list built once spares every call its
 * own copy. The list must have "Expect:" if the request has a body. A
 * header added afterwards goes on a copy of the list. */
void http_request_use_headers(struct http_request *req,
                              const struct curl_slist *shared);
/* The request takes ownership of body (malloc'd). */
void http_request_set_body(struct http_request *req, char *body, size_t len);
/* The request takes ownership of mime (multipart upload). */
void http_request_set_mime(struct http_request *req, curl_mime *mime);
curl_mime *http_request_new_mime(struct http_request *req);
void http_request_set_timeout(struct http_request *req, long total_ms);
void http_request_set_max_response(struct http_request *req, size_t max);
void http_request_set_recv_buffer(struct http_request *req, long bytes);
void http_request_set_compressed(struct http_request *req, bool on);
void http_request_keep_headers(struct http_request *req, bool on);
/* Streams the response body to f instead of memory (not closed by us). */
void http_request_set_sink_file(struct http_request *req, FILE *f);
/* Fails the transfer when it moves fewer than bytes per second for secs
 * seconds: a bound for large transfers that a total timeout would cut. */
void http_request_set_low_speed(struct http_request *req, long bytes,
                                long secs);

/* Returns 0, or -1 with http_request_error() set (no callback follows).
 * A request whose done callback has run may be started again (a retry):
 * the previous response is discarded. */
int http_request_start(struct http_request *req, http_done_fn done, void *ud);
void http_request_cancel(struct http_request *req);
void http_request_free(struct http_request *req);

/* Results, valid once the done callback has run. */
bool http_request_ok(const struct http_request *req); /* transport succeeded */
long http_request_status(const struct http_request *req);
const struct buf *http_request_body(const struct http_request *req);
const struct buf *http_request_headers(const struct http_request *req);
/* A description of a transport failure, with every secret known to the
 * log redactor (log_add_secret: the bot token) already removed, so it may
 * be shown as it is. */
const char *http_request_error(const struct http_request *req);
bool http_request_too_large(const struct http_request *req);
bool http_request_timed_out(const struct http_request *req);

/* --- Streaming ------------------------------------------------------------
 *
 * A streamed request hands its response body over as it arrives instead of
 * collecting it, and may send a body it does not have yet. Set it up
 * before http_request_start; the done callback still reports the end (or
 * the failure) once, and data received before the end stays readable after
 * it.
 *
 * Backpressure: at most `window` bytes (plus one write of curl's) are held
 * for the reader; past that the transfer is paused (CURL_WRITEFUNC_PAUSE),
 * so the server is slowed by TCP (or the HTTP/2 stream window) rather than
 * buffered without bound, and taking data resumes it. Uploads work the same
 * way the other direction: the body is pulled from a buffer the caller
 * fills when told the transfer wants more.
 *
 * Notifications (the head is in, data came, the upload wants more) go to
 * `notify`, always from the loop (never from inside a curl callback nor
 * from inside http_stream_consume / http_stream_write_body, which may run
 * curl's callbacks): several events may be folded into one call. */
typedef void (*http_notify_fn)(struct http_request *req, void *ud);

void http_request_set_stream(struct http_request *req, size_t window,
                             http_notify_fn notify, void *ud);
/* First byte: the response head must arrive within head_ms; idle: once it
 * has, the server may stay silent at most idle_ms between two pieces of
 * data (time the transfer is paused because the reader is slow does not
 * count). 0 turns either off. Past one the transfer fails as timed out. */
void http_request_set_stream_timeouts(struct http_request *req, long head_ms,
                                      long idle_ms);
/* The body is read from f (not closed by us; size bytes, or -1 when not
 * known: then it goes chunked over HTTP/1.1). */
void http_request_set_body_file(struct http_request *req, FILE *f,
                                long long size);
/* The body is given piece by piece with http_stream_write_body (size
 * unknown: chunked over HTTP/1.1). */
void http_request_set_body_stream(struct http_request *req);

/* The response head (status and headers) is in. */
bool http_stream_has_head(const struct http_request *req);
long http_stream_status(const struct http_request *req);
/* Data received and not yet consumed: *data points at len bytes. */
size_t http_stream_peek(const struct http_request *req, const char **data);
/* The first n bytes of what peek showed are used: may resume a paused
 * transfer (curl may deliver more data before this returns). */
void http_stream_consume(struct http_request *req, size_t n);
/* The transfer is over (the done callback ran or is due). */
bool http_stream_finished(const struct http_request *req);
/* The upload ran dry and waits for http_stream_write_body. */
bool http_stream_wants_body(const struct http_request *req);
/* Appends to the body being sent (len 0 with end: the body is complete);
 * resumes the upload if it waited. */
void http_stream_write_body(struct http_request *req, const char *data,
                            size_t len, bool end);

#endif
