/* Bots and update feeds that the tests of several features share
 * (scripts.h). */
#include "scripts.h"

#include <stdio.h>

#include "harness.h"

void push_numbered(int n, int chats) {
  char text[32];
  for (int i = 0; i < n; i++) {
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(harness_api(), 1 + i % chats, 1 + i % chats, text);
  }
}

static const char reply_script[] =
    "bot.on('message', function(ctx) ctx:reply('r' .. ctx.msg.text) end)\n"
    "run(bot, %s)\n";

const char *write_reply_script(const char *name, const char *opts) {
  char script[1024];
  snprintf(script, sizeof script, reply_script, opts);
  return harness_write(name, script);
}

struct proc *start_guard_bot(const char *name, const char *body) {
  char script[4096];
  snprintf(script, sizeof script,
           "bot.catch(function(err)\n"
           "  err.ctx:reply('caught: ' .. tostring(err.error))\n"
           "end)\n"
           "bot.on('message:text', function(ctx)\n"
           "  if ctx.msg.text == 'evil' then\n%s\n  end\n"
           "  ctx:reply('r' .. ctx.msg.text)\n"
           "end)\n"
           "run(bot)\n",
           body);
  const char *args[] = {"--cpu-budget", "0.2", "--drain-timeout", "5", NULL};
  return proc_start(harness_write(name, script), args);
}

void push_callback_query(struct fakeapi *api, const char *id, int64_t user,
                         int64_t message_id, const char *data) {
  char body[1024];
  snprintf(body, sizeof body,
           "\"callback_query\":{\"id\":\"%s\",\"from\":{\"id\":%lld,"
           "\"is_bot\":false,\"first_name\":\"User\"},\"message\":{"
           "\"message_id\":%lld,\"from\":{\"id\":4242,\"is_bot\":true,"
           "\"first_name\":\"Test Bot\"},\"chat\":{\"id\":%lld,\"type\":"
           "\"private\"},\"date\":1717000000,\"text\":\"Welcome\"},"
           "\"chat_instance\":\"77\",\"data\":\"%s\"}",
           id, (long long)user, (long long)message_id, (long long)user, data);
  fakeapi_push_update(api, body);
}
