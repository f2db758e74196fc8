#include "fakemodel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "base/buf.h"
#include "base/json.h"

#define MAX_HEAD 65536
/* Backpressure: a new piece goes out only while the socket's output is
 * below HIGH; the write callback comes when it has drained to LOW. */
#define OUT_HIGH (128 * 1024)
#define OUT_LOW (32 * 1024)

enum answer_kind { A_BYTES, A_CHAT, A_SILENT };

struct answer {
  struct conn *c;
  size_t index;                /* its record */
  enum answer_kind kind;
  char *data;                  /* A_BYTES: what to send (NULL: a pattern) */
  size_t total, sent, chunk;
  long every_us;
  char **tokens;               /* A_CHAT */
  int ntokens, next;
  struct event *timer;
  bool due;                    /* the timer fired while the socket was full */
  bool sse;                    /* A_CHAT: as server-sent events */
};

enum body_state { BODY_NONE, BODY_LENGTH, BODY_CHUNK_SIZE, BODY_CHUNK_DATA,
                  BODY_CHUNK_CRLF, BODY_TRAILER, BODY_DONE };

struct conn {
  struct fakemodel *f;
  struct bufferevent *bev;
  struct conn *prev, *next;
  bool have_head;
  char method[16];
  char *target;
  enum body_state body_state;
  size_t left;                 /* of the body or of the chunk */
  bool keep_body;              /* false for /upload: hashed, not kept */
  struct buf body;
  size_t body_bytes;
  uint64_t body_hash;
  char content_type[128];      /* the request's, for /upload's answer */
  struct answer *ans;
};

struct fakemodel {
  struct event_base *base;
  struct evconnlistener *listener;
  int port;
  char url[64];
  int tokens;
  double seconds;
  bool bench;
  struct fakemodel_stream *streams;
  size_t nstreams, streams_cap;
  size_t open, max_open;
  struct conn *conns;
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t fnv_add(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static long query_long(const char *query, const char *name, long def) {
  size_t n = strlen(name);
  for (const char *p = query; p && *p;) {
    if (strncmp(p, name, n) == 0 && p[n] == '=') return strtol(p + n + 1, NULL, 10);
    p = strchr(p, '&');
    if (p) p++;
  }
  return def;
}

static char *query_string(const char *query, const char *name) {
  size_t n = strlen(name);
  for (const char *p = query; p && *p;) {
    if (strncmp(p, name, n) == 0 && p[n] == '=') {
      const char *v = p + n + 1;
      return xstrndup(v, strcspn(v, "&"));
    }
    p = strchr(p, '&');
    if (p) p++;
  }
  return NULL;
}

/* --- records ------------------------------------------------------------ */

static size_t record_new(struct fakemodel *f, const char *path) {
  if (f->nstreams == f->streams_cap) {
    f->streams_cap = f->streams_cap ? f->streams_cap * 2 : 256;
    f->streams = xrealloc(f->streams, f->streams_cap * sizeof *f->streams);
  }
  struct fakemodel_stream *s = &f->streams[f->nstreams];
  memset(s, 0, sizeof *s);
  s->path = xstrdup(path);
  s->started_us = now_us();
  if (++f->open > f->max_open) f->max_open = f->open;
  return f->nstreams++;
}

static void answer_free(struct answer *a) {
  if (!a) return;
  if (a->timer) event_free(a->timer);
  for (int i = 0; i < a->ntokens; i++) free(a->tokens[i]);
  free(a->tokens);
  free(a->data);
  free(a);
}

/* --- connections -------------------------------------------------------- */

static void conn_free(struct conn *c) {
  struct fakemodel *f = c->f;
  if (c->ans) {
    struct fakemodel_stream *s = &f->streams[c->ans->index];
    if (!s->ended_us) {
      s->dropped_us = now_us();
      f->open--;
    }
    answer_free(c->ans);
  }
  if (c->prev) c->prev->next = c->next;
  else f->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  bufferevent_free(c->bev);
  free(c->target);
  buf_free(&c->body);
  free(c);
}

static void reset_request(struct conn *c) {
  c->have_head = false;
  free(c->target);
  c->target = NULL;
  c->body_state = BODY_NONE;
  c->left = 0;
  buf_reset(&c->body);
  c->body_bytes = 0;
  c->body_hash = 1469598103934665603ULL;
  c->content_type[0] = '\0';
}

static void answer_done(struct conn *c) {
  struct fakemodel *f = c->f;
  struct fakemodel_stream *s = &f->streams[c->ans->index];
  s->ended_us = now_us();
  f->open--;
  answer_free(c->ans);
  c->ans = NULL;
  reset_request(c);
}

static void send_simple(struct conn *c, int status, const char *type,
                        const char *body, size_t len) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                      status, status == 200 ? "OK" : "Status", type, len);
  evbuffer_add(out, body, len);
}

