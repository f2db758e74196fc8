#include "store/redisconn.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include <curl/curl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include "base/clock.h"
#include "base/log.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000

enum conn_state {
  CS_IDLE,          /* no connection and no attempt under way */
  CS_RESOLVING,     /* looking up the host name */
  CS_CONNECTING,    /* a context exists; its PING is not answered yet */
  CS_UP,
};

/* A command from its submission to its callback. */
struct rc_cmd {
  struct rc_cmd *next;             /* the list it is on (waiting, sent,
                                    * failed) */
  int argc;
  char **argv;
  size_t *lens;
  int64_t block_ms;                /* extra patience (blocking commands) */
  redisconn_reply_fn done;
  void *ud;
  /* Sent ahead of everything on a new connection (AUTH, SELECT, setup
   * commands, PING): Redis refusing it makes the connection down. */
  const char *setup_what;
  bool is_ping;
  const redisAsyncContext *ac;     /* sent on */
  char *error;                     /* failed without being sent */
};

struct setup_cmd {
  struct setup_cmd *next;
  int argc;
  char **argv;
  redisconn_reply_fn done;
  void *ud;
};

struct watcher {
  struct watcher *next;
  void (*on_up)(struct redisconn *c, void *ud);
  void (*on_down)(struct redisconn *c, const char *reason, void *ud);
  void *ud;
};

struct redisconn {
  struct event_base *base;
  struct redis_target t;
  char *what;                      /* "redis storage" */
  int64_t reply_timeout_ms;

  enum conn_state state;
  redisAsyncContext *ac;
  /* Down: the last attempt failed or the connection was lost. Commands
   * fail (from the loop) until a connection is up again. */
  bool down;
  char *down_reason;
  bool quiet;                      /* outages not logged: redisconn_set_quiet */
  bool freeing;
  struct rc_cmd *waiting, *waiting_tail;   /* before the first attempt ends */
  struct rc_cmd *failed, *failed_tail;     /* to call back from the loop */
  struct event *fail_event;
  struct event *retry_timer;
  long backoff_ms;
  struct evdns_base *dns;
  struct evdns_getaddrinfo_request *dns_req;
  struct setup_cmd *setups, *setups_tail;
  struct watcher *watchers;

  /* Commands sent on the current context and not answered yet, oldest
   * first. Answers come in order, so no answer for the reply timeout
   * (plus the oldest one's own patience) while commands wait means
   * stalled. */
  struct rc_cmd *sent, *sent_tail;
  int unanswered;
  uint64_t last_progress_ms;
  struct event *stall_timer;
  const char *dropped_because;     /* while a connection is being dropped */
  char *drop_reason;               /* a drop asked for inside a callback */
  struct event *drop_event;
};

static void start_connect(struct redisconn *c);
static void request_drop(struct redisconn *c, const char *reason);

const char *redisconn_name(const struct redisconn *c) { return c->t.name; }
void redisconn_set_quiet(struct redisconn *c, bool quiet) {
  c->quiet = quiet;
}

bool redisconn_is_up(const struct redisconn *c) { return c->state == CS_UP; }
static void arm_stall_timer(struct redisconn *c, uint64_t after_ms);
static uint64_t patience_ms(const struct redisconn *c);

void redisconn_set_reply_timeout(struct redisconn *c, int64_t ms) {
  c->reply_timeout_ms = ms;
  if (c->unanswered > 0) arm_stall_timer(c, patience_ms(c));
}

/* --- URLs ------------------------------------------------------------------ */

void redis_target_free(struct redis_target *t) {
  free(t->host);
  free(t->socket_path);
  free(t->user);
  free(t->password);
  free(t->name);
  memset(t, 0, sizeof *t);
}

static const char URL_FORMS[] =
    "expected a URL redis://[[user]:password@]host[:port][/db] or "
    "unix://[[user]:password@]/path/to/redis.sock[?db=N]";

