/* Hostile scripts and hostile servers: what the adversarial pass found
 * (issue "Hardening"). Every escape from the CPU guard must be stopped and
 * followed by a clean graceful stop; every malformed answer from the
 * server must cost one update at most, never the bot. */
#include <signal.h>
#include <string.h>

#include "harness.h"

/* Stops p with one SIGTERM and expects it gone, cleanly, well within its
 * drain timeout (the guard escapes must leave the loop free). */
static void stop_within(struct proc *p, int ms) {
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, ms), "tghost did not exit within %d ms of SIGTERM", ms);
  CHECK(proc_status(p) == 0, "exit status %d after SIGTERM", proc_status(p));
  fprintf(stderr, "stopped %llu ms after SIGTERM\n",
          (unsigned long long)(harness_now_ms() - t0));
  proc_check_clean(p);
}

static bool sent_containing(const char *needle) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    bool hit = t && strstr(t, needle);
    free(t);
    if (hit) return true;
  }
  return false;
}

static size_t replies_with(const char *text) {
  struct fakeapi *api = harness_api();
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t && strcmp(t, text) == 0) n++;
    free(t);
  }
  return n;
}

static bool have_text(void *ud) { return api_sent_text(ud); }
static bool reply_contains(void *ud) { return sent_containing(ud); }

/* A script whose handler runs `body` on the text "evil" and answers every
 * other text with "r<text>"; errors go to the chat through bot.catch. */
