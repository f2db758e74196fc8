#include "net/http.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/qlist.h"

/* Idle easy handles are kept for reuse, as many as the connection cache
 * may hold (a burst of calls reuses both); those that stayed unused through
 * a whole trim period are freed. */
#define HTTP_MIN_IDLE_HANDLES 64
#define HTTP_IDLE_TRIM_S 30
#define HTTP_MAX_IDLE_AGE_S 50
#define HTTP_MAX_LIFETIME_S 600
#define HTTP_UPLOAD_BUFFER 65536L        /* curl's default */
#define HTTP_SMALL_UPLOAD_BUFFER 16384L  /* curl's minimum */
/* Transfers per curl multi handle (see struct shard). */
#define HTTP_SHARD_TRANSFERS 128

enum request_state { REQ_NEW, REQ_ACTIVE, REQ_COMPLETED, REQ_DONE };

struct http_request {
  struct http_client *client;
  struct shard *shard;                 /* while handed to curl */
  CURL *easy;
  enum request_state state;
  struct qnode node;                   /* in active or completed */

  char *url;                           /* or: */
  const struct http_url *parsed;       /* borrowed */
  bool https;
  char *method;
  struct curl_slist *headers;
  const struct curl_slist *shared_headers;   /* borrowed, or NULL */
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

  struct http_stream *stream;          /* NULL unless streamed */

  CURLcode result;
  long status;
  bool too_large;
  struct buf response;
  struct buf response_headers;
  char errbuf[CURL_ERROR_SIZE];
};

struct http_url {
  CURLU *u;
  char *text;                          /* the same URL as text */
  bool https;
};

struct sock_watch {
  struct event *ev;
  curl_socket_t fd;
  struct qnode node;                   /* in the client's watches */
};

/* A curl multi handle and its own connection cache. Over HTTP/1.1 every
 * transfer in flight holds a connection, and for each new transfer libcurl
 * (7.88) walks all connections to the host looking for an idle one: with
 * thousands in flight that walk cost more than the request itself. So
 * transfers are spread over shards of at most HTTP_SHARD_TRANSFERS each
 * (the first with room takes the next), and a walk covers one shard. Below
 * that many in flight everything runs on the first shard, as one multi.
 * Over https, where HTTP/2 carries a hundred transfers or more on each
 * connection, the walk is short, while every shard would need TLS
 * connections of its own: those transfers all go to the first shard. */
struct shard {
  struct http_client *client;
  CURLM *multi;
  struct event *timer;
  int running;
  int transfers;                       /* added to multi, not yet removed */
};

struct http_client {
  struct event_base *base;
  struct shard **shards;
  int nshards;
  long max_connections;                /* CURLMOPT_MAXCONNECTS, in all */
  struct qlist active;                 /* handed to curl */
  struct qlist completed;              /* done, callback not yet run */
  struct qlist watches;                /* sockets curl asked us to watch */
  CURL **idle;                         /* easy handles for reuse */
  int nidle, idle_cap;
  int idle_low;                        /* fewest idle since the last trim */
  struct event *trim_timer;
  bool no_proxy;                       /* no proxy variable in the environment */
  char *ca_file;                       /* SSL_CERT_FILE, if set */
  struct qlist notified;               /* streams with news for their owner */
  struct event *notify_event;          /* delivers them; made with the first */
};

static void stream_transfer_over(struct http_request *r);
static void stream_free(struct http_request *r);
static void stream_setopt(struct http_request *r);

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

static void remove_handle(struct http_request *r) {
  check_multi(curl_multi_remove_handle(r->shard->multi, r->easy),
              "curl_multi_remove_handle");
  r->shard->transfers--;
  r->shard = NULL;
}

static void deliver_completed(struct http_client *c) {
  struct qnode *n;
  while ((n = qlist_pop_front(&c->completed))) {
    struct http_request *r = qlist_entry(n, struct http_request, node);
    r->state = REQ_DONE;
    r->done(r, r->ud);   /* may free r, start or cancel other requests */
  }
}

