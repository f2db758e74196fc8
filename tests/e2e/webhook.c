/* Webhook mode end to end. tghost runs as a child against the fake Bot
 * API (which records setWebhook and answers getUpdates 409 while a
 * webhook is set, as Telegram does). Updates are POSTed to tghost by a
 * small HTTP/1.1 client on the harness's loop that behaves like Telegram:
 * a number of keep-alive connections, each with one request at a time,
 * the next sent once the answer to the last has arrived. Odd requests
 * (wrong secret, oversized, malformed, GET) go through libcurl
 * (tests/support/probe.h). Covered: 20,000 updates each handled once and
 * in order per chat, refusals, redeliveries, the setWebhook parameters,
 * backpressure with memory flat, a kill -9 with the journal, a reload
 * that needs setWebhook again, polling against a set webhook, a held
 * request whose client left; and the metrics the webhook adds, compared
 * with what the fake server and the client saw. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "harness.h"
#include "probe.h"
#include "net/http.h"

#define SECRET "s3cr3t_Webhook-token"

/* --- a Telegram-like webhook client ------------------------------------- */

struct wclient;

/* Fills body with the next update for connection conn and *id with its
 * update_id; false when that connection has nothing more to send. */
typedef bool (*wnext_fn)(void *ud, int conn, struct buf *body, int64_t *id);
/* An answer arrived (status -1: the connection failed). */
typedef void (*wdone_fn)(void *ud, int conn, int64_t id, long status,
                         uint64_t latency_us);

struct wconn {
  struct wclient *cl;
  int index;
  struct bufferevent *bev;
  struct event *retry_ev;        /* reconnects a moment after a failure */
  bool connected, busy;
  int64_t id;
  uint64_t sent_us;
  bool have_head;
  long status;
  size_t body_left;
  bool close_after;
};

struct wclient {
  struct sockaddr_in addr;
  const char *secret;            /* NULL: no header */
  int n;
  struct wconn *conns;
  wnext_fn next;
  wdone_fn done;
  void *ud;
  size_t sent, answered, failed;
};

static void wconn_connect(struct wconn *c);

static uint64_t now_us(void) { return harness_now_ms() * 1000; }

static void wconn_send_next(struct wconn *c) {
  struct wclient *cl = c->cl;
  if (c->busy || !c->connected) return;
  struct buf body = BUF_INIT;
  int64_t id = -1;
  if (!cl->next(cl->ud, c->index, &body, &id)) {
    buf_free(&body);
    return;
  }
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add_printf(out, "POST /hook HTTP/1.1\r\nHost: bot.example.com\r\n"
                           "Content-Type: application/json\r\n");
  if (cl->secret)
    evbuffer_add_printf(out, "X-Telegram-Bot-Api-Secret-Token: %s\r\n",
                        cl->secret);
  evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", body.len);
  evbuffer_add(out, body.data, body.len);
  buf_free(&body);
  c->busy = true;
  c->id = id;
  c->sent_us = now_us();
  c->have_head = false;
  cl->sent++;
}

static void wconn_finish(struct wconn *c, long status) {
  struct wclient *cl = c->cl;
  c->busy = false;
  if (status < 0) cl->failed++;
  else cl->answered++;
  cl->done(cl->ud, c->index, c->id, status, now_us() - c->sent_us);
}

static void wconn_read(struct bufferevent *bev, void *arg) {
  struct wconn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  for (;;) {
    if (!c->have_head) {
      struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
      if (end.pos < 0) return;
      size_t hlen = (size_t)end.pos + 4;
      char *head = xmalloc(hlen + 1);
      evbuffer_remove(in, head, hlen);
      head[hlen] = '\0';
      c->status = strtol(head + 9, NULL, 10);
      c->body_left = 0;
      c->close_after = false;
      for (char *p = head; *p; p++) *p = (char)tolower((unsigned char)*p);
      char *cl = strstr(head, "\r\ncontent-length:");
      if (cl) c->body_left = strtoul(cl + 17, NULL, 10);
      if (strstr(head, "\r\nconnection: close")) c->close_after = true;
      free(head);
      c->have_head = true;
    }
    size_t avail = evbuffer_get_length(in);
    size_t take = avail < c->body_left ? avail : c->body_left;
    evbuffer_drain(in, take);
    c->body_left -= take;
    if (c->body_left > 0) return;
    c->have_head = false;
    wconn_finish(c, c->status);
    if (c->close_after) {
      bufferevent_free(c->bev);
      c->bev = NULL;
      c->connected = false;
      wconn_connect(c);
      return;
    }
    wconn_send_next(c);
    if (!evbuffer_get_length(in)) return;
  }
}

static void wconn_event(struct bufferevent *bev, short what, void *arg) {
  struct wconn *c = arg;
  if (what & BEV_EVENT_CONNECTED) {
    int one = 1;
    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
               sizeof one);
    c->connected = true;
    wconn_send_next(c);
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    bool was_busy = c->busy;
    bufferevent_free(c->bev);
    c->bev = NULL;
    c->connected = false;
    if (was_busy) wconn_finish(c, -1);
    /* Not at once: while tghost is down, connecting fails at once too. */
    struct timeval tv = {0, 20000};
    evtimer_add(c->retry_ev, &tv);
  }
}

static void wconn_retry(evutil_socket_t fd, short what, void *arg) {
  wconn_connect(arg);
}

static void wconn_connect(struct wconn *c) {
  c->bev = bufferevent_socket_new(harness_base(), -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(c->bev, wconn_read, NULL, wconn_event, c);
  bufferevent_enable(c->bev, EV_READ | EV_WRITE);
  bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->cl->addr,
                             sizeof c->cl->addr);
}

static struct wclient *wclient_new(int port, int nconn, const char *secret,
                                   wnext_fn next, wdone_fn done, void *ud) {
  struct wclient *cl = xcalloc(1, sizeof *cl);
  cl->addr.sin_family = AF_INET;
  cl->addr.sin_port = htons((uint16_t)port);
  cl->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cl->secret = secret;
  cl->n = nconn;
  cl->next = next;
  cl->done = done;
  cl->ud = ud;
  cl->conns = xcalloc((size_t)nconn, sizeof *cl->conns);
  for (int i = 0; i < nconn; i++) {
    cl->conns[i].cl = cl;
    cl->conns[i].index = i;
    cl->conns[i].retry_ev = evtimer_new(harness_base(), wconn_retry,
                                        &cl->conns[i]);
    wconn_connect(&cl->conns[i]);
  }
  return cl;
}