static struct proc *start_guard_bot(const char *name, const char *body) {
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

/* The evil update first, then ordinary ones that must all be answered. */
static void run_guard_case(const char *name, const char *body,
                           const char *stopped_log) {
  struct fakeapi *api = harness_api();
  fakeapi_push_text(api, 1, 1, "evil");
  struct proc *p = start_guard_bot(name, body);
  run_for(100);
  for (int i = 0; i < 5; i++) {
    char t[16];
    snprintf(t, sizeof t, "%d", i);
    fakeapi_push_text(api, 2, 2, t);
  }
  CHECK(run_until(have_text, "r4", 10000), "ordinary updates were not answered");
  if (stopped_log) wait_stderr(p, stopped_log, 10000);
  stop_within(p, 4000);
}

/* Lua runs finalizers with hooks off: a looping __gc ran forever. */
TEST(gc_finalizer_loop) {
  run_guard_case("gc.lua",
                 "    setmetatable({}, { __gc = function() while true do end end })\n"
                 "    collectgarbage()\n",
                 "a __gc finalizer was stopped");
  CHECK(api_sent_text("revil"), "the handler did not go on after collectgarbage");
}

/* A finalizer that is well-behaved still runs, and may even yield. */
TEST(gc_finalizer_runs) {
  struct fakeapi *api = harness_api();
  fakeapi_push_text(api, 1, 1, "evil");
  struct proc *p = start_guard_bot("gcok.lua",
      "    local chat = ctx.chat.id\n"
      "    setmetatable({}, { __gc = function()\n"
      "      tghost.sleep(0.05)\n"
      "      bot.api.sendMessage{ chat_id = chat, text = 'finalized' }\n"
      "    end })\n"
      "    collectgarbage()\n");
  CHECK(run_until(have_text, "finalized", 10000), "the finalizer never ran");
  CHECK(api_sent_text("revil"), "the handler did not finish");
  stop_within(p, 4000);
}

/* The guard used to follow at most 32 nested coroutines. */
TEST(deep_coroutines) {
  run_guard_case("deep.lua",
                 "    local function nest(n)\n"
                 "      if n == 0 then while true do end end\n"
                 "      return coroutine.wrap(function() return nest(n - 1) end)()\n"
                 "    end\n"
                 "    nest(64)\n",
                 NULL);
  CHECK(sent_containing("caught: ") && sent_containing("CPU"),
        "the nested loop was not reported as a CPU error");
}

/* A message handler that removes the guard's hook. */
TEST(sethook_escape) {
  run_guard_case("hook.lua",
                 "    string.gsub('x', 'x', function()\n"
                 "      while true do\n"
                 "        xpcall(function() while true do end end,\n"
                 "               function() debug.sethook() end)\n"
                 "      end\n"
                 "    end)\n",
                 NULL);
  CHECK(sent_containing("caught: ") && sent_containing("CPU"),
        "the escape was not reported as a CPU error");
}

static bool exited(void *ud) { return proc_exited(ud); }

/* Whatever blocks the loop, a second signal ends the process. */
TEST(second_signal_watchdog) {
  struct fakeapi *api = harness_api();
  fakeapi_push_text(api, 1, 1, "evil");
  struct proc *p = start_guard_bot("block.lua",
                                   "    os.execute('sleep 30')\n");
  wait_stderr(p, "running as", 10000);
  run_for(500);
  proc_kill(p, SIGTERM);
  run_for(300);
  CHECK(!proc_exited(p), "exited although the loop was blocked");
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  /* Exited, that is: the `sleep` it started keeps its output pipes open. */
  CHECK(run_until(exited, p, 6000),
        "a second SIGTERM did not end a blocked process");
  uint64_t took = harness_now_ms() - t0;
  fprintf(stderr, "exited %llu ms after the second signal\n",
          (unsigned long long)took);
  CHECK(took < 4000, "the watchdog took %llu ms", (unsigned long long)took);
  CHECK(proc_status(p) == 128 + SIGTERM, "exit status %d", proc_status(p));
}

/* --- memory ------------------------------------------------------------- */

TEST(update_memory_limit) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("mem.lua",
      "keep = {}\n"
      "bot.catch(function(err)\n"
      "  err.ctx:reply('caught: ' .. tostring(err.error))\n"
      "end)\n"
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'hog' then\n"
      "    while true do\n"
      "      keep[#keep + 1] = string.rep('x', 4 * 1024 * 1024 - 64) .. #keep\n"
      "      tghost.sleep(0)\n"
      "    end\n"
      "  end\n"
      "  ctx:reply('r' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  const char *args[] = {"--update-memory-limit", "48", NULL};
  fakeapi_push_text(api, 1, 1, "hog");
  struct proc *p = proc_start(script, args);
  CHECK(run_until(reply_contains, "used more than 48 MiB of Lua memory", 20000),
        "the handler was not stopped with a clear error");
  for (int i = 0; i < 3; i++) {
    char t[16];
    snprintf(t, sizeof t, "%d", i);
    fakeapi_push_text(api, 2, 2, t);
  }
  CHECK(run_until(have_text, "r2", 10000), "the bot stopped serving");
  CHECK(!strstr(proc_stderr(p), "error in a handler (add bot.catch to handle "
                                "errors): nil"),
        "an error was logged as nil");
  stop_within(p, 4000);
}

TEST(total_memory_limit) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("memtotal.lua",
      "keep = {}\n"
      "bot.catch(function(err)\n"
      "  err.ctx:reply('caught: ' .. tostring(err.error))\n"
      "end)\n"
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'hog' then\n"
      "    local mine = {}\n"
      "    keep[#keep + 1] = mine\n"
      "    while true do\n"
      "      mine[#mine + 1] = string.rep('y', 2 * 1024 * 1024 - 64) .. #mine\n"
      "      tghost.sleep(0)\n"
      "    end\n"
      "  end\n"
      "  if ctx.msg.text == 'free' then keep = {}; collectgarbage() end\n"
      "  ctx:reply('r' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  const char *args[] = {"--memory-limit", "40", "--update-memory-limit", "0",
                        NULL};
  fakeapi_push_text(api, 1, 1, "hog");
  struct proc *p = proc_start(script, args);
  CHECK(run_until(reply_contains, "reached the limit of 40 MiB", 20000),
        "the handler was not stopped with a clear error");
  fakeapi_push_text(api, 2, 2, "free");
  fakeapi_push_text(api, 3, 3, "after");
  CHECK(run_until(have_text, "rafter", 10000), "the bot stopped serving");
  stop_within(p, 4000);
}

