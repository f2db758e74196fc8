#include "net/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/netaddr.h"
#include "base/qlist.h"

/* Where a connection is in its request's life (see httpd.h's steps). */
enum phase {
  PH_IDLE,       /* waiting for a request: none of its bytes yet */
  PH_HEAD,       /* reading a head */
  PH_BODY,       /* reading a taken request's body */
  PH_HANDLER,    /* the request is the server's; nothing is read */
  PH_WRITING,    /* its answer is being written */
  PH_DISCARD,    /* dropping a refused request's short body */
  PH_LINGER,     /* answered and closing: dropping what the client sends */
  PH_COUNT
};

/* Which connections go first when one must be closed to make room. */
static const enum phase evictable[] = {PH_LINGER, PH_DISCARD, PH_IDLE,
                                       PH_HEAD};

/* At most this many connections are closed per failed accept(). */
#define ACCEPT_ERROR_CLOSES 64
/* Pending connections wait in the kernel's queue, up to this many (or
 * net.core.somaxconn): a burst larger than the queue has its SYNs
 * dropped, and every client, Telegram too, waits a second to retry. */
#define LISTEN_BACKLOG 4096
/* A refusal keeps the connection only while this much is still unsent to
 * it: a client that sends and never reads cannot grow the buffer. */
#define MAX_UNSENT_REFUSALS 4096
#define SWEEP_MS 1000

struct conn {
  struct qnode node;             /* in its server's phases[phase] */
  struct httpd *s;
  struct bufferevent *bev;
  int fd;
  enum phase phase;
  uint64_t since_ms;             /* when the phase began */
  bool served;                   /* a request came before: idle = kept */
  bool close_after;              /* the answer ends the connection */
  bool shut;                     /* LINGER: our side has said its last */
  struct httphead_scan scan;     /* HEAD */
  int64_t left;                  /* BODY: bytes to read; DISCARD: to drop */
  struct httpd_req *req;         /* BODY (ours), HANDLER (the server's) */
  char peer[INET6_ADDRSTRLEN];
};

struct httpd_req {
  struct conn *conn;             /* NULL once the connection is gone */
  char *head_text;               /* head's strings point into it */
  struct httphead head;
  char *body;
  size_t body_len;
  struct buf headers;            /* the answer's extra header lines */
  char peer[INET6_ADDRSTRLEN];
};

/* A log line at most every HTTPD_LOG_EVERY_MS, counting the events
 * between. */
struct rate_log {
  uint64_t last_ms;
  size_t count;
};

struct httpd {
  struct event_base *base;
  struct evconnlistener *listener;
  char name[24];
  struct httpd_limits lim;
  struct httpd_callbacks cb;
  void *arg;
  struct qlist phases[PH_COUNT];
  size_t conns;
  struct event *sweep;           /* deadlines, once a second */
  struct event *resume;          /* accepts again after a pause */
  struct rate_log evictions, over_limit, accept_errors;
};

/* --- small helpers -------------------------------------------------------- */

static bool rate_log_due(struct rate_log *r, size_t *count) {
  uint64_t now = clock_now_ms();
  r->count++;
  if (r->last_ms && now - r->last_ms < HTTPD_LOG_EVERY_MS) return false;
  *count = r->count;
  r->count = 0;
  r->last_ms = now;
  return true;
}

static const char *reason_phrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

static void note_connections(struct httpd *s) {
  metric_set(METRIC_HTTP_CONNECTIONS, (double)s->conns, s->name, NULL);
}

static void enter(struct conn *c, enum phase p) {
  struct httpd *s = c->s;
  if (qnode_linked(&c->node)) qlist_remove(&s->phases[c->phase], &c->node);
  c->phase = p;
  c->since_ms = clock_now_ms();
  qlist_push_back(&s->phases[p], &c->node);
}

static void req_free(struct httpd_req *r) {
  free(r->head_text);
  free(r->body);
  buf_free(&r->headers);
  free(r);
}

/* Closes a connection (reason: why tghost closed it, for the metric; NULL
 * when the client ended it or nothing went wrong). A request the server
 * holds is left to it, without a connection. */
static void conn_close(struct conn *c, const char *reason) {
  struct httpd *s = c->s;
  if (reason) metric_inc(METRIC_HTTP_CLOSED, s->name, reason);
  if (c->req) {
    if (c->phase == PH_BODY) req_free(c->req);
    else c->req->conn = NULL;
  }
  qlist_remove(&s->phases[c->phase], &c->node);
  bufferevent_free(c->bev);
  free(c);
  s->conns--;
  note_connections(s);
}

