#include "fakeapi.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "base/buf.h"
#include "base/json.h"

#define MAX_HEAD 65536

struct update {
  int64_t id;
  char *json;
  int delivered;
};

struct method_count {
  char *method;
  uint64_t count;
  long delay_ms;
  bool has_delay;
};

struct pending;

struct fake_file {
  char *file_id;
  char *data;
  size_t len;
};

struct fake_conn {
  struct fakeapi *f;
  struct bufferevent *bev;
  int id;
  struct fake_conn *prev, *next;
  bool have_head;
  size_t content_length;
  bool chunked;
  bool close_after;
  bool closing;
  int reading;          /* inside conn_read: freeing is deferred */
  char method[16];
  char *target;
  char *content_type;
  char *raw_head;             /* the request head as received */
  struct buf body;
  struct pending *pending;
};

struct pending {
  struct fake_conn *conn;
  struct fake_call *call;     /* NULL for getUpdates */
  struct event *timer;
  bool is_poll;
  int64_t offset;
  int limit;
  size_t poll_index;
  enum fake_fault fault;
  int status;
  char *body;
  size_t len;
};

struct fakeapi {
  struct event_base *base;
  struct evconnlistener *listener;
  int port;
  char url[64];
  char *token;
  char *username;
  int64_t bot_id;

  struct update *updates;
  size_t nupdates, updates_cap, first;
  int64_t next_id;
  int64_t confirmed_offset;

  struct fake_call **calls;
  size_t ncalls, calls_cap;
  struct fake_poll *polls;
  size_t npolls, polls_cap;
  size_t unanswered, max_unanswered;
  struct method_count *methods;
  size_t nmethods;
  struct pending *held_poll;

  fake_fault_fn fault_fn;
  void *fault_ud;
  int retry_after;
  char *retry_after_text;     /* overrides retry_after in 429 bodies */
  char *raw_body;             /* FAULT_RAW_200's answer */
  fake_delay_fn delay_fn;
  void *delay_ud;

  struct fake_file *files;    /* served by getFile and /file/bot<token>/ */
  size_t nfiles;
  size_t http_requests, downloads;

  struct fake_conn *conns;
  int next_conn_id;
  size_t accepted;
  int64_t next_message_id;
  char *webhook_url;          /* setWebhook's url while one is set */
  /* What getWebhookInfo reports besides (fakeapi_set_webhook_info). */
  char *info_url;             /* NULL: webhook_url */
  int64_t info_error_date;
  char *info_error_message;
  int64_t info_pending;
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct method_count *method_entry(struct fakeapi *f, const char *m) {
  for (size_t i = 0; i < f->nmethods; i++)
    if (strcmp(f->methods[i].method, m) == 0) return &f->methods[i];
  f->methods = xrealloc(f->methods, (f->nmethods + 1) * sizeof *f->methods);
  struct method_count *e = &f->methods[f->nmethods++];
  memset(e, 0, sizeof *e);
  e->method = xstrdup(m);
  return e;
}

/* --- reading params ----------------------------------------------------- */

static bool member(const char *json, size_t len, const char *name,
                   struct json_reader *at) {
  return json && json_find_member(json, len, name, at);
}

bool fake_call_int(const struct fake_call *c, const char *name, int64_t *out) {
  struct json_reader at;
  if (!member(c->params, c->params_len, name, &at)) return false;
  enum json_kind k = json_peek(&at);
  if (k == JSON_NUMBER) {
    struct json_number n;
    if (!json_read_number(&at, &n) || !n.is_integer) return false;
    *out = n.i;
    return true;
  }
  if (k == JSON_STRING) {   /* form-encoded numbers arrive as strings */
    struct json_slice s;
    if (!json_read_string(&at, &s)) return false;
    char tmp[32];
    if (s.len == 0 || s.len >= sizeof tmp) return false;
    memcpy(tmp, s.ptr, s.len);
    tmp[s.len] = '\0';
    char *end;
    long long v = strtoll(tmp, &end, 10);
    if (*end) return false;
    *out = v;
    return true;
  }
  return false;
}

char *fake_call_string(const struct fake_call *c, const char *name) {
  struct json_reader at;
  struct json_slice s;
  if (!member(c->params, c->params_len, name, &at)) return NULL;
  if (json_peek(&at) != JSON_STRING || !json_read_string(&at, &s)) return NULL;
  struct buf out = BUF_INIT;
  json_unescape(&s, &out);
  return buf_steal(&out, NULL);
}

char *fake_call_raw(const struct fake_call *c, const char *name) {
  struct json_reader at;
  struct json_slice span;
  if (!member(c->params, c->params_len, name, &at)) return NULL;
  if (!json_skip(&at, &span)) return NULL;
  return xstrndup(span.ptr, span.len);
}

static int hexdigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void url_decode(const char *s, size_t len, struct buf *out) {
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '+') {
      buf_append_char(out, ' ');
    } else if (s[i] == '%' && i + 2 < len && hexdigit(s[i + 1]) >= 0 &&
               hexdigit(s[i + 2]) >= 0) {
      buf_append_char(out, (char)(hexdigit(s[i + 1]) * 16 + hexdigit(s[i + 2])));
      i += 2;
    } else {
      buf_append_char(out, s[i]);
    }
  }
}

