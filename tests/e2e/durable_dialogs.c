/* Durable conversations end to end (conversation{ storage = ... }): a
 * dialog's record in SQLite or Redis, and the dialog going on by replay
 * after kill -9 (with --journal), after a reload that changes an
 * unrelated handler, and ending with ConversationChanged when the dialog's
 * own code changed; in a cluster, at the member its partition moves to.
 * No message is sent twice. */
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "clusterrun.h"
#include "harness.h"
#include "redisproc.h"

/* --- helpers ------------------------------------------------------------ */

static bool have_text(void *ud) { return api_sent_text(ud); }

static void expect_text(const char *text) {
  CHECK(run_until(have_text, (void *)text, 10000), "no reply '%s' arrived",
        text);
}

struct text_count {
  const char *text;
  size_t want;
};

static bool have_count(void *ud) {
  struct text_count *w = ud;
  return replies_with(w->text) >= w->want;
}

/* Waits until text was sent want times. */
static void expect_count(const char *text, size_t want) {
  struct text_count w = {text, want};
  CHECK(run_until(have_count, &w, 10000), "'%s' came %zu times, not %zu",
        text, replies_with(text), want);
}

/* A file replaced the way many editors save: a new file renamed over it. */
static void write_by_rename(const char *name, const char *content) {
  char tmpname[128];
  snprintf(tmpname, sizeof tmpname, ".%s.tmp", name);
  const char *tmp = harness_write(tmpname, content);
  char path[256];
  snprintf(path, sizeof path, "%s/%s", harness_tmpdir(), name);
  CHECK(rename(tmp, path) == 0, "rename %s", tmp);
}

/* The five-question dialog; %s: the storage expression, the text of
 * other messages' replies. */
static const char quiz_fmt[] =
    "conversation{ storage = %s }\n"
    "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
    "bot.use(session{ storage = %s, initial = function() return { quizzes = 0 } end })\n"
    "bot.command('quiz', function(ctx)\n"
    "  ctx.session.quizzes = ctx.session.quizzes + 1\n"
    "  local answers = {}\n"
    "  for i = 1, 5 do\n"
    "    ctx:reply('Q' .. i)\n"
    "    answers[i] = ctx:wait('message:text').msg.text\n"
    "  end\n"
    "  ctx:reply('done ' .. table.concat(answers, ',') .. ' quizzes '\n"
    "            .. ctx.session.quizzes)\n"
    "end)\n"
    "bot.on('message:text', function(ctx) ctx:reply('%s ' .. ctx.msg.text) end)\n"
    "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
    "run(bot)\n";

/* Each of Q1..Q5 was sent once (no question asked twice). */
static void check_asked_once(void) {
  for (int i = 1; i <= 5; i++) {
    char q[8];
    snprintf(q, sizeof q, "Q%d", i);
    CHECK(replies_with(q) == 1, "'%s' was sent %zu times", q, replies_with(q));
  }
}

struct stored_wait {
  struct proc *p;
  size_t before;
};

static bool stored_again(void *ud) {
  struct stored_wait *w = ud;
  return count_in(proc_stderr(w->p), "record stored") > w->before;
}

/* Runs fn(arg) and waits until the dialog's record was stored once more
 * (it is, with the open wait, before the wait suspends). */
static void then_stored(struct proc *p, void (*fn)(const char *),
                        const char *arg) {
  struct stored_wait w = {p, count_in(proc_stderr(p), "record stored")};
  fn(arg);
  CHECK(run_until(stored_again, &w, 10000), "the record was not stored "
        "after '%s'", arg);
}

static void send_text(const char *text) {
  fakeapi_push_text(harness_api(), 1, 1, text);
}

/* Sends answer, sees question come, and waits for the record. */
static void answer(struct proc *p, const char *text, const char *question) {
  then_stored(p, send_text, text);
  expect_text(question);
}

static void start_quiz(struct proc *p) {
  then_stored(p, send_text, "/quiz");
  expect_text("Q1");
}

/* --- a crash ------------------------------------------------------------ */

/* kill -9 after the second answer, with --journal and the records in
 * SQLite: after the restart the dialog is at its third question, which is
 * not asked again; the answers before the crash are kept, and the
 * session's count shows the dialog's first update ran once. */