/* The part of u, decoded, or NULL when the URL has none. */
static char *url_part(CURLU *u, CURLUPart part) {
  char *v = NULL;
  if (curl_url_get(u, part, &v, CURLU_URLDECODE) != CURLUE_OK) return NULL;
  char *copy = xstrdup(v);
  curl_free(v);
  return copy;
}

static int parse_db(const char *s, long *db) {
  char *end = NULL;
  if (!isdigit((unsigned char)s[0])) return -1;
  long v = strtol(s, &end, 10);
  if (*end || v < 0 || v > 1000000) return -1;
  *db = v;
  return 0;
}

/* ?db=N; anything else is refused (a misspelt option would be ignored
 * silently otherwise). */
static int parse_query(const char *query, long *db, bool *have_db,
                       struct buf *err) {
  char *copy = xstrdup(query);
  int rc = 0;
  for (char *save = NULL, *p = strtok_r(copy, "&", &save); p && rc == 0;
       p = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(p, '=');
    char *name = curl_easy_unescape(NULL, p, eq ? (int)(eq - p) : 0, NULL);
    char *value = eq ? curl_easy_unescape(NULL, eq + 1, 0, NULL) : NULL;
    if (name && strcmp(name, "db") == 0 && value &&
        parse_db(value, db) == 0) {
      *have_db = true;
    } else if (name && strcmp(name, "db") == 0) {
      buf_printf(err, "expected ?db=N with N a database number");
      rc = -1;
    } else {
      buf_printf(err, "unknown URL parameter \"%s\" (known: db)",
                 name ? name : "?");
      rc = -1;
    }
    curl_free(name);
    curl_free(value);
  }
  free(copy);
  return rc;
}

static const char *curl_reason(CURLUcode rc) {
  switch (rc) {
    case CURLUE_BAD_PORT_NUMBER: return "bad port";
    case CURLUE_NO_HOST: return "no host";
    case CURLUE_BAD_HOSTNAME:
      return "bad host name (a password holding @ : / ? # must be "
             "percent-encoded: %40 %3A %2F %3F %23)";
    default: return curl_url_strerror(rc);
  }
}

/* unix://[userinfo@]/path: curl reads "unix:///tmp/x" as the host "tmp",
 * so the URL handed to it gets a placeholder host before the path:
 * unix://[userinfo@]localhost/path. */
static char *unix_url_for_curl(const char *url, struct buf *err) {
  const char *rest = url + strlen("unix://");
  const char *slash = strchr(rest, '/');
  size_t authority = slash ? (size_t)(slash - rest) : strlen(rest);
  if (!slash || (authority > 0 && rest[authority - 1] != '@') ||
      memchr(rest, '?', authority)) {
    buf_printf(err, "expected an absolute socket path: "
                    "unix://[[user]:password@]/path/to/redis.sock[?db=N]");
    return NULL;
  }
  struct buf b = BUF_INIT;
  buf_printf(&b, "unix://%.*slocalhost%s", (int)authority, rest, slash);
  return buf_steal(&b, NULL);
}

