/* Polling end to end (getUpdates): the fatal answers (401, 409), 429
 * with retry_after (also absurdly long ones), pacing that polls less when
 * updates trickle in, retries given up after maxRetryTime and no sooner
 * (backoff on 502, an unreachable server), silent; hostile answers that
 * cost one update at most, never the bot (a duplicate in a batch, ids
 * that do not fit or are not integers, {"ok":false} with HTTP 200); and
 * allowed_updates, derived from the handlers or given by the script. */
#include <string.h>
#include <time.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

/* --- fatal answers and retries ------------------------------------------ */

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

/* The outage report's "giving up at" is the deadline itself, to the
 * second: tghost exits then, not up to 2 s after the time it gave (now
 * and the delay were both cut to whole seconds before they were added). */
TEST(outage_deadline_said) {
  harness_api();
  const char *script = harness_write("down.lua",
      "bot.on('message', function() end)\n"
      "run(bot, { runner = { maxRetryTime = 5500, retryInterval = 300 } })\n");
  const char *env[] = {"BOT_TOKEN=" TEST_TOKEN,
                       "TGHOST_API_ROOT=http://127.0.0.1:1", NULL};
  struct proc *p = proc_start_env(script, NULL, env, false);
  CHECK(proc_wait(p, 30000), "tghost kept retrying");
  const char *err = proc_stderr(p);
  const char *at = strstr(err, "giving up at ");
  CHECK(at, "no outage report");
  struct tm tm = {0};
  CHECK(strptime(at + strlen("giving up at "), "%Y-%m-%d %H:%M:%S UTC", &tm),
        "no time in the report");
  double said = (double)timegm(&tm);
  /* When it gave up: the time stamp of its last line. */
  const char *last = strstr(err, "kept failing for ");
  CHECK(last, "no maxRetryTime message");
  while (last > err && last[-1] != '\n') last--;
  memset(&tm, 0, sizeof tm);
  const char *ms = strptime(last, "%Y-%m-%dT%H:%M:%S", &tm);
  CHECK(ms && *ms == '.', "no time stamp on the last line");
  double gave_up = (double)timegm(&tm) + atof(ms);
  CHECK(gave_up - said < 0.2 && said - gave_up < 1.2,
        "the report said %.0f, tghost gave up at %.3f (%+.3f s)", said,
        gave_up, gave_up - said);
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
  proc_stop_within(p, 4000);
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
  proc_stop_within(p, 4000);
}

/* An update with update_id twice: tghost would go by the first, the
 * script's ctx.update by the last, and the same update could run under two
 * ids. It is skipped as malformed, and the offset passes its first id. */
TEST(duplicate_update_id_key) {
  struct fakeapi *api = harness_api();
  fakeapi_push_raw_update(api, 10,
      "{\"update_id\":10,\"message\":{\"message_id\":1,\"chat\":{\"id\":3,"
      "\"type\":\"private\"},\"date\":1,\"text\":\"x\"},\"update_id\":12}");
  fakeapi_push_raw_update(api, 11,
      "{\"update_id\":11,\"message\":{\"message_id\":2,\"chat\":{\"id\":3,"
      "\"type\":\"private\"},\"date\":1,\"text\":\"y\"},\"upd\\u0061te_id\":13}");
  char u[512];
  text_update(u, sizeof u, "14", 4);
  fakeapi_push_raw_update(api, 14, u);
  struct proc *p = proc_start(harness_write("dupkey.lua", echo_script), NULL);
  wait_calls("sendMessage", 1, 10000);
  run_for(500);
  CHECK(api_sent_text("r14") && replies_with("r14") == 1,
        "the good update after them");
  CHECK(!api_sent_text("r10") && !api_sent_text("r12") &&
            !api_sent_text("r11") && !api_sent_text("r13"),
        "an update with two ids was handled");
  CHECK(count_in(proc_stderr(p), "update_id appears twice") == 2,
        "the skips were not reported (an escaped key counts too)");
  CHECK(fakeapi_times_delivered(api, 10) == 1 &&
            fakeapi_times_delivered(api, 11) == 1,
        "the offset did not pass them");
  proc_stop_within(p, 4000);
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
  proc_stop_within(p, 4000);
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
  proc_stop_within(p, 4000);
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
  proc_stop_within(p, 4000);
}

/* --- allowed_updates ---------------------------------------------------- */

static bool have_polls(void *ud) {
  return fakeapi_poll_count(harness_api()) >= ((struct count_wait *)ud)->want;
}

static char *first_poll_allowed_updates(struct proc *p) {
  struct count_wait w = {1};
  CHECK(run_until(have_polls, &w, 10000), "no getUpdates arrived");
  const struct fake_poll *poll = fakeapi_poll(harness_api(), 0);
  (void)p;
  return poll->allowed_updates ? canonical_json(poll->allowed_updates) : NULL;
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
  char *again = canonical_json(fakeapi_poll(api, 1)->allowed_updates);
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