TEST(sqlite_kill9) {
  char db[600], script[4096], journal[600];
  snprintf(db, sizeof db, "tghost.storage.sqlite('%s/bot.db')",
           harness_tmpdir());
  snprintf(script, sizeof script, quiz_fmt, db, db, "other");
  const char *path = harness_write("quiz.lua", script);
  snprintf(journal, sizeof journal, "%s/bot.journal", harness_tmpdir());
  const char *args[] = {"--journal", journal, "--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  answer(p, "a1", "Q2");
  answer(p, "a2", "Q3");
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 10000), "no exit after SIGKILL");

  p = proc_start(path, args);
  wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
              10000);
  answer(p, "a3", "Q4");
  answer(p, "a4", "Q5");
  send_text("a5");
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  check_asked_once();
  CHECK(!reply_starting("other "), "an answer ran through the middleware");
  CHECK(!reply_starting("caught: "), "bot.catch was called");
  /* Over: its record is gone, a new message is no answer. */
  send_text("hello");
  expect_text("other hello");
  proc_stop_cleanly(p);
}


/* kill -9 between an answer and the dialog's next wait (its third
 * question is in flight, never answered): the answer's update is not done
 * in the journal until the record that has it is stored, so after the
 * restart the journal hands it back and the resumed dialog (at its second
 * question) takes it again: no answer is lost. The question in flight at
 * the crash is sent again (it may not have gone out); the others once. */
static long hold_q3(void *ud, const struct fake_call *call) {
  char *text = fake_call_string(call, "text");
  bool q3 = text && strcmp(text, "Q3") == 0;
  free(text);
  return q3 ? -1 : 0;
}

TEST(sqlite_kill9_mid_step) {
  char db[600], script[4096], journal[600];
  snprintf(db, sizeof db, "tghost.storage.sqlite('%s/bot.db')",
           harness_tmpdir());
  snprintf(script, sizeof script, quiz_fmt, db, db, "other");
  const char *path = harness_write("quiz.lua", script);
  snprintf(journal, sizeof journal, "%s/bot.journal", harness_tmpdir());
  const char *args[] = {"--journal", journal, "--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  answer(p, "a1", "Q2");
  fakeapi_set_delay_fn(harness_api(), hold_q3, NULL);
  send_text("a2");
  expect_text("Q3");   /* received, never answered */
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 10000), "no exit after SIGKILL");
  fakeapi_set_delay_fn(harness_api(), NULL, NULL);

  p = proc_start(path, args);
  wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
              10000);
  expect_count("Q3", 2);
  answer(p, "a3", "Q4");
  answer(p, "a4", "Q5");
  send_text("a5");
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  CHECK(replies_with("Q1") == 1 && replies_with("Q2") == 1 &&
        replies_with("Q4") == 1 && replies_with("Q5") == 1,
        "a question was asked twice");
  CHECK(!reply_starting("other "), "an answer ran through the middleware");
  proc_stop_cleanly(p);
}

/* A graceful stop ends a waiting durable dialog's coroutine but keeps
 * its record: it resumes at the next start, twice over, and still ends
 * well. */
TEST(stop_and_start) {
  char db[600], script[4096];
  snprintf(db, sizeof db, "tghost.storage.sqlite('%s/bot.db')",
           harness_tmpdir());
  snprintf(script, sizeof script, quiz_fmt, db, db, "other");
  const char *path = harness_write("quiz.lua", script);
  const char *args[] = {"--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  answer(p, "a1", "Q2");
  proc_stop_within(p, 5000);
  for (int round = 0; round < 2; round++) {
    p = proc_start(path, args);
    wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
                10000);
    if (round == 0) {
      answer(p, "a2", "Q3");
      proc_stop_within(p, 5000);
    }
  }
  answer(p, "a3", "Q4");
  answer(p, "a4", "Q5");
  send_text("a5");
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  check_asked_once();
  proc_stop_cleanly(p);
}

/* A sequential sink (one update at a time): the answer's job waits for
 * the dialog to store its record without keeping the only slot the dialog
 * needs to go on; and a graceful stop while the dialog runs on an answer
 * waits for that answer to be in the record. */