static void wclient_free(struct wclient *cl) {
  for (int i = 0; i < cl->n; i++) {
    if (cl->conns[i].bev) bufferevent_free(cl->conns[i].bev);
    event_free(cl->conns[i].retry_ev);
  }
  free(cl->conns);
  free(cl);
}

/* --- updates, the odd requests, tghost's CPU time ----------------------- */

static void text_update(struct buf *out, int64_t id, int64_t chat,
                        const char *text) {
  buf_printf(out, "{\"update_id\":%lld,\"message\":{\"message_id\":%lld,"
             "\"date\":1700000000,\"chat\":{\"id\":%lld,\"type\":\"private\"},"
             "\"from\":{\"id\":%lld,\"is_bot\":false,\"first_name\":\"U\"},"
             "\"text\":\"%s\"}}", (long long)id, (long long)id,
             (long long)chat, (long long)chat, text);
}

static long post_raw(int port, const char *secret, const char *data,
                     size_t len) {
  char url[128], header[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
  snprintf(header, sizeof header, "X-Telegram-Bot-Api-Secret-Token: %s",
           secret ? secret : "");
  const char *const headers[] = {"Content-Type: application/json",
                                 secret ? header : NULL, NULL};
  return curl_request("POST", url, headers, data, len, NULL);
}

/* --- the replies the fake server got ------------------------------------ */

/* Every sendMessage's chat and the update id in its text ("u<id>"), in
 * arrival order; n gets their count. */
struct reply {
  int64_t chat, id;
};

static struct reply *replies(size_t *n) {
  struct fakeapi *api = harness_api();
  size_t total = fakeapi_call_count(api), k = 0;
  struct reply *r = xcalloc(total ? total : 1, sizeof *r);
  for (size_t i = 0; i < total; i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *text = fake_call_string(c, "text");
    r[k].chat = c->chat_id;
    r[k].id = text && text[0] == 'u' ? strtoll(text + 1, NULL, 10) : -1;
    free(text);
    k++;
  }
  *n = k;
  return r;
}

static const struct fake_call *find_call(const char *method) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++)
    if (strcmp(fakeapi_call(api, i)->method, method) == 0)
      return fakeapi_call(api, i);
  return NULL;
}

static bool output_has(struct proc *p, const char *text) {
  return strstr(proc_stderr(p), text) || strstr(proc_stdout(p), text);
}

/* The same update from every connection at once. */
struct same_feed {
  const struct buf *body;
  int64_t id;
  bool sent[8];
  size_t ok;
};

static bool next_same(void *ud, int conn, struct buf *body, int64_t *id) {
  struct same_feed *f = ud;
  if (f->sent[conn]) return false;
  f->sent[conn] = true;
  buf_append(body, f->body->data, f->body->len);
  *id = f->id;
  return true;
}

static void done_same(void *ud, int conn, int64_t id, long status,
                      uint64_t latency_us) {
  if (status == 200) ((struct same_feed *)ud)->ok++;
}

static bool has_text(void *ud) { return api_sent_text(ud); }

/* --- webhook_20k -------------------------------------------------------- */

#define N20K 20000
#define CHATS 200
#define CONNS 40

struct feed20k {
  int64_t first_id;
  int next_index[CONNS];         /* per connection: the next i to send */
  size_t ok, other;
  uint64_t latency_us;           /* summed */
};

/* Update i (id first_id + i) belongs to chat i % CHATS, which connection
 * chat % CONNS carries: a chat's updates go one after another, each once
 * the one before was answered, as Telegram delivers a chat's updates. */
static bool next20k(void *ud, int conn, struct buf *body, int64_t *id) {
  struct feed20k *f = ud;
  int i = f->next_index[conn];
  while (i < N20K && (i % CHATS) % CONNS != conn) i++;
  if (i >= N20K) return false;
  f->next_index[conn] = i + 1;
  *id = f->first_id + i;
  char text[32];
  snprintf(text, sizeof text, "u%lld", (long long)*id);
  text_update(body, *id, 5000 + i % CHATS, text);
  return true;
}

static void done20k(void *ud, int conn, int64_t id, long status,
                    uint64_t latency_us) {
  struct feed20k *f = ud;
  if (status == 200) f->ok++;
  else f->other++;
  f->latency_us += latency_us;
}

struct answered_at_least {
  struct wclient *cl;
  size_t n;
};

static bool answered_n(void *ud) {
  struct answered_at_least *a = ud;
  return a->cl->answered + a->cl->failed >= a->n;
}

