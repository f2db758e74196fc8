/* The journal's cost on the echo benchmark: 20,000 updates over 1,000 chats,
 * one sendMessage each, against the fake server; with and without
 * --journal. Run by hand, alternating, and compare the medians:
 *
 *   for i in 1 2 3 4 5; do
 *     build/bench/journal_echo plain; build/bench/journal_echo journal
 *   done 2>&1 | grep updates/s
 */
#include <string.h>

#include "harness.h"

static const char echo_script[] =
    "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
    "run(bot)\n";

static void echo(bool journal) {
  struct fakeapi *api = harness_api();
  enum { UPDATES = 20000, CHATS = 1000 };
  for (int i = 0; i < UPDATES; i++)
    fakeapi_push_text(api, 100000 + i % CHATS, 500 + i % CHATS, "hello");
  char path[512];
  snprintf(path, sizeof path, "%s/bench.journal", harness_tmpdir());
  const char *args[] = {"--journal", path, NULL};
  const char *script = harness_write("echo.lua", echo_script);
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, journal ? args : NULL);
  wait_calls("sendMessage", UPDATES, 120000);
  uint64_t elapsed = harness_now_ms() - start;
  fprintf(stderr, "%-7s %d updates in %.2f s: %.0f updates/s\n",
          journal ? "journal" : "plain", UPDATES, elapsed / 1000.0,
          UPDATES * 1000.0 / (double)elapsed);
  proc_stop_cleanly(p);
}

TEST(plain) { echo(false); }
TEST(journal) { echo(true); }

int main(int argc, char **argv) {
  return test_main(argc, argv, harness_before_test);
}
