/* tghost side by side with grammY runner (Node) and Go telebot v3: the same
 * bot in each (bench/peers/), each run a fresh process against a fresh fake
 * Bot API server (tests/fakeapi.c) in this process, correctness checked in
 * every run. bench/README.md says how to set the peers up and what the
 * figures mean; bench/run.sh does all of it in one command.
 *
 *   build/bench/peerbench [--runs N] [--scenarios a,b,...] [--peers a,b,...]
 *                         [--scale F] [--h2-streams N]
 *   build/bench/peerbench --smoke        tghost only, a few hundred updates,
 *                                        correctness only (a ctest test)
 *
 * Scenarios: echo, seq, slowio, slowio-h2, latency, idle, ceiling.
 * Each scenario runs every peer once per round, the order rotating from
 * round to round, and prints the median, min-max and tghost's ratio to the
 * best peer of every figure, as a Markdown table.
 *
 * Measured on the bot's process: CPU = user+sys (/proc/PID/stat, all
 * threads) from its first getUpdates to the end of the work, so start-up
 * costs nobody; peak RSS = VmHWM; RSS at the first getUpdates as the
 * baseline that "per update in flight" figures subtract. Time runs from the
 * first getUpdates, before any update exists, to the last reply received
 * (or answered, where replies are slow). */
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef TGHOST_SOURCE_DIR
#error "TGHOST_SOURCE_DIR must name the source tree"
#endif
#define PEERS_DIR TGHOST_SOURCE_DIR "/bench/peers"

enum { CHAT_BASE = 100000, MAX_RUNS = 9 };

/* --- the peers ---------------------------------------------------------- */

/* telebot runs twice: as it comes (its HTTP client keeps 2 idle
 * connections) and with a connection pool as large as its concurrency
 * (BENCH_GO_POOL=1, see peers/telebot/main.go). */
enum peer_id { TGHOST, GRAMMY, TELEBOT, TELEBOT_POOL, NPEERS };

static const char *const peer_names[NPEERS] = {"tghost", "grammy", "telebot",
                                               "telebot-pool"};
static const char *const peer_titles[NPEERS] = {
    "tghost", "grammY runner", "telebot", "telebot, pooled"};
static bool peer_on[NPEERS] = {true, true, true, true};

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static bool peer_available(enum peer_id p, char *why, size_t len) {
  switch (p) {
    case TGHOST:
      return true;
    case GRAMMY:
      if (system("command -v node >/dev/null 2>&1") != 0) {
        snprintf(why, len, "node is not installed");
        return false;
      }
      if (!file_exists(PEERS_DIR "/node_modules/@grammyjs/runner")) {
        snprintf(why, len, "bench/peers/node_modules is missing");
        return false;
      }
      return true;
    case TELEBOT:
    case TELEBOT_POOL:
      if (!file_exists(PEERS_DIR "/bin/telebot")) {
        snprintf(why, len, "bench/peers/bin/telebot is not built");
        return false;
      }
      return true;
    default:
      return false;
  }
}

struct bot_env {
  const char *api_root;
  const char *mode;          /* "echo" or "seq" */
  long concurrency;
  const char *ca_file;       /* trust this certificate (the h2 front) */
};

/* PEERBENCH_WRAP="valgrind --tool=massif" (say) runs tghost's bot under
 * that command, for profiles; the figures then measure the wrapper. */
static struct proc *start_wrapped(const char *const *argv,
                                  const char *const *env, bool wrap) {
  const char *wrapper = wrap ? getenv("PEERBENCH_WRAP") : NULL;
  if (!wrapper || !*wrapper) return proc_start_command(argv, env);
  static char words[1024];
  snprintf(words, sizeof words, "%s", wrapper);
  const char *all[64];
  int n = 0;
  char *save = NULL;
  for (char *w = strtok_r(words, " ", &save); w && n < 48;
       w = strtok_r(NULL, " ", &save))
    all[n++] = w;
  for (int i = 0; argv[i] && n < 63; i++) all[n++] = argv[i];
  all[n] = NULL;
  return proc_start_command(all, env);
}

