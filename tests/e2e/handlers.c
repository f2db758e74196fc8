/* Handlers and middleware end to end: a bot with commands, hears,
 * callback and inline queries, branch/filter/drop/errorBoundary and
 * nested composers (one of them a module required from the script's
 * folder) goes through a scripted conversation with the fake Bot API,
 * which must receive exactly the expected calls, in order. */
#include <string.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

static const char admin_module[] =
    "-- A module: a composer of its own, used by the bot.\n"
    "local admin = tghost.Composer()\n"
    "local ADMIN = 1001\n"
    "local only_admin = admin.filter(function(ctx)\n"
    "  return ctx.from ~= nil and ctx.from.id == ADMIN\n"
    "end)\n"
    "only_admin.command('stats', function(ctx)\n"
    "  ctx:reply('stats: ' .. ctx.seen_by)\n"
    "end)\n"
    "admin.command('stats', function(ctx) ctx:reply('not allowed') end)\n"
    "return admin\n";

static const char conversation_bot[] =
    "local admin = require('admin')\n"
    "bot.use(function(ctx, next)\n"
    "  ctx.seen_by = 'middleware'\n"
    "  next()\n"
    "end)\n"
    "bot.use(admin)\n"
    "bot.command('start', function(ctx)\n"
    "  local kb = tghost.InlineKeyboard():text('Yes', 'yes'):row()\n"
    "    :text('Item 7', 'item:7')\n"
    "  ctx:reply('Welcome, ' .. ctx.from.first_name .. '!', { reply_markup = kb })\n"
    "end)\n"
    "bot.command({ 'echo', 'say' }, function(ctx) ctx:reply('echo: ' .. ctx.match) end)\n"
    "bot.hears('^I am (%a+), (%d+)$', function(ctx)\n"
    "  ctx:reply(ctx.match[1] .. ' is ' .. ctx.match[2])\n"
    "end)\n"
    "bot.callbackQuery('yes', function(ctx)\n"
    "  ctx:answerCallbackQuery('Noted')\n"
    "  ctx:editMessageText('You said yes')\n"
    "end)\n"
    "bot.callbackQuery('^item:(%d+)$', function(ctx)\n"
    "  ctx:answerCallbackQuery({ text = 'item ' .. ctx.match[1], show_alert = true })\n"
    "end)\n"
    "bot.inlineQuery('^(.+)$', function(ctx)\n"
    "  ctx:answerInlineQuery({ { type = 'article', id = '1', title = ctx.match[1],\n"
    "    input_message_content = { message_text = ctx.match[1] } } }, { cache_time = 0 })\n"
    "end)\n"
    "local risky = tghost.Composer()\n"
    "risky.command('fail', function(ctx) error('boom in fail') end)\n"
    "bot.errorBoundary(function(err, next)\n"
    "  err.ctx:reply('recovered: ' .. tostring(err.error):match('boom.*'))\n"
    "end, risky)\n"
    "bot.command('crash', function(ctx) error('crash!') end)\n"
    "local private = bot.filter(function(ctx)\n"
    "  return ctx.chat ~= nil and ctx.chat.type == 'private'\n"
    "end)\n"
    "private.command('secret', function(ctx) ctx:reply('secret for you') end)\n"
    "bot.drop(function(ctx) return ctx.chat ~= nil and ctx.chat.type ~= 'private' end)\n"
    "  .command('help', function(ctx) ctx:reply('help is private') end)\n"
    "bot.on('message').branch(function(ctx) return ctx.chat.type == 'private' end,\n"
    "  function(ctx) ctx:reply('private fallback: ' .. ctx.msg.text) end,\n"
    "  function(ctx) ctx:react('👀') end)\n"
    "bot.catch(function(err)\n"
    "  err.ctx:reply('caught: ' .. tostring(err.error):match('crash!'))\n"
    "end)\n"
    "bot.start()\n";

