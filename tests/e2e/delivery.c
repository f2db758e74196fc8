/* The pipeline's basics end to end: every update answered once (10,000
 * over 1,000 chats), handlers' calls overlapping, ids above 2^53 intact,
 * API calls from the script's own coroutines; the sinks (the concurrency
 * limit and the capacity each poll asks for, sequential, batch); a fixed
 * schedule of server faults under which nothing is lost or handled twice;
 * a timeout that cancels its handler and aborts its request; an
 * unhandled error logged with its update and traceback. */
#include <string.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

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

/* --- sinks and backpressure --------------------------------------------- */

TEST(concurrency_limit) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", 100);
  enum { N = 300, LIMIT = 10 };
  push_numbered(N, 50);
  struct proc *p = proc_start(
      write_reply_script("conc.lua", "{ sink = { concurrency = 10 } }"), NULL);
  wait_calls("sendMessage", N, 60000);
  CHECK(fakeapi_max_unanswered(api) <= LIMIT,
        "%zu requests in flight at once with concurrency %d",
        fakeapi_max_unanswered(api), LIMIT);
  CHECK(fakeapi_max_unanswered(api) >= LIMIT - 2,
        "only %zu in flight: the limit is not used", fakeapi_max_unanswered(api));
  /* Each poll asks for at most the free capacity. */
  size_t below = 0;
  for (size_t i = 0; i < fakeapi_poll_count(api); i++) {
    const struct fake_poll *poll = fakeapi_poll(api, i);
    CHECK(poll->limit >= 1 && poll->limit <= LIMIT,
          "poll %zu asked for %d updates with concurrency %d", i, poll->limit,
          LIMIT);
    if (poll->limit < LIMIT) below++;
  }
  CHECK(below > 0, "no poll asked for less than the limit: capacity is not tracked");
  check_each_answered_once(N, "r");
  proc_stop_cleanly(p);
}

TEST(sequential_sink) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", 20);
  enum { N = 30 };
  push_numbered(N, 5);
  const char *script = harness_write("seq.lua",
      "bot.on('message', function(ctx) ctx:reply('r' .. ctx.msg.text) end)\n"
      "bot.start()\n");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", N, 20000);
  CHECK(fakeapi_max_unanswered(api) == 1, "%zu updates ran at once",
        fakeapi_max_unanswered(api));
  int expect = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    CHECK(atoi(t + 1) == expect, "reply %s out of order (expected r%d)", t, expect);
    expect++;
    free(t);
  }
  proc_stop_cleanly(p);
}

TEST(batch_sink) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", 50);
  enum { N = 250 };
  push_numbered(N, 25);
  struct proc *p = proc_start(
      write_reply_script("batch.lua", "{ sink = { kind = 'batch' } }"), NULL);
  wait_calls("sendMessage", N, 20000);
  /* No poll while a batch was being handled: every poll after the first
   * arrived after all replies of the previous batch were answered. */
  for (size_t i = 1; i < fakeapi_poll_count(api); i++) {
    const struct fake_poll *poll = fakeapi_poll(api, i);
    for (size_t k = 0; k < fakeapi_call_count(api); k++) {
      const struct fake_call *c = fakeapi_call(api, k);
      if (c->received_us < poll->received_us)
        CHECK(c->answered_us && c->answered_us <= poll->received_us,
              "poll %zu was sent while the previous batch ran", i);
    }
  }
  CHECK(fakeapi_max_unanswered(api) > 50, "a batch did not run concurrently");
  check_each_answered_once(N, "r");
  proc_stop_cleanly(p);
}

/* --- faults ------------------------------------------------------------- */

static enum fake_fault fault_schedule(void *ud, const char *method,
                                      uint64_t nth) {
  if (strcmp(method, "getUpdates") != 0 || nth == 0) return FAULT_NONE;
  /* A fixed pseudo-random schedule: about one poll in four fails. */
  uint64_t x = nth * 2654435761u % 1000;
  if (nth == 40) return FAULT_429;
  if (x < 50) return FAULT_RESET;
  if (x < 100) return FAULT_500;
  if (x < 140) return FAULT_502_HTML;
  if (x < 190) return FAULT_GARBAGE;
  if (x < 250) return FAULT_TRUNCATED;
  return FAULT_NONE;
}