TEST(sequential_sink) {
  char db[600], script[4096];
  snprintf(db, sizeof db, "tghost.storage.sqlite('%s/bot.db')",
           harness_tmpdir());
  snprintf(script, sizeof script, quiz_fmt, db, db, "other");
  char *run = strstr(script, "run(bot)\n");
  CHECK(run, "no run(bot) in the script");
  strcpy(run, "run(bot, { sink = { kind = 'sequential' } })\n");
  const char *path = harness_write("quiz.lua", script);
  const char *args[] = {"--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  answer(p, "a1", "Q2");
  answer(p, "a2", "Q3");
  send_text("a3");
  expect_text("Q4");
  proc_stop_within(p, 5000);
  p = proc_start(path, args);
  wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
              10000);
  answer(p, "a4", "Q5");
  send_text("a5");
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  check_asked_once();
  proc_stop_cleanly(p);
}

/* A graceful stop while a resumed dialog (which no sink runs) works on the
 * answer it just took: the answer's update is not cut short (the stop
 * waits until the record has it), and the next start goes on from there. */
TEST(stop_while_resumed_dialog_runs) {
  char db[600], script[4096];
  snprintf(db, sizeof db, "tghost.storage.sqlite('%s/bot.db')",
           harness_tmpdir());
  snprintf(script, sizeof script, quiz_fmt, db, db, "other");
  const char *wait = "answers[i] = ctx:wait('message:text').msg.text\n";
  char *at = strstr(script, wait);
  CHECK(at, "no wait in the script");
  at += strlen(wait);
  char rest[4096];
  snprintf(rest, sizeof rest, "%s", at);
  snprintf(at, sizeof script - (size_t)(at - script),
           "    tghost.sleep(0.3)\n%s", rest);
  const char *path = harness_write("quiz.lua", script);
  const char *args[] = {"--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  proc_stop_within(p, 5000);
  p = proc_start(path, args);
  wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
              10000);
  send_text("a1");
  wait_stderr(p, "answers the conversation of update", 10000);
  proc_stop_within(p, 5000);
  CHECK(!strstr(proc_stderr(p), "cut short: ids"),
        "the answer was cut short:\n%s", proc_stderr(p));
  expect_text("Q2");
  p = proc_start(path, args);
  wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
              10000);
  for (int i = 2; i <= 4; i++) {
    char a[8], q[8];
    snprintf(a, sizeof a, "a%d", i);
    snprintf(q, sizeof q, "Q%d", i + 1);
    answer(p, a, q);
  }
  send_text("a5");
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  check_asked_once();
  proc_stop_cleanly(p);
}

/* Answers that come in one batch with their question's update: each
 * waits for the chat's sequentialize key, which the dialog holds, and is
 * routed to the dialog once it has the key (conv.reroute); it then waits
 * for the dialog's record to have it, without keeping the key the dialog
 * needs to go on. */
