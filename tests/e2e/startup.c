/* Starting tghost end to end: what ends it before it serves, with a clear
 * message and without touching the network (no script, a syntax or load
 * error, no token or a rejected one, a bad --api-root, misspelt run() and
 * bot.start options, an invalid filter query, a script that never calls
 * run(bot)); errors that point at the script's line; --check, also of a
 * script that calls the Bot API at its top level; the token read from a
 * file and kept out of everything the script prints; bot.start's options
 * (drop_pending_updates, onStart, not again on a reload); a token of the
 * wrong shape, a module require cannot find, and habits from grammY,
 * Telegraf and JavaScript, each named with its fix in one line. */
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

static const char echo_script[] =
    "bot.on('message', function(ctx) ctx:reply(ctx.msg.text) end)\n"
    "run(bot)\n";

static void expect_failure(struct proc *p, const char *needle) {
  CHECK(proc_wait(p, 15000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status was %d, not 1", proc_status(p));
  CHECK(strstr(proc_stderr(p), needle), "stderr lacks '%s'", needle);
  proc_check_clean(p);
}

static void expect_no_network(void) {
  struct fakeapi *api = harness_api();
  CHECK(fakeapi_call_count(api) == 0 && fakeapi_poll_count(api) == 0 &&
            fakeapi_connections_accepted(api) == 0,
        "the server was contacted (%zu calls)", fakeapi_call_count(api));
}

/* --- what ends tghost before it serves ---------------------------------- */

TEST(missing_script) {
  struct proc *p = proc_start("/nonexistent/bot.lua", NULL);
  expect_failure(p, "cannot open /nonexistent/bot.lua");
  expect_no_network();
}

TEST(syntax_error) {
  const char *script = harness_write("syntax.lua",
      "bot.on('message', function(ctx)\n  ctx:reply('x'\nend)\nrun(bot)\n");
  struct proc *p = proc_start(script, NULL);
  expect_failure(p, "syntax.lua:3:");
  expect_no_network();
}

TEST(load_error) {
  const char *script = harness_write("loaderr.lua",
      "bot.on('message', function(ctx) end)\n"
      "local cfg = nil\n"
      "print(cfg.name)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  expect_failure(p, "loaderr.lua:3: attempt to index a nil value");
  expect_no_network();
}

TEST(no_token) {
  const char *script = harness_write("notoken.lua", echo_script);
  static const char *const env[] = {NULL};
  struct proc *p = proc_start_env(script, NULL, env, true);
  expect_failure(p, "BOT_TOKEN");
  expect_no_network();
}

TEST(bad_token) {
  harness_api();
  const char *script = harness_write("badtoken.lua", echo_script);
  static const char *const env[] = {"BOT_TOKEN=999:wrong-token", NULL};
  struct proc *p = proc_start_env(script, NULL, env, true);
  expect_failure(p, "401");
  CHECK(strstr(proc_stderr(p), "BOT_TOKEN"), "the 401 message does not name BOT_TOKEN");
  CHECK(!strstr(proc_stderr(p), "wrong-token"), "the rejected token was printed");
}

TEST(bad_api_root) {
  harness_api();
  const char *roots[] = {"http://", "http://[::1", "http://127.0.0.1:99999"};
  for (size_t i = 0; i < 3; i++) {
    const char *args[] = {"--api-root", roots[i], NULL};
    const char *env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
    struct proc *p =
        proc_start_env(harness_write("root.lua", echo_script), args, env, false);
    CHECK(proc_wait(p, 5000), "no exit for --api-root %s", roots[i]);
    CHECK(proc_status(p) == 2, "exit status %d for --api-root %s",
          proc_status(p), roots[i]);
    CHECK(strstr(proc_stderr(p), "--api-root"), "the message does not say "
          "what is wrong: %s", proc_stderr(p));
    proc_check_clean(p);
  }
}

TEST(json_load_error) {
  harness_api();
  const char *args[] = {"--log-format", "json", NULL};
  struct proc *p =
      proc_start(harness_write("broken.lua", "bot.on('message'\n"), args);
  CHECK(proc_wait(p, 5000), "no exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  const char *err = proc_stderr(p);
  CHECK(err[0] == '{' && strstr(err, "\"level\":\"error\"") &&
            strstr(err, "broken.lua:"),
        "the load error is not a JSON log line: %s", err);
  proc_check_clean(p);
}

TEST(bad_options) {
  harness_api();
  struct proc *p = proc_start(
      write_reply_script("badopt.lua", "{ sink = { concurency = 5 } }"), NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "sink.concurency"), "the option is not named");
  CHECK(strstr(proc_stderr(p), "did you mean concurrency"), "no suggestion");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "the network was used");
  proc_check_clean(p);

  struct proc *q = proc_start(
      write_reply_script("badtype.lua", "{ runner = { silent = 'yes' } }"), NULL);
  CHECK(proc_wait(q, 10000), "no exit");
  CHECK(proc_status(q) == 1, "exit status %d", proc_status(q));
  CHECK(strstr(proc_stderr(q), "runner.silent must be a boolean"),
        "the type error is unclear");
  proc_check_clean(q);

  struct proc *r = proc_start(
      write_reply_script("badrange.lua", "{ sink = { concurrency = 0 } }"), NULL);
  CHECK(proc_wait(r, 10000), "no exit");
  CHECK(proc_status(r) == 1, "exit status %d", proc_status(r));
  CHECK(strstr(proc_stderr(r), "sink.concurrency must be between 1 and"),
        "the range error is unclear");
  proc_check_clean(r);
}

/* An invalid filter query stops the script at load, with the line and a
 * suggestion, before any network call. */
TEST(invalid_query_at_load) {
  const char *script = harness_write("typo.lua",
      "bot.command('start', function(ctx) end)\n"
      "bot.on('mesage:text', function(ctx) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 15000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "typo.lua:2: invalid filter query 'mesage:text'") &&
            strstr(proc_stderr(p), "did you mean 'message:text'?"),
        "stderr lacks the error");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "the server was contacted");
  proc_check_clean(p);
}

TEST(forgot_run) {
  harness_api();
  const char *script = harness_write("forgot.lua",
      "bot.command('start', function(ctx) ctx:reply('hi') end)\n"
      "print('loaded')\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "loaded"), "the script did not run");
  CHECK(count_in(proc_stderr(p), "never called run(bot) or bot.start()") == 1,
        "no one-line note about the missing run(bot)");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "the network was used");
  proc_check_clean(p);

  struct proc *c = proc_start(script, (const char *[]){"--check", NULL});
  CHECK(proc_wait(c, 10000), "no exit");
  CHECK(proc_status(c) == 0, "exit status %d", proc_status(c));
  CHECK(strstr(proc_stdout(c), "does not call run(bot) or bot.start(), so its "
                               "handlers would never receive an update"),
        "--check does not say that run() is not called");
  proc_check_clean(c);

  /* A plain Lua program (a unit test) is left alone. */
  const char *plain = harness_write("plain.lua", "print('just Lua')\n");
  struct proc *q = proc_start(plain, NULL);
  CHECK(proc_wait(q, 10000), "no exit");
  CHECK(proc_status(q) == 0, "exit status %d", proc_status(q));
  CHECK(!strstr(proc_stderr(q), "run(bot)"), "a plain script was nagged: %s",
        proc_stderr(q));
  proc_check_clean(q);
}

/* --- errors at the script's line ---------------------------------------- */

TEST(error_positions) {
  struct fakeapi *api = harness_api();
  /* run() options */
  const char *opt = harness_write("opts.lua",
      "bot.on('message', function() end)\n"
      "\n"
      "run(bot, { sink = { concurency = 5 } })\n");
  struct proc *p = proc_start(opt, NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "opts.lua:3: run(): unknown option sink.concurency"),
        "the option error has no file:line");
  proc_check_clean(p);
  const char *maxw = harness_write("maxw.lua",
      "bot.on('message', function() end)\n"
      "run(bot, { sink = { maxWaiting = 1.5 } })\n");
  p = proc_start(maxw, NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(strstr(proc_stderr(p), "maxw.lua:2: run(): option sink.maxWaiting "
                               "must be a whole number"),
        "the option error has no file:line");
  proc_check_clean(p);

  /* A bad sequentialize key names the key function's line. */
  const char *seq = harness_write("seq.lua",
      "bot.catch(function(err)\n"
      "  bot.api.sendMessage{ chat_id = 9, text = 'caught: ' .. tostring(err.error) }\n"
      "end)\n"
      "bot.use(sequentialize(function(ctx)\n"
      "  return ctx.msg.text == 'bad' and true or ctx.chat.id\n"
      "end))\n"
      "bot.on('message', function(ctx) ctx:reply('ok ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "bad");
  fakeapi_push_text(api, 1, 1, "good");
  p = proc_start(seq, NULL);
  wait_calls("sendMessage", 2, 10000);
  char *caught = reply_starting("caught: ");
  CHECK(caught && strstr(caught, "seq.lua:4: sequentialize: the key function "
                                 "returned a boolean"),
        "the key error says '%s'", caught ? caught : "(nothing)");
  CHECK(caught && !strstr(caught, "[tghost]"), "it points into tghost");
  free(caught);
  CHECK(api_sent_text("ok good"), "the next update was not handled");
  proc_stop_cleanly(p);
}

/* --- --check ------------------------------------------------------------ */

TEST(check_mode) {
  harness_api();
  struct proc *p = proc_start(
      write_reply_script("check.lua", "{ sink = { concurrency = 7 } }"),
      (const char *[]){"--check", NULL});
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "loads without errors"), "no confirmation");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "--check used the network");
  proc_check_clean(p);
}