TEST(fault_schedule) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, fault_schedule, NULL);
  fakeapi_set_fault_retry_after(api, 1);
  enum { N = 20000 };
  push_numbered(N, 200);
  struct proc *p = proc_start(
      write_reply_script("faults.lua", "{ runner = { retryInterval = 20 } }"),
      NULL);
  wait_calls("sendMessage", N, 120000);
  run_for(300);
  check_each_answered_once(N, "r");
  CHECK(fakeapi_count_method(api, "sendMessage") == N, "%zu replies for %d updates",
        fakeapi_count_method(api, "sendMessage"), N);
  /* Logged once per burst, not once per failure. */
  int warnings = 0, recoveries = 0;
  for (const char *s = proc_stderr(p); (s = strstr(s, "getUpdates failed:")); s++)
    warnings++;
  for (const char *s = proc_stderr(p); (s = strstr(s, "works again after")); s++)
    recoveries++;
  /* The last burst may still be under way. */
  CHECK(warnings > 0 && (warnings == recoveries || warnings == recoveries + 1),
        "%d failure warnings for %d recoveries", warnings, recoveries);
  CHECK(strstr(proc_stderr(p), "429"), "the 429 was not reported");
  fprintf(stderr, "%zu polls, %d failure bursts\n", fakeapi_poll_count(api),
          warnings);
  proc_stop_cleanly(p);
}

/* --- timeouts and cancellation ------------------------------------------ */

static long hold_slow(void *ud, const struct fake_call *c) {
  char *t = fake_call_string(c, "text");
  long delay = t && strncmp(t, "slow", 4) == 0 ? -1 : 0;
  free(t);
  return delay;
}

static bool slow_dropped(void *ud) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    char *t = fake_call_string(c, "text");
    bool hit = t && strncmp(t, "slow", 4) == 0 && c->dropped;
    free(t);
    if (hit) return true;
  }
  return false;
}

TEST(timeout_cancels) {
  struct fakeapi *api = harness_api();
  fakeapi_set_delay_fn(api, hold_slow, NULL);
  const char *script = harness_write("timeout.lua",
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'stuck' then\n"
      "    local guard <close> = setmetatable({}, { __close = function()\n"
      "      print('closed ' .. ctx.msg.text)\n"
      "    end })\n"
      "    ctx:reply('slow')   -- the server never answers this one\n"
      "    print('never printed')\n"
      "  else\n"
      "    ctx:reply('fast ' .. ctx.msg.text)\n"
      "  end\n"
      "end)\n"
      "run(bot, { sink = { concurrency = 1, timeout = { milliseconds = 700,\n"
      "  handler = function(ctx, why) ctx:reply('timed out: ' .. ctx.msg.text) end } } })\n");
  fakeapi_push_text(api, 5, 5, "stuck");
  fakeapi_push_text(api, 6, 6, "second");
  uint64_t start = harness_now_ms();
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 3, 15000);   /* slow, timed out, fast second */
  uint64_t elapsed = harness_now_ms() - start;
  CHECK(elapsed < 5000, "took %llu ms", (unsigned long long)elapsed);
  CHECK(run_until(slow_dropped, NULL, 5000),
        "the stuck request was not aborted (the server still holds it open)");
  CHECK(api_sent_text("timed out: stuck"), "the timeout handler did not run");
  CHECK(api_sent_text("fast second"), "the slot was not freed for the second update");
  run_for(200);
  CHECK(strstr(proc_stdout(p), "closed stuck"), "the to-be-closed variable did not run");
  CHECK(!strstr(proc_stdout(p), "never printed"), "the cancelled handler went on");
  CHECK(strstr(proc_stderr(p), "timed out"), "the timeout was not logged");
  proc_stop_cleanly(p);
}

/* --- errors ------------------------------------------------------------- */

TEST(unhandled_error_logged) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("err.lua",
      "local function inner() error('kaput') end\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'bad' then inner() end\n"
      "  ctx:reply('r' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  int64_t bad = fakeapi_push_text(api, 1, 1, "bad");
  push_numbered(5, 5);
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 5, 10000);
  run_for(200);
  check_each_answered_once(5, "r");
  char needle[64];
  snprintf(needle, sizeof needle, "[update %lld]", (long long)bad);
  const char *line = strstr(proc_stderr(p), needle);
  CHECK(line, "the error was not logged with its update_id");
  CHECK(strstr(line, "err.lua:1: kaput"), "the log lacks the error");
  CHECK(strstr(line, "stack traceback"), "the log lacks a traceback");
  CHECK(strstr(line, "in function 'inner'") || strstr(line, "in local 'inner'") ||
            strstr(line, "inner"),
        "the traceback lacks the failing function");
  proc_stop_cleanly(p);
}
