/* What tghost says when a bot does not start as its author meant: a token
 * of the wrong shape, a module require cannot find, habits from grammY,
 * Telegraf and JavaScript. Each message names the problem and the fix in
 * one line, and never shows the token. */
#include <string.h>

#include "harness.h"

static const char echo_script[] =
    "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
    "run(bot)\n";

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