static void send_chunk(struct conn *c, const char *data, size_t len) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "%zx\r\n", len);
  evbuffer_add(out, data, len);
  evbuffer_add(out, "\r\n", 2);
  c->f->streams[c->ans->index].bytes_sent += len;
}

static void start_chunked(struct conn *c, const char *type) {
  evbuffer_add_printf(bufferevent_get_output(c->bev),
                      "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                      "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
                      "Connection: keep-alive\r\n\r\n", type);
}

static void end_chunked(struct conn *c) {
  evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
  answer_done(c);
}

static bool socket_full(struct conn *c) {
  return evbuffer_get_length(bufferevent_get_output(c->bev)) >= OUT_HIGH;
}

static void arm(struct answer *a) {
  struct timeval tv = {a->every_us / 1000000, a->every_us % 1000000};
  evtimer_add(a->timer, &tv);
}

/* Sends what is due; returns when the answer is complete, the socket is
 * full, or the next piece is not due yet. */
static void pump(struct conn *c) {
  struct answer *a = c->ans;
  if (!a || a->kind == A_SILENT) return;
  if (a->kind == A_BYTES) {
    while (a->sent < a->total && !socket_full(c)) {
      size_t n = a->total - a->sent < a->chunk ? a->total - a->sent : a->chunk;
      if (a->data) {
        send_chunk(c, a->data + a->sent, n);
      } else {
        char *tmp = xmalloc(n);
        for (size_t i = 0; i < n; i++) tmp[i] = (char)('a' + (a->sent + i) % 26);
        send_chunk(c, tmp, n);
        free(tmp);
      }
      a->sent += n;
      if (a->every_us && a->sent < a->total) {
        arm(a);
        return;
      }
    }
    if (a->sent >= a->total) end_chunked(c);
    return;
  }
  /* A_CHAT: one token per tick, then [DONE]. */
  struct fakemodel_stream *s = &c->f->streams[a->index];
  if (a->next < a->ntokens) {
    struct buf ev = BUF_INIT;
    buf_append_str(&ev, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":");
    json_write_string(&ev, a->tokens[a->next], strlen(a->tokens[a->next]));
    buf_append_str(&ev, "}}]}\n\n");
    send_chunk(c, ev.data, ev.len);
    buf_free(&ev);
    s->token_us[s->tokens_sent++] = now_us();
    a->next++;
    arm(a);
    return;
  }
  static const char done[] = "data: [DONE]\n\n";
  send_chunk(c, done, sizeof done - 1);
  end_chunked(c);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  struct answer *a = arg;
  if (socket_full(a->c)) {
    a->due = true;   /* the write callback sends it */
    return;
  }
  pump(a->c);
}

static void conn_write(struct bufferevent *bev, void *arg) {
  struct conn *c = arg;
  struct answer *a = c->ans;
  if (!a) return;
  if (a->kind == A_BYTES && !a->every_us) pump(c);
  else if (a->due) {
    a->due = false;
    pump(c);
  }
}

static struct answer *answer_new(struct conn *c, enum answer_kind kind,
                                 const char *path) {
  struct answer *a = xcalloc(1, sizeof *a);
  a->c = c;
  a->kind = kind;
  a->index = record_new(c->f, path);
  a->timer = evtimer_new(c->f->base, on_tick, a);
  c->ans = a;
  return a;
}

/* --- chat completions --------------------------------------------------- */