int redis_target_parse(const char *url, struct redis_target *t,
                       struct buf *err) {
  memset(t, 0, sizeof *t);
  bool is_unix = strncasecmp(url, "unix://", 7) == 0;
  if (strncasecmp(url, "rediss://", 9) == 0) {
    buf_printf(err, "rediss:// (TLS) is not supported: this hiredis has no "
                    "TLS; reach Redis over a private network or its unix "
                    "socket");
    return -1;
  }
  if (!is_unix && strncasecmp(url, "redis://", 8) != 0) {
    buf_printf(err, "%s", URL_FORMS);
    return -1;
  }
  char *for_curl = is_unix ? unix_url_for_curl(url, err) : xstrdup(url);
  if (!for_curl) return -1;
  CURLU *u = curl_url();
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, for_curl,
                              CURLU_NON_SUPPORT_SCHEME);
  free(for_curl);
  if (rc != CURLUE_OK) {
    buf_printf(err, "%s", curl_reason(rc));
    curl_url_cleanup(u);
    return -1;
  }
  int result = -1;
  char *fragment = url_part(u, CURLUPART_FRAGMENT);
  char *zone = url_part(u, CURLUPART_ZONEID);
  char *path = url_part(u, CURLUPART_PATH);
  char *query = NULL;
  char *raw_query = NULL;
  if (curl_url_get(u, CURLUPART_QUERY, &raw_query, 0) == CURLUE_OK)
    query = xstrdup(raw_query);
  curl_free(raw_query);
  t->user = url_part(u, CURLUPART_USER);
  t->password = url_part(u, CURLUPART_PASSWORD);
  if (t->user && !t->user[0]) {
    free(t->user);
    t->user = NULL;
  }
  if (t->user && !t->password) {   /* redis://secret@host */
    t->password = t->user;
    t->user = NULL;
  }
  bool have_db = false;
  long query_db = 0;
  if (fragment) {
    buf_printf(err, "unexpected #fragment in the URL");
    goto out;
  }
  if (zone) {
    buf_printf(err, "IPv6 zone ids (%%25...) are not supported");
    goto out;
  }
  if (query && parse_query(query, &query_db, &have_db, err) != 0) goto out;
  if (is_unix) {
    struct sockaddr_un probe;
    if (!path || strlen(path) < 2) {
      buf_printf(err, "expected an absolute socket path: "
                      "unix://[[user]:password@]/path/to/redis.sock[?db=N]");
      goto out;
    }
    if (strlen(path) >= sizeof probe.sun_path) {
      buf_printf(err, "the socket path is longer than %zu bytes",
                 sizeof probe.sun_path - 1);
      goto out;
    }
    t->socket_path = xstrdup(path);
    t->db = have_db ? query_db : 0;
  } else {
    char *host = url_part(u, CURLUPART_HOST);
    if (!host || !host[0]) {
      free(host);
      buf_printf(err, "no host");
      goto out;
    }
    size_t hlen = strlen(host);
    if (host[0] == '[' && hlen >= 2 && host[hlen - 1] == ']') {
      t->host = xstrndup(host + 1, hlen - 2);
      free(host);
    } else {
      t->host = host;
    }
    t->port = 6379;
    char *port = url_part(u, CURLUPART_PORT);
    if (port) {
      long p = strtol(port, NULL, 10);
      free(port);
      if (p < 1 || p > 65535) {
        buf_printf(err, "bad port");
        goto out;
      }
      t->port = (int)p;
    }
    long path_db = 0;
    bool have_path_db = false;
    if (path && path[0] && strcmp(path, "/") != 0) {
      if (parse_db(path + 1, &path_db) != 0) {
        buf_printf(err, "bad database number after / (expected "
                        "redis://host:port/N)");
        goto out;
      }
      have_path_db = true;
    }
    if (have_path_db && have_db && path_db != query_db) {
      buf_printf(err, "two database numbers (/%ld and ?db=%ld)", path_db,
                 query_db);
      goto out;
    }
    t->db = have_path_db ? path_db : have_db ? query_db : 0;
  }
  struct buf name = BUF_INIT;
  if (is_unix) {
    buf_printf(&name, "unix://%s", t->socket_path);
    if (t->db) buf_printf(&name, "?db=%ld", t->db);
  } else {
    bool v6 = strchr(t->host, ':') != NULL;
    buf_printf(&name, "redis://%s%s%s:%d", v6 ? "[" : "", t->host,
               v6 ? "]" : "", t->port);
    if (t->db) buf_printf(&name, "/%ld", t->db);
  }
  t->name = buf_steal(&name, NULL);
  result = 0;
out:
  free(fragment);
  free(zone);
  free(path);
  free(query);
  curl_url_cleanup(u);
  if (result != 0) redis_target_free(t);
  return result;
}

/* --- commands -------------------------------------------------------------- */