static struct proc *start_bot(enum peer_id p, const struct bot_env *e) {
  static char token[128], root[256], mode[64], conc[64], ssl[512], node_ca[512];
  static char pool[] = "BENCH_GO_POOL=1";
  snprintf(token, sizeof token, "BOT_TOKEN=%s", TEST_TOKEN);
  snprintf(root, sizeof root, "API_ROOT=%s", e->api_root);
  snprintf(mode, sizeof mode, "BENCH_MODE=%s", e->mode);
  snprintf(conc, sizeof conc, "BENCH_CONCURRENCY=%ld", e->concurrency);
  const char *env[8] = {token, root, mode, conc};
  int n = 4;
  if (p == TELEBOT_POOL) env[n++] = pool;
  if (e->ca_file) {
    snprintf(ssl, sizeof ssl, "SSL_CERT_FILE=%s", e->ca_file);
    snprintf(node_ca, sizeof node_ca, "NODE_EXTRA_CA_CERTS=%s", e->ca_file);
    env[n++] = ssl;
    env[n++] = node_ca;
  }
  env[n] = NULL;
  switch (p) {
    case TGHOST: {
      /* PEERBENCH_TGHOST=path compares another build (A/B). */
      const char *bin = getenv("PEERBENCH_TGHOST");
      const char *argv[] = {bin && *bin ? bin : harness_tghost_binary(),
                            "--api-root", e->api_root,
                            PEERS_DIR "/tghost.lua", NULL};
      return start_wrapped(argv, env, true);
    }
    case GRAMMY: {
      const char *argv[] = {"node", PEERS_DIR "/grammy.js", NULL};
      return proc_start_command(argv, env);
    }
    case TELEBOT:
    case TELEBOT_POOL: {
      const char *argv[] = {PEERS_DIR "/bin/telebot", NULL};
      return proc_start_command(argv, env);
    }
    default:
      return NULL;
  }
}

/* user+sys CPU seconds of a process, all its threads. */
static double proc_cpu_s(const struct proc *p) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", proc_pid(p));
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  const char *rest = strrchr(text, ')');   /* the name may hold spaces */
  unsigned long utime, stime;
  if (!rest || sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                                "%lu %lu", &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Name:  N kB" field of /proc/PID/status, or -1. */
static long status_kib(const struct proc *p, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", proc_pid(p));
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kib = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      kib = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kib;
}

/* --- one run ------------------------------------------------------------ */

struct scenario {
  const char *name;
  const char *title;
  const char *mode;
  long updates;
  long chats;
  long reply_delay_ms;
  long concurrency;
  bool h2;
  long rate;               /* latency: updates offered per second */
  long seconds;            /* latency: for this long */
  bool check_order;
};

/* What the h2 front saw: requests by protocol, and the client
 * connections (ports) that carried getUpdates and the other calls. */
struct front_stats {
  long h2, other;
  int poll_conns, call_conns, shared_conns;
  long calls;
};

struct result {
  bool ok;
  char why[512];
  double seconds;          /* first getUpdates to the last reply */
  double cpu_s;
  long base_rss_kib, peak_rss_kib, idle_rss_kib;
  long idle_anon_kib;      /* the private part: RSS less shared library pages */
  size_t max_in_flight;
  double p50_ms, p99_ms;
  double server_rps;
  bool have_front;
  struct front_stats front;
};

/* The state of the run in progress. */
struct run {
  const struct scenario *sc;
  struct fakeapi *api;
  struct proc *bot;
  long n;                  /* updates in the run */
  int32_t *chat_of;        /* update index -> chat index */
  uint64_t *pushed_us;     /* when each update became available */
  unsigned char *answers;  /* replies seen per update (saturating) */
  int64_t *last_per_chat;  /* the latest update answered in each chat */
  long pushed, answered, duplicates, order_violations, foreign;
  size_t scanned;          /* calls of the fake server looked at */
  uint64_t last_reply_us, last_answer_us;
  double *latencies_ms;
  long nlat;
};

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x9e3779b97f4a7c15ULL;
}

static void push_one(struct run *r) {
  long i = r->pushed++;
  char text[32];
  snprintf(text, sizeof text, "u%ld", i);
  int64_t chat = CHAT_BASE + r->chat_of[i];
  r->pushed_us[i] = now_us();
  fakeapi_push_text(r->api, chat, chat, text);
}

/* Looks at the calls that arrived since the last look. */
static void scan_calls(struct run *r) {
  size_t total = fakeapi_call_count(r->api);
  for (; r->scanned < total; r->scanned++) {
    const struct fake_call *c = fakeapi_call(r->api, r->scanned);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *text = fake_call_string(c, "text");
    char *end = NULL;
    long i = text && text[0] == 'u' ? strtol(text + 1, &end, 10) : -1;
    bool mine = end && !*end && i >= 0 && i < r->pushed &&
                c->chat_id == CHAT_BASE + r->chat_of[i];
    free(text);
    if (!mine) {
      r->foreign++;
      continue;
    }
    if (r->answers[i]++) {
      r->duplicates++;
      if (r->answers[i] == 0) r->answers[i] = 255;
      continue;
    }
    r->answered++;
    if (c->received_us > r->last_reply_us) r->last_reply_us = c->received_us;
    if (r->latencies_ms)
      r->latencies_ms[r->nlat++] =
          (double)(c->received_us - r->pushed_us[i]) / 1000.0;
    int32_t chat = r->chat_of[i];
    if (r->last_per_chat[chat] > i) r->order_violations++;
    else r->last_per_chat[chat] = i;
  }
}