/* --check runs the script's top level without opening a database or
 * connecting anywhere: SQLite and Redis stores read as empty there and
 * writes go nowhere (a top-level read failed the check before, blaming
 * tghost's own storage.lua). */
TEST(check_top_level_storage) {
  struct buf script = BUF_INIT;
  buf_printf(&script,
      "local db = tghost.storage.sqlite('%s/check.db')\n"
      "local shared = tghost.storage.redis('redis://:pw@127.0.0.1:1/0', 'bot:')\n"
      "local count = (db:get('count') or 0) + (shared:get('count') or 0)\n"
      "db:set('count', count + 1)\n"
      "shared:set('count', count + 1, 60)\n"
      "db:delete('old')\n"
      "print('count at load: ' .. count)\n"
      "bot.on('message', function(ctx) ctx:reply(tostring(db:get('count'))) end)\n"
      "run(bot)\n", harness_tmpdir());
  const char *path = harness_write("storage_check.lua", script.data);
  buf_free(&script);
  harness_api();
  struct proc *p = proc_start(path, (const char *[]){"--check", NULL});
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0 && strstr(proc_stdout(p), "count at load: 0") &&
            strstr(proc_stdout(p), "loads without errors"),
        "status %d: %s", proc_status(p), proc_stderr(p));
  char db[256];
  snprintf(db, sizeof db, "%s/check.db", harness_tmpdir());
  CHECK(access(db, F_OK) != 0, "--check created %s", db);
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "--check used the network");
  proc_check_clean(p);
}