/* Runs the loop until cl has had n answers (or failures). */
static bool wait_answers(struct wclient *cl, size_t n, int timeout_ms) {
  struct answered_at_least a = {cl, n};
  return run_until(answered_n, &a, timeout_ms);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static long random_reply_delay(void *ud, const struct fake_call *call) {
  return strcmp(call->method, "sendMessage") == 0 ? (long)(rnd() % 3) : 0;
}

TEST_SERIAL(webhook_20k) {
  require_parser();
  const char *script = harness_write("hook.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
      "bot.on('message:text', function(ctx)\n"
      "  -- a pause now and then: a later update of the chat could overtake\n"
      "  -- this one without sequentialize\n"
      "  if ctx.update.update_id % 4 == 0 then tghost.sleep(0.003) end\n"
      "  ctx:reply(ctx.msg.text)\n"
      "end)\n"
      "bot.on('chat_member', function(ctx) end)\n"
      "run(bot, { sink = { concurrency = 64 } })\n");
  const char *secret_file = harness_write("secret.txt", SECRET "\n");
  fakeapi_set_delay_fn(harness_api(), random_reply_delay, NULL);
  const char *args[] = {"--webhook", "https://bot.example.com/tg/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret_file, "--metrics", "127.0.0.1:0", NULL};
  struct proc *p = proc_start(script, args);
  int port = wait_port(p, WEBHOOK_MARK);
  int mport = wait_port(p, METRICS_MARK);
  wait_calls("setWebhook", 1, 10000);

  /* setWebhook: the URL, the secret, derived allowed_updates and
   * max_connections from the concurrency. */
  const struct fake_call *set = find_call("setWebhook");
  char *url = fake_call_string(set, "url");
  char *secret = fake_call_string(set, "secret_token");
  char *allowed = fake_call_raw(set, "allowed_updates");
  int64_t maxconn = 0;
  fake_call_int(set, "max_connections", &maxconn);
  CHECK(url && strcmp(url, "https://bot.example.com/tg/hook") == 0, "url %s",
        url ? url : "(none)");
  CHECK(secret && strcmp(secret, SECRET) == 0, "secret_token from the file");
  CHECK(allowed && strstr(allowed, "\"chat_member\"") &&
            strstr(allowed, "\"message\""),
        "allowed_updates derived from the handlers: %s", allowed ? allowed : "");
  CHECK(maxconn == 64, "max_connections follows the concurrency: %lld",
        (long long)maxconn);
  free(url);
  free(secret);
  free(allowed);
  /* Healthy once tghost has Telegram's answer to setWebhook. */
  struct health_wait health = {mport, 200, BUF_INIT};
  CHECK(run_until(health_is, &health, 10000) &&
            strstr(health.body.data, "ok: webhook"),
        "healthz while the webhook is set: %s", health.body.data);
  buf_free(&health.body);

  /* 20,000 updates over 40 connections. */
  struct feed20k feed = {.first_id = 100000};
  uint64_t t0 = harness_now_ms();
  double cpu0 = proc_cpu_seconds(p);
  struct wclient *cl = wclient_new(port, CONNS, SECRET, next20k, done20k,
                                   &feed);
  CHECK(wait_answers(cl, N20K, 120000) && cl->sent == N20K,
        "%zu of %d posted, %zu answered", cl->sent, N20K, cl->answered);
  double secs = (harness_now_ms() - t0) / 1000.0;
  CHECK(feed.ok == N20K && cl->failed == 0, "%zu answered 200, %zu otherwise, "
        "%zu failed", feed.ok, feed.other, cl->failed);
  wait_calls("sendMessage", N20K, 60000);
  double cpu = proc_cpu_seconds(p) - cpu0;
  run_for(300);   /* nothing more may come */
  fprintf(stderr, "20,000 updates posted over %d connections in %.2f s "
          "(%.0f/s, answered and handled; mean answer latency %.2f ms; "
          "tghost's CPU %.3f ms per update)\n", CONNS, secs, N20K / secs,
          feed.latency_us / 1000.0 / N20K, cpu * 1000 / N20K);

  /* Each handled exactly once, a chat's in order. */
  size_t n;
  struct reply *r = replies(&n);
  CHECK(n == N20K, "%zu replies for %d updates", n, N20K);
  char *seen = xcalloc(N20K, 1);
  int64_t last[CHATS];
  for (int c = 0; c < CHATS; c++) last[c] = -1;
  for (size_t i = 0; i < n; i++) {
    int64_t k = r[i].id - feed.first_id;
    CHECK(k >= 0 && k < N20K, "a reply to an unknown update %lld",
          (long long)r[i].id);
    CHECK(!seen[k], "update %lld handled twice", (long long)r[i].id);
    seen[k] = 1;
    int chat = (int)(r[i].chat - 5000);
    CHECK(chat == (int)(k % CHATS), "reply in the wrong chat");
    CHECK(r[i].id > last[chat], "chat %d: update %lld handled after %lld",
          chat, (long long)r[i].id, (long long)last[chat]);
    last[chat] = r[i].id;
  }
  free(seen);
  free(r);

  /* What is refused, and handled not at all. */
  size_t before = fakeapi_count_method(harness_api(), "sendMessage");
  struct buf good = BUF_INIT;
  text_update(&good, 999999, 7, "u999999");
  CHECK(post_raw(port, "wrong-secret", good.data, good.len) == 401,
        "a wrong secret gets 401");
  CHECK(post_raw(port, NULL, good.data, good.len) == 401,
        "a missing secret gets 401");
  CHECK(post_raw(port, SECRET "x", good.data, good.len) == 401,
        "a longer secret gets 401");
  CHECK(post_raw(port, "s3cr3t_Webhook-tokeN", good.data, good.len) == 401,
        "one character off gets 401");
  size_t big_len = (2u << 20) + 10;
  char *big = xmalloc(big_len);
  memset(big, ' ', big_len);
  memcpy(big, good.data, good.len);
  CHECK(post_raw(port, SECRET, big, big_len) == 413, "2 MiB gets 413");
  free(big);
  static const char *const malformed[] = {
      "not json", "[1,2]", "{\"message\":{}}", "{\"update_id\":-5}",
      "{\"update_id\":1.5}", "{\"update_id\":\"7\"}",
      "{\"update_id\":7} trailing", "{\"update_id\":7", "", NULL};
  for (int i = 0; malformed[i]; i++)
    CHECK(post_raw(port, SECRET, malformed[i], strlen(malformed[i])) == 400,
          "'%s' gets 400", malformed[i]);
  CHECK(get_url(port, "/hook", NULL) == 405, "GET gets 405");

  /* Telegram delivering again: an update handled long ago, and a new one
   * posted five times at once; each is handled once. */
  struct buf again = BUF_INIT;
  text_update(&again, feed.first_id + 17, 5000 + 17, "u100017");
  CHECK(post_raw(port, SECRET, again.data, again.len) == 200, "a retry: 200");
  CHECK(post_raw(port, SECRET, good.data, good.len) == 200, "a new update");
  wclient_free(cl);
  struct buf dup = BUF_INIT;
  text_update(&dup, 888888, 9, "u888888");
  struct same_feed same = {&dup, 888888, {false}, 0};
  cl = wclient_new(port, 5, SECRET, next_same, done_same, &same);
  CHECK(wait_answers(cl, 5, 20000) && cl->sent == 5,
        "the five copies were not all answered");
  CHECK(same.ok == 5, "every copy gets 200 (%zu did)", same.ok);
  wclient_free(cl);
  buf_free(&dup);
  buf_free(&again);
  buf_free(&good);
  wait_calls("sendMessage", before + 2, 10000);
  run_for(500);
  size_t after = fakeapi_count_method(harness_api(), "sendMessage");
  CHECK(after == before + 2, "only the two new updates were handled: %zu "
        "more replies", after - before);
  CHECK(api_sent_text("u999999") && api_sent_text("u888888"),
        "the new updates were handled");

  /* The metrics agree with what the client and the fake server saw (once
   * the last handlers have had the answers to their replies). */
  struct metric_wait settled = {mport, "tghost_updates_in_flight", 0};
  CHECK(run_until(metric_is, &settled, 10000), "updates still in flight");
  struct samples m = {0};
  CHECK(scrape(mport, &m) == 0, "the parser is installed");
  double replies_seen = (double)fakeapi_count_method(harness_api(),
                                                     "sendMessage");
  CHECK(sample(&m, "tghost_updates_received_total{source=\"webhook\"}") ==
            N20K + 2, "received: %s", m.text);
  CHECK(sample(&m, "tghost_updates_handled_total{outcome=\"done\"}") ==
            N20K + 2, "handled");
  CHECK(sample(&m, "tghost_api_calls_total{method=\"sendMessage\","
                   "outcome=\"ok\"}") == replies_seen,
        "sendMessage calls: the fake server saw %.0f", replies_seen);
  CHECK(sample(&m, "tghost_webhook_duplicates_total{}") == 5, "duplicates");
  CHECK(sample(&m, "tghost_webhook_requests_total{code=\"401\"}") == 4, "401s");
  CHECK(sample(&m, "tghost_webhook_requests_total{code=\"400\"}") == 9, "400s");
  CHECK(sample(&m, "tghost_webhook_requests_total{code=\"405\"}") == 1, "405s");
  CHECK(sample(&m, "tghost_webhook_requests_total{code=\"200\"}") ==
            N20K + 2 + 5, "200s");
  CHECK(sample(&m, "tghost_source_state{state=\"webhook\"}") == 1, "state");
  CHECK(sample(&m, "tghost_handler_duration_seconds_count{}") == N20K + 2,
        "one handler duration per update");
  CHECK(sample(&m, "tghost_updates_in_flight{}") == 0, "nothing in flight");
  samples_free(&m);

  proc_stop_cleanly(p);
  CHECK(output_has(p, "the webhook stays set"), "the stop says so");
  CHECK(!output_has(p, SECRET), "the secret appears in tghost's output");
  CHECK(fakeapi_count_method(harness_api(), "deleteWebhook") == 0 &&
            fakeapi_webhook_url(harness_api()),
        "a graceful stop leaves the webhook set");
}

/* --- webhook_backpressure ----------------------------------------------- */

/* Twice as many connections as updates may run: at any moment about half
 * the requests cannot enter the sink and must be held, however fast or
 * slow the machine is. (Telegram itself opens at most max_connections,
 * here 50; a client that opens more must not make tghost grow either.) */
#define BP_CONCURRENCY 50
#define BP_CONNS 100
#define BP_SLEEP_S 0.002
#define BP_OFFERED 100000

struct bp_feed {
  int64_t next_id, last_id;       /* ids still to send: [next_id, last_id) */
  size_t ok, other;
  uint64_t *latencies;            /* in microseconds */
  size_t nlat;
};

static bool bp_next(void *ud, int conn, struct buf *body, int64_t *id) {
  struct bp_feed *f = ud;
  if (f->next_id >= f->last_id) return false;
  *id = f->next_id++;
  text_update(body, *id, 7000 + *id % 500, "sleep");
  return true;
}

static void bp_done(void *ud, int conn, int64_t id, long status,
                    uint64_t latency_us) {
  struct bp_feed *f = ud;
  if (status == 200) f->ok++;
  else f->other++;
  f->latencies[f->nlat++] = latency_us;
}

/* What a running test watches: tghost's RSS, and (scraped from /metrics
 * without blocking the loop) its in-flight and held counts. */
struct watch {
  struct proc *p;
  int mport;
  long rss_max_kib;
  double in_flight_max, held_max;
  size_t scrapes;
  bool scraping;
  struct http_request *req;
  struct event *timer;
};

static void on_scraped(struct http_request *req, void *ud) {
  struct watch *w = ud;
  w->scraping = false;
  w->req = NULL;
  const struct buf *b = http_request_body(req);
  if (http_request_ok(req) && http_request_status(req) == 200 && b->data) {
    double in_flight = value_in(b->data, "tghost_updates_in_flight");
    double held = value_in(b->data, "tghost_webhook_held_requests");
    if (in_flight > w->in_flight_max) w->in_flight_max = in_flight;
    if (held > w->held_max) w->held_max = held;
    w->scrapes++;
  }
  http_request_free(req);
}

static void on_watch(evutil_socket_t fd, short what, void *arg) {
  struct watch *w = arg;
  long rss = proc_rss_kib(w->p);
  if (rss > w->rss_max_kib) w->rss_max_kib = rss;
  if (w->scraping) return;
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", w->mport);
  w->req = http_request_new(curl_client(), url);
  http_request_set_timeout(w->req, 5000);
  if (http_request_start(w->req, on_scraped, w) == 0) {
    w->scraping = true;
  } else {
    http_request_free(w->req);
    w->req = NULL;
  }
}

static void watch_start(struct watch *w) {
  w->timer = event_new(harness_base(), -1, EV_PERSIST, on_watch, w);
  struct timeval tv = {0, 100000};
  evtimer_add(w->timer, &tv);
}

static void watch_stop(struct watch *w) {
  event_free(w->timer);
  if (w->req) http_request_free(w->req);   /* cancels it */
  w->req = NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

TEST_SERIAL(webhook_backpressure) {
  const char *script = harness_write("slow.lua",
      "bot.on('message:text', function(ctx) tghost.sleep(0.002) end)\n"
      "run(bot, { sink = { concurrency = 50 } })\n");
  const char *secret_file = harness_write("secret.txt", SECRET);
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret_file, "--metrics", "127.0.0.1:0", NULL};
  /* No quarantine under AddressSanitizer: freed memory must be reusable
   * for RSS to mean anything. */
  static char asan[512];
  const char *cur = getenv("ASAN_OPTIONS");
  snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%squarantine_size_mb=0",
           cur ? cur : "", cur && *cur ? ":" : "");
  const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN, asan, NULL};
  struct proc *p = proc_start_env(script, args, env, true);
  int port = wait_port(p, WEBHOOK_MARK);
  struct watch w = {.p = p, .mport = wait_port(p, METRICS_MARK)};
  wait_calls("setWebhook", 1, 10000);

  /* 100,000 offered as fast as tghost answers. */
  struct bp_feed f = {.next_id = 1, .last_id = 1 + BP_OFFERED};
  f.latencies = xcalloc(BP_OFFERED, sizeof *f.latencies);
  uint64_t t0 = harness_now_ms();
  double cpu0 = proc_cpu_seconds(p);
  struct wclient *cl = wclient_new(port, BP_CONNS, SECRET, bp_next, bp_done, &f);
  watch_start(&w);
  CHECK(wait_answers(cl, BP_OFFERED / 10, 120000), "stuck before 10%%");
  /* The first tenth warms up what is kept (the window of recent ids,
   * allocator caches); from here on memory must stay flat. */
  long rss_early = proc_rss_kib(p);
  w.rss_max_kib = rss_early;
  CHECK(wait_answers(cl, BP_OFFERED, 300000) && f.ok == BP_OFFERED,
        "%zu of %d answered 200 (%zu otherwise, %zu failed)", f.ok,
        BP_OFFERED, f.other, cl->failed);
  double secs = (harness_now_ms() - t0) / 1000.0;
  double cpu_ms = (proc_cpu_seconds(p) - cpu0) * 1000 / BP_OFFERED;
  long peak = proc_peak_rss_kib(p);
  watch_stop(&w);

  qsort(f.latencies, f.nlat, sizeof *f.latencies, cmp_u64);
  double p50 = f.latencies[f.nlat / 2] / 1e6;
  fprintf(stderr, "backpressure: %d updates offered over %d connections to "
          "handlers that sleep %.0f ms, concurrency %d: %.1f s (%.0f/s, "
          "tghost's CPU %.3f ms each); answer latency p50 %.2f ms; in "
          "flight at most %.0f; held at most %.0f (%zu scrapes); RSS %ld KiB "
          "at 10%%, at most %ld KiB after (+%ld KiB); VmHWM %ld KiB\n",
          BP_OFFERED, BP_CONNS, BP_SLEEP_S * 1000, BP_CONCURRENCY, secs,
          BP_OFFERED / secs, cpu_ms, p50 * 1000, w.in_flight_max,
          w.held_max, w.scrapes, rss_early, w.rss_max_kib,
          w.rss_max_kib - rss_early, peak);
  /* The sink was full and answers waited for room: each update holds its
   * slot for the sleep at least, so at most concurrency / sleep go
   * through a second, and a request behind the (at least BP_CONNS -
   * BP_CONCURRENCY) held ones waits about the sleep or longer. */
  CHECK(w.scrapes >= 3, "too few scrapes (%zu)", w.scrapes);
  CHECK(w.in_flight_max <= BP_CONCURRENCY, "more in flight than the "
        "concurrency: %.0f", w.in_flight_max);
  CHECK(w.in_flight_max == BP_CONCURRENCY, "the sink was never full");
  CHECK(w.held_max >= (BP_CONNS - BP_CONCURRENCY) / 2,
        "answers were not held: at most %.0f at once", w.held_max);
  CHECK(p50 >= BP_SLEEP_S / 2, "answers did not wait for room: p50 %.2f ms",
        p50 * 1000);
  /* ... and memory stayed flat: keeping the 90,000 updates offered after
   * the first measurement in a queue would take over 30 MB (about 330
   * bytes of JSON each, before any bookkeeping). */
  CHECK(w.rss_max_kib - rss_early < 8 * 1024, "RSS grew by %ld KiB",
        w.rss_max_kib - rss_early);
  CHECK(peak > 0 && peak - rss_early < 8 * 1024, "peak RSS %ld KiB, %ld KiB "
        "above the level at 10%%", peak, peak - rss_early);
  free(f.latencies);
  wclient_free(cl);
  proc_stop_cleanly(p);
}

