#include "pipeline/webhook.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "net/httpd.h"
#include "pipeline/idwindow.h"
#include "pipeline/runopts.h"
#include "pipeline/webhookinfo.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"

#define SECRET_HEADER "X-Telegram-Bot-Api-Secret-Token"
#define SWEEP_MS 1000
#define MAX_BACKOFF_MS 30000L
/* A 401 is logged once, then at most once per this many ms with a count. */
#define REJECT_LOG_MS 10000

/* Telegram sends each update in one small request over connections it
 * keeps open; a head has no reason to take long, nor a body. */
static const struct httpd_limits limits = {
    .max_head_bytes = 16384,
    .max_body_bytes = WEBHOOK_MAX_BODY,
    .idle_ms = 120000,
    .head_ms = 10000,
    .body_ms = 60000,
    .write_ms = 60000,
};

struct webhook_config {
  const char *url;                    /* given to setWebhook */
  const char *listen;                 /* ADDR:PORT (netaddr.h) */
  const char *secret_file;            /* NULL: a random secret */
  const char *allowed_updates_json;   /* NULL: not sent */
  int max_connections;                /* clamped to 1..100 */
  long max_retry_ms;                  /* for setWebhook */
};

/* A request whose answer waits: held (not taken yet) or handed over (taken,
 * waiting to be accepted). */
struct held {
  struct qnode node;
  struct httpd_req *req;
  int64_t id;
  char *json;                    /* until taken */
  size_t len;
};

struct webhook {
  struct update_source source;
  struct botapi *api;
  struct event_base *base;
  char *url;
  char *allowed_updates_json;
  int max_connections;
  long max_retry_ms;
  char secret[WEBHOOK_MAX_SECRET + 1];
  size_t secret_len;
  char bound[80];                /* the address listened on */

  struct httpd *http;
  struct qlist held;             /* struct held, oldest first */
  size_t held_bytes;
  struct qlist handed;           /* taken, answers waiting */
  struct idwindow window;
  struct event *ready_event;     /* on_ready, from the loop */
  struct event *sweep_timer;     /* drops held requests whose client left */
  bool stopping;

  /* setWebhook */
  struct http_request *req;
  struct event *retry_timer;
  bool set;                      /* Telegram accepted it */
  bool resend;                   /* the settings changed while in flight */
  int failures;
  uint64_t failing_since_ms;
  long next_delay_ms;
  char *set_allowed;             /* what the last success sent */
  int set_max_connections;

  size_t rejected;               /* 401s since the last log line */
  uint64_t rejected_logged_ms;

  struct webhook_info *info;     /* getWebhookInfo, once set */
};

/* --- the secret --------------------------------------------------------- */

static bool secret_char(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static int read_secret_file(struct webhook *w, const char *path,
                            struct buf *err) {
  FILE *f = fopen(path, "r");
  if (!f) {
    buf_printf(err, "cannot read --webhook-secret-file %s: %s", path,
               strerror(errno));
    return -1;
  }
  char text[WEBHOOK_MAX_SECRET + 64];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  char *s = text, *e;
  while (*s && isspace((unsigned char)*s)) s++;
  e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  size_t len = (size_t)(e - s);
  bool ok = len >= 1 && len <= WEBHOOK_MAX_SECRET;
  for (size_t i = 0; ok && i < len; i++) ok = secret_char(s[i]);
  if (!ok) {
    buf_printf(err, "--webhook-secret-file %s: the secret must be 1 to %d "
               "characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)",
               path, WEBHOOK_MAX_SECRET);
    memset(text, 0, sizeof text);
    return -1;
  }
  memcpy(w->secret, s, len);
  w->secret[len] = '\0';
  w->secret_len = len;
  memset(text, 0, sizeof text);
  return 0;
}

static int random_secret(struct webhook *w, struct buf *err) {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (got < sizeof bytes) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, bytes, sizeof bytes) : -1;
    if (fd >= 0) close(fd);
    if (n != (ssize_t)sizeof bytes) {
      buf_append_str(err, "cannot make a webhook secret: no random numbers "
                          "(getrandom, /dev/urandom)");
      return -1;
    }
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof bytes; i++) {
    w->secret[2 * i] = hex[bytes[i] >> 4];
    w->secret[2 * i + 1] = hex[bytes[i] & 15];
  }
  w->secret_len = 2 * sizeof bytes;
  w->secret[w->secret_len] = '\0';
  memset(bytes, 0, sizeof bytes);
  return 0;
}

