#include "store/redisstore.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "base/clock.h"
#include "base/log.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000

enum redis_state {
  RS_IDLE,          /* no connection and no attempt under way */
  RS_RESOLVING,     /* looking up the host name */
  RS_CONNECTING,    /* a context exists, not yet connected */
  RS_UP,
};

struct redisstore {
  struct event_base *base;
  char *name;               /* the URL without the password */
  char *host;
  int port;
  char *socket_path;        /* unix:// URLs: host is NULL */
  char *user, *password;    /* NULL when absent */
  long db;

  enum redis_state state;
  redisAsyncContext *ac;
  /* Down: the last attempt failed or the connection was lost. New requests
   * are refused until a connection is up again. */
  bool down;
  char *down_reason;
  bool freeing;
  struct kvreq *waiting, *waiting_tail;   /* before the first attempt ends */
  struct event *retry_timer;
  long backoff_ms;
  struct evdns_base *dns;
  struct evdns_getaddrinfo_request *dns_req;
  /* A Redis that stops answering (stopped, swapping, a network that drops
   * packets without a reset) would hold every session call forever:
   * commands sent on the connection and not answered yet, and when the
   * last answer (or the first send) came. Answers come in order, so no
   * answer for REDIS_REPLY_TIMEOUT_MS with commands waiting means stalled. */
  int unanswered;
  uint64_t last_progress_ms;
  struct event *stall_timer;
  const char *dropped_because;   /* while a stalled connection is dropped */
};

static void start_connect(struct redisstore *s);

/* The context is gone (or going): nothing sent on it is waited for. */
static void forget_context(struct redisstore *s) {
  s->ac = NULL;
  s->unanswered = 0;
}
static void sent_one(struct redisstore *s);
static void answered_one(struct redisstore *s, const redisAsyncContext *ac);

const char *redisstore_name(const struct redisstore *s) { return s->name; }

/* --- URL ----------------------------------------------------------------- */

/* [[user]:password@] before the host or the socket path: moves *p past
 * it. */
static void parse_credentials(struct redisstore *s, const char **p) {
  const char *at = strrchr(*p, '@');
  const char *slash_before_at = at ? memchr(*p, '/', (size_t)(at - *p)) : NULL;
  if (!at || slash_before_at) return;
  const char *colon = memchr(*p, ':', (size_t)(at - *p));
  if (colon) {
    if (colon > *p) s->user = xstrndup(*p, (size_t)(colon - *p));
    s->password = xstrndup(colon + 1, (size_t)(at - colon - 1));
  } else {
    s->password = xstrndup(*p, (size_t)(at - *p));
  }
  *p = at + 1;
}

/* unix://[[user]:password@]/path/to/redis.sock[?db=N], as redis-py and
 * others write it. */
static int parse_unix_url(struct redisstore *s, const char *url,
                          struct buf *err) {
  const char *p = url + 7;
  parse_credentials(s, &p);
  size_t len = strcspn(p, "?");
  if (p[0] != '/' || len < 2) {
    buf_printf(err, "expected an absolute socket path: "
                    "unix://[:password@]/path/to/redis.sock[?db=N]");
    return -1;
  }
  struct sockaddr_un probe;
  if (len >= sizeof probe.sun_path) {
    buf_printf(err, "the socket path is longer than %zu bytes",
               sizeof probe.sun_path - 1);
    return -1;
  }
  s->socket_path = xstrndup(p, len);
  p += len;
  if (*p == '?') {
    char *end = NULL;
    if (strncmp(p, "?db=", 4) == 0) s->db = strtol(p + 4, &end, 10);
    if (!end || end == p + 4 || *end || s->db < 0) {
      buf_printf(err, "expected ?db=N after the socket path");
      return -1;
    }
  }
  struct buf name = BUF_INIT;
  buf_printf(&name, "unix://%s", s->socket_path);
  if (s->db) buf_printf(&name, "?db=%ld", s->db);
  s->name = buf_steal(&name, NULL);
  return 0;
}