/* --- webhook_journal_restart -------------------------------------------- */

static void post_ok(int port, int64_t id, const char *text) {
  struct buf body = BUF_INIT;
  text_update(&body, id, 42, text);
  long status = post_raw(port, SECRET, body.data, body.len);
  CHECK(status == 200, "update %lld answered %ld", (long long)id, status);
  buf_free(&body);
}

static size_t count_text(const char *text) {
  struct fakeapi *f = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(f); i++) {
    char *t = fake_call_string(fakeapi_call(f, i), "text");
    if (t && strcmp(t, text) == 0) n++;
    free(t);
  }
  return n;
}

/* True once the journal at path holds the end record "E <id> d". The end
 * is written by the journal's thread just after the reply, so a test that
 * kills right after a reply must wait for it, or the update rightly runs
 * again (at least once). */
struct end_record {
  const char *path;
  int64_t id;
};

static bool end_recorded(void *ud) {
  const struct end_record *e = ud;
  FILE *f = fopen(e->path, "r");
  if (!f) return false;
  char line[512];
  long long id;
  char outcome;
  bool found = false;
  while (!found && fgets(line, sizeof line, f))
    found = sscanf(line, "E %lld %c ", &id, &outcome) == 2 && id == e->id &&
            outcome == 'd';
  fclose(f);
  return found;
}

