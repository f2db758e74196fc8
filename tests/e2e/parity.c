/* grammY habits that must just work (issue 13), end to end against the
 * fake Bot API: --check of a script that calls the API at its top level,
 * maxRetryTime given up only once it has passed, bot.start's options, the
 * run handle's task() and isRunning(), errors at the script's line, a
 * script that forgot run(bot), the CPU budget's default and the warning
 * about a loop blocked by something the CPU guard cannot stop. (The Lua
 * side of the issue has unit tests in tests/lua/.) */
#include <signal.h>
#include <string.h>

#include "harness.h"


/* The first call of method, or NULL. */
static const struct fake_call *first_call(const char *method) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++)
    if (strcmp(fakeapi_call(api, i)->method, method) == 0)
      return fakeapi_call(api, i);
  return NULL;
}

/* The text of the sendMessage that starts with prefix (malloc'd), or NULL. */
static char *reply_starting(const char *prefix) {
  struct fakeapi *api = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strncmp(t, prefix, strlen(prefix)) == 0) return t;
    free(t);
  }
  return NULL;
}

/* --- item 2: --check with Bot API calls at the top level --------------- */

TEST(check_top_level_calls) {
  harness_api();
  const char *script = harness_write("bot.lua",
      "bot.command('start', function(ctx) ctx:reply('hi') end)\n"
      "local ok = bot.api.setMyCommands{ commands = {\n"
      "  { command = 'start', description = 'Start' } } }\n"
      "assert(ok == true, 'setMyCommands gave ' .. tostring(ok))\n"
      "local me = bot.api.getMe()\n"
      "assert(type(me.id) == 'number' and me.is_bot and me.username, 'getMe')\n"
      "local msg = bot.api.sendMessage{ chat_id = -100123, text = 'up' }\n"
      "assert(msg.message_id and msg.chat.id == -100123, 'sendMessage')\n"
      "print('top level done')\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, (const char *[]){"--check", NULL});
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "top level done"), "the top level did not finish");
  CHECK(strstr(proc_stdout(p), "loads without errors and calls run()"),
        "no confirmation");
  /* One note per call, at the script's line. */
  const char *err = proc_stderr(p);
  CHECK(strstr(err, "bot.lua:2: --check: bot.api.setMyCommands was not sent"),
        "no note at the script's line for setMyCommands");
  CHECK(strstr(err, "bot.lua:5: --check: bot.api.getMe was not sent"),
        "no note for getMe");
  CHECK(count_in(err, "was not sent") == 3, "%zu notes for 3 calls",
        count_in(err, "was not sent"));
  CHECK(!strstr(err, "[tghost]"), "a message points into tghost: %s", err);
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "--check used the network");
  proc_check_clean(p);

  /* A call that could not be sent is an error at the script's line. */
  const char *bad = harness_write("bad.lua",
      "bot.on('message', function() end)\n"
      "bot.api.sendMessage{ chat_id = 1, text = function() end }\n"
      "run(bot)\n");
  struct proc *q = proc_start(bad, (const char *[]){"--check", NULL});
  CHECK(proc_wait(q, 10000), "no exit");
  CHECK(proc_status(q) == 1, "exit status %d", proc_status(q));
  CHECK(strstr(proc_stderr(q), "bad.lua:2: bot.api.sendMessage: cannot encode "
                               "the parameters"),
        "the error is not at the script's line");
  CHECK(!strstr(proc_stderr(q), "[tghost]"), "a message points into tghost");
  proc_check_clean(q);
}

/* --- item 3: maxRetryTime ---------------------------------------------- */

static enum fake_fault polls_502(void *ud, const char *method, uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 ? FAULT_502_HTML : FAULT_NONE;
}

/* getUpdates answers 502: with exponential backoff the attempts are at 0,
 * 0.1, 0.3, 0.7, 1.5 and 3.1 s, and the next would be at 6.3 s: one more
 * attempt is made at the 4 s deadline, then it gives up. Times are the
 * fake server's receive times, so a loaded machine only moves them
 * later. */
TEST(max_retry_502) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, polls_502, NULL);
  const char *script = harness_write("retry.lua",
      "bot.on('message', function() end)\n"
      "run(bot, { runner = { maxRetryTime = 4000 } })\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 30000), "tghost kept retrying");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "(maxRetryTime)"), "the reason is not given");
  size_t n = fakeapi_poll_count(api);
  CHECK(n >= 2, "%zu polls", n);
  uint64_t first = fakeapi_poll(api, 0)->received_us;
  uint64_t last = fakeapi_poll(api, n - 1)->received_us;
  uint64_t before_last = fakeapi_poll(api, n - 2)->received_us;
  long span_ms = (long)((last - first) / 1000);
  CHECK(span_ms >= 3990, "gave up %ld ms after the first failure, before "
        "maxRetryTime (4000 ms) had passed", span_ms);
  /* The last attempt is the one at the deadline: the one before it came
   * before the deadline (at 3.1 s on an idle machine). */
  CHECK((long)((before_last - first) / 1000) < 4000,
        "the attempt before the last came %ld ms after the first",
        (long)((before_last - first) / 1000));
  proc_check_clean(p);
}

