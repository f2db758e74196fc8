/* tghost's HTTP listeners (the webhook and /metrics, src/net/httpd.c) where
 * anyone can reach them: floods of idle connections, accept() out of file
 * descriptors, slow heads, clients that send before they are allowed to,
 * and heads framed ambiguously.
 *
 * The requests go over raw sockets, written byte for byte (libcurl would
 * not send a malformed head); while a test waits for an answer it keeps
 * the harness's loop turning, so the fake Bot API goes on answering
 * tghost. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"
#include "probe.h"

#define SECRET "listeners_Secret-1"
#define SECRET_HEADER "X-Telegram-Bot-Api-Secret-Token: " SECRET "\r\n"

/* --- tghost in webhook mode ------------------------------------------------- */

struct bot {
  struct proc *p;
  int port, mport;    /* the webhook's, /metrics' */
};

/* Starts the echo bot with a webhook and --metrics (env: more variables)
 * and waits until the webhook is set. */
static struct bot start_bot(const char *const *env_more) {
  const char *script = harness_write("echo.lua",
      "bot.on('message:text', function(ctx) ctx:reply('got ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  const char *secret = harness_write("secret.txt", SECRET "\n");
  const char *args[] = {"--webhook", "https://bot.example.com/hook",
                        "--listen", "127.0.0.1:0", "--webhook-secret-file",
                        secret, "--metrics", "127.0.0.1:0", NULL};
  static char asan[512];
  const char *cur = getenv("ASAN_OPTIONS");
  /* Freed memory goes back at once, so that RSS says what is held. */
  snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%squarantine_size_mb=0",
           cur ? cur : "", cur && *cur ? ":" : "");
  const char *env[8] = {"BOT_TOKEN=" TEST_TOKEN, asan};
  for (int i = 0; env_more && env_more[i] && i < 5; i++) env[2 + i] = env_more[i];
  struct bot b = {proc_start_env(script, args, env, true), 0, 0};
  b.port = wait_port(b.p, WEBHOOK_MARK);
  b.mport = wait_port(b.p, METRICS_MARK);
  wait_calls("setWebhook", 1, 10000);
  return b;
}

/* --- raw HTTP ---------------------------------------------------------------- */

static void pump(void) { event_base_loop(harness_base(), EVLOOP_NONBLOCK); }

/* Polls fd for events while the harness's loop keeps turning; the events
 * seen, or 0 after timeout_ms. */
static short await(int fd, short events, int timeout_ms) {
  uint64_t end = harness_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    struct pollfd pfd = {fd, events, 0};
    if (poll(&pfd, 1, 5) > 0) return pfd.revents;
    pump();
    if (harness_now_ms() >= end) return 0;
  }
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0, "socket: %s", strerror(errno));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
        strerror(errno));
  return fd;
}

/* Sends all of data unless the peer has closed; false then. */
static bool send_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    if (!(await(fd, POLLOUT, 10000) & POLLOUT)) return false;
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

static bool send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

/* Reads one byte within the deadline: 1, or 0 at the end of the stream
 * or a reset, or -1 when nothing came. */
static int read_byte(int fd, uint64_t end, char *c) {
  for (;;) {
    ssize_t n = recv(fd, c, 1, MSG_DONTWAIT);
    if (n == 1) return 1;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return 0;
    int left = (int)(end - harness_now_ms());
    if (left <= 0 || !await(fd, POLLIN, left)) return -1;
  }
}

/* Reads one answer (head and Content-Length body) within timeout_ms, and
 * nothing after it (a byte at a time: an answer pipelined behind stays for
 * the next call): its status, or -1 if the connection closed or nothing
 * came. The head goes to head if given. */