TEST(webhook_journal_restart) {
  const char *secret_file = harness_write("secret.txt", SECRET);
  struct buf journal = BUF_INIT, source = BUF_INIT;
  buf_printf(&journal, "%s/journal", harness_tmpdir());
  buf_printf(&source,
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'block' and not ctx.redelivered then\n"
      "    tghost.sleep(1000)\n"
      "  end\n"
      "  ctx:reply(ctx.msg.text .. (ctx.redelivered and ' again' or ''))\n"
      "end)\n"
      "run(bot, { journal = '%s', webhook = { url = "
      "'https://bot.example.com/hook', listen = '127.0.0.1:0', secretFile = "
      "'%s' } })\n", journal.data, secret_file);
  const char *script = harness_write("journal.lua", source.data);

  /* The first run takes "hello" (done) and "block" (stuck), and dies. */
  struct proc *p = proc_start(script, NULL);
  int port = wait_port(p, WEBHOOK_MARK);
  post_ok(port, 1, "hello");
  post_ok(port, 2, "block");
  CHECK(run_until(has_text, "hello", 10000), "no reply to hello");
  struct end_record hello_end = {journal.data, 1};
  CHECK(run_until(end_recorded, &hello_end, 10000),
        "the end of hello never reached the journal");
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 10000), "kill -9");

  /* The second: Telegram delivers both again (their 200s might not have
   * reached it), and a new one. The journal runs "block" again; neither
   * redelivery is handled twice. */
  struct proc *q = proc_start(script, NULL);
  port = wait_port(q, WEBHOOK_MARK);
  post_ok(port, 2, "block");
  post_ok(port, 1, "hello");
  post_ok(port, 3, "new");
  CHECK(run_until(has_text, "block again", 10000), "the journal's update");
  CHECK(run_until(has_text, "new", 10000), "the new update");
  run_for(500);
  CHECK(count_text("hello") == 1 && count_text("block again") == 1 &&
            count_text("block") == 0 && count_text("new") == 1 &&
            count_text("hello again") == 0,
        "each update handled once: hello %zu, hello again %zu, block %zu, "
        "block again %zu, new %zu", count_text("hello"),
        count_text("hello again"), count_text("block"),
        count_text("block again"), count_text("new"));
  CHECK(fakeapi_count_method(harness_api(), "setWebhook") == 2,
        "setWebhook at each start");
  proc_stop_cleanly(q);

  /* run()'s webhook options are checked where the script gives them. */
  const char *bad = harness_write("bad.lua",
      "run(bot, { webhook = { url = 'https://bot.example.com/hook' } })\n");
  struct proc *b = proc_start(bad, NULL);
  CHECK(proc_wait(b, 10000) && proc_status(b) != 0, "accepted a URL without "
        "an address");
  CHECK(output_has(b, "webhook.url and webhook.listen go together"),
        "the error says what is missing");
  buf_free(&journal);
  buf_free(&source);
}

