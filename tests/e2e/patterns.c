/* Pattern matching on text users send, end to end: a backtracking pattern
 * that would run for minutes inside one C call of Lua's string library is
 * stopped once the handler has used its CPU budget, with an error that
 * says so; the other updates are answered meanwhile and afterwards, and a
 * SIGTERM then ends tghost cleanly within the drain timeout.
 *
 *   find_on_update_text   string.find(text, ".-.-.-b") on a 3000-byte
 *                         message, reported through bot.catch
 *   pcall_loop            the same in a loop of pcalls: the error does not
 *                         let the handler go on
 *   in_coroutine          string.match in a coroutine of the handler
 *   hears_hostile_text    bot.hears with a backtracking pattern and a
 *                         hostile text, no bot.catch: the log says it */
#include <signal.h>
#include <string.h>

#include "harness.h"

#define BUDGET_MS 500
#define DRAIN_S 2

/* Updates "0".."n-1" each get a reply "r<n>" exactly once. */
static void check_each_answered_once(int from, int to) {
  struct fakeapi *api = harness_api();
  int seen[64] = {0};
  CHECK(to <= 64, "too many numbered updates");
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && t[0] == 'r') {
      int u = atoi(t + 1);
      if (u >= from && u < to) seen[u]++;
    }
    free(t);
  }
  for (int u = from; u < to; u++)
    CHECK(seen[u] == 1, "update %d was answered %d times", u, seen[u]);
}

static void push_numbered(int from, int to) {
  char text[16];
  for (int i = from; i < to; i++) {
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(harness_api(), 1 + i % 3, 1 + i % 3, text);
  }
}

/* The text of the first sendMessage that starts with prefix (malloc'd). */
static char *reply_starting(const char *prefix) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) return t;
    free(t);
  }
  return NULL;
}

static char *hostile_text(const char *unit, int repeat) {
  struct buf b = BUF_INIT;
  for (int i = 0; i < repeat; i++) buf_append_str(&b, unit);
  return buf_steal(&b, NULL);
}

struct stderr_wait {
  struct proc *p;
  const char *text;
};

static bool stderr_has(void *ud) {
  struct stderr_wait *w = ud;
  const char *err = proc_stderr(w->p);
  return err && strstr(err, w->text);
}

static bool run_until_stderr_has(const char *text, struct proc *p,
                                 int timeout_ms) {
  struct stderr_wait w = {p, text};
  return run_until(stderr_has, &w, timeout_ms);
}

/* SIGTERM: exit 0, clean output, within the drain timeout. */
static void stop_within_drain(struct proc *p) {
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, DRAIN_S * 1000 + 2000),
        "tghost did not exit within the drain timeout after SIGTERM");
  uint64_t took = harness_now_ms() - t0;
  CHECK(proc_status(p) == 0, "exit status %d after SIGTERM", proc_status(p));
  CHECK(took < DRAIN_S * 1000, "exit took %llu ms", (unsigned long long)took);
  proc_check_clean(p);
}

/* "caught after S s: message": the stop came after about one budget of
 * CPU time (os.clock: what the guard counts, so a busy machine does not
 * matter), with the clear message. */
static void check_caught(const char *reply, const char *fn,
                         const char *quoted_pattern) {
  CHECK(reply, "the stopped handler was not reported to bot.catch");
  double after = atof(reply + strlen("caught after "));
  CHECK(after >= BUDGET_MS / 1000.0 * 0.9 && after < BUDGET_MS / 1000.0 + 1.0,
        "stopped after %.3f s of CPU (budget %d ms): %s", after,
        BUDGET_MS, reply);
  char want[256];
  snprintf(want, sizeof want,
           "pattern matching stopped: the handler ran out of its CPU budget "
           "(%d ms) in string.%s; the pattern %s backtracks too much on this "
           "text", BUDGET_MS, fn, quoted_pattern);
  CHECK(strstr(reply, want), "the error says: %s\n  wanted: %s", reply, want);
}