static void collect_finished(struct shard *sh) {
  struct http_client *c = sh->client;
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(sh->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    struct http_request *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (!r) {
      check_multi(curl_multi_remove_handle(sh->multi, easy),
                  "curl_multi_remove_handle");
      continue;
    }
    remove_handle(r);
    if (r->stream) stream_transfer_over(r);
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
  struct shard *sh = arg;
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
               ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  check_multi(curl_multi_socket_action(sh->multi, fd, action, &sh->running),
              "curl_multi_socket_action");
  collect_finished(sh);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  struct shard *sh = arg;
  check_multi(curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0,
                                       &sh->running),
              "curl_multi_socket_action");
  collect_finished(sh);
}

/* curl tells us which sockets to watch for what. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  struct shard *sh = userp;
  struct http_client *c = sh->client;
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
    check_multi(curl_multi_assign(sh->multi, fd, w), "curl_multi_assign");
  } else {
    event_free(w->ev);
  }
  w->ev = event_new(c->base, fd, kind, on_socket_ready, sh);
  event_add(w->ev, NULL);
  return 0;
}

/* curl asks to be called back after timeout_ms (-1: no timeout needed). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  struct shard *sh = userp;
  if (timeout_ms < 0) {
    evtimer_del(sh->timer);
    return 0;
  }
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  evtimer_add(sh->timer, &tv);   /* 0 ms runs on the next loop pass */
  return 0;
}

/* Each shard keeps idle connections in proportion to its transfers. */
static long shard_max_connections(const struct http_client *c) {
  long per_shard = HTTP_SHARD_TRANSFERS + HTTP_SHARD_TRANSFERS / 4;
  return c->max_connections < per_shard ? c->max_connections : per_shard;
}

static void shard_free(struct shard *sh) {
  if (!sh) return;
  if (sh->multi) curl_multi_cleanup(sh->multi);
  if (sh->timer) event_free(sh->timer);
  free(sh);
}

/* NULL (after logging why) if curl cannot give a working multi handle. */
static struct shard *shard_new(struct http_client *c) {
  struct shard *sh = xcalloc(1, sizeof *sh);
  sh->client = c;
  sh->multi = curl_multi_init();
  sh->timer = evtimer_new(c->base, on_timer, sh);
  CURLM *m = sh->multi;
  /* Without its callbacks the multi handle cannot run at all. */
  if (!m || curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) ||
      curl_multi_setopt(m, CURLMOPT_SOCKETDATA, sh) ||
      curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) ||
      curl_multi_setopt(m, CURLMOPT_TIMERDATA, sh)) {
    log_error("cannot set up libcurl's multi interface");
    shard_free(sh);
    return NULL;
  }
  check_multi(curl_multi_setopt(m, CURLMOPT_PIPELINING,
                                (long)CURLPIPE_MULTIPLEX),
              "curl_multi_setopt(CURLMOPT_PIPELINING)");
  check_multi(curl_multi_setopt(m, CURLMOPT_MAXCONNECTS,
                                shard_max_connections(c)),
              "curl_multi_setopt(CURLMOPT_MAXCONNECTS)");
  return sh;
}

/* The first shard with room, a new one if all are full; NULL if curl
 * cannot make one. */
static struct shard *shard_with_room(struct http_client *c) {
  for (int i = 0; i < c->nshards; i++)
    if (c->shards[i]->transfers < HTTP_SHARD_TRANSFERS) return c->shards[i];
  struct shard *sh = shard_new(c);
  if (!sh) return NULL;
  c->shards = xrealloc(c->shards, (size_t)(c->nshards + 1) * sizeof *c->shards);
  c->shards[c->nshards++] = sh;
  return sh;
}

static void arm_trim(struct http_client *c) {
  struct timeval period = {HTTP_IDLE_TRIM_S, 0};
  if (!evtimer_pending(c->trim_timer, NULL)) evtimer_add(c->trim_timer, &period);
}

/* Frees the idle handles that no request needed since the last trim (the
 * oldest ones; the pool is a stack). Runs only while handles are idle. */