/* --- webhook_then_polling: a random secret, and polling afterwards ------ */

TEST(webhook_then_polling) {
  const char *script = harness_write("echo.lua",
      "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
      "run(bot)\n");
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--trace", NULL};
  struct proc *p = proc_start(script, args);
  int port = wait_port(p, WEBHOOK_MARK);
  wait_calls("setWebhook", 1, 10000);
  char *secret = fake_call_string(find_call("setWebhook"), "secret_token");
  CHECK(secret && strlen(secret) == 64 &&
            strspn(secret, "0123456789abcdef") == 64,
        "a random secret of 256 bits: %s", secret ? secret : "(none)");
  struct buf body = BUF_INIT;
  text_update(&body, 10, 3, "via webhook");
  CHECK(post_raw(port, secret, body.data, body.len) == 200, "the secret works");
  CHECK(post_raw(port, "", body.data, body.len) == 401, "an empty one not");
  CHECK(run_until(has_text, "via webhook", 10000), "handled");
  proc_stop_cleanly(p);
  CHECK(!output_has(p, secret), "the secret appears in tghost's output "
        "(with --trace)");
  free(secret);
  buf_free(&body);

  /* Polling while the webhook is set: Telegram answers 409, and tghost
   * says what to do. */
  struct proc *q = proc_start(script, NULL);
  CHECK(proc_wait(q, 20000), "tghost kept polling against a webhook");
  CHECK(proc_status(q) == 1, "exit status %d", proc_status(q));
  CHECK(output_has(q, "webhook is active") && output_has(q, "deleteWebhook") &&
            output_has(q, "--webhook"),
        "the 409 says a webhook is set and how to remove it");
  proc_check_clean(q);

  /* drop_pending_updates: the script removes it itself, and polls. */
  const char *dropping = harness_write("dropping.lua",
      "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
      "run(bot, { drop_pending_updates = true })\n");
  struct proc *r = proc_start(dropping, NULL);
  wait_calls("deleteWebhook", 1, 10000);
  fakeapi_push_text(harness_api(), 3, 3, "via polling");
  CHECK(run_until(has_text, "via polling", 10000), "polling works again");
  CHECK(!fakeapi_webhook_url(harness_api()), "the webhook is gone");
  proc_stop_cleanly(r);
}

/* --- webhook_reload: setWebhook again when a reload needs it ------------ */

static bool two_set_webhooks(void *ud) {
  return fakeapi_count_method(harness_api(), "setWebhook") >= 2;
}

TEST(webhook_reload) {
  const char *plain =
      "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
      "run(bot, { sink = { concurrency = 10 } })\n";
  const char *script = harness_write("reload.lua", plain);
  const char *secret_file = harness_write("secret.txt", SECRET);
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret_file, NULL};
  struct proc *p = proc_start(script, args);
  int port = wait_port(p, WEBHOOK_MARK);
  wait_calls("setWebhook", 1, 10000);
  char *allowed = fake_call_raw(find_call("setWebhook"), "allowed_updates");
  CHECK(allowed && strcmp(allowed, "[]") == 0, "Telegram's default first: %s",
        allowed ? allowed : "(none)");
  free(allowed);

  /* A reload that changes nothing Telegram knows: no new setWebhook. */
  struct buf edited = BUF_INIT;
  buf_printf(&edited, "%s-- a comment\n", plain);
  harness_write("reload.lua", edited.data);
  CHECK(run_until_stderr(p, "generation 2 loaded", 15000), "no reload");
  run_for(300);
  CHECK(fakeapi_count_method(harness_api(), "setWebhook") == 1,
        "setWebhook again for nothing");

  /* A chat_member handler and another concurrency: setWebhook again. */
  harness_write("reload.lua",
      "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
      "bot.on('chat_member', function(ctx) end)\n"
      "run(bot, { sink = { concurrency = 20 } })\n");
  CHECK(run_until(two_set_webhooks, NULL, 15000), "no second setWebhook");
  const struct fake_call *last = NULL;
  for (size_t i = 0; i < fakeapi_call_count(harness_api()); i++)
    if (strcmp(fakeapi_call(harness_api(), i)->method, "setWebhook") == 0)
      last = fakeapi_call(harness_api(), i);
  allowed = fake_call_raw(last, "allowed_updates");
  int64_t maxconn = 0;
  fake_call_int(last, "max_connections", &maxconn);
  CHECK(allowed && strstr(allowed, "\"chat_member\""), "allowed_updates %s",
        allowed ? allowed : "(none)");
  CHECK(maxconn == 20, "max_connections %lld", (long long)maxconn);
  free(allowed);
  struct buf body = BUF_INIT;
  text_update(&body, 77, 1, "after the reload");
  CHECK(post_raw(port, SECRET, body.data, body.len) == 200, "still served");
  CHECK(run_until(has_text, "after the reload", 10000), "handled");
  buf_free(&body);
  buf_free(&edited);
  proc_stop_cleanly(p);
}

/* --- webhook_client_gone: a held request whose client left -------------- */

struct one_feed {
  const char *text;
  int64_t id;
  bool sent;
};

static bool next_one(void *ud, int conn, struct buf *body, int64_t *id) {
  struct one_feed *f = ud;
  if (f->sent) return false;
  f->sent = true;
  *id = f->id;
  text_update(body, f->id, 42, f->text);
  return true;
}

static void done_ignored(void *ud, int conn, int64_t id, long status,
                         uint64_t latency_us) {}

