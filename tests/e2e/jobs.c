/* Scheduled jobs end to end (tghost.jobs, bot.job): runs detached from
 * the sink; 10,000 jobs due within one second, each run once, their
 * lateness measured; kill -9 and a restart over SQLite and over Redis
 * (each due job once, a run cut short runs again marked redelivered, the
 * misfire policies); two processes sharing Redis run 1,000 jobs once in
 * all; errors, the CPU budget, the memory limit and the timeout reach
 * bot.catch; jobs in
 * memory survive a reload; a stop releases a running job; declarations
 * keep their place across restarts; /metrics and --trace.
 *
 * Redis tests start their own redis-server on a free loopback port (and
 * are skipped, 77, where it is not installed). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "calls.h"
#include "harness.h"
#include "probe.h"

/* --- what the fake server was sent ---------------------------------------- */

/* The sendMessage texts starting with prefix, in order (a NULL-ended
 * array the caller frees with free_texts). */
static char **texts_starting(const char *prefix, size_t *n) {
  struct fakeapi *api = harness_api();
  char **out = NULL;
  *n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) {
      out = xrealloc(out, (*n + 2) * sizeof *out);
      out[(*n)++] = t;
      out[*n] = NULL;
    } else {
      free(t);
    }
  }
  return out;
}

static void free_texts(char **t, size_t n) {
  for (size_t i = 0; i < n; i++) free(t[i]);
  free(t);
}

static size_t count_starting(const char *prefix) {
  size_t n;
  char **t = texts_starting(prefix, &n);
  free_texts(t, n);
  return n;
}

struct prefix_wait {
  const char *prefix;
  size_t n;
};

static bool enough(void *ud) {
  struct prefix_wait *w = ud;
  return count_starting(w->prefix) >= w->n;
}

static void wait_texts(const char *prefix, size_t n, int timeout_ms) {
  struct prefix_wait w = {prefix, n};
  CHECK(run_until(enough, &w, timeout_ms),
        "%zu message(s) starting \"%s\" within %d ms; got %zu", n, prefix,
        timeout_ms, count_starting(prefix));
}

/* When the fake server received the first message starting with prefix
 * (harness microseconds), or 0. */
static uint64_t received_us(const char *prefix) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    bool hit = t && strncmp(t, prefix, strlen(prefix)) == 0;
    free(t);
    if (hit) return c->received_us;
  }
  return 0;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- a Redis server of the test's own -------------------------------------- */

static pid_t redis_pid;
static int redis_port;

static bool redis_installed(void) {
  const char *path = getenv("PATH");
  char *copy = xstrdup(path ? path : "/usr/bin:/bin");
  bool found = false;
  for (char *dir = strtok(copy, ":"); dir && !found; dir = strtok(NULL, ":")) {
    char full[512];
    snprintf(full, sizeof full, "%s/redis-server", dir);
    found = access(full, X_OK) == 0;
  }
  free(copy);
  return found;
}

static bool redis_accepts(void *ud) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)redis_port);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void redis_stop(void) {
  if (redis_pid <= 0) return;
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
  redis_pid = 0;
}

/* Starts redis-server on redis_port (a free loopback port the first
 * time; skips the test when it is not installed). persistent: every write
 * in its append-only file, synced, so a restart keeps the data. */
static const char *redis_run(bool persistent) {
  if (!redis_installed()) {
    fprintf(stderr, "SKIP: needs redis-server\n");
    exit(77);
  }
  if (!redis_port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0,
          "no free port: %s", strerror(errno));
    close(fd);
    redis_port = ntohs(a.sin_port);
    atexit(redis_stop);
  }
  char port[16];
  snprintf(port, sizeof port, "%d", redis_port);
  const char *dir = harness_tmpdir();
  redis_pid = fork();
  CHECK(redis_pid >= 0, "fork: %s", strerror(errno));
  if (redis_pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execlp("redis-server", "redis-server", "--port", port, "--bind",
           "127.0.0.1", "--save", "", "--appendonly",
           persistent ? "yes" : "no", "--appendfsync", "always", "--dir", dir,
           "--protected-mode", "no", "--daemonize", "no", (char *)NULL);
    _exit(127);
  }
  CHECK(run_until(redis_accepts, NULL, 10000), "redis-server did not start");
  static char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
  return url;
}

static const char *redis_start(void) { return redis_run(false); }

/* --- detached runs ------------------------------------------------------------ */