TEST(check_top_level_calls) {
  harness_api();
  const char *script = harness_write("bot.lua",
      "bot.command('start', function(ctx) ctx:reply('hi') end)\n"
      "local ok = bot.api.setMyCommands{ commands = {\n"
      "  { command = 'start', description = 'Start' } } }\n"
      "assert(ok == true, 'setMyCommands gave ' .. tostring(ok))\n"
      "local me = bot.api.getMe()\n"
      "assert(type(me.id) == 'number' and me.is_bot and me.username, 'getMe')\n"
      "local msg = bot.api.sendMessage{ chat_id = -100123, text = 'up' }\n"
      "assert(msg.message_id and msg.chat.id == -100123, 'sendMessage')\n"
      "print('top level done')\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, (const char *[]){"--check", NULL});
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "top level done"), "the top level did not finish");
  CHECK(strstr(proc_stdout(p), "loads without errors and calls run()"),
        "no confirmation");
  /* One note per call, at the script's line. */
  const char *err = proc_stderr(p);
  CHECK(strstr(err, "bot.lua:2: --check: bot.api.setMyCommands was not sent"),
        "no note at the script's line for setMyCommands");
  CHECK(strstr(err, "bot.lua:5: --check: bot.api.getMe was not sent"),
        "no note for getMe");
  CHECK(count_in(err, "was not sent") == 3, "%zu notes for 3 calls",
        count_in(err, "was not sent"));
  CHECK(!strstr(err, "[tghost]"), "a message points into tghost: %s", err);
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "--check used the network");
  proc_check_clean(p);

  /* A call that could not be sent is an error at the script's line. */
  const char *bad = harness_write("bad.lua",
      "bot.on('message', function() end)\n"
      "bot.api.sendMessage{ chat_id = 1, text = function() end }\n"
      "run(bot)\n");
  struct proc *q = proc_start(bad, (const char *[]){"--check", NULL});
  CHECK(proc_wait(q, 10000), "no exit");
  CHECK(proc_status(q) == 1, "exit status %d", proc_status(q));
  CHECK(strstr(proc_stderr(q), "bad.lua:2: bot.api.sendMessage: cannot encode "
                               "the parameters"),
        "the error is not at the script's line");
  CHECK(!strstr(proc_stderr(q), "[tghost]"), "a message points into tghost");
  proc_check_clean(q);
}