static struct rc_cmd *cmd_new(int argc, const char *const *argv,
                              const size_t *lens, redisconn_reply_fn done,
                              void *ud) {
  struct rc_cmd *cmd = xcalloc(1, sizeof *cmd);
  cmd->argc = argc;
  cmd->argv = xcalloc((size_t)argc, sizeof *cmd->argv);
  cmd->lens = xcalloc((size_t)argc, sizeof *cmd->lens);
  for (int i = 0; i < argc; i++) {
    size_t n = lens ? lens[i] : strlen(argv[i]);
    cmd->argv[i] = xmalloc(n + 1);
    memcpy(cmd->argv[i], argv[i], n);
    cmd->argv[i][n] = '\0';
    cmd->lens[i] = n;
  }
  cmd->done = done;
  cmd->ud = ud;
  return cmd;
}

static void cmd_free(struct rc_cmd *cmd) {
  for (int i = 0; i < cmd->argc; i++) free(cmd->argv[i]);
  free(cmd->argv);
  free(cmd->lens);
  free(cmd->error);
  free(cmd);
}

static void cmd_finish(struct redisconn *c, struct rc_cmd *cmd,
                       const redisReply *reply, const char *error) {
  if (cmd->done) {
    if (c->freeing) cmd->done(c, NULL, NULL, cmd->ud);
    else cmd->done(c, reply, error, cmd->ud);
  }
  cmd_free(cmd);
}

static void append_cmd(struct rc_cmd **head, struct rc_cmd **tail,
                       struct rc_cmd *cmd) {
  cmd->next = NULL;
  if (*tail) (*tail)->next = cmd;
  else *head = cmd;
  *tail = cmd;
}

/* Fails cmd from the loop, never inside the caller's call. */
static void fail_later(struct redisconn *c, struct rc_cmd *cmd,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_later(struct redisconn *c, struct rc_cmd *cmd,
                       const char *fmt, ...) {
  struct buf b = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&b, fmt, ap);
  va_end(ap);
  free(cmd->error);
  cmd->error = buf_steal(&b, NULL);
  append_cmd(&c->failed, &c->failed_tail, cmd);
  event_active(c->fail_event, EV_TIMEOUT, 0);
}

static void on_failed(evutil_socket_t fd, short what, void *arg) {
  struct redisconn *c = arg;
  struct rc_cmd *cmd = c->failed;
  c->failed = c->failed_tail = NULL;
  while (cmd) {
    struct rc_cmd *next = cmd->next;
    cmd_finish(c, cmd, NULL, cmd->error);
    cmd = next;
  }
}

/* --- down and up ------------------------------------------------------------ */

static void set_down(struct redisconn *c, const char *reason) {
  bool was_down = c->down;
  if (!was_down && !c->quiet)
    log_warn("%s %s: %s; reconnecting in the background", c->what, c->t.name,
             reason);
  c->down = true;
  free(c->down_reason);
  c->down_reason = xstrdup(reason);
  if (!was_down)
    for (struct watcher *w = c->watchers; w; w = w->next)
      if (w->on_down) w->on_down(c, reason, w->ud);
}

static void schedule_retry(struct redisconn *c) {
  c->state = CS_IDLE;
  if (c->freeing) return;
  if (c->backoff_ms == 0) c->backoff_ms = BACKOFF_FIRST_MS;
  struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
  evtimer_add(c->retry_timer, &tv);
  c->backoff_ms *= 2;
  if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  start_connect(arg);
}

/* The context is gone (or going): nothing sent on it is waited for. Its
 * commands are still called back, by hiredis, with no reply. */
static void forget_context(struct redisconn *c) {
  c->ac = NULL;
  c->sent = c->sent_tail = NULL;
  c->unanswered = 0;
}