/* In constant time for a given secret: how long it takes says nothing
 * about how much of it a guess got right. */
static bool secret_matches(const struct webhook *w, const char *given,
                           size_t given_len) {
  if (!given) given_len = 0;
  volatile unsigned char diff = given_len != w->secret_len;
  for (size_t i = 0; i < w->secret_len; i++) {
    unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
    diff |= g ^ (unsigned char)w->secret[i];
  }
  return diff == 0;
}

/* --- answers ------------------------------------------------------------ */

static void count_answer(int code) {
  char codes[8];
  snprintf(codes, sizeof codes, "%d", code);
  metric_inc(METRIC_WEBHOOK_REQUESTS, codes, NULL);
}

static void answer(struct httpd_req *req, int code, const char *reason,
                   const char *text) {
  count_answer(code);
  if (code == 503) httpd_add_header(req, "Retry-After", "1");
  httpd_reply(req, code, reason, NULL, text, text ? strlen(text) : 0);
}

static void note_held(struct webhook *w) {
  metric_set(METRIC_WEBHOOK_HELD, (double)qlist_size(&w->held), NULL, NULL);
}

static void held_free(struct held *h) {
  free(h->json);
  free(h);
}

/* Answers and frees every request of list. */
static void answer_all(struct webhook *w, struct qlist *list, int code,
                       const char *reason, const char *text) {
  struct qnode *n;
  while ((n = qlist_pop_front(list))) {
    struct held *h = qlist_entry(n, struct held, node);
    if (list == &w->held) w->held_bytes -= h->len;
    answer(h->req, code, reason, text);
    held_free(h);
  }
}

/* --- requests ------------------------------------------------------------ */

static void log_rejected(struct webhook *w, const char *peer, bool missing) {
  uint64_t now = clock_now_ms();
  w->rejected++;
  if (w->rejected_logged_ms && now - w->rejected_logged_ms < REJECT_LOG_MS)
    return;
  log_warn("webhook: %zu request(s) refused with 401 (the last from %s: %s "
           "secret token); only Telegram, with the secret given to "
           "setWebhook, may post updates", w->rejected, peer,
           missing ? "no" : "a wrong");
  w->rejected = 0;
  w->rejected_logged_ms = now;
}

/* The update's id if body is one JSON object with an integer update_id
 * >= 0; otherwise -1 with why set. */
static int64_t update_id_of(const char *body, size_t len, const char **why) {
  struct json_reader r;
  json_reader_init(&r, body, len);
  if (json_peek(&r) != JSON_OBJECT) {
    *why = "the body is not a JSON object";
    return -1;
  }
  if (!json_skip(&r, NULL) || !json_finish(&r)) {
    *why = "the body is not valid JSON";
    return -1;
  }
  struct json_reader at;
  struct json_number n;
  if (!json_find_member(body, len, "update_id", &at)) {
    *why = "no update_id";
    return -1;
  }
  if (!json_read_number(&at, &n) || !n.is_integer || n.i < 0 ||
      n.i == INT64_MAX) {
    *why = "update_id is not a non-negative integer";
    return -1;
  }
  /* tghost would go by the first, the script's Lua table holds the last. */
  if (json_member_repeated(body, len, "update_id")) {
    *why = "update_id appears twice";
    return -1;
  }
  return n.i;
}

static bool room_for(const struct webhook *w, size_t len) {
  return qlist_size(&w->held) < WEBHOOK_MAX_HELD &&
         w->held_bytes + len <= WEBHOOK_MAX_HELD_BYTES;
}

/* What can be decided from a request's head is decided before its body is
 * read (httpd.h): an unauthenticated client never makes tghost buffer a
 * byte of what it sends. */
static bool check_head(const struct httpd_head *head, struct httpd_refusal *no,
                       void *arg) {
  struct webhook *w = arg;
  const struct httphead *h = head->head;
  if (h->method != HTTPHEAD_POST) {
    *no = (struct httpd_refusal){
        405, "Method Not Allowed",
        "tghost receives Telegram updates here: POST only\n", "Allow: POST\r\n"};
    return false;
  }
  size_t given_len = 0;
  const char *given = httphead_field(h, SECRET_HEADER, &given_len);
  if (!secret_matches(w, given, given_len)) {
    log_rejected(w, head->peer, given == NULL);
    *no = (struct httpd_refusal){401, "Unauthorized",
                                 "wrong or missing secret token\n", NULL};
    return false;
  }
  if (w->stopping) {
    *no = (struct httpd_refusal){503, "Service Unavailable", "stopping\n",
                                 "Retry-After: 1\r\n"};
    return false;
  }
  if (!room_for(w, h->content_length > 0 ? (size_t)h->content_length : 0)) {
    *no = (struct httpd_refusal){503, "Service Unavailable",
                                 "too many updates waiting\n",
                                 "Retry-After: 1\r\n"};
    return false;
  }
  return true;
}