TEST(answers_in_one_batch) {
  char db[600], script[4096];
  snprintf(db, sizeof db, "tghost.storage.sqlite('%s/bot.db')",
           harness_tmpdir());
  snprintf(script, sizeof script, quiz_fmt, db, db, "other");
  const char *path = harness_write("quiz.lua", script);
  const char *args[] = {"--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  const char *texts[] = {"/quiz", "a1", "a2", "a3", "a4", "a5"};
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
    send_text(texts[i]);
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  check_asked_once();
  char *other = reply_starting("other ");
  CHECK(!other, "an answer ran through the middleware: '%s'", other);
  proc_stop_cleanly(p);
}

/* --- Redis, a crash and a reload ------------------------------------------ */

static bool redis_ready(void *ud) { return redisproc_ready(ud); }

/* Without sequentialize: each answer is sent while its dialog's record is
 * being written (a storage whose writes take half a second; a transcript
 * answers that fast). The dialog holds its key from the moment ctx:wait
 * is called, so the answer waits for the wait instead of running through
 * the middleware. Four chats at once, each dialog three questions long. */
TEST(quick_answers_without_sequentialize) {
  const char *script = harness_write("quick.lua",
      "local slow = { data = {} }\n"
      "function slow:get(key) return self.data[key] end\n"
      "function slow:set(key, value) tghost.sleep(0.5); self.data[key] = value end\n"
      "function slow:delete(key) self.data[key] = nil end\n"
      "function slow:cas(key, expected, new)\n"
      "  if self.data[key] ~= expected then return false, self.data[key] end\n"
      "  self.data[key] = new\n"
      "  return true\n"
      "end\n"
      "conversation{ storage = tghost.storage.custom(slow, 'slow') }\n"
      "bot.command('register', function(ctx)\n"
      "  local c = ctx.chat.id\n"
      "  local got = {}\n"
      "  for i = 1, 3 do\n"
      "    ctx:reply(('Q%d %d'):format(i, c))\n"
      "    got[i] = ctx:wait('message:text').msg.text\n"
      "  end\n"
      "  ctx:reply(('saved %d %s'):format(c, table.concat(got, ',')))\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('other ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  struct fakeapi *api = harness_api();
  enum { CHATS = 4 };
  for (int64_t chat = 1; chat <= CHATS; chat++)
    fakeapi_push_text(api, chat, chat, "/register");
  char text[64];
  for (int q = 1; q <= 3; q++) {
    for (int64_t chat = 1; chat <= CHATS; chat++) {
      snprintf(text, sizeof text, "Q%d %lld", q, (long long)chat);
      expect_text(text);
    }
    /* Past the question's reply, into the record's write (0.5 s). */
    run_for(100);
    for (int64_t chat = 1; chat <= CHATS; chat++) {
      snprintf(text, sizeof text, "a%d", q);
      fakeapi_push_text(api, chat, chat, text);
    }
  }
  for (int64_t chat = 1; chat <= CHATS; chat++) {
    snprintf(text, sizeof text, "saved %lld a1,a2,a3", (long long)chat);
    expect_text(text);
  }
  char *other = reply_starting("other ");
  CHECK(!other, "an answer ran through the middleware: '%s'", other);
  proc_stop_cleanly(p);
}

/* The records (and the sessions) in Redis: kill -9 after the second
 * answer, then, with the dialog resumed, a SIGHUP that loads a script
 * whose other handler changed: the waiting dialog moves to the new
 * generation (the old one retires at once, nothing pins it) and goes on
 * at its question, every question asked once. */
TEST(redis_kill9_then_reload) {
  redisproc_need();
  struct redisproc redis = {0};
  char dir[600], store[400], script[4096], journal[600];
  snprintf(dir, sizeof dir, "%s/redis", harness_tmpdir());
  redisproc_start(&redis, dir, NULL);
  CHECK(run_until(redis_ready, &redis, 10000), "redis-server did not start");
  snprintf(store, sizeof store, "tghost.storage.redis('%s')", redis.url);
  snprintf(script, sizeof script, quiz_fmt, store, store, "other");
  const char *path = harness_write("quiz.lua", script);
  snprintf(journal, sizeof journal, "%s/bot.journal", harness_tmpdir());
  const char *args[] = {"--journal", journal, "--no-watch", "--log-level",
                        "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  answer(p, "a1", "Q2");
  answer(p, "a2", "Q3");
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 10000), "no exit after SIGKILL");

  p = proc_start(path, args);
  wait_stderr(p, "conversations: 1 dialog(s) resumed from their records",
              10000);
  /* A command is no answer: it runs through the middleware, the resumed
   * dialog waits on. */
  send_text("/ping");
  expect_text("other /ping");
  snprintf(script, sizeof script, quiz_fmt, store, store, "other2");
  write_by_rename("quiz.lua", script);
  proc_kill(p, SIGHUP);
  wait_stderr(p, "1 waiting durable conversation(s) move to generation 2",
              10000);
  wait_stderr(p, "generation 1 retired", 10000);
  answer(p, "a3", "Q4");
  answer(p, "a4", "Q5");
  send_text("a5");
  expect_text("done a1,a2,a3,a4,a5 quizzes 1");
  check_asked_once();
  send_text("hello");
  expect_text("other2 hello");
  CHECK(replies_with("other /ping") == 1 && !reply_starting("other a") &&
        !reply_starting("other2 a"), "an answer ran through the middleware");
  CHECK(!reply_starting("caught: "), "bot.catch was called");
  proc_stop_cleanly(p);
}

/* --- a cluster ------------------------------------------------------------------ */

/* Two members of a cluster, the records in its Redis: a dialog at its
 * third question on the member that owns its chat's partition, which
 * reloads (another handler changed: the dialog stays on its code there)
 * and then stops (gracefully: its waiting dialog is cut short, its first
 * update stays in the partition's record), so the partition moves to the
 * other member. That one started before the dialog had any record; it takes the
 * first update over (redelivered), finds the dialog's record and replays
 * it: the dialog goes on at its third question, there, and no question is
 * asked twice. */
static const char cluster_quiz[] =
    "local me = os.getenv('NAME')\n"
    "conversation{ storage = tghost.storage.redis(os.getenv('REDIS_URL')) }\n"
    "bot.command('quiz', function(ctx)\n"
    "  local answers = {}\n"
    "  for i = 1, 5 do\n"
    "    ctx:reply('Q' .. i .. ' ' .. me)\n"
    "    answers[i] = ctx:wait('message:text').msg.text\n"
    "  end\n"
    "  ctx:reply('done ' .. table.concat(answers, ',') .. ' at ' .. me)\n"
    "end)\n"
    "bot.on('message:text', function(ctx) ctx:reply('%s ' .. me) end)\n"
    "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
    "run(bot, { cluster = { lease = 1, partitions = 16 } })\n";

static bool asked_q1(void *ud) {
  (void)ud;
  return api_sent_text("Q1 A") || api_sent_text("Q1 B");
}

/* killed: x is killed with SIGKILL (its leases run out) instead of
 * reloaded and stopped. */
static void partition_moves(bool killed) {
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  char script[2048];
  snprintf(script, sizeof script, cluster_quiz, "other");
  r.script = harness_write("quiz.lua", script);
  r.extra_args = (const char *[]){"--log-level", "debug", NULL};
  struct proc *m[2];
  m[0] = clusterrun_start_env(&r, 0, (const char *[]){"NAME=A", NULL});
  wait_stderr(m[0], "took over partition", 20000);
  m[1] = clusterrun_start_env(&r, 1, (const char *[]){"NAME=B", NULL});
  /* B's share moves to it (with 16 partitions it gets some but with a
   * chance of 2^-16); the moves settle. */
  wait_stderr(m[1], "took over partition", 20000);
  run_for(500);
  send_text("/quiz");
  CHECK(run_until(asked_q1, NULL, 20000), "no member asked Q1");
  /* x asks, y takes over. */
  int x = api_sent_text("Q1 A") ? 0 : 1, y = 1 - x;
  const char *names[] = {"A", "B"};
  char want[64];
  for (int i = 1; i <= 2; i++) {
    char a[8];
    snprintf(a, sizeof a, "a%d", i);
    snprintf(want, sizeof want, "Q%d %s", i + 1, names[x]);
    send_text(a);
    expect_text(want);
  }
  /* The record is stored before the wait suspends. */
  wait_stderr(m[x], "record stored (6 events", 10000);
  if (killed) {
    proc_kill(m[x], SIGKILL);
    CHECK(proc_wait(m[x], 10000), "%s did not die", names[x]);
  } else {
    /* A reload that changes another handler: in a cluster the dialog
     * stays where it is (its first update, in its partition's record, is
     * what resumes it at the partition's next owner). */
    snprintf(script, sizeof script, cluster_quiz, "other2");
    write_by_rename("quiz.lua", script);
    proc_kill(m[x], SIGHUP);
    wait_stderr(m[x], "generation 2 loaded", 10000);
    proc_kill(m[x], SIGTERM);
    CHECK(proc_wait(m[x], 30000), "%s did not stop", names[x]);
    CHECK(proc_status(m[x]) == 0, "%s exited with %d", names[x],
          proc_status(m[x]));
  }
  /* (Not a check: what counts is what the user sees next.) */
  run_until_stderr(m[y], "resumes from its record", 20000);
  for (int i = 3; i <= 4; i++) {
    char a[8];
    snprintf(a, sizeof a, "a%d", i);
    snprintf(want, sizeof want, "Q%d %s", i + 1, names[y]);
    send_text(a);
    expect_text(want);
  }
  send_text("a5");
  snprintf(want, sizeof want, "done a1,a2,a3,a4,a5 at %s", names[y]);
  expect_text(want);
  for (int i = 1; i <= 5; i++) {
    char q[8];
    snprintf(q, sizeof q, "Q%d ", i);
    CHECK(sent_starting(q) == 1, "'%s' was asked %zu times", q,
          sent_starting(q));
  }
  CHECK(!reply_starting("other") && !reply_starting("caught: "),
        "an answer ran through the middleware, or bot.catch was called");
  clusterrun_finish(&r);
}

TEST(cluster_partition_moves) { partition_moves(false); }

/* The same with the dialog's member killed: its partitions go to the
 * other member once their leases run out. */
TEST(cluster_owner_killed) { partition_moves(true); }

/* --- the dialog's own code changes ------------------------------------------ */

/* A reload that changes what the dialog does (it greets before the first
 * question now): the moved dialog's replay does not match its record; the
 * dialog ends, bot.catch gets a ConversationChanged that says where, the
 * record is deleted, the user's next message is no answer, and a new
 * /quiz runs the new code. A record of another version (conversation{
 * version }) is not replayed at all. */
static const char changed_fmt[] =
    "conversation{ storage = tghost.storage.memory('dialogs'), version = %d }\n"
    "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
    "bot.command('quiz', function(ctx)\n"
    "  %s\n"
    "  for i = 1, 5 do\n"
    "    ctx:reply('Q' .. i)\n"
    "    ctx:wait('message:text')\n"
    "  end\n"
    "  ctx:reply('done')\n"
    "end)\n"
    "bot.on('message:text', function(ctx) ctx:reply('other ' .. ctx.msg.text) end)\n"
    "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
    "run(bot)\n";

TEST(dialog_changed) {
  char script[2048];
  snprintf(script, sizeof script, changed_fmt, 1, "");
  const char *path = harness_write("quiz.lua", script);
  const char *args[] = {"--no-watch", "--log-level", "debug", NULL};
  struct proc *p = proc_start(path, args);
  start_quiz(p);
  answer(p, "a1", "Q2");
  snprintf(script, sizeof script, changed_fmt, 1, "ctx:reply('Welcome')");
  write_by_rename("quiz.lua", script);
  proc_kill(p, SIGHUP);
  wait_stderr(p, "1 waiting durable conversation(s) move to generation 2",
              10000);
  char *caught = NULL;
  for (int i = 0; i < 100 && !caught; i++) {
    run_for(100);
    caught = reply_starting("caught: ");
  }
  CHECK(caught, "bot.catch heard nothing of the change");
  CHECK(strstr(caught, "caught: ConversationChanged: conversation 1:1 does not "
               "replay its record: at step 2 the record has ctx:wait on 1:1, "
               "the code now bot.api.sendMessage (") &&
        strstr(caught, "quiz.lua:6); it ends"),
        "bot.catch got: %s", caught);
  free(caught);
  send_text("a2");
  expect_text("other a2");
  CHECK(!api_sent_text("Welcome"), "the replay sent a message");
  CHECK(replies_with("Q1") == 1, "Q1 was asked again");
  /* A new dialog runs the new code. */
  then_stored(p, send_text, "/quiz");
  expect_text("Welcome");
  expect_count("Q1", 2);

  /* Another version: not replayed. */
  snprintf(script, sizeof script, changed_fmt, 2, "ctx:reply('Welcome')");
  write_by_rename("quiz.lua", script);
  proc_kill(p, SIGHUP);
  wait_stderr(p, "move to generation 3", 10000);
  const char *want = "caught: ConversationChanged: conversation 1:1 was "
                     "recorded by version 1 of the script, which is now "
                     "version 2; it ends";
  CHECK(run_until(have_text, (void *)want, 10000), "no '%s'", want);
  CHECK(replies_with("Welcome") == 1, "the replay sent a message");
  proc_stop_cleanly(p);
}

/* --- what it costs -------------------------------------------------------- */

/* CPU time (user + system) the process has used, in ms. */
static double proc_cpu_ms(const struct proc *p) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", proc_pid(p));
  FILE *f = fopen(path, "r");
  CHECK(f, "cannot read %s", path);
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  const char *q = strrchr(line, ')');
  unsigned long utime = 0, stime = 0;
  CHECK(q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                    "%lu %lu", &utime, &stime) == 2, "bad %s", path);
  return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* A line of sqlite3's output for a query on db, as a number. */
