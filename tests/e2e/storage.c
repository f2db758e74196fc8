/* Storages and sessions end to end: tghost against the fake Bot API, with
 * state in memory, in SQLite files and in a Redis server the test starts
 * itself (Debian's redis-server on a free loopback port; a Redis test
 * exits 77, skipped, only when redis-server is not installed). */
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include "calls.h"
#include "harness.h"
#include "redisproc.h"
#include "store/redisconn.h"

/* --- helpers ------------------------------------------------------------ */

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
  struct buf b = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&b, fmt, ap);
  va_end(ap);
  return buf_steal(&b, NULL);
}

/* Database files the test makes (removed at exit with their -wal/-shm). */
static char *db_files[8];
static int ndb_files;

static void remove_db_files(void) {
  for (int i = 0; i < ndb_files; i++) {
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t k = 0; k < 4; k++) {
      char path[512];
      snprintf(path, sizeof path, "%s%s", db_files[i], suffixes[k]);
      unlink(path);
    }
    free(db_files[i]);
  }
  ndb_files = 0;
}

static const char *db_path(const char *name) {
  if (ndb_files == 0) atexit(remove_db_files);
  CHECK(ndb_files < 8, "too many databases");
  db_files[ndb_files] = format("%s/%s", harness_tmpdir(), name);
  return db_files[ndb_files++];
}

struct reply_wait {
  struct fakeapi *api;
  const char *prefix;
  size_t from;
};

static bool have_reply_on(void *ud) {
  struct reply_wait *w = ud;
  for (size_t i = w->from; i < fakeapi_call_count(w->api); i++) {
    const struct fake_call *c = fakeapi_call(w->api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *text = fake_call_string(c, "text");
    bool match = text && strncmp(text, w->prefix, strlen(w->prefix)) == 0;
    free(text);
    if (match) return true;
  }
  return false;
}

/* Pushes text to chat on api and returns the first reply, after the push,
 * that starts with prefix (malloc'd); fails the test after timeout_ms. */
static char *ask_on(struct fakeapi *api, int64_t chat, const char *text,
                    const char *prefix, int timeout_ms) {
  size_t from = fakeapi_call_count(api);
  fakeapi_push_text(api, chat, 7, text);
  struct reply_wait w = {api, prefix, from};
  CHECK(run_until(have_reply_on, &w, timeout_ms),
        "no reply starting with '%s' to '%s'", prefix, text);
  for (size_t i = from; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) return t;
    free(t);
  }
  return NULL;
}

static char *ask(int64_t chat, const char *text, const char *prefix) {
  return ask_on(harness_api(), chat, text, prefix, 20000);
}

static void expect(int64_t chat, const char *text, const char *want) {
  char *got = ask(chat, text, "");
  CHECK(strcmp(got, want) == 0, "'%s' got the reply '%s', expected '%s'", text,
        got, want);
  free(got);
}


/* --- a Redis server of the test's own ------------------------------------ */

static bool redis_ready(void *ud) { return redisproc_ready(ud); }

/* Redis's unix socket (redis_start opens one beside its TCP port). */
static const char *redis_socket_path(void) {
  static char path[512];
  snprintf(path, sizeof path, "%s/redis.sock", harness_tmpdir());
  return path;
}

/* Starts redis-server on r's port (a free one the first time) and on a
 * unix socket, without persistence, with the extra arguments (NULL-
 * terminated, or NULL), and waits until it accepts connections. */
static void redis_start(struct redisproc *r, const char *const *extra) {
  redisproc_need();
  const char *argv[40] = {"--unixsocket", redis_socket_path(),
                          "--unixsocketperm", "700"};
  int argc = 4;
  for (int i = 0; extra && extra[i] && argc < 39; i++) argv[argc++] = extra[i];
  argv[argc] = NULL;
  redisproc_start(r, harness_tmpdir(), argv);
  CHECK(run_until(redis_ready, r, 10000), "redis-server did not start on "
        "port %d", r->port);
}

static void redis_stop(struct redisproc *r) { redisproc_signal(r, SIGKILL); }

/* --- the write-after-read hazard ----------------------------------------- */

enum { HAZARD_CHATS = 50, HAZARD_PER_CHAT = 200 };

/* 50 chats x 200 updates increment ctx.session.count with a yield between
 * the read and the write. Chats 1000.. run without sequentialize and must
 * lose increments (the hazard is real); chats 2000.. run behind
 * sequentialize with the same key and must count exactly 200. */
static void run_hazard(const char *store_expr) {
  struct fakeapi *api = harness_api();
  int total = 2 * HAZARD_CHATS * HAZARD_PER_CHAT;
  char *script_text = format(
      "local store = %s\n"
      "local done = tghost.storage.memory('hazard-done')\n"
      "local function initial() return { count = 0 } end\n"
      "local function bump(ctx)\n"
      "  local n = ctx.session.count          -- read\n"
      "  tghost.sleep(math.random() * 0.002)  -- a yield between read and write\n"
      "  ctx.session.count = n + 1            -- written back after the handler\n"
      "end\n"
      "bot.catch(function(err) err.ctx:reply('error: ' .. tostring(err.error)) end)\n"
      "bot.hears('report', function(ctx)\n"
      "  while (done:get('n') or 0) < %d do tghost.sleep(0.01) end\n"
      "  local out = {}\n"
      "  for _, base in ipairs({ 1000, 2000 }) do\n"
      "    for c = base, base + %d - 1 do\n"
      "      local s = store:get(c)\n"
      "      out[#out + 1] = (s and s.count or 0)\n"
      "    end\n"
      "  end\n"
      "  ctx:reply('report ' .. table.concat(out, ' '))\n"
      "end)\n"
      "bot.use(function(ctx, next)   -- counts finished updates, session written\n"
      "  local ok, err = pcall(next)\n"
      "  done:set('n', (done:get('n') or 0) + 1)\n"
      "  if not ok then error(err, 0) end\n"
      "end)\n"
      "local unprotected = tghost.Composer()\n"
      "unprotected.use(session{ storage = store, initial = initial })\n"
      "unprotected.on('message', bump)\n"
      "local protected = tghost.Composer()\n"
      "protected.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "protected.use(session{ storage = store, initial = initial })\n"
      "protected.on('message', bump)\n"
      "bot.filter(function(ctx) return ctx.chat.id < 2000 end, unprotected)\n"
      "bot.use(protected)\n"
      "run(bot)\n",
      store_expr, total, HAZARD_CHATS);
  const char *script = harness_write("hazard.lua", script_text);
  free(script_text);
  for (int i = 0; i < HAZARD_PER_CHAT; i++)
    for (int c = 0; c < HAZARD_CHATS; c++) {
      fakeapi_push_text(api, 1000 + c, 7, "bump");
      fakeapi_push_text(api, 2000 + c, 7, "bump");
    }
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, NULL);
  char *report = ask_on(api, 1, "report", "report ", 120000);
  uint64_t took = harness_now_ms() - start;
  char *err = reply_starting("error: ");
  CHECK(!err, "an update failed: %s", err ? err : "");
  long counts[2 * HAZARD_CHATS];
  const char *q = report + strlen("report ");
  for (int i = 0; i < 2 * HAZARD_CHATS; i++) {
    char *end;
    counts[i] = strtol(q, &end, 10);
    CHECK(end != q, "bad report: %s", report);
    q = end;
  }
  long lost = 0;
  for (int c = 0; c < HAZARD_CHATS; c++) {
    CHECK(counts[c] >= 1 && counts[c] <= HAZARD_PER_CHAT,
          "unprotected chat %d counted %ld", 1000 + c, counts[c]);
    lost += HAZARD_PER_CHAT - counts[c];
    CHECK(counts[HAZARD_CHATS + c] == HAZARD_PER_CHAT,
          "chat %d behind sequentialize counted %ld of %d", 2000 + c,
          counts[HAZARD_CHATS + c], HAZARD_PER_CHAT);
  }
  CHECK(lost > 0, "no increment was lost without sequentialize: the hazard "
                  "did not happen, so the test proves nothing");
  fprintf(stderr, "hazard: %ld of %d increments lost without sequentialize, "
          "0 of %d with it (%d updates in %.1f s)\n", lost,
          HAZARD_CHATS * HAZARD_PER_CHAT, HAZARD_CHATS * HAZARD_PER_CHAT,
          total, took / 1000.0);
  free(report);
  proc_stop_cleanly(p);
}

