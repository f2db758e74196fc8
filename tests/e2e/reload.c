/* Hot reload end to end: tghost against the fake Bot API while the test
 * rewrites the script, its modules, or sends SIGHUP. */
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* --- helpers ------------------------------------------------------------ */

struct log_wait {
  struct proc *p;
  const char *needle;
  size_t want;
  void (*tick)(void *ud);   /* runs on every loop turn (feeds updates) */
  void *tick_ud;
};

static bool log_has(void *ud) {
  struct log_wait *w = ud;
  if (w->tick) w->tick(w->tick_ud);
  return count_in(proc_stderr(w->p), w->needle) >= w->want ||
         proc_exited(w->p);
}

/* Waits until stderr holds needle want times (a printf-style needle). */
static void wait_log_n(struct proc *p, size_t want, int timeout_ms,
                       void (*tick)(void *), void *tick_ud, const char *fmt,
                       ...) __attribute__((format(printf, 6, 7)));
static void wait_log_n(struct proc *p, size_t want, int timeout_ms,
                       void (*tick)(void *), void *tick_ud, const char *fmt,
                       ...) {
  char needle[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(needle, sizeof needle, fmt, ap);
  va_end(ap);
  struct log_wait w = {p, needle, want, tick, tick_ud};
  CHECK(run_until(log_has, &w, timeout_ms) && !proc_exited(p),
        "tghost's log did not show '%s' %zu time(s) (it shows it %zu)", needle,
        want, count_in(proc_stderr(p), needle));
}

#define wait_log(p, timeout_ms, ...) \
  wait_log_n(p, 1, timeout_ms, NULL, NULL, __VA_ARGS__)

/* Replaces a file the way many editors save: a new file renamed over it. */
static void write_by_rename(const char *name, const char *content) {
  char tmpname[128];
  snprintf(tmpname, sizeof tmpname, ".%s.tmp", name);
  const char *tmp = harness_write(tmpname, content);
  char path[256];
  snprintf(path, sizeof path, "%s/%s", harness_tmpdir(), name);
  CHECK(rename(tmp, path) == 0, "rename %s", tmp);
}

/* Rewrites a file in place in several writes (truncate, then pieces), the
 * way other editors and `cat > file` do. */
static void write_in_pieces(const char *name, const char *content, int pieces,
                            int gap_ms) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", harness_tmpdir(), name);
  FILE *f = fopen(path, "w");
  CHECK(f, "cannot open %s", path);
  size_t len = strlen(content), step = len / (size_t)pieces + 1;
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    fwrite(content + off, 1, n, f);
    fflush(f);
    if (gap_ms > 0 && off + n < len) run_for(gap_ms);
  }
  fclose(f);
}

/* The text of the last sendMessage to chat, or NULL (malloc'd). */
static char *last_reply_to(int64_t chat) {
  struct fakeapi *api = harness_api();
  for (size_t i = fakeapi_call_count(api); i-- > 0;) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") == 0 && c->chat_id == chat)
      return fake_call_string(c, "text");
  }
  return NULL;
}

static const char *prefix_script_fmt =
    "local lib = require('replies')\n"
    "bot.on('message', function(ctx)\n"
    "  if ctx.msg.text == 'boom' then error('boom in ' .. tghost.generation()) end\n"
    "  ctx:reply(lib.prefix .. '%s ' .. tghost.generation() .. ' ' .. ctx.msg.text)\n"
    "end)\n"
    "run(bot)\n";

static const char *prefix_script(const char *word) {
  static char text[512];
  snprintf(text, sizeof text, prefix_script_fmt, word);
  return text;
}

/* Pushes one update to chat and returns the reply's text (malloc'd). */
static char *ask(int64_t chat, const char *text) {
  size_t before = fakeapi_count_method(harness_api(), "sendMessage");
  fakeapi_push_text(harness_api(), chat, 1, text);
  wait_calls("sendMessage", before + 1, 15000);
  char *reply = last_reply_to(chat);
  CHECK(reply, "no reply in chat %lld", (long long)chat);
  return reply;
}

static void expect_reply(int64_t chat, const char *text, const char *want) {
  char *got = ask(chat, text);
  CHECK(strcmp(got, want) == 0, "reply '%s', expected '%s'", got, want);
  free(got);
}

/* --- the script, a module, SIGHUP, --no-watch --------------------------- */

/* Editing the script or a module it requires reloads; so does SIGHUP.
 * Saves by rename and by rewriting in place in several writes (a burst the
 * debounce turns into one reload). */