static double sqlite_number(const char *db, const char *query) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\"", db, query);
  FILE *f = popen(cmd, "r");
  CHECK(f, "cannot run sqlite3");
  double v = -1;
  CHECK(fscanf(f, "%lf", &v) == 1, "sqlite3 gave no number for %s", query);
  pclose(f);
  return v;
}

/* Counts replies by text prefix, looking at each call once (the big test
 * has tens of thousands); keeps the last "stats " reply. */
#define TALLY_MAX 4
struct tally {
  const char *prefix[TALLY_MAX];
  size_t count[TALLY_MAX];
  size_t scanned;
  long last_stats;
};

static void tally_update(struct tally *t) {
  struct fakeapi *api = harness_api();
  size_t n = fakeapi_call_count(api);
  for (; t->scanned < n; t->scanned++) {
    const struct fake_call *c = fakeapi_call(api, t->scanned);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    const char *p = strstr(c->params, "\"text\":\"");
    if (!p) continue;
    p += 8;
    for (int i = 0; i < TALLY_MAX && t->prefix[i]; i++)
      if (strncmp(p, t->prefix[i], strlen(t->prefix[i])) == 0) t->count[i]++;
    if (strncmp(p, "stats ", 6) == 0) sscanf(p, "stats %ld", &t->last_stats);
  }
}

