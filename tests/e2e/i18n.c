/* i18n end to end: a bot answering users in two languages with plurals,
 * its locale files hot-reloaded, and tghost --check reporting missing
 * translations. */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static const char *bot_script =
    "local i18n = tghost.i18n{ directory = 'locales', defaultLocale = 'en',\n"
    "                          useSession = true }\n"
    "bot.use(session{ initial = function() return {} end })\n"
    "bot.use(i18n)\n"
    "bot.on('message:text', function(ctx)\n"
    "  local n = tonumber(ctx.msg.text)\n"
    "  ctx:reply(ctx:t('files', { count = n, name = ctx.from.first_name }))\n"
    "end)\n"
    "run(bot)\n";

static const char *en_v1 =
    "return { files = { one = '{name}, you have {count} file',\n"
    "                   other = '{name}, you have {count} files' } }\n";
static const char *ru_v1 =
    "return { files = { one = '{name}, у вас {count} файл',\n"
    "                   few = '{name}, у вас {count} файла',\n"
    "                   many = '{name}, у вас {count} файлов',\n"
    "                   other = '{name}, у вас {count} файла' } }\n";
static const char *ru_v2 =
    "return { files = { one = '{count} файл', few = '{count} файла',\n"
    "                   many = '{count} файлов', other = '{count} файла' } }\n";

static void write_locales(const char *ru) {
  char dir[256];
  snprintf(dir, sizeof dir, "%s/locales", harness_tmpdir());
  mkdir(dir, 0755);
  harness_write("locales/en.lua", en_v1);
  harness_write("locales/ru.lua", ru);
}

/* The text of the reply to a message from a user with language lang. */
static char *ask(int64_t chat, const char *lang, const char *text) {
  struct fakeapi *api = harness_api();
  size_t before = fakeapi_count_method(api, "sendMessage");
  char body[512];
  snprintf(body, sizeof body,
           "\"message\":{\"message_id\":1,\"date\":0,\"text\":\"%s\","
           "\"chat\":{\"id\":%lld,\"type\":\"private\"},"
           "\"from\":{\"id\":%lld,\"is_bot\":false,\"first_name\":\"U%lld\","
           "\"language_code\":\"%s\"}}",
           text, (long long)chat, (long long)chat, (long long)chat, lang);
  fakeapi_push_update(api, body);
  wait_calls("sendMessage", before + 1, 15000);
  for (size_t i = fakeapi_call_count(api); i-- > 0;) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") == 0 && c->chat_id == chat)
      return fake_call_string(c, "text");
  }
  CHECK(0, "no reply in chat %lld", (long long)chat);
  return NULL;
}

static void expect(int64_t chat, const char *lang, const char *text,
                   const char *want) {
  char *got = ask(chat, lang, text);
  CHECK(strcmp(got, want) == 0, "%s '%s': reply '%s', expected '%s'", lang,
        text, got, want);
  free(got);
}

/* Two users, two languages, the plural forms of each; then the Russian
 * file is edited and the next answer uses it (hot reload). */
TEST(two_languages_and_reload) {
  write_locales(ru_v1);
  const char *script = harness_write("bot.lua", bot_script);
  struct proc *p = proc_start(script, NULL);
  expect(1, "en", "1", "U1, you have 1 file");
  expect(1, "en", "7", "U1, you have 7 files");
  expect(2, "ru", "1", "U2, у вас 1 файл");
  expect(2, "ru", "3", "U2, у вас 3 файла");
  expect(2, "ru", "11", "U2, у вас 11 файлов");
  expect(2, "ru", "21", "U2, у вас 21 файл");
  expect(3, "ru-RU", "5", "U3, у вас 5 файлов");
  expect(4, "de", "1", "U4, you have 1 file");

  harness_write("locales/ru.lua", ru_v2);
  wait_stderr(p, "generation 2 loaded", 10000);
  CHECK(strstr(proc_stderr(p), "ru.lua changed"), "the locale file is not named");
  expect(2, "ru", "22", "22 файла");
  expect(1, "en", "2", "U1, you have 2 files");
  proc_stop_cleanly(p);
}

/* --check lists each missing translation: a key the default locale has
 * and another lacks, and a key the script uses that the default lacks. */
TEST(check_lists_missing_keys) {
  write_locales("return { files = { one = '{count}', other = '{count}' } }\n");
  harness_write("locales/en.lua",
                "return { files = { one = 'a', other = 'b' }, bye = 'Bye',\n"
                "         menu = { title = 'Menu' } }\n");
  const char *script = harness_write(
      "bot.lua",
      "local i18n = tghost.i18n{ directory = 'locales' }\n"
      "bot.use(i18n)\n"
      "bot.on('message', function(ctx) ctx:reply(ctx:t('greeting')) end)\n"
      "run(bot)\n");
  const char *args[] = {"--check", NULL};
  struct proc *p = proc_start(script, args);
  CHECK(proc_wait(p, 15000), "tghost --check did not exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  const char *err = proc_stderr(p);
  CHECK(strstr(err, "bot.lua:1: tghost.i18n: locale ru has no \"bye\""),
        "missing bye not reported");
  CHECK(strstr(err, "locale ru has no \"menu.title\""), "missing menu.title not reported");
  CHECK(strstr(err, "the script uses \"greeting\", which locale en"),
        "the unknown key the script uses is not reported");
  CHECK(!strstr(err, "has no \"files\""), "a key every locale has is reported");
  proc_check_clean(p);
  proc_free(p);
}