/* With one update at a time, a job scheduled by one update does not hold
 * the next one back: "hello" is answered at once, the reminder comes
 * 2 s later. */
TEST(detached_from_sink) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("remind.lua",
      "bot.job('remind', function(job) job:reply('reminder') end)\n"
      "bot.command('remind', function(ctx)\n"
      "  tghost.jobs.at(2, 'remind', { chat_id = ctx.chat.id })\n"
      "  ctx:reply('ok')\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('echo ' .. ctx.msg.text) end)\n"
      "run(bot, { sink = { concurrency = 1 } })\n");
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  fakeapi_push_text(api, 7, 7, "/remind");
  fakeapi_push_text(api, 7, 7, "hello");
  wait_texts("reminder", 1, 10000);
  uint64_t ok = received_us("ok"), echo = received_us("echo hello"),
           reminder = received_us("reminder");
  CHECK(ok && echo, "replies missing");
  fprintf(stderr, "echo %.0f ms after ok, reminder %.0f ms after ok\n",
          (double)(echo - ok) / 1000, (double)(reminder - ok) / 1000);
  CHECK(echo < reminder, "the echo waited for the reminder");
  CHECK(echo - ok < 1000000, "the echo came %.0f ms after the first reply",
        (double)(echo - ok) / 1000);
  CHECK(reminder - ok >= 1900000, "the reminder came after %.0f ms, not 2 s",
        (double)(reminder - ok) / 1000);
  proc_stop_cleanly(p);
}

/* --- 10,000 due within one second --------------------------------------------- */

/* Schedules N jobs due within one second T..T+1, from 10 tasks at once;
 * each run records its lateness (jobs clock - due time) and id; the last
 * one reports the count, duplicates and percentiles; /count asks again
 * later (a run past N would show as a duplicate or a higher count). */
static void many_due_at_once(const char *storage_lua, const char *name) {
  struct fakeapi *api = harness_api();
  struct buf src = BUF_INIT;
  buf_printf(&src,
      "local N = 10000\n"
      "local seen, late, n, dup = {}, {}, 0, 0\n"
      "bot.job('j', function(job)\n"
      "  local l = tghost.jobs.now() - job.scheduledAt\n"
      "  if seen[job.data] then dup = dup + 1 end\n"
      "  seen[job.data] = true\n"
      "  n = n + 1\n"
      "  late[n] = l\n"
      "  if n == N then\n"
      "    table.sort(late)\n"
      "    bot.api.sendMessage{ chat_id = 1, text = string.format(\n"
      "      'done %%d dup %%d p50 %%.1f p99 %%.1f max %%.1f', n, dup,\n"
      "      late[N // 2] * 1000, late[math.ceil(N * 0.99)] * 1000,\n"
      "      late[N] * 1000) }\n"
      "  end\n"
      "end)\n"
      "bot.command('go', function(ctx)\n"
      "  local t0 = tghost.now()\n"
      "  local T = math.floor(tghost.jobs.now()) + 6\n"
      "  local parts = {}\n"
      "  for k = 0, 9 do\n"
      "    parts[#parts + 1] = function()\n"
      "      for i = k * 1000 + 1, k * 1000 + 1000 do\n"
      "        tghost.jobs.at(T + (i %% 1000) / 1000, 'j', i, { id = 'j' .. i })\n"
      "      end\n"
      "    end\n"
      "  end\n"
      "  tghost.all(parts)\n"
      "  ctx:reply(string.format('scheduled in %%.2f s', tghost.now() - t0))\n"
      "end)\n"
      "bot.command('count', function(ctx)\n"
      "  ctx:reply(string.format('count %%d dup %%d listed %%d', n, dup,\n"
      "                          #tghost.jobs.list('j')))\n"
      "end)\n"
      "run(bot, { jobs = { %s } })\n",
      storage_lua);
  const char *script = harness_write("many.lua", src.data);
  buf_free(&src);
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  fakeapi_push_text(api, 1, 1, "/go");
  wait_texts("scheduled in", 1, 30000);
  wait_texts("done ", 1, 60000);
  run_for(1000);
  fakeapi_push_text(api, 1, 1, "/count");
  wait_texts("count ", 1, 10000);
  char *scheduled = reply_starting("scheduled in");
  char *done = reply_starting("done ");
  char *count = reply_starting("count ");
  fprintf(stderr, "%s: 10,000 jobs due within one second: %s; %s; %s\n", name,
          scheduled, done, count);
  int n = 0, dup = -1;
  CHECK(sscanf(done, "done %d dup %d", &n, &dup) == 2 && n == 10000 &&
            dup == 0, "%s", done);
  CHECK(strcmp(count, "count 10000 dup 0 listed 0") == 0,
        "a job ran more than once, or stayed: %s", count);
  free(scheduled);
  free(done);
  free(count);
  proc_stop_cleanly(p);
}