/* With slow replies the run ends when the last one was answered. */
static bool all_answered_back(struct run *r) {
  if (fakeapi_unanswered(r->api) != 0) return false;
  for (size_t k = 0; k < fakeapi_call_count(r->api); k++) {
    const struct fake_call *c = fakeapi_call(r->api, k);
    if (c->answered_us > r->last_answer_us) r->last_answer_us = c->answered_us;
  }
  return true;
}

static bool run_done(void *ud) {
  struct run *r = ud;
  scan_calls(r);
  if (proc_exited(r->bot)) return true;
  if (r->answered < r->n) return false;
  return r->sc->reply_delay_ms == 0 || all_answered_back(r);
}

static bool first_poll(void *ud) {
  struct run *r = ud;
  return fakeapi_poll_count(r->api) > 0 || proc_exited(r->bot);
}

/* Latency: updates are made available at a steady rate. */
static void on_pace(evutil_socket_t fd, short what, void *arg) {
  struct run *r = arg;
  static uint64_t start;
  if (r->pushed == 0) start = now_us();
  long due = (long)((double)(now_us() - start) * (double)r->sc->rate / 1e6) + 1;
  if (due > r->n) due = r->n;
  while (r->pushed < due) push_one(r);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double *v, long n, double q) {
  if (n == 0) return NAN;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  long k = (long)ceil(q * (double)n) - 1;
  if (k < 0) k = 0;
  if (k >= n) k = n - 1;
  return v[k];
}

/* Stops the bot: SIGTERM, then SIGKILL if it lingers. True if it exited
 * by itself with status 0. */
static bool stop_bot(struct proc *p) {
  if (proc_exited(p)) return proc_status(p) == 0;
  proc_kill(p, SIGTERM);
  if (proc_wait(p, 15000)) return proc_status(p) == 0;
  proc_kill(p, SIGKILL);
  proc_wait(p, 5000);
  return false;
}

static void fail(struct result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct result *res, const char *fmt, ...) {
  if (!res->ok) return;   /* the first reason is the one that counts */
  res->ok = false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->why, sizeof res->why, fmt, ap);
  va_end(ap);
}

/* The h2 front: nghttpx on TLS before the fake server. */
struct front {
  struct proc *proc;
  int port;
  char url[64];
  char log[256];           /* access log: "$alpn $remote_port $request" */
};


static const char *cert_path, *key_path;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sin;
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(sin.sin_port);
}

static bool port_open(void *ud) {
  int port = *(int *)ud;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
  close(fd);
  return ok;
}

static bool make_certificate(void) {
  if (cert_path) return true;
  static char cert[256], key[256];
  snprintf(cert, sizeof cert, "%s/front.pem", harness_tmpdir());
  snprintf(key, sizeof key, "%s/front.key", harness_tmpdir());
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s "
           "-days 2 -subj /CN=localhost -addext "
           "subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1",
           key, cert);
  if (system(cmd) != 0) return false;
  cert_path = cert;
  key_path = key;
  return true;
}

static long h2_streams = 100;

static bool front_start(struct front *fr, int backend_port, struct result *res) {
  if (!make_certificate()) {
    fail(res, "openssl could not make a certificate");
    return false;
  }
  fr->port = free_port();
  char frontend[64], backend[64], streams[64];
  snprintf(frontend, sizeof frontend, "--frontend=127.0.0.1,%d", fr->port);
  snprintf(backend, sizeof backend, "--backend=127.0.0.1,%d", backend_port);
  snprintf(streams, sizeof streams, "--frontend-http2-max-concurrent-streams=%ld",
           h2_streams);
  snprintf(fr->log, sizeof fr->log, "%s/front-%d.log", harness_tmpdir(),
           fr->port);
  char logopt[300];
  snprintf(logopt, sizeof logopt, "--accesslog-file=%s", fr->log);
  const char *argv[] = {"nghttpx", "--conf=/dev/null", frontend, backend,
                        streams, "--workers=1", "--no-ocsp", "--no-via",
                        "--log-level=WARN", "--rlimit-nofile=20000",
                        "--backend-keep-alive-timeout=60s", logopt,
                        "--accesslog-format=$alpn $remote_port $request",
                        key_path, cert_path, NULL};
  fr->proc = proc_start_command(argv, NULL);
  if (!run_until(port_open, &fr->port, 10000)) {
    fail(res, "nghttpx did not start: %.300s", proc_stderr(fr->proc));
    return false;
  }
  snprintf(fr->url, sizeof fr->url, "https://localhost:%d", fr->port);
  return true;
}

static void front_stop(struct front *fr) {
  if (!fr->proc) return;
  proc_kill(fr->proc, SIGTERM);
  if (!proc_wait(fr->proc, 5000)) proc_kill(fr->proc, SIGKILL);
  proc_free(fr->proc);
  fr->proc = NULL;
}

enum { MAX_PORTS = 65536 };

