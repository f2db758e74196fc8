/* The runner against the fake Bot API: sinks, backpressure, faults,
 * timeouts with cancellation, graceful shutdown, the CPU guard. */
#include <signal.h>
#include <string.h>

#include "harness.h"

/* Each reply carries the update's number: "r<n>". Checks every update in
 * [0, n) was answered exactly once. */
static void check_each_answered_once(int n, const char *prefix) {
  struct fakeapi *api = harness_api();
  unsigned char *seen = xcalloc((size_t)n, 1);
  size_t plen = strlen(prefix);
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (!t || strncmp(t, prefix, plen) != 0) {
      free(t);
      continue;
    }
    int u = atoi(t + plen);
    CHECK(u >= 0 && u < n, "reply for unknown update %s", t);
    CHECK(!seen[u], "update %d was handled twice", u);
    seen[u] = 1;
    free(t);
  }
  for (int u = 0; u < n; u++) CHECK(seen[u], "update %d was never handled", u);
  free(seen);
}

static void push_numbered(int n, int chats) {
  char text[32];
  for (int i = 0; i < n; i++) {
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(harness_api(), 1 + i % chats, 1 + i % chats, text);
  }
}

static const char reply_script[] =
    "bot.on('message', function(ctx) ctx:reply('r' .. ctx.msg.text) end)\n"
    "run(bot, %s)\n";

static const char *write_reply_script(const char *name, const char *opts) {
  char script[1024];
  snprintf(script, sizeof script, reply_script, opts);
  return harness_write(name, script);
}

/* --- backpressure ------------------------------------------------------- */

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

static enum fake_fault fault_on_second_poll(void *ud, const char *method,
                                            uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 && nth == 1 ? *(enum fake_fault *)ud
                                                       : FAULT_NONE;
}

static void run_fatal(enum fake_fault fault, const char *needle1,
                      const char *needle2) {
  struct fakeapi *api = harness_api();
  static enum fake_fault chosen;
  chosen = fault;
  fakeapi_set_fault_fn(api, fault_on_second_poll, &chosen);
  push_numbered(3, 1);
  struct proc *p = proc_start(write_reply_script("fatal.lua", "{}"), NULL);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), needle1), "stderr lacks '%s'", needle1);
  CHECK(strstr(proc_stderr(p), needle2), "stderr lacks '%s'", needle2);
  proc_check_clean(p);
}

TEST(fatal_401) {
  run_fatal(FAULT_401, "401", "BOT_TOKEN");
}

TEST(fatal_409) {
  run_fatal(FAULT_409, "409", "webhook");
}

static enum fake_fault first_poll_429(void *ud, const char *method,
                                      uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 && nth == 0 ? FAULT_429 : FAULT_NONE;
}

TEST(getupdates_429) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, first_poll_429, NULL);
  fakeapi_set_fault_retry_after(api, 2);
  push_numbered(1, 1);
  struct proc *p = proc_start(write_reply_script("429.lua", "{}"), NULL);
  wait_calls("sendMessage", 1, 15000);
  CHECK(fakeapi_poll_count(api) >= 2, "no second poll");
  uint64_t gap = fakeapi_poll(api, 1)->received_us - fakeapi_poll(api, 0)->received_us;
  CHECK(gap >= 1900000 && gap < 6000000,
        "the poll after a 429 with retry_after 2 came %.2f s later", gap / 1e6);
  proc_stop_cleanly(p);
}

/* Updates trickle in every 40 ms; with pacing the source waits between
 * polls (up to maxDelayMilliseconds) instead of polling for each one. */
static size_t polls_for_trickle(const char *opts, const char *name) {
  struct fakeapi *api = harness_api();
  size_t polls_before = fakeapi_poll_count(api);
  size_t replies_before = fakeapi_count_method(api, "sendMessage");
  struct proc *p = proc_start(write_reply_script(name, opts), NULL);
  run_for(300);
  for (int i = 0; i < 60; i++) {
    fakeapi_push_text(api, 1, 1, "0");
    run_for(40);
  }
  wait_calls("sendMessage", replies_before + 60, 10000);
  size_t polls = fakeapi_poll_count(api) - polls_before;
  proc_stop_cleanly(p);
  return polls;
}

TEST(pacing) {
  size_t eager = polls_for_trickle("{}", "eager.lua");
  size_t paced = polls_for_trickle(
      "{ source = { speedTrafficBalance = 1.0, maxDelayMilliseconds = 300 } }",
      "paced.lua");
  fprintf(stderr, "polls for 60 trickled updates: %zu without pacing, %zu with\n",
          eager, paced);
  CHECK(eager >= 45, "without pacing only %zu polls for 60 updates", eager);
  CHECK(paced * 2 < eager, "pacing saved too little: %zu vs %zu polls", paced,
        eager);
}

static enum fake_fault always_500(void *ud, const char *method, uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 ? FAULT_500 : FAULT_NONE;
}