TEST(hazard_memory) {
  run_hazard("tghost.storage.memory('hazard')");
}

TEST(hazard_sqlite) {
  char *expr = format("tghost.storage.sqlite('%s')", db_path("hazard.db"));
  run_hazard(expr);
  free(expr);
}

TEST(hazard_redis) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *expr = format("tghost.storage.redis('redis://127.0.0.1:%d', 'hazard:')",
                      r.port);
  run_hazard(expr);
  free(expr);
}

/* --- hot reloads ---------------------------------------------------------- */

enum { RELOAD_CHATS = 20, RELOADS = 10 };

static const char *reload_script(int version) {
  static char text[2048];
  snprintf(text, sizeof text,
      "-- version %d\n"
      "local stats = tghost.storage.memory('stats')\n"
      "local sessions = tghost.storage.memory('session')  -- session{}'s default\n"
      "bot.hears('^report (%%d+)$', function(ctx)\n"
      "  local want = tonumber(ctx.match[1])\n"
      "  local deadline = tghost.now() + 20\n"
      "  while (stats:get('total') or 0) < want and tghost.now() < deadline do\n"
      "    tghost.sleep(0.01)\n"
      "  end\n"
      "  local out = { 'total=' .. (stats:get('total') or 0),\n"
      "                'gen=' .. tghost.generation() }\n"
      "  for c = 1, %d do\n"
      "    local s = sessions:get(c)\n"
      "    out[#out + 1] = tostring(s and s.count or 0)\n"
      "  end\n"
      "  ctx:reply(table.concat(out, ' '))\n"
      "end)\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.use(session{ initial = function() return { count = 0 } end })\n"
      "bot.on('message', function(ctx)\n"
      "  ctx.session.count = ctx.session.count + 1\n"
      "  tghost.sleep(0.002)\n"
      "  stats:set('total', (stats:get('total') or 0) + 1)\n"
      "end)\n"
      "run(bot)\n",
      version, RELOAD_CHATS);
  return text;
}

struct feeder {
  long pushed[RELOAD_CHATS + 1];
  long total;
  uint64_t last_ms;
};

/* Keeps updates flowing: 2 per millisecond, round robin over the chats. */
static void feed(struct feeder *f) {
  uint64_t now = harness_now_ms();
  long due = f->last_ms ? (long)(now - f->last_ms) * 2 : 2;
  if (due > 50) due = 50;
  for (long i = 0; i < due; i++) {
    int chat = (int)(f->total % RELOAD_CHATS) + 1;
    fakeapi_push_text(harness_api(), chat, 7, "bump");
    f->pushed[chat]++;
    f->total++;
  }
  f->last_ms = now;
}

struct reload_wait {
  struct proc *p;
  struct feeder *f;
  char needle[64];
};

static bool reloaded_while_feeding(void *ud) {
  struct reload_wait *w = ud;
  feed(w->f);
  return strstr(proc_stderr(w->p), w->needle) != NULL || proc_exited(w->p);
}

/* A memory session and a tghost.storage.memory value survive 10 hot
 * reloads while updates flow. */
TEST(memory_survives_reloads) {
  const char *script = harness_write("reload.lua", reload_script(1));
  struct proc *p = proc_start(script, NULL);
  /* Logged once the script's folder is watched: a rewrite before that
   * would go unseen. */
  wait_stderr(p, "running as", 15000);
  static struct feeder f;
  for (int v = 2; v <= RELOADS + 1; v++) {
    struct reload_wait w = {p, &f, ""};
    snprintf(w.needle, sizeof w.needle, "generation %d loaded", v);
    run_for(50);
    feed(&f);
    harness_write("reload.lua", reload_script(v));
    CHECK(run_until(reloaded_while_feeding, &w, 20000) && !proc_exited(p),
          "generation %d did not load", v);
  }
  char ask_text[64];
  snprintf(ask_text, sizeof ask_text, "report %ld", f.total);
  char *report = ask_on(harness_api(), RELOAD_CHATS + 100, ask_text, "total=",
                        60000);
  long total = -1, gen = -1;
  const char *q = report;
  CHECK(sscanf(q, "total=%ld gen=%ld", &total, &gen) == 2, "bad report %s",
        report);
  CHECK(total == f.total, "tghost.storage.memory counted %ld of %ld updates "
        "across the reloads", total, f.total);
  CHECK(gen == RELOADS + 1, "the report ran in generation %ld", gen);
  q = strstr(q, "gen=");
  q = strchr(q, ' ');
  for (int c = 1; c <= RELOAD_CHATS; c++) {
    char *end;
    long n = strtol(q, &end, 10);
    CHECK(end != q, "bad report %s", report);
    CHECK(n == f.pushed[c], "chat %d's session counted %ld of %ld", c, n,
          f.pushed[c]);
    q = end;
  }
  fprintf(stderr, "reloads: %d reloads, %ld updates, every session and the "
          "global counter exact\n", RELOADS, f.total);
  free(report);
  proc_stop_cleanly(p);
}

/* --- restarts and sharing --------------------------------------------------- */

/* The per-update timeout (3 s) cuts short the update stuck on a stalled
 * store; it is long enough that an ordinary update never meets it, even
 * under a sanitizer on a busy machine. */

static const char *counter_script_timeout(const char *store_expr,
                                          const char *run_options) {
  static char text[1024];
  snprintf(text, sizeof text,
      "local store = %s\n"
      "bot.catch(function(err) err.ctx:reply('error: ' .. tostring(err.error)) end)\n"
      "bot.hears('ping', function(ctx) ctx:reply('pong') end)\n"
      "-- Cancelled at its timeout while a store call is in flight.\n"
      "bot.hears('loop', function() while true do store:set('busy', true) end end)\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.use(function(ctx, next)   -- replies once the session is written\n"
      "  next()\n"
      "  ctx:reply('count ' .. ctx.count)\n"
      "end)\n"
      "bot.use(session{ storage = store, initial = function() return { count = 0 } end })\n"
      "bot.on('message', function(ctx)\n"
      "  ctx.session.count = ctx.session.count + 1\n"
      "  ctx.count = ctx.session.count\n"
      "end)\n"
      "run(bot, %s)\n",
      store_expr, run_options);
  return text;
}

static const char *counter_script(const char *store_expr) {
  return counter_script_timeout(store_expr,
                                "{ sink = { timeout = { milliseconds = 3000 } } }");
}

static void bump_expect(struct fakeapi *api, int64_t chat, long want) {
  char *got = ask_on(api, chat, "bump", "", 20000);
  char expected[32];
  snprintf(expected, sizeof expected, "count %ld", want);
  CHECK(strcmp(got, expected) == 0, "got '%s', expected '%s'", got, expected);
  free(got);
}

/* Sessions in a store survive a restart of tghost. Meanwhile
 * stall_store(ud) makes the store stop answering, an update waiting on it
 * is cancelled at its timeout, and resume_store(ud) lets the store answer
 * again: the answer that comes for the cancelled update is dropped and
 * freed (the sanitizer build checks), and sessions go on. */
