/* /metrics and /healthz end to end, under polling: the whole output of a
 * running tghost parsed by Python's prometheus_client
 * (tests/tools/prom_check.py, stricter than the format needs) and its
 * counters compared with what the fake server saw: updates received and
 * handled (done, failed, consumed by a conversation), API calls and their
 * durations, reloads that worked and failed, the source's state and last
 * error; /healthz through a getUpdates failure, its grace period, the
 * recovery and a drain; the journal's gauges. (The webhook's metrics:
 * webhook.c.) */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "probe.h"

static bool fault_on;
static enum fake_fault polls_fail(void *ud, const char *method, uint64_t nth) {
  return fault_on && strcmp(method, "getUpdates") == 0 ? FAULT_500 : FAULT_NONE;
}

/* A poll asked for what follows the last update pushed: tghost has them
 * all. */
static bool all_fetched(void *ud) {
  return fakeapi_confirmed_offset(harness_api()) >= 1302;
}

static bool has_text(void *ud) { return api_sent_text(ud); }

TEST(metrics_parse) {
  require_parser();
  const char *script_text =
      "bot.command('fail', function() error('boom') end)\n"
      "bot.command('slow', function(ctx) tghost.sleep(3); ctx:reply('slow') end)\n"
      "bot.command('ask', function(ctx)\n"
      "  ctx:reply('name?')\n"
      "  ctx:reply('hi ' .. ctx:wait('message:text').msg.text)\n"
      "end)\n"
      "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
      "run(bot)\n";
  const char *script = harness_write("polled.lua", script_text);
  fakeapi_set_fault_fn(harness_api(), polls_fail, NULL);
  const char *args[] = {"--metrics", "127.0.0.1:0", NULL};
  static const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN,
                                    "TGHOST_HEALTH_GRACE=1", NULL};
  struct proc *p = proc_start_env(script, args, env, true);
  int mport = wait_port(p, METRICS_MARK);
  for (int i = 0; i < 300; i++) {
    char text[32];
    snprintf(text, sizeof text, "m%d", i);
    fakeapi_push_text(harness_api(), 100 + i % 7, 100 + i % 7, text);
  }
  fakeapi_push_text(harness_api(), 5, 5, "/fail");
  fakeapi_push_text(harness_api(), 5, 5, "/fail");
  wait_calls("sendMessage", 300, 20000);
  CHECK(run_until(all_fetched, NULL, 10000), "not every update was fetched");
  struct metric_wait settled = {mport, "tghost_updates_in_flight", 0};
  CHECK(run_until(metric_is, &settled, 10000), "updates still in flight");

  struct samples m = {0};
  CHECK(scrape(mport, &m) == 0, "parser");
  size_t delivered = 0;
  for (int64_t id = 1000; id < 1302; id++)
    delivered += fakeapi_times_delivered(harness_api(), id) > 0;
  CHECK(delivered == 302, "the fake server delivered %zu", delivered);
  CHECK(sample(&m, "tghost_updates_received_total{source=\"polling\"}") ==
            (double)delivered, "received: %s", m.text);
  CHECK(sample(&m, "tghost_updates_handled_total{outcome=\"done\"}") == 300,
        "done");
  CHECK(sample(&m, "tghost_updates_handled_total{outcome=\"failed\"}") == 2,
        "failed");
  double sent = (double)fakeapi_count_method(harness_api(), "sendMessage");
  CHECK(sample(&m, "tghost_api_calls_total{method=\"sendMessage\","
                   "outcome=\"ok\"}") == sent, "sendMessage: fake saw %.0f",
        sent);
  CHECK(sample(&m, "tghost_api_call_duration_seconds_count{method="
                   "\"sendMessage\"}") == sent, "one latency per call");
  CHECK(sample(&m, "tghost_handler_duration_seconds_count{}") == 302,
        "one duration per update");
  CHECK(sample(&m, "tghost_source_state{state=\"polling\"}") == 1, "polling");
  CHECK(sample(&m, "tghost_generation{}") == 1, "generation 1");
  struct health_wait h = {mport, 200, BUF_INIT};
  CHECK(health_is(&h) && strstr(h.body.data, "ok: polling"), "healthz: %s",
        h.body.data);

  /* A conversation waiting, then the answer it consumes. */
  fakeapi_push_text(harness_api(), 9, 9, "/ask");
  CHECK(run_until(has_text, "name?", 10000), "the question");
  struct metric_wait conv = {mport, "tghost_conversations_waiting", 1};
  CHECK(run_until(metric_is, &conv, 5000), "the waiting conversation");
  fakeapi_push_text(harness_api(), 9, 9, "Ann");
  CHECK(run_until(has_text, "hi Ann", 10000), "the answer");
  conv.want = 0;
  CHECK(run_until(metric_is, &conv, 5000), "still waiting");
  CHECK(scrape(mport, &m) == 0, "parser");
  CHECK(sample(&m, "tghost_updates_handled_total{outcome=\"consumed\"}") == 1,
        "the answer was consumed by the conversation");

  /* A reload that works, and one that does not. */
  struct buf again = BUF_INIT;
  buf_printf(&again, "%s-- edited\n", script_text);
  harness_write("polled.lua", again.data);
  buf_free(&again);
  CHECK(run_until_stderr(p, "generation 2 loaded", 15000), "no reload");
  harness_write("polled.lua", "bot.on('message:text', function(ctx)\n");
  CHECK(run_until_stderr(p, "generation 3 rejected", 15000),
        "the broken version");
  CHECK(scrape(mport, &m) == 0, "parser");
  CHECK(sample(&m, "tghost_reloads_total{result=\"ok\"}") == 1 &&
            sample(&m, "tghost_reloads_total{result=\"failed\"}") == 1 &&
            sample(&m, "tghost_generation{}") == 2,
        "reloads: %s", m.text);

  /* getUpdates fails: healthy for the grace period, then 503 with why. */
  fault_on = true;
  fakeapi_push_text(harness_api(), 5, 5, "ends the held poll");
  h.want = 503;
  CHECK(run_until(health_is, &h, 15000), "healthz never turned 503: %s",
        h.body.data);
  CHECK(strstr(h.body.data, "failing for") &&
            strstr(h.body.data, "Internal Server Error"),
        "the reason: %s", h.body.data);
  CHECK(scrape(mport, &m) == 0, "parser");
  CHECK(sample(&m, "tghost_source_state{state=\"failing\"}") == 1, "failing");
  CHECK(sample(&m, "tghost_source_errors_total{kind=\"server_error\"}") >= 1,
        "errors counted");
  CHECK(sample(&m, "tghost_source_failing_since_seconds{}") > 1.7e9,
        "failing since a Unix time");
  CHECK(strstr(m.text, "tghost_source_last_error_info{kind=\"server_error\","
                       "message=\""), "the last error: %s", m.text);
  /* Healthy again with the next answer to getUpdates (after failures the
   * source retries without waiting for updates, so that comes at once,
   * even for a bot nobody writes to). */
  fault_on = false;
  h.want = 200;
  CHECK(run_until(health_is, &h, 20000), "healthz did not recover: %s",
        h.body.data);

  /* Stopping: 503 while the slow update drains. */
  fakeapi_push_text(harness_api(), 6, 6, "/slow");
  run_for(500);
  proc_kill(p, SIGTERM);
  h.want = 503;
  CHECK(run_until(health_is, &h, 5000) && strstr(h.body.data, "stopping"),
        "healthz while stopping: %s", h.body.data);
  CHECK(proc_wait(p, 20000) && proc_status(p) == 0, "clean exit");
  proc_check_clean(p);
  buf_free(&h.body);
  samples_free(&m);
}