TEST(conversation) {
  struct fakeapi *api = harness_api();
  harness_write("admin.lua", admin_module);
  const char *script = harness_write("bot.lua", conversation_bot);
  enum { ADMIN = 1001, USER = 2002, GROUP = -3003 };
  fakeapi_set_next_update_id(api, 500);
  /* Update ids (and, for texts, message ids) count from 500. */
  fakeapi_push_text(api, ADMIN, ADMIN, "/start");                 /* 500 */
  fakeapi_push_text(api, ADMIN, ADMIN, "/stats");                 /* 501 */
  fakeapi_push_text(api, USER, USER, "/stats");                   /* 502 */
  fakeapi_push_text(api, GROUP, USER, "/echo@test_bot hello there"); /* 503 */
  fakeapi_push_text(api, GROUP, USER, "/say@other_bot hi");       /* 504 */
  fakeapi_push_text(api, GROUP, USER, "I am Ada, 36");            /* 505 */
  push_callback_query(api, "cq-1", USER, 9000, "yes");            /* 506 */
  push_callback_query(api, "cq-2", USER, 9000, "item:7");         /* 507 */
  push_callback_query(api, "cq-3", USER, 9000, "unknown");        /* 508 */
  fakeapi_push_text(api, USER, USER, "/fail");                    /* 509 */
  fakeapi_push_text(api, USER, USER, "/crash");                   /* 510 */
  fakeapi_push_text(api, USER, USER, "/secret");                  /* 511 */
  fakeapi_push_text(api, GROUP, USER, "/secret");                 /* 512 */
  fakeapi_push_text(api, USER, USER, "/help");                    /* 513 */
  fakeapi_push_text(api, GROUP, USER, "/help");                   /* 514 */
  fakeapi_push_text(api, USER, USER, "hello");                    /* 515 */
  fakeapi_push_update(api,                                        /* 516 */
      "\"inline_query\":{\"id\":\"iq-1\",\"from\":{\"id\":2002,\"is_bot\":"
      "false,\"first_name\":\"User\"},\"query\":\"lua\",\"offset\":\"\"}");
  fakeapi_push_text(api, USER, USER, "/say   spaced");            /* 517 */

  static const struct expected_call want[] = {
      {"sendMessage", "{\"chat_id\":1001,\"text\":\"Welcome, User!\","
                      "\"reply_markup\":{\"inline_keyboard\":["
                      "[{\"text\":\"Yes\",\"callback_data\":\"yes\"}],"
                      "[{\"text\":\"Item 7\",\"callback_data\":\"item:7\"}]]}}"},
      {"sendMessage", "{\"chat_id\":1001,\"text\":\"stats: middleware\"}"},
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"not allowed\"}"},
      {"sendMessage", "{\"chat_id\":-3003,\"text\":\"echo: hello there\"}"},
      {"setMessageReaction", "{\"chat_id\":-3003,\"message_id\":504,"
                             "\"reaction\":[{\"type\":\"emoji\",\"emoji\":\"👀\"}]}"},
      {"sendMessage", "{\"chat_id\":-3003,\"text\":\"Ada is 36\"}"},
      {"answerCallbackQuery", "{\"callback_query_id\":\"cq-1\",\"text\":\"Noted\"}"},
      {"editMessageText", "{\"chat_id\":2002,\"message_id\":9000,"
                          "\"text\":\"You said yes\"}"},
      {"answerCallbackQuery", "{\"callback_query_id\":\"cq-2\","
                              "\"text\":\"item 7\",\"show_alert\":true}"},
      /* cq-3 ("unknown") has no handler: no call */
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"recovered: boom in fail\"}"},
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"caught: crash!\"}"},
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"secret for you\"}"},
      {"setMessageReaction", "{\"chat_id\":-3003,\"message_id\":512,"
                             "\"reaction\":[{\"type\":\"emoji\",\"emoji\":\"👀\"}]}"},
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"help is private\"}"},
      {"setMessageReaction", "{\"chat_id\":-3003,\"message_id\":514,"
                             "\"reaction\":[{\"type\":\"emoji\",\"emoji\":\"👀\"}]}"},
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"private fallback: hello\"}"},
      {"answerInlineQuery", "{\"inline_query_id\":\"iq-1\",\"cache_time\":0,"
                            "\"results\":[{\"type\":\"article\",\"id\":\"1\","
                            "\"title\":\"lua\",\"input_message_content\":"
                            "{\"message_text\":\"lua\"}}]}"},
      {"sendMessage", "{\"chat_id\":2002,\"text\":\"echo: spaced\"}"},
  };
  size_t n = sizeof want / sizeof want[0];

  struct proc *p = proc_start(script, NULL);
  struct count_wait w = {n};
  bool arrived = run_until(have_handler_calls, &w, 20000);
  run_for(300);   /* anything extra would show up now */
  CHECK(arrived, "only %zu of %zu calls arrived", handler_calls(), n);
  check_calls(want, n);
  /* Every update was confirmed, none delivered twice. */
  CHECK(fakeapi_times_delivered(api, 517) == 1, "update 517 delivered %d times",
        fakeapi_times_delivered(api, 517));
  /* The crash went to bot.catch, not to the log as unhandled. */
  CHECK(!strstr(proc_stderr(p), "unhandled error"), "an error was unhandled");
  proc_stop_cleanly(p);
}