static void survive_restart(const char *store_expr, void (*stall_store)(void *),
                            void (*resume_store)(void *), void *ud) {
  const char *script = harness_write("counter.lua", counter_script(store_expr));
  struct proc *p = proc_start(script, NULL);
  for (long i = 1; i <= 5; i++) bump_expect(harness_api(), 7, i);
  stall_store(ud);
  fakeapi_push_text(harness_api(), 9, 7, "loop");
  wait_stderr(p, "timed out after 3000 ms", 15000);
  resume_store(ud);
  bump_expect(harness_api(), 7, 6);
  proc_stop_cleanly(p);
  p = proc_start(script, NULL);
  for (long i = 7; i <= 9; i++) bump_expect(harness_api(), 7, i);
  proc_stop_cleanly(p);
}

/* Another connection holds the write lock: the worker's writes wait. */
static void sqlite_lock(void *ud) {
  sqlite3 **db = ud;
  CHECK(sqlite3_open(db_files[0], db) == SQLITE_OK &&
            sqlite3_exec(*db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK,
        "cannot lock the database: %s", sqlite3_errmsg(*db));
}

static void sqlite_unlock(void *ud) {
  sqlite3 **db = ud;
  sqlite3_exec(*db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(*db);
}

TEST(sqlite_survives_restart) {
  char *expr = format("tghost.storage.sqlite('%s')", db_path("restart.db"));
  sqlite3 *db = NULL;
  survive_restart(expr, sqlite_lock, sqlite_unlock, &db);
  free(expr);
}

static void redis_pause(void *ud) {
  redisproc_signal(ud, SIGSTOP);
}

static void redis_resume(void *ud) {
  redisproc_signal(ud, SIGCONT);
}

TEST(redis_survives_restart) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *expr = format("tghost.storage.redis('redis://127.0.0.1:%d')", r.port);
  survive_restart(expr, redis_pause, redis_resume, &r);
  free(expr);
}

/* Two tghost processes (each with its own fake Bot API) share one Redis
 * store: each sees the other's writes. */
TEST(redis_two_processes) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *expr = format("tghost.storage.redis('redis://127.0.0.1:%d', 'shared:')",
                      r.port);
  const char *script = harness_write("counter.lua", counter_script(expr));
  free(expr);
  struct fakeapi_config cfg = {TEST_TOKEN, "other_bot", 4343};
  struct fakeapi *other = fakeapi_new(harness_base(), &cfg);
  struct proc *a = proc_start(script, NULL);
  const char *args[] = {"--api-root", fakeapi_url(other), NULL};
  const char *env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
  struct proc *b = proc_start_env(script, args, env, false);
  bump_expect(harness_api(), 7, 1);
  bump_expect(harness_api(), 7, 2);
  bump_expect(other, 7, 3);
  bump_expect(harness_api(), 7, 4);
  bump_expect(other, 7, 5);
  proc_stop_cleanly(a);
  proc_stop_cleanly(b);
  fakeapi_free(other);
}

/* Redis stopped mid-run: session calls fail with a clear error, updates
 * that use no session are served; once Redis is back, sessions work again
 * without a restart. */
TEST(redis_outage) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *expr = format("tghost.storage.redis('redis://127.0.0.1:%d')", r.port);
  const char *script = harness_write("counter.lua", counter_script(expr));
  free(expr);
  struct proc *p = proc_start(script, NULL);
  bump_expect(harness_api(), 7, 1);
  redis_stop(&r);
  wait_stderr(p, "connection lost", 10000);
  for (int i = 0; i < 3; i++) {
    char *err = ask(7, "bump", "");
    char want[96];
    snprintf(want, sizeof want, "redis storage redis://127.0.0.1:%d", r.port);
    CHECK(strncmp(err, "error: ", 7) == 0 && strstr(err, want) &&
              (strstr(err, "unreachable") || strstr(err, "connection lost")),
          "a session update while Redis is down got '%s'", err);
    if (i == 0) fprintf(stderr, "while down: %s\n", err);
    free(err);
    expect(8, "ping", "pong");
  }
  redis_start(&r, NULL);   /* the same port */
  wait_stderr(p, "connected again", 10000);
  bump_expect(harness_api(), 7, 1);   /* Redis came back empty */
  bump_expect(harness_api(), 7, 2);
  proc_stop_cleanly(p);
}

/* Redis stops answering (SIGSTOP: TCP still connects) with no update
 * timeout set: the session call fails after REDIS_REPLY_TIMEOUT_MS instead
 * of holding its update forever, other updates are served, and once Redis
 * answers again sessions go on with their data. */
TEST(redis_stall) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *expr = format("tghost.storage.redis('redis://127.0.0.1:%d', 'stall:')",
                      r.port);
  const char *script = harness_write("counter.lua",
                                     counter_script_timeout(expr, "{}"));
  free(expr);
  struct proc *p = proc_start(script, NULL);
  bump_expect(harness_api(), 7, 1);
  redis_pause(&r);
  uint64_t paused = harness_now_ms();
  char *err = ask(7, "bump", "");
  uint64_t waited = harness_now_ms() - paused;
  char want[96];
  snprintf(want, sizeof want, "redis storage redis://127.0.0.1:%d: no answer "
           "within 5 s", r.port);
  CHECK(strncmp(err, "error: ", 7) == 0 && strstr(err, want),
        "a session update while Redis is stopped got '%s'", err);
  CHECK(waited >= 4500 && waited < 15000, "the error came after %llu ms",
        (unsigned long long)waited);
  fprintf(stderr, "after %llu ms: %s\n", (unsigned long long)waited, err);
  free(err);
  expect(8, "ping", "pong");
  /* While stopped, reconnecting finds a TCP connection and no answer:
   * the store stays down and says so at once. */
  err = ask(7, "bump", "");
  CHECK(strncmp(err, "error: ", 7) == 0 && strstr(err, "unreachable"),
        "a session update while the store is down got '%s'", err);
  free(err);
  redis_resume(&r);
  wait_stderr(p, "connected again", 15000);
  bump_expect(harness_api(), 7, 2);
  proc_stop_cleanly(p);
  CHECK(count_in(proc_stderr(p), "connected again") == 1,
        "the recovery logged more than once:\n%s", proc_stderr(p));
}

/* unix:// URLs reach Redis through its socket, ?db=N selects the
 * database, and a URL that is not usable is refused with what is wrong. */
TEST(redis_unix_socket) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *source = format(
      "local viaunix = tghost.storage.redis('unix://%s?db=2', 'u:')\n"
      "local viatcp = tghost.storage.redis('redis://127.0.0.1:%d/2', 'u:')\n"
      "local db0 = tghost.storage.redis('redis://127.0.0.1:%d', 'u:')\n"
      "bot.hears('write', function(ctx) viaunix:set('k', 'v1') ctx:reply('written') end)\n"
      "bot.hears('read', function(ctx)\n"
      "  ctx:reply(tostring(viatcp:get('k')) .. ' ' .. tostring(db0:get('k')))\n"
      "end)\n"
      "bot.hears('bad', function(ctx)\n"
      "  local ok, err = pcall(tghost.storage.redis, 'unix://relative.sock')\n"
      "  ctx:reply(tostring(err))\n"
      "end)\n"
      "run(bot)\n", redis_socket_path(), r.port, r.port);
  const char *script = harness_write("unix.lua", source);
  free(source);
  struct proc *p = proc_start(script, NULL);
  expect(7, "write", "written");
  expect(7, "read", "v1 nil");
  char *err = ask(7, "bad", "");
  CHECK(strstr(err, "tghost.storage.redis: expected an absolute socket path"),
        "a relative socket path got '%s'", err);
  free(err);
  proc_stop_cleanly(p);
}