static void on_trim(evutil_socket_t fd, short what, void *arg) {
  struct http_client *c = arg;
  int spare = c->idle_low < c->nidle ? c->idle_low : c->nidle;
  for (int i = 0; i < spare; i++) curl_easy_cleanup(c->idle[i]);
  memmove(c->idle, c->idle + spare, (size_t)(c->nidle - spare) * sizeof *c->idle);
  c->nidle -= spare;
  c->idle_low = c->nidle;
  if (c->nidle) arm_trim(c);
}

static CURL *take_easy(struct http_client *c) {
  if (!c->nidle) return curl_easy_init();
  CURL *easy = c->idle[--c->nidle];
  if (c->nidle < c->idle_low) c->idle_low = c->nidle;
  return easy;
}

/* curl reads these on every transfer unless a proxy is set explicitly;
 * the environment does not change while tghost runs. */
static bool proxy_in_environment(void) {
  static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                      "all_proxy", "ALL_PROXY", NULL};
  for (int i = 0; names[i]; i++) {
    const char *v = getenv(names[i]);
    if (v && *v) return true;
  }
  return false;
}

struct http_client *http_client_new(struct event_base *base,
                                    const struct http_client_config *cfg) {
  struct http_client *c = xcalloc(1, sizeof *c);
  c->base = base;
  c->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
  c->trim_timer = evtimer_new(base, on_trim, c);
  c->idle_cap = HTTP_MIN_IDLE_HANDLES;
  c->idle = xcalloc((size_t)c->idle_cap, sizeof *c->idle);
  c->no_proxy = !proxy_in_environment();
  qlist_init(&c->active);
  qlist_init(&c->completed);
  qlist_init(&c->watches);
  qlist_init(&c->notified);
  /* Trust a private CA (a local Bot API server behind TLS) the way
   * OpenSSL-based programs do; verification itself stays on. */
  const char *ca = getenv("SSL_CERT_FILE");
  if (ca && *ca) c->ca_file = xstrdup(ca);
  /* The first shard now, so that a libcurl that cannot work is found at
   * start-up. */
  if (!shard_with_room(c)) {
    http_client_free(c);
    return NULL;
  }
  http_client_set_max_connections(
      c, cfg && cfg->max_idle_connections > 0 ? cfg->max_idle_connections
                                              : HTTP_DEFAULT_MAX_CONNECTIONS);
  return c;
}

void http_client_set_max_connections(struct http_client *c, long n) {
  long keep = n > HTTP_DEFAULT_MAX_CONNECTIONS ? n
                                              : HTTP_DEFAULT_MAX_CONNECTIONS;
  c->max_connections = keep;
  for (int i = 0; i < c->nshards; i++)
    check_multi(curl_multi_setopt(c->shards[i]->multi, CURLMOPT_MAXCONNECTS,
                                  shard_max_connections(c)),
                "curl_multi_setopt(CURLMOPT_MAXCONNECTS)");
  if (keep > c->idle_cap) {
    c->idle = xrealloc(c->idle, (size_t)keep * sizeof *c->idle);
    c->idle_cap = (int)keep;
  }
}

void http_client_free(struct http_client *c) {
  if (!c) return;
  struct qnode *n;
  while ((n = qlist_front(&c->active)))
    http_request_cancel(qlist_entry(n, struct http_request, node));
  while ((n = qlist_front(&c->completed)))
    http_request_cancel(qlist_entry(n, struct http_request, node));
  for (int i = 0; i < c->nidle; i++) curl_easy_cleanup(c->idle[i]);
  free(c->idle);
  if (c->trim_timer) event_free(c->trim_timer);
  for (int i = 0; i < c->nshards; i++) shard_free(c->shards[i]);
  free(c->shards);
  while ((n = qlist_pop_front(&c->watches))) {
    struct sock_watch *w = qlist_entry(n, struct sock_watch, node);
    event_free(w->ev);
    free(w);
  }
  if (c->notify_event) event_free(c->notify_event);
  free(c->ca_file);
  free(c);
}

/* --- requests ---------------------------------------------------------- */