/* --- background work and exits ------------------------------------------ */

static const char background_script[] =
    "ticks = 0\n"
    "tghost.spawn(function() while true do tghost.sleep(0.05); ticks = ticks + 1 end end)\n"
    "tghost.every(0.1, function()\n"
    "  bot.api.sendMessage{ chat_id = 7, text = 'tick' }\n"
    "end)\n"
    "bot.on('message:text', function(ctx) ctx:reply('ticks ' .. (ticks > 0 and 'yes' or 'no')) end)\n"
    "run(bot)\n";

static bool three_ticks(void *ud) { return replies_with("tick") >= 3; }

TEST(background_tasks) {
  struct fakeapi *api = harness_api();
  struct proc *p = proc_start(harness_write("bg.lua", background_script), NULL);
  wait_calls("getMe", 1, 10000);
  CHECK(run_until(three_ticks, NULL, 10000), "tghost.every did not repeat");
  fakeapi_push_text(api, 1, 1, "hello");
  CHECK(run_until(have_text, "ticks yes", 10000),
        "updates were not handled beside the background task");
  stop_within(p, 4000);
}

TEST(background_check) {
  harness_api();
  const char *args[] = {"--check", NULL};
  struct proc *p =
      proc_start(harness_write("bgcheck.lua", background_script), args);
  CHECK(proc_wait(p, 5000), "--check did not finish with a background task");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  proc_check_clean(p);
}

TEST(os_exit) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("exit.lua",
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'slow' then tghost.sleep(0.5); ctx:reply('slow done') end\n"
      "  if ctx.msg.text == 'exit' then\n"
      "    local closed <close> = setmetatable({}, { __close = function()\n"
      "      bot.api.sendMessage{ chat_id = 1, text = 'closed' } end })\n"
      "    os.exit(3)\n"
      "    ctx:reply('after exit')\n"
      "  end\n"
      "end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "slow");
  fakeapi_push_text(api, 2, 2, "exit");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 10000), "os.exit did not end tghost");
  CHECK(proc_status(p) == 3, "exit status %d, not os.exit's 3", proc_status(p));
  CHECK(api_sent_text("slow done"), "the update in flight was not drained");
  CHECK(!api_sent_text("after exit"), "the handler went on after os.exit");
  CHECK(strstr(proc_stderr(p), "os.exit(3) called"), "os.exit was not logged");
  CHECK(fakeapi_confirmed_offset(api) > 1001,
        "the offset was not confirmed (%lld)",
        (long long)fakeapi_confirmed_offset(api));
  proc_check_clean(p);
}

/* --- hostile server answers --------------------------------------------- */

static const char echo_script[] =
    "bot.on('message:text', function(ctx) ctx:reply('r' .. ctx.update.update_id) end)\n"
    "run(bot)\n";

static void text_update(char *out, size_t n, const char *id_json, int chat) {
  snprintf(out, n,
           "{\"update_id\":%s,\"message\":{\"message_id\":1,\"from\":{\"id\":%d,"
           "\"is_bot\":false,\"first_name\":\"U\"},\"chat\":{\"id\":%d,"
           "\"type\":\"private\"},\"date\":1,\"text\":\"x\"}}",
           id_json, chat, chat);
}

TEST(duplicate_in_batch) {
  struct fakeapi *api = harness_api();
  char u[512];
  text_update(u, sizeof u, "7", 1);
  fakeapi_push_raw_update(api, 7, u);
  fakeapi_push_raw_update(api, 7, u);
  text_update(u, sizeof u, "8", 2);
  fakeapi_push_raw_update(api, 8, u);
  struct proc *p = proc_start(harness_write("dup.lua", echo_script), NULL);
  wait_calls("sendMessage", 2, 10000);
  run_for(300);
  CHECK(replies_with("r7") == 1, "update 7 was handled %zu times",
        replies_with("r7"));
  CHECK(replies_with("r8") == 1, "update 8 was handled %zu times",
        replies_with("r8"));
  stop_within(p, 4000);
}