/* Reads the front's access log (after it stopped). */
static bool front_read_stats(const struct front *fr, struct front_stats *st) {
  memset(st, 0, sizeof *st);
  FILE *f = fopen(fr->log, "r");
  if (!f) return false;
  unsigned char *use = xcalloc(MAX_PORTS, 1);   /* 1: poll, 2: calls */
  char line[1024], alpn[32], method[16], target[900];
  int port;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%31s %d %15s %899s", alpn, &port, method, target) != 4 ||
        port <= 0 || port >= MAX_PORTS)
      continue;
    if (strcmp(alpn, "h2") == 0) st->h2++;
    else st->other++;
    /* The source's own requests (getMe at start, then getUpdates) go
     * through the long poll's pool. */
    bool poll = strstr(target, "/getUpdates") || strstr(target, "/getMe");
    if (!poll) st->calls++;
    use[port] |= poll ? 1 : 2;
  }
  fclose(f);
  for (int p = 0; p < MAX_PORTS; p++) {
    if (use[p] & 1) st->poll_conns++;
    if (use[p] & 2) st->call_conns++;
    if (use[p] == 3) st->shared_conns++;
  }
  free(use);
  return true;
}

static struct fakeapi *new_api(void) {
  struct fakeapi_config cfg = {.token = TEST_TOKEN, .username = "bench_bot"};
  return fakeapi_new(harness_base(), &cfg);
}

/* echo, seq, slowio(-h2), latency: a bot answering updates. */
static void run_updates(enum peer_id peer, const struct scenario *sc,
                        struct result *res) {
  struct run r = {.sc = sc};
  r.n = sc->rate ? sc->rate * sc->seconds : sc->updates;
  r.chat_of = xcalloc((size_t)r.n, sizeof *r.chat_of);
  r.pushed_us = xcalloc((size_t)r.n, sizeof *r.pushed_us);
  r.answers = xcalloc((size_t)r.n, 1);
  r.last_per_chat = xcalloc((size_t)sc->chats, sizeof *r.last_per_chat);
  for (long c = 0; c < sc->chats; c++) r.last_per_chat[c] = -1;
  if (sc->rate) r.latencies_ms = xcalloc((size_t)r.n, sizeof *r.latencies_ms);
  /* The same stream of chats for every peer and run. */
  rng_state = 0x2545f4914f6cdd1dULL;
  for (long i = 0; i < r.n; i++) r.chat_of[i] = (int32_t)(rnd() % (uint64_t)sc->chats);

  r.api = new_api();
  if (sc->reply_delay_ms) fakeapi_set_method_delay(r.api, "sendMessage", sc->reply_delay_ms);
  struct front fr = {0};
  struct bot_env env = {.api_root = fakeapi_url(r.api), .mode = sc->mode,
                        .concurrency = sc->concurrency};
  if (sc->h2) {
    if (!front_start(&fr, fakeapi_port(r.api), res)) goto out;
    env.api_root = fr.url;
    env.ca_file = cert_path;
  }
  r.bot = start_bot(peer, &env);
  if (!run_until(first_poll, &r, 60000) || proc_exited(r.bot)) {
    fail(res, "no getUpdates from the bot (exit %d): %.400s",
         proc_exited(r.bot) ? proc_status(r.bot) : -1, proc_stderr(r.bot));
    goto out;
  }
  uint64_t t0 = now_us();
  double cpu0 = proc_cpu_s(r.bot);
  res->base_rss_kib = proc_rss_kib(r.bot);
  struct event *pace = NULL;
  if (sc->rate) {
    pace = event_new(harness_base(), -1, EV_PERSIST, on_pace, &r);
    struct timeval ms = {0, 1000};
    evtimer_add(pace, &ms);
    on_pace(-1, 0, &r);
  } else {
    while (r.pushed < r.n) push_one(&r);
  }
  long budget_ms = sc->rate ? (sc->seconds + 60) * 1000 : 300000;
  bool done = run_until(run_done, &r, (int)budget_ms);
  if (pace) event_free(pace);
  double cpu1 = proc_cpu_s(r.bot);
  res->peak_rss_kib = proc_peak_rss_kib(r.bot);
  res->cpu_s = cpu1 - cpu0;
  uint64_t t_end = sc->reply_delay_ms ? r.last_answer_us : r.last_reply_us;
  res->seconds = (double)(t_end - t0) / 1e6;
  res->max_in_flight = fakeapi_max_unanswered(r.api);
  if (r.latencies_ms) {
    res->p50_ms = percentile(r.latencies_ms, r.nlat, 0.50);
    res->p99_ms = percentile(r.latencies_ms, r.nlat, 0.99);
  }
  /* A reply sent twice may come a moment after the last first one. */
  run_for(300);
  scan_calls(&r);
  if (!done || r.answered < r.n)
    fail(res, "%ld of %ld updates answered%s: %.400s", r.answered, r.n,
         proc_exited(r.bot) ? " (the bot exited)" : " in time",
         proc_stderr(r.bot));
  if (r.duplicates) fail(res, "%ld updates answered more than once", r.duplicates);
  if (r.foreign) fail(res, "%ld replies to no update of the run", r.foreign);
  if (sc->check_order && r.order_violations)
    fail(res, "%ld replies out of order within their chat", r.order_violations);
  for (long i = 0; i < r.n; i++) {
    int times = fakeapi_times_delivered(r.api, 1000 + i);
    if (times != 1) {
      fail(res, "update %ld was delivered by getUpdates %d times", i, times);
      break;
    }
  }
  if (!stop_bot(r.bot) && peer == TGHOST)
    fail(res, "tghost did not stop cleanly (status %d): %.400s",
         proc_status(r.bot), proc_stderr(r.bot));
out:
  if (r.bot) proc_free(r.bot);
  if (fr.proc) {
    front_stop(&fr);
    res->have_front = front_read_stats(&fr, &res->front);
    const struct front_stats *st = &res->front;
    /* tghost speaks h2 to an h2 server, keeps the long poll on a
     * connection of its own, and multiplexes the calls. */
    if (peer == TGHOST && res->ok) {
      if (!res->have_front || st->h2 == 0)
        fail(res, "the h2 front logged no HTTP/2 request");
      else if (st->other)
        fail(res, "%ld requests reached the h2 front over HTTP/1.1", st->other);
      else if (st->shared_conns)
        fail(res, "%d connections carried both the long poll and calls",
             st->shared_conns);
      else if (st->call_conns * 10 > st->calls)
        fail(res, "%d connections for %ld calls: not multiplexed",
             st->call_conns, st->calls);
    }
  }
  fakeapi_free(r.api);
  free(r.chat_of);
  free(r.pushed_us);
  free(r.answers);
  free(r.last_per_chat);
  free(r.latencies_ms);
}