TEST(triggers) {
  harness_write("replies.lua", "return { prefix = '1:' }\n");
  const char *script = harness_write("bot.lua", prefix_script("one"));
  struct proc *p = proc_start(script, NULL);
  expect_reply(10, "a", "1:one 1 a");

  write_by_rename("bot.lua", prefix_script("two"));
  wait_log(p, 10000, "generation 2 loaded");
  expect_reply(10, "b", "1:two 2 b");

  /* A module of the script's folder, rewritten in three pieces. */
  write_in_pieces("replies.lua", "return { prefix = '2:' }\n", 3, 10);
  wait_log(p, 10000, "generation 3 loaded");
  expect_reply(10, "c", "2:two 3 c");

  proc_kill(p, SIGHUP);
  wait_log(p, 10000, "generation 4 loaded");
  expect_reply(10, "d", "2:two 4 d");

  /* A handler's error names its generation. */
  int64_t boom = fakeapi_push_text(harness_api(), 10, 1, "boom");
  char needle[96];
  snprintf(needle, sizeof needle, "[gen 4] [update %lld] unhandled error",
           (long long)boom);
  wait_log(p, 10000, "%s", needle);
  CHECK(strstr(strstr(proc_stderr(p), needle), "boom in 4"),
        "the error line does not carry the error");

  /* One save, one reload; the retired generations were freed. */
  run_for(400);
  const char *log = proc_stderr(p);
  CHECK(count_in(log, "reloading ") == 3, "%zu reloads for 3 changes",
        count_in(log, "reloading "));
  CHECK(!strstr(log, "rejected"), "a reload was rejected");
  for (int g = 1; g <= 3; g++) {
    char retired[64];
    snprintf(retired, sizeof retired, "generation %d retired", g);
    CHECK(strstr(log, retired), "no '%s'", retired);
  }
  CHECK(strstr(log, "replies.lua changed"), "the module change is not named");
  proc_stop_cleanly(p);
}

/* --no-watch: edits are ignored, SIGHUP still reloads. */
TEST(no_watch) {
  harness_write("replies.lua", "return { prefix = '' }\n");
  const char *script = harness_write("bot.lua", prefix_script("one"));
  const char *args[] = {"--no-watch", NULL};
  struct proc *p = proc_start(script, args);
  expect_reply(20, "a", "one 1 a");
  harness_write("bot.lua", prefix_script("two"));
  run_for(600);
  CHECK(!strstr(proc_stderr(p), "reloading"), "reloaded with --no-watch");
  expect_reply(20, "b", "one 1 b");
  proc_kill(p, SIGHUP);
  wait_log(p, 10000, "generation 2 loaded");
  expect_reply(20, "c", "two 2 c");
  proc_stop_cleanly(p);
}

/* --- updates in flight -------------------------------------------------- */

static const char *inflight_fmt =
    "bot.on('message', function(ctx)\n"
    "  if ctx.msg.text == 'slow' then\n"
    "    bot.api.sendChatAction{ chat_id = ctx.chat.id, action = 'typing' }\n"
    "    tghost.sleep(1.5)\n"
    "  elseif ctx.msg.text == 'hang' then\n"
    "    bot.api.sendChatAction{ chat_id = ctx.chat.id, action = 'typing' }\n"
    "    tghost.sleep(1000)\n"
    "  end\n"
    "  ctx:reply('%s ' .. tghost.generation() .. ' ' .. ctx.msg.text)\n"
    "end)\n"
    "run(bot, { sink = { timeout = { milliseconds = 2500, handler =\n"
    "  function(ctx) bot.api.sendMessage{ chat_id = ctx.chat.id,\n"
    "    text = '%s timeout ' .. tghost.generation() } end } } })\n";

/* An update in flight across a reload finishes on the old code: a handler
 * sleeping across the swap replies with the old prefix, one that hangs is
 * cancelled at its timeout by the old generation's timeout handler, and
 * the old generation is closed only after both. */
TEST(inflight_finishes_on_old_code) {
  struct fakeapi *api = harness_api();
  char text[1024];
  snprintf(text, sizeof text, inflight_fmt, "OLD", "OLD");
  const char *script = harness_write("bot.lua", text);
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "slow");
  fakeapi_push_text(api, 2, 1, "hang");
  wait_calls("sendChatAction", 2, 10000);

  snprintf(text, sizeof text, inflight_fmt, "NEW", "NEW");
  write_by_rename("bot.lua", text);
  wait_log(p, 10000, "generation 2 loaded");
  CHECK(strstr(proc_stderr(p), "generation 1 retires when its 2 job(s)"),
        "the log does not say what generation 1 still runs");
  expect_reply(3, "fast", "NEW 2 fast");
  CHECK(!strstr(proc_stderr(p), "generation 1 retired"),
        "generation 1 was retired while its updates were in flight");

  /* The sleeper wakes up in generation 1. */
  wait_calls("sendMessage", 2, 10000);
  char *slow = last_reply_to(1);
  CHECK(slow && strcmp(slow, "OLD 1 slow") == 0, "the sleeper replied '%s'",
        slow ? slow : "(nothing)");
  free(slow);
  CHECK(!strstr(proc_stderr(p), "generation 1 retired"),
        "generation 1 was retired while an update hung in it");

  /* The hanging one times out; generation 1's handler reports it. */
  wait_calls("sendMessage", 3, 10000);
  char *hang = last_reply_to(2);
  CHECK(hang && strcmp(hang, "OLD timeout 1") == 0,
        "the timeout handler sent '%s'", hang ? hang : "(nothing)");
  free(hang);
  wait_log(p, 5000, "generation 1 retired");
  proc_stop_cleanly(p);
}