/* The API unreachable (nothing listens on port 1): getMe is retried for
 * maxRetryTime = 3000 ms and gives up after at least that long. Before,
 * it gave up after 1.5 s (the next delay would have passed the limit). */
TEST(max_retry_unreachable) {
  harness_api();
  const char *script = harness_write("down.lua",
      "bot.on('message', function() end)\n"
      "run(bot, { runner = { maxRetryTime = 3000 } })\n");
  const char *env[] = {"BOT_TOKEN=" TEST_TOKEN,
                       "TGHOST_API_ROOT=http://127.0.0.1:1", NULL};
  uint64_t t0 = harness_now_ms();
  struct proc *p = proc_start_env(script, NULL, env, false);
  CHECK(proc_wait(p, 30000), "tghost kept retrying");
  uint64_t took = harness_now_ms() - t0;
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  const char *kept = strstr(proc_stderr(p), "kept failing for ");
  CHECK(kept, "no maxRetryTime message");
  double secs = atof(kept + strlen("kept failing for "));
  CHECK(secs >= 3.0, "gave up after %.1f s of failures (maxRetryTime 3 s)", secs);
  CHECK(took >= 3000, "exited %llu ms after it started", (unsigned long long)took);
  proc_check_clean(p);
}

/* --- item 4: bot.start's options --------------------------------------- */

static bool hup_reloaded(void *ud) {
  return strstr(proc_stderr(ud), "generation 2 loaded") != NULL;
}

TEST(start_options) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("start.lua",
      "bot.on('message', function(ctx) ctx:reply('r ' .. ctx.msg.text) end)\n"
      "bot.start{\n"
      "  drop_pending_updates = true,\n"
      "  onStart = function(me)\n"
      "    bot.api.sendMessage{ chat_id = 1, text = 'started as @' .. me.username }\n"
      "  end,\n"
      "}\n");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 1, 10000);
  fakeapi_push_text(api, 5, 5, "hello");
  wait_calls("sendMessage", 2, 10000);
  const struct fake_call *del = first_call("deleteWebhook");
  CHECK(del, "no deleteWebhook call");
  char *drop = fake_call_raw(del, "drop_pending_updates");
  CHECK(drop && strcmp(drop, "true") == 0, "drop_pending_updates = %s",
        drop ? drop : "(none)");
  free(drop);
  char *started = reply_starting("started as ");
  CHECK(started && strcmp(started, "started as @test_bot") == 0,
        "onStart sent '%s'", started ? started : "(nothing)");
  free(started);
  /* Both before the first getUpdates, as in grammY. */
  CHECK(fakeapi_poll_count(api) >= 1, "no poll");
  uint64_t first_poll = fakeapi_poll(api, 0)->received_us;
  CHECK(del->received_us < first_poll, "deleteWebhook came after polling began");
  CHECK(first_call("sendMessage")->received_us < first_poll,
        "onStart ran after polling began");
  CHECK(api_sent_text("r hello"), "the bot does not answer");
  /* A reload runs the top level again: it must neither drop pending
   * updates nor call onStart a second time. */
  proc_kill(p, SIGHUP);
  CHECK(run_until(hup_reloaded, p, 10000), "no reload after SIGHUP");
  fakeapi_push_text(api, 5, 5, "again");
  wait_calls("sendMessage", 3, 10000);
  CHECK(fakeapi_count_method(api, "deleteWebhook") == 1,
        "%zu deleteWebhook calls", fakeapi_count_method(api, "deleteWebhook"));
  CHECK(count_in(proc_stderr(p), "started as") == 0 &&
            fakeapi_count_method(api, "sendMessage") == 3,
        "onStart ran again on reload");
  proc_stop_cleanly(p);

  /* run(bot, {drop_pending_updates = true}) too. */
  const char *run_script = harness_write("run.lua",
      "bot.on('message', function(ctx) ctx:reply('ok') end)\n"
      "run(bot, { drop_pending_updates = true })\n");
  struct proc *q = proc_start(run_script, NULL);
  fakeapi_push_text(api, 6, 6, "x");
  wait_calls("sendMessage", 4, 10000);
  CHECK(fakeapi_count_method(api, "deleteWebhook") == 2, "run() did not call "
        "deleteWebhook");
  proc_stop_cleanly(q);

  /* A misspelt option gets a suggestion at the script's line. */
  const char *typo = harness_write("typo.lua",
      "bot.on('message', function() end)\n"
      "bot.start{ drop_pending_update = true }\n");
  struct proc *r = proc_start(typo, NULL);
  CHECK(proc_wait(r, 10000), "no exit");
  CHECK(proc_status(r) == 1, "exit status %d", proc_status(r));
  CHECK(strstr(proc_stderr(r), "typo.lua:2: bot.start: unknown option "
                               "drop_pending_update (did you mean "
                               "drop_pending_updates?)"),
        "no suggestion at the script's line");
  proc_check_clean(r);
}