struct tally_wait {
  struct tally *t;
  int index;
  size_t want;
};

static bool tally_reached(void *ud) {
  struct tally_wait *w = ud;
  tally_update(w->t);
  return w->t->count[w->index] >= w->want;
}

static void wait_tally(struct tally *t, int index, size_t want,
                       int timeout_ms) {
  struct tally_wait w = {t, index, want};
  CHECK(run_until(tally_reached, &w, timeout_ms),
        "only %zu of %zu replies starting '%s' arrived", t->count[index], want,
        t->prefix[index]);
}

/* The bot's count of waiting conversations, asked with /stats in chat 1
 * (tally index 0 counts "stats " replies). */
static long waiting_now(struct tally *t) {
  tally_update(t);
  size_t before = t->count[0];
  fakeapi_push_text(harness_api(), 1, 1, "/stats");
  wait_tally(t, 0, before + 1, 30000);
  return t->last_stats;
}

/* Asks until want conversations wait; the CPU time tghost had used then. */
static double cpu_when_waiting(struct proc *p, struct tally *t, long want) {
  uint64_t deadline = harness_now_ms() + 120000;
  while (waiting_now(t) != want) {
    CHECK(harness_now_ms() < deadline, "%ld conversations wait, not %ld",
          t->last_stats, want);
    run_for(50);
  }
  return proc_cpu_ms(p);
}