/* a=1&b=x -> {"a":"1","b":"x"} */
static void form_to_json(const char *s, size_t len, struct buf *out) {
  buf_append_char(out, '{');
  bool first = true;
  const char *p = s, *end = s + len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (!amp) amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p));
    if (amp > p) {
      struct buf k = BUF_INIT, v = BUF_INIT;
      url_decode(p, (size_t)((eq ? eq : amp) - p), &k);
      if (eq) url_decode(eq + 1, (size_t)(amp - eq - 1), &v);
      if (!first) buf_append_char(out, ',');
      first = false;
      json_write_string(out, k.data ? k.data : "", k.len);
      buf_append_char(out, ':');
      json_write_string(out, v.data ? v.data : "", v.len);
      buf_free(&k);
      buf_free(&v);
    }
    p = amp + 1;
  }
  buf_append_char(out, '}');
}

/* --- responses ---------------------------------------------------------- */

/* Script I/O endpoints (defined further down). */
static void build_get_file(struct fakeapi *f, struct fake_call *call,
                           struct buf *out);

static void conn_free(struct fake_conn *c);

static void pending_free(struct pending *p) {
  if (!p) return;
  if (p->timer) event_free(p->timer);
  free(p->body);
  free(p);
}

static void mark_answered(struct fakeapi *f, struct fake_call *call) {
  if (!call || call->answered_us) return;
  call->answered_us = now_us();
  f->unanswered--;
}

static void write_response(struct fake_conn *c, int status, const char *body,
                           size_t len, enum fake_fault fault) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  static const char garbage[] = "<html>this is not JSON {\"ok\":tru";
  if (fault == FAULT_RESET) {
    struct linger lg = {1, 0};
    setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_free(c);
    return;
  }
  char errbody[256];
  const char *reason = "OK";
  switch (fault) {
    case FAULT_500:
      status = 500;
      len = (size_t)snprintf(errbody, sizeof errbody,
                             "{\"ok\":false,\"error_code\":500,\"description\":"
                             "\"Internal Server Error\"}");
      body = errbody;
      break;
    case FAULT_502_HTML:
      status = 502;
      len = (size_t)snprintf(errbody, sizeof errbody,
                             "<html><body><h1>502 Bad Gateway</h1></body></html>");
      body = errbody;
      break;
    case FAULT_GARBAGE:
      body = garbage;
      len = sizeof garbage - 1;
      break;
    case FAULT_429: {
      status = 429;
      char num[64];
      if (c->f->retry_after_text)
        snprintf(num, sizeof num, "%s", c->f->retry_after_text);
      else
        snprintf(num, sizeof num, "%d", c->f->retry_after);
      len = (size_t)snprintf(errbody, sizeof errbody,
                             "{\"ok\":false,\"error_code\":429,\"description\":"
                             "\"Too Many Requests: retry after %s\","
                             "\"parameters\":{\"retry_after\":%s}}",
                             num, num);
      body = errbody;
      break;
    }
    case FAULT_OK_FALSE_200:
      len = (size_t)snprintf(errbody, sizeof errbody, "{\"ok\":false}");
      body = errbody;
      break;
    case FAULT_RAW_200:
      len = (size_t)snprintf(errbody, sizeof errbody, "%s",
                             c->f->raw_body ? c->f->raw_body : "");
      body = errbody;
      break;
    case FAULT_401:
      status = 401;
      len = (size_t)snprintf(errbody, sizeof errbody,
                             "{\"ok\":false,\"error_code\":401,\"description\":"
                             "\"Unauthorized\"}");
      body = errbody;
      break;
    case FAULT_409_WEBHOOK:
      status = 409;
      len = (size_t)snprintf(errbody, sizeof errbody,
                             "{\"ok\":false,\"error_code\":409,\"description\":"
                             "\"Conflict: can't use getUpdates method while "
                             "webhook is active; use deleteWebhook to delete "
                             "the webhook first\"}");
      body = errbody;
      break;
    case FAULT_409:
      status = 409;
      len = (size_t)snprintf(errbody, sizeof errbody,
                             "{\"ok\":false,\"error_code\":409,\"description\":"
                             "\"Conflict: terminated by other getUpdates request; "
                             "make sure that only one bot instance is running\"}");
      body = errbody;
      break;
    default:
      break;
  }
  switch (status) {
    case 200: reason = "OK"; break;
    case 400: reason = "Bad Request"; break;
    case 401: reason = "Unauthorized"; break;
    case 404: reason = "Not Found"; break;
    case 409: reason = "Conflict"; break;
    case 429: reason = "Too Many Requests"; break;
    case 500: reason = "Internal Server Error"; break;
    case 502: reason = "Bad Gateway"; break;
    default: reason = "Status"; break;
  }
  size_t declared = fault == FAULT_TRUNCATED ? len + 100 : len;
  evbuffer_add_printf(out,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                      status, reason,
                      fault == FAULT_502_HTML || fault == FAULT_GARBAGE
                          ? "text/html" : "application/json",
                      declared);
  evbuffer_add(out, body, len);
  if (fault == FAULT_TRUNCATED) c->close_after = true;
}

static void answer_pending(struct pending *p) {
  struct fake_conn *c = p->conn;
  c->pending = NULL;
  mark_answered(c->f, p->call);
  write_response(c, p->status, p->body, p->len, p->fault);
  pending_free(p);
}

static void on_delay(evutil_socket_t fd, short what, void *arg) {
  answer_pending(arg);
}

/* --- getUpdates --------------------------------------------------------- */

static void confirm(struct fakeapi *f, int64_t offset) {
  if (offset <= f->confirmed_offset) return;
  f->confirmed_offset = offset;
  while (f->first < f->nupdates && f->updates[f->first].id < offset) {
    free(f->updates[f->first].json);
    f->updates[f->first].json = NULL;
    f->first++;
  }
}