/* --- item 6: the run handle's task() and isRunning() -------------------- */

TEST(handle_task) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("task.lua",
      "local handle = run(bot)\n"
      "print('isRunning after run(): ' .. tostring(handle:isRunning()))\n"
      "local ok, err = pcall(tghost.wait, handle:task())\n"
      "print('top-level wait: ' .. tostring(err))\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'wait' then\n"
      "    ctx:reply('waiting')\n"
      "    tghost.wait(handle:task())\n"
      "    ctx:reply('runner stopped; isRunning ' .. tostring(handle.isRunning()))\n"
      "  elseif ctx.msg.text == 'slow' then\n"
      "    tghost.sleep(0.5)\n"
      "    ctx:reply('slow done')\n"
      "  end\n"
      "end)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "wait");
  wait_calls("sendMessage", 1, 10000);
  CHECK(strstr(proc_stdout(p), "isRunning after run(): true"),
        "isRunning() is not true right after run()");
  CHECK(strstr(proc_stdout(p), "top-level wait: ") &&
            strstr(proc_stdout(p), "top level cannot wait for the bot to stop"),
        "waiting at the top level did not raise a clear error");
  run_for(300);
  CHECK(!api_sent_text("runner stopped; isRunning false"),
        "task() completed while the runner ran");
  /* A graceful stop: the waiter wakes once the rest (the slow update) is
   * done, and the process still drains and exits cleanly. */
  fakeapi_push_text(api, 2, 2, "slow");
  run_for(100);
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, 20000), "no exit after SIGTERM");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(api_sent_text("slow done"), "the slow update did not finish");
  CHECK(api_sent_text("runner stopped; isRunning false"),
        "the task() waiter was not woken");
  struct fakeapi *f = harness_api();
  uint64_t slow_at = 0, stopped_at = 0;
  for (size_t i = 0; i < fakeapi_call_count(f); i++) {
    char *t = fake_call_string(fakeapi_call(f, i), "text");
    if (t && strcmp(t, "slow done") == 0) slow_at = fakeapi_call(f, i)->received_us;
    if (t && strncmp(t, "runner stopped", 14) == 0)
      stopped_at = fakeapi_call(f, i)->received_us;
    free(t);
  }
  CHECK(stopped_at > slow_at, "the waiter woke before the other update was done");
  proc_check_clean(p);
}

/* --- item 8: errors at the script's line -------------------------------- */