TEST_SERIAL(ten_thousand_due_memory) { many_due_at_once("", "memory"); }

TEST_SERIAL(ten_thousand_due_sqlite) {
  struct buf lua = BUF_INIT;
  buf_printf(&lua, "storage = tghost.storage.sqlite('%s/many.db')",
             harness_tmpdir());
  many_due_at_once(lua.data, "sqlite");
  buf_free(&lua);
}

TEST_SERIAL(ten_thousand_due_redis) {
  struct buf lua = BUF_INIT;
  buf_printf(&lua, "storage = tghost.storage.redis('%s')", redis_start());
  many_due_at_once(lua.data, "redis");
  buf_free(&lua);
}

/* --- kill -9 and a restart -------------------------------------------------------- */

/* Phase A schedules (from /setup, relative to T0): 20 jobs due at T0+2
 * that run before the kill, 20 due at T0+6 while tghost is down, a slow
 * job (T0+2.5) that is running when it is killed, and three jobs every
 * second from T0+1 with the misfire policies skip, all (limit 3) and
 * once. Phase B starts at about T0+9. */
static const char kill_script[] =
    "local kind, target = os.getenv('JOBS_STORE'):match('^(%a+):(.*)$')\n"
    "local store = tghost.storage[kind](target)\n"
    "local PHASE = os.getenv('PHASE')\n"
    "local function say(s) bot.api.sendMessage{ chat_id = 1, text = s } end\n"
    "bot.job('once', function(job)\n"
    "  say(('ran %s %s %s'):format(job.id, job.redelivered and 'again' or\n"
    "                               'first', PHASE))\n"
    "end)\n"
    "bot.job('slow', function(job)\n"
    "  say(('slow start %s %s'):format(job.redelivered and 'again' or 'first',\n"
    "                                  PHASE))\n"
    "  tghost.sleep(PHASE == 'A' and 60 or 0.1)\n"
    "  say('slow end ' .. PHASE)\n"
    "end)\n"
    "bot.job('rec', function(job)\n"
    "  say(('rec %s %d %s%s'):format(job.id, math.floor(job.scheduledAt * 1000),\n"
    "                                PHASE, job.redelivered and ' again' or ''))\n"
    "end)\n"
    "bot.command('setup', function(ctx)\n"
    "  local t0 = tonumber(os.getenv('T0'))\n"
    "  for i = 1, 20 do tghost.jobs.at(t0 + 2, 'once', nil, { id = 'before' .. i }) end\n"
    "  for i = 1, 20 do tghost.jobs.at(t0 + 6, 'once', nil, { id = 'during' .. i }) end\n"
    "  tghost.jobs.at(t0 + 2.5, 'slow', nil, { id = 'slow' })\n"
    "  for _, m in ipairs({ 'skip', 'all', 'once' }) do\n"
    "    tghost.jobs.every(1, 'rec', nil, { id = m, misfire = m,\n"
    "                                       misfireLimit = 3, first = t0 + 1 })\n"
    "  end\n"
    "  ctx:reply('set up')\n"
    "end)\n"
    "run(bot, { jobs = { storage = store, lease = 2000, grace = 500 } })\n";

/* Late runs in phase B of the recurring job id: those due before B
 * started (a run cut short by the kill, run again, does not count: a
 * redelivered run is never skipped). */
static int late_runs(const char *id, double b_start) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "rec %s ", id);
  size_t n;
  char **t = texts_starting(prefix, &n);
  int late = 0;
  for (size_t i = 0; i < n; i++) {
    long long due_ms = 0;
    char phase = 0;
    CHECK(sscanf(t[i] + strlen(prefix), "%lld %c", &due_ms, &phase) == 2,
          "%s", t[i]);
    if (phase == 'B' && (double)due_ms / 1000 < b_start &&
        !strstr(t[i], " again"))
      late++;
  }
  free_texts(t, n);
  return late;
}