static void chat_answer(struct conn *c) {
  struct fakemodel *f = c->f;
  struct json_reader r;
  struct buf prompt = BUF_INIT;
  int messages = 0;
  bool stream = false;
  json_reader_init(&r, c->body.data ? c->body.data : "", c->body.len);
  struct json_slice key;
  if (json_object_begin(&r)) {
    while (json_object_next(&r, &key)) {
      if (json_slice_is(&key, "stream")) {
        json_read_bool(&r, &stream);
      } else if (json_slice_is(&key, "messages") && json_array_begin(&r)) {
        while (json_array_next(&r)) {
          struct json_slice k2, v;
          bool user = false;
          struct buf content = BUF_INIT;
          if (!json_object_begin(&r)) break;
          while (json_object_next(&r, &k2)) {
            if (json_slice_is(&k2, "role") && json_read_string(&r, &v)) {
              user = json_slice_is(&v, "user");
            } else if (json_slice_is(&k2, "content") &&
                       json_read_string(&r, &v)) {
              json_unescape(&v, &content);
            } else {
              json_skip(&r, NULL);
            }
          }
          messages++;
          if (user) {
            buf_reset(&prompt);
            if (content.len) buf_append(&prompt, content.data, content.len);
          }
          buf_free(&content);
        }
      } else {
        json_skip(&r, NULL);
      }
    }
  }
  if (!messages) {
    static const char bad[] = "{\"error\":{\"message\":\"messages is required\"}}";
    struct answer *a = answer_new(c, A_SILENT, "/v1/chat/completions");
    (void)a;
    send_simple(c, 400, "application/json", bad, sizeof bad - 1);
    answer_done(c);
    buf_free(&prompt);
    return;
  }
  /* The answer's words. */
  struct answer *a = answer_new(c, A_CHAT, "/v1/chat/completions");
  struct fakemodel_stream *s = &f->streams[a->index];
  s->prompt = xstrdup(prompt.data ? prompt.data : "");
  s->messages = messages;
  struct buf text = BUF_INIT;
  if (f->bench) {
    for (int i = 0; i < f->tokens; i++) buf_printf(&text, "w%04d ", i + 1);
  } else {
    buf_printf(&text, "You said: %s. We have exchanged %d messages.",
               prompt.data ? prompt.data : "", messages);
  }
  /* Split into f->tokens pieces (bench: exactly one word each). */
  int n = f->tokens > 0 ? f->tokens : 1;
  a->tokens = xcalloc((size_t)n, sizeof *a->tokens);
  size_t per = text.len / (size_t)n, off = 0;
  for (int i = 0; i < n; i++) {
    size_t len = i == n - 1 ? text.len - off : per;
    /* Never inside a UTF-8 sequence. */
    while (off + len < text.len && ((unsigned char)text.data[off + len] & 0xC0) == 0x80)
      len++;
    a->tokens[a->ntokens++] = xstrndup(text.data + off, len);
    off += len;
    if (off >= text.len) break;
  }
  s->token_us = xcalloc((size_t)a->ntokens + 1, sizeof *s->token_us);
  buf_free(&prompt);
  if (!stream) {
    struct buf out = BUF_INIT;
    buf_append_str(&out, "{\"choices\":[{\"index\":0,\"message\":{\"role\":"
                         "\"assistant\",\"content\":");
    json_write_string(&out, text.data, text.len);
    buf_append_str(&out, "}}]}");
    send_simple(c, 200, "application/json", out.data, out.len);
    buf_free(&out);
    buf_free(&text);
    answer_done(c);
    return;
  }
  buf_free(&text);
  a->sse = true;
  a->every_us = (long)(f->seconds * 1e6 / a->ntokens);
  if (a->every_us < 1) a->every_us = 1;
  start_chunked(c, "text/event-stream");
  arm(a);
}

/* --- requests ----------------------------------------------------------- */