TEST(webhook_client_gone) {
  const char *script = harness_write("one.lua",
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'block' then tghost.sleep(2) end\n"
      "  ctx:reply(ctx.msg.text)\n"
      "end)\n"
      "run(bot, { sink = { concurrency = 1 } })\n");
  const char *secret_file = harness_write("secret.txt", SECRET);
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret_file, "--metrics", "127.0.0.1:0", NULL};
  struct proc *p = proc_start(script, args);
  int port = wait_port(p, WEBHOOK_MARK);
  int mport = wait_port(p, METRICS_MARK);
  wait_calls("setWebhook", 1, 10000);
  post_ok(port, 1, "block");                  /* takes the only slot */

  /* Update 2 is held; its client leaves (Telegram's timeout, say). */
  struct one_feed two = {"two", 2, false};
  struct wclient *cl = wclient_new(port, 1, SECRET, next_one, done_ignored,
                                   &two);
  struct metric_wait held = {mport, "tghost_webhook_held_requests", 1};
  CHECK(run_until(metric_is, &held, 5000) && cl->answered == 0,
        "update 2 is not held");
  wclient_free(cl);
  uint64_t left_at = harness_now_ms();
  held.want = 0;
  CHECK(run_until(metric_is, &held, 5000),
        "a request whose client left is still held");
  CHECK(harness_now_ms() - left_at < 2500, "dropped only after %llu ms",
        (unsigned long long)(harness_now_ms() - left_at));
  CHECK(run_until(has_text, "block", 10000), "the slow update ended");
  run_for(300);
  CHECK(!api_sent_text("two"), "a dropped request was handled");

  /* Telegram delivers it again: now it is handled, once. */
  post_ok(port, 2, "two");
  CHECK(run_until(has_text, "two", 10000), "the redelivery");
  run_for(200);
  CHECK(count_text("two") == 1, "handled %zu times", count_text("two"));
  proc_stop_cleanly(p);
}

/* --- kill9_journal_webhook: the journal over webhooks ------------------- */

#define KW_N 20000
#define KW_CHATS 200
#define KW_CONNS 40
#define KW_KILLS 20

/* Telegram's side: a chat's updates one after another, each sent again
 * until it is answered 200 (a connection that failed, a 503). */
struct kill_feed {
  int64_t first_id;
  int next_index[KW_CONNS];      /* per connection: the update it sends */
  size_t acked;
};

static int kw_index(struct kill_feed *f, int conn) {
  int i = f->next_index[conn];
  while (i < KW_N && (i % KW_CHATS) % KW_CONNS != conn) i++;
  f->next_index[conn] = i;
  return i;
}

static bool kw_next(void *ud, int conn, struct buf *body, int64_t *id) {
  struct kill_feed *f = ud;
  int i = kw_index(f, conn);
  if (i >= KW_N) return false;
  *id = f->first_id + i;
  text_update(body, *id, 5000 + i % KW_CHATS, "x");
  return true;
}

static void kw_done(void *ud, int conn, int64_t id, long status,
                    uint64_t latency_us) {
  struct kill_feed *f = ud;
  if (status != 200) return;   /* sent again */
  f->acked++;
  f->next_index[conn] = (int)(id - f->first_id) + 1;
}

static bool kw_all_acked(void *ud) {
  return ((struct kill_feed *)ud)->acked >= KW_N;
}

/* How often each update was answered by the bot ("u<id>"). */
static int *kw_answers(int64_t first) {
  size_t n;
  struct reply *r = replies(&n);
  int *seen = xcalloc(KW_N, sizeof *seen);
  for (size_t i = 0; i < n; i++)
    if (r[i].id >= first && r[i].id < first + KW_N) seen[r[i].id - first]++;
  free(r);
  return seen;
}

static bool kw_all_answered(void *ud) {
  int64_t first = *(int64_t *)ud;
  int *seen = kw_answers(first);
  bool all = true;
  for (int i = 0; all && i < KW_N; i++) all = seen[i] > 0;
  free(seen);
  return all;
}

/* Issue 31's "done when", over webhooks: 20,000 updates in 200 chats with
 * sequentialize and the journal, 20 kills at random moments: every update
 * answered, none a dead letter, duplicates within what ran at the kills. */