/* Passwords percent-encoded in the URL, an ACL user, ?db=N over TCP: the
 * store authenticates and selects as told; a wrong password fails calls
 * with Redis's reason, and no password appears anywhere. */
TEST(redis_auth_and_db) {
  static const char *const extra[] = {"--requirepass", "p@ss:w/rd", "--user",
                                      "alice", "on", ">s3cr%t", "~*", "&*",
                                      "+@all", NULL};
  static struct redisproc r;
  redis_start(&r, extra);
  char *source = format(
      "local a = tghost.storage.redis('redis://:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d?db=3', 'x:')\n"
      "local b = tghost.storage.redis('redis://alice:s3cr%%25t@127.0.0.1:%d/3', 'x:')\n"
      "local bad = tghost.storage.redis('redis://alice:wr%%40ng@127.0.0.1:%d', 'x:')\n"
      "bot.hears('go', function(ctx) a:set('k', 'v') ctx:reply(tostring(b:get('k'))) end)\n"
      "bot.hears('bad', function(ctx)\n"
      "  local ok, err = pcall(bad.get, 'k')\n"
      "  ctx:reply(tostring(err))\n"
      "end)\n"
      "run(bot)\n", r.port, r.port, r.port);
  const char *script = harness_write("auth.lua", source);
  free(source);
  struct proc *p = proc_start(script, NULL);
  expect(7, "go", "v");
  char *err = ask(7, "bad", "");
  CHECK(strstr(err, "AUTH failed (WRONGPASS"), "a wrong password got '%s'",
        err);
  fprintf(stderr, "wrong password: %s\n", err);
  free(err);
  /* In database 3, under the prefix; not in database 0. */
  redisContext *c = redisproc_connect(&r);
  redisReply *rep = redisCommand(c, "AUTH %s", "p@ss:w/rd");
  freeReplyObject(rep);
  rep = redisCommand(c, "GET x:k");
  CHECK(rep && rep->type == REDIS_REPLY_NIL, "x:k is in database 0");
  freeReplyObject(rep);
  rep = redisCommand(c, "SELECT 3");
  freeReplyObject(rep);
  rep = redisCommand(c, "GET x:k");
  CHECK(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "\"v\"") == 0,
        "x:k in database 3: %s", rep && rep->str ? rep->str : "(none)");
  freeReplyObject(rep);
  redisFree(c);
  proc_stop_cleanly(p);
  const char *secrets[] = {"p@ss", "s3cr", "wr@ng", "%40", "%25", NULL};
  for (int i = 0; secrets[i]; i++)
    CHECK(!strstr(proc_stderr(p), secrets[i]) &&
              !strstr(proc_stdout(p), secrets[i]),
          "the output holds %s:\n%s", secrets[i], proc_stderr(p));
}

/* The connection on its own, as a stream source or a job store would use
 * it: setup commands run on every new connection before anything else,
 * watchers hear it come up and go down, a blocking command may take
 * longer than the stall timeout while a plain one may not, and commands
 * given while it is down fail from the loop. */
struct conn_log {
  int ups, downs;
  int replies;
  char last[256];
  bool called_inside;
  bool in_call;
};

static void conn_up(struct redisconn *c, void *ud) {
  ((struct conn_log *)ud)->ups++;
}

static void conn_down(struct redisconn *c, const char *reason, void *ud) {
  ((struct conn_log *)ud)->downs++;
}

static void conn_reply(struct redisconn *c, const redisReply *rep,
                       const char *error, void *ud) {
  struct conn_log *l = ud;
  if (l->in_call) l->called_inside = true;
  l->replies++;
  if (error) snprintf(l->last, sizeof l->last, "error: %s", error);
  else if (!rep) snprintf(l->last, sizeof l->last, "closed");
  else if (rep->type == REDIS_REPLY_NIL) snprintf(l->last, sizeof l->last, "nil");
  else if (rep->type == REDIS_REPLY_INTEGER)
    snprintf(l->last, sizeof l->last, "%lld", rep->integer);
  else snprintf(l->last, sizeof l->last, "%s", rep->str ? rep->str : "?");
}

struct conn_wait {
  struct conn_log log;
  int want;
};

static bool replies_reach(void *ud) {
  struct conn_wait *w = ud;
  return w->log.replies >= w->want;
}

static void command(struct redisconn *c, struct conn_wait *w, int block_ms,
                    int argc, const char **argv) {
  w->log.in_call = true;
  if (block_ms) redisconn_blocking_command(c, block_ms, argc, argv, NULL,
                                           conn_reply, &w->log);
  else redisconn_command(c, argc, argv, NULL, conn_reply, &w->log);
  w->log.in_call = false;
  CHECK(!w->log.called_inside, "a reply came inside the call");
  w->want = w->log.replies + 1;
  CHECK(run_until(replies_reach, w, 10000), "no reply to %s", argv[0]);
}

static bool ups_reach(void *ud) {
  struct conn_wait *w = ud;
  return w->log.ups >= w->want;
}

TEST(redis_connection) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *url = format("redis://127.0.0.1:%d/2", r.port);
  struct buf err = BUF_INIT;
  struct redisconn *c = redisconn_new(harness_base(), url, "test connection",
                                      &err);
  CHECK(c, "%s", err.data);
  static struct conn_wait w;
  redisconn_set_reply_timeout(c, 300);
  const char *setname[] = {"CLIENT", "SETNAME", "tghost-test"};
  redisconn_add_setup(c, 3, setname, NULL, NULL);
  redisconn_watch(c, conn_up, conn_down, &w.log);
  w.want = 1;
  CHECK(run_until(ups_reach, &w, 5000), "the connection did not come up");
  const char *getname[] = {"CLIENT", "GETNAME"};
  command(c, &w, 0, 2, getname);
  CHECK(strcmp(w.log.last, "tghost-test") == 0, "CLIENT GETNAME: %s",
        w.log.last);
  const char *db[] = {"CLIENT", "INFO"};
  command(c, &w, 0, 2, db);
  CHECK(strstr(w.log.last, " db=2 "), "not in database 2: %s", w.log.last);
  /* BLPOP for 1 s on a connection that counts 300 ms as a stall. */
  const char *blpop[] = {"BLPOP", "nothing", "1"};
  uint64_t t0 = harness_now_ms();
  command(c, &w, 1000, 3, blpop);
  CHECK(strcmp(w.log.last, "nil") == 0 && harness_now_ms() - t0 >= 900,
        "a blocking BLPOP got '%s' after %llu ms", w.log.last,
        (unsigned long long)(harness_now_ms() - t0));
  CHECK(w.log.downs == 0, "the blocking command counted as a stall");
  /* The same as a plain command: a stall. */
  command(c, &w, 0, 3, blpop);
  CHECK(strstr(w.log.last, "test connection redis://127.0.0.1:") &&
            strstr(w.log.last, "no answer within 300 ms (connection dropped)"),
        "a plain BLPOP got '%s'", w.log.last);
  CHECK(w.log.downs == 1, "%d downs", w.log.downs);
  /* Down until the new connection's PING: refused from the loop. */
  const char *ping[] = {"PING"};
  command(c, &w, 0, 1, ping);
  if (strstr(w.log.last, "error"))
    CHECK(strstr(w.log.last, "is unreachable"), "while down: %s", w.log.last);
  w.want = 2;
  CHECK(run_until(ups_reach, &w, 5000), "the connection did not come back");
  command(c, &w, 0, 2, getname);
  CHECK(strcmp(w.log.last, "tghost-test") == 0,
        "the setup command did not run on the new connection: %s", w.log.last);
  /* Redis stopped: a watcher hears it, commands fail with the reason. */
  redis_stop(&r);
  command(c, &w, 0, 1, ping);
  CHECK(strstr(w.log.last, "error: "), "with Redis stopped: %s", w.log.last);
  CHECK(w.log.downs == 2, "%d downs", w.log.downs);
  command(c, &w, 0, 1, ping);
  CHECK(strstr(w.log.last, "is unreachable"), "with Redis stopped: %s",
        w.log.last);
  redis_start(&r, NULL);
  w.want = 3;
  CHECK(run_until(ups_reach, &w, 10000), "no reconnection");
  command(c, &w, 0, 1, ping);
  CHECK(strcmp(w.log.last, "PONG") == 0, "after the restart: %s", w.log.last);
  redisconn_free(c);
  buf_free(&err);
  free(url);
}

