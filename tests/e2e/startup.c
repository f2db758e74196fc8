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