/* Builds {"ok":true,"result":[...]} with up to limit updates >= offset. */
static int collect_updates(struct fakeapi *f, int64_t offset, int limit,
                           struct buf *out) {
  buf_append_str(out, "{\"ok\":true,\"result\":[");
  int n = 0;
  for (size_t i = f->first; i < f->nupdates && n < limit; i++) {
    struct update *u = &f->updates[i];
    if (u->id < offset || !u->json) continue;
    if (n++) buf_append_char(out, ',');
    buf_append_str(out, u->json);
    u->delivered++;
  }
  buf_append_str(out, "]}");
  return n;
}

static void answer_poll(struct pending *p) {
  struct fakeapi *f = p->conn->f;
  struct buf out = BUF_INIT;
  int n = collect_updates(f, p->offset, p->limit, &out);
  f->polls[p->poll_index].returned = n;
  if (f->held_poll == p) f->held_poll = NULL;
  p->status = 200;
  p->body = buf_steal(&out, &p->len);
  answer_pending(p);
}

static void on_poll_timeout(evutil_socket_t fd, short what, void *arg) {
  answer_poll(arg);
}

static bool has_updates_from(struct fakeapi *f, int64_t offset) {
  for (size_t i = f->first; i < f->nupdates; i++)
    if (f->updates[i].id >= offset && f->updates[i].json) return true;
  return false;
}

static void handle_get_updates(struct fake_conn *c, const char *params,
                               size_t len) {
  struct fakeapi *f = c->f;
  struct fake_call tmp = {.params = (char *)params, .params_len = len};
  int64_t offset = 0, limit = 100, timeout = 0;
  fake_call_int(&tmp, "offset", &offset);
  fake_call_int(&tmp, "limit", &limit);
  fake_call_int(&tmp, "timeout", &timeout);
  if (limit < 1 || limit > 100) limit = 100;
  if (f->npolls == f->polls_cap) {
    f->polls_cap = f->polls_cap ? f->polls_cap * 2 : 256;
    f->polls = xrealloc(f->polls, f->polls_cap * sizeof *f->polls);
  }
  size_t index = f->npolls++;
  struct fake_poll *poll = &f->polls[index];
  memset(poll, 0, sizeof *poll);
  poll->offset = offset;
  poll->limit = (int)limit;
  poll->timeout = (int)timeout;
  poll->allowed_updates = fake_call_raw(&tmp, "allowed_updates");
  poll->received_us = now_us();
  poll->connection = c->id;

  /* Telegram confirms on receipt, whatever happens to the answer. */
  confirm(f, offset);
  struct method_count *mc = method_entry(f, "getUpdates");
  enum fake_fault fault =
      f->fault_fn ? f->fault_fn(f->fault_ud, "getUpdates", mc->count) : FAULT_NONE;
  mc->count++;
  /* As Telegram: no polling while a webhook is set. */
  if (f->webhook_url && fault == FAULT_NONE) fault = FAULT_409_WEBHOOK;

  if (f->held_poll) {   /* a newer poll ends the older one, as Telegram does */
    struct pending *old = f->held_poll;
    f->held_poll = NULL;
    old->fault = FAULT_409;
    answer_pending(old);
  }
  struct pending *p = xcalloc(1, sizeof *p);
  p->conn = c;
  p->is_poll = true;
  p->offset = offset;
  p->limit = (int)limit;
  p->poll_index = index;
  c->pending = p;
  if (fault == FAULT_HOLD) return;
  if (fault != FAULT_NONE) {
    p->fault = fault;
    p->status = 200;
    answer_pending(p);
    return;
  }
  if (has_updates_from(f, offset) || timeout <= 0) {
    answer_poll(p);
    return;
  }
  f->held_poll = p;
  p->timer = evtimer_new(f->base, on_poll_timeout, p);
  struct timeval tv = {(long)timeout, 0};
  evtimer_add(p->timer, &tv);
}

/* --- other methods ------------------------------------------------------ */

