/* The bot's command list end to end: setMyCommands from the descriptions
 * of bot.command at start, only the lists that changed after a hot
 * reload, deleteMyCommands for a list that is gone, nothing for a reload
 * that changes nothing. */
#include <signal.h>
#include <string.h>

#include "harness.h"

static const char *script_fmt =
    "bot.command('start', { description = 'Start', descriptions = { %s } },\n"
    "            function(ctx) ctx:reply('hi') end)\n"
    "bot.command('help', 'Help', function(ctx) ctx:reply('%s') end)\n"
    "run(bot)\n";

static const char *script(const char *de, const char *reply) {
  static char text[512];
  snprintf(text, sizeof text, script_fmt, de, reply);
  return text;
}

/* The calls of method from index from on, as "language_code: commands". */
static size_t describe(const char *method, size_t from, char *out, size_t n) {
  struct fakeapi *api = harness_api();
  size_t count = 0;
  out[0] = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, method) != 0) continue;
    if (count++ < from) continue;
    char *lang = fake_call_string(c, "language_code");
    char *cmds = fake_call_raw(c, "commands");
    size_t len = strlen(out);
    snprintf(out + len, n - len, "[%s: %s]", lang ? lang : "-", cmds ? cmds : "-");
    free(lang);
    free(cmds);
  }
  return count;
}

TEST(set_at_start_and_on_reload) {
  const char *path = harness_write("bot.lua", script("de = 'Starten'", "a"));
  struct proc *p = proc_start(path, NULL);
  wait_calls("setMyCommands", 2, 10000);
  char got[2048];
  describe("setMyCommands", 0, got, sizeof got);
  /* (Members in any order: each list is checked for its descriptions.) */
  char *german = strstr(got, "[de: ");
  CHECK(german && strstr(german, "\"description\":\"Starten\"") &&
            strstr(german, "\"description\":\"Help\""),
        "the German list: %s", got);
  CHECK(strncmp(got, "[-: ", 4) == 0 && strstr(got, "\"description\":\"Start\"") &&
            strstr(got, "\"command\":\"help\""),
        "the default list: %s", got);

  /* A reload that changes a handler, not a description: no call. */
  harness_write("bot.lua", script("de = 'Starten'", "b"));
  wait_stderr(p, "generation 2 loaded", 10000);
  run_for(500);
  size_t n = describe("setMyCommands", 2, got, sizeof got);
  CHECK(n == 2, "%zu setMyCommands after a reload that changed no description", n);

  /* The German description changes: the German list only. */
  harness_write("bot.lua", script("de = 'Los geht es'", "b"));
  wait_stderr(p, "generation 3 loaded", 10000);
  wait_calls("setMyCommands", 3, 10000);
  run_for(300);
  n = describe("setMyCommands", 2, got, sizeof got);
  CHECK(n == 3 && strstr(got, "[de: ") && strstr(got, "\"description\":\"Los geht es\""),
        "after the change: %zu calls, %s", n, got);

  /* No German description left: its list is deleted. */
  harness_write("bot.lua", script("", "b"));
  wait_stderr(p, "generation 4 loaded", 10000);
  wait_calls("deleteMyCommands", 1, 10000);
  run_for(300);
  n = describe("deleteMyCommands", 0, got, sizeof got);
  CHECK(n == 1, "%zu deleteMyCommands", n);
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "deleteMyCommands") != 0) continue;
    char *lang = fake_call_string(c, "language_code");
    CHECK(lang && strcmp(lang, "de") == 0, "deleted %s", lang ? lang : "the default list");
    free(lang);
  }
  CHECK(fakeapi_count_method(api, "setMyCommands") == 3, "the default list was sent again");
  proc_stop_cleanly(p);
}

/* A bot without descriptions leaves the command list alone. */
TEST(no_descriptions_no_calls) {
  const char *path = harness_write(
      "bot.lua", "bot.command('start', function(ctx) ctx:reply('hi') end)\nrun(bot)\n");
  struct proc *p = proc_start(path, NULL);
  fakeapi_push_text(harness_api(), 5, 5, "/start");
  wait_calls("sendMessage", 1, 10000);
  CHECK(fakeapi_count_method(harness_api(), "setMyCommands") == 0, "setMyCommands was called");
  proc_stop_cleanly(p);
}