static void on_refused(int code, void *arg) {
  (void)arg;
  count_answer(code);
}

static void on_request(struct httpd_req *req, void *arg) {
  struct webhook *w = arg;
  /* The head passed check_head; while the body came, tghost may have
   * begun to stop, or others filled the queue. */
  if (w->stopping) {
    answer(req, 503, "Service Unavailable", "stopping\n");
    return;
  }
  size_t len;
  const char *body = httpd_req_body(req, &len);
  const char *why = NULL;
  int64_t id = update_id_of(body, len, &why);
  if (id < 0) {
    log_warn("webhook: a malformed update refused with 400: %s", why);
    struct buf text = BUF_INIT;
    buf_printf(&text, "malformed update: %s\n", why);
    answer(req, 400, "Bad Request", text.data);
    buf_free(&text);
    return;
  }
  if (idwindow_contains(&w->window, id)) {
    metric_inc(METRIC_WEBHOOK_DUPLICATES, NULL, NULL);
    log_debug("webhook: update %lld delivered again; it was accepted before",
              (long long)id);
    answer(req, 200, "OK", NULL);
    return;
  }
  if (!room_for(w, len)) {
    answer(req, 503, "Service Unavailable", "too many updates waiting\n");
    return;
  }
  webhook_info_update_received(w->info);
  struct held *h = xcalloc(1, sizeof *h);
  h->req = req;
  h->id = id;
  h->json = httpd_req_take_body(req, &h->len);   /* the only copy kept */
  w->held_bytes += h->len;
  qlist_push_back(&w->held, &h->node);
  if (!evtimer_pending(w->sweep_timer, NULL)) {
    struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
    evtimer_add(w->sweep_timer, &tv);
  }
  event_active(w->ready_event, 0, 0);
}

static void on_ready_event(evutil_socket_t fd, short what, void *arg) {
  struct webhook *w = arg;
  if (!qlist_empty(&w->held)) source_ready(&w->source);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  struct webhook *w = arg;
  size_t dropped = 0;
  for (struct qnode *n = w->held.head.next, *next; n != &w->held.head;
       n = next) {
    next = n->next;
    struct held *h = qlist_entry(n, struct held, node);
    if (httpd_req_client_gone(h->req)) {
      qlist_remove(&w->held, n);
      w->held_bytes -= h->len;
      /* No answer can go out: the request goes with its connection. */
      httpd_req_drop(h->req);
      held_free(h);
      dropped++;
    }
  }
  if (dropped) {
    log_debug("webhook: %zu held request(s) dropped: their client left "
              "(Telegram delivers them again)", dropped);
  }
  if (!qlist_empty(&w->held)) {
    struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
    evtimer_add(w->sweep_timer, &tv);
  }
}

/* --- setWebhook --------------------------------------------------------- */

static void send_set_webhook(struct webhook *w);

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  send_set_webhook(arg);
}

static const char *error_kind(const struct botapi_reply *reply) {
  switch (reply->outcome) {
    case BOTAPI_NETWORK_ERROR: return "network";
    case BOTAPI_BAD_RESPONSE: return "bad_response";
    default: break;
  }
  if (reply->error_code == 429) return "flood";
  return reply->error_code >= 500 ? "server_error" : "fatal";
}