static struct http_request *request_new(struct http_client *c) {
  struct http_request *r = xcalloc(1, sizeof *r);
  r->client = c;
  r->timeout_ms = 60000;
  r->max_response = 64u << 20;
  r->recv_buffer = 16384;
  return r;
}

struct http_request *http_request_new(struct http_client *c, const char *url) {
  struct http_request *r = request_new(c);
  r->url = xstrdup(url);
  r->https = strncmp(url, "https://", 8) == 0;
  return r;
}

struct http_url *http_url_new(const char *url) {
  CURLU *u = curl_url();
  if (!u) return NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    curl_url_cleanup(u);
    return NULL;
  }
  struct http_url *p = xcalloc(1, sizeof *p);
  p->u = u;
  p->text = xstrdup(url);
  p->https = strncmp(url, "https://", 8) == 0;
  return p;
}

void http_url_free(struct http_url *p) {
  if (!p) return;
  curl_url_cleanup(p->u);
  memset(p->text, 0, strlen(p->text));   /* it may hold a token */
  free(p->text);
  free(p);
}

struct http_request *http_request_new_parsed(struct http_client *c,
                                             const struct http_url *u) {
  struct http_request *r = request_new(c);
  r->parsed = u;
  r->https = u->https;
  return r;
}

void http_request_set_method(struct http_request *r, const char *method) {
  free(r->method);
  r->method = xstrdup(method);
}

static struct curl_slist *append_header(struct curl_slist *list,
                                        const char *line) {
  struct curl_slist *l = curl_slist_append(list, line);
  if (!l) {
    fprintf(stderr, "tghost: out of memory\n");
    abort();
  }
  return l;
}

void http_request_use_headers(struct http_request *r,
                              const struct curl_slist *shared) {
  r->shared_headers = shared;
  r->expect_header_added = true;
}

void http_request_add_header(struct http_request *r, const char *line) {
  if (r->shared_headers) {
    for (const struct curl_slist *h = r->shared_headers; h; h = h->next)
      r->headers = append_header(r->headers, h->data);
    r->shared_headers = NULL;
  }
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
    r->easy = take_easy(r->client);
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
    r->easy = take_easy(c);
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
  if (r->parsed) {
    /* The CURLU is what curl connects to and asks for (it overrides
     * CURLOPT_URL: documented); the same URL as text spares curl printing
     * it back from the CURLU for every transfer (7.88 does, to have a
     * text URL, when none is set). */
    curl_easy_setopt(e, CURLOPT_URL, r->parsed->text);
    curl_easy_setopt(e, CURLOPT_CURLU, r->parsed->u);
  } else {
    curl_easy_setopt(e, CURLOPT_URL, r->url);
  }
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, r->recv_buffer);
  /* The body goes out through curl's upload buffer over HTTP/2 (64 KB by
   * default, allocated per easy handle): the smallest one does for JSON
   * bodies; file uploads keep the default for throughput. */
  curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE,
                   r->mime ? HTTP_UPLOAD_BUFFER : HTTP_SMALL_UPLOAD_BUFFER);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "tghost/" TGHOST_VERSION);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  /* HTTP/2 where TLS negotiates it (api.telegram.org), HTTP/1.1 otherwise.
   * Waiting for an existing connection to say whether it multiplexes keeps
   * a burst of calls on one connection instead of opening one each; plain
   * http:// never multiplexes, so there it would only delay. */
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (r->https) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  /* Recycle connections before servers drop them: an idle connection is
   * not reused after HTTP_MAX_IDLE_AGE_S (common keep-alive timeouts are
   * 60-75 s, and a request sent on a connection the server is closing
   * fails), and none is used for new requests after HTTP_MAX_LIFETIME_S. */
  curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)HTTP_MAX_IDLE_AGE_S);
  curl_easy_setopt(e, CURLOPT_MAXLIFETIME_CONN, (long)HTTP_MAX_LIFETIME_S);
  if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
  if (c->no_proxy) curl_easy_setopt(e, CURLOPT_PROXY, "");
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
  if (r->shared_headers)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->shared_headers);
  else if (r->headers)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  if (r->stream) stream_setopt(r);

  struct shard *sh = r->https ? c->shards[0] : shard_with_room(c);
  if (!sh) {
    snprintf(r->errbuf, sizeof r->errbuf, "cannot set up libcurl's multi "
             "interface");
    return -1;
  }
  CURLMcode mc = curl_multi_add_handle(sh->multi, e);
  if (mc != CURLM_OK) {
    snprintf(r->errbuf, sizeof r->errbuf, "curl_multi_add_handle: %s",
             curl_multi_strerror(mc));
    return -1;
  }
  sh->transfers++;
  r->shard = sh;
  r->state = REQ_ACTIVE;
  qlist_push_back(&c->active, &r->node);
  return 0;
}