static void kill_and_restart(const char *store) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("killed.lua", kill_script);
  double t0 = floor(wall_now()) + 1;
  char t0_env[64], store_env[600];
  snprintf(t0_env, sizeof t0_env, "T0=%.0f", t0);
  snprintf(store_env, sizeof store_env, "JOBS_STORE=%s", store);
  const char *env_a[] = {"BOT_TOKEN=" TEST_TOKEN, t0_env, store_env, "PHASE=A",
                         NULL};
  struct proc *a = proc_start_env(script, NULL, env_a, true);
  wait_polling();
  fakeapi_push_text(api, 1, 1, "/setup");
  wait_texts("set up", 1, 10000);
  wait_texts("ran before", 20, 15000);
  wait_texts("slow start first A", 1, 15000);
  /* The runs' ends are committed a moment after their messages; and the
   * kill comes between two runs of the recurring jobs, as a rule. */
  while (wall_now() < t0 + 3.5) run_for(50);
  CHECK(wall_now() < t0 + 5.5, "phase A took too long to be killed before "
        "the 'during' jobs fell due (%.1f s after T0)", wall_now() - t0);
  proc_kill(a, SIGKILL);
  CHECK(proc_wait(a, 5000), "tghost did not die");
  while (wall_now() < t0 + 9) run_for(100);

  const char *env_b[] = {"BOT_TOKEN=" TEST_TOKEN, t0_env, store_env, "PHASE=B",
                         NULL};
  double b_start = wall_now();
  struct proc *b = proc_start_env(script, NULL, env_b, true);
  wait_texts("ran during", 20, 15000);
  wait_texts("slow end B", 1, 15000);
  run_for(2500);
  proc_stop_cleanly(b);
  proc_check_clean(a);

  /* Each 'during' job once, each 'before' job never again. */
  for (int i = 1; i <= 20; i++) {
    char text[64];
    snprintf(text, sizeof text, "ran during%d first B", i);
    CHECK(replies_with(text) == 1, "'%s' %zu times", text, replies_with(text));
    snprintf(text, sizeof text, "ran before%d first A", i);
    CHECK(replies_with(text) == 1, "'%s' %zu times", text, replies_with(text));
  }
  CHECK(count_starting("ran during") == 20 && count_starting("ran before") == 20,
        "extra runs: %zu during, %zu before", count_starting("ran during"),
        count_starting("ran before"));
  /* The slow job was running when A died: it runs again, once, marked. */
  CHECK(replies_with("slow start again B") == 1 &&
            count_starting("slow start") == 2,
        "the slow job: %zu starts in all", count_starting("slow start"));
  /* Misfires: skip runs none late, all runs 3 (its limit), once runs 1. */
  int skip = late_runs("skip", b_start), all = late_runs("all", b_start),
      once = late_runs("once", b_start);
  fprintf(stderr, "late runs after the restart: skip %d, all %d, once %d\n",
          skip, all, once);
  CHECK(skip == 0, "misfire skip ran %d late run(s)", skip);
  CHECK(all == 3, "misfire all (limit 3) ran %d late run(s)", all);
  CHECK(once == 1, "misfire once ran %d late run(s)", once);
  CHECK(count_starting("rec skip ") > 0 && count_starting("rec all ") > 3,
        "the recurring jobs did not go on after the restart");
}

TEST(kill_restart_sqlite) {
  struct buf store = BUF_INIT;
  buf_printf(&store, "sqlite:%s/killed.db", harness_tmpdir());
  kill_and_restart(store.data);
  buf_free(&store);
}

TEST(kill_restart_redis) {
  struct buf store = BUF_INIT;
  buf_printf(&store, "redis:%s", redis_start());
  kill_and_restart(store.data);
  buf_free(&store);
}

/* --- two processes, one Redis ---------------------------------------------- */

/* Two processes, each polling a Bot API of its own (one bot polled twice
 * would be a 409 conflict), share one Redis for their jobs. Both declare
 * the same 1,000 jobs (ids j1..j1000, due within one second) at their top
 * level, and both run jobs: each job runs once in all. */
struct two_runs {
  struct proc *a, *b;
};

static size_t runs_in(const struct proc *p) {
  return count_in(proc_stdout(p), "ran ");
}

static bool thousand_runs(void *ud) {
  struct two_runs *r = ud;
  return runs_in(r->a) + runs_in(r->b) >= 1000;
}

/* Adds each "ran N" line of out to times[N]; returns how many. */
static size_t tally(const char *out, int *times) {
  size_t n = 0;
  for (const char *l = out; l && *l;) {
    int j = 0;
    if (sscanf(l, "ran %d", &j) == 1) {
      CHECK(j >= 1 && j <= 1000, "a run of an unknown job: %.20s", l);
      times[j]++;
      n++;
    }
    const char *nl = strchr(l, '\n');
    l = nl ? nl + 1 : NULL;
  }
  return n;
}