static struct conn *oldest_evictable(struct httpd *s) {
  for (size_t i = 0; i < sizeof evictable / sizeof *evictable; i++) {
    struct qnode *n = qlist_front(&s->phases[evictable[i]]);
    if (n) return qlist_entry(n, struct conn, node);
  }
  return NULL;
}

static void http_date(char *out, size_t n) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void write_answer(struct conn *c, int code, const char *reason,
                         const char *content_type, const char *headers,
                         const char *body, size_t len, bool with_body) {
  char date[64];
  http_date(date, sizeof date);
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n%s%s\r\n", code, reason, date,
                      content_type ? content_type : "text/plain; charset=utf-8",
                      len, headers ? headers : "",
                      c->close_after ? "Connection: close\r\n" : "");
  if (with_body && len) evbuffer_add(out, body, len);
}

/* Stops reading requests: what the client still sends is dropped, and
 * our side is shut once the answer has gone out (on_write). */
static void start_linger(struct conn *c) {
  enter(c, PH_LINGER);
  struct evbuffer *in = bufferevent_get_input(c->bev);
  evbuffer_drain(in, evbuffer_get_length(in));
  bufferevent_enable(c->bev, EV_READ);
  if (!c->shut && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
    shutdown(c->fd, SHUT_WR);
    c->shut = true;
  }
}

/* --- reading requests ------------------------------------------------------ */

/* Answers a request that is not taken (h: its head, NULL when it could
 * not be read); a short body is dropped, or the connection closes. */
static void refuse(struct conn *c, const struct httphead *h,
                   const struct httpd_refusal *no) {
  struct httpd *s = c->s;
  bool keep = h && h->keep_alive && !h->expect_continue && !h->chunked &&
              h->content_length <= (int64_t)HTTPD_DISCARD_MAX &&
              evbuffer_get_length(bufferevent_get_output(c->bev)) <
                  MAX_UNSENT_REFUSALS;
  c->close_after = !keep;
  const char *text = no->text ? no->text : "";
  write_answer(c, no->code, no->reason ? no->reason : reason_phrase(no->code),
               NULL, no->headers, text, strlen(text),
               !h || h->method != HTTPHEAD_HEAD);
  if (s->cb.refused) s->cb.refused(no->code, s->arg);
  c->served = true;
  if (!keep) {
    start_linger(c);
    return;
  }
  c->left = h->content_length > 0 ? h->content_length : 0;
  enter(c, c->left ? PH_DISCARD : PH_IDLE);
}

/* Scans the bytes of in not scanned yet for the end of the head. */
static void scan_head(struct conn *c, struct evbuffer *in) {
  size_t max = c->s->lim.max_head_bytes;
  while (!c->scan.done && c->scan.size < evbuffer_get_length(in) &&
         c->scan.size <= max) {
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(in, &at, c->scan.size, EVBUFFER_PTR_SET) != 0)
      return;
    struct evbuffer_iovec v[8];
    int n = evbuffer_peek(in, -1, &at, v, 8);
    if (n > 8) n = 8;
    for (int i = 0; i < n && !c->scan.done; i++)
      httphead_scan(&c->scan, v[i].iov_base, v[i].iov_len);
  }
}

/* HEAD: once the whole head is in, refuses the request or takes it.
 * Returns false while the head is incomplete. */
