#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qlist.h"

#define IDLE_HANDLE_POOL 64
#define HTTP_MAX_IDLE_AGE_S 50
#define HTTP_MAX_LIFETIME_S 600

enum request_state { REQ_NEW, REQ_ACTIVE, REQ_COMPLETED, REQ_DONE };

struct http_request {
  struct http_client *client;
  CURL *easy;
  enum request_state state;
  struct qnode node;                   /* in active or completed */

  char *url;
  char *method;
  struct curl_slist *headers;
  char *body;
  size_t body_len;
  curl_mime *mime;
  long timeout_ms;
  long low_speed_bytes;                /* with low_speed_secs: stall limit */
  long low_speed_secs;
  size_t max_response;
  long recv_buffer;
  bool compressed;
  bool keep_headers;
  bool expect_header_added;
  FILE *sink_file;

  http_done_fn done;
  void *ud;

  CURLcode result;
  long status;
  bool too_large;
  struct buf response;
  struct buf response_headers;
  char errbuf[CURL_ERROR_SIZE];
};

struct sock_watch {
  struct event *ev;
  curl_socket_t fd;
  struct qnode node;                   /* in the client's watches */
};

struct http_client {
  struct event_base *base;
  CURLM *multi;
  struct event *timer;
  int running;
  struct qlist active;                 /* handed to curl */
  struct qlist completed;              /* done, callback not yet run */
  struct qlist watches;                /* sockets curl asked us to watch */
  CURL *idle[IDLE_HANDLE_POOL];
  int nidle;
  char *ca_file;                       /* SSL_CERT_FILE, if set */
};

/* --- curl <-> libevent glue -------------------------------------------- */

/* A multi call that fails means a bug or exhausted memory, not a network
 * problem (those are reported per transfer): say so, loudly, once per
 * kind. */
static void check_multi(CURLMcode mc, const char *call) {
  if (mc == CURLM_OK) return;
  log_error("%s failed: %s", call, curl_multi_strerror(mc));
}

/* Error texts may hold the URL, and Bot API URLs hold the token: the
 * text callers get is redacted once, here. */
static void redact_error(struct http_request *r) {
  if (!r->errbuf[0])
    snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(r->result));
  char *clean = log_redacted_copy(r->errbuf, strlen(r->errbuf));
  snprintf(r->errbuf, sizeof r->errbuf, "%s", clean);
  free(clean);
}

static void remove_handle(struct http_client *c, CURL *easy) {
  check_multi(curl_multi_remove_handle(c->multi, easy),
              "curl_multi_remove_handle");
}

static void deliver_completed(struct http_client *c) {
  struct qnode *n;
  while ((n = qlist_pop_front(&c->completed))) {
    struct http_request *r = qlist_entry(n, struct http_request, node);
    r->state = REQ_DONE;
    r->done(r, r->ud);   /* may free r, start or cancel other requests */
  }
}

static void collect_finished(struct http_client *c) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(c->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    struct http_request *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    remove_handle(c, easy);
    if (!r) continue;
    r->result = result;
    if (result != CURLE_OK) redact_error(r);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    qlist_remove(&c->active, &r->node);
    r->state = REQ_COMPLETED;
    qlist_push_back(&c->completed, &r->node);
  }
  deliver_completed(c);
}

static void on_socket_ready(evutil_socket_t fd, short what, void *arg) {
  struct http_client *c = arg;
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
               ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  check_multi(curl_multi_socket_action(c->multi, fd, action, &c->running),
              "curl_multi_socket_action");
  collect_finished(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  struct http_client *c = arg;
  check_multi(curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0,
                                       &c->running),
              "curl_multi_socket_action");
  collect_finished(c);
}

/* curl tells us which sockets to watch for what. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  struct http_client *c = userp;
  struct sock_watch *w = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      event_free(w->ev);
      qlist_remove(&c->watches, &w->node);
      free(w);
    }
    return 0;
  }
  short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
               ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
  if (!w) {
    w = xcalloc(1, sizeof *w);
    w->fd = fd;
    qlist_push_back(&c->watches, &w->node);
    check_multi(curl_multi_assign(c->multi, fd, w), "curl_multi_assign");
  } else {
    event_free(w->ev);
  }
  w->ev = event_new(c->base, fd, kind, on_socket_ready, c);
  event_add(w->ev, NULL);
  return 0;
}

/* curl asks to be called back after timeout_ms (-1: no timeout needed). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  struct http_client *c = userp;
  if (timeout_ms < 0) {
    evtimer_del(c->timer);
    return 0;
  }
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  evtimer_add(c->timer, &tv);   /* 0 ms runs on the next loop pass */
  return 0;
}