TEST_SERIAL(two_processes_redis) {
  const char *url = redis_start();
  harness_api();
  /* B's own Bot API: the fake server's program, its port from its line. */
  const char *fake_argv[] = {TGHOST_FAKEAPI_BINARY, "--token", TEST_TOKEN,
                             "--updates", "0", NULL};
  struct proc *fake = proc_start_command(fake_argv, NULL);
  const char *script = harness_write("shared.lua",
      "local store = tghost.storage.redis(os.getenv('REDIS_URL'))\n"
      "local T = tonumber(os.getenv('T'))\n"
      "bot.job('j', function(job) print(('ran %d'):format(job.data)) end)\n"
      "for i = 1, 1000 do\n"
      "  tghost.jobs.at(T + (i % 100) / 100, 'j', i, { id = 'j' .. i })\n"
      "end\n"
      "run(bot, { jobs = { storage = store, concurrency = 50, poll = 200 } })\n");
  char t_env[64], url_env[128];
  snprintf(t_env, sizeof t_env, "T=%.0f", floor(wall_now()) + 4);
  snprintf(url_env, sizeof url_env, "REDIS_URL=%s", url);
  const char *env_a[] = {"BOT_TOKEN=" TEST_TOKEN, t_env, url_env, NULL};
  struct two_runs r;
  r.a = proc_start_env(script, NULL, env_a, true);
  int fake_port = 0;
  for (int i = 0; i < 200 && !fake_port; i++) {
    const char *at = strstr(proc_stdout(fake), "http://127.0.0.1:");
    if (at) fake_port = atoi(at + strlen("http://127.0.0.1:"));
    else run_for(25);
  }
  CHECK(fake_port > 0, "the second fake Bot API did not start");
  char root[64];
  snprintf(root, sizeof root, "http://127.0.0.1:%d", fake_port);
  const char *args_b[] = {"--api-root", root, NULL};
  r.b = proc_start_env(script, args_b, env_a, false);
  CHECK(run_until(thousand_runs, &r, 60000), "%zu runs within 60 s",
        runs_in(r.a) + runs_in(r.b));
  run_for(1500);
  int *times = xcalloc(1001, sizeof *times);
  size_t by_a = tally(proc_stdout(r.a), times);
  size_t by_b = tally(proc_stdout(r.b), times);
  for (int j = 1; j <= 1000; j++)
    CHECK(times[j] == 1, "job j%d ran %d times", j, times[j]);
  fprintf(stderr, "1,000 jobs, two processes: %zu run by A, %zu by B\n", by_a,
          by_b);
  CHECK(by_a + by_b == 1000, "%zu runs for 1,000 jobs", by_a + by_b);
  free(times);
  proc_stop_cleanly(r.a);
  proc_stop_cleanly(r.b);
  proc_free(fake);
}

/* Redis is down (killed, restarted from its append-only file 2 s later)
 * when a run ends: recording the end fails, and is sent again until Redis
 * is back, its claim renewed meanwhile, so the job does not run a second
 * time when its lease (10 s) would have run out. */
TEST(redis_restart_does_not_repeat) {
  struct fakeapi *api = harness_api();
  struct buf src = BUF_INIT;
  buf_printf(&src,
      "local store = tghost.storage.redis('%s')\n"
      "local function say(s) bot.api.sendMessage{ chat_id = 1, text = s } end\n"
      "bot.job('w', function(job)\n"
      "  say('start ' .. (job.redelivered and 'again' or 'first'))\n"
      "  tghost.sleep(1)\n"
      "  say('end')\n"
      "end)\n"
      "bot.command('go', function(ctx)\n"
      "  tghost.jobs.at(0, 'w', nil, { id = 'w' })\n"
      "  ctx:reply('scheduled')\n"
      "end)\n"
      "bot.command('count', function(ctx)\n"
      "  ctx:reply('count ' .. #tghost.jobs.list())\n"
      "end)\n"
      "run(bot, { jobs = { storage = store, lease = 10000 } })\n",
      redis_run(true));
  const char *script = harness_write("restarted.lua", src.data);
  buf_free(&src);
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  fakeapi_push_text(api, 1, 1, "/go");
  wait_texts("start first", 1, 10000);
  redis_stop();
  wait_texts("end", 1, 5000);
  run_for(2000);
  redis_run(true);
  run_for(10000);
  CHECK(count_starting("start ") == 1, "the job ran %zu times",
        count_starting("start "));
  fakeapi_push_text(api, 1, 1, "/count");
  wait_texts("count ", 1, 10000);
  char *count = reply_starting("count ");
  CHECK(strcmp(count, "count 0") == 0, "%s: its end was never recorded", count);
  free(count);
  proc_stop_cleanly(p);
}