static bool read_head(struct conn *c, struct evbuffer *in) {
  struct httpd *s = c->s;
  scan_head(c, in);
  if (!c->scan.done || c->scan.size > s->lim.max_head_bytes) {
    if (c->scan.size <= s->lim.max_head_bytes) return false;
    struct httpd_refusal no = {431, NULL, "the request's head is too long\n",
                               NULL};
    refuse(c, NULL, &no);
    return true;
  }
  size_t head_len = c->scan.size;
  struct httpd_req *r = xcalloc(1, sizeof *r);
  r->head_text = xmalloc(head_len + 1);
  evbuffer_remove(in, r->head_text, head_len);
  r->head_text[head_len] = '\0';
  memcpy(r->peer, c->peer, sizeof r->peer);
  const char *why = NULL;
  int code = httphead_parse(&r->head, r->head_text, head_len, &why);
  if (code) {
    char text[160];
    snprintf(text, sizeof text, "%s\n", why);
    struct httpd_refusal no = {code, NULL, text, NULL};
    refuse(c, NULL, &no);
    req_free(r);
    return true;
  }
  const struct httphead *h = &r->head;
  struct httpd_refusal no = {0};
  struct httpd_head view = {h, c->peer};
  bool taken = false;
  if (s->cb.check && !s->cb.check(&view, &no, s->arg)) {
    /* refused as check says */
  } else if (h->chunked) {
    no = (struct httpd_refusal){411, NULL, "a body needs a Content-Length "
                                "here (chunked bodies are not read)\n", NULL};
  } else if (h->content_length > (int64_t)s->lim.max_body_bytes) {
    no = (struct httpd_refusal){413, NULL, "the body is too large\n", NULL};
  } else {
    taken = true;
  }
  if (!taken) {
    refuse(c, h, &no);
    req_free(r);
    return true;
  }
  c->req = r;
  r->conn = c;
  c->served = true;
  c->close_after = !h->keep_alive;
  c->left = h->content_length > 0 ? h->content_length : 0;
  r->body = xmalloc((size_t)c->left + 1);
  enter(c, PH_BODY);
  if (h->expect_continue && c->left > 0 && evbuffer_get_length(in) == 0)
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 100 Continue\r\n\r\n");
  return true;
}

/* Reads what the connection's phase wants of its input. */
static void conn_process(struct conn *c) {
  struct evbuffer *in = bufferevent_get_input(c->bev);
  for (;;) {
    size_t avail = evbuffer_get_length(in);
    switch (c->phase) {
      case PH_HANDLER:
      case PH_WRITING:
      case PH_COUNT:
        return;
      case PH_LINGER:
        evbuffer_drain(in, avail);
        return;
      case PH_DISCARD: {
        size_t n = avail < (uint64_t)c->left ? avail : (size_t)c->left;
        evbuffer_drain(in, n);
        c->left -= (int64_t)n;
        if (c->left > 0) return;
        enter(c, PH_IDLE);
        continue;
      }
      case PH_BODY: {
        struct httpd_req *r = c->req;
        size_t n = avail < (uint64_t)c->left ? avail : (size_t)c->left;
        evbuffer_remove(in, r->body + r->body_len, n);
        r->body_len += n;
        c->left -= (int64_t)n;
        if (c->left > 0) return;
        r->body[r->body_len] = '\0';
        enter(c, PH_HANDLER);
        /* The next request waits in the kernel until this one is answered. */
        bufferevent_disable(c->bev, EV_READ);
        c->s->cb.request(r, c->s->arg);
        return;   /* the callee may have closed the connection */
      }
      case PH_IDLE:
        if (!avail) return;
        c->scan = (struct httphead_scan){0};
        enter(c, PH_HEAD);
        /* fall through */
      case PH_HEAD:
        if (!read_head(c, in)) return;
        continue;
    }
  }
}

static void on_read(struct bufferevent *bev, void *arg) {
  (void)bev;
  conn_process(arg);
}