static void release_easy(struct http_request *r) {
  struct http_client *c = r->client;
  if (!r->easy) return;
  if (c->nidle < c->idle_cap) {
    curl_easy_reset(r->easy);
    c->idle[c->nidle++] = r->easy;
    arm_trim(c);
  } else {
    curl_easy_cleanup(r->easy);
  }
  r->easy = NULL;
}

void http_request_cancel(struct http_request *r) {
  struct http_client *c = r->client;
  if (r->state == REQ_ACTIVE) {
    remove_handle(r);
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
  if (r->stream) stream_free(r);
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

/* --- streaming --------------------------------------------------------- */

/* Kept apart from the buffered path above: a request that is not streamed
 * never touches any of this. */
struct http_stream {
  struct http_request *req;
  size_t window;                       /* pause receiving past this */
  http_notify_fn notify;
  void *notify_ud;
  struct qnode notify_node;            /* in the client's notified */
  bool notify_queued;

  struct buf in;                       /* received, from in_off on unread */
  size_t in_off;
  bool recv_paused, send_paused;
  long status_line;                    /* of the last status line seen */
  bool head;                           /* the final response head is in */
  bool finished;

  FILE *body_file;                     /* the body, read by curl */
  long long body_size;                 /* -1: unknown (chunked) */
  bool body_streamed;                  /* the body comes from out */
  struct buf out;                      /* to send, from out_off on */
  size_t out_off;
  bool out_end;                        /* nothing will be added to out */
  bool wants_body;

  struct event *timer;                 /* first byte, then silence */
  long head_ms, idle_ms;
};

static void on_notify(evutil_socket_t fd, short what, void *arg) {
  struct http_client *c = arg;
  struct qnode *n;
  while ((n = qlist_pop_front(&c->notified))) {
    struct http_stream *s = qlist_entry(n, struct http_stream, notify_node);
    s->notify_queued = false;
    s->notify(s->req, s->notify_ud);   /* may free requests */
  }
}

/* Tells the owner from the loop: inside a curl callback (or inside
 * curl_easy_pause) only a flag is set and the event made active. */
static void queue_notify(struct http_request *r) {
  struct http_stream *s = r->stream;
  struct http_client *c = r->client;
  if (!s->notify || s->notify_queued) return;
  if (!c->notify_event) c->notify_event = event_new(c->base, -1, 0, on_notify, c);
  s->notify_queued = true;
  qlist_push_back(&c->notified, &s->notify_node);
  event_active(c->notify_event, EV_TIMEOUT, 0);
}

static void arm_timer(struct http_stream *s, long ms) {
  if (!s->timer) return;
  if (ms <= 0) {
    evtimer_del(s->timer);
    return;
  }
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(s->timer, &tv);
}

/* The transfer fails as timed out: the server sent no head, or went
 * silent. From the loop (a timer), so curl may be called. */
static void on_stream_timer(evutil_socket_t fd, short what, void *arg) {
  struct http_request *r = arg;
  struct http_stream *s = r->stream;
  struct http_client *c = r->client;
  if (r->state != REQ_ACTIVE) return;
  remove_handle(r);
  qlist_remove(&c->active, &r->node);
  stream_transfer_over(r);
  r->result = CURLE_OPERATION_TIMEDOUT;
  if (s->head)
    snprintf(r->errbuf, sizeof r->errbuf, "no data for %.3g s (idle timeout)",
             s->idle_ms / 1000.0);
  else
    snprintf(r->errbuf, sizeof r->errbuf, "no response within %.3g s "
             "(first byte timeout)", s->head_ms / 1000.0);
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  r->state = REQ_COMPLETED;
  qlist_push_back(&c->completed, &r->node);
  deliver_completed(c);
}

static size_t on_stream_header(char *data, size_t size, size_t n, void *ud) {
  struct http_request *r = ud;
  struct http_stream *s = r->stream;
  size_t len = size * n;
  if (len > 5 && memcmp(data, "HTTP/", 5) == 0) {
    const char *sp = memchr(data, ' ', len);
    s->status_line = sp ? strtol(sp + 1, NULL, 10) : 0;
  } else if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
    /* The end of a head: interim (1xx) heads are not the answer. */
    if (s->status_line >= 200 && !s->head) {
      s->head = true;
      r->status = s->status_line;
      arm_timer(s, s->idle_ms);
      queue_notify(r);
    }
  }
  if (!r->keep_headers) return len;
  return on_header(data, size, n, ud);
}

static size_t buffered(const struct http_stream *s) {
  return s->in.len - s->in_off;
}

static size_t on_stream_body(char *data, size_t size, size_t n, void *ud) {
  struct http_request *r = ud;
  struct http_stream *s = r->stream;
  size_t len = size * n;
  if (buffered(s) >= s->window) {
    /* curl keeps this piece and hands it over again once resumed. */
    s->recv_paused = true;
    arm_timer(s, 0);   /* the reader is slow, not the server */
    return CURL_WRITEFUNC_PAUSE;
  }
  if (!s->head) {      /* a body implies the head (HTTP/0.9-like peers) */
    s->head = true;
    r->status = s->status_line;
  }
  if (s->in_off == s->in.len) {
    buf_reset(&s->in);
    s->in_off = 0;
  }
  buf_append(&s->in, data, len);
  arm_timer(s, s->idle_ms);
  queue_notify(r);
  return len;
}

static size_t on_stream_read(char *dst, size_t size, size_t n, void *ud) {
  struct http_request *r = ud;
  struct http_stream *s = r->stream;
  size_t max = size * n;
  if (s->body_file) {
    size_t got = fread(dst, 1, max, s->body_file);
    if (got == 0 && ferror(s->body_file)) return CURL_READFUNC_ABORT;
    return got;
  }
  size_t avail = s->out.len - s->out_off;
  if (avail) {
    size_t take = avail < max ? avail : max;
    memcpy(dst, s->out.data + s->out_off, take);
    s->out_off += take;
    if (s->out_off == s->out.len) {
      buf_reset(&s->out);
      s->out_off = 0;
    }
    return take;
  }
  if (s->out_end) return 0;
  s->send_paused = true;
  s->wants_body = true;
  queue_notify(r);
  return CURL_READFUNC_PAUSE;
}

static struct http_stream *stream_of(struct http_request *r) {
  if (!r->stream) {
    r->stream = xcalloc(1, sizeof *r->stream);
    r->stream->req = r;
    r->stream->window = 65536;
    r->stream->body_size = -1;
  }
  return r->stream;
}

void http_request_set_stream(struct http_request *r, size_t window,
                             http_notify_fn notify, void *ud) {
  struct http_stream *s = stream_of(r);
  s->window = window ? window : 65536;
  s->notify = notify;
  s->notify_ud = ud;
}

void http_request_set_stream_timeouts(struct http_request *r, long head_ms,
                                      long idle_ms) {
  struct http_stream *s = stream_of(r);
  s->head_ms = head_ms;
  s->idle_ms = idle_ms;
}

static void body_headers(struct http_request *r, bool chunked) {
  if (!r->expect_header_added) {
    http_request_add_header(r, "Expect:");
    r->expect_header_added = true;
  }
  /* curl sends a body of unknown size chunked over HTTP/1.1 only when
   * asked (over HTTP/2 it drops the header and uses DATA frames). */
  if (chunked) http_request_add_header(r, "Transfer-Encoding: chunked");
}

void http_request_set_body_file(struct http_request *r, FILE *f,
                                long long size) {
  struct http_stream *s = stream_of(r);
  s->body_file = f;
  s->body_size = size;
  body_headers(r, size < 0);
}

void http_request_set_body_stream(struct http_request *r) {
  struct http_stream *s = stream_of(r);
  s->body_streamed = true;
  s->body_size = -1;
  body_headers(r, true);
}

static void stream_setopt(struct http_request *r) {
  struct http_stream *s = r->stream;
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_stream_body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_stream_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  if (s->body_file || s->body_streamed) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_stream_read);
    curl_easy_setopt(e, CURLOPT_READDATA, r);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_size);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, HTTP_UPLOAD_BUFFER);
  }
  if (!s->timer && (s->head_ms > 0 || s->idle_ms > 0))
    s->timer = evtimer_new(r->client->base, on_stream_timer, r);
  arm_timer(s, s->head_ms);
}