/* --- the conformance suite, once per backend ---------------------------------- */

#ifndef TGHOST_SOURCE_DIR
#error "TGHOST_SOURCE_DIR must name the source tree"
#endif

/* tests/lua/suites/storage_backend.lua: every backend must pass it. It
 * asks for what only the test can do ("SUITE-ASK stop-backend" on its
 * stderr) and waits for <tmpdir>/<what>.done; act(what, ud) does it. */
struct ask_wait {
  struct proc *p;
  size_t handled;
};

/* The line of the n-th (from 0) complete "SUITE-ASK what" line, or
 * NULL. */
static char *nth_ask(const char *text, size_t n) {
  const char *q = text;
  for (size_t i = 0;; i++) {
    q = strstr(q, "SUITE-ASK ");
    if (!q) return NULL;
    q += strlen("SUITE-ASK ");
    const char *end = strchr(q, '\n');
    if (!end) return NULL;
    if (i == n) return xstrndup(q, (size_t)(end - q));
  }
}

static bool asked_or_exited(void *ud) {
  struct ask_wait *w = ud;
  char *what = nth_ask(proc_stderr(w->p), w->handled);
  free(what);
  return what != NULL || proc_exited(w->p);
}

static void run_suite(const char *kind, const char *target,
                      void (*act)(const char *what, void *ud), void *ud) {
  char *kind_env = format("TGHOST_STORE_KIND=%s", kind);
  char *target_env = format("TGHOST_STORE_TARGET=%s", target ? target : "");
  char *acks_env = format("TGHOST_SUITE_ACKS=%s", harness_tmpdir());
  const char *env[] = {kind_env, target_env, acks_env, NULL};
  const char *args[] = {"--cpu-budget", "5", NULL};
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start_env(
      TGHOST_SOURCE_DIR "/tests/lua/suites/storage_backend.lua", args, env,
      false);
  struct ask_wait w = {p, 0};
  for (;;) {
    CHECK(run_until(asked_or_exited, &w, 90000), "the %s suite hangs", kind);
    char *what = nth_ask(proc_stderr(p), w.handled);
    if (!what) break;
    CHECK(act, "the suite asked for %s, which this backend cannot do", what);
    act(what, ud);
    char *done = format("%s.done", what);
    harness_write(done, "");
    free(done);
    free(what);
    w.handled++;
  }
  CHECK(proc_wait(p, 30000), "the %s suite did not exit", kind);
  CHECK(proc_status(p) == 0 && strstr(proc_stdout(p), " tests passed"),
        "the %s backend failed the conformance suite (status %d)", kind,
        proc_status(p));
  proc_check_clean(p);
  fprintf(stderr, "%s suite in %.1f s:\n%s", kind,
          (harness_now_ms() - start) / 1000.0, proc_stdout(p));
  free(kind_env);
  free(target_env);
  free(acks_env);
}

TEST(conformance_memory) { run_suite("memory", NULL, NULL, NULL); }

/* The Lua-written backend lives in the suite itself, which checks its
 * table directly. */
TEST(conformance_lua) { run_suite("lua", NULL, NULL, NULL); }

/* What the suite leaves, read from the backend itself: each namespace
 * holds its own keys and nothing else, and the ttl reached the backend. */
struct raw_row {
  const char *ns, *key, *value;
};
static const struct raw_row raw_rows[] = {
    {"a", "shared", "\"from a\""}, {"a", "only_a", "1"},
    {"a", "ttl_kept", "\"long\""}, {"b", "shared", "\"from b\""},
    {"b", "only_b", "2"},
};
enum { RAW_ROWS = sizeof raw_rows / sizeof *raw_rows };

static const char *raw_expected(const char *ns, const char *key) {
  for (int i = 0; i < RAW_ROWS; i++)
    if (strcmp(raw_rows[i].ns, ns) == 0 && strcmp(raw_rows[i].key, key) == 0)
      return raw_rows[i].value;
  return NULL;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Tables conf_a and conf_b of the file, read with SQLite itself. */
static void sqlite_raw_check(const char *path) {
  sqlite3 *db = NULL;
  CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
        "cannot open %s", path);
  int seen = 0;
  for (int t = 0; t < 2; t++) {
    const char *ns = t ? "b" : "a";
    char *sql = format("SELECT key, value, expires FROM conf_%s", ns);
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s",
          sql, sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *key = (const char *)sqlite3_column_text(st, 0);
      const char *value = (const char *)sqlite3_column_text(st, 1);
      const char *want = raw_expected(ns, key);
      CHECK(want, "table conf_%s holds a key it should not: %s", ns, key);
      CHECK(strcmp(value, want) == 0, "conf_%s.%s = %s, expected %s", ns, key,
            value, want);
      bool has_expiry = sqlite3_column_type(st, 2) != SQLITE_NULL;
      if (strcmp(key, "ttl_kept") == 0) {
        int64_t left = sqlite3_column_int64(st, 2) - wall_ms();
        CHECK(has_expiry && left > 3500000 && left <= 3600000,
              "ttl_kept expires in %lld ms", (long long)left);
      } else {
        CHECK(!has_expiry, "conf_%s.%s has an expiry", ns, key);
      }
      seen++;
    }
    sqlite3_finalize(st);
    free(sql);
  }
  sqlite3_close(db);
  CHECK(seen == RAW_ROWS, "the tables hold %d rows, expected %d", seen,
        RAW_ROWS);
}

TEST(conformance_sqlite) {
  const char *path = db_path("conformance.db");
  run_suite("sqlite", path, NULL, NULL);
  sqlite_raw_check(path);
}

static void redis_act(const char *what, void *ud) {
  struct redisproc *r = ud;
  if (strcmp(what, "stop-backend") == 0) {
    redis_stop(r);
  } else if (strcmp(what, "start-backend") == 0) {
    redis_start(r, NULL);   /* the same port, empty */
  } else if (strcmp(what, "flush-scripts") == 0) {
    redisContext *c = redisproc_connect(r);
    redisReply *rep = redisCommand(c, "SCRIPT FLUSH");
    CHECK(rep && rep->type == REDIS_REPLY_STATUS, "SCRIPT FLUSH failed");
    freeReplyObject(rep);
    redisFree(c);
  } else {
    CHECK(false, "the suite asked for %s", what);
  }
}