/* The output has gone out. */
static void on_write(struct bufferevent *bev, void *arg) {
  (void)bev;
  struct conn *c = arg;
  if (c->phase == PH_LINGER && !c->shut) {
    shutdown(c->fd, SHUT_WR);
    c->shut = true;
    return;
  }
  if (c->phase != PH_WRITING) return;   /* a 100 Continue, or a refusal */
  if (c->close_after) {
    start_linger(c);
    return;
  }
  enter(c, PH_IDLE);
  bufferevent_enable(c->bev, EV_READ);
  conn_process(c);   /* a pipelined request may be waiting */
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  struct conn *c = arg;
  if (what & BEV_EVENT_TIMEOUT) {
    conn_close(c, "write_timeout");
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_close(c, NULL);
}

/* --- deadlines -------------------------------------------------------------- */

static void sweep_phase(struct httpd *s, enum phase p, uint64_t now) {
  struct qlist *l = &s->phases[p];
  for (struct qnode *n = l->head.next, *next; n != &l->head; n = next) {
    next = n->next;
    struct conn *c = qlist_entry(n, struct conn, node);
    unsigned limit_ms;
    const char *reason;
    switch (p) {
      case PH_IDLE:
        limit_ms = c->served ? s->lim.idle_ms : s->lim.head_ms;
        reason = c->served ? "idle_timeout" : "head_timeout";
        break;
      case PH_HEAD:
        limit_ms = s->lim.head_ms;
        reason = "head_timeout";
        break;
      case PH_BODY:
      case PH_DISCARD:
        limit_ms = s->lim.body_ms;
        reason = "body_timeout";
        break;
      case PH_LINGER:
        limit_ms = HTTPD_LINGER_MS;
        reason = NULL;
        break;
      default:
        return;
    }
    if (now - c->since_ms >= limit_ms) conn_close(c, reason);
  }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct httpd *s = arg;
  uint64_t now = clock_now_ms();
  static const enum phase timed[] = {PH_IDLE, PH_HEAD, PH_BODY, PH_DISCARD,
                                     PH_LINGER};
  for (size_t i = 0; i < sizeof timed / sizeof *timed; i++)
    sweep_phase(s, timed[i], now);
}

/* --- accepting connections ---------------------------------------------- */

/* Makes room for one more connection: false when every connection is busy
 * with a request. */
static bool make_room(struct httpd *s) {
  size_t n;
  if (s->conns < s->lim.max_connections) return true;
  struct conn *victim = oldest_evictable(s);
  if (!victim) {
    metric_inc(METRIC_HTTP_CLOSED, s->name, "over_limit");
    if (rate_log_due(&s->over_limit, &n))
      log_warn("%s: %zu connection(s) closed at once: all %zu allowed "
               "(TGHOST_HTTP_MAX_CONNECTIONS) are busy with requests",
               s->name, n, s->lim.max_connections);
    return false;
  }
  conn_close(victim, "evicted");
  if (rate_log_due(&s->evictions, &n))
    log_warn("%s: %zu connection(s) closed to make room: %zu are allowed "
             "(TGHOST_HTTP_MAX_CONNECTIONS), the one idle the longest goes "
             "first", s->name, n, s->lim.max_connections);
  return true;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
  (void)l;
  (void)salen;
  struct httpd *s = arg;
  if (!make_room(s)) {
    close(fd);
    return;
  }
  struct bufferevent *bev =
      bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = xcalloc(1, sizeof *c);
  c->s = s;
  c->bev = bev;
  c->fd = fd;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->peer,
              sizeof c->peer);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
              sizeof c->peer);
  else
    strcpy(c->peer, "?");
  enter(c, PH_IDLE);
  s->conns++;
  note_connections(s);
  struct timeval wt = {s->lim.write_ms / 1000, (s->lim.write_ms % 1000) * 1000};
  bufferevent_set_timeouts(bev, NULL, &wt);
  bufferevent_setcb(bev, on_read, on_write, on_event, c);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct httpd *s = arg;
  evconnlistener_enable(s->listener);
}

/* accept() failed for want of descriptors or memory: without a pause the
 * listener, still readable, would spin and log without end. */
static void on_accept_error(struct evconnlistener *l, void *arg) {
  struct httpd *s = arg;
  int err = EVUTIL_SOCKET_ERROR();
  size_t closed = 0, n;
  struct conn *c;
  while (closed < ACCEPT_ERROR_CLOSES && (c = oldest_evictable(s))) {
    conn_close(c, "accept_error");
    closed++;
  }
  /* The descriptors closed are free once the loop has finished closing
   * them (libevent finalizes bufferevents after their callbacks). */
  evconnlistener_disable(l);
  struct timeval tv = {0, closed ? 1000 : HTTPD_ACCEPT_PAUSE_MS * 1000};
  evtimer_add(s->resume, &tv);
  if (rate_log_due(&s->accept_errors, &n))
    log_warn("%s: cannot accept connections (%s; %zu time(s)): closing the "
             "connections idle the longest to free descriptors, pausing "
             "while none is idle (%zu open)", s->name,
             evutil_socket_error_to_string(err), n, s->conns);
}

static size_t connection_limit(size_t given) {
  if (given) return given;
  const char *env = getenv("TGHOST_HTTP_MAX_CONNECTIONS");
  if (env && *env) {
    char *end;
    unsigned long long n = strtoull(env, &end, 10);
    if (!*end && n >= 1 && n <= 1000000) return (size_t)n;
    log_warn("TGHOST_HTTP_MAX_CONNECTIONS=%s is not a number from 1 to "
             "1000000; using %d", env, HTTPD_MAX_CONNECTIONS);
  }
  size_t limit = HTTPD_MAX_CONNECTIONS;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur / 4 < limit)
    limit = rl.rlim_cur / 4 > 8 ? (size_t)(rl.rlim_cur / 4) : 8;
  return limit;
}