/* --- failed reloads ----------------------------------------------------- */

struct broken {
  const char *name;
  const char *script;
  const char *module;           /* broken_mod.lua, when used */
  const char *expect[2];        /* in the "rejected" log line */
};

static const struct broken broken_versions[] = {
    {"syntax error",
     "bot.on('message', function(ctx)\n  ctx:reply('X'\nend)\nrun(bot)\n",
     NULL, {"bot.lua:3:", "expected"}},
    {"error at top level",
     "bot.on('message', function(ctx) ctx:reply('X') end)\n"
     "local cfg = nil\nlocal name = cfg.name\nrun(bot)\n",
     NULL, {"bot.lua:3:", "attempt to index a nil value"}},
    {"invalid filter query",
     "bot.on('message', function(ctx) ctx:reply('X') end)\n"
     "bot.on('mesage', function(ctx) ctx:reply('X') end)\nrun(bot)\n",
     NULL, {"bot.lua:2", "mesage"}},
    {"top level that never returns",
     "bot.on('message', function(ctx) ctx:reply('X') end)\n"
     "local n = 0\nwhile true do n = n + 1 end\nrun(bot)\n",
     NULL, {"bot.lua:3:", "--cpu-budget"}},
    {"syntax error in a module",
     "local m = require('broken_mod')\n"
     "bot.on('message', function(ctx) ctx:reply('X' .. m.x) end)\nrun(bot)\n",
     "return {\n  x = 'x',\n  y = ,\n}\n", {"broken_mod.lua:3:", "unexpected symbol"}},
    {"no run() call",
     "bot.on('message', function(ctx) ctx:reply('X') end)\n", NULL,
     {"no longer calls run(bot)", ""}},
    {"top level that waits forever",
     "bot.on('message', function(ctx) ctx:reply('X') end)\n"
     "tghost.sleep(3600)\nrun(bot)\n",
     NULL, {"did not finish within 0.5 s", "bot.lua:2"}},
};

/* Each kind of broken version is rejected with its file:line, and the
 * previous generation keeps serving; a fix is picked up. */
TEST(broken_versions_rejected) {
  harness_write("replies.lua", "return { prefix = '' }\n");
  const char *script = harness_write("bot.lua", prefix_script("good"));
  static const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN,
                                    "TGHOST_RELOAD_TIMEOUT=0.5", NULL};
  const char *args[] = {"--cpu-budget", "0.2", NULL};
  struct proc *p = proc_start_env(script, args, env, true);
  expect_reply(30, "a", "good 1 a");
  size_t n = sizeof broken_versions / sizeof broken_versions[0];
  for (size_t i = 0; i < n; i++) {
    const struct broken *b = &broken_versions[i];
    if (b->module) harness_write("broken_mod.lua", b->module);
    write_by_rename("bot.lua", b->script);
    wait_log_n(p, i + 1, 15000, NULL, NULL, "rejected, generation 1 keeps serving");
    const char *line = strstr(proc_stderr(p), "rejected, generation 1 keeps serving");
    for (size_t k = 1; k <= i; k++) line = strstr(line + 1, "rejected, generation 1 keeps serving");
    const char *eol = strchr(line, '\n');
    char one[1024];
    snprintf(one, sizeof one, "%.*s", (int)(eol ? eol - line : 1000), line);
    for (int k = 0; k < 2; k++)
      CHECK(strstr(one, b->expect[k]), "%s: the rejection '%s' lacks '%s'",
            b->name, one, b->expect[k]);
    char chat_text[16];
    snprintf(chat_text, sizeof chat_text, "b%zu", i);
    char want[64];
    snprintf(want, sizeof want, "good 1 %s", chat_text);
    expect_reply(30, chat_text, want);
  }
  /* Fixing the module of the broken version brings it in. */
  write_by_rename("bot.lua", broken_versions[4].script);
  wait_log_n(p, n + 1, 15000, NULL, NULL, "rejected, generation 1 keeps serving");
  harness_write("broken_mod.lua", "return { x = 'fixed' }\n");
  wait_log(p, 10000, "loaded: new updates run on it");
  expect_reply(30, "z", "Xfixed");
  CHECK(fakeapi_count_method(harness_api(), "sendMessage") == n + 2,
        "%zu replies for %zu updates",
        fakeapi_count_method(harness_api(), "sendMessage"), n + 2);
  proc_stop_cleanly(p);
}

