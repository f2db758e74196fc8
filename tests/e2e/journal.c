/* Delivery you can trust: what is never cancelled, what is cut short and
 * said so, and (with --journal) what survives a crash. */
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "harness.h"

static bool have_text(void *ud) { return api_sent_text(ud); }

/* An update queued behind a stuck one of the same chat is never cancelled
 * before it ran: its timeout counts from when it passes its keys. */
TEST(timeout_counts_running_time) {
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
TEST(cut_short_logged) {
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

/* --- the journal -------------------------------------------------------- */

static const char journal_bot[] =
    "bot.on('message:text', function(ctx)\n"
    "  if ctx.msg.text == 'poison' then error('poisoned') end\n"
    "  if ctx.msg.text == 'slow' and not ctx.redelivered then tghost.sleep(100) end\n"
    "  tghost.sleep(0.03)\n"
    "  ctx:reply('r' .. ctx.update.update_id .. (ctx.redelivered and ' again' or ''))\n"
    "end)\n"
    "run(bot, { sink = { concurrency = 200 } })\n";

/* How often each update in [first, first + n) was answered. */
static int *answers(int64_t first, int n) {
  struct fakeapi *api = harness_api();
  int *seen = xcalloc((size_t)n, sizeof *seen);
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && t[0] == 'r') {
      long long id = atoll(t + 1);
      if (id >= first && id < first + n) seen[id - first]++;
    }
    free(t);
  }
  return seen;
}

/* Counts replies to first-time deliveries ("r<id>", not "r<id> again")
 * as the server's call log grows, until target. */
struct fresh_replies {
  size_t scanned, count, target;
};

static bool fresh_replies_reached(void *ud) {
  struct fresh_replies *w = ud;
  struct fakeapi *api = harness_api();
  for (; w->scanned < fakeapi_call_count(api); w->scanned++) {
    const struct fake_call *c = fakeapi_call(api, w->scanned);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && t[0] == 'r' && !strstr(t, " again")) w->count++;
    free(t);
  }
  return w->count >= w->target;
}

struct kill_run {
  int handled, lost, duplicates, kills;
};

/* n updates, the process killed with SIGKILL `kills` times at random
 * moments and restarted; then one last run to the end. */
static struct kill_run kill_and_restart(int n, int kills, bool journal,
                                        unsigned seed) {
  struct fakeapi *api = harness_api();
  int64_t first = -1;
  for (int i = 0; i < n; i++) {
    int64_t id = fakeapi_push_text(api, 1 + i % 1000, 1 + i % 1000, "x");
    if (first < 0) first = id;
  }
  const char *script = harness_write("journal.lua", journal_bot);
  const char *path = NULL;
  if (journal) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/updates.journal", harness_tmpdir());
    path = buf;
  }
  const char *args[] = {"--journal", path, NULL};
  srand(seed);
  fprintf(stderr, "seed %u\n", seed);
  struct kill_run out = {0, 0, 0, kills};
  struct fresh_replies fresh = {0, 0, 0};
  for (int k = 0; k < kills; k++) {
    struct proc *p = proc_start(script, journal ? args : NULL);
    wait_calls("getMe", (size_t)k + 1, 10000);
    /* A random moment once this run has made progress of its own: the
     * updates handed back run first, so new ones answered mean this run
     * got past them (a slow machine kills as often after real work as a
     * fast one). Killing every run before its handed-back updates end is
     * a crash loop, which the journal rightly ends with dead letters. */
    fresh.target = fresh.count + 50 + (size_t)(rand() % 300);
    run_until(fresh_replies_reached, &fresh, 10000);
    run_for(rand() % 30);
    proc_kill(p, SIGKILL);
    CHECK(proc_wait(p, 10000), "no exit after SIGKILL");
  }
  struct proc *p = proc_start(script, journal ? args : NULL);
  /* The last run: everything still known is answered. */
  for (int waited = 0; waited < 60000; waited += 200) {
    int *seen = answers(first, n);
    int missing = 0;
    for (int i = 0; i < n; i++) missing += seen[i] == 0;
    free(seen);
    if (missing == 0) break;
    run_for(200);
    /* Without a journal the lost ones never come: stop once quiet. */
    if (!journal && fakeapi_unanswered(api) == 0 && waited > 3000) break;
  }
  proc_stop_cleanly(p);
  int *seen = answers(first, n);
  for (int i = 0; i < n; i++) {
    if (seen[i] == 0) out.lost++;
    else out.handled++;
    if (seen[i] > 1) out.duplicates += seen[i] - 1;
  }
  free(seen);
  fprintf(stderr, "%d updates, %d kills%s: %d handled, %d lost, %d handled "
          "more than once\n", n, kills, journal ? " with the journal" : "",
          out.handled, out.lost, out.duplicates);
  return out;
}