static void handle_request(struct conn *c) {
  char *path = c->target;
  char *query = strchr(path, '?');
  if (query) *query++ = '\0';
  if (strcmp(path, "/v1/chat/completions") == 0) {
    chat_answer(c);
    return;
  }
  if (strcmp(path, "/stream") == 0 || strcmp(path, "/echo") == 0) {
    bool echo = path[1] == 'e';
    struct answer *a = answer_new(c, A_BYTES, path);
    a->chunk = (size_t)query_long(query, "chunk", 16384);
    if (!a->chunk) a->chunk = 1;
    a->every_us = query_long(query, "every_ms", 0) * 1000;
    if (echo) {
      a->total = c->body.len;
      a->data = xmalloc(a->total + 1);
      memcpy(a->data, c->body.data ? c->body.data : "", a->total);
    } else {
      a->total = (size_t)query_long(query, "bytes", 0);
    }
    char *type = query_string(query, "type");
    for (char *p = type; p && *p; p++)
      if (*p == '+') *p = ' ';
    if (type && strncmp(type, "text%2Fevent-stream", 19) == 0) {
      free(type);
      type = xstrdup("text/event-stream");
    }
    start_chunked(c, type ? type : (echo ? "text/plain" : "application/octet-stream"));
    free(type);
    pump(c);
    return;
  }
  if (strcmp(path, "/upload") == 0) {
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"bytes\":%zu,\"fnv1a64\":\"%016llx\",\"type\":\"%s\"}",
                     c->body_bytes, (unsigned long long)c->body_hash,
                     c->content_type);
    answer_new(c, A_SILENT, path);
    send_simple(c, 200, "application/json", body, (size_t)n);
    answer_done(c);
    return;
  }
  if (strcmp(path, "/status") == 0) {
    int code = (int)query_long(query, "code", 200);
    char body[64];
    int n = snprintf(body, sizeof body, "{\"error\":\"status %d\"}", code);
    answer_new(c, A_SILENT, path);
    send_simple(c, code, "application/json", body, (size_t)n);
    answer_done(c);
    return;
  }
  if (strcmp(path, "/silent") == 0) {
    answer_new(c, A_SILENT, path);
    if (query_long(query, "head", 0)) start_chunked(c, "text/event-stream");
    return;
  }
  static const char nf[] = "not found";
  answer_new(c, A_SILENT, path);
  send_simple(c, 404, "text/plain", nf, sizeof nf - 1);
  answer_done(c);
}

static bool parse_head(struct conn *c, char *head) {
  char *eol = strstr(head, "\r\n");
  if (!eol) return false;
  *eol = '\0';
  char target[8192];
  if (sscanf(head, "%15s %8191s", c->method, target) != 2) return false;
  c->target = xstrdup(target);
  c->keep_body = strncmp(target, "/upload", 7) != 0;
  c->body_state = BODY_NONE;
  for (char *line = eol + 2; *line;) {
    char *next = strstr(line, "\r\n");
    if (!next) break;
    *next = '\0';
    char *colon = strchr(line, ':');
    if (colon) {
      *colon = '\0';
      char *v = colon + 1;
      while (*v == ' ') v++;
      if (strcasecmp(line, "Content-Length") == 0) {
        c->left = strtoull(v, NULL, 10);
        c->body_state = c->left ? BODY_LENGTH : BODY_NONE;
      } else if (strcasecmp(line, "Content-Type") == 0) {
        /* Kept for /upload's answer; quotes would break its JSON. */
        snprintf(c->content_type, sizeof c->content_type, "%s", v);
        for (char *q = c->content_type; *q; q++)
          if (*q == '"' || *q == '\\') *q = '?';
      } else if (strcasecmp(line, "Transfer-Encoding") == 0 &&
                 strcasestr(v, "chunked")) {
        c->body_state = BODY_CHUNK_SIZE;
      } else if (strcasecmp(line, "Expect") == 0 &&
                 strcasestr(v, "100-continue")) {
        evbuffer_add_printf(bufferevent_get_output(c->bev),
                            "HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    line = next + 2;
  }
  return true;
}

static void take_body(struct conn *c, struct evbuffer *in, size_t n) {
  unsigned char tmp[16384];
  while (n) {
    size_t k = n < sizeof tmp ? n : sizeof tmp;
    evbuffer_remove(in, tmp, k);
    c->body_hash = fnv_add(c->body_hash, tmp, k);
    c->body_bytes += k;
    if (c->keep_body) buf_append(&c->body, tmp, k);
    n -= k;
  }
}

/* Reads what the body has; returns true once it is complete, false when
 * more is needed; -1 on a malformed body. */
static int read_body(struct conn *c, struct evbuffer *in) {
  for (;;) {
    size_t avail = evbuffer_get_length(in);
    switch (c->body_state) {
      case BODY_NONE:
      case BODY_DONE:
        return 1;
      case BODY_LENGTH: {
        size_t n = avail < c->left ? avail : c->left;
        take_body(c, in, n);
        c->left -= n;
        if (c->left) return 0;
        c->body_state = BODY_DONE;
        break;
      }
      case BODY_CHUNK_SIZE:
      case BODY_TRAILER: {
        struct evbuffer_ptr eol = evbuffer_search(in, "\r\n", 2, NULL);
        if (eol.pos < 0) return avail > 1024 ? -1 : 0;
        char line[64] = "";
        if (eol.pos < (ssize_t)sizeof line) evbuffer_copyout(in, line, (size_t)eol.pos);
        evbuffer_drain(in, (size_t)eol.pos + 2);
        if (c->body_state == BODY_TRAILER) {
          if (eol.pos == 0) c->body_state = BODY_DONE;
          break;
        }
        c->left = strtoul(line, NULL, 16);
        c->body_state = c->left ? BODY_CHUNK_DATA : BODY_TRAILER;
        break;
      }
      case BODY_CHUNK_DATA: {
        size_t n = avail < c->left ? avail : c->left;
        take_body(c, in, n);
        c->left -= n;
        if (c->left) return 0;
        c->body_state = BODY_CHUNK_CRLF;
        break;
      }
      case BODY_CHUNK_CRLF:
        if (avail < 2) return 0;
        evbuffer_drain(in, 2);
        c->body_state = BODY_CHUNK_SIZE;
        break;
    }
  }
}

static void conn_read(struct bufferevent *bev, void *arg) {
  struct conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  while (!c->ans) {
    if (!c->have_head) {
      struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
      if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HEAD) conn_free(c);
        return;
      }
      size_t hlen = (size_t)end.pos + 4;
      char *head = xmalloc(hlen + 1);
      evbuffer_remove(in, head, hlen);
      head[hlen] = '\0';
      bool ok = parse_head(c, head);
      free(head);
      if (!ok) {
        conn_free(c);
        return;
      }
      c->have_head = true;
    }
    int r = read_body(c, in);
    if (r < 0) {
      conn_free(c);
      return;
    }
    if (r == 0) return;
    handle_request(c);
  }
  /* While an answer goes out, input is only watched for the close. */
  evbuffer_drain(in, evbuffer_get_length(in));
}

static void conn_event(struct bufferevent *bev, short what, void *arg) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *addr, int len, void *arg) {
  struct fakemodel *f = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = xcalloc(1, sizeof *c);
  c->f = f;
  c->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
  reset_request(c);
  bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
  bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  c->next = f->conns;
  if (f->conns) f->conns->prev = c;
  f->conns = c;
}