static int parse_url(struct redisstore *s, const char *url, struct buf *err) {
  if (strncasecmp(url, "unix://", 7) == 0) return parse_unix_url(s, url, err);
  if (strncasecmp(url, "redis://", 8) != 0) {
    buf_printf(err, "expected a URL redis://[:password@]host[:port][/db] or "
                    "unix://[:password@]/path/to/redis.sock[?db=N]");
    return -1;
  }
  const char *p = url + 8;
  parse_credentials(s, &p);
  const char *host_end;
  if (*p == '[') {
    host_end = strchr(p, ']');
    if (!host_end) {
      buf_printf(err, "unclosed [ in the host");
      return -1;
    }
    s->host = xstrndup(p + 1, (size_t)(host_end - p - 1));
    host_end++;
  } else {
    host_end = p + strcspn(p, ":/");
    s->host = xstrndup(p, (size_t)(host_end - p));
  }
  if (!s->host[0]) {
    buf_printf(err, "no host");
    return -1;
  }
  s->port = 6379;
  p = host_end;
  if (*p == ':') {
    char *end;
    long port = strtol(p + 1, &end, 10);
    if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
      buf_printf(err, "bad port");
      return -1;
    }
    s->port = (int)port;
    p = end;
  }
  if (*p == '/' && p[1]) {
    char *end;
    s->db = strtol(p + 1, &end, 10);
    if (end == p + 1 || *end || s->db < 0) {
      buf_printf(err, "bad database number after /");
      return -1;
    }
  } else if (*p && strcmp(p, "/") != 0) {
    buf_printf(err, "unexpected text after the host");
    return -1;
  }
  struct buf name = BUF_INIT;
  bool v6 = strchr(s->host, ':') != NULL;
  buf_printf(&name, "redis://%s%s%s:%d", v6 ? "[" : "", s->host, v6 ? "]" : "",
             s->port);
  if (s->db) buf_printf(&name, "/%ld", s->db);
  s->name = buf_steal(&name, NULL);
  return 0;
}

/* --- connection ---------------------------------------------------------- */

static void set_down(struct redisstore *s, const char *reason) {
  if (!s->down)
    log_warn("redis storage %s: %s; reconnecting in the background", s->name,
             reason);
  s->down = true;
  free(s->down_reason);
  s->down_reason = xstrdup(reason);
}

static void schedule_retry(struct redisstore *s) {
  s->state = RS_IDLE;
  if (s->freeing) return;
  if (s->backoff_ms == 0) s->backoff_ms = BACKOFF_FIRST_MS;
  struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
  evtimer_add(s->retry_timer, &tv);
  s->backoff_ms *= 2;
  if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  start_connect(arg);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct kvreq *r = privdata;
  struct redisstore *s = ac->data;
  redisReply *rep = reply;
  if (s->freeing) {
    kvreq_free(r);
    return;
  }
  if (rep) answered_one(s, ac);
  if (!rep && s->dropped_because) {
    kvreq_set_error(r, "redis storage %s: %s", s->name, s->dropped_because);
  } else if (!rep) {
    kvreq_set_error(r, "redis storage %s: connection lost (%s)", s->name,
                    ac->err ? ac->errstr : "closed");
  } else if (rep->type == REDIS_REPLY_ERROR) {
    kvreq_set_error(r, "redis storage %s: %s", s->name, rep->str);
  } else if (r->op == KV_GET) {
    free(r->value);
    r->value = NULL;
    r->value_len = 0;
    if (rep->type == REDIS_REPLY_STRING) {
      r->value = xmalloc(rep->len + 1);
      memcpy(r->value, rep->str, rep->len);
      r->value[rep->len] = '\0';
      r->value_len = rep->len;
    }
  }
  kvreq_complete(r);
}