/* --- run() options ------------------------------------------------------ */

/* The reloaded script's run() options apply live (concurrency, fetch
 * options); the sink kind cannot change and is warned about; ctx.me still
 * works in the new generation. */
TEST(options_apply_live) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("bot.lua",
      "bot.on('message', function(ctx) ctx:reply('v1') end)\n"
      "run(bot, { sink = { concurrency = 50 } })\n");
  struct proc *p = proc_start(script, NULL);
  expect_reply(40, "a", "v1");
  size_t polls_before = fakeapi_poll_count(api);
  int limit_before = fakeapi_poll(api, polls_before - 1)->limit;
  CHECK(limit_before > 7 && limit_before <= 50, "limit %d before", limit_before);
  write_by_rename("bot.lua",
      "bot.on('message', function(ctx) ctx:reply('v2 @' .. ctx.me.username) end)\n"
      "run(bot, { sink = { kind = 'batch', concurrency = 7 },\n"
      "  runner = { fetch = { timeout = 1,\n"
      "    allowed_updates = { 'message', 'callback_query' } } } })\n");
  wait_log(p, 10000, "generation 2 loaded");
  /* getMe's answer outlives the generation that asked. */
  expect_reply(40, "b", "v2 @test_bot");
  run_for(1500);   /* a long poll of the old timeout may be pending */
  expect_reply(40, "c", "v2 @test_bot");
  const struct fake_poll *last = fakeapi_poll(api, fakeapi_poll_count(api) - 1);
  CHECK(last->limit <= 7, "polls ask for %d updates, not at most 7", last->limit);
  CHECK(last->timeout == 1, "polls wait %d s, not 1", last->timeout);
  CHECK(last->allowed_updates &&
            strcmp(last->allowed_updates, "[\"message\",\"callback_query\"]") == 0,
        "allowed_updates %s", last->allowed_updates ? last->allowed_updates : "(none)");
  const char *log = proc_stderr(p);
  CHECK(strstr(log, "sink.kind cannot change"), "no warning about sink.kind");
  CHECK(strstr(log, "concurrency 50 -> 7"), "the change of concurrency is not logged");

  /* Without allowed_updates, the list derived from the new handlers: a
   * chat_member handler added by a reload gets its updates. */
  write_by_rename("bot.lua",
      "bot.on('message', function(ctx) ctx:reply('v3') end)\n"
      "bot.on('chat_member', function(ctx) end)\n"
      "run(bot, { runner = { fetch = { timeout = 1 } } })\n");
  wait_log(p, 10000, "generation 3 loaded");
  run_for(1500);
  expect_reply(40, "d", "v3");
  last = fakeapi_poll(api, fakeapi_poll_count(api) - 1);
  CHECK(last->allowed_updates && strstr(last->allowed_updates, "\"chat_member\""),
        "allowed_updates %s after adding a chat_member handler",
        last->allowed_updates ? last->allowed_updates : "(none)");
  proc_stop_cleanly(p);
}

/* --- 50,000 updates and 25 rewrites ------------------------------------- */

/* At least STRESS_UPDATES flow; more if the rewrites take longer than
 * those last (every rewrite must happen while updates flow), up to
 * STRESS_MAX_UPDATES. */
enum { STRESS_UPDATES = 50000, STRESS_MAX_UPDATES = 150000, STRESS_CHATS = 200,
       STRESS_GOOD = 20, STRESS_BROKEN = 5, STRESS_WINDOW = 1500 };

static const char *stress_fmt =
    "local VERSION, PREFIX = '%s', '%s'\n"
    "%s"
    "%s"
    "bot.on('message', function(ctx)\n"
    "  tghost.sleep(math.random() * 0.02)\n"
    "  ctx:reply(PREFIX .. '|' .. VERSION .. '|' .. tghost.generation() .. '|'\n"
    "            .. ctx.msg.text)\n"
    "end)\n"
    "run(bot, { sink = { concurrency = 500 } })\n";

struct flow {
  int64_t first_id;
  int pushed;
  int total;
  int window;      /* updates queued or in flight at most */
};