/* --- the token ---------------------------------------------------------- */

TEST(token_file) {
  struct fakeapi *api = harness_api();
  const char *tokfile = harness_write("token.txt", TEST_TOKEN "\n");
  const char *script = harness_write("tf.lua", echo_script);
  const char *args[] = {"--token-file", tokfile, NULL};
  static const char *const env[] = {NULL};
  fakeapi_push_text(api, 42, 42, "via token file");
  struct proc *p = proc_start_env(script, args, env, true);
  wait_calls("sendMessage", 1, 10000);
  proc_stop_cleanly(p);
}

TEST(secrets) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("secret.lua",
      "local t = tghost.token()\n"
      "local enc = t:gsub(':', '%%3a')\n"
      "print('lower ' .. enc)\n"
      "print('upper ' .. t:gsub(':', '%%3A'))\n"
      "print('half ' .. t:match(':(.*)'))\n"
      "io.stderr:write('stderr ', t, '\\n')\n"
      "io.write('write ', t, '\\n')\n"
      "io.stdout:write('stdout ', enc, '\\n')\n"
      "print('env ' .. tostring(os.getenv('BOT_TOKEN')))\n"
      "local f = io.popen('env')\n"
      "local all = f:read('a'); f:close()\n"
      "print('child sees it: ' .. tostring(all:find(t:match(':(.*)'), 1, true) ~= nil))\n"
      "local g = io.popen('cat /proc/$PPID/environ')\n"
      "local parent = g:read('a'); g:close()\n"
      "print('parent environ: ' .. #parent .. ' bytes, holds it: ' ..\n"
      "      tostring(parent:find(t:match(':(.*)'), 1, true) ~= nil))\n"
      "bot.on('message', function(ctx) ctx:reply('ok') end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "x");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 1, 10000);
  const char *out = proc_stdout(p), *err = proc_stderr(p);
  CHECK(strstr(out, "env nil"), "os.getenv still sees BOT_TOKEN: %s", out);
  CHECK(strstr(out, "child sees it: false"), "a child process saw the token");
  CHECK(strstr(out, "parent environ: ") && strstr(out, "holds it: false") &&
            !strstr(out, "environ: 0 bytes"),
        "a child read the token in /proc/$PPID/environ: %s", out);
  /* /proc/PID/environ shows the first environment block, whatever
   * unsetenv did. */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/environ", proc_pid(p));
  FILE *f = fopen(path, "r");
  CHECK(f, "cannot read %s", path);
  char environ_block[65536];
  size_t n = fread(environ_block, 1, sizeof environ_block, f);
  fclose(f);
  CHECK(n > 0 && memmem(environ_block, n, "BOT_TOKEN=", 10) &&
            !memmem(environ_block, n, TEST_TOKEN, strlen(TEST_TOKEN)) &&
            !memmem(environ_block, n, strchr(TEST_TOKEN, ':') + 1,
                    strlen(strchr(TEST_TOKEN, ':') + 1)),
        "/proc/%d/environ still holds the token", proc_pid(p));
  CHECK(strstr(out, "half <token>") && strstr(out, "lower <token>") &&
            strstr(out, "upper <token>") && strstr(out, "write <token>") &&
            strstr(out, "stdout <token>"),
        "stdout is not redacted: %s", out);
  CHECK(strstr(err, "stderr <token>"), "io.stderr is not redacted");
  const char *half = strchr(TEST_TOKEN, ':') + 1;
  CHECK(!strstr(out, half) && !strstr(err, half), "the token's secret half leaked");
  CHECK(!strcasestr(out, "424242%3a") && !strcasestr(err, "424242%3a"),
        "the URL-encoded token leaked");
  proc_stop_within(p, 4000);
}