TEST(max_retry_time) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, always_500, NULL);
  struct proc *p = proc_start(
      write_reply_script("maxretry.lua",
                         "{ runner = { maxRetryTime = 1500, retryInterval = 100 } }"),
      NULL);
  uint64_t t0 = harness_now_ms();
  CHECK(proc_wait(p, 15000), "tghost kept retrying past maxRetryTime");
  uint64_t took = harness_now_ms() - t0;
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "maxRetryTime"), "the reason is not given");
  CHECK(took >= 1300 && took < 6000, "gave up after %llu ms",
        (unsigned long long)took);
  size_t polls = fakeapi_poll_count(api);
  CHECK(polls >= 12 && polls <= 20, "%zu polls in 1.5 s at 100 ms intervals", polls);
  proc_check_clean(p);
}

TEST(silent) {
  struct fakeapi *api = harness_api();
  fakeapi_set_fault_fn(api, fault_on_second_poll, &(enum fake_fault){FAULT_500});
  push_numbered(3, 1);
  struct proc *p = proc_start(
      write_reply_script("silent.lua", "{ runner = { silent = true, retryInterval = 50 } }"),
      NULL);
  run_for(500);
  fakeapi_push_text(api, 1, 1, "3");
  wait_calls("sendMessage", 4, 10000);
  CHECK(fakeapi_poll_count(api) >= 3, "no retry after the 500");
  proc_stop_cleanly(p);
  CHECK(!strstr(proc_stderr(p), "getUpdates failed"), "silent did not silence");
}

/* --- timeouts and cancellation ----------------------------------------- */

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

/* --- shutdown ----------------------------------------------------------- */

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

/* --- errors and the CPU guard ------------------------------------------ */

TEST(cpu_guard) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("cpu.lua",
      "bot.catch(function(err)\n"
      "  err.ctx:reply('caught ' .. err.ctx.msg.text .. ': ' .. tostring(err.error))\n"
      "end)\n"
      "bot.on('message', function(ctx)\n"
      "  local t = ctx.msg.text\n"
      "  if t == 'loop' then while true do end end\n"
      "  if t == 'ploop' then\n"
      "    while true do pcall(function() while true do end end) end\n"
      "  end\n"
      "  if t == 'coloop' then coroutine.wrap(function() while true do end end)() end\n"
      "  if t == 'sortloop' then\n"
      "    table.sort({3, 2, 1}, function(a, b) while true do end end)\n"
      "  end\n"
      "  if t == 'boom' then error('boom!') end\n"
      "  ctx:reply('r' .. t)\n"
      "end)\n"
      "run(bot)\n");
  const char *args[] = {"--cpu-budget", "0.3", NULL};
  fakeapi_push_text(api, 1, 1, "loop");
  fakeapi_push_text(api, 2, 2, "ploop");
  fakeapi_push_text(api, 3, 3, "boom");
  fakeapi_push_text(api, 4, 4, "coloop");
  fakeapi_push_text(api, 5, 5, "sortloop");
  push_numbered(20, 10);
  struct proc *p = proc_start(script, args);
  wait_calls("sendMessage", 25, 20000);
  check_each_answered_once(20, "r");
  int caught = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t && (strstr(t, "caught loop: ") || strstr(t, "caught ploop: ") ||
              strstr(t, "caught coloop: ") || strstr(t, "caught sortloop: "))) {
      CHECK(strstr(t, "CPU"), "the CPU error says: %s", t);
      caught++;
    }
    if (t && strstr(t, "caught boom: ")) {
      CHECK(strstr(t, "boom!"), "the error says: %s", t);
      caught++;
    }
    free(t);
  }
  CHECK(caught == 5, "%d of 5 errors reached bot.catch", caught);
  proc_stop_cleanly(p);
}

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

/* --- options ------------------------------------------------------------ */

TEST(bad_options) {
  harness_api();
  struct proc *p = proc_start(
      write_reply_script("badopt.lua", "{ sink = { concurency = 5 } }"), NULL);
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "sink.concurency"), "the option is not named");
  CHECK(strstr(proc_stderr(p), "did you mean concurrency"), "no suggestion");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "the network was used");
  proc_check_clean(p);

  struct proc *q = proc_start(
      write_reply_script("badtype.lua", "{ runner = { silent = 'yes' } }"), NULL);
  CHECK(proc_wait(q, 10000), "no exit");
  CHECK(proc_status(q) == 1, "exit status %d", proc_status(q));
  CHECK(strstr(proc_stderr(q), "runner.silent must be a boolean"),
        "the type error is unclear");
  proc_check_clean(q);

  struct proc *r = proc_start(
      write_reply_script("badrange.lua", "{ sink = { concurrency = 0 } }"), NULL);
  CHECK(proc_wait(r, 10000), "no exit");
  CHECK(proc_status(r) == 1, "exit status %d", proc_status(r));
  CHECK(strstr(proc_stderr(r), "sink.concurrency must be between 1 and"),
        "the range error is unclear");
  proc_check_clean(r);
}

TEST(check_mode) {
  harness_api();
  struct proc *p = proc_start(
      write_reply_script("check.lua", "{ sink = { concurrency = 7 } }"),
      (const char *[]){"--check", NULL});
  CHECK(proc_wait(p, 10000), "no exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "loads without errors"), "no confirmation");
  CHECK(fakeapi_connections_accepted(harness_api()) == 0, "--check used the network");
  proc_check_clean(p);
}