static bool offsets_sane(void) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_poll_count(api); i++)
    if (fakeapi_poll(api, i)->offset < 0) return false;
  return true;
}

TEST(huge_update_id) {
  struct fakeapi *api = harness_api();
  char u[512];
  text_update(u, sizeof u, "9223372036854775807", 1);
  fakeapi_push_raw_update(api, 5, u);
  text_update(u, sizeof u, "6", 2);
  fakeapi_push_raw_update(api, 6, u);
  struct proc *p = proc_start(harness_write("huge.lua", echo_script), NULL);
  wait_calls("sendMessage", 1, 10000);
  run_for(300);
  CHECK(api_sent_text("r6"), "the update after the huge id was not handled");
  CHECK(offsets_sane(), "a negative offset was sent");
  CHECK(strstr(proc_stderr(p), "update_id is too large"), "the skip was not logged");
  stop_within(p, 4000);
}

TEST(bad_update_ids) {
  struct fakeapi *api = harness_api();
  char u[512];
  text_update(u, sizeof u, "2.0", 1);
  fakeapi_push_raw_update(api, 2, u);
  fakeapi_push_raw_update(api, 3,
      "{\"message\":{\"message_id\":1,\"chat\":{\"id\":3,\"type\":\"private\"},"
      "\"date\":1,\"text\":\"no id\"}}");
  text_update(u, sizeof u, "1e23", 1);
  fakeapi_push_raw_update(api, 4, u);
  text_update(u, sizeof u, "5", 5);
  fakeapi_push_raw_update(api, 5, u);
  /* A lone bad update last: only its position can move the offset. */
  fakeapi_push_raw_update(api, 6, "{\"update_id\":\"six\"}");
  struct proc *p = proc_start(harness_write("badid.lua", echo_script), NULL);
  wait_calls("sendMessage", 1, 10000);
  run_for(500);
  CHECK(api_sent_text("r5"), "the good update among bad ones was not handled");
  CHECK(replies_with("r5") == 1, "update 5 handled %zu times", replies_with("r5"));
  CHECK(fakeapi_times_delivered(api, 6) <= 2,
        "the lone bad update was delivered %d times: the offset did not move "
        "past it", fakeapi_times_delivered(api, 6));
  const char *err = proc_stderr(p);
  CHECK(strstr(err, "update_id is not an integer"), "2.0 not reported");
  CHECK(strstr(err, "no update_id"), "the missing id not reported");
  CHECK(strstr(err, "\\\"text\\\":\\\"no id\\\"") || strstr(err, "\"no id\""),
        "the bad update's text is not shown");
  /* And the bot goes on. */
  fakeapi_push_text(api, 9, 9, "later");
  wait_calls("sendMessage", 2, 10000);
  stop_within(p, 4000);
  CHECK(strstr(proc_stderr(p), "malformed update(s) were skipped"),
        "no count of skipped updates at the stop");
}

static enum fake_fault flood_once(void *ud, const char *method, uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 && nth == 0 ? FAULT_429 : FAULT_NONE;
}

static void huge_retry_after(const char *text) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, flood_once, NULL);
  fakeapi_set_fault_retry_after_text(api, text);
  struct proc *p = proc_start(harness_write("flood.lua", echo_script), NULL);
  wait_stderr(p, "then asking again", 10000);
  run_for(500);
  CHECK(!proc_exited(p), "tghost gave up on a long retry_after (%s)", text);
  stop_within(p, 4000);
}

TEST(retry_after_1e9) { huge_retry_after("1e9"); }
TEST(retry_after_1e400) { huge_retry_after("1e400"); }