static const char many_fmt[] =
    "local conv = require('tghost.conv')\n"
    "conversation{ storage = tghost.storage.sqlite('%s') }\n"
    "bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))\n"
    "bot.command('register', function(ctx)\n"
    "  local steps = tonumber(ctx.match) or 1\n"
    "  local answers = {}\n"
    "  for i = 1, steps do\n"
    "    ctx:reply('q' .. i)\n"
    "    answers[i] = ctx:wait('message:text').msg.text\n"
    "  end\n"
    "  ctx:reply('age?')\n"
    "  ctx:reply('done ' .. answers[1] .. ' ' .. ctx:wait('message:text').msg.text)\n"
    "end)\n"
    "bot.command('stats', function(ctx)\n"
    "  local _, waiting = conv.stats()\n"
    "  ctx:reply('stats ' .. waiting)\n"
    "end)\n"
    "run(bot)\n";

/* Dialogs of `steps` answered questions waiting at their last one, in n
 * chats from first_chat: started, then tghost is stopped with SIGKILL,
 * started again, and how much CPU the resume took is returned (per
 * dialog, in us, over a start with nothing to resume), with the stored
 * bytes per dialog in *bytes. Then every dialog is finished. */
static double resume_cost(int n, int steps, int64_t first_chat, double *bytes,
                          double *seconds) {
  struct fakeapi *api = harness_api();
  char db[600], script[2048], text[64];
  snprintf(db, sizeof db, "%s/many-%d.db", harness_tmpdir(), steps);
  snprintf(script, sizeof script, many_fmt, db);
  const char *path = harness_write("many.lua", script);
  /* Generous: under ASan a resume's burst of work is slow. */
  const char *args[] = {"--cpu-budget", "5", "--no-watch", NULL};

  /* What starting costs with nothing to resume. */
  struct proc *p = proc_start(path, args);
  struct tally t = {{"stats ", "age?", "done "}, {0}, 0, -1};
  double idle_cpu = cpu_when_waiting(p, &t, 0);

  snprintf(text, sizeof text, "/register %d", steps);
  for (int i = 0; i < n; i++)
    fakeapi_push_text(api, first_chat + i, first_chat + i, text);
  for (int s = 1; s <= steps; s++) {
    for (int i = 0; i < n; i++) {
      snprintf(text, sizeof text, "n%d", i);
      fakeapi_push_text(api, first_chat + i, first_chat + i, text);
    }
  }
  tally_update(&t);
  size_t ages = t.count[1];
  wait_tally(&t, 1, ages + (size_t)n, 300000);
  cpu_when_waiting(p, &t, n);
  proc_kill(p, SIGKILL);
  CHECK(proc_wait(p, 10000), "no exit after SIGKILL");
  *bytes = sqlite_number(db, "select sum(length(value)) / count(*) from kv "
                             "where key like 'dialog:%'");
  CHECK(sqlite_number(db, "select count(*) from kv where key like "
                          "'dialog:%'") == n, "not %d records stored", n);

  p = proc_start(path, args);
  uint64_t t0 = harness_now_ms();
  double cpu = cpu_when_waiting(p, &t, n);
  *seconds = (harness_now_ms() - t0) / 1000.0;
  size_t done = t.count[2];
  for (int i = 0; i < n; i++)
    fakeapi_push_text(api, first_chat + i, first_chat + i, "42");
  wait_tally(&t, 2, done + (size_t)n, 300000);
  CHECK(replies_with("done n0 42") >= 1, "no 'done n0 42'");
  proc_stop_cleanly(p);
  return (cpu - idle_cpu) * 1000.0 / n;
}