TEST_SERIAL(kill9_journal_webhook) {
  const char *secret_file = harness_write("secret.txt", SECRET);
  struct buf journal = BUF_INIT, source = BUF_INIT;
  buf_printf(&journal, "%s/journal", harness_tmpdir());
  buf_printf(&source,
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.on('message:text', function(ctx)\n"
      "  tghost.sleep(0.05)\n"
      "  ctx:reply('u' .. ctx.update.update_id)\n"
      "end)\n"
      "run(bot, { journal = '%s', webhook = { url = "
      "'https://bot.example.com/hook', listen = '127.0.0.1:0', secretFile = "
      "'%s' } })\n", journal.data, secret_file);
  const char *script = harness_write("hook.lua", source.data);
  unsigned seed = (unsigned)harness_now_ms();
  srand(seed);
  fprintf(stderr, "seed %u\n", seed);
  uint64_t t0 = harness_now_ms();
  struct kill_feed feed = {.first_id = 300000};
  struct wclient *cl = NULL;
  for (int k = 0; k <= KW_KILLS; k++) {
    struct proc *p = proc_start(script, NULL);
    int port = wait_port(p, WEBHOOK_MARK);
    if (!cl) cl = wclient_new(port, KW_CONNS, SECRET, kw_next, kw_done, &feed);
    else cl->addr.sin_port = htons((uint16_t)port);
    if (k < KW_KILLS) {
      run_for(300 + rand() % 300);
      proc_kill(p, SIGKILL);
      CHECK(proc_wait(p, 10000), "no exit after SIGKILL");
      continue;
    }
    /* The last run: everything is answered, by Telegram's count and the
     * bot's. */
    CHECK(run_until(kw_all_acked, &feed, 60000), "%zu of %d answered 200",
          feed.acked, KW_N);
    CHECK(run_until(kw_all_answered, &feed.first_id, 60000),
          "not every update was handled");
    run_for(300);
    proc_stop_cleanly(p);
  }
  int *seen = kw_answers(feed.first_id);
  int lost = 0, duplicates = 0;
  for (int i = 0; i < KW_N; i++) {
    lost += seen[i] == 0;
    if (seen[i] > 1) duplicates += seen[i] - 1;
  }
  free(seen);
  char dead_path[600];
  snprintf(dead_path, sizeof dead_path, "%s.dead", journal.data);
  bool dead = access(dead_path, F_OK) == 0;
  fprintf(stderr, "%d updates over webhooks, %d kills with the journal: %d "
          "never answered, %d handled more than once, dead letters: %s; "
          "%.1f s\n", KW_N, KW_KILLS, lost, duplicates, dead ? "some" : "none",
          (harness_now_ms() - t0) / 1000.0);
  CHECK(lost == 0, "%d updates never answered", lost);
  CHECK(!dead, "dead letters, and no handler failed");
  CHECK(duplicates <= KW_KILLS * KW_CHATS, "%d duplicates: more than ran at "
        "%d kills", duplicates, KW_KILLS);
  wclient_free(cl);
  buf_free(&journal);
  buf_free(&source);
}

/* getWebhookInfo, polled once the webhook is set: a delivery error
 * Telegram reports shows in the log (one line per error), in /healthz
 * ("degraded", still 200) and in /metrics, with the updates waiting there;
 * an update arriving ends it. So does a URL another process set. */
TEST(webhook_info) {
  const char *script = harness_write("echo.lua",
      "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
      "run(bot)\n");
  const char *secret_file = harness_write("secret.txt", SECRET "\n");
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret_file, "--metrics", "127.0.0.1:0", NULL};
  const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN,
                             "TGHOST_WEBHOOK_INFO_INTERVAL=0.2", NULL};
  struct proc *p = proc_start_env(script, args, env, true);
  int port = wait_port(p, WEBHOOK_MARK);
  int mport = wait_port(p, METRICS_MARK);
  wait_calls("setWebhook", 1, 10000);
  wait_calls("getWebhookInfo", 2, 5000);
  struct health_wait health = {mport, 200, BUF_INIT};
  CHECK(run_until(health_is, &health, 5000) &&
            strstr(health.body.data, "ok: webhook"),
        "healthy while Telegram reports nothing: %s", health.body.data);

  /* Telegram cannot reach the URL. */
  fakeapi_set_webhook_info(harness_api(), NULL, (int64_t)time(NULL),
                           "Connection timed out", 42);
  wait_stderr(p, "Telegram could not deliver an update", 5000);
  CHECK(output_has(p, "Connection timed out") &&
            output_has(p, "42 update(s) waiting"),
        "the log line says what Telegram said");
  struct buf body = BUF_INIT;
  CHECK(get_url(mport, "/healthz", &body) == 200 &&
            strstr(body.data, "degraded: webhook") &&
            strstr(body.data, "Connection timed out"),
        "/healthz while Telegram fails: %s", body.data);
  struct metric_wait failing = {mport, "tghost_webhook_delivery_failing", 1};
  CHECK(run_until(metric_is, &failing, 5000), "the failing gauge");
  struct metric_wait pending = {mport, "tghost_webhook_pending_updates", 42};
  CHECK(run_until(metric_is, &pending, 5000), "the pending gauge");
  CHECK(get_url(mport, "/metrics", &body) == 200 &&
            strstr(body.data, "tghost_webhook_last_error_info{kind=\"delivery\","
                              "message=\"Connection timed out\"} 1"),
        "the error's info metric");
  run_for(1000);   /* more polls report the same error: one line */
  CHECK(count_in(proc_stderr(p), "Telegram could not deliver") == 1,
        "the same error logged again");

  /* An update arrives: deliveries work again. */
  fakeapi_set_webhook_info(harness_api(), NULL, (int64_t)time(NULL) - 5,
                           "Connection timed out", 0);
  buf_reset(&body);
  text_update(&body, 77, 3, "back");
  CHECK(post_raw(port, SECRET, body.data, body.len) == 200, "a delivery");
  wait_stderr(p, "updates arrive again", 5000);
  failing.want = 0;
  CHECK(run_until(metric_is, &failing, 5000), "the failing gauge back to 0");
  CHECK(get_url(mport, "/healthz", &body) == 200 &&
            strstr(body.data, "ok: webhook"),
        "/healthz after the recovery: %s", body.data);

  /* Another process points the webhook elsewhere. */
  fakeapi_set_webhook_info(harness_api(), "https://elsewhere.example/x", 0,
                           NULL, 0);
  wait_stderr(p, "another process changed the webhook", 5000);
  CHECK(get_url(mport, "/healthz", &body) == 200 &&
            strstr(body.data, "degraded") && strstr(body.data, "elsewhere"),
        "/healthz with the URL changed: %s", body.data);
  fakeapi_set_webhook_info(harness_api(), NULL, 0, NULL, 0);
  wait_stderr(p, "posts updates to https://bot.example.com/hook again", 5000);
  buf_free(&body);
  buf_free(&health.body);
  proc_stop_cleanly(p);
  CHECK(run_until(has_text, "back", 1000), "the update was handled");
}

/* A posted update with update_id twice is refused (400), whichever way the
 * second is written: tghost and the script would each see another id. */
TEST(webhook_duplicate_update_id) {
  const char *script = harness_write("echo.lua",
      "bot.on('message:text', function(ctx) ctx:reply('r' .. ctx.update.update_id) end)\n"
      "run(bot)\n");
  const char *secret_file = harness_write("secret.txt", SECRET "\n");
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret_file, NULL};
  struct proc *p = proc_start(script, args);
  int port = wait_port(p, WEBHOOK_MARK);
  wait_calls("setWebhook", 1, 10000);
  static const char *const twice[] = {
      "{\"update_id\":20,\"message\":{\"message_id\":1,\"date\":1,"
      "\"chat\":{\"id\":3,\"type\":\"private\"},\"text\":\"a\"},"
      "\"update_id\":21}",
      "{\"update_id\":22,\"upd\\u0061te_id\":23,\"message\":{\"message_id\":1,"
      "\"date\":1,\"chat\":{\"id\":3,\"type\":\"private\"},\"text\":\"b\"}}",
      NULL};
  for (int i = 0; twice[i]; i++)
    CHECK(post_raw(port, SECRET, twice[i], strlen(twice[i])) == 400,
          "update %d with two ids was not refused", i);
  struct buf body = BUF_INIT;
  text_update(&body, 24, 3, "ok");
  CHECK(post_raw(port, SECRET, body.data, body.len) == 200, "a good one");
  buf_free(&body);
  CHECK(run_until(has_text, "r24", 10000), "the good one was handled");
  run_for(300);
  CHECK(!api_sent_text("r20") && !api_sent_text("r21") &&
            !api_sent_text("r22") && !api_sent_text("r23"),
        "an update with two ids was handled");
  CHECK(count_in(proc_stderr(p), "update_id appears twice") == 2,
        "the refusals were not logged");
  proc_stop_cleanly(p);
}