static void build_result(struct fakeapi *f, struct fake_call *call,
                         struct buf *out) {
  if (strcmp(call->method, "getMe") == 0) {
    buf_printf(out,
               "{\"ok\":true,\"result\":{\"id\":%lld,\"is_bot\":true,"
               "\"first_name\":\"Test Bot\",\"username\":",
               (long long)f->bot_id);
    json_write_string(out, f->username, strlen(f->username));
    buf_append_str(out, ",\"can_join_groups\":true,"
                        "\"can_read_all_group_messages\":false,"
                        "\"supports_inline_queries\":true}}");
    return;
  }
  if (strcmp(call->method, "sendMessage") == 0) {
    char *chat = fake_call_raw(call, "chat_id");
    char *text = fake_call_raw(call, "text");
    if (!chat || !text) {
      buf_append_str(out, "{\"ok\":false,\"error_code\":400,\"description\":"
                          "\"Bad Request: chat_id and text are required\"}");
    } else {
      buf_printf(out,
                 "{\"ok\":true,\"result\":{\"message_id\":%lld,\"from\":"
                 "{\"id\":%lld,\"is_bot\":true,\"first_name\":\"Test Bot\"},"
                 "\"chat\":{\"id\":%s,\"type\":\"private\"},\"date\":%lld,"
                 "\"text\":%s}}",
                 (long long)++f->next_message_id, (long long)f->bot_id, chat,
                 (long long)time(NULL), text);
    }
    free(chat);
    free(text);
    return;
  }
  if (strcmp(call->method, "sendMessageDraft") == 0) {
    int64_t draft_id = 0;
    char *text = fake_call_string(call, "text");
    if (!fake_call_int(call, "draft_id", &draft_id) || !draft_id || !text ||
        !*text)
      buf_append_str(out, "{\"ok\":false,\"error_code\":400,\"description\":"
                          "\"Bad Request: draft_id and text are required\"}");
    else if (call->chat_id < 0)   /* the updates' groups (fakeapi_push_text) */
      buf_append_str(out, "{\"ok\":false,\"error_code\":400,\"description\":"
                          "\"Bad Request: message drafts can be sent only to "
                          "private chats\"}");
    else
      buf_append_str(out, "{\"ok\":true,\"result\":true}");
    free(text);
    return;
  }
  if (strcmp(call->method, "getFile") == 0) {
    build_get_file(f, call, out);
    return;
  }
  if (strcmp(call->method, "setWebhook") == 0 ||
      strcmp(call->method, "deleteWebhook") == 0) {
    char *url = strcmp(call->method, "setWebhook") == 0
                    ? fake_call_string(call, "url") : NULL;
    free(f->webhook_url);
    f->webhook_url = url && *url ? url : NULL;
    if (url && !*url) free(url);
  }
  if (strcmp(call->method, "getWebhookInfo") == 0) {
    buf_append_str(out, "{\"ok\":true,\"result\":{\"url\":");
    const char *url = f->info_url        ? f->info_url
                      : f->webhook_url ? f->webhook_url : "";
    json_write_string(out, url, strlen(url));
    buf_printf(out, ",\"has_custom_certificate\":false,"
               "\"pending_update_count\":%lld", (long long)f->info_pending);
    if (f->info_error_date) {
      buf_printf(out, ",\"last_error_date\":%lld,\"last_error_message\":",
                 (long long)f->info_error_date);
      const char *m = f->info_error_message ? f->info_error_message : "";
      json_write_string(out, m, strlen(m));
    }
    buf_append_str(out, "}}");
    return;
  }
  buf_append_str(out, "{\"ok\":true,\"result\":true}");
}

static struct fake_call *record_call(struct fake_conn *c, const char *method,
                                     const char *params, size_t len) {
  struct fakeapi *f = c->f;
  struct fake_call *call = xcalloc(1, sizeof *call);
  call->seq = f->ncalls;
  call->method = xstrdup(method);
  call->params = xstrndup(params, len);
  call->params_len = len;
  call->received_us = now_us();
  call->connection = c->id;
  fake_call_int(call, "chat_id", &call->chat_id);
  if (f->ncalls == f->calls_cap) {
    f->calls_cap = f->calls_cap ? f->calls_cap * 2 : 1024;
    f->calls = xrealloc(f->calls, f->calls_cap * sizeof *f->calls);
  }
  f->calls[f->ncalls++] = call;
  if (++f->unanswered > f->max_unanswered) f->max_unanswered = f->unanswered;
  return call;
}

static void handle_method(struct fake_conn *c, const char *method,
                          const char *params, size_t len) {
  struct fakeapi *f = c->f;
  struct fake_call *call = record_call(c, method, params, len);
  struct method_count *mc = method_entry(f, method);
  enum fake_fault fault =
      f->fault_fn ? f->fault_fn(f->fault_ud, method, mc->count) : FAULT_NONE;
  mc->count++;
  struct pending *p = xcalloc(1, sizeof *p);
  p->conn = c;
  p->call = call;
  p->fault = fault;
  p->status = 200;
  c->pending = p;
  if (fault == FAULT_HOLD) return;
  struct buf out = BUF_INIT;
  build_result(f, call, &out);
  if (strstr(out.data, "\"ok\":false")) p->status = 400;
  p->body = buf_steal(&out, &p->len);
  long delay = mc->has_delay ? mc->delay_ms : 0;
  if (f->delay_fn) delay = f->delay_fn(f->delay_ud, call);
  if (delay < 0) return;   /* never answered */
  if (delay == 0) {
    answer_pending(p);
    return;
  }
  p->timer = evtimer_new(f->base, on_delay, p);
  struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
  evtimer_add(p->timer, &tv);
}

/* --- multipart, files and plain HTTP endpoints (script I/O tests) ------ */

