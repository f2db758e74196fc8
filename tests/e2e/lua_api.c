/* The Lua API end to end: a bot with commands, hears, callback queries,
 * branch/filter/drop/errorBoundary and nested composers (one of them a
 * module required from the script's folder) goes through a scripted
 * conversation against the fake Bot API, which must receive exactly the
 * expected calls, in order. And allowed_updates derived from the handlers
 * reaches getUpdates. */
#include <string.h>

#include "harness.h"
#include "base/json.h"

/* --- JSON compared by value: objects with sorted keys ------------------- */

struct member {
  char *key;
  char *value;
};

static int member_cmp(const void *a, const void *b) {
  return strcmp(((const struct member *)a)->key, ((const struct member *)b)->key);
}

/* Appends the canonical text of the next value of r (object keys sorted,
 * no white space, strings re-escaped); false on malformed JSON. */
static bool canon_value(struct json_reader *r, struct buf *out) {
  switch (json_peek(r)) {
    case JSON_OBJECT: {
      struct member *m = NULL;
      size_t n = 0, cap = 0;
      struct json_slice key;
      bool ok = json_object_begin(r);
      while (ok && json_object_next(r, &key)) {
        if (n == cap) {
          cap = cap ? cap * 2 : 8;
          m = xrealloc(m, cap * sizeof *m);
        }
        struct buf k = BUF_INIT, v = BUF_INIT;
        json_unescape(&key, &k);
        ok = canon_value(r, &v);
        m[n].key = buf_steal(&k, NULL);
        m[n].value = buf_steal(&v, NULL);
        n++;
      }
      ok = ok && !json_error(r);
      qsort(m, n, sizeof *m, member_cmp);
      buf_append_char(out, '{');
      for (size_t i = 0; i < n; i++) {
        if (i) buf_append_char(out, ',');
        json_write_string(out, m[i].key, strlen(m[i].key));
        buf_append_char(out, ':');
        buf_append_str(out, m[i].value ? m[i].value : "");
        free(m[i].key);
        free(m[i].value);
      }
      buf_append_char(out, '}');
      free(m);
      return ok;
    }
    case JSON_ARRAY: {
      bool ok = json_array_begin(r);
      bool first = true;
      buf_append_char(out, '[');
      while (ok && json_array_next(r)) {
        if (!first) buf_append_char(out, ',');
        first = false;
        ok = canon_value(r, out);
      }
      buf_append_char(out, ']');
      return ok && !json_error(r);
    }
    case JSON_STRING: {
      struct json_slice s;
      if (!json_read_string(r, &s)) return false;
      struct buf u = BUF_INIT;
      json_unescape(&s, &u);
      json_write_string(out, u.data ? u.data : "", u.len);
      buf_free(&u);
      return true;
    }
    case JSON_NULL:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NUMBER: {
      struct json_slice span;
      if (!json_skip(r, &span)) return false;
      buf_append(out, span.ptr, span.len);
      return true;
    }
    default:
      return false;
  }
}

/* The canonical text of json (malloc'd), or NULL if it is not JSON. */
static char *canon(const char *json) {
  struct json_reader r;
  struct buf out = BUF_INIT;
  json_reader_init(&r, json, strlen(json));
  if (!canon_value(&r, &out) || !json_finish(&r)) {
    buf_free(&out);
    return NULL;
  }
  return buf_steal(&out, NULL);
}

/* --- helpers ------------------------------------------------------------ */

struct count_wait {
  size_t want;
};

/* Method calls other than getMe. */
static size_t handler_calls(void) {
  struct fakeapi *api = harness_api();
  return fakeapi_call_count(api) - fakeapi_count_method(api, "getMe");
}

static bool have_handler_calls(void *ud) {
  return handler_calls() >= ((struct count_wait *)ud)->want;
}

static bool have_polls(void *ud) {
  return fakeapi_poll_count(harness_api()) >= ((struct count_wait *)ud)->want;
}

struct expected_call {
  const char *method;
  const char *params;   /* JSON; compared by value */
};

/* The calls the server received (getMe left out) are exactly want[0..n). */
static void check_calls(const struct expected_call *want, size_t n) {
  struct fakeapi *api = harness_api();
  size_t got = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "getMe") == 0) continue;
    CHECK(got < n, "unexpected extra call %s %s", c->method, c->params);
    char *have = canon(c->params);
    char *expect = canon(want[got].params);
    CHECK(expect, "expected params of call %zu are not JSON: %s", got,
          want[got].params);
    CHECK(strcmp(c->method, want[got].method) == 0 && have &&
              strcmp(have, expect) == 0,
          "call %zu:\n    got:  %s %s\n    want: %s %s", got, c->method,
          have ? have : c->params, want[got].method, expect);
    free(have);
    free(expect);
    got++;
  }
  CHECK(got == n, "%zu calls arrived, %zu expected", got, n);
}

/* --- the conversation --------------------------------------------------- */

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