/* Keeps about f->window updates queued or in flight. */
static void feed(void *ud) {
  struct flow *f = ud;
  struct fakeapi *api = harness_api();
  int answered = (int)fakeapi_call_count(api);
  char text[32];
  while (f->pushed < f->total && f->pushed - answered < f->window) {
    for (int k = 0; k < 100 && f->pushed < f->total; k++, f->pushed++) {
      snprintf(text, sizeof text, "u%d", f->pushed);
      int64_t id = fakeapi_push_text(api, 100000 + f->pushed % STRESS_CHATS,
                                     7, text);
      if (f->pushed == 0) f->first_id = id;
    }
  }
}

struct calls_wait {
  struct flow *flow;
  size_t want;
};

static bool calls_reached(void *ud) {
  struct calls_wait *w = ud;
  feed(w->flow);
  return fakeapi_call_count(harness_api()) >= w->want;
}

/* While 50,000 updates flow through handlers with random delays, the
 * script is rewritten 20 times, alternating two versions with different
 * reply prefixes, plus 5 broken versions: every update is answered exactly
 * once, every reply comes from a version that loaded, the generation that
 * handled an update never goes back as update ids go up, an update pushed
 * after a version went live is handled by it or a later one, and broken
 * versions never serve and are reported. With sequentialize by chat, each
 * chat's replies also arrive in update order. */