uint64_t fake_fnv1a64(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

/* The value of attr="..." in a header line, malloc'd, or NULL. */
static char *header_attr(const char *line, size_t len, const char *attr) {
  char pat[64];
  snprintf(pat, sizeof pat, "%s=\"", attr);
  size_t plen = strlen(pat);
  for (size_t i = 0; i + plen <= len; i++) {
    if (memcmp(line + i, pat, plen) != 0) continue;
    if (i > 0 && line[i - 1] != ' ' && line[i - 1] != ';') continue;
    const char *v = line + i + plen;
    const char *q = memchr(v, '"', len - i - plen);
    return q ? xstrndup(v, (size_t)(q - v)) : NULL;
  }
  return NULL;
}

/* multipart/form-data -> a JSON object: text fields as strings, file parts
 * (those with a filename) as {"filename", "size", "fnv1a64", "type"} so a
 * 50 MB upload is checked without being kept. */
static void multipart_to_json(const char *ct, const char *body, size_t len,
                              struct buf *out) {
  buf_append_char(out, '{');
  const char *b = strcasestr(ct, "boundary=");
  if (!b) {
    buf_append_char(out, '}');
    return;
  }
  b += 9;
  char delim[256];
  size_t blen = strcspn(b, "; \r\n");
  if (*b == '"') {
    b++;
    blen = strcspn(b, "\"");
  }
  if (blen + 4 >= sizeof delim) {
    buf_append_char(out, '}');
    return;
  }
  int dl = snprintf(delim, sizeof delim, "\r\n--%.*s", (int)blen, b);
  const char *end = body + len;
  /* The first delimiter has no CRLF before it. */
  const char *p = memmem(body, len, delim + 2, (size_t)dl - 2);
  bool first = true;
  while (p) {
    p += dl - 2;
    if (end - p >= 2 && p[0] == '-' && p[1] == '-') break;   /* the last */
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;
    const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!hend) break;
    const char *data = hend + 4;
    const char *next = memmem(data, (size_t)(end - data), delim, (size_t)dl);
    if (!next) break;
    char *name = NULL, *filename = NULL, *type = NULL;
    for (const char *line = p; line < hend;) {
      const char *eol = memmem(line, (size_t)(hend - line), "\r\n", 2);
      if (!eol) eol = hend;
      size_t ll = (size_t)(eol - line);
      if (ll > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
        name = header_attr(line, ll, "name");
        filename = header_attr(line, ll, "filename");
      } else if (ll > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
        const char *v = line + 13;
        while (*v == ' ') v++;
        type = xstrndup(v, (size_t)(eol - v));
      }
      line = eol + 2;
    }
    size_t dlen = (size_t)(next - data);
    if (name) {
      if (!first) buf_append_char(out, ',');
      first = false;
      json_write_string(out, name, strlen(name));
      buf_append_char(out, ':');
      if (filename) {
        buf_append_str(out, "{\"filename\":");
        json_write_string(out, filename, strlen(filename));
        buf_printf(out, ",\"size\":%zu,\"fnv1a64\":\"%016llx\"", dlen,
                   (unsigned long long)fake_fnv1a64(data, dlen));
        if (type) {
          buf_append_str(out, ",\"type\":");
          json_write_string(out, type, strlen(type));
        }
        buf_append_char(out, '}');
      } else {
        json_write_string(out, data, dlen);
      }
    }
    free(name);
    free(filename);
    free(type);
    p = next + 2;   /* at "--boundary" */
  }
  buf_append_char(out, '}');
}

static struct fake_file *find_file(struct fakeapi *f, const char *file_id) {
  for (size_t i = 0; i < f->nfiles; i++)
    if (strcmp(f->files[i].file_id, file_id) == 0) return &f->files[i];
  return NULL;
}

static void build_get_file(struct fakeapi *f, struct fake_call *call,
                           struct buf *out) {
  char *id = fake_call_string(call, "file_id");
  struct fake_file *file = id ? find_file(f, id) : NULL;
  if (!file) {
    buf_append_str(out, "{\"ok\":false,\"error_code\":400,\"description\":"
                        "\"Bad Request: invalid file_id\"}");
  } else {
    buf_append_str(out, "{\"ok\":true,\"result\":{\"file_id\":");
    json_write_string(out, id, strlen(id));
    buf_printf(out, ",\"file_unique_id\":\"u-%s\",\"file_size\":%zu,"
               "\"file_path\":\"files/%s\"}}", id, file->len, id);
  }
  free(id);
}

/* GET /file/bot<token>/files/<file_id> */
static void handle_file_download(struct fake_conn *c, const char *path) {
  struct fakeapi *f = c->f;
  struct buf prefix = BUF_INIT;
  buf_printf(&prefix, "/file/bot%s/files/", f->token);
  struct fake_file *file = NULL;
  if (strncmp(path, prefix.data, prefix.len) == 0)
    file = find_file(f, path + prefix.len);
  buf_free(&prefix);
  f->downloads++;
  if (!file) {
    static const char nf[] = "{\"ok\":false,\"error_code\":404,\"description\":\"Not Found\"}";
    write_response(c, 404, nf, sizeof nf - 1, FAULT_NONE);
    return;
  }
  write_response(c, 200, file->data, file->len, FAULT_NONE);
}

static long query_long(const char *query, const char *name, long def) {
  if (!query) return def;
  size_t n = strlen(name);
  for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
    if (strncmp(p, name, n) == 0 && p[n] == '=') return strtol(p + n + 1, NULL, 10);
  }
  return def;
}

/* /http/echo?ms=&status=&bytes=: answers after ms milliseconds with status
 * and either bytes filler bytes or a JSON echo of the request (method,
 * path, query, headers as received, body). */
static void handle_plain_http(struct fake_conn *c, const char *path,
                              const char *query) {
  struct fakeapi *f = c->f;
  f->http_requests++;
  long ms = query_long(query, "ms", 0);
  long status = query_long(query, "status", 200);
  long bytes = query_long(query, "bytes", -1);
  struct buf out = BUF_INIT;
  if (bytes >= 0) {
    buf_reserve(&out, (size_t)bytes);
    memset(out.data, 'x', (size_t)bytes);
    out.len = (size_t)bytes;
    out.data[out.len] = '\0';
  } else {
    buf_append_str(&out, "{\"method\":");
    json_write_string(&out, c->method, strlen(c->method));
    buf_append_str(&out, ",\"path\":");
    json_write_string(&out, path, strlen(path));
    buf_append_str(&out, ",\"query\":");
    json_write_string(&out, query ? query : "", query ? strlen(query) : 0);
    buf_append_str(&out, ",\"head\":");
    json_write_string(&out, c->raw_head ? c->raw_head : "",
                      c->raw_head ? strlen(c->raw_head) : 0);
    buf_append_str(&out, ",\"body\":");
    json_write_string(&out, c->body.data ? c->body.data : "", c->body.len);
    buf_append_char(&out, '}');
  }
  if (strcmp(c->method, "HEAD") == 0) buf_reset(&out);   /* no body */
  struct pending *p = xcalloc(1, sizeof *p);
  p->conn = c;
  p->status = (int)status;
  p->body = buf_steal(&out, &p->len);
  c->pending = p;
  if (ms <= 0) {
    answer_pending(p);
    return;
  }
  p->timer = evtimer_new(f->base, on_delay, p);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(p->timer, &tv);
}