/* --- bot.start's options ------------------------------------------------ */

/* The first call of method, or NULL. */
static const struct fake_call *first_call(const char *method) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++)
    if (strcmp(fakeapi_call(api, i)->method, method) == 0)
      return fakeapi_call(api, i);
  return NULL;
}

static bool hup_reloaded(void *ud) {
  return strstr(proc_stderr(ud), "generation 2 loaded") != NULL;
}

TEST(start_options) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("start.lua",
      "bot.on('message', function(ctx) ctx:reply('r ' .. ctx.msg.text) end)\n"
      "bot.start{\n"
      "  drop_pending_updates = true,\n"
      "  onStart = function(me)\n"
      "    bot.api.sendMessage{ chat_id = 1, text = 'started as @' .. me.username }\n"
      "  end,\n"
      "}\n");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 1, 10000);
  fakeapi_push_text(api, 5, 5, "hello");
  wait_calls("sendMessage", 2, 10000);
  const struct fake_call *del = first_call("deleteWebhook");
  CHECK(del, "no deleteWebhook call");
  char *drop = fake_call_raw(del, "drop_pending_updates");
  CHECK(drop && strcmp(drop, "true") == 0, "drop_pending_updates = %s",
        drop ? drop : "(none)");
  free(drop);
  char *started = reply_starting("started as ");
  CHECK(started && strcmp(started, "started as @test_bot") == 0,
        "onStart sent '%s'", started ? started : "(nothing)");
  free(started);
  /* Both before the first getUpdates, as in grammY. */
  CHECK(fakeapi_poll_count(api) >= 1, "no poll");
  uint64_t first_poll = fakeapi_poll(api, 0)->received_us;
  CHECK(del->received_us < first_poll, "deleteWebhook came after polling began");
  CHECK(first_call("sendMessage")->received_us < first_poll,
        "onStart ran after polling began");
  CHECK(api_sent_text("r hello"), "the bot does not answer");
  /* A reload runs the top level again: it must neither drop pending
   * updates nor call onStart a second time. */
  proc_kill(p, SIGHUP);
  CHECK(run_until(hup_reloaded, p, 10000), "no reload after SIGHUP");
  fakeapi_push_text(api, 5, 5, "again");
  wait_calls("sendMessage", 3, 10000);
  CHECK(fakeapi_count_method(api, "deleteWebhook") == 1,
        "%zu deleteWebhook calls", fakeapi_count_method(api, "deleteWebhook"));
  CHECK(count_in(proc_stderr(p), "started as") == 0 &&
            fakeapi_count_method(api, "sendMessage") == 3,
        "onStart ran again on reload");
  proc_stop_cleanly(p);

  /* run(bot, {drop_pending_updates = true}) too. */
  const char *run_script = harness_write("run.lua",
      "bot.on('message', function(ctx) ctx:reply('ok') end)\n"
      "run(bot, { drop_pending_updates = true })\n");
  struct proc *q = proc_start(run_script, NULL);
  fakeapi_push_text(api, 6, 6, "x");
  wait_calls("sendMessage", 4, 10000);
  CHECK(fakeapi_count_method(api, "deleteWebhook") == 2, "run() did not call "
        "deleteWebhook");
  proc_stop_cleanly(q);

  /* A misspelt option gets a suggestion at the script's line. */
  const char *typo = harness_write("typo.lua",
      "bot.on('message', function() end)\n"
      "bot.start{ drop_pending_update = true }\n");
  struct proc *r = proc_start(typo, NULL);
  CHECK(proc_wait(r, 10000), "no exit");
  CHECK(proc_status(r) == 1, "exit status %d", proc_status(r));
  CHECK(strstr(proc_stderr(r), "typo.lua:2: bot.start: unknown option "
                               "drop_pending_update (did you mean "
                               "drop_pending_updates?)"),
        "no suggestion at the script's line");
  proc_check_clean(r);
}

/* --- messages that point at the fix ------------------------------------ */

/* Runs tghost on script with env and args, expects it to exit with status
 * and to say each of the NULL-terminated lines on stderr; no network. */