/* --- failures ------------------------------------------------------------------ */

TEST(failures_reach_bot_catch) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("failing.lua",
      "bot.catch(function(err)\n"
      "  bot.api.sendMessage{ chat_id = 1, text = ('caught %s %s: %s'):format(\n"
      "    err.job and err.job.name, err.job and err.job.id, tostring(err.error)) }\n"
      "end)\n"
      "bot.job('boom', function(job) error('kaboom ' .. job.data.n) end)\n"
      "bot.job('loop', function() while true do end end)\n"
      "bot.job('slow', function() tghost.sleep(30) end)\n"
      "bot.job('hog', function()\n"
      "  keep = {}\n"
      "  while true do\n"
      "    keep[#keep + 1] = string.rep('x', 4 * 1024 * 1024 - 64) .. #keep\n"
      "    tghost.sleep(0)\n"
      "  end\n"
      "end)\n"
      "bot.job('ok', function(job) job:reply('fine ' .. job.data.n) end)\n"
      "bot.command('go', function(ctx)\n"
      "  tghost.jobs.at(0, 'boom', { n = 1 }, { id = 'b' })\n"
      "  tghost.jobs.at(0, 'loop', nil, { id = 'l' })\n"
      "  tghost.jobs.at(0, 'slow', nil, { id = 's' })\n"
      "  tghost.jobs.at(0, 'hog', nil, { id = 'h' })\n"
      "  tghost.jobs.at(0.5, 'ok', { chat_id = ctx.chat.id, n = 2 }, { id = 'o' })\n"
      "  local function try(...) local ok, e = pcall(...) return tostring(e) end\n"
      "  ctx:reply('unknown: ' .. try(tghost.jobs.at, 1, 'boo'))\n"
      "  ctx:reply('data: ' .. try(tghost.jobs.at, 1, 'ok', print))\n"
      "  ctx:reply('cron: ' .. try(tghost.jobs.cron, '0 25 * * *', 'ok'))\n"
      "  ctx:reply('tz: ' .. try(tghost.jobs.cron, '0 9 * * *', 'ok', nil,\n"
      "                          { tz = 'Mars/Olympus_Mons' }))\n"
      "  ctx:reply('when: ' .. try(tghost.jobs.at, 'soon', 'ok'))\n"
      "  ctx:reply('opt: ' .. try(tghost.jobs.at, 1, 'ok', nil, { tz = 'UTC', ids = 1 }))\n"
      "end)\n"
      "run(bot, { jobs = { timeout = 1500 } })\n");
  const char *args[] = {"--update-memory-limit", "48", NULL};
  struct proc *p = proc_start(script, args);
  wait_polling();
  fakeapi_push_text(api, 3, 3, "/go");
  wait_texts("caught ", 4, 15000);
  wait_texts("fine 2", 1, 5000);
  char *boom = reply_starting("caught boom b:");
  char *loop = reply_starting("caught loop l:");
  char *slow = reply_starting("caught slow s:");
  CHECK(boom && strstr(boom, "kaboom 1"), "%s", boom ? boom : "no boom");
  CHECK(loop && strstr(loop, "job stopped: it ran for over"), "%s",
        loop ? loop : "no loop");
  CHECK(slow && strstr(slow, "timed out after 1500 ms"),
        "%s", slow ? slow : "no slow");
  char *hog = reply_starting("caught hog h:");
  CHECK(hog && strstr(hog, "used more than 48 MiB of Lua memory"), "%s",
        hog ? hog : "no hog");
  free(hog);
  free(boom);
  free(loop);
  free(slow);
  static const struct {
    const char *prefix, *says;
  } refusals[] = {
      {"unknown: ", "no handler for the job \"boo\""},
      {"unknown: ", "did you mean boom?"},
      {"data: ", "cannot be stored"},
      {"cron: ", "hour 25 is out of range 0-23"},
      {"tz: ", "unknown time zone Mars/Olympus_Mons"},
      {"when: ", "\"soon\" is not a time"},
      {"opt: ", "unknown option ids (did you mean id?)"},
  };
  for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
    wait_texts(refusals[i].prefix, 1, 5000);
    char *t = reply_starting(refusals[i].prefix);
    CHECK(strstr(t, refusals[i].says), "'%s' does not say '%s'", t,
          refusals[i].says);
    free(t);
  }
  proc_stop_cleanly(p);
}