void fakeapi_add_file(struct fakeapi *f, const char *file_id,
                      const void *data, size_t len) {
  f->files = xrealloc(f->files, (f->nfiles + 1) * sizeof *f->files);
  struct fake_file *file = &f->files[f->nfiles++];
  file->file_id = xstrdup(file_id);
  file->data = xmalloc(len ? len : 1);
  memcpy(file->data, data, len);
  file->len = len;
}

size_t fakeapi_http_requests(const struct fakeapi *f) {
  return f->http_requests;
}

size_t fakeapi_downloads(const struct fakeapi *f) { return f->downloads; }

/* --- HTTP --------------------------------------------------------------- */

static void handle_request(struct fake_conn *c) {
  struct fakeapi *f = c->f;
  char *path = c->target;
  char *query = strchr(path, '?');
  if (query) *query++ = '\0';
  if (strncmp(path, "/http/", 6) == 0) {
    handle_plain_http(c, path, query);
    return;
  }
  if (strncmp(path, "/file/bot", 9) == 0) {
    handle_file_download(c, path);
    return;
  }
  struct buf prefix = BUF_INIT;
  buf_printf(&prefix, "/bot%s/", f->token);
  if (strncmp(path, "/bot", 4) != 0) {
    static const char nf[] = "{\"ok\":false,\"error_code\":404,\"description\":\"Not Found\"}";
    write_response(c, 404, nf, sizeof nf - 1, FAULT_NONE);
    buf_free(&prefix);
    return;
  }
  if (strncmp(path, prefix.data, prefix.len) != 0) {
    static const char un[] = "{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}";
    write_response(c, 401, un, sizeof un - 1, FAULT_NONE);
    buf_free(&prefix);
    return;
  }
  const char *method = path + prefix.len;
  buf_free(&prefix);

  struct buf params = BUF_INIT;
  const char *ct = c->content_type ? c->content_type : "";
  if (c->body.len && strncasecmp(ct, "application/json", 16) == 0) {
    buf_append(&params, c->body.data, c->body.len);
  } else if (c->body.len &&
             strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
    form_to_json(c->body.data, c->body.len, &params);
  } else if (c->body.len && strncasecmp(ct, "multipart/form-data", 19) == 0) {
    multipart_to_json(ct, c->body.data, c->body.len, &params);
  } else if (query) {
    form_to_json(query, strlen(query), &params);
  } else {
    buf_append_str(&params, "{}");
  }
  if (strcmp(method, "getUpdates") == 0) handle_get_updates(c, params.data, params.len);
  else handle_method(c, method, params.data, params.len);
  buf_free(&params);
}

static void reset_parser(struct fake_conn *c) {
  c->have_head = false;
  c->content_length = 0;
  c->chunked = false;
  free(c->target);
  c->target = NULL;
  free(c->content_type);
  c->content_type = NULL;
  free(c->raw_head);
  c->raw_head = NULL;
  buf_reset(&c->body);
}

static bool parse_head(struct fake_conn *c, char *head) {
  char *line_end = strstr(head, "\r\n");
  if (!line_end) return false;
  *line_end = '\0';
  char target[8192];
  if (sscanf(head, "%15s %8191s", c->method, target) != 2) return false;
  c->target = xstrdup(target);
  bool expect = false;
  for (char *line = line_end + 2; *line;) {
    char *next = strstr(line, "\r\n");
    if (!next) break;
    *next = '\0';
    char *colon = strchr(line, ':');
    if (colon) {
      *colon = '\0';
      char *v = colon + 1;
      while (*v == ' ') v++;
      if (strcasecmp(line, "Content-Length") == 0) c->content_length = strtoull(v, NULL, 10);
      else if (strcasecmp(line, "Transfer-Encoding") == 0 && strcasestr(v, "chunked")) c->chunked = true;
      else if (strcasecmp(line, "Content-Type") == 0) c->content_type = xstrdup(v);
      else if (strcasecmp(line, "Expect") == 0 && strcasestr(v, "100-continue")) expect = true;
      else if (strcasecmp(line, "Connection") == 0 && strcasestr(v, "close")) c->close_after = true;
    }
    line = next + 2;
  }
  if (expect)
    evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
  return true;
}

/* Moves chunked body data into c->body; true once the last chunk is in. */
static int read_chunked(struct fake_conn *c, struct evbuffer *in) {
  for (;;) {
    struct evbuffer_ptr eol = evbuffer_search(in, "\r\n", 2, NULL);
    if (eol.pos < 0) return 0;
    char line[32];
    if (eol.pos >= (ssize_t)sizeof line) return -1;
    evbuffer_copyout(in, line, (size_t)eol.pos);
    line[eol.pos] = '\0';
    size_t size = strtoul(line, NULL, 16);
    size_t need = (size_t)eol.pos + 2 + size + 2;
    if (evbuffer_get_length(in) < need) return 0;
    evbuffer_drain(in, (size_t)eol.pos + 2);
    if (size > 0) {
      buf_reserve(&c->body, size);
      evbuffer_remove(in, c->body.data + c->body.len, size);
      c->body.len += size;
      c->body.data[c->body.len] = '\0';
    }
    evbuffer_drain(in, 2);
    if (size == 0) return 1;
  }
}