TEST(error_positions) {
  struct fakeapi *api = harness_api();
  /* run() options */
  const char *opt = harness_write("opts.lua",
      "bot.on('message', function() end)\n"
      "\n"
      "run(bot, { sink = { concurency = 5 } })\n");
  struct proc *p = proc_start(opt, NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "opts.lua:3: run(): unknown option sink.concurency"),
        "the option error has no file:line");
  proc_check_clean(p);
  const char *maxw = harness_write("maxw.lua",
      "bot.on('message', function() end)\n"
      "run(bot, { sink = { maxWaiting = 1.5 } })\n");
  p = proc_start(maxw, NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(strstr(proc_stderr(p), "maxw.lua:2: run(): option sink.maxWaiting "
                               "must be a whole number"),
        "the option error has no file:line");
  proc_check_clean(p);

  /* A bad sequentialize key names the key function's line. */
  const char *seq = harness_write("seq.lua",
      "bot.catch(function(err)\n"
      "  bot.api.sendMessage{ chat_id = 9, text = 'caught: ' .. tostring(err.error) }\n"
      "end)\n"
      "bot.use(sequentialize(function(ctx)\n"
      "  return ctx.msg.text == 'bad' and true or ctx.chat.id\n"
      "end))\n"
      "bot.on('message', function(ctx) ctx:reply('ok ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "bad");
  fakeapi_push_text(api, 1, 1, "good");
  p = proc_start(seq, NULL);
  wait_calls("sendMessage", 2, 10000);
  char *caught = reply_starting("caught: ");
  CHECK(caught && strstr(caught, "seq.lua:4: sequentialize: the key function "
                                 "returned a boolean"),
        "the key error says '%s'", caught ? caught : "(nothing)");
  CHECK(caught && !strstr(caught, "[tghost]"), "it points into tghost");
  free(caught);
  CHECK(api_sent_text("ok good"), "the next update was not handled");
  proc_stop_cleanly(p);
}

/* --- item 10: a script that never calls run(bot) ------------------------ */

TEST(forgot_run) {
  harness_api();
  const char *script = harness_write("forgot.lua",
      "bot.command('start', function(ctx) ctx:reply('hi') end)\n"
      "print('loaded')\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "loaded"), "the script did not run");
  CHECK(count_in(proc_stderr(p), "never called run(bot) or bot.start()") == 1,
        "no one-line note about the missing run(bot)");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "the network was used");
  proc_check_clean(p);

  struct proc *c = proc_start(script, (const char *[]){"--check", NULL});
  CHECK(proc_wait(c, 10000), "no exit");
  CHECK(proc_status(c) == 0, "exit status %d", proc_status(c));
  CHECK(strstr(proc_stdout(c), "does not call run(bot) or bot.start(), so its "
                               "handlers would never receive an update"),
        "--check does not say that run() is not called");
  proc_check_clean(c);

  /* A plain Lua program (a unit test) is left alone. */
  const char *plain = harness_write("plain.lua", "print('just Lua')\n");
  struct proc *q = proc_start(plain, NULL);
  CHECK(proc_wait(q, 10000), "no exit");
  CHECK(proc_status(q) == 0, "exit status %d", proc_status(q));
  CHECK(!strstr(proc_stderr(q), "run(bot)"), "a plain script was nagged: %s",
        proc_stderr(q));
  proc_check_clean(q);
}

/* --- item 11: the CPU budget -------------------------------------------- */

/* With the default budget, a handler stuck in a loop holds everyone else
 * up for about a quarter of a second, not 2 s: a 50 ms sleep that ends
 * while the loop runs replies within a second. */
TEST(default_cpu_budget) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("stuck.lua",
      "bot.catch(function(err)\n"
      "  bot.api.sendMessage{ chat_id = 9, text = 'caught: ' .. tostring(err.error) }\n"
      "end)\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'loop' then while true do end end\n"
      "  local t0 = tghost.now()\n"
      "  tghost.sleep(0.05)\n"
      "  ctx:reply(string.format('slept %.0f', (tghost.now() - t0) * 1000))\n"
      "end)\n"
      "run(bot)\n");
  fakeapi_push_text(api, 1, 1, "sleep");
  fakeapi_push_text(api, 2, 2, "loop");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 2, 20000);
  char *caught = reply_starting("caught: ");
  CHECK(caught && strstr(caught, "ran for over 250 ms of CPU"),
        "the loop was not stopped after the default 250 ms: %s",
        caught ? caught : "(nothing)");
  free(caught);
  char *slept = reply_starting("slept ");
  CHECK(slept, "no reply from the sleeper");
  long ms = atol(slept + 6);
  free(slept);
  /* 250 ms budget + 50 ms guard tick; the sleeper waited for the loop. */
  CHECK(ms >= 200 && ms < 1000, "a 50 ms sleep took %ld ms next to a stuck "
        "handler", ms);
  CHECK(!strstr(proc_stderr(p), "event loop was blocked"),
        "a loop the guard stopped was reported as blocking");
  proc_stop_cleanly(p);
}

/* os.execute blocks the loop where the guard cannot stop it: afterwards
 * the log says so, once, with how long it lasted. (The guard counts the
 * time a handler holds the loop, so it stops this one as soon as
 * os.execute returns.) */
TEST(blocked_loop_warning) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("block.lua",
      "bot.catch(function(err)\n"
      "  bot.api.sendMessage{ chat_id = 9, text = 'caught: ' .. tostring(err.error) }\n"
      "end)\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'block' then os.execute('sleep 1.5') end\n"
      "  ctx:reply('r ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  fakeapi_push_text(api, 1, 1, "first");
  wait_calls("sendMessage", 1, 10000);
  fakeapi_push_text(api, 1, 1, "block");
  wait_stderr(p, "the event loop was blocked for ", 10000);
  const char *w = strstr(proc_stderr(p), "the event loop was blocked for ");
  double secs = atof(w + strlen("the event loop was blocked for "));
  CHECK(secs >= 1.2 && secs < 10, "blocked for %.1f s, reported", secs);
  CHECK(strstr(w, "CPU budget (250 ms)"), "the warning does not name the budget");
  fakeapi_push_text(api, 1, 1, "after");
  wait_calls("sendMessage", 3, 10000);
  CHECK(api_sent_text("r after"), "the bot does not answer after the stall");
  CHECK(count_in(proc_stderr(p), "event loop was blocked") == 1,
        "one stall reported %zu times", count_in(proc_stderr(p), "event loop was blocked"));
  proc_stop_cleanly(p);
}