/* idle: the bot's RSS a few seconds after it started polling. */
static void run_idle(enum peer_id peer, const struct scenario *sc,
                     struct result *res) {
  struct run r = {.sc = sc};
  r.api = new_api();
  struct bot_env env = {.api_root = fakeapi_url(r.api), .mode = "echo",
                        .concurrency = 500};
  r.bot = start_bot(peer, &env);
  if (!run_until(first_poll, &r, 60000) || proc_exited(r.bot)) {
    fail(res, "no getUpdates from the bot: %.400s", proc_stderr(r.bot));
  } else {
    run_for((int)(sc->seconds * 1000));
    res->idle_rss_kib = proc_rss_kib(r.bot);
    res->idle_anon_kib = status_kib(r.bot, "RssAnon");
    res->peak_rss_kib = proc_peak_rss_kib(r.bot);
    if (!stop_bot(r.bot) && peer == TGHOST)
      fail(res, "tghost did not stop cleanly (status %d)", proc_status(r.bot));
  }
  proc_free(r.bot);
  fakeapi_free(r.api);
}

/* ceiling: the fake server alone under wrk, answering sendMessage. */
static void run_ceiling(const struct scenario *sc, struct result *res) {
  struct fakeapi *api = new_api();
  char url[512], duration[32];
  snprintf(url, sizeof url, "%s/bot%s/sendMessage?chat_id=%d&text=hello",
           fakeapi_url(api), TEST_TOKEN, CHAT_BASE);
  snprintf(duration, sizeof duration, "-d%lds", sc->seconds);
  const char *argv[] = {"wrk", "-t1", "-c64", duration, url, NULL};
  struct proc *p = proc_start_command(argv, NULL);
  if (!proc_wait(p, (int)(sc->seconds + 30) * 1000) || proc_status(p) != 0) {
    fail(res, "wrk failed (status %d): %.300s", proc_status(p), proc_stderr(p));
  } else {
    const char *line = strstr(proc_stdout(p), "Requests/sec:");
    if (!line || sscanf(line, "Requests/sec: %lf", &res->server_rps) != 1)
      fail(res, "no Requests/sec in wrk's output: %.300s", proc_stdout(p));
    const char *errors = strstr(proc_stdout(p), "Non-2xx");
    if (errors) fail(res, "wrk saw errors: %.200s", errors);
  }
  proc_free(p);
  fakeapi_free(api);
}

/* --- scenarios and the table ------------------------------------------- */

static struct scenario scenarios[] = {
    {"echo", "echo: 50,000 updates over 1,000 chats, one sendMessage each, "
             "concurrency 500",
     "echo", 50000, 1000, 0, 500, false, 0, 0, false},
    {"seq", "seq: the same with sequentialize by chat (a per-chat lock in Go)",
     "seq", 50000, 1000, 0, 500, false, 0, 0, true},
    {"slowio", "slow I/O: 20,000 updates, each reply answered after 2 s, "
               "concurrency 10,000 (HTTP/1.1)",
     "echo", 20000, 1000, 2000, 10000, false, 0, 0, false},
    {"slowio-h2", "slow I/O over HTTP/2: the same through nghttpx (TLS, h2, "
                  "100 streams per connection) before the fake server",
     "echo", 20000, 1000, 2000, 10000, true, 0, 0, false},
    {"latency", "latency: 1,000 updates/s offered for 20 s (echo); from the "
                "update available to its reply received",
     "echo", 0, 1000, 0, 500, false, 1000, 20, false},
    {"idle", "idle: RSS 3 s after the first getUpdates", "echo", 0, 1, 0, 500,
     false, 0, 3, false},
    {"ceiling", "the fake server alone: wrk -t1 -c64, sendMessage, 5 s",
     "echo", 0, 1, 0, 0, false, 0, 5, false},
};
enum { NSCENARIOS = sizeof scenarios / sizeof scenarios[0] };
static bool scenario_on[NSCENARIOS];

