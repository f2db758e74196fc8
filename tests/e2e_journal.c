/* Delivery you can trust: what is never cancelled, what is cut short and
 * said so, and (with --journal) what survives a crash. */
#include <signal.h>
#include <string.h>

#include "harness.h"

static bool have_text(void *ud) { return api_sent_text(ud); }

/* An update queued behind a stuck one of the same chat is never cancelled
 * before it ran: its timeout counts from when it passes its keys. */
static void test_timeout_counts_running_time(void) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("seqtimeout.lua",
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'stuck' then tghost.sleep(100) end\n"
      "  tghost.sleep(0.6)\n"
      "  ctx:reply('r' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot, { sink = { timeout = { milliseconds = 1000 } } })\n");
  int64_t stuck = fakeapi_push_text(api, 1, 1, "stuck");
  fakeapi_push_text(api, 1, 1, "a");
  fakeapi_push_text(api, 1, 1, "b");
  fakeapi_push_text(api, 1, 1, "c");
  struct proc *p = proc_start(script, NULL);
  CHECK(run_until(have_text, "rc", 15000),
        "an update queued behind the stuck one never ran");
  CHECK(api_sent_text("ra") && api_sent_text("rb"), "a or b never ran");
  CHECK(!api_sent_text("rstuck"), "the stuck update was not cut short");
  proc_stop_cleanly(p);
  char line[96];
  snprintf(line, sizeof line, "1 update(s) cut short: ids %lld",
           (long long)stuck);
  CHECK(strstr(proc_stderr(p), line), "no summary of what was cut short "
        "(wanted \"%s\")", line);
}

/* The drain timeout cancels what is still running, and says which. */
static void test_cut_short_logged(void) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("drain.lua",
      "bot.on('message:text', function(ctx) tghost.sleep(100) end)\n"
      "run(bot)\n");
  int64_t a = fakeapi_push_text(api, 1, 1, "a");
  int64_t b = fakeapi_push_text(api, 2, 2, "b");
  const char *args[] = {"--drain-timeout", "0.5", NULL};
  struct proc *p = proc_start(script, args);
  run_for(500);
  proc_stop_cleanly(p);
  char line[96];
  snprintf(line, sizeof line, "2 update(s) cut short: ids %lld, %lld",
           (long long)a, (long long)b);
  const char *err = proc_stderr(p);
  CHECK(strstr(err, line) != NULL, "no summary (wanted \"%s\")", line);
  CHECK(strstr(err, "update cut short: cancelled: the drain timeout passed"),
        "the reason of each is not logged");
}

static const struct test_case tests[] = {
    {"timeout_counts_running_time", test_timeout_counts_running_time},
    {"cut_short_logged", test_cut_short_logged},
    {NULL, NULL},
};

int main(int argc, char **argv) { return harness_main(argc, argv, tests); }