struct http_client *http_client_new(struct event_base *base,
                                    const struct http_client_config *cfg) {
  struct http_client *c = xcalloc(1, sizeof *c);
  c->base = base;
  c->multi = curl_multi_init();
  if (!c->multi) {
    free(c);
    return NULL;
  }
  c->timer = evtimer_new(base, on_timer, c);
  qlist_init(&c->active);
  qlist_init(&c->completed);
  qlist_init(&c->watches);
  /* Trust a private CA (a local Bot API server behind TLS) the way
   * OpenSSL-based programs do; verification itself stays on. */
  const char *ca = getenv("SSL_CERT_FILE");
  if (ca && *ca) c->ca_file = xstrdup(ca);
  /* Without its callbacks the multi handle cannot run at all. */
  CURLM *m = c->multi;
  if (curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) ||
      curl_multi_setopt(m, CURLMOPT_SOCKETDATA, c) ||
      curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) ||
      curl_multi_setopt(m, CURLMOPT_TIMERDATA, c)) {
    log_error("cannot set up libcurl's multi interface");
    http_client_free(c);
    return NULL;
  }
  check_multi(curl_multi_setopt(m, CURLMOPT_PIPELINING,
                                (long)CURLPIPE_MULTIPLEX),
              "curl_multi_setopt(CURLMOPT_PIPELINING)");
  http_client_set_max_connections(
      c, cfg && cfg->max_idle_connections > 0 ? cfg->max_idle_connections
                                              : HTTP_DEFAULT_MAX_CONNECTIONS);
  return c;
}

void http_client_set_max_connections(struct http_client *c, long n) {
  long keep = n > HTTP_DEFAULT_MAX_CONNECTIONS ? n
                                              : HTTP_DEFAULT_MAX_CONNECTIONS;
  check_multi(curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, keep),
              "curl_multi_setopt(CURLMOPT_MAXCONNECTS)");
}

void http_client_free(struct http_client *c) {
  if (!c) return;
  struct qnode *n;
  while ((n = qlist_front(&c->active)))
    http_request_cancel(qlist_entry(n, struct http_request, node));
  while ((n = qlist_front(&c->completed)))
    http_request_cancel(qlist_entry(n, struct http_request, node));
  for (int i = 0; i < c->nidle; i++) curl_easy_cleanup(c->idle[i]);
  curl_multi_cleanup(c->multi);
  while ((n = qlist_pop_front(&c->watches))) {
    struct sock_watch *w = qlist_entry(n, struct sock_watch, node);
    event_free(w->ev);
    free(w);
  }
  event_free(c->timer);
  free(c->ca_file);
  free(c);
}

/* --- requests ---------------------------------------------------------- */

struct http_request *http_request_new(struct http_client *c, const char *url) {
  struct http_request *r = xcalloc(1, sizeof *r);
  r->client = c;
  r->url = xstrdup(url);
  r->timeout_ms = 60000;
  r->max_response = 64u << 20;
  r->recv_buffer = 16384;
  return r;
}

void http_request_set_method(struct http_request *r, const char *method) {
  free(r->method);
  r->method = xstrdup(method);
}

void http_request_add_header(struct http_request *r, const char *line) {
  struct curl_slist *l = curl_slist_append(r->headers, line);
  if (!l) {
    fprintf(stderr, "tghost: out of memory\n");
    abort();
  }
  r->headers = l;
}

void http_request_set_body(struct http_request *r, char *body, size_t len) {
  free(r->body);
  r->body = body;
  r->body_len = len;
}

curl_mime *http_request_new_mime(struct http_request *r) {
  if (!r->easy) {
    CURL *easy = r->client->nidle ? r->client->idle[--r->client->nidle]
                                  : curl_easy_init();
    r->easy = easy;
  }
  return curl_mime_init(r->easy);
}

void http_request_set_mime(struct http_request *r, curl_mime *mime) {
  if (r->mime) curl_mime_free(r->mime);
  r->mime = mime;
}

void http_request_set_timeout(struct http_request *r, long ms) {
  r->timeout_ms = ms;
}
void http_request_set_max_response(struct http_request *r, size_t max) {
  r->max_response = max;
}
void http_request_set_recv_buffer(struct http_request *r, long bytes) {
  r->recv_buffer = bytes;
}
void http_request_set_compressed(struct http_request *r, bool on) {
  r->compressed = on;
}
void http_request_keep_headers(struct http_request *r, bool on) {
  r->keep_headers = on;
}
void http_request_set_sink_file(struct http_request *r, FILE *f) {
  r->sink_file = f;
}
void http_request_set_low_speed(struct http_request *r, long bytes,
                                long secs) {
  r->low_speed_bytes = bytes;
  r->low_speed_secs = secs;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  struct http_request *r = ud;
  size_t len = size * n;
  if (r->sink_file) return fwrite(data, 1, len, r->sink_file);
  if (r->response.len + len > r->max_response) {
    r->too_large = true;
    return 0;   /* makes curl abort the transfer */
  }
  buf_append(&r->response, data, len);
  return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
  struct http_request *r = ud;
  size_t len = size * n;
  /* A new status line (after a redirect or 100 Continue) starts afresh. */
  if (len > 5 && memcmp(data, "HTTP/", 5) == 0) buf_reset(&r->response_headers);
  if (r->response_headers.len + len > 256 * 1024) return 0;
  buf_append(&r->response_headers, data, len);
  return len;
}