static void conn_free_now(struct fake_conn *c);

static void conn_read(struct bufferevent *bev, void *arg) {
  struct fake_conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  c->reading++;
  while (!c->pending && !c->closing) {
    if (!c->have_head) {
      struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
      if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HEAD) conn_free(c);
        break;
      }
      size_t hlen = (size_t)end.pos + 4;
      char *head = xmalloc(hlen + 1);
      evbuffer_remove(in, head, hlen);
      head[hlen] = '\0';
      free(c->raw_head);
      c->raw_head = xstrdup(head);
      bool ok = parse_head(c, head);
      free(head);
      if (!ok) {
        conn_free(c);
        break;
      }
      c->have_head = true;
    }
    if (c->chunked) {
      int r = read_chunked(c, in);
      if (r < 0) {
        conn_free(c);
        break;
      }
      if (r == 0) break;
    } else {
      if (evbuffer_get_length(in) < c->content_length) break;
      if (c->content_length) {
        buf_reserve(&c->body, c->content_length);
        evbuffer_remove(in, c->body.data, c->content_length);
        c->body.len = c->content_length;
        c->body.data[c->body.len] = '\0';
      }
    }
    handle_request(c);
    if (c->closing) break;
    reset_parser(c);
  }
  if (--c->reading == 0 && c->closing) conn_free_now(c);
}

static void conn_write(struct bufferevent *bev, void *arg) {
  struct fake_conn *c = arg;
  if (c->close_after && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    conn_free(c);
}

static void conn_event(struct bufferevent *bev, short what, void *arg) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(arg);
}

/* Closes a connection; the memory goes once no callback of it runs. */
static void conn_free(struct fake_conn *c) {
  struct fakeapi *f = c->f;
  if (c->closing) return;
  c->closing = true;
  if (c->pending) {
    struct pending *p = c->pending;
    if (p->call && !p->call->answered_us) {
      p->call->dropped = true;
      mark_answered(f, p->call);
    }
    if (f->held_poll == p) f->held_poll = NULL;
    pending_free(p);
    c->pending = NULL;
  }
  if (c->prev) c->prev->next = c->next;
  else f->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  bufferevent_disable(c->bev, EV_READ | EV_WRITE);
  if (!c->reading) conn_free_now(c);
}

static void conn_free_now(struct fake_conn *c) {
  bufferevent_free(c->bev);
  reset_parser(c);
  buf_free(&c->body);
  free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *addr, int len, void *arg) {
  struct fakeapi *f = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct fake_conn *c = xcalloc(1, sizeof *c);
  c->f = f;
  c->id = ++f->next_conn_id;
  c->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  c->next = f->conns;
  if (f->conns) f->conns->prev = c;
  f->conns = c;
  f->accepted++;
}

/* --- public ------------------------------------------------------------- */

struct fakeapi *fakeapi_new(struct event_base *base,
                            const struct fakeapi_config *cfg) {
  struct fakeapi *f = xcalloc(1, sizeof *f);
  f->base = base;
  f->token = xstrdup(cfg->token);
  f->username = xstrdup(cfg->username ? cfg->username : "test_bot");
  f->bot_id = cfg->bot_id ? cfg->bot_id : 7000000001;
  f->next_id = 1000;
  f->retry_after = 1;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = 0;
  f->listener = evconnlistener_new_bind(
      base, on_accept, f, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
      (struct sockaddr *)&sin, sizeof sin);
  if (!f->listener) {
    perror("fakeapi: listen");
    abort();
  }
  socklen_t slen = sizeof sin;
  getsockname(evconnlistener_get_fd(f->listener), (struct sockaddr *)&sin, &slen);
  f->port = ntohs(sin.sin_port);
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
  return f;
}

void fakeapi_free(struct fakeapi *f) {
  if (!f) return;
  while (f->conns) conn_free(f->conns);
  evconnlistener_free(f->listener);
  for (size_t i = 0; i < f->nupdates; i++) free(f->updates[i].json);
  free(f->updates);
  free(f->retry_after_text);
  free(f->raw_body);
  for (size_t i = 0; i < f->ncalls; i++) {
    free(f->calls[i]->method);
    free(f->calls[i]->params);
    free(f->calls[i]);
  }
  free(f->calls);
  for (size_t i = 0; i < f->npolls; i++) free(f->polls[i].allowed_updates);
  free(f->polls);
  for (size_t i = 0; i < f->nmethods; i++) free(f->methods[i].method);
  free(f->methods);
  for (size_t i = 0; i < f->nfiles; i++) {
    free(f->files[i].file_id);
    free(f->files[i].data);
  }
  free(f->files);
  free(f->token);
  free(f->username);
  free(f->webhook_url);
  free(f->info_url);
  free(f->info_error_message);
  free(f);
}

void fakeapi_set_webhook_info(struct fakeapi *f, const char *url,
                              int64_t error_date, const char *error_message,
                              int64_t pending) {
  free(f->info_url);
  free(f->info_error_message);
  f->info_url = url ? xstrdup(url) : NULL;
  f->info_error_date = error_date;
  f->info_error_message = error_message ? xstrdup(error_message) : NULL;
  f->info_pending = pending;
}