static int send_command(struct redisstore *s, struct kvreq *r) {
  struct buf key = BUF_INIT;
  buf_append_str(&key, r->ns);
  buf_append(&key, r->key, r->key_len);
  const char *argv[5];
  size_t lens[5];
  int argc = 0;
  char ttl[32];
  switch (r->op) {
    case KV_GET:
      argv[argc] = "GET", lens[argc++] = 3;
      argv[argc] = key.data, lens[argc++] = key.len;
      break;
    case KV_SET:
      argv[argc] = "SET", lens[argc++] = 3;
      argv[argc] = key.data, lens[argc++] = key.len;
      argv[argc] = r->value ? r->value : "", lens[argc++] = r->value_len;
      if (r->ttl_ms > 0) {
        snprintf(ttl, sizeof ttl, "%lld", r->ttl_ms);
        argv[argc] = "PX", lens[argc++] = 2;
        argv[argc] = ttl, lens[argc++] = strlen(ttl);
      }
      break;
    case KV_DELETE:
      argv[argc] = "DEL", lens[argc++] = 3;
      argv[argc] = key.data, lens[argc++] = key.len;
      break;
  }
  int rc = redisAsyncCommandArgv(s->ac, on_reply, r, argc, argv, lens);
  buf_free(&key);
  if (rc != REDIS_OK) {
    kvreq_set_error(r, "redis storage %s: %s", s->name,
                    s->ac->err ? s->ac->errstr : "cannot send the command");
    return -1;
  }
  sent_one(s);
  return 0;
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct redisstore *s = ac->data;
  redisReply *rep = reply;
  if (!rep || s->freeing) return;
  answered_one(s, ac);
  if (rep->type == REDIS_REPLY_ERROR)
    log_error("redis storage %s: %s failed: %s", s->name,
              (const char *)privdata, rep->str);
}

/* The connection counts as up once Redis answers on it, not when TCP
 * connects: a stopped Redis still completes the handshake. */
static void on_ping_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct redisstore *s = ac->data;
  if (!reply || s->freeing || s->ac != ac) return;
  answered_one(s, ac);
  s->backoff_ms = 0;
  if (s->down) log_info("redis storage %s: connected again", s->name);
  s->down = false;
  free(s->down_reason);
  s->down_reason = NULL;
}

/* Sends a set-up command on the new context, counted like any other. */
static void send_setup(struct redisstore *s, redisCallbackFn *done,
                       const char *what, int argc, const char **argv) {
  if (redisAsyncCommandArgv(s->ac, done, (void *)what, argc, argv, NULL) ==
      REDIS_OK)
    sent_one(s);
}

/* The waiting requests go out on the new context, or fail if it could not
 * even be created. */
static void flush_waiting(struct redisstore *s) {
  struct kvreq *r = s->waiting;
  s->waiting = s->waiting_tail = NULL;
  while (r) {
    struct kvreq *next = r->next;
    r->next = NULL;
    if (!s->ac) {
      kvreq_set_error(r, "redis storage %s: %s", s->name,
                      s->down_reason ? s->down_reason : "not connected");
      kvreq_complete(r);
    } else if (send_command(s, r) != 0) {
      kvreq_complete(r);
    }
    r = next;
  }
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct redisstore *s = ac->data;
  if (s->ac != ac) return;
  if (status != REDIS_OK) {
    /* hiredis frees the context after this returns; the commands sent on it
     * get a NULL reply. */
    forget_context(s);
    char reason[200];
    snprintf(reason, sizeof reason, "cannot connect (%s)",
             ac->errstr[0] ? ac->errstr : "no reason given");
    set_down(s, reason);
    schedule_retry(s);
    return;
  }
  s->state = RS_UP;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct redisstore *s = ac->data;
  if (s->ac != ac) return;
  forget_context(s);
  if (s->freeing) return;
  char reason[200];
  snprintf(reason, sizeof reason, "connection lost (%s)",
           status == REDIS_OK || !ac->errstr[0] ? "closed" : ac->errstr);
  set_down(s, reason);
  schedule_retry(s);
}