static void set_failed(struct webhook *w, const struct botapi_reply *reply) {
  const char *kind = error_kind(reply);
  metric_inc(METRIC_SOURCE_ERRORS, kind, NULL);
  metric_set_info(METRIC_SOURCE_LAST_ERROR, kind, reply->description.data);
  if (strcmp(kind, "fatal") == 0) {
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "setWebhook failed: %lld %s (check --webhook %s)",
               (long long)reply->error_code, reply->description.data, w->url);
    source_fatal(&w->source, msg.data);
    buf_free(&msg);
    return;
  }
  uint64_t now = clock_now_ms();
  if (w->failures++ == 0) {
    w->failing_since_ms = now;
    w->next_delay_ms = 100;
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_FAILING);
    metric_set(METRIC_SOURCE_FAILING_SINCE, (double)time(NULL), NULL, NULL);
    log_warn("setWebhook failed: %s; retrying with backoff",
             reply->description.data);
  }
  long elapsed = (long)(now - w->failing_since_ms);
  if (elapsed >= w->max_retry_ms) {
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "setWebhook kept failing for %.1f s (maxRetryTime): %s",
               elapsed / 1000.0, reply->description.data);
    source_fatal(&w->source, msg.data);
    buf_free(&msg);
    return;
  }
  long delay = w->next_delay_ms;
  if (strcmp(kind, "flood") == 0 && reply->retry_after > 0) {
    delay = (long)(reply->retry_after * 1000);
    metric_inc(METRIC_API_FLOOD_WAITS, NULL, NULL);
    metric_add(METRIC_API_FLOOD_WAIT_SECONDS, reply->retry_after, NULL, NULL);
  }
  w->next_delay_ms = w->next_delay_ms * 2 > MAX_BACKOFF_MS
                         ? MAX_BACKOFF_MS : w->next_delay_ms * 2;
  struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
  evtimer_add(w->retry_timer, &tv);
}

static void on_set_webhook(struct http_request *req, void *ud) {
  struct webhook *w = ud;
  w->req = NULL;
  struct botapi_reply reply;
  botapi_parse_reply(req, &reply);
  if (reply.outcome == BOTAPI_OK) {
    if (w->failures)
      log_info("setWebhook works again after %d failed attempts",
               w->failures);
    w->failures = 0;
    bool first = !w->set;
    w->set = true;
    metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_WEBHOOK);
    metric_set(METRIC_SOURCE_FAILING_SINCE, 0, NULL, NULL);
    log_info("webhook set: Telegram posts updates to %s (max_connections "
             "%d, allowed_updates %s); tghost answers them on %s", w->url,
             w->max_connections,
             w->allowed_updates_json ? w->allowed_updates_json : "unchanged",
             w->bound);
    free(w->set_allowed);
    w->set_allowed = w->allowed_updates_json ? xstrdup(w->allowed_updates_json)
                                             : NULL;
    w->set_max_connections = w->max_connections;
    webhook_info_start(w->info);
    if (first) source_ready(&w->source);
    if (w->resend) {
      w->resend = false;
      send_set_webhook(w);
    }
  } else {
    set_failed(w, &reply);
  }
  botapi_reply_free(&reply);
  http_request_free(req);
}

static void send_set_webhook(struct webhook *w) {
  if (w->req) {
    w->resend = true;
    return;
  }
  struct buf body = BUF_INIT, err = BUF_INIT;
  buf_append_str(&body, "{\"url\":");
  json_write_string(&body, w->url, strlen(w->url));
  buf_append_str(&body, ",\"secret_token\":");
  json_write_string(&body, w->secret, w->secret_len);
  buf_printf(&body, ",\"max_connections\":%d", w->max_connections);
  if (w->allowed_updates_json)
    buf_printf(&body, ",\"allowed_updates\":%s", w->allowed_updates_json);
  buf_append_char(&body, '}');
  size_t len;
  char *json = buf_steal(&body, &len);
  struct http_request *req =
      botapi_request_json(w->api, "setWebhook", json, len, &err);
  if (!req) {
    source_fatal(&w->source, err.data);
    buf_free(&err);
    return;
  }
  http_request_set_timeout(req, 30000);
  if (http_request_start(req, on_set_webhook, w) != 0) {
    struct botapi_reply reply = {.outcome = BOTAPI_NETWORK_ERROR};
    buf_printf(&reply.description, "cannot start the request: %s",
               http_request_error(req));
    http_request_free(req);
    set_failed(w, &reply);
    botapi_reply_free(&reply);
    return;
  }
  w->req = req;
}

/* --- the public side ----------------------------------------------------- */

static int clamp_connections(int n) {
  return n < 1 ? 1 : n > WEBHOOK_MAX_CONNECTIONS ? WEBHOOK_MAX_CONNECTIONS : n;
}