static int read_answer(int fd, int timeout_ms, struct buf *head) {
  struct buf in = BUF_INIT;
  uint64_t end = harness_now_ms() + (uint64_t)timeout_ms;
  char c;
  while (!in.data || !strstr(in.data, "\r\n\r\n")) {
    if (read_byte(fd, end, &c) != 1) {
      buf_free(&in);
      return -1;
    }
    buf_append_char(&in, c);
  }
  int status = atoi(in.data + 9);
  const char *cl = strcasestr(in.data, "\r\nContent-Length:");
  size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
  for (size_t i = 0; i < body; i++)
    if (read_byte(fd, end, &c) != 1) status = -1;
  if (head) {
    buf_reset(head);
    buf_append(head, in.data, in.len);
  }
  buf_free(&in);
  return status;
}

/* True if the peer closes fd (end of stream or reset) within timeout_ms
 * (0: already); what it sends before is dropped. */
static bool closed_by_peer(int fd, int timeout_ms) {
  uint64_t end = harness_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    if (n > 0) continue;
    int left = (int)(end - harness_now_ms());
    if (left <= 0 || !await(fd, POLLIN, left)) return false;
  }
}

static void update_json(struct buf *out, int64_t id, const char *text) {
  buf_printf(out, "{\"update_id\":%lld,\"message\":{\"message_id\":1,"
             "\"date\":1700000000,\"chat\":{\"id\":7,\"type\":\"private\"},"
             "\"from\":{\"id\":7,\"is_bot\":false,\"first_name\":\"U\"},"
             "\"text\":\"%s\"}}", (long long)id, text);
}

/* A whole POST of an update ("secret" NULL: none). */
static void post_text(struct buf *out, const char *secret, int64_t id,
                      const char *text) {
  struct buf body = BUF_INIT;
  update_json(&body, id, text);
  buf_printf(out, "POST /hook HTTP/1.1\r\nHost: bot\r\n"
             "Content-Type: application/json\r\n");
  if (secret)
    buf_printf(out, "X-Telegram-Bot-Api-Secret-Token: %s\r\n", secret);
  buf_printf(out, "Content-Length: %zu\r\n\r\n%s", body.len, body.data);
  buf_free(&body);
}

/* Posts one update on a new connection; its status and how long the
 * answer took. */
static int post_update(int port, int64_t id, const char *text,
                       uint64_t *ms) {
  uint64_t t0 = harness_now_ms();
  int fd = tcp_connect(port);
  struct buf req = BUF_INIT;
  post_text(&req, SECRET, id, text);
  int status = send_all(fd, req.data, req.len) ? read_answer(fd, 10000, NULL)
                                               : -1;
  buf_free(&req);
  close(fd);
  if (ms) *ms = harness_now_ms() - t0;
  return status;
}

static int get_path(int port, const char *path, uint64_t *ms,
                    struct buf *head) {
  uint64_t t0 = harness_now_ms();
  int fd = tcp_connect(port);
  char req[256];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  int status = send_str(fd, req) ? read_answer(fd, 10000, head) : -1;
  close(fd);
  if (ms) *ms = harness_now_ms() - t0;
  return status;
}

/* A value on /metrics, by its whole series name, or -1. */
static double metric(int mport, const char *series) {
  int fd = tcp_connect(mport);
  send_str(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  struct buf text = BUF_INIT;
  char chunk[4096];
  while (await(fd, POLLIN, 5000)) {
    ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    buf_append(&text, chunk, (size_t)n);
  }
  close(fd);
  double v = -1;
  size_t len = strlen(series);
  for (const char *at = text.data; at && (at = strstr(at, series)); at++)
    if ((at == text.data || at[-1] == '\n') && at[len] == ' ') {
      v = strtod(at + len + 1, NULL);
      break;
    }
  buf_free(&text);
  return v;
}

/* --- floods of idle connections ---------------------------------------- */

/* Opens up to n connections that send nothing (non-blocking connects);
 * their descriptors go to fds; returns how many opened. They come from
 * eight loopback addresses: from one, connect() slows to seconds once
 * half the ephemeral ports are taken (Linux gives connect() the even
 * ones first). */
static size_t open_idle(int port, int *fds, size_t n) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  static unsigned next_source;
  size_t opened = 0;
  for (size_t i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) break;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in from = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + next_source++ % 8)};
    if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0 ||
        (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
         errno != EINPROGRESS)) {
      close(fd);
      break;
    }
    fds[opened++] = fd;
    if (i % 256 == 255) pump();
  }
  return opened;
}