/* --- public ------------------------------------------------------------- */

struct fakemodel *fakemodel_new(struct event_base *base, int port) {
  struct fakemodel *f = xcalloc(1, sizeof *f);
  f->base = base;
  f->tokens = 12;
  f->seconds = 0.6;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((uint16_t)port);
  f->listener = evconnlistener_new_bind(
      base, on_accept, f, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 4096,
      (struct sockaddr *)&sin, sizeof sin);
  if (!f->listener) {
    perror("fakemodel: listen");
    free(f);
    return NULL;
  }
  socklen_t slen = sizeof sin;
  getsockname(evconnlistener_get_fd(f->listener), (struct sockaddr *)&sin, &slen);
  f->port = ntohs(sin.sin_port);
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
  return f;
}

void fakemodel_free(struct fakemodel *f) {
  if (!f) return;
  while (f->conns) conn_free(f->conns);
  evconnlistener_free(f->listener);
  for (size_t i = 0; i < f->nstreams; i++) {
    free(f->streams[i].path);
    free(f->streams[i].prompt);
    free(f->streams[i].token_us);
  }
  free(f->streams);
  free(f);
}

int fakemodel_port(const struct fakemodel *f) { return f->port; }
const char *fakemodel_url(const struct fakemodel *f) { return f->url; }

void fakemodel_set_answer(struct fakemodel *f, int tokens, double seconds,
                          bool bench) {
  f->tokens = tokens > 0 ? tokens : 1;
  f->seconds = seconds > 0 ? seconds : 0.001;
  f->bench = bench;
}

size_t fakemodel_stream_count(const struct fakemodel *f) { return f->nstreams; }
const struct fakemodel_stream *fakemodel_stream(const struct fakemodel *f,
                                                size_t i) {
  return i < f->nstreams ? &f->streams[i] : NULL;
}
size_t fakemodel_open_streams(const struct fakemodel *f) { return f->open; }
size_t fakemodel_max_open_streams(const struct fakemodel *f) {
  return f->max_open;
}
