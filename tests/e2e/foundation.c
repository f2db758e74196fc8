/* The walking skeleton end to end: tghost against the fake Bot API. */
#include <signal.h>
#include <string.h>

#include "harness.h"

static const char echo_script[] =
    "bot.on('message', function(ctx) ctx:reply(ctx.msg.text) end)\n"
    "run(bot)\n";

/* 10,000 updates over 1,000 chats: every one answered exactly once, in
 * the right chat, with the right text. */
TEST_SERIAL(echo_10k) {
  struct fakeapi *api = harness_api();
  enum { UPDATES = 10000, CHATS = 1000 };
  char text[64];
  for (int i = 0; i < UPDATES; i++) {
    snprintf(text, sizeof text, "u%d-c%d", i, i % CHATS);
    fakeapi_push_text(api, 100000 + i % CHATS, 500 + i % CHATS, text);
  }
  const char *script = harness_write("echo.lua", echo_script);
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", UPDATES, 60000);
  uint64_t elapsed = harness_now_ms() - start;
  long rss = proc_peak_rss_kib(p);
  run_for(200);   /* anything extra would show up now */

  static unsigned char seen[UPDATES];
  size_t n = fakeapi_call_count(api);
  size_t replies = 0;
  for (size_t i = 0; i < n; i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    replies++;
    char *t = fake_call_string(c, "text");
    int u = -1, chat = -1;
    CHECK(t && sscanf(t, "u%d-c%d", &u, &chat) == 2 && u >= 0 && u < UPDATES,
          "unexpected reply text %s", t ? t : "(none)");
    CHECK(chat == u % CHATS && c->chat_id == 100000 + chat,
          "reply %s went to chat %lld", t, (long long)c->chat_id);
    CHECK(!seen[u], "update %d answered twice", u);
    seen[u] = 1;
    free(t);
  }
  CHECK(replies == UPDATES, "%zu replies for %d updates", replies, UPDATES);
  /* Kept-alive connections are reused: at most about one per update in
   * flight (concurrency 500), not one per call. */
  CHECK(fakeapi_connections_accepted(api) <= 700,
        "%zu connections for %d calls: kept-alive connections are not reused",
        fakeapi_connections_accepted(api), UPDATES);
  fprintf(stderr, "echo: %d updates in %.2f s (%.0f updates/s, including "
          "start-up), peak RSS %ld KiB; %zu polls, %zu connections\n",
          UPDATES, elapsed / 1000.0, UPDATES * 1000.0 / (double)elapsed, rss,
          fakeapi_poll_count(api), fakeapi_connections_accepted(api));
  proc_stop_cleanly(p);
}

/* A handler making two calls in a row; other updates proceed meanwhile. */
TEST(two_calls_overlap) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", 300);
  const char *script = harness_write("two.lua",
      "bot.on('message', function(ctx)\n"
      "  ctx:reply('first ' .. ctx.msg.text)\n"
      "  ctx:reply('second ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  enum { N = 20 };
  for (int i = 0; i < N; i++) {
    char text[16];
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(api, 1000 + i, 1, text);
  }
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 2 * N, 20000);
  uint64_t elapsed = harness_now_ms() - start;
  /* Sequential would take 2 * N * 300 ms = 12 s. */
  CHECK(elapsed < 4000, "took %llu ms: updates did not overlap",
        (unsigned long long)elapsed);
  CHECK(fakeapi_max_unanswered(api) >= N,
        "at most %zu requests were in flight at once",
        fakeapi_max_unanswered(api));
  /* Within each chat, "first" was answered before "second" was sent. */
  for (int chat = 0; chat < N; chat++) {
    const struct fake_call *first = NULL, *second = NULL;
    for (size_t i = 0; i < fakeapi_call_count(api); i++) {
      const struct fake_call *c = fakeapi_call(api, i);
      if (c->chat_id != 1000 + chat) continue;
      char *t = fake_call_string(c, "text");
      if (t && strncmp(t, "first", 5) == 0) first = c;
      if (t && strncmp(t, "second", 6) == 0) second = c;
      free(t);
    }
    CHECK(first && second, "chat %d did not get both replies", chat);
    CHECK(first->answered_us <= second->received_us,
          "chat %d: the second call started before the first was answered",
          chat);
  }
  proc_stop_cleanly(p);
}

/* Ids above 2^52 survive decoding, tostring, encoding and the API. */
TEST(integer_roundtrip) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("ids.lua",
      "bot.on('message', function(ctx)\n"
      "  local id = ctx.chat.id\n"
      "  assert(math.type(id) == 'integer', 'chat id is a ' .. math.type(id))\n"
      "  local sent = ctx:reply('id=' .. tostring(id) .. ' from=' .. tostring(ctx.from.id))\n"
      "  ctx:reply('echo=' .. tostring(sent.chat.id) .. ' ' .. math.type(sent.chat.id))\n"
      "end)\n"
      "run(bot)\n");
  /* 2^52 + 1 and a negative supergroup-style id beyond 2^52. */
  fakeapi_push_text(api, 4503599627370497LL, 4503599627370499LL, "hi");
  fakeapi_push_text(api, -4503599627370497LL, 7, "hi");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 4, 10000);
  int ok = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *raw = fake_call_raw(c, "chat_id");
    char *t = fake_call_string(c, "text");
    bool pos = strcmp(raw, "4503599627370497") == 0;
    bool neg = strcmp(raw, "-4503599627370497") == 0;
    CHECK(pos || neg, "chat_id sent as %s", raw);
    const char *id = pos ? "4503599627370497" : "-4503599627370497";
    char want1[96], want2[96];
    snprintf(want1, sizeof want1, "id=%s from=%s", id,
             pos ? "4503599627370499" : "7");
    snprintf(want2, sizeof want2, "echo=%s integer", id);
    CHECK(strcmp(t, want1) == 0 || strcmp(t, want2) == 0, "text was '%s'", t);
    ok++;
    free(raw);
    free(t);
  }
  CHECK(ok == 4, "%d good replies", ok);
  proc_stop_cleanly(p);
}