static void stress_rewrites(bool with_sequentialize) {
  struct fakeapi *api = harness_api();
  const char *seq = with_sequentialize
      ? "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      : "";
  enum { WRITES = STRESS_GOOD + STRESS_BROKEN };
  static char script_text[2048];
  /* Which version each generation id ran, and from which update id on it
   * had to be used (the next id pushed once its "loaded" line showed). */
  static char gen_label[WRITES + 2][8];
  static int64_t live_from[WRITES + 2];
  static bool good_label[WRITES + 1];
  static char label_prefix[WRITES + 1];

  snprintf(script_text, sizeof script_text, stress_fmt, "v0", "A", seq, "");
  const char *script = harness_write("bot.lua", script_text);
  good_label[0] = true;
  label_prefix[0] = 'A';
  harness_write("broken_mod.lua", "return {\n  x = ,\n}\n");
  const char *args[] = {"--cpu-budget", "0.2", NULL};
  struct flow flow = {0, 0, STRESS_MAX_UPDATES, STRESS_WINDOW};
  feed(&flow);
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, args);
  wait_log_n(p, 1, 15000, feed, &flow, "running as");
  snprintf(gen_label[1], sizeof gen_label[1], "v0");
  live_from[1] = flow.first_id;

  static const char *const broken_snippets[STRESS_BROKEN] = {
      "bot.on('message', function(ctx)\n  ctx:reply('X'\nend)\n",
      "local cfg = nil\nlocal x = cfg.name\n",
      "bot.on('mesage', function(ctx) end)\n",
      "while true do end\n",
      "local m = require('broken_mod')\n",
  };
  int good = 0, broken = 0, gen = 1;
  size_t loaded_lines = 0, rejected_lines = 0;
  for (int w = 1; w <= WRITES; w++) {
    /* Spread the writes over the first STRESS_UPDATES updates, with some
     * updates between any two however long the reloads take. */
    size_t at = (size_t)w * STRESS_UPDATES / (WRITES + 1);
    size_t after_last = fakeapi_call_count(api) + 300;
    struct calls_wait cw = {&flow, at > after_last ? at : after_last};
    CHECK(run_until(calls_reached, &cw, 60000),
          "updates stopped flowing (%d pushed, %zu answered)", flow.pushed,
          fakeapi_call_count(api));
    bool is_broken = w % 5 == 0;
    char label[8];
    snprintf(label, sizeof label, "v%d", w);
    char prefix[2] = {good % 2 == 0 ? 'B' : 'A', '\0'};
    if (is_broken) prefix[0] = 'X';
    snprintf(script_text, sizeof script_text, stress_fmt, label, prefix, seq,
             is_broken ? broken_snippets[broken] : "");
    if (w % 2) write_by_rename("bot.lua", script_text);
    else write_in_pieces("bot.lua", script_text, 3, 0);
    gen++;
    if (is_broken) {
      wait_log_n(p, ++rejected_lines, 30000, feed, &flow, "rejected, generation");
      broken++;
    } else {
      wait_log_n(p, ++loaded_lines, 30000, feed, &flow, "loaded: new updates run on it");
      char needle[64];
      snprintf(needle, sizeof needle, "generation %d loaded", gen);
      CHECK(strstr(proc_stderr(p), needle), "version %s did not load as "
            "generation %d", label, gen);
      snprintf(gen_label[gen], sizeof gen_label[gen], "%s", label);
      live_from[gen] = flow.first_id + flow.pushed;
      good_label[w] = true;
      label_prefix[w] = prefix[0];
      good++;
    }
  }
  CHECK(good == STRESS_GOOD && broken == STRESS_BROKEN, "%d good, %d broken",
        good, broken);
  /* The rest of the updates, and some more after the last write. */
  flow.total = flow.pushed + 1000 > STRESS_UPDATES ? flow.pushed + 1000
                                                   : STRESS_UPDATES;
  if (flow.total > STRESS_MAX_UPDATES) flow.total = STRESS_MAX_UPDATES;
  const int total = flow.total;
  struct calls_wait all = {&flow, (size_t)total};
  CHECK(run_until(calls_reached, &all, 120000), "only %zu of %d updates answered",
        fakeapi_call_count(api), total);
  uint64_t elapsed = harness_now_ms() - start;
  run_for(300);   /* anything extra would show up now */

  /* Every update answered exactly once, by a version that loaded. */
  static int served_by[STRESS_MAX_UPDATES];
  memset(served_by, 0, sizeof served_by);
  int last_in_chat[STRESS_CHATS];
  for (int c = 0; c < STRESS_CHATS; c++) last_in_chat[c] = -1;
  size_t replies = 0;
  int per_gen[WRITES + 2] = {0};
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    replies++;
    char *t = fake_call_string(c, "text");
    char pfx;
    int label = -1, g = -1, u = -1;
    CHECK(t && sscanf(t, "%c|v%d|%d|u%d", &pfx, &label, &g, &u) == 4 &&
              u >= 0 && u < total && label >= 0 && label <= WRITES &&
              g >= 1 && g <= gen,
          "unexpected reply '%s'", t ? t : "(none)");
    CHECK(good_label[label], "broken version v%d served update %d", label, u);
    CHECK(pfx == label_prefix[label], "v%d replied with prefix %c", label, pfx);
    char want[8];
    snprintf(want, sizeof want, "v%d", label);
    CHECK(strcmp(gen_label[g], want) == 0,
          "generation %d replied as %s but loaded %s", g, want, gen_label[g]);
    CHECK(c->chat_id == 100000 + u % STRESS_CHATS, "u%d answered in chat %lld",
          u, (long long)c->chat_id);
    CHECK(served_by[u] == 0, "update u%d answered twice", u);
    served_by[u] = g;
    per_gen[g]++;
    /* With sequentialize by chat, a chat's replies arrive in update
     * order, across every reload. */
    int chat = u % STRESS_CHATS;
    if (with_sequentialize) {
      CHECK(u > last_in_chat[chat], "chat %d: u%d answered after u%d", chat,
            u, last_in_chat[chat]);
      last_in_chat[chat] = u;
    }
    free(t);
  }
  CHECK(replies == (size_t)total, "%zu replies for %d updates", replies,
        total);
  /* Updates start in update id order, so the generation never goes back;
   * and none started on a generation older than the one live when it was
   * pushed. */
  int prev = 1, used = 0;
  for (int u = 0; u < total; u++) {
    int g = served_by[u];
    CHECK(g >= prev, "u%d ran in generation %d after an earlier update ran in %d",
          u, g, prev);
    prev = g;
    for (int k = g + 1; k <= gen; k++)
      CHECK(!live_from[k] || flow.first_id + u < live_from[k],
            "u%d was pushed after generation %d went live but ran in %d", u, k, g);
  }
  for (int g = 1; g <= gen; g++) used += per_gen[g] > 0;
  CHECK(used >= STRESS_GOOD / 2, "only %d generations served updates", used);

  const char *log = proc_stderr(p);
  CHECK(count_in(log, "rejected, generation") == STRESS_BROKEN,
        "%zu rejections for %d broken versions",
        count_in(log, "rejected, generation"), STRESS_BROKEN);
  CHECK(count_in(log, "loaded: new updates run on it") == STRESS_GOOD,
        "%zu loads for %d good versions",
        count_in(log, "loaded: new updates run on it"), STRESS_GOOD);
  fprintf(stderr, "stress: %d updates, %d reloads, %d rejected, in %.1f s; "
          "%d generations served updates\n", total, STRESS_GOOD,
          STRESS_BROKEN, elapsed / 1000.0, used);
  proc_stop_cleanly(p);
  CHECK(count_in(proc_stderr(p), "retired") >= STRESS_GOOD,
        "%zu generations retired of %d replaced",
        count_in(proc_stderr(p), "retired"), STRESS_GOOD);
}

TEST_SERIAL(stress_rewrites) { stress_rewrites(true); }

/* --- memory ------------------------------------------------------------- */

enum { MEM_RELOADS = 100, MEM_WARMUP_RELOADS = 50 };

/* 100 reloads under load: every replaced generation is freed, and memory
 * comes back to within 10% of its level after the first reload. */
/* The resident memory of p while 2,000 more updates flow: the least of
 * samples taken along the way, so that a moment with more updates in
 * flight than usual (a busy machine) does not pass for growth. */
