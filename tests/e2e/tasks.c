/* Tasks end to end: 1,000 handlers sleeping at once; tghost.spawn, wait
 * and all; an update that lasts until its children are done, and takes
 * them along when it is cancelled (their coroutines closed, their
 * requests aborted). */
#include <string.h>

#include "harness.h"
#include "calls.h"

/* 1,000 handlers sleeping 1 s each at once finish in about 1 s. */
TEST(sleep_1000) {
  struct fakeapi *api = harness_api();
  enum { N = 1000 };
  for (int i = 0; i < N; i++) {
    char text[16];
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(api, 10000 + i, 1, text);
  }
  const char *script = harness_write("sleep.lua",
      "bot.on('message', function(ctx)\n"
      "  local t0 = tghost.now()\n"
      "  tghost.sleep(1)\n"
      "  ctx:reply(string.format('%.4f', tghost.now() - t0))\n"
      "end)\n"
      "run(bot, { sink = { concurrency = 1000 } })\n");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", N, 60000);
  const struct fake_call *last = nth_call("sendMessage", N - 1);
  /* From the first update handed out to the last reply. */
  uint64_t first_poll_us = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "getMe") == 0) first_poll_us = c->answered_us;
  }
  double wall = (double)(last->received_us - first_poll_us) / 1e6;
  double min_slept = 1e9;
  for (int i = 0; i < N; i++) {
    const struct fake_call *c = nth_call("sendMessage", (size_t)i);
    char *t = fake_call_string(c, "text");
    double slept = t ? atof(t) : 0;
    if (slept < min_slept) min_slept = slept;
    free(t);
  }
  fprintf(stderr, "sleep: %d handlers sleeping 1 s done %.2f s after getMe; "
          "shortest sleep %.4f s\n", N, wall, min_slept);
  CHECK(min_slept >= 0.999, "a sleep(1) lasted only %.4f s", min_slept);
  /* Sequential would be 1,000 s; 100 at a time 10 s. */
  CHECK(wall < 4.0, "1,000 concurrent sleeps took %.2f s", wall);
  proc_stop_cleanly(p);
}

/* tghost.spawn/wait/all semantics, at the top level of a script. */
TEST(spawn_join) {
  harness_api();
  const char *script = harness_write("join.lua",
      "local t0 = tghost.now()\n"
      "local a = tghost.spawn(function(x) tghost.sleep(0.3) return x * 2, 'two' end, 21)\n"
      "local b = tghost.spawn(function() tghost.sleep(0.3) return 'b' end)\n"
      "local x, y = tghost.wait(a)\n"
      "assert(x == 42 and y == 'two')\n"
      "local p, q = tghost.wait(a, b)\n"
      "assert(p == 42 and q == 'b')\n"
      "assert(tghost.now() - t0 < 0.55, 'children did not run at once')\n"
      "assert(a:status() == 'done')\n"
      "local r = tghost.all{ function() tghost.sleep(0.1) return 1 end,\n"
      "                      function() return 2 end, a }\n"
      "assert(r[1] == 1 and r[2] == 2 and r[3] == 42)\n"
      "local c = tghost.spawn(function() error({ code = 7 }) end)\n"
      "local ok, e = pcall(tghost.wait, c)\n"
      "assert(not ok and e.code == 7, 'error object not propagated')\n"
      "assert(c:status() == 'failed')\n"
      "local d = tghost.spawn(function() error('plain') end)\n"
      "ok, e = pcall(tghost.all, { function() return 1 end, d })\n"
      "assert(not ok and e:find('plain'), tostring(e))\n"
      "assert(not pcall(tghost.wait, 5))\n"
      "assert(not pcall(tghost.spawn, 5))\n"
      "tghost.spawn(function() error('nobody waits for me') end)\n"
      "print('ALL OK')\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(proc_wait(p, 20000), "the script did not finish");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stdout(p), "ALL OK"), "the script did not finish its checks");
  CHECK(strstr(proc_stderr(p), "nobody waited for it: ") &&
            strstr(proc_stderr(p), "nobody waits for me"),
        "an unobserved child failure was not logged");
  proc_check_clean(p);
}

/* The update is not done until its children are: with the sequential sink
 * the next update starts only after the first one's child has finished. */
TEST(spawn_lifetime) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("lifetime.lua",
      "bot.on('message', function(ctx)\n"
      "  tghost.spawn(function()\n"
      "    tghost.sleep(0.5)\n"
      "    ctx:reply('child ' .. ctx.msg.text)\n"
      "  end)\n"
      "  ctx:reply('main ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot, { sink = { kind = 'sequential' } })\n");
  fakeapi_push_text(api, 1, 1, "1");
  fakeapi_push_text(api, 1, 1, "2");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendMessage", 4, 15000);
  const char *want[] = {"main 1", "child 1", "main 2", "child 2"};
  for (int i = 0; i < 4; i++) {
    char *t = fake_call_string(nth_call("sendMessage", (size_t)i), "text");
    CHECK(t && strcmp(t, want[i]) == 0, "reply %d was '%s', expected '%s'", i,
          t, want[i]);
    free(t);
  }
  proc_stop_cleanly(p);
}

/* Children are cancelled with their update: their coroutines are closed
 * and their requests aborted. */
TEST(spawn_cancel) {
  struct fakeapi *api = harness_api();
  fakeapi_set_method_delay(api, "sendChatAction", 10000);
  const char *script = harness_write("cancel.lua",
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'after' then return ctx:reply('after') end\n"
      "  for i = 1, 3 do\n"
      "    tghost.spawn(function()\n"
      "      local guard <close> = setmetatable({}, { __close = function()\n"
      "        print('closed ' .. i) end })\n"
      "      bot.api.sendChatAction{ chat_id = ctx.chat.id, action = 'typing' }\n"
      "      ctx:reply('child ' .. i .. ' finished')\n"
      "    end)\n"
      "  end\n"
      "  tghost.spawn(function() tghost.sleep(1.5) ctx:reply('late') end)\n"
      "end)\n"
      "run(bot, { sink = { timeout = { milliseconds = 500,\n"
      "  handler = function(ctx, why) print('timed out: ' .. why) end } } })\n");
  fakeapi_push_text(api, 1, 1, "go");
  struct proc *p = proc_start(script, NULL);
  wait_calls("sendChatAction", 3, 15000);
  run_for(2500);
  for (int i = 0; i < 3; i++) {
    const struct fake_call *c = nth_call("sendChatAction", (size_t)i);
    CHECK(c->dropped, "sendChatAction %d was not aborted", i);
  }
  CHECK(fakeapi_count_method(api, "sendMessage") == 0,
        "a cancelled child still sent a message");
  const char *out = proc_stdout(p);
  CHECK(strstr(out, "closed 1") && strstr(out, "closed 2") &&
            strstr(out, "closed 3"),
        "the children's to-be-closed variables did not run: %s", out);
  CHECK(strstr(out, "timed out"), "the timeout handler did not run");
  fakeapi_push_text(api, 1, 1, "after");
  wait_calls("sendMessage", 1, 5000);
  proc_stop_cleanly(p);
}