static void came_up(struct redisconn *c) {
  c->state = CS_UP;
  c->backoff_ms = 0;
  if (c->down && !c->quiet)
    log_info("%s %s: connected again", c->what, c->t.name);
  c->down = false;
  free(c->down_reason);
  c->down_reason = NULL;
  for (struct watcher *w = c->watchers; w; w = w->next)
    if (w->on_up) w->on_up(c, w->ud);
}

/* --- stalls ----------------------------------------------------------------- */

static void arm_stall_timer(struct redisconn *c, uint64_t after_ms) {
  struct timeval tv = {(time_t)(after_ms / 1000),
                       (suseconds_t)(after_ms % 1000) * 1000};
  evtimer_add(c->stall_timer, &tv);
}

static uint64_t patience_ms(const struct redisconn *c) {
  int64_t extra = c->sent ? c->sent->block_ms : 0;
  return (uint64_t)(c->reply_timeout_ms + (extra > 0 ? extra : 0));
}

/* The timer, once armed, re-arms itself from last_progress_ms while
 * answers come, so a busy connection adds no timer work per command. */
static void sent_one(struct redisconn *c, struct rc_cmd *cmd) {
  cmd->ac = c->ac;
  append_cmd(&c->sent, &c->sent_tail, cmd);
  if (c->unanswered++ > 0) return;
  c->last_progress_ms = clock_now_ms();
  if (!evtimer_pending(c->stall_timer, NULL))
    arm_stall_timer(c, patience_ms(c));
}

/* cmd was answered (or failed) on the current context: it leaves the
 * sent list, whose head it is (answers come in order). */
static void answered_one(struct redisconn *c, struct rc_cmd *cmd) {
  if (cmd->ac != c->ac || !c->ac || c->sent != cmd) return;
  c->sent = cmd->next;
  if (!c->sent) c->sent_tail = NULL;
  c->unanswered--;
  c->last_progress_ms = clock_now_ms();
  /* The timer ran on a blocking command's patience: the next one's may
   * be shorter. */
  if (cmd->block_ms > 0 && c->unanswered > 0)
    arm_stall_timer(c, patience_ms(c));
}

/* Drops the current context (not from inside a hiredis callback): its
 * waiting commands are called back with reason, and a new connection is
 * opened in the background, as after a lost connection. */
static void drop_connection(struct redisconn *c, const char *reason) {
  redisAsyncContext *ac = c->ac;
  if (!ac) return;
  forget_context(c);
  set_down(c, reason);
  /* Not inside a hiredis callback: the context is freed at once, and its
   * waiting commands are answered NULL (on_reply gives them the reason). */
  c->dropped_because = reason;
  redisAsyncFree(ac);
  c->dropped_because = NULL;
  schedule_retry(c);
}

static void on_stall_check(evutil_socket_t fd, short what, void *arg) {
  struct redisconn *c = arg;
  if (!c->ac || c->unanswered == 0 || c->freeing) return;
  uint64_t quiet = clock_now_ms() - c->last_progress_ms;
  uint64_t patience = patience_ms(c);
  if (quiet < patience) {
    arm_stall_timer(c, patience - quiet);
    return;
  }
  char reason[96];
  if (c->reply_timeout_ms % 1000 == 0)
    snprintf(reason, sizeof reason,
             "no answer within %lld s (connection dropped)",
             (long long)(c->reply_timeout_ms / 1000));
  else
    snprintf(reason, sizeof reason,
             "no answer within %lld ms (connection dropped)",
             (long long)c->reply_timeout_ms);
  drop_connection(c, reason);
}

static void on_drop(evutil_socket_t fd, short what, void *arg) {
  struct redisconn *c = arg;
  char *reason = c->drop_reason;
  c->drop_reason = NULL;
  if (reason && !c->freeing) drop_connection(c, reason);
  free(reason);
}

/* Inside a hiredis callback the context cannot be freed: the drop runs
 * from the loop right after. */
static void request_drop(struct redisconn *c, const char *reason) {
  if (c->drop_reason) return;
  c->drop_reason = xstrdup(reason);
  event_active(c->drop_event, EV_TIMEOUT, 0);
}