static void stream_transfer_over(struct http_request *r) {
  struct http_stream *s = r->stream;
  s->finished = true;
  s->wants_body = false;
  arm_timer(s, 0);
}

static void stream_free(struct http_request *r) {
  struct http_stream *s = r->stream;
  if (s->notify_queued) qlist_remove(&r->client->notified, &s->notify_node);
  if (s->timer) event_free(s->timer);
  buf_free(&s->in);
  buf_free(&s->out);
  free(s);
  r->stream = NULL;
}

/* Resumes what is paused and may go on; curl may call the stream's
 * callbacks before this returns (never from inside one of them: callers
 * are the stream's reader and writer, from the loop). */
static void stream_unpause(struct http_request *r) {
  struct http_stream *s = r->stream;
  if (r->state != REQ_ACTIVE) return;
  int mask = (s->recv_paused ? CURLPAUSE_RECV : 0) |
             (s->send_paused ? CURLPAUSE_SEND : 0);
  CURLcode rc = curl_easy_pause(r->easy, mask);
  if (rc != CURLE_OK)
    log_error("curl_easy_pause failed: %s", curl_easy_strerror(rc));
}

bool http_stream_has_head(const struct http_request *r) {
  return r->stream && r->stream->head;
}

long http_stream_status(const struct http_request *r) {
  return r->stream ? r->stream->status_line : 0;
}