static struct proc *expect_exit(const char *script, const char *const *args,
                                const char *const *env, int status,
                                const char *const *says) {
  struct proc *p = proc_start_env(script, args, env, true);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(proc_status(p) == status, "exit status %d, not %d", proc_status(p),
        status);
  for (const char *const *s = says; *s; s++)
    CHECK(strstr(proc_stderr(p), *s), "stderr lacks '%s'", *s);
  proc_check_clean(p);
  return p;
}

/* A token of another shape is refused before any network call, with what
 * is wrong and the shape expected, and without being shown. */
TEST(malformed_token) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("bot.lua", echo_script);
  static const struct {
    const char *env, *secret, *problem;
  } cases[] = {
      {"BOT_TOKEN=AAHfakeSecretWithoutId", "AAHfakeSecret", "it has no ':'"},
      {"BOT_TOKEN=bot4242:AAHfakeSecret", "AAHfakeSecret",
       "it starts with 'bot'"},
      {"BOT_TOKEN=\"4242:AAHfakeSecret\"", "AAHfakeSecret", "it is in quotes"},
      {"BOT_TOKEN=4242:AAHfake Secret", "AAHfake", "other than letters"},
      {"BOT_TOKEN=42x:AAHfakeSecret", "AAHfakeSecret",
       "the part before ':' is not a number"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *env[] = {cases[i].env, NULL};
    const char *says[] = {"tghost: BOT_TOKEN is not a bot token: ",
                          cases[i].problem, "123456:ABC-DEF", NULL};
    struct proc *p = expect_exit(script, NULL, env, 2, says);
    CHECK(!strstr(proc_stderr(p), cases[i].secret) &&
              !strstr(proc_stdout(p), cases[i].secret),
          "the malformed token was shown");
  }
  /* From --token-file, the message names the file. */
  const char *file = harness_write("token.txt", "AAHfakeSecretWithoutId\n");
  const char *args[] = {"--token-file", file, NULL};
  static const char *const no_env[] = {NULL};
  const char *says[] = {"token.txt is not a bot token: it has no ':'", NULL};
  struct proc *p = expect_exit(script, args, no_env, 2, says);
  CHECK(!strstr(proc_stderr(p), "AAHfakeSecret"), "the token was shown");
  CHECK(fakeapi_connections_accepted(api) == 0,
        "tghost went to the network with a malformed token");
  /* The sandbox needs no token: a malformed one is ignored there. */
  const char *chat = harness_write("echo.chat", "> hi\n< hi\n");
  const char *sandbox_args[] = {"--sandbox", "--script", chat, NULL};
  static const char *const bad_env[] = {"BOT_TOKEN=AAHfakeSecret", NULL};
  p = proc_start_env(script, sandbox_args, bad_env, false);
  CHECK(proc_wait(p, 30000), "the sandbox did not exit");
  CHECK(proc_status(p) == 0, "the sandbox refused a token it does not use "
        "(status %d)", proc_status(p));
}

/* --check on a script: its status and what it said. */
static struct proc *check_script(const char *name, const char *code) {
  const char *script = harness_write(name, code);
  static const char *const args[] = {"--check", NULL};
  static const char *const env[] = {NULL};
  struct proc *p = proc_start_env(script, args, env, false);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  proc_check_clean(p);
  return p;
}

/* A module require cannot find: the message lists where tghost looked,
 * the script's folder first, on the one line a load error gets (Lua's own
 * message ends on a colon there); habits get a pointer. */