/* --- sending ---------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  struct rc_cmd *cmd = privdata;
  struct redisconn *c = ac->data;
  redisReply *rep = reply;
  if (c->freeing) {
    cmd_finish(c, cmd, NULL, NULL);
    return;
  }
  answered_one(c, cmd);
  char why[300];
  const char *error = NULL;
  if (!rep && c->dropped_because) {
    snprintf(why, sizeof why, "%s %s: %s", c->what, c->t.name,
             c->dropped_because);
    error = why;
  } else if (!rep) {
    snprintf(why, sizeof why, "%s %s: connection lost (%s)", c->what,
             c->t.name, ac->err && ac->errstr[0] ? ac->errstr : "closed");
    error = why;
  }
  if (rep && cmd->setup_what && ac == c->ac) {
    if (rep->type == REDIS_REPLY_ERROR) {
      char reason[300];
      snprintf(reason, sizeof reason, "%s failed (%s)", cmd->setup_what,
               rep->str);
      request_drop(c, reason);
    } else if (cmd->is_ping && !c->drop_reason) {
      came_up(c);
    }
  }
  cmd_finish(c, cmd, rep, error);
}

/* Sends cmd on the current context, or fails it from the loop. */
static void send_cmd(struct redisconn *c, struct rc_cmd *cmd) {
  int rc = redisAsyncCommandArgv(c->ac, on_reply, cmd, cmd->argc,
                                 (const char **)cmd->argv, cmd->lens);
  if (rc != REDIS_OK) {
    fail_later(c, cmd, "%s %s: %s", c->what, c->t.name,
               c->ac->err ? c->ac->errstr : "cannot send the command");
    return;
  }
  sent_one(c, cmd);
}

static void submit(struct redisconn *c, struct rc_cmd *cmd) {
  if (c->freeing) {
    cmd_finish(c, cmd, NULL, NULL);
    return;
  }
  if (c->down) {
    fail_later(c, cmd, "%s %s is unreachable: %s; reconnecting in the "
               "background", c->what, c->t.name, c->down_reason);
    return;
  }
  if (c->ac) {
    send_cmd(c, cmd);
    return;
  }
  /* The first attempt is still under way (resolving the host). */
  append_cmd(&c->waiting, &c->waiting_tail, cmd);
}

void redisconn_command(struct redisconn *c, int argc, const char *const *argv,
                       const size_t *lens, redisconn_reply_fn done, void *ud) {
  submit(c, cmd_new(argc, argv, lens, done, ud));
}

void redisconn_blocking_command(struct redisconn *c, int64_t block_ms,
                                int argc, const char *const *argv,
                                const size_t *lens, redisconn_reply_fn done,
                                void *ud) {
  struct rc_cmd *cmd = cmd_new(argc, argv, lens, done, ud);
  cmd->block_ms = block_ms;
  submit(c, cmd);
}

void redisconn_add_setup(struct redisconn *c, int argc, const char *const *argv,
                         redisconn_reply_fn done, void *ud) {
  struct setup_cmd *s = xcalloc(1, sizeof *s);
  s->argc = argc;
  s->argv = xcalloc((size_t)argc, sizeof *s->argv);
  for (int i = 0; i < argc; i++) s->argv[i] = xstrdup(argv[i]);
  s->done = done;
  s->ud = ud;
  if (c->setups_tail) c->setups_tail->next = s;
  else c->setups = s;
  c->setups_tail = s;
  /* A connection already open gets it now, ahead of what comes next. */
  if (c->ac) {
    struct rc_cmd *cmd =
        cmd_new(argc, (const char *const *)s->argv, NULL, done, ud);
    cmd->setup_what = s->argv[0];
    send_cmd(c, cmd);
  }
}