/* How many of fds tghost has closed (end of stream or reset now). */
static size_t closed_now(const int *fds, size_t n) {
  size_t closed = 0;
  for (size_t i = 0; i < n; i++) {
    struct pollfd pfd = {fds[i], POLLIN | POLLRDHUP, 0};
    if (poll(&pfd, 1, 0) > 0 &&
        (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
      closed++;
  }
  return closed;
}

/* As many descriptors as the hard limit allows, for the test itself. */
static size_t raise_own_file_limit(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  return (size_t)rl.rlim_cur;
}

/* 20,000 connections (or as many as the test may open) that send nothing,
 * opened in rounds; after each round a valid POST and /healthz must be
 * answered within a second. tghost keeps at most its limit (512) open,
 * closing the connection idle the longest for each new one; its CPU stays
 * bounded and its log says so in a line or two. */
TEST_SERIAL(idle_flood) {
  struct bot b = start_bot(NULL);
  size_t nofile = raise_own_file_limit();
  size_t want = 20000;
  if (want > nofile - 200) want = nofile - 200;
  int *fds = xcalloc(want, sizeof *fds);
  size_t opened = 0;
  const int rounds = 10;
  uint64_t worst_post = 0, worst_health = 0;
  double cpu0 = proc_cpu_seconds(b.p);
  uint64_t t0 = harness_now_ms();
  for (int r = 0; r < rounds; r++) {
    opened += open_idle(b.port, fds + opened, want / rounds);
    uint64_t ms;
    char text[32];
    snprintf(text, sizeof text, "flood%d", r);
    CHECK(post_update(b.port, 5000 + r, text, &ms) == 200,
          "round %d: a valid POST was not answered 200", r);
    if (ms > worst_post) worst_post = ms;
    CHECK(get_path(b.mport, "/healthz", &ms, NULL) == 200,
          "round %d: /healthz did not answer 200", r);
    if (ms > worst_health) worst_health = ms;
  }
  double flood_cpu = proc_cpu_seconds(b.p) - cpu0;
  uint64_t flood_ms = harness_now_ms() - t0;
  /* Once tghost has caught up, nothing more happens: no spinning. */
  run_for(1500);
  double idle0 = proc_cpu_seconds(b.p);
  run_for(2000);
  double idle_cpu = proc_cpu_seconds(b.p) - idle0;
  size_t closed = closed_now(fds, opened);
  double open_now = metric(b.mport, "tghost_http_connections{listener=\"webhook\"}");
  double evicted = metric(b.mport, "tghost_http_connections_closed_total"
                                   "{listener=\"webhook\",reason=\"evicted\"}");
  fprintf(stderr, "%zu idle connections (of %zu wanted; the test may open %zu "
          "descriptors) in %.2f s: tghost closed %zu of them (%.0f evicted, "
          "%.0f open at the end); worst answer: POST %llu ms, /healthz %llu "
          "ms; tghost's CPU %.2f s during the flood, %.3f s in 2 s after\n",
          opened, want, nofile, flood_ms / 1000.0, closed, evicted, open_now,
          (unsigned long long)worst_post, (unsigned long long)worst_health,
          flood_cpu, idle_cpu);
  CHECK(worst_post < 1000 && worst_health < 1000,
        "an answer took over a second: POST %llu ms, /healthz %llu ms",
        (unsigned long long)worst_post, (unsigned long long)worst_health);
  CHECK(open_now >= 0 && open_now <= 512 + 2,
        "tghost holds %.0f connections, over its limit", open_now);
  CHECK(evicted >= (double)opened - 512 - 16 && closed + 512 + 16 >= opened,
        "eviction: %.0f evicted, %zu seen closed, of %zu", evicted, closed,
        opened);
  CHECK(idle_cpu < 0.2, "tghost used %.2f s of CPU in 2 s with nothing to do",
        idle_cpu);
  CHECK(flood_cpu < opened * 0.0005 + 2,
        "tghost used %.2f s of CPU for %zu connections", flood_cpu, opened);
  size_t lines = count_in(proc_stderr(b.p), "closed to make room");
  CHECK(lines >= 1 && lines <= 1 + flood_ms / 10000 + 1,
        "%zu log lines about evictions", lines);
  CHECK(strlen(proc_stderr(b.p)) < 16384, "the log grew to %zu bytes",
        strlen(proc_stderr(b.p)));
  for (size_t i = 0; i < opened; i++) close(fds[i]);
  free(fds);
  wait_calls("sendMessage", (size_t)rounds, 10000);
  for (int r = 0; r < rounds; r++) {
    char text[32];
    snprintf(text, sizeof text, "got flood%d", r);
    CHECK(api_sent_text(text), "update %d was not handled", r);
  }
  proc_stop_cleanly(b.p);
}

/* tghost out of file descriptors while connections keep coming: accept()
 * fails, and without care libevent's listener, still readable, would spin
 * and log a line per attempt (6 million lines in the audit). The listener
 * pauses instead, idle connections are closed to free descriptors, one
 * line is logged, and a valid POST is answered once the flood stops. */
TEST_SERIAL(accept_error) {
  /* A limit far above what the descriptors allow: accept() fails first. */
  static const char *const env[] = {"TGHOST_HTTP_MAX_CONNECTIONS=5000", NULL};
  struct bot b = start_bot(env);
  struct rlimit few = {160, 160};
  CHECK(prlimit(proc_pid(b.p), RLIMIT_NOFILE, &few, NULL) == 0, "prlimit: %s",
        strerror(errno));
  raise_own_file_limit();
  size_t want = 3000;
  int *fds = xcalloc(want, sizeof *fds);
  double cpu0 = proc_cpu_seconds(b.p);
  uint64_t t0 = harness_now_ms();
  size_t opened = 0;
  for (int r = 0; r < 6; r++) {
    opened += open_idle(b.port, fds + opened, want / 6);
    run_for(300);
  }
  run_for(1000);
  double flood_cpu = proc_cpu_seconds(b.p) - cpu0;
  uint64_t flood_ms = harness_now_ms() - t0;
  double idle0 = proc_cpu_seconds(b.p);
  run_for(2000);
  double idle_cpu = proc_cpu_seconds(b.p) - idle0;
  uint64_t ms;
  int status = post_update(b.port, 9001, "after", &ms);
  size_t lines = count_in(proc_stderr(b.p), "cannot accept connections");
  double freed = metric(b.mport, "tghost_http_connections_closed_total"
                                 "{listener=\"webhook\",reason=\"accept_error\"}");
  fprintf(stderr, "%zu connections against 160 descriptors in %.1f s: %zu "
          "log line(s), %.0f connections closed to free descriptors, "
          "tghost's CPU %.2f s during, %.3f s in 2 s after; then a POST "
          "answered %d in %llu ms\n", opened, flood_ms / 1000.0, lines,
          freed, flood_cpu, idle_cpu, status, (unsigned long long)ms);
  CHECK(lines >= 1 && lines <= 1 + flood_ms / 10000, "%zu log lines", lines);
  CHECK(!strstr(proc_stderr(b.p), "Error from accept"),
        "libevent's own accept warnings reached the log");
  CHECK(freed > 0, "no connection was closed to free descriptors");
  CHECK(idle_cpu < 0.2, "tghost used %.2f s of CPU in 2 s after the flood",
        idle_cpu);
  CHECK(status == 200 && ms < 3000, "the POST after the flood: %d in %llu ms",
        status, (unsigned long long)ms);
  for (size_t i = 0; i < opened; i++) close(fds[i]);
  free(fds);
  wait_calls("sendMessage", 1, 10000);
  proc_stop_cleanly(b.p);
}

/* Deadlines: a connection that sends nothing, a head sent one byte a
 * second (slowloris) and one on /metrics are closed within a second of the
 * 10 s head deadline; a connection kept alive after an answer is not (its
 * idle deadline is 120 s). */
TEST(slow_heads) {
  struct bot b = start_bot(NULL);
  uint64_t t0 = harness_now_ms();
  int silent = tcp_connect(b.port);
  int slow = tcp_connect(b.port);
  int slow_metrics = tcp_connect(b.mport);
  int kept = tcp_connect(b.port);
  struct buf req = BUF_INIT;
  post_text(&req, SECRET, 100, "kept");
  CHECK(send_all(kept, req.data, req.len) && read_answer(kept, 5000, NULL) == 200,
        "the kept connection's request");
  buf_free(&req);
  const char *head = "POST /hook HTTP/1.1\r\nHost: bot\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa";
  int fds[3] = {silent, slow, slow_metrics};
  uint64_t closed_at[3] = {0, 0, 0};
  size_t sent = 0;
  while (harness_now_ms() - t0 < 14000) {
    if (sent < strlen(head) && harness_now_ms() - t0 >= sent * 1000) {
      send(slow, head + sent, 1, MSG_NOSIGNAL);
      send(slow_metrics, head + sent, 1, MSG_NOSIGNAL);
      sent++;
    }
    for (int i = 0; i < 3; i++)
      if (!closed_at[i] && closed_by_peer(fds[i], 0))
        closed_at[i] = harness_now_ms() - t0;
    run_for(50);
  }
  static const char *const names[] = {"a silent connection", "a slow head",
                                      "a slow head on /metrics"};
  for (int i = 0; i < 3; i++)
    CHECK(closed_at[i] >= 9500 && closed_at[i] <= 12500,
          "%s %s %llu ms, not about 10 s", names[i],
          closed_at[i] ? "closed after" : "still open after",
          (unsigned long long)(closed_at[i] ? closed_at[i] : 14000));
  CHECK(!closed_by_peer(kept, 0), "the kept connection was closed");
  post_text(&req, SECRET, 101, "still kept");
  CHECK(send_all(kept, req.data, req.len) && read_answer(kept, 5000, NULL) == 200,
        "the kept connection's second request");
  buf_free(&req);
  CHECK(metric(b.mport, "tghost_http_connections_closed_total"
                        "{listener=\"webhook\",reason=\"head_timeout\"}") == 2 &&
            metric(b.mport, "tghost_http_connections_closed_total"
                            "{listener=\"metrics\",reason=\"head_timeout\"}") == 1,
        "the closes were not counted");
  for (int i = 0; i < 3; i++) close(fds[i]);
  close(kept);
  wait_calls("sendMessage", 2, 10000);
  proc_stop_cleanly(b.p);
}

/* The secret (and the method, and the room left) is checked on the head,
 * before a byte of the body is read: 300 clients posting 1 MiB each with
 * a wrong secret get their 401 without tghost buffering what they send
 * (it held every body before: RSS 15 -> 318 MB). A refusal with a short
 * body keeps the connection; a client asking to continue is told to. */
TEST(secret_before_body) {
  struct bot b = start_bot(NULL);
  const size_t big = 1u << 20;
  char head[512];
  snprintf(head, sizeof head, "POST /hook HTTP/1.1\r\nHost: bot\r\n"
           "X-Telegram-Bot-Api-Secret-Token: wrong\r\nContent-Length: %zu\r\n"
           "\r\n", big);

  /* The 401 comes before any body byte is sent. */
  int fd = tcp_connect(b.port);
  uint64_t t0 = harness_now_ms();
  CHECK(send_str(fd, head) && read_answer(fd, 2000, NULL) == 401,
        "no 401 for a head alone");
  CHECK(harness_now_ms() - t0 < 1000, "the 401 waited");
  CHECK(closed_by_peer(fd, 5000), "a refused 1 MiB body kept the connection");
  close(fd);

  /* 300 at once, each sending its whole body. */
  long rss0 = proc_rss_kib(b.p);
  enum { N = 300 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = tcp_connect(b.port);
    send_str(fds[i], head);
  }
  char *body = xmalloc(big);
  memset(body, 'x', big);
  size_t answered = 0;
  for (int i = 0; i < N; i++) {
    send_all(fds[i], body, big);   /* tghost drops it, or has closed */
    answered += read_answer(fds[i], 5000, NULL) == 401;
    close(fds[i]);
  }
  long rss1 = proc_rss_kib(b.p);
  fprintf(stderr, "300 refused 1 MiB posts: %zu answered 401; tghost's RSS "
          "%ld -> %ld KiB\n", answered, rss0, rss1);
  CHECK(answered == N, "%zu of %d got their 401", answered, N);
  CHECK(rss1 - rss0 < 8192, "RSS grew by %ld KiB", rss1 - rss0);

  /* A short refused body is dropped and the connection goes on. */
  fd = tcp_connect(b.port);
  struct buf req = BUF_INIT;
  post_text(&req, "wrong", 200, "refused");
  post_text(&req, SECRET, 201, "after a refusal");
  CHECK(send_all(fd, req.data, req.len), "send");
  CHECK(read_answer(fd, 5000, NULL) == 401 && read_answer(fd, 5000, NULL) == 200,
        "a refusal and then a valid request on one connection");
  buf_reset(&req);
  /* Expect: 100-continue: told to go on, then answered. */
  struct buf json = BUF_INIT;
  update_json(&json, 202, "continued");
  buf_printf(&req, "POST /hook HTTP/1.1\r\nHost: bot\r\n" SECRET_HEADER
             "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n", json.len);
  CHECK(send_all(fd, req.data, req.len) && read_answer(fd, 2000, NULL) == 100,
        "no 100 Continue");
  CHECK(send_all(fd, json.data, json.len) && read_answer(fd, 5000, NULL) == 200,
        "the continued request");
  /* Too large, with the right secret: 413 before the body. */
  snprintf(head, sizeof head, "POST /hook HTTP/1.1\r\nHost: bot\r\n"
           SECRET_HEADER "Content-Length: %zu\r\n\r\n", 2 * big);
  CHECK(send_str(fd, head) && read_answer(fd, 2000, NULL) == 413, "no 413");
  close(fd);
  /* A GET is refused on its head too. */
  CHECK(get_path(b.port, "/hook", NULL, NULL) == 405, "GET gets 405");
  buf_free(&json);
  buf_free(&req);
  free(body);
  wait_calls("sendMessage", 2, 10000);
  CHECK(api_sent_text("got after a refusal") && api_sent_text("got continued") &&
            !api_sent_text("got refused"),
        "what was handled");
  CHECK(metric(b.mport, "tghost_webhook_requests_total{code=\"401\"}") == N + 2,
        "the 401s were not counted");
  proc_stop_cleanly(b.p);
}

struct framing_case {
  const char *head;      /* with SECRET_HEADER where it is wanted */
  int status;
};

/* Content-Length read strictly, and every other way to frame a request
 * two ways refused at once, not after a timeout. */
TEST(strict_framing) {
  struct bot b = start_bot(NULL);
  static const struct framing_case cases[] = {
      {"POST /hook HTTP/1.1\r\n" SECRET_HEADER
       "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
      {"POST /hook HTTP/1.1\r\n" SECRET_HEADER
       "Content-Length: 10000000000000000000000\r\n\r\n", 400},
      {"POST /hook HTTP/1.1\r\n" SECRET_HEADER
       "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST /hook HTTP/1.1\r\n" SECRET_HEADER
       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411},
      {"POST /hook HTTP/1.1\r\n" SECRET_HEADER
       "Content-Length: -1\r\n\r\n", 400},
      {"POST /hook HTTP/1.1\r\n" SECRET_HEADER
       "X-A: b\r\n c\r\n\r\n", 400},
      {"POST /hook HTTP/2.0\r\n" SECRET_HEADER "\r\n", 505},
      {"POST /hook HTTP/1.1\r\nHost: a\r\n\x01\r\n\r\n", 400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int fd = tcp_connect(b.port);
    uint64_t t0 = harness_now_ms();
    int status = send_str(fd, cases[i].head) ? read_answer(fd, 3000, NULL) : -2;
    uint64_t ms = harness_now_ms() - t0;
    CHECK(status == cases[i].status && ms < 1000,
          "case %zu: %d after %llu ms, want %d at once", i, status,
          (unsigned long long)ms, cases[i].status);
    CHECK(closed_by_peer(fd, 3000), "case %zu: the connection stays open", i);
    close(fd);
  }
  /* Two requests in one write, and one sent a byte at a time: each
   * answered, in order. */
  struct buf req = BUF_INIT;
  post_text(&req, SECRET, 300, "first");
  post_text(&req, SECRET, 301, "second");
  int fd = tcp_connect(b.port);
  CHECK(send_all(fd, req.data, req.len), "send");
  CHECK(read_answer(fd, 5000, NULL) == 200 && read_answer(fd, 5000, NULL) == 200,
        "two pipelined requests");
  buf_reset(&req);
  post_text(&req, SECRET, 302, "bytewise");
  for (size_t i = 0; i < req.len; i++) send_all(fd, req.data + i, 1);
  CHECK(read_answer(fd, 5000, NULL) == 200, "a request sent byte by byte");
  close(fd);
  buf_free(&req);
  wait_calls("sendMessage", 3, 10000);
  CHECK(api_sent_text("got first") && api_sent_text("got second") &&
            api_sent_text("got bytewise"),
        "the valid requests were handled");
  CHECK(metric(b.mport, "tghost_webhook_requests_total{code=\"400\"}") == 6,
        "the 400s were not counted");
  proc_stop_cleanly(b.p);
}

/* /metrics has a head limit too (8 KiB): a client sending header bytes
 * without end is cut off with 431, and tghost's memory does not move (it
 * grew by 300 MB on one connection before). */
TEST(metrics_head_limit) {
  struct bot b = start_bot(NULL);
  long rss0 = proc_rss_kib(b.p);
  int fd = tcp_connect(b.mport);
  char *junk = xmalloc(1u << 20);
  memset(junk, 'a', 1u << 20);
  send_str(fd, "GET /metrics HTTP/1.1\r\nX-Long: ");
  /* tghost answers 431 at 8 KiB, drops the rest for a moment so that the
   * client can read the answer, then closes. */
  uint64_t t0 = harness_now_ms();
  size_t sent = 0;
  while (harness_now_ms() - t0 < 10000) {
    if (!(await(fd, POLLOUT, 100) & POLLOUT)) continue;
    ssize_t n = send(fd, junk, 1u << 20, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    sent += (size_t)n;
  }
  uint64_t cut = harness_now_ms() - t0;
  CHECK(cut < 4000, "tghost took %llu ms (%zu bytes) to close an endless head",
        (unsigned long long)cut, sent);
  close(fd);
  long rss1 = proc_rss_kib(b.p);
  CHECK(rss1 - rss0 < 4096, "RSS grew by %ld KiB", rss1 - rss0);
  struct buf head = BUF_INIT;
  /* A short oversized head gets its answer. */
  fd = tcp_connect(b.mport);
  send_str(fd, "GET /metrics HTTP/1.1\r\nX-Long: ");
  send_all(fd, junk, 9000);
  send_str(fd, "\r\n\r\n");
  CHECK(read_answer(fd, 3000, NULL) == 431, "no 431 for a 9 KB head");
  close(fd);
  wait_stderr(b.p, "webhook set", 5000);
  int health = get_path(b.mport, "/healthz", NULL, &head);
  CHECK(health == 200, "/healthz answered %d: %s", health,
        head.data ? head.data : "");
  fd = tcp_connect(b.mport);
  send_str(fd, "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
  CHECK(read_answer(fd, 3000, &head) == 405 &&
            strstr(head.data, "Allow: GET, HEAD"),
        "POST /metrics: %s", head.data ? head.data : "");
  close(fd);
  buf_free(&head);
  free(junk);
  proc_stop_cleanly(b.p);
}