/* The journal's gauges come from the source's health hook, which runs
 * when /metrics is read: the updates recorded and not finished, and the
 * batches not yet durable. */
TEST(metrics_journal) {
  const char *script = harness_write("journaled.lua",
      "bot.on('message:text', function(ctx)\n"
      "  if ctx.msg.text == 'hold' then tghost.sleep(2) end\n"
      "  ctx:reply('ok ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  char journal[512];
  snprintf(journal, sizeof journal, "%s/bot.journal", harness_tmpdir());
  const char *args[] = {"--metrics", "127.0.0.1:0", "--journal", journal,
                        NULL};
  struct proc *p = proc_start(script, args);
  int mport = wait_port(p, METRICS_MARK);
  for (int i = 0; i < 3; i++)
    fakeapi_push_text(harness_api(), 10 + i, 10 + i, "hold");
  struct metric_wait backlog = {mport, "tghost_journal_backlog_updates", 3};
  CHECK(run_until(metric_is, &backlog, 10000),
        "the journal's backlog never read 3 while 3 updates ran");
  wait_calls("sendMessage", 3, 10000);
  backlog.want = 0;
  CHECK(run_until(metric_is, &backlog, 10000),
        "the journal's backlog did not go back to 0");
  struct metric_wait unsynced = {mport, "tghost_journal_unsynced_batches", 0};
  CHECK(run_until(metric_is, &unsynced, 5000), "unsynced batches left");
  proc_stop_cleanly(p);
}