/* Every key in Redis, with redis-server's own commands. */
static void redis_raw_check(const struct redisproc *r) {
  redisContext *c = redisproc_connect(r);
  redisReply *keys = redisCommand(c, "KEYS *");
  CHECK(keys && keys->type == REDIS_REPLY_ARRAY, "KEYS failed");
  CHECK(keys->elements == RAW_ROWS, "Redis holds %zu keys, expected %d",
        keys->elements, RAW_ROWS);
  for (size_t i = 0; i < keys->elements; i++) {
    const char *key = keys->element[i]->str;
    const char *want = NULL, *name = NULL;
    if (strncmp(key, "conf:a:", 7) == 0) want = raw_expected("a", name = key + 7);
    else if (strncmp(key, "conf:b:", 7) == 0) want = raw_expected("b", name = key + 7);
    CHECK(want, "Redis holds a key the suite did not write there: %s", key);
    redisReply *v = redisCommand(c, "GET %s", key);
    CHECK(v && v->type == REDIS_REPLY_STRING && strcmp(v->str, want) == 0,
          "GET %s = %s, expected %s", key, v && v->str ? v->str : "(none)",
          want);
    freeReplyObject(v);
    redisReply *ttl = redisCommand(c, "PTTL %s", key);
    CHECK(ttl && ttl->type == REDIS_REPLY_INTEGER, "PTTL %s failed", key);
    if (strcmp(name, "ttl_kept") == 0)
      CHECK(ttl->integer > 3500000 && ttl->integer <= 3600000,
            "PTTL %s = %lld", key, ttl->integer);
    else
      CHECK(ttl->integer == -1, "%s has a ttl (%lld ms)", key, ttl->integer);
    freeReplyObject(ttl);
  }
  freeReplyObject(keys);
  redisFree(c);
}

/* Redis stops and starts again mid-run (the suite's outage test), and
 * forgets its scripts. */
TEST(conformance_redis) {
  static struct redisproc r;
  redis_start(&r, NULL);
  char *url = format("redis://127.0.0.1:%d", r.port);
  run_suite("redis", url, redis_act, &r);
  redis_raw_check(&r);
  free(url);
}

/* --- the example ------------------------------------------------------------ */

static void push_vote(int n) {
  char body[1024];
  snprintf(body, sizeof body,
           "\"callback_query\":{\"id\":\"cq-%d\",\"from\":{\"id\":42,"
           "\"is_bot\":false,\"first_name\":\"User\"},\"message\":{"
           "\"message_id\":1,\"chat\":{\"id\":42,\"type\":\"private\"},"
           "\"date\":1717000000,\"text\":\"Is Lua fun?\"},"
           "\"chat_instance\":\"77\",\"data\":\"vote:yes\"}", n);
  fakeapi_push_update(harness_api(), body);
}

static bool have_edits(void *ud) {
  return fakeapi_count_method(harness_api(), "editMessageReplyMarkup") >=
         *(size_t *)ud;
}

/* The reply markup of the last editMessageReplyMarkup (malloc'd). */
static char *last_markup(void) {
  struct fakeapi *api = harness_api();
  for (size_t i = fakeapi_call_count(api); i-- > 0;) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "editMessageReplyMarkup") == 0)
      return fake_call_raw(c, "reply_markup");
  }
  return NULL;
}

/* examples/commands.lua keeps its votes in tghost.storage.memory: a hot
 * reload (SIGHUP) keeps the count. */
/* Redis on another machine (docs/guide/sessions.md, "Redis across machines"): the
 * password comes in the URL and tghost sends AUTH before anything else,
 * for the default user (redis://:password@host:port/0) or an ACL user
 * (redis://user:password@host:port/0, Redis 6+), whose key patterns Redis
 * then enforces. Without the password, or with a wrong one, calls fail;
 * no password appears in tghost's output. */
TEST(redis_auth) {
  static const char *const args[] = {"--requirepass", "def-PW-1",
                                     "--user", "bot", "on", ">bot-PW-2",
                                     "~b:*", "+@all", NULL};
  static struct redisproc r;
  redis_start(&r, args);
  char *source = format(
      "local default = tghost.storage.redis('redis://:def-PW-1@127.0.0.1:%d/0', 'd:')\n"
      "local acl = tghost.storage.redis('redis://bot:bot-PW-2@127.0.0.1:%d/0', 'b:')\n"
      "local wrong = tghost.storage.redis('redis://:nope-PW-3@127.0.0.1:%d/1', 'd:')\n"
      "local outside = tghost.storage.redis('redis://bot:bot-PW-2@127.0.0.1:%d/0', 'x:')\n"
      "local none = tghost.storage.redis('redis://127.0.0.1:%d/2', 'd:')\n"
      "bot.hears('write', function(ctx)\n"
      "  default:set('k', 'v1') acl:set('k', 'v2') ctx:reply('written')\n"
      "end)\n"
      "bot.hears('read', function(ctx)\n"
      "  ctx:reply(tostring(default:get('k')) .. ' ' .. tostring(acl:get('k')))\n"
      "end)\n"
      "for _, case in ipairs({ { 'wrong', wrong }, { 'outside', outside },\n"
      "                        { 'none', none } }) do\n"
      "  bot.hears(case[1], function(ctx)\n"
      "    local ok, err = pcall(case[2].set, case[2], 'k', 'v')\n"
      "    ctx:reply(case[1] .. ': ' .. tostring(ok) .. ' ' .. tostring(err))\n"
      "  end)\n"
      "end\n"
      "run(bot)\n", r.port, r.port, r.port, r.port, r.port);
  const char *script = harness_write("auth.lua", source);
  free(source);
  struct proc *p = proc_start(script, NULL);
  expect(7, "write", "written");
  expect(7, "read", "v1 v2");
  /* Redis refuses the AUTH, then the call (WRONGPASS, or NOAUTH). */
  char *wrong = ask(7, "wrong", "wrong: ");
  CHECK(strstr(wrong, "wrong: false") &&
            (strstr(wrong, "WRONGPASS") || strstr(wrong, "NOAUTH")),
        "a wrong password: '%s'", wrong);
  free(wrong);
  char *outside = ask(7, "outside", "outside: ");
  CHECK(strstr(outside, "outside: false") && strstr(outside, "NOPERM"),
        "a key outside the ACL user's pattern: '%s'", outside);
  free(outside);
  char *none = ask(7, "none", "none: ");
  CHECK(strstr(none, "none: false") && strstr(none, "NOAUTH"),
        "no password: '%s'", none);
  free(none);
  proc_stop_cleanly(p);
  static const char *const secrets[] = {"def-PW-1", "bot-PW-2", "nope-PW-3"};
  for (int i = 0; i < 3; i++)
    CHECK(!strstr(proc_stdout(p), secrets[i]) &&
              !strstr(proc_stderr(p), secrets[i]),
          "the password %s appears in tghost's output", secrets[i]);
}

TEST(example_votes_survive_reload) {
  struct proc *p = proc_start(TGHOST_SOURCE_DIR "/examples/commands.lua", NULL);
  size_t want = 1;
  push_vote(1);
  CHECK(run_until(have_edits, &want, 10000), "no answer to the first vote");
  char *markup = last_markup();
  CHECK(markup && strstr(markup, "\"👍 1\""), "after one vote: %s", markup);
  free(markup);
  proc_kill(p, SIGHUP);
  wait_stderr(p, "generation 2 loaded", 10000);
  push_vote(2);
  want = 2;
  CHECK(run_until(have_edits, &want, 10000), "no answer to the second vote");
  markup = last_markup();
  CHECK(markup && strstr(markup, "\"👍 2\""), "after a reload and a second "
        "vote: %s", markup);
  free(markup);
  proc_stop_cleanly(p);
}

/* --- cancelled and failing updates ---------------------------------------- */

/* A timed-out update writes nothing; a failing one still writes (as in
 * grammY); a value storage cannot keep fails its update with the key and
 * the path. */
