/* Streamed answers side by side (bench/README.md, "Streamed answers"):
 * a fake model that streams each answer's tokens by server-sent events
 * over a given time, a fake Bot API, and the same bot in tghost
 * (peers/tghost_stream.lua, ctx:replyStream) and in grammY + grammY runner
 * (peers/grammy_stream.js, fetch + ctx.replyWithDraft). Many chats ask at
 * once, each once; every answer is shown with drafts while it grows and
 * then sent. The fake Bot API runs in this process; the fake model
 * (tests/support/fakemodel_main.c --bench) in a process of its own, so
 * that each holds one connection per chat, within common descriptor
 * limits; it records when each token left, on the same monotonic clock.
 *
 *   build/bench/streambench [--chats N] [--tokens N] [--seconds S]
 *                           [--interval S] [--peers tghost,grammy]
 *                           [--runs N]
 *   build/bench/streambench --smoke     tghost alone, 200 chats,
 *                                       correctness only (a ctest test)
 *
 * Measured on the bot's process: CPU = user+sys (/proc/PID/stat) from the
 * moment the questions are queued to the last final message; peak RSS =
 * VmHWM, and RSS per concurrent stream = (peak − RSS before the questions)
 * / the most answers the model was streaming at once; Bot API calls per
 * answer; the delay from a token leaving the model (handed to its socket)
 * to the first draft or message that shows it, over every token. Every run
 * is checked: each chat gets exactly one final message with the whole
 * answer, and every draft is a prefix of it. */
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#if !defined(TGHOST_SOURCE_DIR) || !defined(FAKEMODEL_BINARY)
#error "TGHOST_SOURCE_DIR and FAKEMODEL_BINARY must be defined"
#endif
#define PEERS_DIR TGHOST_SOURCE_DIR "/bench/peers"

enum { CHAT_BASE = 500000, MAX_RUNS = 9, TOKEN_WIDTH = 6 };
enum peer_id { TGHOST, GRAMMY, NPEERS };
static const char *const peer_names[NPEERS] = {"tghost", "grammy"};
static const char *const peer_titles[NPEERS] = {"tghost", "grammY runner"};
static bool peer_on[NPEERS] = {true, true};

struct params {
  long chats;
  int tokens;
  double seconds;
  double interval;
};

struct result {
  bool ok;
  char why[256];
  double wall_s, cpu_s;
  double idle_mb, peak_mb, per_stream_kb;
  double cpu_per_token_us, cpu_per_answer_ms;
  double calls_per_answer, drafts_per_answer;
  double p50_ms, p99_ms, max_ms;
  long max_streams;
};

/* --- the bot's process -------------------------------------------------- */