TEST_SERIAL(kill9_journal) {
  enum { N = 20000, KILLS = 20, CONCURRENCY = 200 };
  struct kill_run r = kill_and_restart(N, KILLS, true, (unsigned)harness_now_ms());
  CHECK(r.lost == 0, "%d updates lost with the journal", r.lost);
  /* At least once: an update runs again only if the process died while it
   * ran or before its end was written, so at most what was in flight. */
  CHECK(r.duplicates <= KILLS * CONCURRENCY,
        "%d duplicates: more than in flight at %d kills", r.duplicates, KILLS);
}

TEST(kill9_no_journal) {
  struct kill_run r = kill_and_restart(4000, 5, false, (unsigned)harness_now_ms());
  CHECK(r.lost > 0, "no update was lost without the journal: the kill test "
        "cannot see a loss");
}

static char journal_path[512];
static const char *const *journal_args(void) {
  static const char *args[3];
  snprintf(journal_path, sizeof journal_path, "%s/bot.journal",
           harness_tmpdir());
  args[0] = "--journal";
  args[1] = journal_path;
  args[2] = NULL;
  return args;
}

TEST(drain_timeout_replays) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("drainj.lua", journal_bot);
  int64_t slow = fakeapi_push_text(api, 1, 1, "slow");
  const char *args[] = {"--journal", NULL, "--drain-timeout", "0.3", NULL};
  args[1] = journal_args()[1];
  struct proc *p = proc_start(script, args);
  run_for(500);
  proc_stop_cleanly(p);
  CHECK(strstr(proc_stderr(p), "cut short"), "the slow update was not cut short");
  struct proc *q = proc_start(script, args);
  char want[64];
  snprintf(want, sizeof want, "r%lld again", (long long)slow);
  CHECK(run_until(have_text, want, 10000),
        "the update cut short did not run again at the next start");
  proc_stop_cleanly(q);
}

/* An update that fails again when it is run after a restart is a dead
 * letter at once: logged, in FILE.dead and listed by --dead-letters while
 * tghost still runs, not one start later. */
TEST(dead_letters) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("poison.lua", journal_bot);
  int64_t poison = fakeapi_push_text(api, 1, 1, "poison");
  fakeapi_push_text(api, 2, 2, "fine");
  const char *const *args = journal_args();
  struct proc *p = proc_start(script, args);
  wait_stderr(p, "poisoned", 10000);
  proc_stop_cleanly(p);
  CHECK(!strstr(proc_stderr(p), "dead letter"), "dead after one failure");

  struct proc *q = proc_start(script, args);
  char line[96];
  snprintf(line, sizeof line, "update %lld is a dead letter: failed twice",
           (long long)poison);
  wait_stderr(q, line, 10000);
  const char *list_args[] = {"--journal", journal_path, "--dead-letters", NULL};
  struct proc *l = proc_start_env(NULL, list_args, (const char *[]){NULL}, false);
  CHECK(proc_wait(l, 5000), "--dead-letters did not exit");
  CHECK(proc_status(l) == 0, "--dead-letters exit status %d", proc_status(l));
  snprintf(line, sizeof line, "update %lld (", (long long)poison);
  CHECK(strstr(proc_stdout(l), line) && strstr(proc_stdout(l), "poisoned"),
        "the dead letter is not listed while tghost runs: %s",
        proc_stdout(l));
  proc_stop_cleanly(q);

  /* Set aside for good: the next start neither runs it nor lists it again. */
  struct proc *r = proc_start(script, args);
  wait_calls("getMe", 3, 10000);
  run_for(300);
  proc_stop_cleanly(r);
  CHECK(!strstr(proc_stderr(r), "poisoned") &&
            !strstr(proc_stderr(r), "dead letter"),
        "the dead letter ran or was counted again");
  struct proc *l2 = proc_start_env(NULL, list_args, (const char *[]){NULL},
                                   false);
  CHECK(proc_wait(l2, 5000) && strstr(proc_stdout(l2), "1 dead letter(s)"),
        "listed twice: %s", proc_stdout(l2));
}