struct rss_sampling {
  struct calls_wait wait;
  struct proc *p;
  long least;
  uint64_t next_ms;
};

static bool sample_rss(void *ud) {
  struct rss_sampling *s = ud;
  uint64_t now = harness_now_ms();
  if (now >= s->next_ms) {
    long rss = proc_rss_kib(s->p);
    if (rss > 0 && (s->least < 0 || rss < s->least)) s->least = rss;
    s->next_ms = now + 20;
  }
  return calls_reached(&s->wait);
}

static long steady_rss_kib(struct proc *p, struct flow *flow) {
  struct rss_sampling s = {{flow, fakeapi_call_count(harness_api()) + 2000},
                           p, -1, 0};
  CHECK(run_until(sample_rss, &s, 30000), "updates stopped flowing");
  return s.least;
}

TEST(memory_after_reloads) {
  harness_api();
  const char *script = harness_write("bot.lua",
      "bot.on('message', function(ctx)\n"
      "  tghost.sleep(0.005 + math.random() * 0.01)\n"
      "  ctx:reply('r ' .. tghost.generation())\n"
      "end)\n"
      "run(bot)\n");
  /* No quarantine under AddressSanitizer: freed memory must be reusable
   * for RSS to mean anything. */
  static char asan[512];
  const char *cur = getenv("ASAN_OPTIONS");
  snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%squarantine_size_mb=0",
           cur ? cur : "", cur && *cur ? ":" : "");
  const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN, asan, NULL};
  struct flow flow = {0, 0, 1 << 30, 100};
  struct proc *p = proc_start_env(script, NULL, env, true);
  wait_log_n(p, 1, 15000, feed, &flow, "running as");
  /* Warm up, then the first reload. */
  struct calls_wait cw = {&flow, 3000};
  CHECK(run_until(calls_reached, &cw, 30000), "updates do not flow");
  long base = 0;
  for (int i = 1; i <= MEM_RELOADS; i++) {
    proc_kill(p, SIGHUP);
    wait_log_n(p, (size_t)i, 20000, feed, &flow, "loaded: new updates run on it");
    /* The replaced generation goes once its updates are done (meanwhile
     * the new one serves): at most two live at a time, as after the first
     * reload. */
    wait_log_n(p, (size_t)i, 20000, feed, &flow, "retired: its last job ended");
    /* The allocator settles over the first reloads (its free lists and
     * arenas fill up); what is measured is growth after that. */
    if (i == MEM_WARMUP_RELOADS) base = steady_rss_kib(p, &flow);
  }
  /* Every generation but the current one retires once its updates end. */
  wait_log_n(p, MEM_RELOADS, 20000, feed, &flow, "retired: its last job ended");
  long after = steady_rss_kib(p, &flow);
  fprintf(stderr, "memory: RSS %ld KiB after %d reloads, %ld KiB after "
          "%d (%+.1f%%)\n", base, MEM_WARMUP_RELOADS, after, MEM_RELOADS,
          100.0 * (double)(after - base) / (double)base);
  CHECK(base > 0 && after > 0, "cannot read RSS");
  CHECK(after <= base + base / 10, "RSS grew from %ld to %ld KiB over %d "
        "reloads", base, after, MEM_RELOADS);
  CHECK(count_in(proc_stderr(p), "retired: its last job ended") == MEM_RELOADS,
        "%zu generations retired", count_in(proc_stderr(p), "retired: its last job ended"));
  proc_stop_cleanly(p);
}

/* --- a reload that widens allowed_updates -------------------------------- */

/* The first poll from index `from` on whose allowed_updates name `type`. */
static const struct fake_poll *poll_asking_for(size_t from, const char *type) {
  struct fakeapi *api = harness_api();
  for (size_t i = from; i < fakeapi_poll_count(api); i++) {
    const struct fake_poll *poll = fakeapi_poll(api, i);
    if (poll->allowed_updates && strstr(poll->allowed_updates, type)) return poll;
  }
  return NULL;
}

struct poll_wait {
  size_t from;
  const char *type;
  void (*tick)(void *ud);
};

static bool poll_arrived(void *ud) {
  struct poll_wait *w = ud;
  if (w->tick) w->tick(NULL);
  return poll_asking_for(w->from, w->type) != NULL;
}

/* How often a sendMessage with this text arrived. */
static int times_answered(const char *text) {
  struct fakeapi *api = harness_api();
  int n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t && strcmp(t, text) == 0) n++;
    free(t);
  }
  return n;
}

enum { WIDEN_FEED = 300 };
static int widen_fed;