static const char *budget_args[] = {"--cpu-budget", "0.5", "--drain-timeout",
                                    "2", NULL};

static void run_catching(const char *handler_body, const char *fn,
                         const char *quoted_pattern) {
  struct fakeapi *api = harness_api();
  char script[2048];
  snprintf(script, sizeof script,
           "local started\n"
           "bot.catch(function(err)\n"
           "  err.ctx:reply(string.format('caught after %%.3f s: %%s',\n"
           "                os.clock() - started, tostring(err.error)))\n"
           "end)\n"
           "bot.on('message', function(ctx)\n"
           "  local text = ctx.msg.text\n"
           "  if #text > 100 then\n"
           "    started = os.clock()\n"
           "    %s\n"
           "    ctx:reply('the pattern finished')\n"
           "  end\n"
           "  ctx:reply('r' .. text)\n"
           "end)\n"
           "run(bot)\n",
           handler_body);
  const char *path = harness_write("patterns.lua", script);
  char *hostile = hostile_text("a", 3000);
  push_numbered(0, 10);
  fakeapi_push_text(api, 7, 7, hostile);
  push_numbered(10, 20);
  struct proc *p = proc_start(path, budget_args);
  wait_calls("sendMessage", 21, 20000);
  check_each_answered_once(0, 20);
  char *caught = reply_starting("caught after ");
  check_caught(caught, fn, quoted_pattern);
  CHECK(!reply_starting("the pattern finished"), "the handler went on");
  free(caught);
  /* The bot serves on. */
  push_numbered(20, 30);
  wait_calls("sendMessage", 31, 20000);
  check_each_answered_once(0, 30);
  stop_within_drain(p);
  free(hostile);
}

TEST(find_on_update_text) {
  run_catching("string.find(text, '.-.-.-b')", "find", "\".-.-.-b\"");
}

TEST(pcall_loop) {
  run_catching("while true do pcall(string.gsub, text, '.-.-.-b', '') end",
               "gsub", "\".-.-.-b\"");
}

TEST(in_coroutine) {
  run_catching("coroutine.wrap(function() string.match(text, '.-.-.-b') "
               "end)()",
               "match", "\".-.-.-b\"");
}

TEST(hears_hostile_text) {
  struct fakeapi *api = harness_api();
  const char *path = harness_write("hears.lua",
      "bot.hears('^(.-)%s+(.-)%s+(.-)!$', function(ctx)\n"
      "  ctx:reply('heard ' .. #ctx.match[1])\n"
      "end)\n"
      "bot.on('message', function(ctx) ctx:reply('r' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  char *hostile = hostile_text("a ", 2000);
  push_numbered(0, 10);
  fakeapi_push_text(api, 1, 1, "a b c!");          /* it does match */
  uint64_t t0 = harness_now_ms();
  fakeapi_push_text(api, 7, 7, hostile);
  push_numbered(10, 20);
  struct proc *p = proc_start(path, budget_args);
  wait_calls("sendMessage", 21, 20000);
  uint64_t took = harness_now_ms() - t0;
  check_each_answered_once(0, 20);
  char *heard = reply_starting("heard ");
  CHECK(heard && strcmp(heard, "heard 1") == 0, "the pattern matched: %s",
        heard ? heard : "(no reply)");
  free(heard);
  /* No bot.catch: the error is logged, with the update and the pattern. */
  CHECK(run_until_stderr_has("pattern matching stopped: the handler ran out "
                             "of its CPU budget (500 ms) in string.match; "
                             "the pattern \"^(.-)%s+(.-)%s+(.-)!$\" "
                             "backtracks too much on this text (4000 bytes)",
                             p, 5000),
        "the log does not say why the update stopped");
  /* Lua's own matcher would take about a minute on this text. */
  CHECK(took < 15000, "the 21 updates took %llu ms", (unsigned long long)took);
  push_numbered(20, 30);
  wait_calls("sendMessage", 31, 20000);
  check_each_answered_once(0, 30);
  stop_within_drain(p);
  free(hostile);
}