static enum fake_fault ok_false_once(void *ud, const char *method,
                                     uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 && nth == 0 ? FAULT_OK_FALSE_200
                                                       : FAULT_NONE;
}

TEST(ok_false_200) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, ok_false_once, NULL);
  fakeapi_push_text(api, 1, 1, "x");
  struct proc *p = proc_start(harness_write("okfalse.lua", echo_script), NULL);
  wait_calls("sendMessage", 1, 10000);
  CHECK(!proc_exited(p), "{\"ok\":false} with HTTP 200 was fatal");
  CHECK(strstr(proc_stderr(p), "without an error code"), "not explained");
  stop_within(p, 4000);
}

/* --- start-up and secrets ----------------------------------------------- */

TEST(bad_api_root) {
  harness_api();
  const char *roots[] = {"http://", "http://[::1", "http://127.0.0.1:99999"};
  for (size_t i = 0; i < 3; i++) {
    const char *args[] = {"--api-root", roots[i], NULL};
    const char *env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
    struct proc *p =
        proc_start_env(harness_write("root.lua", echo_script), args, env, false);
    CHECK(proc_wait(p, 5000), "no exit for --api-root %s", roots[i]);
    CHECK(proc_status(p) == 2, "exit status %d for --api-root %s",
          proc_status(p), roots[i]);
    CHECK(strstr(proc_stderr(p), "--api-root"), "the message does not say "
          "what is wrong: %s", proc_stderr(p));
    proc_check_clean(p);
  }
}

TEST(json_load_error) {
  harness_api();
  const char *args[] = {"--log-format", "json", NULL};
  struct proc *p =
      proc_start(harness_write("broken.lua", "bot.on('message'\n"), args);
  CHECK(proc_wait(p, 5000), "no exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  const char *err = proc_stderr(p);
  CHECK(err[0] == '{' && strstr(err, "\"level\":\"error\"") &&
            strstr(err, "broken.lua:"),
        "the load error is not a JSON log line: %s", err);
  proc_check_clean(p);
}

TEST(secrets) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("secret.lua",
      "local t = tghost.token()\n"
      "local enc = t:gsub(':', '%%3a')\n"
      "print('lower ' .. enc)\n"
      "print('upper ' .. t:gsub(':', '%%3A'))\n"
      "print('half ' .. t:match(':(.*)'))\n"
      "io.stderr:write('stderr ', t, '\\n')\n"
      "io.write('write ', t, '\\n')\n"
      "io.stdout:write('stdout ', enc, '\\n')\n"
      "print('env ' .. tostring(os.getenv('BOT_TOKEN')))\n"
      "local f = io.popen('env')\n"
      "local all = f:read('a'); f:close()\n"
      "print('child sees it: ' .. tostring(all:find(t:match(':(.*)'), 1, true) ~= nil))\n"
      "bot.on('message', function(ctx) ctx:reply('ok') end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "x");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 1, 10000);
  const char *out = proc_stdout(p), *err = proc_stderr(p);
  CHECK(strstr(out, "env nil"), "os.getenv still sees BOT_TOKEN: %s", out);
  CHECK(strstr(out, "child sees it: false"), "a child process saw the token");
  CHECK(strstr(out, "half <token>") && strstr(out, "lower <token>") &&
            strstr(out, "upper <token>") && strstr(out, "write <token>") &&
            strstr(out, "stdout <token>"),
        "stdout is not redacted: %s", out);
  CHECK(strstr(err, "stderr <token>"), "io.stderr is not redacted");
  const char *half = strchr(TEST_TOKEN, ':') + 1;
  CHECK(!strstr(out, half) && !strstr(err, half), "the token's secret half leaked");
  CHECK(!strcasestr(out, "424242%3a") && !strcasestr(err, "424242%3a"),
        "the URL-encoded token leaked");
  stop_within(p, 4000);
}