TEST(truncated_journal) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("trunc.lua", journal_bot);
  int64_t slow = fakeapi_push_text(api, 1, 1, "slow");
  const char *const *args = journal_args();
  struct proc *p = proc_start(script, args);
  run_for(500);
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 5000), "no exit");
  /* A crash in the middle of a write: half a record at the end. */
  FILE *f = fopen(journal_path, "a");
  fputs("U 99999 1 0 500 0badc0de\n{\"update_id\":99999,\"mess", f);
  fclose(f);
  struct proc *q = proc_start(script, args);
  char want[64];
  snprintf(want, sizeof want, "r%lld again", (long long)slow);
  CHECK(run_until(have_text, want, 10000), "the good record was not replayed");
  CHECK(strstr(proc_stderr(q), "a truncated record at the end"),
        "the cut-off tail was not reported");
  proc_stop_cleanly(q);
}

TEST(foreign_journal) {
  harness_api();
  const char *script = harness_write("foreign.lua", journal_bot);
  const char *const *args = journal_args();
  FILE *f = fopen(journal_path, "w");
  fputs("tghost-journal 1 bot 777\n", f);
  fclose(f);
  struct proc *p = proc_start(script, args);
  CHECK(proc_wait(p, 5000), "no exit with a foreign journal");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "belongs to bot 777"), "unclear: %s",
        proc_stderr(p));
  CHECK(fakeapi_poll_count(harness_api()) == 0, "it polled anyway");
  proc_check_clean(p);
}

TEST(unwritable_journal) {
  harness_api();
  const char *script = harness_write("unwritable.lua", journal_bot);
  const char *args[] = {"--journal", "/proc/tghost-no-such-dir/x.journal", NULL};
  struct proc *p = proc_start(script, args);
  CHECK(proc_wait(p, 5000), "no exit with an unwritable journal");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "cannot write the journal"), "unclear: %s",
        proc_stderr(p));
  CHECK(fakeapi_poll_count(harness_api()) == 0, "it polled anyway");
  proc_check_clean(p);
}

/* A journal that cannot be written mid-run (here: a file size limit, as a
 * full disk would) stops tghost before it confirms what it could not
 * record. */
TEST(journal_write_fails) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("full.lua", journal_bot);
  for (int i = 0; i < 2000; i++) fakeapi_push_text(api, 1 + i % 50, 1, "x");
  const char *const *args = journal_args();
  struct rlimit old, small = {48 * 1024, 48 * 1024};
  getrlimit(RLIMIT_FSIZE, &old);
  setrlimit(RLIMIT_FSIZE, &small);   /* inherited by tghost */
  struct proc *p = proc_start(script, args);
  setrlimit(RLIMIT_FSIZE, &old);
  CHECK(proc_wait(p, 20000), "tghost went on with a journal it cannot write");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "cannot write the journal") &&
            strstr(proc_stderr(p), "polling stops"),
        "unclear: %s", proc_stderr(p));
  /* Every update Telegram was told to forget is in the journal. */
  FILE *f = fopen(journal_path, "r");
  CHECK(f, "no journal");
  char line[512];
  long long last = -1, id;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "U %lld ", &id) == 1 && id > last) last = id;
  fclose(f);
  CHECK(fakeapi_confirmed_offset(api) <= last + 1,
        "offset %lld confirmed, but the journal ends at update %lld",
        (long long)fakeapi_confirmed_offset(api), last);
  proc_check_clean(p);
}
