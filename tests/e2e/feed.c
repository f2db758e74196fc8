/* Updates from the script (run{ feed = true }, tghost.feed.push) and
 * handle:start() after a stop. */
#include <string.h>

#include "harness.h"

static size_t count_text_prefix(const char *prefix) {
  struct fakeapi *api = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) n++;
    free(t);
  }
  return n;
}

/* A background task pushes 30 updates; concurrency 2 and handlers that
 * sleep hold the pusher back (each push returns once the update is in the
 * sink); every update is handled once, in order per chat with
 * sequentialize, and nothing is fetched from Telegram. */
TEST(pushed_updates_are_handled) {
  const char *script = harness_write(
      "bot.lua",
      "local pushed_ahead = 0\n"
      "local running = 0\n"
      "bot.use(sequentialize(function(ctx) return ctx.chat.id end))\n"
      "bot.on('message', function(ctx)\n"
      "  running = running + 1\n"
      "  tghost.sleep(0.02)\n"
      "  running = running - 1\n"
      "  ctx:reply('echo ' .. ctx.msg.text)\n"
      "end)\n"
      "tghost.spawn(function()\n"
      "  local max_queued = 0\n"
      "  for i = 1, 30 do\n"
      "    local ok, why = tghost.feed.push{ message = { message_id = i, date = 0,\n"
      "      text = tostring(i), chat = { id = i % 3 + 1, type = 'private' },\n"
      "      from = { id = 1, is_bot = false, first_name = 'A' } } }\n"
      "    assert(ok, why)\n"
      "    max_queued = math.max(max_queued, tghost.feed.queued())\n"
      "  end\n"
      "  bot.api.sendMessage(99, 'pushed all, queued at most ' .. max_queued)\n"
      "end)\n"
      "run(bot, { feed = true, sink = { concurrency = 2 } })\n");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 31, 20000);
  run_for(200);
  CHECK(count_text_prefix("echo ") == 30, "%zu echoes", count_text_prefix("echo "));
  CHECK(count_text_prefix("pushed all, queued at most 0") == 1,
        "the pusher was not held back until each update was taken");
  /* In order per chat. */
  struct fakeapi *api = harness_api();
  int last[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0 || c->chat_id < 1 || c->chat_id > 3)
      continue;
    char *t = fake_call_string(c, "text");
    int n = atoi(t + 5);
    CHECK(n > last[c->chat_id], "chat %lld: %d after %d", (long long)c->chat_id,
          n, last[c->chat_id]);
    last[c->chat_id] = n;
    free(t);
  }
  CHECK(fakeapi_poll_count(api) == 0, "getUpdates was called %zu times",
        fakeapi_poll_count(api));
  proc_stop_cleanly(p);
}

/* handle:start() after handle:stop(): a handler stops the bot, waits for
 * the stop, starts it again; updates sent meanwhile are handled after the
 * restart. */
TEST(handle_start_after_stop) {
  const char *script = harness_write(
      "bot.lua",
      "local handle\n"
      "bot.command('pause', function(ctx)\n"
      "  handle:stop()\n"
      "  ctx:reply('stopped, running: ' .. tostring(handle:isRunning()))\n"
      "  tghost.sleep(0.3)\n"
      "  ctx:reply('start again: ' .. tostring(handle:start()) .. ', again: ' ..\n"
      "            tostring(handle:start()))\n"
      "end)\n"
      "bot.command('state', function(ctx)\n"
      "  ctx:reply('running: ' .. tostring(handle:isRunning()) .. ', start: ' ..\n"
      "            tostring(handle:start()))\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply('echo ' .. ctx.msg.text) end)\n"
      "handle = run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(harness_api(), 1, 1, "a");
  wait_calls("sendMessage", 1, 10000);
  fakeapi_push_text(harness_api(), 1, 1, "/pause");
  wait_calls("sendMessage", 2, 10000);
  CHECK(api_sent_text("stopped, running: false"), "no stop report");
  fakeapi_push_text(harness_api(), 1, 1, "b");   /* while stopped */
  wait_calls("sendMessage", 4, 10000);
  CHECK(api_sent_text("start again: true, again: false"),
        "handle:start() during the stop: not asked once");
  fakeapi_push_text(harness_api(), 1, 1, "/state");
  wait_calls("sendMessage", 5, 10000);
  CHECK(api_sent_text("echo b"), "the update sent while stopped was not handled");
  CHECK(api_sent_text("running: true, start: false"), "not running again");
  CHECK(count_in(proc_stderr(p), "starting the bot again") == 1, "no restart logged");
  CHECK(!proc_exited(p), "tghost exited");
  proc_stop_cleanly(p);
}