TEST(cancel_and_errors) {
  const char *script = harness_write("cancel.lua",
      "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
      "bot.use(session{ initial = function() return { n = 0 } end })\n"
      "bot.on('message', function(ctx)\n"
      "  local t = ctx.msg.text\n"
      "  if t == 'show' then return ctx:reply('n=' .. ctx.session.n) end\n"
      "  if t == 'slow' then ctx.session.n = 99; tghost.sleep(30) end\n"
      "  if t == 'fail' then ctx.session.n = ctx.session.n + 10; error('on purpose') end\n"
      "  if t == 'bad' then ctx.session.items = { 1, 2, { cb = print } } return end\n"
      "  ctx.session.n = ctx.session.n + 1\n"
      "end)\n"
      "run(bot, { sink = { timeout = { milliseconds = 3000 } } })\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(harness_api(), 7, 7, "bump");
  expect(7, "show", "n=1");
  fakeapi_push_text(harness_api(), 7, 7, "slow");
  wait_stderr(p, "timed out after 3000 ms", 15000);
  expect(7, "show", "n=1");
  char *caught = ask(7, "fail", "caught: ");
  CHECK(strstr(caught, "on purpose"), "%s", caught);
  free(caught);
  expect(7, "show", "n=11");
  caught = ask(7, "bad", "caught: ");
  CHECK(strstr(caught, "session \"7\": value.items[3].cb is a function"),
        "the error does not name the key and path: %s", caught);
  free(caught);
  expect(7, "show", "n=11");
  proc_stop_cleanly(p);
}

/* A storage never hands out the value it keeps (issue 25 item 5): a
 * session that a handler made unstorable (a function in it) is refused,
 * and the script's own storage, whose read gives its table itself, still
 * holds what it held, so the chat's next update works. */
TEST(refused_write_leaves_store) {
  const char *script = harness_write("poison.lua",
      "local store = { data = {} }\n"
      "function store:read(key) return self.data[key] end\n"
      "function store:write(key, value) self.data[key] = value end\n"
      "function store:delete(key) self.data[key] = nil end\n"
      "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.use(session{ storage = store, initial = function() return { n = 0 } end })\n"
      "bot.command('bad', function(ctx) ctx.session.f = print end)\n"
      "bot.command('inc', function(ctx)\n"
      "  ctx.session.n = ctx.session.n + 1\n"
      "  ctx:reply('n=' .. ctx.session.n)\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  expect(8, "/inc", "n=1");
  char *caught = ask(8, "/bad", "caught: ");
  CHECK(strstr(caught, "session \"8\": value.f is a function"), "%s", caught);
  free(caught);
  expect(8, "/inc", "n=2");
  expect(8, "/inc", "n=3");
  proc_stop_cleanly(p);
}

/* --- SQLite writes and the loop -------------------------------------------- */

/* The load is pushed at a quarter of what tghost handles at the moment
 * (measured first, in the same run): replies then measure how responsive
 * the loop is, not a backlog, on an idle machine as on one shared with
 * other builds. */
#define LAT_UTILIZATION 0.25
#define LAT_RATE_MIN 0.5     /* updates per ms */
#define LAT_RATE_MAX 4.0

enum {
  LAT_WRITES = 10000,
  LAT_CYCLES = 10,
  LAT_PING_EVERY_MS = 2,
  LAT_CALIBRATION = 500,
  LAT_BASELINE_BLOCK_MS = 100,   /* memory blocks last this long, idle half */
};

/* What the load updates do: nothing, write their session to a memory
 * store, or write it to SQLite. */
enum lat_phase { LAT_IDLE, LAT_MEMORY, LAT_SQLITE, LAT_PHASES };
static const char *const lat_text[] = {"idle", "memory", "sqlite"};
static const int64_t lat_chat_base[] = {200000, 300000, 100000};

/* The load generator: a 1 ms timer pushes the block's updates at the
 * run's rate and a ping every LAT_PING_EVERY_MS. */
struct latency_run {
  struct fakeapi *api;
  int pid;                    /* tghost's: its loop thread's scheduling */
  uint64_t block_us[3], run_delay_ns[3], cpu_ns[3];
  double rate;                /* updates per ms */
  enum lat_phase phase;
  int block_quota, block_pushed;
  uint64_t block_start_ms, last_ping_ms;
  int pushed[LAT_PHASES];
  uint64_t *push_us;          /* by ping number - 1 */
  enum lat_phase *ping_phase;
  int pings, cap;
};

static void lat_tick(evutil_socket_t fd, short what, void *arg) {
  struct latency_run *r = arg;
  uint64_t now = harness_now_ms();
  long due = (long)((double)(now - r->block_start_ms + 1) * r->rate) -
             r->block_pushed;
  if (due > r->block_quota - r->block_pushed)
    due = r->block_quota - r->block_pushed;
  for (long i = 0; i < due; i++) {
    int64_t chat = lat_chat_base[r->phase] + r->pushed[r->phase]++;
    fakeapi_push_text(r->api, chat, 7, lat_text[r->phase]);
    r->block_pushed++;
  }
  if (now - r->last_ping_ms >= LAT_PING_EVERY_MS && r->pings < r->cap) {
    char text[32];
    snprintf(text, sizeof text, "ping %d", r->pings + 1);
    r->push_us[r->pings] = now_us();
    r->ping_phase[r->pings] = r->phase;
    r->pings++;
    fakeapi_push_text(r->api, 1, 7, text);
    r->last_ping_ms = now;
  }
}

static bool block_pushed(void *ud) {
  struct latency_run *r = ud;
  return r->block_pushed >= r->block_quota;
}

/* The loop thread's CPU time and time spent waiting for a CPU, in ns. */
static void loop_schedstat(int pid, uint64_t *cpu, uint64_t *wait) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  FILE *f = fopen(path, "r");
  unsigned long long c = 0, w = 0;
  if (f) {
    if (fscanf(f, "%llu %llu", &c, &w) != 2) c = w = 0;
    fclose(f);
  }
  *cpu = c;
  *wait = w;
}

/* A block of quota updates, or, with quota 0, as many as fit in
 * LAT_BASELINE_BLOCK_MS (half that for idle blocks). */
static void run_block(struct latency_run *r, enum lat_phase phase, int quota,
                      int *syncs) {
  uint64_t cpu0, wait0, t0 = now_us();
  loop_schedstat(r->pid, &cpu0, &wait0);
  if (quota == 0)
    quota = (int)(r->rate * LAT_BASELINE_BLOCK_MS / (phase == LAT_IDLE ? 2 : 1));
  r->phase = phase;
  r->block_quota = quota;
  r->block_pushed = 0;
  r->block_start_ms = harness_now_ms();
  struct event *tick = event_new(harness_base(), -1, EV_PERSIST, lat_tick, r);
  struct timeval ms = {0, 1000};
  evtimer_add(tick, &ms);
  CHECK(run_until(block_pushed, r, 60000), "the load generator stalled");
  event_free(tick);
  /* A barrier: the next block starts once this one's updates are in, so
   * a backlog (a blocked loop) shows in the block that caused it. */
  char text[32], want[32];
  snprintf(text, sizeof text, "sync %d", ++*syncs);
  snprintf(want, sizeof want, "synced %d", *syncs);
  char *got = ask_on(r->api, 3, text, want, 120000);
  free(got);
  uint64_t cpu1, wait1;
  loop_schedstat(r->pid, &cpu1, &wait1);
  r->block_us[phase] += now_us() - t0;
  r->cpu_ns[phase] += cpu1 - cpu0;
  r->run_delay_ns[phase] += wait1 - wait0;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double p99_ms(uint64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, compare_u64);
  int i = (int)(0.99 * (n - 1) + 0.5);
  return v[i] / 1000.0;
}

struct latency_result {
  double p99[LAT_PHASES];
  double rate, capacity, seconds;
  int n[LAT_PHASES];
};

/* One measurement (see test_sqlite_latency); attempt k writes sessions of
 * chats of its own, so each one writes LAT_WRITES new sessions. */
static void measure_latency(struct proc *p, int attempt,
                            struct latency_result *out) {
  struct fakeapi *api = harness_api();
  static int syncs;
  struct latency_run r = {0};
  r.api = api;
  r.pid = proc_pid(p);
  r.cap = 16384;
  r.push_us = xcalloc((size_t)r.cap, sizeof *r.push_us);
  r.ping_phase = xcalloc((size_t)r.cap, sizeof *r.ping_phase);
  r.pushed[LAT_SQLITE] = attempt * 1000000;
  r.pushed[LAT_MEMORY] = attempt * 1000000;

  /* Capacity: how fast a burst of memory-session updates is handled. */
  uint64_t cal_start = now_us();
  for (int i = 0; i < LAT_CALIBRATION; i++)
    fakeapi_push_text(api, 400000 + attempt * 1000000 + i, 7, "memory");
  char sync[32], synced[32];
  snprintf(sync, sizeof sync, "sync %d", ++syncs);
  snprintf(synced, sizeof synced, "synced %d", syncs);
  free(ask_on(api, 3, sync, synced, 120000));
  out->capacity = LAT_CALIBRATION * 1000.0 / (double)(now_us() - cal_start);
  r.rate = out->capacity * LAT_UTILIZATION;
  if (r.rate < LAT_RATE_MIN) r.rate = LAT_RATE_MIN;
  if (r.rate > LAT_RATE_MAX) r.rate = LAT_RATE_MAX;
  out->rate = r.rate;

  size_t calls_before = fakeapi_call_count(api);
  uint64_t start = harness_now_ms();
  int block = LAT_WRITES / LAT_CYCLES / 2;
  /* Each cycle: memory, SQLite, idle, SQLite, memory. */
  for (int c = 0; c < LAT_CYCLES; c++) {
    run_block(&r, LAT_MEMORY, 0, &syncs);
    run_block(&r, LAT_SQLITE, block, &syncs);
    run_block(&r, LAT_IDLE, 0, &syncs);
    run_block(&r, LAT_SQLITE, block, &syncs);
    run_block(&r, LAT_MEMORY, 0, &syncs);
  }
  out->seconds = (harness_now_ms() - start) / 1000.0;
  char query[32];
  snprintf(query, sizeof query, "count %d", 100000 + attempt * 1000000);
  char *count = ask_on(api, 2, query, "sessions ", 60000);
  CHECK(strcmp(count, "sessions 10000") == 0, "SQLite holds %s of this "
        "attempt, expected sessions 10000", count);
  free(count);

  uint64_t *lat[LAT_PHASES];
  int answered = 0;
  for (int k = 0; k < LAT_PHASES; k++) {
    lat[k] = xcalloc((size_t)r.pings, sizeof *lat[k]);
    out->n[k] = 0;
  }
  for (size_t i = calls_before; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *text = fake_call_string(c, "text");
    int k;
    if (text && sscanf(text, "pong %d", &k) == 1 && k >= 1 && k <= r.pings) {
      enum lat_phase ph = r.ping_phase[k - 1];
      lat[ph][out->n[ph]++] = c->received_us - r.push_us[k - 1];
      answered++;
    }
    free(text);
  }
  CHECK(answered == r.pings, "%d of %d pings answered", answered, r.pings);
  for (int k = 0; k < LAT_PHASES; k++) {
    CHECK(out->n[k] >= (k == LAT_IDLE ? 50 : 200), "too few pings while %s: "
          "%d", lat_text[k], out->n[k]);
    out->p99[k] = p99_ms(lat[k], out->n[k]);
    free(lat[k]);
  }
  fprintf(stderr, "sqlite latency, attempt %d: p99 of session-free replies "
          "%.2f ms while %d sessions were written to SQLite, %.2f ms while "
          "sessions were written to memory instead, %.2f ms while the updates "
          "did nothing (load %.2f updates/ms, a quarter of the %.1f/ms "
          "measured; %d, %d and %d pings; %.1f s)\n", attempt + 1,
          out->p99[LAT_SQLITE], LAT_WRITES, out->p99[LAT_MEMORY],
          out->p99[LAT_IDLE], r.rate, out->capacity, out->n[LAT_SQLITE],
          out->n[LAT_MEMORY], out->n[LAT_IDLE], out->seconds);
  for (int k = 0; k < LAT_PHASES; k++)
    fprintf(stderr, "  %s blocks: %.1f s; tghost's loop thread ran %.0f%% of "
            "the time and waited for a CPU %.0f%% of it\n", lat_text[k],
            r.block_us[k] / 1e6, r.cpu_ns[k] / 10.0 / (double)r.block_us[k],
            r.run_delay_ns[k] / 10.0 / (double)r.block_us[k]);
  free(r.push_us);
  free(r.ping_phase);
}

/* Updates that use no session ("ping") are timed from push to reply while
 * 10,000 sessions are written to SQLite, and, as the baseline, while
 * sessions are written to a memory store instead: the same updates, the
 * same Lua, the same encoding, everything but SQLite and its disk. Blocks
 * of each kind alternate, so both see the same machine load, with a
 * barrier between blocks so a backlog shows where it was made; the load is
 * a quarter of the capacity measured just before. A third kind of block,
 * updates that do nothing, is measured for the record. The p99 with SQLite
 * must stay within 2x of the baseline's: SQLite's disk I/O never blocks
 * the loop.
 *
 * Machine noise (other builds on a 2-core box) only ever adds latency,
 * and can land on one kind of block more than the other; a loop that
 * SQLite blocks is slow in every measurement. So the test measures up to
 * three times and passes on the first measurement within the bound. */
TEST_SERIAL(sqlite_latency) {
  char *script_text = format(
      "local function writer(store)\n"
      "  local c = tghost.Composer()\n"
      "  c.use(session{ storage = store,\n"
      "    initial = function() return { n = 0, note = string.rep('x', 4000) } end })\n"
      "  c.on('message', function(ctx) ctx.session.n = ctx.session.n + 1 end)\n"
      "  return c\n"
      "end\n"
      "local db = tghost.storage.sqlite('%s', 'sessions')\n"
      "local to_sqlite = writer(db)\n"
      "local to_memory = writer(tghost.storage.memory('latency'))\n"
      "bot.hears('^ping (%%d+)$', function(ctx) ctx:reply('pong ' .. ctx.match[1]) end)\n"
      "bot.hears('^sync (%%d+)$', function(ctx) ctx:reply('synced ' .. ctx.match[1]) end)\n"
      "bot.hears('^count (%%d+)$', function(ctx)\n"
      "  local n, first = 0, tonumber(ctx.match[1])\n"
      "  for c = first, first + %d - 1 do\n"
      "    if db:get(c) then n = n + 1 end\n"
      "  end\n"
      "  ctx:reply('sessions ' .. n)\n"
      "end)\n"
      "bot.filter(function(ctx) return ctx.msg.text == 'sqlite' end, to_sqlite)\n"
      "bot.filter(function(ctx) return ctx.msg.text == 'memory' end, to_memory)\n"
      "run(bot)\n",
      db_path("latency.db"), LAT_WRITES);
  const char *script = harness_write("latency.lua", script_text);
  free(script_text);
  struct proc *p = proc_start(script, NULL);
  expect(1, "ping 0", "pong 0");   /* started and connected */
  struct latency_result res[3];
  int attempt;
  for (attempt = 0; attempt < 3; attempt++) {
    measure_latency(p, attempt, &res[attempt]);
    if (res[attempt].p99[LAT_SQLITE] <= 2 * res[attempt].p99[LAT_MEMORY]) break;
  }
  CHECK(attempt < 3, "in each of 3 measurements the p99 with SQLite writes "
        "was over 2x the p99 without them: %.2f vs %.2f, %.2f vs %.2f, %.2f "
        "vs %.2f ms", res[0].p99[LAT_SQLITE], res[0].p99[LAT_MEMORY],
        res[1].p99[LAT_SQLITE], res[1].p99[LAT_MEMORY],
        res[2].p99[LAT_SQLITE], res[2].p99[LAT_MEMORY]);
  proc_stop_cleanly(p);
}