const char *fakeapi_webhook_url(const struct fakeapi *f) {
  return f->webhook_url;
}

int fakeapi_port(const struct fakeapi *f) { return f->port; }
const char *fakeapi_url(const struct fakeapi *f) { return f->url; }

void fakeapi_set_next_update_id(struct fakeapi *f, int64_t id) {
  f->next_id = id;
}

void fakeapi_push_raw_update(struct fakeapi *f, int64_t position,
                             const char *json) {
  if (f->nupdates == f->updates_cap) {
    f->updates_cap = f->updates_cap ? f->updates_cap * 2 : 1024;
    f->updates = xrealloc(f->updates, f->updates_cap * sizeof *f->updates);
  }
  struct update *u = &f->updates[f->nupdates++];
  u->id = position;
  u->delivered = 0;
  u->json = xstrdup(json);
  if (position >= f->next_id) f->next_id = position + 1;
  if (f->held_poll && u->id >= f->held_poll->offset) answer_poll(f->held_poll);
}

void fakeapi_set_fault_raw_body(struct fakeapi *f, const char *body) {
  free(f->raw_body);
  f->raw_body = body ? xstrdup(body) : NULL;
}

void fakeapi_set_fault_retry_after_text(struct fakeapi *f, const char *text) {
  free(f->retry_after_text);
  free(f->raw_body);
  f->retry_after_text = text ? xstrdup(text) : NULL;
}

int64_t fakeapi_push_update(struct fakeapi *f, const char *body) {
  if (f->nupdates == f->updates_cap) {
    f->updates_cap = f->updates_cap ? f->updates_cap * 2 : 1024;
    f->updates = xrealloc(f->updates, f->updates_cap * sizeof *f->updates);
  }
  struct update *u = &f->updates[f->nupdates++];
  u->id = f->next_id++;
  u->delivered = 0;
  struct buf json = BUF_INIT;
  buf_printf(&json, "{\"update_id\":%lld,%s}", (long long)u->id, body);
  u->json = buf_steal(&json, NULL);
  if (f->held_poll && u->id >= f->held_poll->offset) answer_poll(f->held_poll);
  return u->id;
}

int64_t fakeapi_push_text(struct fakeapi *f, int64_t chat_id, int64_t user_id,
                          const char *text) {
  struct buf body = BUF_INIT;
  buf_printf(&body,
             "\"message\":{\"message_id\":%lld,\"from\":{\"id\":%lld,"
             "\"is_bot\":false,\"first_name\":\"User\"},\"chat\":{\"id\":%lld,"
             "\"type\":\"%s\"},\"date\":%lld,\"text\":",
             (long long)f->next_id, (long long)user_id, (long long)chat_id,
             chat_id < 0 ? "supergroup" : "private", (long long)time(NULL));
  json_write_string(&body, text, strlen(text));
  if (text[0] == '/') {
    size_t n = strcspn(text, " ");
    buf_printf(&body, ",\"entities\":[{\"type\":\"bot_command\",\"offset\":0,"
                      "\"length\":%zu}]", n);
  }
  buf_append_char(&body, '}');
  int64_t id = fakeapi_push_update(f, body.data);
  buf_free(&body);
  return id;
}

void fakeapi_set_fault_fn(struct fakeapi *f, fake_fault_fn fn, void *ud) {
  f->fault_fn = fn;
  f->fault_ud = ud;
}

void fakeapi_set_fault_retry_after(struct fakeapi *f, int seconds) {
  f->retry_after = seconds;
}

void fakeapi_set_delay_fn(struct fakeapi *f, fake_delay_fn fn, void *ud) {
  f->delay_fn = fn;
  f->delay_ud = ud;
}

void fakeapi_set_method_delay(struct fakeapi *f, const char *method, long ms) {
  struct method_count *e = method_entry(f, method);
  e->has_delay = true;
  e->delay_ms = ms;
}

size_t fakeapi_call_count(const struct fakeapi *f) { return f->ncalls; }
const struct fake_call *fakeapi_call(const struct fakeapi *f, size_t i) {
  return i < f->ncalls ? f->calls[i] : NULL;
}

size_t fakeapi_count_method(const struct fakeapi *f, const char *method) {
  size_t n = 0;
  for (size_t i = 0; i < f->ncalls; i++)
    if (strcmp(f->calls[i]->method, method) == 0) n++;
  return n;
}

size_t fakeapi_poll_count(const struct fakeapi *f) { return f->npolls; }
const struct fake_poll *fakeapi_poll(const struct fakeapi *f, size_t i) {
  return i < f->npolls ? &f->polls[i] : NULL;
}

int64_t fakeapi_confirmed_offset(const struct fakeapi *f) {
  return f->confirmed_offset;
}

int fakeapi_times_delivered(const struct fakeapi *f, int64_t update_id) {
  /* Ids are given out consecutively, unless raw updates were pushed. */
  if (f->nupdates == 0 || update_id < f->updates[0].id) return 0;
  size_t i = (size_t)(update_id - f->updates[0].id);
  if (i < f->nupdates && f->updates[i].id == update_id)
    return f->updates[i].delivered;
  int n = 0;
  for (size_t j = 0; j < f->nupdates; j++)
    if (f->updates[j].id == update_id) n += f->updates[j].delivered;
  return n;
}

size_t fakeapi_unanswered(const struct fakeapi *f) { return f->unanswered; }
size_t fakeapi_max_unanswered(const struct fakeapi *f) {
  return f->max_unanswered;
}
size_t fakeapi_connections_accepted(const struct fakeapi *f) {
  return f->accepted;
}