static double proc_cpu_s(const struct proc *p) {
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", proc_pid(p));
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  const char *rest = strrchr(text, ')');
  unsigned long utime, stime;
  if (!rest || sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                                "%lu %lu", &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static struct proc *start_bot(enum peer_id peer, const char *api_root,
                              const char *model_url, const struct params *pr) {
  static char token[128], root[256], model[256], interval[64], conc[64];
  snprintf(token, sizeof token, "BOT_TOKEN=%s", TEST_TOKEN);
  snprintf(root, sizeof root, "API_ROOT=%s", api_root);
  snprintf(model, sizeof model, "MODEL_URL=%s", model_url);
  snprintf(interval, sizeof interval, "BENCH_INTERVAL=%g", pr->interval);
  snprintf(conc, sizeof conc, "BENCH_CONCURRENCY=%ld", pr->chats);
  const char *env[] = {token, root, model, interval, conc, NULL};
  if (peer == TGHOST) {
    const char *bin = getenv("STREAMBENCH_TGHOST");
    const char *argv[] = {bin && *bin ? bin : harness_tghost_binary(),
                          "--api-root", api_root,
                          PEERS_DIR "/tghost_stream.lua", NULL};
    return proc_start_command(argv, env);
  }
  const char *argv[] = {"node", PEERS_DIR "/grammy_stream.js", NULL};
  return proc_start_command(argv, env);
}

/* --- one run ------------------------------------------------------------ */

struct chat_state {
  int shown;              /* tokens shown so far */
  bool final;
  uint64_t *token_us;     /* from the model's record: when each token left */
  int ntokens;
};

struct run {
  const struct params *pr;
  struct fakeapi *api;
  struct proc *model;
  char model_url[128];
  char record[512];
  struct proc *bot;
  struct chat_state *chats;
  char *answer;           /* the whole answer, as the model sends it */
  size_t scanned;
  long finals, drafts, calls, bad_drafts, bad_finals, duplicates, foreign;
  long max_open;
  double *delays_ms;
  size_t ndelays;
  uint64_t last_final_us;
  uint64_t progress_start;
};

/* The model's record: "max_open N", then "qI T1 T2 ..." per answer. */
static bool read_record(struct run *r) {
  FILE *f = fopen(r->record, "r");
  if (!f) return false;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    if (sscanf(line, "max_open %ld", &r->max_open) == 1) continue;
    if (line[0] != 'q') continue;
    char *p = line + 1;
    long i = strtol(p, &p, 10);
    if (i < 0 || i >= r->pr->chats) continue;
    struct chat_state *ch = &r->chats[i];
    ch->token_us = xcalloc((size_t)r->pr->tokens + 1, sizeof *ch->token_us);
    while (ch->ntokens <= r->pr->tokens) {
      char *end;
      unsigned long long t = strtoull(p, &end, 10);
      if (end == p) break;
      ch->token_us[ch->ntokens++] = t;
      p = end;
    }
  }
  free(line);
  fclose(f);
  return true;
}

/* The tokens text shows, or -1 if it is not a prefix of the answer. */
static int tokens_in(const struct run *r, const char *text) {
  size_t len = strlen(text);
  if (len == 0 || strncmp(r->answer, text, len) != 0) return -1;
  if ((len + 1) % TOKEN_WIDTH != 0) return -1;   /* whole tokens, trimmed */
  return (int)((len + 1) / TOKEN_WIDTH);
}

/* Checks the calls that arrived since the last look; with delays, also
 * when each token was first shown (once the model's record is in). */
static void scan(struct run *r, bool delays) {
  size_t total = fakeapi_call_count(r->api);
  for (; r->scanned < total; r->scanned++) {
    const struct fake_call *c = fakeapi_call(r->api, r->scanned);
    bool draft = strcmp(c->method, "sendMessageDraft") == 0;
    bool final = strcmp(c->method, "sendMessage") == 0;
    if (!draft && !final && strcmp(c->method, "editMessageText") != 0) continue;
    if (!delays) r->calls++;
    long i = (long)(c->chat_id - CHAT_BASE);
    if (i < 0 || i >= r->pr->chats) {
      if (!delays) r->foreign++;
      continue;
    }
    struct chat_state *ch = &r->chats[i];
    char *text = fake_call_string(c, "text");
    int k = text ? tokens_in(r, text) : -1;
    free(text);
    if (delays) {
      for (int j = ch->shown; j < k && j < ch->ntokens; j++)
        r->delays_ms[r->ndelays++] =
            ((double)c->received_us - (double)ch->token_us[j]) / 1000.0;
      if (k > ch->shown) ch->shown = k;
      continue;
    }
    if (draft) r->drafts++;
    if (k < 0) {
      if (final) r->bad_finals++;
      else r->bad_drafts++;
      continue;
    }
    if (final) {
      if (ch->final) r->duplicates++;
      ch->final = true;
      r->finals++;
      if (k != r->pr->tokens) r->bad_finals++;
      if (c->received_us > r->last_final_us) r->last_final_us = c->received_us;
    }
  }
}

/* A line every 5 s on stderr: how far the run is. */
static void on_progress(evutil_socket_t fd, short what, void *arg) {
  struct run *r = arg;
  if (!r->progress_start) r->progress_start = harness_now_ms();
  uint64_t start = r->progress_start;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", proc_pid(r->bot));
  int fds = 0;
  DIR *d = opendir(path);
  while (d && readdir(d)) fds++;
  if (d) closedir(d);
  fprintf(stderr, "  %5.1f s: updates confirmed %lld, final answers %ld, "
          "drafts %ld, calls %ld, calls in flight %zu (most %zu), the bot's "
          "descriptors %d\n",
          (harness_now_ms() - start) / 1000.0,
          (long long)fakeapi_confirmed_offset(r->api), r->finals, r->drafts,
          r->calls, fakeapi_unanswered(r->api), fakeapi_max_unanswered(r->api),
          fds - 2);
}

static bool all_final(void *ud) {
  struct run *r = ud;
  scan(r, false);
  return r->finals >= r->pr->chats || proc_exited(r->bot);
}

/* The model prints "fake model on http://127.0.0.1:PORT/v1/..." first. */
static bool model_ready(void *ud) {
  struct run *r = ud;
  const char *at = strstr(proc_stdout(r->model), "fake model on ");
  if (!at) return proc_exited(r->model);
  at += 14;
  const char *end = strstr(at, "/v1/");
  if (!end || (size_t)(end - at) >= sizeof r->model_url) return false;
  memcpy(r->model_url, at, (size_t)(end - at));
  r->model_url[end - at] = '\0';
  return true;
}

static bool first_poll(void *ud) {
  struct run *r = ud;
  return fakeapi_poll_count(r->api) > 0 || proc_exited(r->bot);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double q) {
  if (!n) return 0;
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return v[i];
}

static void fail(struct result *res, const char *why) {
  res->ok = false;
  snprintf(res->why, sizeof res->why, "%s", why);
}

static void run_one(enum peer_id peer, const struct params *pr,
                    struct result *res) {
  memset(res, 0, sizeof *res);
  res->ok = true;
  struct run r = {.pr = pr};
  r.chats = xcalloc((size_t)pr->chats, sizeof *r.chats);
  r.delays_ms = xcalloc((size_t)pr->chats * (size_t)pr->tokens + 1,
                        sizeof *r.delays_ms);
  snprintf(r.record, sizeof r.record, "%s/model-%d.txt", harness_tmpdir(),
           (int)peer);
  struct buf answer = BUF_INIT;
  for (int i = 0; i < pr->tokens; i++) buf_printf(&answer, "w%04d ", i + 1);
  r.answer = buf_steal(&answer, NULL);

  struct fakeapi_config cfg = {.token = TEST_TOKEN, .username = "bench_bot"};
  r.api = fakeapi_new(harness_base(), &cfg);
  char ntok[16], secs[32];
  snprintf(ntok, sizeof ntok, "%d", pr->tokens);
  snprintf(secs, sizeof secs, "%g", pr->seconds);
  const char *margv[] = {FAKEMODEL_BINARY, "--port", "0", "--tokens", ntok,
                         "--seconds", secs, "--bench", r.record, NULL};
  static const char *const no_env[] = {NULL};
  r.model = proc_start_command(margv, no_env);
  if (!run_until(model_ready, &r, 10000)) {
    fail(res, "the fake model did not start");
    goto out;
  }
  r.bot = start_bot(peer, fakeapi_url(r.api), r.model_url, pr);
  if (!run_until(first_poll, &r, 30000) || proc_exited(r.bot)) {
    fail(res, "the bot never polled");
    goto out;
  }
  run_for(1000);
  res->idle_mb = proc_rss_kib(r.bot) / 1024.0;
  double cpu0 = proc_cpu_s(r.bot);
  uint64_t t0 = harness_now_ms();
  for (long i = 0; i < pr->chats; i++) {
    char text[32];
    snprintf(text, sizeof text, "q%ld", i);
    fakeapi_push_text(r.api, CHAT_BASE + i, CHAT_BASE + i, text);
  }
  int limit_ms = (int)(pr->seconds * 1000 * 4) + 120000;
  struct event *progress = event_new(harness_base(), -1, EV_PERSIST,
                                     on_progress, &r);
  struct timeval every = {5, 0};
  if (getenv("STREAMBENCH_PROGRESS")) event_add(progress, &every);
  bool done = run_until(all_final, &r, limit_ms);
  event_free(progress);
  if (!done) {
    char why[128];
    snprintf(why, sizeof why, "only %ld of %ld answers arrived", r.finals,
             pr->chats);
    fail(res, why);
  }
  if (proc_exited(r.bot)) fail(res, "the bot exited");
  double cpu1 = proc_cpu_s(r.bot);
  long peak = proc_peak_rss_kib(r.bot);
  run_for(300);
  scan(&r, false);
  /* The model's record: when each token left. */
  proc_kill(r.model, SIGTERM);
  if (!proc_wait(r.model, 10000) || !read_record(&r))
    fail(res, "no record from the fake model");
  r.scanned = 0;
  scan(&r, true);
  res->wall_s = (double)(r.last_final_us / 1000 - t0) / 1000.0;
  if (r.last_final_us / 1000 < t0) res->wall_s = 0;
  res->cpu_s = cpu1 - cpu0;
  res->peak_mb = peak / 1024.0;
  res->max_streams = r.max_open;
  res->per_stream_kb = res->max_streams
      ? (peak - res->idle_mb * 1024.0) / (double)res->max_streams : 0;
  double tokens = (double)pr->chats * pr->tokens;
  res->cpu_per_token_us = res->cpu_s / tokens * 1e6;
  res->cpu_per_answer_ms = res->cpu_s / (double)pr->chats * 1e3;
  res->calls_per_answer = (double)r.calls / (double)pr->chats;
  res->drafts_per_answer = (double)r.drafts / (double)pr->chats;
  qsort(r.delays_ms, r.ndelays, sizeof *r.delays_ms, cmp_double);
  res->p50_ms = percentile(r.delays_ms, r.ndelays, 0.50);
  res->p99_ms = percentile(r.delays_ms, r.ndelays, 0.99);
  res->max_ms = r.ndelays ? r.delays_ms[r.ndelays - 1] : 0;
  if (res->ok && (r.bad_drafts || r.bad_finals || r.duplicates || r.foreign)) {
    char why[160];
    snprintf(why, sizeof why, "%ld bad drafts, %ld bad finals, %ld duplicate "
             "finals, %ld calls to other chats", r.bad_drafts, r.bad_finals,
             r.duplicates, r.foreign);
    fail(res, why);
  }
  if (res->ok && r.ndelays != (size_t)tokens) {
    char why[128];
    snprintf(why, sizeof why, "%zu of %.0f tokens were shown", r.ndelays,
             tokens);
    fail(res, why);
  }
out:
  if (r.bot && !proc_exited(r.bot)) {
    proc_kill(r.bot, SIGTERM);
    if (!proc_wait(r.bot, 30000)) proc_kill(r.bot, SIGKILL);
  }
  if (r.bot && peer == TGHOST && proc_exited(r.bot) && proc_status(r.bot) != 0 &&
      res->ok)
    fail(res, "tghost did not stop cleanly");
  if (r.bot && !res->ok) {
    const char *err = proc_stderr(r.bot);
    size_t len = strlen(err);
    fprintf(stderr, "--- the bot's stderr (end) ---\n%s\n",
            err + (len > 3000 ? len - 3000 : 0));
  }
  if (r.bot) proc_free(r.bot);
  if (r.model) proc_free(r.model);
  fakeapi_free(r.api);
  for (long i = 0; i < pr->chats; i++) free(r.chats[i].token_us);
  free(r.chats);
  free(r.delays_ms);
  free(r.answer);
}

/* --- the table ---------------------------------------------------------- */

struct metric {
  const char *label;
  const char *fmt;
  size_t offset;           /* into struct result */
  double values[NPEERS][MAX_RUNS];
  int n[NPEERS];
};

static double median_of(struct metric *m, int p, double *lo, double *hi) {
  int n = m->n[p];
  double v[MAX_RUNS];
  memcpy(v, m->values[p], (size_t)n * sizeof *v);
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  *lo = v[0];
  *hi = v[n - 1];
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_table(struct metric *ms, int nm, int runs) {
  printf("| | %s | %s | tghost / grammY runner |\n|---|---|---|---|\n",
         peer_titles[TGHOST], peer_titles[GRAMMY]);
  for (int i = 0; i < nm; i++) {
    struct metric *m = &ms[i];
    printf("| %s |", m->label);
    double med[NPEERS] = {0};
    for (int p = 0; p < NPEERS; p++) {
      if (!m->n[p]) {
        printf(" – |");
        continue;
      }
      double lo, hi;
      med[p] = median_of(m, p, &lo, &hi);
      printf(" ");
      printf(m->fmt, med[p]);
      if (runs > 1) {
        printf(" (");
        printf(m->fmt, lo);
        printf("–");
        printf(m->fmt, hi);
        printf(")");
      }
      printf(" |");
    }
    double ratio = med[GRAMMY] > 0 ? med[TGHOST] / med[GRAMMY] : 0;
    if (m->n[TGHOST] && m->n[GRAMMY] && med[GRAMMY] > 0)
      printf(ratio < 0.1 ? " %.3f× |\n" : " %.2f× |\n", ratio);
    else
      printf(" |\n");
  }
  if (runs > 1) printf("\n%d runs per peer, medians with (min–max).\n", runs);
}

#define FIELD(f) offsetof(struct result, f)

static int smoke(void) {
  struct params pr = {200, 10, 1.0, 0.2};
  struct result res;
  run_one(TGHOST, &pr, &res);
  fprintf(stderr, "streambench smoke: %s; %.2f s, %.1f calls and %.1f drafts "
          "per answer, p99 token-to-draft %.0f ms, %.1f KB per stream\n",
          res.ok ? "ok" : res.why, res.wall_s, res.calls_per_answer,
          res.drafts_per_answer, res.p99_ms, res.per_stream_kb);
  return res.ok ? 0 : 1;
}

static void usage(void) {
  fprintf(stderr, "usage: streambench [--chats N] [--tokens N] [--seconds S] "
                  "[--interval S] [--peers tghost,grammy] [--runs N] | "
                  "--smoke\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"chats", required_argument, NULL, 'c'},
      {"tokens", required_argument, NULL, 't'},
      {"seconds", required_argument, NULL, 's'},
      {"interval", required_argument, NULL, 'i'},
      {"peers", required_argument, NULL, 'p'},
      {"runs", required_argument, NULL, 'r'},
      {"smoke", no_argument, NULL, 'k'},
      {NULL, 0, NULL, 0}};
  struct params pr = {10000, 40, 20.0, 0.5};
  int runs = 1, c;
  bool want_smoke = false;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'c': pr.chats = atol(optarg); break;
      case 't': pr.tokens = atoi(optarg); break;
      case 's': pr.seconds = atof(optarg); break;
      case 'i': pr.interval = atof(optarg); break;
      case 'r': runs = atoi(optarg); break;
      case 'k': want_smoke = true; break;
      case 'p':
        peer_on[TGHOST] = strstr(optarg, "tghost") != NULL;
        peer_on[GRAMMY] = strstr(optarg, "grammy") != NULL;
        break;
      default: usage(); return 2;
    }
  }
  if (runs < 1 || runs > MAX_RUNS || pr.chats < 1 || pr.tokens < 1 ||
      pr.tokens > 9999 || pr.seconds <= 0 || optind != argc) {
    usage();
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* A connection per chat to the model (in the bot and in the model's
   * process) and one per call in flight to the Bot API (in the bot and
   * here): the bot inherits the limit. Raised to the hard limit (or
   * beyond, where that is allowed). */
  struct rlimit rl = {1 << 18, 1 << 18};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  atexit(harness_cleanup);
  if (want_smoke) return smoke();
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
      rl.rlim_cur < (rlim_t)(pr.chats * 2 + 1000))
    fprintf(stderr, "streambench: only %lu file descriptors: connections may "
            "be refused (raise the limit, ulimit -n)\n",
            (unsigned long)rl.rlim_cur);
  if (peer_on[GRAMMY] &&
      (system("command -v node >/dev/null 2>&1") != 0 ||
       !file_exists(PEERS_DIR "/node_modules/@grammyjs/runner"))) {
    fprintf(stderr, "streambench: leaving out grammY runner: node or "
                    "bench/peers/node_modules is missing (bench/setup.sh)\n");
    peer_on[GRAMMY] = false;
  }
  struct metric ms[] = {
      {"answers streamed at once (most)", "%.0f", FIELD(max_streams), {{0}}, {0}},
      {"wall time, s", "%.1f", FIELD(wall_s), {{0}}, {0}},
      {"peak RSS, MB", "%.1f", FIELD(peak_mb), {{0}}, {0}},
      {"RSS per concurrent stream, KB", "%.1f", FIELD(per_stream_kb), {{0}}, {0}},
      {"CPU per token, µs", "%.1f", FIELD(cpu_per_token_us), {{0}}, {0}},
      {"CPU per answer, ms", "%.2f", FIELD(cpu_per_answer_ms), {{0}}, {0}},
      {"Bot API calls per answer", "%.1f", FIELD(calls_per_answer), {{0}}, {0}},
      {"token to draft, p50, ms", "%.0f", FIELD(p50_ms), {{0}}, {0}},
      {"token to draft, p99, ms", "%.0f", FIELD(p99_ms), {{0}}, {0}},
  };
  int nm = (int)(sizeof ms / sizeof ms[0]);
  int failures = 0;
  for (int round = 0; round < runs; round++) {
    for (int k = 0; k < NPEERS; k++) {
      int p = (k + round) % NPEERS;
      if (!peer_on[p]) continue;
      struct result res;
      run_one((enum peer_id)p, &pr, &res);
      fprintf(stderr, "%s run %d: %s; %ld streams at once, %.1f s, CPU %.2f s "
              "(%.1f µs/token), peak RSS %.1f MB (idle %.1f), %.1f KB/stream, "
              "%.1f calls/answer, token->draft p50 %.0f p99 %.0f max %.0f ms\n",
              peer_names[p], round + 1, res.ok ? "ok" : res.why,
              res.max_streams, res.wall_s, res.cpu_s, res.cpu_per_token_us,
              res.peak_mb, res.idle_mb, res.per_stream_kb,
              res.calls_per_answer, res.p50_ms, res.p99_ms, res.max_ms);
      if (!res.ok) {
        failures++;
        continue;
      }
      for (int i = 0; i < nm; i++) {
        double v = i == 0 ? (double)res.max_streams
                          : *(double *)((char *)&res + ms[i].offset);
        ms[i].values[p][ms[i].n[p]++] = v;
      }
    }
  }
  printf("#### %ld chats ask at once; each answer %d tokens over %.0f s by "
         "SSE; drafts at most every %.1f s\n\n", pr.chats, pr.tokens,
         pr.seconds, pr.interval);
  print_table(ms, nm, runs);
  if (failures) fprintf(stderr, "streambench: %d run(s) FAILED\n", failures);
  return failures ? 1 : 0;
}