static struct webhook *webhook_new(struct botapi *api,
                                   struct event_base *base,
                                   const struct webhook_config *cfg,
                                   struct buf *err) {
  if (!cfg->url || (strncmp(cfg->url, "https://", 8) != 0 &&
                    strncmp(cfg->url, "http://", 7) != 0)) {
    buf_printf(err, "the webhook URL must start with https:// (Telegram "
               "posts only over HTTPS), not '%s'", cfg->url ? cfg->url : "");
    return NULL;
  }
  if (!cfg->listen) {
    buf_append_str(err, "a webhook needs an address to listen on: --listen "
                        "ADDR:PORT (or webhook.listen in run())");
    return NULL;
  }
  struct webhook *w = xcalloc(1, sizeof *w);
  if ((cfg->secret_file ? read_secret_file(w, cfg->secret_file, err)
                        : random_secret(w, err)) != 0) {
    free(w);
    return NULL;
  }
  static const struct httpd_callbacks http_cb = {check_head, on_request,
                                                on_refused};
  w->http = httpd_new(base, cfg->listen, "webhook", "--listen", &limits,
                      &http_cb, w, w->bound, sizeof w->bound, err);
  if (!w->http) {
    memset(w->secret, 0, sizeof w->secret);
    free(w);
    return NULL;
  }
  log_add_secret(w->secret);
  w->api = api;
  w->base = base;
  w->url = xstrdup(cfg->url);
  w->allowed_updates_json =
      cfg->allowed_updates_json ? xstrdup(cfg->allowed_updates_json) : NULL;
  w->max_connections = clamp_connections(cfg->max_connections);
  w->max_retry_ms = cfg->max_retry_ms;
  qlist_init(&w->held);
  qlist_init(&w->handed);
  idwindow_init(&w->window, WEBHOOK_WINDOW);
  w->info = webhook_info_new(api, base, w->url);
  w->ready_event = event_new(base, -1, 0, on_ready_event, w);
  w->sweep_timer = evtimer_new(base, on_sweep, w);
  w->retry_timer = evtimer_new(base, on_retry, w);
  log_info("webhook: listening on %s for updates posted to %s", w->bound,
           w->url);
  return w;
}

static void webhook_free(struct webhook *w) {
  if (!w) return;
  answer_all(w, &w->held, 503, "Service Unavailable", "stopping\n");
  answer_all(w, &w->handed, 503, "Service Unavailable", "stopping\n");
  note_held(w);
  if (w->req) http_request_free(w->req);
  webhook_info_free(w->info);
  httpd_free(w->http);
  event_free(w->ready_event);
  event_free(w->sweep_timer);
  event_free(w->retry_timer);
  idwindow_free(&w->window);
  memset(w->secret, 0, sizeof w->secret);
  free(w->url);
  free(w->allowed_updates_json);
  free(w->set_allowed);
  free(w);
}

static void webhook_start(struct webhook *w) {
  metric_set_state(METRIC_SOURCE_STATE, SOURCE_STATE_STARTING);
  send_set_webhook(w);
}

static void webhook_configure(struct webhook *w, const char *allowed_updates_json,
                       int max_connections) {
  free(w->allowed_updates_json);
  w->allowed_updates_json =
      allowed_updates_json ? xstrdup(allowed_updates_json) : NULL;
  w->max_connections = clamp_connections(max_connections);
  if (!w->set) return;   /* the first setWebhook, in flight, or later */
  bool same_allowed =
      (w->set_allowed == NULL) == (w->allowed_updates_json == NULL) &&
      (!w->set_allowed || strcmp(w->set_allowed, w->allowed_updates_json) == 0);
  if (same_allowed && w->set_max_connections == w->max_connections) return;
  send_set_webhook(w);
}

static void webhook_remember(struct webhook *w, const int64_t *ids, size_t n) {
  for (size_t i = 0; i < n; i++) idwindow_add(&w->window, ids[i]);
}

static size_t webhook_take(struct webhook *w, int limit, struct qlist *batch) {
  size_t taken = 0;
  struct qnode *n;
  while (limit > 0 && (n = qlist_pop_front(&w->held))) {
    struct held *h = qlist_entry(n, struct held, node);
    w->held_bytes -= h->len;
    if (!idwindow_add(&w->window, h->id)) {
      /* A copy of one taken while both were held. */
      metric_inc(METRIC_WEBHOOK_DUPLICATES, NULL, NULL);
      answer(h->req, 200, "OK", NULL);
      held_free(h);
      continue;
    }
    struct update_item *u = xcalloc(1, sizeof *u);
    u->id = h->id;
    u->json = h->json;
    u->len = h->len;
    h->json = NULL;
    qlist_push_back(batch, &u->node);
    qlist_push_back(&w->handed, &h->node);
    taken++;
    limit--;
  }
  return taken;
}