/* To ip and the URL's port, or to the URL's socket when ip is NULL. */
static void connect_to(struct redisstore *s, const char *ip) {
  redisAsyncContext *ac = ip ? redisAsyncConnect(ip, s->port)
                             : redisAsyncConnectUnix(s->socket_path);
  if (!ac || ac->err) {
    char reason[160];
    snprintf(reason, sizeof reason, "cannot connect (%s)",
             ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    set_down(s, reason);
    flush_waiting(s);
    schedule_retry(s);
    return;
  }
  ac->data = s;
  s->ac = ac;
  s->unanswered = 0;
  s->state = RS_CONNECTING;
  redisLibeventAttach(ac, s->base);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  /* Pipelined ahead of every request; the PING's answer says Redis is up
   * (and a connect that never completes is a stall like any other). */
  if (s->password) {
    if (s->user) {
      const char *argv[] = {"AUTH", s->user, s->password};
      send_setup(s, on_setup_reply, "AUTH", 3, argv);
    } else {
      const char *argv[] = {"AUTH", s->password};
      send_setup(s, on_setup_reply, "AUTH", 2, argv);
    }
  }
  if (s->db) {
    char db[24];
    snprintf(db, sizeof db, "%ld", s->db);
    const char *argv[] = {"SELECT", db};
    send_setup(s, on_setup_reply, "SELECT", 2, argv);
  }
  const char *ping[] = {"PING"};
  send_setup(s, on_ping_reply, "PING", 1, ping);
  flush_waiting(s);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg) {
  struct redisstore *s = arg;
  s->dns_req = NULL;
  if (result == EVUTIL_EAI_CANCEL) {
    if (res) evutil_freeaddrinfo(res);
    return;
  }
  if (result != 0 || !res) {
    char reason[200];
    snprintf(reason, sizeof reason, "cannot resolve %s (%s)", s->host,
             evutil_gai_strerror(result));
    if (res) evutil_freeaddrinfo(res);
    set_down(s, reason);
    flush_waiting(s);
    schedule_retry(s);
    return;
  }
  /* IPv4 first: "localhost" is both, and Redis often listens on one. */
  struct evutil_addrinfo *pick = res;
  for (struct evutil_addrinfo *a = res; a; a = a->ai_next)
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  char ip[INET6_ADDRSTRLEN] = "";
  if (pick->ai_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, ip,
              sizeof ip);
  else
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip,
              sizeof ip);
  evutil_freeaddrinfo(res);
  connect_to(s, ip);
}

static bool is_numeric_host(const char *host) {
  unsigned char addr[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, addr) == 1 ||
         inet_pton(AF_INET6, host, addr) == 1;
}

static void start_connect(struct redisstore *s) {
  if (s->freeing || s->state != RS_IDLE) return;
  if (s->socket_path) {
    connect_to(s, NULL);
    return;
  }
  if (is_numeric_host(s->host)) {
    connect_to(s, s->host);
    return;
  }
  if (!s->dns)
    s->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (!s->dns) {
    set_down(s, "no DNS resolver (cannot read /etc/resolv.conf)");
    flush_waiting(s);
    schedule_retry(s);
    return;
  }
  struct evutil_addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  s->state = RS_RESOLVING;
  /* The answer may come before this returns (from /etc/hosts). */
  struct evdns_getaddrinfo_request *req =
      evdns_getaddrinfo(s->dns, s->host, NULL, &hints, on_resolved, s);
  if (s->state == RS_RESOLVING) s->dns_req = req;
}

/* --- stalls --------------------------------------------------------------- */

static void arm_stall_timer(struct redisstore *s, uint64_t after_ms) {
  struct timeval tv = {(time_t)(after_ms / 1000),
                       (suseconds_t)(after_ms % 1000) * 1000};
  evtimer_add(s->stall_timer, &tv);
}

/* The timer, once armed, re-arms itself from last_progress_ms while
 * answers come, so a busy connection adds no timer work per command. */