size_t http_stream_peek(const struct http_request *r, const char **data) {
  const struct http_stream *s = r->stream;
  *data = s->in.data ? s->in.data + s->in_off : "";
  return buffered(s);
}

void http_stream_consume(struct http_request *r, size_t n) {
  struct http_stream *s = r->stream;
  if (n > buffered(s)) n = buffered(s);
  s->in_off += n;
  if (s->in_off == s->in.len) {
    buf_reset(&s->in);
    s->in_off = 0;
    /* A burst's buffer is not kept by a stream that may idle for long. */
    if (s->in.cap > 4 * s->window) buf_free(&s->in);
  } else if (s->in_off > s->in.len / 2) {
    memmove(s->in.data, s->in.data + s->in_off, s->in.len - s->in_off);
    s->in.len -= s->in_off;
    s->in.data[s->in.len] = '\0';
    s->in_off = 0;
  }
  if (s->recv_paused && buffered(s) < s->window / 2) {
    s->recv_paused = false;
    arm_timer(s, s->idle_ms);
    stream_unpause(r);
  }
}

bool http_stream_finished(const struct http_request *r) {
  return r->stream && r->stream->finished;
}

bool http_stream_wants_body(const struct http_request *r) {
  return r->stream && r->stream->wants_body;
}

void http_stream_write_body(struct http_request *r, const char *data,
                            size_t len, bool end) {
  struct http_stream *s = r->stream;
  if (s->out_end) return;
  buf_append(&s->out, data, len);
  if (end) s->out_end = true;
  s->wants_body = false;
  if (s->send_paused) {
    s->send_paused = false;
    stream_unpause(r);
  }
}