TEST(require_not_found) {
  struct proc *p = check_script("needs.lua", "local h = require('helpers')\n");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  struct buf want = BUF_INIT;
  buf_printf(&want, "needs.lua:1: module 'helpers' not found (looked for "
             "%s/helpers.lua, %s/helpers/init.lua, ", harness_tmpdir(),
             harness_tmpdir());
  CHECK(strstr(proc_stderr(p), want.data), "the places are not listed: %s",
        proc_stderr(p));
  CHECK(strstr(proc_stderr(p), "/helpers.so"), "C module places are missing");
  buf_free(&want);

  p = check_script("dotted.lua", "require('lib.util')\n");
  CHECK(strstr(proc_stderr(p), "/lib/util.lua, "), "a dotted name is not "
        "looked for as a path");
  p = check_script("ext.lua", "require('helpers.lua')\n");
  CHECK(strstr(proc_stderr(p), "require takes a module name without .lua: "
                               "require(\"helpers\")"), "no hint about .lua");
  p = check_script("path.lua", "require('./helpers')\n");
  CHECK(strstr(proc_stderr(p), "require takes a module name, not a path"),
        "no hint about a path");
  p = check_script("framework.lua", "local grammy = require('grammy')\n");
  CHECK(strstr(proc_stderr(p), "tghost needs no require for the bot: `bot`, "
                               "`run` and `tghost` are globals"),
        "no hint about requiring grammy");
  /* pcall(require, ...) gets the same message; a module that exists loads. */
  harness_write("present.lua", "return { answer = 42 }\n");
  p = check_script("optional.lua",
      "local ok, e = pcall(require, 'absent')\n"
      "print(ok, e:match('looked for [^,]*absent.lua') ~= nil)\n"
      "print(require('present').answer)\n");
  CHECK(proc_status(p) == 0 && strstr(proc_stdout(p), "false\ttrue\n42\n"),
        "pcall(require) or a present module misbehaved (status %d): %s",
        proc_status(p), proc_stdout(p));
}

/* Habits from grammY, Telegraf and JavaScript: Lua's message, then one
 * pointer to what tghost does instead. */
TEST(grammy_habits) {
  static const struct {
    const char *code, *lua_says, *hint;
  } cases[] = {
      {"local bot = new Bot(os.getenv('BOT_TOKEN'))\n",
       "attempt to call a nil value (global 'Bot')",
       "(tghost makes the bot for you: use the global `bot`"},
      {"const bot = new Bot(process.env.BOT_TOKEN)\n", "syntax error near",
       "(this line looks like JavaScript; in Lua: `local x = ...`"},
      {"bot.on('message', (ctx) => ctx.reply('hi'))\n", "expected near",
       "this line looks like JavaScript"},
      {"bot.command('start', function(ctx) end)\nbot.launch()\n",
       "attempt to call a nil value (field 'launch')",
       "(bot.launch() is Telegraf's: tghost starts the bot with run(bot)"},
      {"bot.telegram.sendMessage(1, 'x')\n",
       "attempt to index a nil value (field 'telegram')",
       "are bot.api and ctx.api in tghost"},
      {"console.log('started')\n",
       "attempt to index a nil value (global 'console')",
       "(Lua prints with print(...)"},
      {"local body = fetch('https://example.com')\n",
       "attempt to call a nil value (global 'fetch')",
       "(HTTP requests are tghost.http.get(url)"},
      {"local http = require('socket.http')\n", "module 'socket.http' not found",
       "HTTP is built in and never blocks the bot: tghost.http.get(url)"},
      {"local menu = Menu('main')\n",
       "attempt to call a nil value (global 'Menu')",
       "(a menu is tghost.Menu(id), registered with bot.use(menu))"},
      {"bot.use(createConversation(function() end))\n",
       "attempt to call a nil value (global 'createConversation')",
       "(conversations need no plugin: call ctx:wait(...)"},
      {"local count = bot.session.count\n",
       "attempt to index a nil value (field 'session')",
       "it is there once the session middleware runs first"},
      {"run(bot, { sink = { timeout = 5000 } })\n",
       "sink.timeout must be a table",
       "({ handler = ..., milliseconds = ... }), not number"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct proc *p = check_script("habit.lua", cases[i].code);
    CHECK(proc_status(p) == 1, "case %zu: exit status %d", i, proc_status(p));
    const char *said = strstr(proc_stderr(p), cases[i].lua_says);
    CHECK(said && strstr(said, cases[i].hint), "case %zu: said %s", i,
          proc_stderr(p));
  }
  /* In a handler: the error line carries the pointer too; what bot.catch
   * would receive is Lua's message as it is. */
  struct fakeapi *api = harness_api();
  const char *script = harness_write("handler.lua",
      "bot.on('message:text', function(ctx) ctx:replyWithHTML('<b>hi</b>') end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 42, 42, "hello");
  wait_stderr(p, "unhandled error in a handler", 20000);
  CHECK(strstr(proc_stderr(p), "attempt to call a nil value (method "
                               "'replyWithHTML') (tghost has ctx:reply(text, "
                               "{ parse_mode = \"HTML\" }))"),
        "the handler's error has no pointer");
  proc_stop_cleanly(p);
}
