/* The examples end to end, as bot authors run them: examples/commands.lua
 * (a poll whose inline keyboard counts votes) and examples/modular
 * (modules required from the script's folder), each checked call by call
 * against the fake Bot API. (Every example with a transcript is also
 * replayed in the sandbox: ctest example.NAME.) */
#include <string.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

#ifndef TGHOST_SOURCE_DIR
#error "TGHOST_SOURCE_DIR must name the source tree"
#endif

/* examples/commands.lua: a poll whose inline keyboard counts votes. */
TEST(example_commands) {
  struct fakeapi *api = harness_api();
  fakeapi_set_next_update_id(api, 700);
  fakeapi_push_text(api, 42, 42, "/poll");
  fakeapi_push_text(api, 42, 42, "/echo  Lua is small");
  struct proc *p = proc_start(TGHOST_SOURCE_DIR "/examples/commands.lua", NULL);
  struct count_wait w = {2};
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to /poll");
  /* The sink is concurrent: the two replies may come in either order, and
   * the fake server numbers sent messages from 1 in the order it answers. */
  bool poll_first = false;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    poll_first = strstr(c->params, "Is Lua fun?") != NULL;
    break;
  }
  int poll_id = poll_first ? 1 : 2;
  push_callback_query(api, "cq-9", 42, poll_id, "vote:yes");
  w.want = 4;
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to the vote");
  run_for(200);
  static const char kb0[] =
      "{\"inline_keyboard\":[[{\"text\":\"👍 0\",\"callback_data\":\"vote:yes\"},"
      "{\"text\":\"👎 0\",\"callback_data\":\"vote:no\"}],"
      "[{\"text\":\"What is Lua?\",\"url\":\"https://www.lua.org/about.html\"}]]}";
  static const char kb1[] =
      "{\"inline_keyboard\":[[{\"text\":\"👍 1\",\"callback_data\":\"vote:yes\"},"
      "{\"text\":\"👎 0\",\"callback_data\":\"vote:no\"}],"
      "[{\"text\":\"What is Lua?\",\"url\":\"https://www.lua.org/about.html\"}]]}";
  static const char echo[] = "{\"chat_id\":42,\"text\":\"Lua is small\"}";
  char poll[1024], edit[1024];
  snprintf(poll, sizeof poll, "{\"chat_id\":42,\"text\":\"Is Lua fun?\",\"reply_markup\":%s}", kb0);
  snprintf(edit, sizeof edit, "{\"chat_id\":42,\"message_id\":%d,\"reply_markup\":%s}",
           poll_id, kb1);
  struct expected_call want[] = {
      {"sendMessage", poll_first ? poll : echo},
      {"sendMessage", poll_first ? echo : poll},
      {"answerCallbackQuery", "{\"callback_query_id\":\"cq-9\",\"text\":\"You voted yes\"}"},
      {"editMessageReplyMarkup", edit},
  };
  check_calls(want, 4);
  proc_stop_cleanly(p);
}

/* examples/modular: modules required from the script's folder. */
TEST(example_modular) {
  struct fakeapi *api = harness_api();
  fakeapi_push_text(api, 42, 42, "/start");
  struct proc *p = proc_start(TGHOST_SOURCE_DIR "/examples/modular/bot.lua", NULL);
  struct count_wait w = {1};
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to /start");
  fakeapi_push_text(api, 42, 42, "/roll");
  w.want = 2;
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to /roll");
  fakeapi_push_text(api, 42, 42, "/fail");
  w.want = 3;
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to /fail");
  fakeapi_push_text(api, 42, 42, "/stats");
  w.want = 4;
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to /stats");
  fakeapi_push_text(api, 42, 42, "what?");
  w.want = 5;
  CHECK(run_until(have_handler_calls, &w, 10000), "no answer to text");
  run_for(200);
  static const struct expected_call want[] = {
      {"sendMessage", "{\"chat_id\":42,\"text\":\"Hello User! I am made of modules. /help\"}"},
      {"sendDice", "{\"chat_id\":42,\"emoji\":\"🎲\"}"},
      {"sendMessage", "{\"chat_id\":42,\"text\":\"That game is out of order, sorry.\"}"},
      {"sendMessage", "{\"chat_id\":42,\"text\":\"Only admins may see that, in a private chat.\"}"},
      {"sendMessage", "{\"chat_id\":42,\"text\":\"I did not understand that. Try /help.\"}"},
  };
  check_calls(want, 5);
  CHECK(strstr(proc_stderr(p), "a game failed:"), "the boundary did not log");
  proc_stop_cleanly(p);
}