enum better { HIGHER, LOWER };

struct metric {
  const char *label;
  enum better better;
  const char *format;
  double values[NPEERS][MAX_RUNS];
  int n[NPEERS];
};

static int cmp_runs(const void *a, const void *b) { return cmp_double(a, b); }

static double median_of(struct metric *m, int p, double *lo, double *hi) {
  double v[MAX_RUNS];
  int n = m->n[p];
  memcpy(v, m->values[p], (size_t)n * sizeof *v);
  qsort(v, (size_t)n, sizeof *v, cmp_runs);
  *lo = v[0];
  *hi = v[n - 1];
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_value(const char *fmt, double v) {
  char text[64];
  snprintf(text, sizeof text, fmt, v);
  printf("%s", text);
}

static void print_table(const struct scenario *sc, struct metric *ms, int nm,
                        int runs) {
  if (strcmp(sc->name, "ceiling") == 0) {   /* no bot: one figure */
    double lo, hi;
    if (ms[0].n[TGHOST] == 0) return;
    double med = median_of(&ms[0], TGHOST, &lo, &hi);
    printf("\n### %s\n\n| | fake server |\n|---|---|\n"
           "| %s | %.0f (%.0f–%.0f) |\n\n%d runs, median with (min–max).\n",
           sc->title, ms[0].label, med, lo, hi, runs);
    fflush(stdout);
    return;
  }
  printf("\n### %s\n\n| | ", sc->title);
  for (int p = 0; p < NPEERS; p++)
    if (peer_on[p]) printf("%s | ", peer_titles[p]);
  printf("tghost / best peer | tghost / telebot, pooled |\n|---|");
  for (int p = 0; p < NPEERS; p++)
    if (peer_on[p]) printf("---|");
  printf("---|---|\n");
  for (int k = 0; k < nm; k++) {
    struct metric *m = &ms[k];
    printf("| %s | ", m->label);
    double med[NPEERS] = {0};
    bool have[NPEERS] = {false};
    for (int p = 0; p < NPEERS; p++) {
      if (!peer_on[p]) continue;
      if (m->n[p] == 0) {
        printf("failed | ");
        continue;
      }
      double lo, hi;
      med[p] = median_of(m, p, &lo, &hi);
      have[p] = true;
      print_value(m->format, med[p]);
      if (m->n[p] > 1) {
        printf(" (");
        print_value(m->format, lo);
        printf("–");
        print_value(m->format, hi);
        printf(")");
      }
      printf(" | ");
    }
    /* The peers as they come; telebot with a pool is a column of its own. */
    int best = -1;
    for (int p = 1; p < NPEERS; p++) {
      if (!have[p] || p == TELEBOT_POOL) continue;
      if (best < 0 || (m->better == HIGHER ? med[p] > med[best]
                                           : med[p] < med[best]))
        best = p;
    }
    if (have[TGHOST] && best > 0 && med[best] != 0)
      printf("%.2f× (vs %s) | ", med[TGHOST] / med[best], peer_names[best]);
    else
      printf("– | ");
    if (have[TGHOST] && have[TELEBOT_POOL] && med[TELEBOT_POOL] != 0)
      printf("%.2f× |\n", med[TGHOST] / med[TELEBOT_POOL]);
    else
      printf("– |\n");
  }
  printf("\n%d run%s per peer, medians with (min–max).\n", runs,
         runs == 1 ? "" : "s");
  fflush(stdout);
}

static void add(struct metric *m, int p, double v) {
  if (m->n[p] < MAX_RUNS && isfinite(v)) m->values[p][m->n[p]++] = v;
}

static int failures;

static void run_scenario(struct scenario *sc, int runs, double scale) {
  if (scale != 1.0 && sc->updates) sc->updates = (long)(sc->updates * scale) + 1;
  if (scale != 1.0 && sc->rate) sc->seconds = (long)(sc->seconds * scale) + 1;
  bool ceiling = strcmp(sc->name, "ceiling") == 0;
  bool idle = strcmp(sc->name, "idle") == 0;
  struct metric ms[8];
  memset(ms, 0, sizeof ms);
  int nm = 0;
  struct metric *rate = NULL, *cpu = NULL, *rss = NULL, *wall = NULL,
                *inflight = NULL, *per = NULL, *p50 = NULL, *p99 = NULL,
                *idle_rss = NULL, *idle_anon = NULL, *rps = NULL;
#define METRIC(var, label_, better_, fmt_) \
  (var = &ms[nm++], var->label = label_, var->better = better_, var->format = fmt_)
  if (ceiling) {
    METRIC(rps, "requests/s", HIGHER, "%.0f");
  } else if (idle) {
    METRIC(idle_rss, "RSS, MB", LOWER, "%.1f");
    METRIC(idle_anon, "of it private (RssAnon), MB", LOWER, "%.1f");
  } else if (sc->rate) {
    METRIC(p50, "p50 latency, ms", LOWER, "%.2f");
    METRIC(p99, "p99 latency, ms", LOWER, "%.2f");
    METRIC(cpu, "CPU per update, ms", LOWER, "%.3f");
    METRIC(rss, "peak RSS, MB", LOWER, "%.1f");
  } else if (sc->reply_delay_ms) {
    METRIC(wall, "wall time, s", LOWER, "%.2f");
    METRIC(inflight, "most in flight at once", HIGHER, "%.0f");
    METRIC(cpu, "CPU per update, ms", LOWER, "%.3f");
    METRIC(rss, "peak RSS, MB", LOWER, "%.1f");
    METRIC(per, "RSS per update in flight, KB", LOWER, "%.1f");
  } else {
    METRIC(rate, "updates/s", HIGHER, "%.0f");
    METRIC(cpu, "CPU per update, ms", LOWER, "%.3f");
    METRIC(rss, "peak RSS, MB", LOWER, "%.1f");
  }
#undef METRIC
  fprintf(stderr, "== %s\n", sc->name);
  for (int round = 0; round < runs; round++) {
    for (int k = 0; k < NPEERS; k++) {
      int p = (k + round) % NPEERS;   /* rotate who goes first */
      if (ceiling && p != TGHOST) continue;   /* no bot in this one */
      if (!peer_on[p]) continue;
      struct result res = {.ok = true};
      uint64_t started = now_us();
      if (ceiling) run_ceiling(sc, &res);
      else if (idle) run_idle((enum peer_id)p, sc, &res);
      else run_updates((enum peer_id)p, sc, &res);
      const char *who = ceiling ? "fakeapi" : peer_names[p];
      if (!res.ok) {
        failures++;
        fprintf(stderr, "   %-8s run %d FAILED: %s\n", who, round + 1, res.why);
        continue;
      }
      long n = sc->rate ? sc->rate * sc->seconds : sc->updates;
      fprintf(stderr, "   %-8s run %d ok (%.1f s):", who, round + 1,
              (double)(now_us() - started) / 1e6);
      if (rps) {
        add(rps, p, res.server_rps);
        fprintf(stderr, " %.0f requests/s", res.server_rps);
      }
      if (idle_rss) {
        add(idle_rss, p, res.idle_rss_kib / 1024.0);
        add(idle_anon, p, res.idle_anon_kib / 1024.0);
        fprintf(stderr, " RSS %.1f MB, %.1f MB private",
                res.idle_rss_kib / 1024.0, res.idle_anon_kib / 1024.0);
      }
      if (rate) {
        add(rate, p, (double)n / res.seconds);
        fprintf(stderr, " %.0f updates/s", (double)n / res.seconds);
      }
      if (wall) {
        add(wall, p, res.seconds);
        fprintf(stderr, " %.2f s", res.seconds);
      }
      if (inflight) {
        add(inflight, p, (double)res.max_in_flight);
        fprintf(stderr, ", %zu in flight", res.max_in_flight);
      }
      if (p50) {
        add(p50, p, res.p50_ms);
        add(p99, p, res.p99_ms);
        fprintf(stderr, " p50 %.2f ms, p99 %.2f ms", res.p50_ms, res.p99_ms);
      }
      if (cpu) {
        add(cpu, p, res.cpu_s * 1000.0 / (double)n);
        fprintf(stderr, ", CPU %.2f s", res.cpu_s);
      }
      if (rss) {
        add(rss, p, res.peak_rss_kib / 1024.0);
        fprintf(stderr, ", peak RSS %.1f MB (%.1f at start)",
                res.peak_rss_kib / 1024.0, res.base_rss_kib / 1024.0);
      }
      if (res.have_front)
        fprintf(stderr, ", via the front: %ld h2 + %ld HTTP/1.1 requests, "
                "%d connection(s) for calls, %d for getMe and getUpdates",
                res.front.h2, res.front.other, res.front.call_conns,
                res.front.poll_conns);
      if (per && res.max_in_flight)
        add(per, p, (double)(res.peak_rss_kib - res.base_rss_kib) * 1.024 /
                        (double)res.max_in_flight);
      fprintf(stderr, "\n");
    }
  }
  print_table(sc, ms, nm, runs);
}

/* --- smoke: a ctest test, tghost only ---------------------------------- */

static int smoke(void) {
  static const struct scenario runs_[] = {
      {"echo", "echo", "echo", 300, 20, 0, 500, false, 0, 0, false},
      {"seq", "seq", "seq", 300, 7, 0, 500, false, 0, 0, true},
      {"slowio", "slow", "seq", 300, 30, 200, 1000, false, 0, 0, true},
      {"latency", "latency", "echo", 0, 10, 0, 500, false, 200, 1, false},
      /* The long poll and the calls over HTTP/2 (TLS, through nghttpx). */
      {"slowio-h2", "slow over h2", "seq", 300, 30, 200, 1000, true, 0, 0,
       true},
  };
  int failed = 0;
  for (size_t i = 0; i < sizeof runs_ / sizeof runs_[0]; i++) {
    if (runs_[i].h2 && (system("command -v nghttpx >/dev/null 2>&1") != 0 ||
                        system("command -v openssl >/dev/null 2>&1") != 0)) {
      fprintf(stderr, "skipped %s: needs nghttpx (Debian's nghttp2-proxy) "
                      "and openssl\n", runs_[i].name);
      continue;
    }
    struct result res = {.ok = true};
    run_updates(TGHOST, &runs_[i], &res);
    fprintf(stderr, "%s %s%s%s\n", res.ok ? "ok" : "FAILED", runs_[i].name,
            res.ok ? "" : ": ", res.ok ? "" : res.why);
    if (!res.ok) failed++;
  }
  return failed ? 1 : 0;
}

/* --- main --------------------------------------------------------------- */

static bool parse_list(const char *arg, const char *const *names, int n,
                       bool *on) {
  for (int i = 0; i < n; i++) on[i] = false;
  char *copy = xstrdup(arg), *save = NULL;
  bool ok = true;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int i = 0;
    while (i < n && strcmp(names[i], t) != 0) i++;
    if (i == n) {
      fprintf(stderr, "peerbench: unknown name '%s'\n", t);
      ok = false;
    } else {
      on[i] = true;
    }
  }
  free(copy);
  return ok;
}