/* API calls inside the script's own coroutines: they work (tghost passes
 * its yields through), or fail clearly where nothing can be suspended. */
TEST(coroutine_passthrough) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", 30);
  const char *script = harness_write("coro.lua",
      "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'iter' then\n"
      "    local function replies(n)\n"
      "      return coroutine.wrap(function()\n"
      "        for i = 1, n do coroutine.yield(ctx:reply('item ' .. i).message_id) end\n"
      "      end)\n"
      "    end\n"
      "    local ids = {}\n"
      "    for id in replies(3) do ids[#ids + 1] = id end\n"
      "    ctx:reply('iterated ' .. #ids)\n"
      "  elseif ctx.msg.text == 'nested' then\n"
      "    local outer = coroutine.create(function()\n"
      "      local inner = coroutine.create(function(x)\n"
      "        tghost.sleep(0.01)\n"
      "        local m = ctx:reply('inner ' .. x)\n"
      "        local y = coroutine.yield(m.text)\n"
      "        return y * 2\n"
      "      end)\n"
      "      local ok1, text = coroutine.resume(inner, 5)\n"
      "      local ok2, doubled = coroutine.resume(inner, 21)\n"
      "      return text .. '/' .. doubled .. '/' .. tostring(ok1 and ok2)\n"
      "    end)\n"
      "    local ok, result = coroutine.resume(outer)\n"
      "    ctx:reply('nested ' .. tostring(ok) .. ' ' .. result)\n"
      "  elseif ctx.msg.text == 'sort' then\n"
      "    table.sort({3, 2, 1}, function(a, b) ctx:reply('never sent') return a < b end)\n"
      "  end\n"
      "end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "iter");
  fakeapi_push_text(api, 2, 2, "nested");
  fakeapi_push_text(api, 3, 3, "sort");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 7, 10000);
  run_for(300);
  const char *want[] = {"item 1", "item 2", "item 3", "iterated 3", "inner 5",
                        "nested true inner 5/42/true", NULL};
  for (int w = 0; want[w]; w++) CHECK(api_sent_text(want[w]), "no reply '%s'", want[w]);
  bool caught = false;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    CHECK(!t || strcmp(t, "never sent") != 0, "a call from table.sort went out");
    if (t && strstr(t, "caught: ") && strstr(t, "cannot be called here")) caught = true;
    free(t);
  }
  CHECK(caught, "the call inside table.sort did not fail clearly");
  CHECK(fakeapi_count_method(api, "sendMessage") == 7, "%zu calls",
        fakeapi_count_method(api, "sendMessage"));
  proc_stop_cleanly(p);
}

static void expect_failure(struct proc *p, const char *needle) {
  CHECK(proc_wait(p, 15000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status was %d, not 1", proc_status(p));
  CHECK(strstr(proc_stderr(p), needle), "stderr lacks '%s'", needle);
  proc_check_clean(p);
}

static void expect_no_network(void) {
  struct fakeapi *api = harness_api();
  CHECK(fakeapi_call_count(api) == 0 && fakeapi_poll_count(api) == 0 &&
            fakeapi_connections_accepted(api) == 0,
        "the server was contacted (%zu calls)", fakeapi_call_count(api));
}

TEST(missing_script) {
  struct proc *p = proc_start("/nonexistent/bot.lua", NULL);
  expect_failure(p, "cannot open /nonexistent/bot.lua");
  expect_no_network();
}

TEST(syntax_error) {
  const char *script = harness_write("syntax.lua",
      "bot.on('message', function(ctx)\n  ctx:reply('x'\nend)\nrun(bot)\n");
  struct proc *p = proc_start(script, NULL);
  expect_failure(p, "syntax.lua:3:");
  expect_no_network();
}

TEST(load_error) {
  const char *script = harness_write("loaderr.lua",
      "bot.on('message', function(ctx) end)\n"
      "local cfg = nil\n"
      "print(cfg.name)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  expect_failure(p, "loaderr.lua:3: attempt to index a nil value");
  expect_no_network();
}

TEST(no_token) {
  const char *script = harness_write("notoken.lua", echo_script);
  static const char *const env[] = {NULL};
  struct proc *p = proc_start_env(script, NULL, env, true);
  expect_failure(p, "BOT_TOKEN");
  expect_no_network();
}

TEST(bad_token) {
  harness_api();
  const char *script = harness_write("badtoken.lua", echo_script);
  static const char *const env[] = {"BOT_TOKEN=999:wrong-token", NULL};
  struct proc *p = proc_start_env(script, NULL, env, true);
  expect_failure(p, "401");
  CHECK(strstr(proc_stderr(p), "BOT_TOKEN"), "the 401 message does not name BOT_TOKEN");
  CHECK(!strstr(proc_stderr(p), "wrong-token"), "the rejected token was printed");
}

TEST(token_file) {
  struct fakeapi *api = harness_api();
  const char *tokfile = harness_write("token.txt", TEST_TOKEN "\n");
  const char *script = harness_write("tf.lua", echo_script);
  const char *args[] = {"--token-file", tokfile, NULL};
  static const char *const env[] = {NULL};
  fakeapi_push_text(api, 42, 42, "via token file");
  struct proc *p = proc_start_env(script, args, env, true);
  wait_calls("sendMessage", 1, 10000);
  proc_stop_cleanly(p);
}