/* 10,000 durable dialogs waiting at their second question, SIGKILL, and
 * all of them resumed: the bytes each keeps in the storage and the CPU a
 * resume costs; and the same for 300 dialogs of 10 and of 40 answered
 * questions, for how a resume grows with the dialog's length. */
TEST_SERIAL(ten_thousand_durable) {
#ifdef TGHOST_SANITIZE
  /* ASan makes each step several times slower: fewer dialogs, so that the
   * test stays within its time (the README's figures come from release). */
  enum { MANY = 2000, LONG = 100 };
#else
  enum { MANY = 10000, LONG = 300 };
#endif
  double bytes1, bytes10, bytes40, s1, s10, s40;
  double cpu1 = resume_cost(MANY, 1, 100000, &bytes1, &s1);
  double cpu10 = resume_cost(LONG, 10, 200000, &bytes10, &s10);
  double cpu40 = resume_cost(LONG, 40, 300000, &bytes40, &s40);
  fprintf(stderr,
          "durable dialogs: %d waiting after 1 answer: %.0f B stored and "
          "%.0f us of CPU to resume each (all in %.1f s); %d after 10 "
          "answers: %.0f B, %.0f us (%.1f s); %d after 40 answers: %.0f B, "
          "%.0f us (%.1f s)\n", MANY, bytes1, cpu1, s1, LONG, bytes10, cpu10,
          s10, LONG, bytes40, cpu40, s40);
  /* Bounds an order of magnitude above what we measure, so that only a
   * change in kind (a record that keeps too much) fails. */
  CHECK(bytes1 < 4096, "%.0f B stored per dialog of one answer", bytes1);
  CHECK(bytes40 < 40 * 2048, "%.0f B stored per dialog of 40 answers",
        bytes40);
}
