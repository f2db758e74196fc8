/* Stopping tghost end to end: SIGTERM under load drains what is in flight,
 * confirms exactly that, and a restart goes on from there; a second
 * signal ends it at once, even when something blocks the loop (the
 * watchdog); the drain timeout; handle:stop() from a handler; os.exit
 * drains too, with its exit code; the run handle's task() and
 * isRunning(). */
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

static long random_delay(void *ud, const struct fake_call *c) {
  return (long)(c->seq * 7919 % 60);
}

TEST(sigterm_under_load) {
  struct fakeapi *api = harness_api();
  fakeapi_set_delay_fn(api, random_delay, NULL);
  enum { N = 6000 };
  push_numbered(N, 100);
  const char *script = write_reply_script("drain.lua", "{ sink = { concurrency = 200 } }");
  const char *args[] = {"--drain-timeout", "10", NULL};
  struct proc *p = proc_start(script, args);
  wait_calls("sendMessage", 1500, 30000);
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, 15000), "no exit after SIGTERM");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(harness_now_ms() - t0 < 10000, "the drain took longer than its timeout");
  proc_check_clean(p);
  size_t first_run = fakeapi_count_method(api, "sendMessage");
  CHECK(first_run < N, "everything was handled before the stop");
  /* Every update the first run started is confirmed; the rest are not. */
  int64_t confirmed = fakeapi_confirmed_offset(api);
  CHECK(confirmed == 1000 + (int64_t)first_run,
        "confirmed offset %lld after %zu handled updates (ids from 1000)",
        (long long)confirmed, first_run);
  /* A restart picks up exactly where the first run stopped. */
  struct proc *q = proc_start(script, args);
  wait_calls("sendMessage", N, 60000);
  run_for(300);
  check_each_answered_once(N, "r");
  fprintf(stderr, "first run handled %zu, the restart %zu\n", first_run,
          N - first_run);
  proc_stop_cleanly(q);
}

TEST(second_signal) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", -1);   /* never answered */
  push_numbered(5, 5);
  struct proc *p = proc_start(write_reply_script("twice.lua", "{}"), NULL);
  wait_calls("sendMessage", 5, 10000);
  proc_kill(p, SIGTERM);
  run_for(300);
  CHECK(!proc_exited(p), "exited before the drain timeout with updates in flight");
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, 5000), "no exit after the second signal");
  CHECK(harness_now_ms() - t0 < 2000, "the second signal did not exit at once");
  CHECK(proc_status(p) == 128 + SIGTERM, "exit status %d", proc_status(p));
  proc_check_clean(p);
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

TEST(drain_timeout) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", -1);
  push_numbered(3, 3);
  const char *args[] = {"--drain-timeout", "1", NULL};
  struct proc *p = proc_start(write_reply_script("draint.lua", "{}"), args);
  wait_calls("sendMessage", 3, 10000);
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, 10000), "no exit after the drain timeout");
  uint64_t took = harness_now_ms() - t0;
  CHECK(took >= 900 && took < 5000, "stopped after %llu ms with a 1 s drain timeout",
        (unsigned long long)took);
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "drain timeout"), "the cancel was not logged");
  proc_check_clean(p);
}

TEST(stop_from_handler) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendMessage", 200);
  const char *script = harness_write("stop.lua",
      "local handle\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'stop' then\n"
      "    handle:stop()\n"
      "    ctx:reply('stopped with ' .. handle:size() .. ' in flight, running='\n"
      "              .. tostring(handle:isRunning()))\n"
      "  else\n"
      "    tghost.sleep(0.3)\n"
      "    ctx:reply('r' .. ctx.msg.text)\n"
      "  end\n"
      "end)\n"
      "handle = run(bot)\n");
  push_numbered(10, 10);
  fakeapi_push_text(api, 99, 99, "stop");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 15000), "tghost did not exit after handle:stop()");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  check_each_answered_once(10, "r");
  CHECK(api_sent_text("stopped with 1 in flight, running=false"),
        "stop() did not return after the others finished");
  proc_check_clean(p);
}

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
  CHECK(strstr(proc_stdout(p), "top-level wait: ") &&
            strstr(proc_stdout(p), "task.lua:3: handle:task()"),
        "the error does not name the script's line: %s", proc_stdout(p));
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

/* The same wait at the top level under --check fails as it would in a
 * real run (it passed silently), at the script's line. */
TEST(handle_task_check) {
  harness_api();
  const char *script = harness_write("taskcheck.lua",
      "local handle = run(bot)\n"
      "handle:task():wait()\n");
  const char *args[] = {"--check", NULL};
  struct proc *p = proc_start(script, args);
  CHECK(proc_wait(p, 10000), "--check did not finish");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "taskcheck.lua:2: handle:task(): the "
               "script's top level cannot wait for the bot to stop"),
        "--check does not report the wait at the script's line");
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