static void usage(void) {
  fprintf(stderr,
          "usage: peerbench [--runs N] [--scenarios echo,seq,slowio,slowio-h2,"
          "latency,idle,ceiling]\n"
          "                 [--peers tghost,grammy,telebot] [--scale F] "
          "[--h2-streams N]\n"
          "       peerbench --smoke\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"runs", required_argument, NULL, 'r'},
      {"scenarios", required_argument, NULL, 's'},
      {"peers", required_argument, NULL, 'p'},
      {"scale", required_argument, NULL, 'x'},
      {"h2-streams", required_argument, NULL, 'h'},
      {"smoke", no_argument, NULL, 'k'},
      {NULL, 0, NULL, 0}};
  int runs = 3, c;
  double scale = 1.0;
  bool want_smoke = false;
  const char *scenario_names[NSCENARIOS];
  for (int i = 0; i < NSCENARIOS; i++) {
    scenario_names[i] = scenarios[i].name;
    scenario_on[i] = true;
  }
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'r': runs = atoi(optarg); break;
      case 's':
        if (!parse_list(optarg, scenario_names, NSCENARIOS, scenario_on)) return 2;
        break;
      case 'p':
        if (!parse_list(optarg, peer_names, NPEERS, peer_on)) return 2;
        break;
      case 'x': scale = atof(optarg); break;
      case 'h': h2_streams = atol(optarg); break;
      case 'k': want_smoke = true; break;
      default: usage(); return 2;
    }
  }
  if (runs < 1 || runs > MAX_RUNS || scale <= 0 || optind != argc) {
    usage();
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  atexit(harness_cleanup);
  if (want_smoke) return smoke();

  for (int p = 0; p < NPEERS; p++) {
    char why[256];
    if (peer_on[p] && !peer_available((enum peer_id)p, why, sizeof why)) {
      fprintf(stderr, "peerbench: leaving out %s: %s (bench/setup.sh sets "
                      "the peers up)\n", peer_titles[p], why);
      peer_on[p] = false;
    }
  }
  for (int i = 0; i < NSCENARIOS; i++) {
    if (!scenario_on[i]) continue;
    if (scenarios[i].h2 && system("command -v nghttpx >/dev/null 2>&1") != 0) {
      fprintf(stderr, "peerbench: leaving out %s: nghttpx is not installed\n",
              scenarios[i].name);
      continue;
    }
    if (strcmp(scenarios[i].name, "ceiling") == 0 &&
        system("command -v wrk >/dev/null 2>&1") != 0) {
      fprintf(stderr, "peerbench: leaving out ceiling: wrk is not installed\n");
      continue;
    }
    run_scenario(&scenarios[i], runs, scale);
  }
  if (failures) fprintf(stderr, "peerbench: %d run(s) FAILED\n", failures);
  return failures ? 1 : 0;
}