/* --- reloads, stops, restarts ------------------------------------------------ */

/* A job in memory scheduled under generation 1 runs after a reload, with
 * generation 2's handler. */
TEST(memory_jobs_survive_reload) {
  struct fakeapi *api = harness_api();
  const char *v1 =
      "bot.job('r', function(job) job:reply('v1 ' .. job.data.text) end)\n"
      "bot.command('later', function(ctx)\n"
      "  tghost.jobs.at(2, 'r', { chat_id = ctx.chat.id, text = 'x' })\n"
      "  ctx:reply('scheduled')\n"
      "end)\n"
      "run(bot)\n";
  const char *script = harness_write("reloaded.lua", v1);
  const char *args[] = {"--no-watch", NULL};
  struct proc *p = proc_start(script, args);
  wait_polling();
  fakeapi_push_text(api, 4, 4, "/later");
  wait_texts("scheduled", 1, 5000);
  harness_write("reloaded.lua",
      "bot.job('r', function(job) job:reply('v2 ' .. job.data.text) end)\n"
      "run(bot)\n");
  proc_kill(p, SIGHUP);
  wait_stderr(p, "generation 2 loaded", 10000);
  wait_texts("v2 x", 1, 10000);
  CHECK(count_starting("v1 ") == 0, "generation 1 ran it");
  proc_stop_cleanly(p);
}

/* A graceful stop past the drain timeout cancels a running job and
 * releases it: the next start runs it again at once (not after its
 * lease), marked redelivered. */
TEST(stop_releases_running_job) {
  struct fakeapi *api = harness_api();
  struct buf src = BUF_INIT;
  buf_printf(&src,
      "bot.job('long', function(job)\n"
      "  bot.api.sendMessage{ chat_id = 1, text = 'long ' ..\n"
      "    (job.redelivered and 'again' or 'first') }\n"
      "  tghost.sleep(os.getenv('SECOND') and 0 or 60)\n"
      "end)\n"
      "bot.command('go', function(ctx)\n"
      "  tghost.jobs.at(0, 'long', nil, { id = 'long' })\n"
      "  ctx:reply('scheduled')\n"
      "end)\n"
      "run(bot, { jobs = { storage = tghost.storage.sqlite('%s/stop.db') } })\n",
      harness_tmpdir());
  const char *script = harness_write("stopped.lua", src.data);
  buf_free(&src);
  const char *args[] = {"--drain-timeout", "1", NULL};
  struct proc *p = proc_start(script, args);
  wait_polling();
  fakeapi_push_text(api, 1, 1, "/go");
  wait_texts("long first", 1, 10000);
  uint64_t t0 = harness_now_ms();
  proc_stop_cleanly(p);
  CHECK(harness_now_ms() - t0 < 5000, "the stop did not cut the job short");
  CHECK(strstr(proc_stderr(p), "job run(s) still in flight"),
        "the drain timeout was not reported");
  const char *env[] = {"BOT_TOKEN=" TEST_TOKEN, "SECOND=1", NULL};
  uint64_t t1 = harness_now_ms();
  struct proc *q = proc_start_env(script, args, env, true);
  wait_texts("long again", 1, 10000);
  CHECK(harness_now_ms() - t1 < 5000, "the released job waited for its lease");
  CHECK(count_starting("long ") == 2, "%zu runs", count_starting("long "));
  proc_stop_cleanly(q);
}

/* A job declared at the top level keeps its place across a restart: its
 * next run is when it was due, not an interval after the start, and it
 * is stored once. */