void redisconn_watch(struct redisconn *c,
                     void (*on_up)(struct redisconn *c, void *ud),
                     void (*on_down)(struct redisconn *c, const char *reason,
                                     void *ud),
                     void *ud) {
  struct watcher *w = xcalloc(1, sizeof *w);
  w->on_up = on_up;
  w->on_down = on_down;
  w->ud = ud;
  w->next = c->watchers;
  c->watchers = w;
}

/* --- connecting ------------------------------------------------------------- */

/* The waiting commands go out on the new context, or fail if it could not
 * even be created. */
static void flush_waiting(struct redisconn *c) {
  struct rc_cmd *cmd = c->waiting;
  c->waiting = c->waiting_tail = NULL;
  while (cmd) {
    struct rc_cmd *next = cmd->next;
    if (!c->ac)
      fail_later(c, cmd, "%s %s: %s", c->what, c->t.name,
                 c->down_reason ? c->down_reason : "not connected");
    else
      send_cmd(c, cmd);
    cmd = next;
  }
}

static void send_setup(struct redisconn *c, const char *what, int argc,
                       const char *const *argv, redisconn_reply_fn done,
                       void *ud, bool is_ping) {
  struct rc_cmd *cmd = cmd_new(argc, argv, NULL, done, ud);
  cmd->setup_what = what;
  cmd->is_ping = is_ping;
  send_cmd(c, cmd);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct redisconn *c = ac->data;
  if (c->ac != ac) return;
  if (status != REDIS_OK) {
    /* hiredis frees the context after this returns; the commands sent on
     * it get a NULL reply. */
    forget_context(c);
    char reason[200];
    snprintf(reason, sizeof reason, "cannot connect (%s)",
             ac->errstr[0] ? ac->errstr : "no reason given");
    set_down(c, reason);
    schedule_retry(c);
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct redisconn *c = ac->data;
  if (c->ac != ac) return;
  forget_context(c);
  if (c->freeing) return;
  char reason[200];
  snprintf(reason, sizeof reason, "connection lost (%s)",
           status == REDIS_OK || !ac->errstr[0] ? "closed" : ac->errstr);
  set_down(c, reason);
  schedule_retry(c);
}

/* To ip and the URL's port, or to the URL's socket when ip is NULL. */
static void connect_to(struct redisconn *c, const char *ip) {
  redisAsyncContext *ac = ip ? redisAsyncConnect(ip, c->t.port)
                             : redisAsyncConnectUnix(c->t.socket_path);
  if (!ac || ac->err) {
    char reason[160];
    snprintf(reason, sizeof reason, "cannot connect (%s)",
             ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    set_down(c, reason);
    flush_waiting(c);
    schedule_retry(c);
    return;
  }
  ac->data = c;
  c->ac = ac;
  c->sent = c->sent_tail = NULL;
  c->unanswered = 0;
  c->state = CS_CONNECTING;
  redisLibeventAttach(ac, c->base);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  /* Pipelined ahead of every command; the PING's answer says Redis is up
   * (and a connect that never completes is a stall like any other). */
  if (c->t.password) {
    if (c->t.user) {
      const char *argv[] = {"AUTH", c->t.user, c->t.password};
      send_setup(c, "AUTH", 3, argv, NULL, NULL, false);
    } else {
      const char *argv[] = {"AUTH", c->t.password};
      send_setup(c, "AUTH", 2, argv, NULL, NULL, false);
    }
  }
  if (c->t.db) {
    char db[24];
    snprintf(db, sizeof db, "%ld", c->t.db);
    const char *argv[] = {"SELECT", db};
    send_setup(c, "SELECT", 2, argv, NULL, NULL, false);
  }
  for (struct setup_cmd *s = c->setups; s; s = s->next)
    send_setup(c, s->argv[0], s->argc, (const char *const *)s->argv, s->done,
               s->ud, false);
  const char *ping[] = {"PING"};
  send_setup(c, "PING", 1, ping, NULL, NULL, true);
  flush_waiting(c);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg) {
  struct redisconn *c = arg;
  c->dns_req = NULL;
  if (result == EVUTIL_EAI_CANCEL) {
    if (res) evutil_freeaddrinfo(res);
    return;
  }
  if (result != 0 || !res) {
    char reason[200];
    snprintf(reason, sizeof reason, "cannot resolve %s (%s)", c->t.host,
             evutil_gai_strerror(result));
    if (res) evutil_freeaddrinfo(res);
    set_down(c, reason);
    flush_waiting(c);
    schedule_retry(c);
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
  connect_to(c, ip);
}

static bool is_numeric_host(const char *host) {
  unsigned char addr[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, addr) == 1 ||
         inet_pton(AF_INET6, host, addr) == 1;
}

static void start_connect(struct redisconn *c) {
  if (c->freeing || c->state != CS_IDLE) return;
  if (c->t.socket_path) {
    connect_to(c, NULL);
    return;
  }
  if (is_numeric_host(c->t.host)) {
    connect_to(c, c->t.host);
    return;
  }
  if (!c->dns)
    c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (!c->dns) {
    set_down(c, "no DNS resolver (cannot read /etc/resolv.conf)");
    flush_waiting(c);
    schedule_retry(c);
    return;
  }
  struct evutil_addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  c->state = CS_RESOLVING;
  /* The answer may come before this returns (from /etc/hosts). */
  struct evdns_getaddrinfo_request *req =
      evdns_getaddrinfo(c->dns, c->t.host, NULL, &hints, on_resolved, c);
  if (c->state == CS_RESOLVING) c->dns_req = req;
}

/* --- the connection ----------------------------------------------------------- */

struct redisconn *redisconn_new(struct event_base *base, const char *url,
                                const char *what, struct buf *err) {
  struct redisconn *c = xcalloc(1, sizeof *c);
  if (redis_target_parse(url, &c->t, err) != 0) {
    free(c);
    return NULL;
  }
  c->base = base;
  c->what = xstrdup(what);
  c->reply_timeout_ms = REDISCONN_REPLY_TIMEOUT_MS;
  c->retry_timer = evtimer_new(base, on_retry, c);
  c->stall_timer = evtimer_new(base, on_stall_check, c);
  c->fail_event = event_new(base, -1, 0, on_failed, c);
  c->drop_event = event_new(base, -1, 0, on_drop, c);
  start_connect(c);
  return c;
}

void redisconn_free(struct redisconn *c) {
  if (!c) return;
  c->freeing = true;
  /* The cancelled lookup's callback is deferred to a loop pass that never
   * comes: the loop has stopped for good. */
  if (c->dns_req) evdns_getaddrinfo_cancel(c->dns_req);
  c->dns_req = NULL;
  if (c->ac) {
    redisAsyncContext *ac = c->ac;
    forget_context(c);
    redisAsyncFree(ac);   /* its commands come back NULL: freed */
  }
  struct rc_cmd *lists[] = {c->waiting, c->failed};
  for (size_t i = 0; i < 2; i++) {
    struct rc_cmd *cmd = lists[i];
    while (cmd) {
      struct rc_cmd *next = cmd->next;
      cmd_finish(c, cmd, NULL, NULL);
      cmd = next;
    }
  }
  struct setup_cmd *s = c->setups;
  while (s) {
    struct setup_cmd *next = s->next;
    for (int i = 0; i < s->argc; i++) free(s->argv[i]);
    free(s->argv);
    free(s);
    s = next;
  }
  struct watcher *w = c->watchers;
  while (w) {
    struct watcher *next = w->next;
    free(w);
    w = next;
  }
  if (c->dns) evdns_base_free(c->dns, 0);
  event_free(c->retry_timer);
  event_free(c->stall_timer);
  event_free(c->fail_event);
  event_free(c->drop_event);
  redis_target_free(&c->t);
  free(c->what);
  free(c->down_reason);
  free(c->drop_reason);
  free(c);
}