struct httpd *httpd_new(struct event_base *base, const char *addr,
                        const char *name, const char *option,
                        const struct httpd_limits *limits,
                        const struct httpd_callbacks *cb, void *arg,
                        char *bound, size_t bound_len, struct buf *err) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (netaddr_parse(addr, option, &ss, &len, err) != 0) return NULL;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    buf_printf(err, "%s %s: cannot create a socket: %s", option, addr,
               strerror(errno));
    return NULL;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    buf_printf(err, "%s %s: cannot listen: %s", option, addr, strerror(errno));
    close(fd);
    return NULL;
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  netaddr_format((struct sockaddr *)&ss, bound, bound_len);
  struct httpd *s = xcalloc(1, sizeof *s);
  s->base = base;
  snprintf(s->name, sizeof s->name, "%s", name);
  s->lim = *limits;
  s->lim.max_connections = connection_limit(limits->max_connections);
  s->cb = *cb;
  s->arg = arg;
  for (int i = 0; i < PH_COUNT; i++) qlist_init(&s->phases[i]);
  s->listener = evconnlistener_new(base, on_accept, s,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                   0, fd);
  if (!s->listener) {
    buf_printf(err, "%s %s: cannot start the HTTP server", option, addr);
    close(fd);
    free(s);
    return NULL;
  }
  evconnlistener_set_error_cb(s->listener, on_accept_error);
  s->resume = evtimer_new(base, on_resume, s);
  s->sweep = event_new(base, -1, EV_PERSIST, on_sweep, s);
  struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
  evtimer_add(s->sweep, &tv);
  note_connections(s);
  return s;
}

void httpd_free(struct httpd *s) {
  if (!s) return;
  for (int i = 0; i < PH_COUNT; i++) {
    struct qnode *n;
    while ((n = qlist_front(&s->phases[i])))
      conn_close(qlist_entry(n, struct conn, node), NULL);
  }
  evconnlistener_free(s->listener);
  event_free(s->resume);
  event_free(s->sweep);
  free(s);
}

/* --- a request taken ---------------------------------------------------------- */

enum httphead_method httpd_req_method(const struct httpd_req *r) {
  return r->head.method;
}

const char *httpd_req_target(const struct httpd_req *r, size_t *len) {
  *len = r->head.target_len;
  return r->head.target;
}

const char *httpd_req_header(const struct httpd_req *r, const char *name,
                             size_t *len) {
  return httphead_field(&r->head, name, len);
}

const char *httpd_req_body(const struct httpd_req *r, size_t *len) {
  if (len) *len = r->body_len;
  return r->body;
}

char *httpd_req_take_body(struct httpd_req *r, size_t *len) {
  char *body = r->body;
  if (len) *len = r->body_len;
  r->body = NULL;
  r->body_len = 0;
  return body;
}

const char *httpd_req_peer(const struct httpd_req *r) { return r->peer; }

bool httpd_req_client_gone(const struct httpd_req *r) {
  if (!r->conn) return true;
  /* Nothing is read while a request is held, so a byte waiting is its
   * client's next request, and an end of stream means it has gone. */
  char byte;
  ssize_t n = recv(r->conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                    errno != EINTR);
}

void httpd_add_header(struct httpd_req *r, const char *name,
                      const char *value) {
  buf_printf(&r->headers, "%s: %s\r\n", name, value);
}

void httpd_reply(struct httpd_req *r, int code, const char *reason,
                 const char *content_type, const char *body, size_t len) {
  struct conn *c = r->conn;
  if (c) {
    c->req = NULL;
    write_answer(c, code, reason ? reason : reason_phrase(code), content_type,
                 r->headers.data, body, len, r->head.method != HTTPHEAD_HEAD);
    enter(c, PH_WRITING);
  }
  req_free(r);
}

void httpd_req_drop(struct httpd_req *r) {
  struct conn *c = r->conn;
  if (c) {
    c->req = NULL;
    conn_close(c, NULL);
  }
  req_free(r);
}