TEST(declarations_keep_their_place) {
  struct fakeapi *api = harness_api();
  struct buf src = BUF_INIT;
  buf_printf(&src,
      "bot.job('tick', function(job)\n"
      "  bot.api.sendMessage{ chat_id = 1, text = ('tick %%d %%s'):format(\n"
      "    math.floor(job.scheduledAt * 1000), os.getenv('PHASE')) }\n"
      "end)\n"
      "tghost.jobs.every(3, 'tick', nil, { misfire = 'skip' })\n"
      "bot.command('count', function(ctx)\n"
      "  local l = tghost.jobs.list()\n"
      "  ctx:reply(('count %%d %%s'):format(#l, l[1] and l[1].id or '-'))\n"
      "end)\n"
      "run(bot, { jobs = { storage = tghost.storage.sqlite('%s/decl.db') } })\n",
      harness_tmpdir());
  const char *script = harness_write("declared.lua", src.data);
  buf_free(&src);
  const char *env_a[] = {"BOT_TOKEN=" TEST_TOKEN, "PHASE=A", NULL};
  struct proc *a = proc_start_env(script, NULL, env_a, true);
  wait_texts("tick ", 1, 10000);
  long long first = 0;
  char *t = reply_starting("tick ");
  CHECK(sscanf(t, "tick %lld", &first) == 1, "%s", t);
  free(t);
  proc_stop_cleanly(a);
  const char *env_b[] = {"BOT_TOKEN=" TEST_TOKEN, "PHASE=B", NULL};
  struct proc *b = proc_start_env(script, NULL, env_b, true);
  wait_texts("tick ", 2, 10000);
  size_t n;
  char **ticks = texts_starting("tick ", &n);
  long long second = 0;
  char phase = 0;
  CHECK(sscanf(ticks[1], "tick %lld %c", &second, &phase) == 2, "%s", ticks[1]);
  free_texts(ticks, n);
  CHECK(second == first + 3000 && phase == 'B',
        "the second tick was due at %lld, %lld ms after the first (3000 "
        "expected): the restart moved it", second, second - first);
  fakeapi_push_text(api, 1, 1, "/count");
  wait_texts("count ", 1, 5000);
  t = reply_starting("count ");
  CHECK(strcmp(t, "count 1 tick@1") == 0, "%s", t);
  free(t);
  proc_stop_cleanly(b);
}

/* --- observability -------------------------------------------------------------- */

static double metric(int port, const char *line_start) {
  struct buf body = BUF_INIT;
  CHECK(get_url(port, "/metrics", &body) == 200, "/metrics");
  double v = NAN;
  size_t len = strlen(line_start);
  for (const char *l = body.data; l && *l;) {
    if (strncmp(l, line_start, len) == 0 && l[len] == ' ') {
      v = atof(l + len + 1);
      break;
    }
    const char *nl = strchr(l, '\n');
    l = nl ? nl + 1 : NULL;
  }
  buf_free(&body);
  return v;
}

TEST(metrics_and_trace) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("observed.lua",
      "bot.job('ok', function() end)\n"
      "bot.job('bad', function() error('no') end)\n"
      "bot.job('slow', function() tghost.sleep(30) end)\n"
      "bot.command('go', function(ctx)\n"
      "  tghost.jobs.at(0, 'ok', nil, { id = 'ok1' })\n"
      "  tghost.jobs.at(0, 'ok', nil, { id = 'ok2' })\n"
      "  tghost.jobs.at(0, 'bad', nil, { id = 'bad' })\n"
      "  tghost.jobs.at(0, 'slow', nil, { id = 'slow' })\n"
      "  tghost.jobs.at(3600, 'ok', nil, { id = 'later' })\n"
      "  ctx:reply('scheduled')\n"
      "end)\n"
      "run(bot)\n");
  const char *args[] = {"--metrics", "127.0.0.1:0", "--trace",
                        "--drain-timeout", "1", NULL};
  struct proc *p = proc_start(script, args);
  int port = wait_port(p, METRICS_MARK);
  wait_polling();
  fakeapi_push_text(api, 1, 1, "/go");
  wait_texts("scheduled", 1, 5000);
  wait_stderr(p, "job slow (id slow) started", 5000);
  wait_stderr(p, "job bad (id bad) failed", 5000);
  run_for(300);
  CHECK(metric(port, "tghost_job_runs_total{outcome=\"done\"}") == 2, "done");
  CHECK(metric(port, "tghost_job_runs_total{outcome=\"failed\"}") == 1,
        "failed");
  CHECK(metric(port, "tghost_jobs_running") == 1, "running");
  CHECK(metric(port, "tghost_jobs_scheduled") == 2, "scheduled: slow, later");
  CHECK(metric(port, "tghost_job_lateness_seconds_count") == 4, "lateness");
  CHECK(metric(port, "tghost_jobs_due") == 0, "due");
  CHECK(strstr(proc_stderr(p), "job ok (id ok1) started") &&
            strstr(proc_stderr(p), "job ok (id ok1) done"),
        "no trace lines for the run of ok1");
  proc_stop_cleanly(p);
}