/* Pushes the next numbered message, one per loop turn. */
static void widen_feed(void *ud) {
  if (widen_fed >= WIDEN_FEED) return;
  char text[32];
  snprintf(text, sizeof text, "%d", widen_fed++);
  fakeapi_push_text(harness_api(), 1 + widen_fed % 7, 1, text);
}

static const char *widen_v1 =
    "bot.on('message', function(ctx) ctx:reply('m ' .. ctx.msg.text) end)\n"
    "run(bot)\n";
static const char *widen_v2 =
    "bot.on('message', function(ctx) ctx:reply('m ' .. ctx.msg.text) end)\n"
    "bot.on('chat_member', function(ctx)\n"
    "  ctx.api.sendMessage{ chat_id = ctx.chat.id, text = 'member ' ..\n"
    "    ctx.chatMember.new_chat_member.status }\n"
    "end)\n"
    "run(bot)\n";
static const char *widen_v3 =
    "bot.on('message', function(ctx) ctx:reply('m ' .. ctx.msg.text) end)\n"
    "bot.on('chat_member', function(ctx) end)\n"
    "bot.on('message_reaction', function(ctx) end)\n"
    "run(bot)\n";

/* A reload that adds a chat_member handler restarts the pending long poll
 * (30 s by default) with the new allowed_updates, so chat_member updates
 * arrive at once. The offset stays exact: the restarted poll asks from
 * the same offset, and with updates flowing through a second such reload
 * every one is answered exactly once. */
TEST(reload_widens_allowed_updates) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("bot.lua", widen_v1);
  struct proc *p = proc_start(script, NULL);
  expect_reply(3, "before", "m before");
  run_for(300);   /* the next long poll is now held by the server */
  size_t n = fakeapi_poll_count(api);
  const struct fake_poll *held = fakeapi_poll(api, n - 1);
  int64_t held_offset = held->offset;
  CHECK(held->timeout == 30, "the pending poll waits %d s", held->timeout);

  write_by_rename("bot.lua", widen_v2);
  wait_log(p, 10000, "generation 2 loaded");
  uint64_t loaded = harness_now_ms();
  struct poll_wait w = {n, "\"chat_member\"", NULL};
  CHECK(run_until(poll_arrived, &w, 10000),
        "no getUpdates with chat_member within 10 s of the reload (the "
        "pending 30 s poll was not restarted)");
  CHECK(harness_now_ms() - loaded < 5000, "the new poll came %llu ms late",
        (unsigned long long)(harness_now_ms() - loaded));
  const struct fake_poll *restarted = poll_asking_for(n, "\"chat_member\"");
  CHECK(restarted->offset == held_offset, "the restarted poll asks from offset "
        "%lld, the aborted one from %lld", (long long)restarted->offset,
        (long long)held_offset);
  fakeapi_push_update(api,
      "\"chat_member\":{\"chat\":{\"id\":-100777,\"type\":\"supergroup\","
      "\"title\":\"G\"},\"from\":{\"id\":1,\"is_bot\":false,"
      "\"first_name\":\"A\"},\"date\":1,\"old_chat_member\":{\"status\":"
      "\"left\",\"user\":{\"id\":2,\"is_bot\":false,\"first_name\":\"B\"}},"
      "\"new_chat_member\":{\"status\":\"member\",\"user\":{\"id\":2,"
      "\"is_bot\":false,\"first_name\":\"B\"}}}");
  size_t before = fakeapi_count_method(api, "sendMessage");
  wait_calls("sendMessage", before + 1, 10000);
  CHECK(api_sent_text("member member"), "the chat_member update was not handled");

  /* Again while updates flow: nothing lost, nothing handled twice. */
  widen_fed = 0;
  size_t polls_before = fakeapi_poll_count(api);
  write_by_rename("bot.lua", widen_v3);
  struct poll_wait w3 = {polls_before, "\"message_reaction\"", widen_feed};
  CHECK(run_until(poll_arrived, &w3, 10000), "no poll with message_reaction");
  while (widen_fed < WIDEN_FEED) {
    widen_feed(NULL);
    run_for(1);
  }
  wait_calls("sendMessage", before + 1 + WIDEN_FEED, 20000);
  for (int i = 0; i < WIDEN_FEED; i++) {
    char text[32];
    snprintf(text, sizeof text, "m %d", i);
    CHECK(times_answered(text) == 1, "'%s' answered %d times", text,
          times_answered(text));
  }
  /* Offsets never go back. */
  for (size_t i = 1; i < fakeapi_poll_count(api); i++)
    CHECK(fakeapi_poll(api, i)->offset >= fakeapi_poll(api, i - 1)->offset,
          "poll %zu went back from offset %lld to %lld", i,
          (long long)fakeapi_poll(api, i - 1)->offset,
          (long long)fakeapi_poll(api, i)->offset);
  proc_stop_cleanly(p);
}