static void sent_one(struct redisstore *s) {
  if (s->unanswered++ > 0) return;
  s->last_progress_ms = clock_now_ms();
  if (!evtimer_pending(s->stall_timer, NULL))
    arm_stall_timer(s, REDIS_REPLY_TIMEOUT_MS);
}

static void answered_one(struct redisstore *s, const redisAsyncContext *ac) {
  if (ac != s->ac || s->unanswered == 0) return;
  s->unanswered--;
  s->last_progress_ms = clock_now_ms();
}

/* No answer for REDIS_REPLY_TIMEOUT_MS with commands waiting: the
 * connection is dropped (its calls fail with the reason) and reopened in
 * the background, as after a lost connection. */
static void on_stall_check(evutil_socket_t fd, short what, void *arg) {
  struct redisstore *s = arg;
  if (!s->ac || s->unanswered == 0 || s->freeing) return;
  uint64_t quiet = clock_now_ms() - s->last_progress_ms;
  if (quiet < REDIS_REPLY_TIMEOUT_MS) {
    arm_stall_timer(s, REDIS_REPLY_TIMEOUT_MS - quiet);
    return;
  }
  char reason[96];
  snprintf(reason, sizeof reason, "no answer within %d s (connection dropped)",
           REDIS_REPLY_TIMEOUT_MS / 1000);
  redisAsyncContext *ac = s->ac;
  forget_context(s);
  set_down(s, reason);
  /* Not inside a hiredis callback: the context is freed at once, and its
   * waiting commands are answered NULL (on_reply gives them the reason). */
  s->dropped_because = reason;
  redisAsyncFree(ac);
  s->dropped_because = NULL;
  schedule_retry(s);
}

/* --- the store ----------------------------------------------------------- */

int redisstore_check_url(const char *url, struct buf *err) {
  struct redisstore probe;
  memset(&probe, 0, sizeof probe);
  int rc = parse_url(&probe, url, err);
  free(probe.name);
  free(probe.host);
  free(probe.socket_path);
  free(probe.user);
  free(probe.password);
  return rc;
}

struct redisstore *redisstore_new(struct event_base *base, const char *url,
                                  struct buf *err) {
  struct redisstore *s = xcalloc(1, sizeof *s);
  s->base = base;
  if (parse_url(s, url, err) != 0) {
    free(s->host);
    free(s->socket_path);
    free(s->user);
    free(s->password);
    free(s);
    return NULL;
  }
  s->retry_timer = evtimer_new(base, on_retry, s);
  s->stall_timer = evtimer_new(base, on_stall_check, s);
  start_connect(s);
  return s;
}

int redisstore_submit(struct redisstore *s, struct kvreq *req) {
  req->next = NULL;
  if (s->down) {
    kvreq_set_error(req, "redis storage %s is unreachable: %s; reconnecting "
                         "in the background", s->name, s->down_reason);
    return -1;
  }
  if (s->ac) return send_command(s, req);
  /* The first attempt is still under way. */
  if (s->waiting_tail) s->waiting_tail->next = req;
  else s->waiting = req;
  s->waiting_tail = req;
  return 0;
}

void redisstore_free(struct redisstore *s) {
  if (!s) return;
  s->freeing = true;
  /* The cancelled lookup's callback is deferred to a loop pass that never
   * comes: the loop has stopped for good. */
  if (s->dns_req) evdns_getaddrinfo_cancel(s->dns_req);
  s->dns_req = NULL;
  if (s->ac) {
    redisAsyncContext *ac = s->ac;
    redisAsyncFree(ac);   /* replies come back NULL: their requests are freed */
    s->ac = NULL;
  }
  struct kvreq *r = s->waiting;
  while (r) {
    struct kvreq *next = r->next;
    kvreq_free(r);
    r = next;
  }
  if (s->dns) evdns_base_free(s->dns, 0);
  event_free(s->retry_timer);
  event_free(s->stall_timer);
  free(s->name);
  free(s->host);
  free(s->socket_path);
  free(s->user);
  free(s->password);
  free(s->down_reason);
  free(s);
}