static void push_callback(struct fakeapi *api, const char *id, int64_t user,
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
  push_callback(api, "cq-1", USER, 9000, "yes");                  /* 506 */
  push_callback(api, "cq-2", USER, 9000, "item:7");               /* 507 */
  push_callback(api, "cq-3", USER, 9000, "unknown");              /* 508 */
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

/* --- allowed_updates ---------------------------------------------------- */

static char *first_poll_allowed_updates(struct proc *p) {
  struct count_wait w = {1};
  CHECK(run_until(have_polls, &w, 10000), "no getUpdates arrived");
  const struct fake_poll *poll = fakeapi_poll(harness_api(), 0);
  (void)p;
  return poll->allowed_updates ? canon(poll->allowed_updates) : NULL;
}

/* A chat_member handler puts chat_member (and what the other handlers
 * need) in allowed_updates, and its updates arrive. */
TEST(chat_member_allowed_updates) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("members.lua",
      "bot.command('start', function(ctx) ctx:reply('hi') end)\n"
      "bot.on('chat_member', function(ctx)\n"
      "  local m = ctx.chatMember\n"
      "  ctx.api.sendMessage{ chat_id = ctx.chat.id,\n"
      "    text = m.new_chat_member.user.first_name .. ' is now ' .. m.new_chat_member.status }\n"
      "end)\n"
      "bot.on('callback_query:data', function(ctx) ctx:answerCallbackQuery() end)\n"
      "run(bot)\n");
  fakeapi_push_update(api,
      "\"chat_member\":{\"chat\":{\"id\":-1001234567890,\"type\":\"supergroup\","
      "\"title\":\"G\"},\"from\":{\"id\":7,\"is_bot\":false,\"first_name\":"
      "\"Ada\"},\"date\":1717000000,\"old_chat_member\":{\"user\":{\"id\":555,"
      "\"is_bot\":false,\"first_name\":\"Bob\"},\"status\":\"left\"},"
      "\"new_chat_member\":{\"user\":{\"id\":555,\"is_bot\":false,"
      "\"first_name\":\"Bob\"},\"status\":\"member\"}}");
  struct proc *p = proc_start(script, NULL);
  char *allowed = first_poll_allowed_updates(p);
  CHECK(allowed && strcmp(allowed, "[\"message\",\"channel_post\","
                                   "\"callback_query\",\"chat_member\"]") == 0,
        "allowed_updates was %s", allowed ? allowed : "(not sent)");
  free(allowed);
  /* Every later poll sends it too. */
  struct count_wait w = {1};
  CHECK(run_until(have_handler_calls, &w, 10000), "the chat_member handler did not run");
  static const struct expected_call want[] = {
      {"sendMessage", "{\"chat_id\":-1001234567890,\"text\":\"Bob is now member\"}"},
  };
  check_calls(want, 1);
  struct count_wait polls = {2};
  CHECK(run_until(have_polls, &polls, 10000), "no second getUpdates");
  char *again = canon(fakeapi_poll(api, 1)->allowed_updates);
  CHECK(again && strstr(again, "\"chat_member\""), "second poll: %s", again ? again : "(none)");
  free(again);
  proc_stop_cleanly(p);
}

/* With a middleware for every update, the list names every type. */
TEST(use_with_chat_member_asks_for_all) {
  const char *script = harness_write("all.lua",
      "bot.use(function(ctx, next) next() end)\n"
      "bot.on('chat_member', function(ctx) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  char *allowed = first_poll_allowed_updates(p);
  CHECK(allowed && strstr(allowed, "\"message\",\"edited_message\"") &&
            strstr(allowed, "\"chat_member\"") &&
            strstr(allowed, "\"message_reaction\"") &&
            strstr(allowed, "\"removed_chat_boost\"]"),
        "allowed_updates was %s", allowed ? allowed : "(not sent)");
  free(allowed);
  proc_stop_cleanly(p);
}

/* Without opt-in handlers, the empty list: Telegram's default set (and not
 * whatever an earlier poller left configured). A script's own list wins. */
TEST(default_allowed_updates) {
  const char *script = harness_write("plain.lua",
      "bot.on('message', function(ctx) end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  char *allowed = first_poll_allowed_updates(p);
  CHECK(allowed && strcmp(allowed, "[]") == 0, "allowed_updates was %s",
        allowed ? allowed : "(not sent)");
  free(allowed);
  proc_stop_cleanly(p);
}

TEST(explicit_allowed_updates) {
  const char *script = harness_write("explicit.lua",
      "bot.on('chat_member', function(ctx) end)\n"
      "run(bot, { runner = { fetch = { allowed_updates = { 'message', 'poll' } } } })\n");
  struct proc *p = proc_start(script, NULL);
  char *allowed = first_poll_allowed_updates(p);
  CHECK(allowed && strcmp(allowed, "[\"message\",\"poll\"]") == 0,
        "allowed_updates was %s", allowed ? allowed : "(not sent)");
  free(allowed);
  proc_stop_cleanly(p);
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

/* --- the examples -------------------------------------------------------- */

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
  push_callback(api, "cq-9", 42, poll_id, "vote:yes");
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