int http_request_start(struct http_request *r, http_done_fn done, void *ud) {
  struct http_client *c = r->client;
  if (!r->easy) {
    r->easy = c->nidle ? c->idle[--c->nidle] : curl_easy_init();
    if (!r->easy) {
      snprintf(r->errbuf, sizeof r->errbuf, "curl_easy_init failed");
      return -1;
    }
  }
  CURL *e = r->easy;
  r->done = done;
  r->ud = ud;
  r->errbuf[0] = '\0';
  /* A request may be started again after it was reported (a retry). */
  r->result = CURLE_OK;
  r->status = 0;
  r->too_large = false;
  buf_reset(&r->response);
  buf_reset(&r->response_headers);
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, r->recv_buffer);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "tghost/" TGHOST_VERSION);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  /* HTTP/2 where TLS negotiates it (api.telegram.org), HTTP/1.1 otherwise.
   * Waiting for an existing connection to say whether it multiplexes keeps
   * a burst of calls on one connection instead of opening one each; plain
   * http:// never multiplexes, so there it would only delay. */
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (strncmp(r->url, "https://", 8) == 0)
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  /* Recycle connections before servers drop them: an idle connection is
   * not reused after HTTP_MAX_IDLE_AGE_S (common keep-alive timeouts are
   * 60-75 s, and a request sent on a connection the server is closing
   * fails), and none is used for new requests after HTTP_MAX_LIFETIME_S. */
  curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)HTTP_MAX_IDLE_AGE_S);
  curl_easy_setopt(e, CURLOPT_MAXLIFETIME_CONN, (long)HTTP_MAX_LIFETIME_S);
  if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
  if (r->low_speed_secs > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, r->low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, r->low_speed_secs);
  }
  if (r->compressed) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (r->keep_headers) {
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  }
  if (r->mime) {
    curl_easy_setopt(e, CURLOPT_MIMEPOST, r->mime);
  } else if (r->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
  }
  if ((r->body || r->mime) && !r->expect_header_added) {
    http_request_add_header(r, "Expect:");
    r->expect_header_added = true;
  }
  /* HEAD has no response body; curl must be told, not just asked. */
  if (r->method && strcmp(r->method, "HEAD") == 0)
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (r->method)
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  if (r->headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);

  CURLMcode mc = curl_multi_add_handle(c->multi, e);
  if (mc != CURLM_OK) {
    snprintf(r->errbuf, sizeof r->errbuf, "curl_multi_add_handle: %s",
             curl_multi_strerror(mc));
    return -1;
  }
  r->state = REQ_ACTIVE;
  qlist_push_back(&c->active, &r->node);
  return 0;
}

static void release_easy(struct http_request *r) {
  struct http_client *c = r->client;
  if (!r->easy) return;
  if (c->nidle < IDLE_HANDLE_POOL) {
    curl_easy_reset(r->easy);
    c->idle[c->nidle++] = r->easy;
  } else {
    curl_easy_cleanup(r->easy);
  }
  r->easy = NULL;
}

void http_request_cancel(struct http_request *r) {
  struct http_client *c = r->client;
  if (r->state == REQ_ACTIVE) {
    remove_handle(c, r->easy);
    qlist_remove(&c->active, &r->node);
  } else if (r->state == REQ_COMPLETED) {
    qlist_remove(&c->completed, &r->node);
  }
  r->state = REQ_DONE;
  http_request_free(r);
}

void http_request_free(struct http_request *r) {
  if (!r) return;
  if (r->state == REQ_ACTIVE || r->state == REQ_COMPLETED) {
    http_request_cancel(r);
    return;
  }
  release_easy(r);
  if (r->mime) curl_mime_free(r->mime);
  curl_slist_free_all(r->headers);
  free(r->url);
  free(r->method);
  free(r->body);
  buf_free(&r->response);
  buf_free(&r->response_headers);
  free(r);
}

bool http_request_ok(const struct http_request *r) {
  return r->result == CURLE_OK;
}
long http_request_status(const struct http_request *r) { return r->status; }
const struct buf *http_request_body(const struct http_request *r) {
  return &r->response;
}
const struct buf *http_request_headers(const struct http_request *r) {
  return &r->response_headers;
}
bool http_request_too_large(const struct http_request *r) {
  return r->too_large;
}
bool http_request_timed_out(const struct http_request *r) {
  return r->result == CURLE_OPERATION_TIMEDOUT;
}

const char *http_request_error(const struct http_request *r) {
  if (r->too_large) return "response too large";
  if (r->errbuf[0]) return r->errbuf;
  return curl_easy_strerror(r->result);
}
