/* Session migrations across a restart: a bot stores its sessions in
 * SQLite at version 1, is stopped, and comes back with migrations up to
 * version 3; the next message reads the upgraded value, and the file then
 * holds version 3. */
#include <string.h>
#include <unistd.h>

#include "harness.h"

static const char *v1_script =
    "local db = tghost.storage.sqlite('sessions.db')\n"
    "bot.use(session{ storage = db, initial = function() return { name = '' } end,\n"
    "  migrations = { [1] = function(old) return old end } })\n"
    "bot.on('message:text', function(ctx)\n"
    "  ctx.session.name = ctx.msg.text\n"
    "  ctx:reply('saved ' .. ctx.session.name)\n"
    "end)\n"
    "run(bot)\n";

static const char *v3_script =
    "local db = tghost.storage.sqlite('sessions.db')\n"
    "bot.use(session{ storage = db, migrations = {\n"
    "  [1] = function(old) return old end,\n"
    "  [2] = function(old)\n"
    "    local first, last = old.name:match('^(%S+)%s+(.*)$')\n"
    "    return { first = first, last = last }\n"
    "  end,\n"
    "  [3] = function(old) old.greeting = 'Dear ' .. old.first; return old end,\n"
    "} })\n"
    "bot.on('message:text', function(ctx)\n"
    "  local s = ctx.session\n"
    "  ctx:reply(s.greeting .. ' ' .. s.last .. ', version ' ..\n"
    "            db:get(tostring(ctx.chat.id)).__v)\n"
    "end)\n"
    "run(bot)\n";

static char *last_text(void) {
  struct fakeapi *api = harness_api();
  for (size_t i = fakeapi_call_count(api); i-- > 0;) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") == 0) return fake_call_string(c, "text");
  }
  return NULL;
}

TEST(version_1_to_3_across_a_restart) {
  const char *script = harness_write("bot.lua", v1_script);
  /* SQLite's file lands in the working directory: the test's folder. */
  const char *args[] = {NULL};
  CHECK(chdir(harness_tmpdir()) == 0, "chdir");
  struct proc *p = proc_start(script, args);
  fakeapi_push_text(harness_api(), 42, 42, "Ada Lovelace");
  wait_calls("sendMessage", 1, 10000);
  char *t = last_text();
  CHECK(t && strcmp(t, "saved Ada Lovelace") == 0, "reply %s", t ? t : "(none)");
  free(t);
  proc_stop_cleanly(p);

  harness_write("bot.lua", v3_script);
  p = proc_start(script, args);
  fakeapi_push_text(harness_api(), 42, 42, "hello again");
  wait_calls("sendMessage", 2, 10000);
  t = last_text();
  /* The session read during the update is migrated; the file holds
   * version 3 once the update has written it back, which the next
   * message shows. */
  CHECK(t && strncmp(t, "Dear Ada Lovelace, version", 26) == 0, "reply %s",
        t ? t : "(none)");
  free(t);
  fakeapi_push_text(harness_api(), 42, 42, "once more");
  wait_calls("sendMessage", 3, 10000);
  t = last_text();
  CHECK(t && strcmp(t, "Dear Ada Lovelace, version 3") == 0, "reply %s",
        t ? t : "(none)");
  free(t);
  proc_stop_cleanly(p);
}