static void webhook_accepted(struct webhook *w) {
  answer_all(w, &w->handed, 200, "OK", NULL);
}

static void webhook_stop(struct webhook *w) {
  if (w->stopping) return;
  w->stopping = true;
  size_t n = qlist_size(&w->held);
  answer_all(w, &w->held, 503, "Service Unavailable", "stopping\n");
  if (w->req) {
    http_request_free(w->req);
    w->req = NULL;
  }
  evtimer_del(w->retry_timer);
  webhook_info_stop(w->info);
  if (n)
    log_info("webhook: %zu held update(s) answered 503: Telegram delivers "
             "them again to the next start", n);
}

/* --- the source operations ---------------------------------------------- */

static struct webhook *webhook_of(struct update_source *s) {
  return (struct webhook *)s;
}

/* Telegram opens at most this many connections at once: as many as
 * updates may run at once (one for the sequential sink). */
static int connections_for(const struct run_options *o) {
  return o->sink == SINK_SEQUENTIAL ? 1 : o->concurrency;
}

static void source_start_webhook(struct update_source *s) {
  webhook_start(webhook_of(s));
}

/* What was POSTed enters the sink as a polled batch would; its 200s go out
 * once it is accepted. */
static void source_fetch_webhook(struct update_source *s, int limit) {
  struct webhook *w = webhook_of(s);
  if (w->stopping) return;
  struct qlist batch;
  qlist_init(&batch);
  if (webhook_take(w, limit, &batch) == 0) return;
  source_deliver(s, &batch, "webhook");
}

static void source_accept_webhook(struct update_source *s) {
  webhook_accepted(webhook_of(s));
}

static void source_outcome_webhook(struct update_source *s, int64_t id,
                                   enum update_outcome o, const char *why) {
  (void)s, (void)id, (void)o, (void)why;
}

static void source_known_webhook(struct update_source *s, const int64_t *ids,
                                 size_t n) {
  webhook_remember(webhook_of(s), ids, n);
}

static void source_reconfigure_webhook(struct update_source *s,
                                       const struct run_options *o) {
  webhook_configure(webhook_of(s), o->allowed_updates_json,
                    connections_for(o));
}

static void source_stop_webhook(struct update_source *s) {
  webhook_stop(webhook_of(s));
}

/* getUpdates cannot confirm anything while a webhook is set: every update
 * handed over was answered 200 already. */
static void source_drained_webhook(struct update_source *s) {
  log_info("stopped; the webhook stays set, so Telegram keeps new updates "
           "until tghost is back (deleteWebhook removes it)");
  source_stopped(s);
}

static void source_health_webhook(struct update_source *s) {
  note_held(webhook_of(s));
}

static void source_free_webhook(struct update_source *s) {
  webhook_free(webhook_of(s));
}

static const struct update_source_type webhook_type = {
    .name = "webhook",
    /* Answered 200: Telegram will not send them again. */
    .releases_unstarted = false,
    .start = source_start_webhook,
    .fetch = source_fetch_webhook,
    .accept = source_accept_webhook,
    .outcome = source_outcome_webhook,
    .known = source_known_webhook,
    .reconfigure = source_reconfigure_webhook,
    .stop = source_stop_webhook,
    .drained = source_drained_webhook,
    .abort = source_stop_webhook,
    .health = source_health_webhook,
    .free = source_free_webhook,
};

static bool webhook_wanted(const struct update_source_params *p) {
  return p->opts->webhook_url != NULL;
}

static struct update_source *webhook_create(
    const struct update_source_params *p, const struct update_source_events *ev,
    void *ud, struct buf *err) {
  const struct run_options *o = p->opts;
  struct webhook_config wc = {
      .url = o->webhook_url,
      .listen = o->webhook_listen,
      .secret_file = o->webhook_secret_file,
      .allowed_updates_json = o->allowed_updates_json,
      .max_connections = connections_for(o),
      .max_retry_ms = o->max_retry_ms,
  };
  struct webhook *w = webhook_new(p->api, p->base, &wc, err);
  if (!w) return NULL;
  update_source_init(&w->source, &webhook_type, ev, ud);
  return &w->source;
}

const struct update_source_entry webhook_source_entry = {
    "webhook", webhook_wanted, webhook_create};
