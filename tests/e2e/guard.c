/* The guards on a bot's handlers, end to end: the CPU budget (a loop
 * stopped at the default 250 ms, in pcall, coroutines, table.sort, __gc
 * finalizers, deeply nested coroutines, with debug.sethook), memory
 * limits per update and in total, the warning when something the guard
 * cannot stop blocks the loop, background tasks beside the handlers, and
 * pattern matching on hostile text stopped inside Lua's string library.
 * Each time the other updates are answered meanwhile and afterwards, and a
 * SIGTERM then ends tghost cleanly and promptly. */
#include <signal.h>
#include <string.h>

#include "harness.h"
#include "calls.h"
#include "scripts.h"

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

static bool have_text(void *ud) { return api_sent_text(ud); }
static bool reply_contains(void *ud) { return sent_containing(ud); }

/* --- the CPU budget ----------------------------------------------------- */

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

/* With the default budget, a handler stuck in a loop holds everyone else
 * up for about a quarter of a second of CPU, not 2 s: a 50 ms sleep that
 * ends while the loop runs replies after the process spent 200-1000 ms of
 * CPU (measured in CPU time, as the budget is, so that a loaded machine,
 * which stretches the wall time, does not decide the result). */
TEST(default_cpu_budget) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("stuck.lua",
      "bot.catch(function(err)\n"
      "  bot.api.sendMessage{ chat_id = 9, text = 'caught: ' .. tostring(err.error) }\n"
      "end)\n"
      "bot.on('message', function(ctx)\n"
      "  if ctx.msg.text == 'loop' then while true do end end\n"
      "  local c0 = os.clock()\n"
      "  tghost.sleep(0.05)\n"
      "  ctx:reply(string.format('slept %.0f', (os.clock() - c0) * 1000))\n"
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
  CHECK(ms >= 200 && ms < 1000, "a 50 ms sleep waited for %ld ms of CPU next "
        "to a stuck handler", ms);
  CHECK(!strstr(proc_stderr(p), "event loop was blocked"),
        "a loop the guard stopped was reported as blocking");
  proc_stop_cleanly(p);
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
  proc_stop_within(p, 4000);
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
  proc_stop_within(p, 4000);
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
  proc_stop_within(p, 4000);
}

/* print with an argument whose __tostring raises: the line built so far
 * was lost each time (200 such prints of a 1 MB string: 200 MB). The same
 * with an unknown option whose key raises so (the list of known options,
 * a few bytes each time: the sanitizer build's leak check sees it). */
TEST(print_raising_tostring) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("print.lua",
      "bot.on('message:text', function(ctx)\n"
      "  local big = string.rep('x', 1 << 20)\n"
      "  local bad = setmetatable({}, { __tostring = function() error('no') end })\n"
      "  local failed = 0\n"
      "  for i = 1, 200 do\n"
      "    if not pcall(print, big, bad) then failed = failed + 1 end\n"
      "    assert(not pcall(bot.api.config, { [bad] = 1 }))\n"
      "  end\n"
      "  collectgarbage()\n"
      "  ctx:reply('failed ' .. failed)\n"
      "end)\n"
      "run(bot)\n");
  struct proc *p = proc_start(script, NULL);
  wait_polling();
  long before = proc_rss_kib(p);
  fakeapi_push_text(api, 1, 1, "go");
  CHECK(run_until(have_text, "failed 200", 20000), "the prints did not all "
        "fail");
  long after = proc_rss_kib(p);
  fprintf(stderr, "RSS %ld -> %ld KiB over 200 failed prints of 1 MB\n",
          before, after);
  CHECK(after - before < 64 * 1024, "RSS grew by %ld KiB", after - before);
  proc_stop_cleanly(p);
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
  proc_stop_within(p, 4000);
}

/* --- background work ---------------------------------------------------- */

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
  proc_stop_within(p, 4000);
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

/* --- patterns on hostile text ------------------------------------------- */

/* A backtracking pattern that would run for minutes inside one C call of
 * Lua's string library is stopped once the handler has used its CPU
 * budget, with an error that says so; the other updates are answered
 * meanwhile and afterwards, and a SIGTERM then ends tghost cleanly within
 * the drain timeout.
 *
 *   find_on_update_text   string.find(text, ".-.-.-b") on a 3000-byte
 *                         message, reported through bot.catch
 *   pcall_loop            the same in a loop of pcalls: the error does not
 *                         let the handler go on
 *   in_coroutine          string.match in a coroutine of the handler
 *   hears_hostile_text    bot.hears with a backtracking pattern and a
 *                         hostile text, no bot.catch: the log says it */

#define BUDGET_MS 500
#define DRAIN_S 2

/* Updates "from".."to-1" each got a reply "r<n>" exactly once. */
static void check_range_answered_once(int from, int to) {
  struct fakeapi *api = harness_api();
  int seen[64] = {0};
  CHECK(to <= 64, "too many numbered updates");
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && t[0] == 'r') {
      int u = atoi(t + 1);
      if (u >= from && u < to) seen[u]++;
    }
    free(t);
  }
  for (int u = from; u < to; u++)
    CHECK(seen[u] == 1, "update %d was answered %d times", u, seen[u]);
}

/* Pushes the texts "from".."to-1" over three chats. */
static void push_numbered_range(int from, int to) {
  char text[16];
  for (int i = from; i < to; i++) {
    snprintf(text, sizeof text, "%d", i);
    fakeapi_push_text(harness_api(), 1 + i % 3, 1 + i % 3, text);
  }
}

static char *hostile_text(const char *unit, int repeat) {
  struct buf b = BUF_INIT;
  for (int i = 0; i < repeat; i++) buf_append_str(&b, unit);
  return buf_steal(&b, NULL);
}

/* SIGTERM: exit 0, clean output, within the drain timeout. */
static void stop_within_drain(struct proc *p) {
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, DRAIN_S * 1000 + 2000),
        "tghost did not exit within the drain timeout after SIGTERM");
  uint64_t took = harness_now_ms() - t0;
  CHECK(proc_status(p) == 0, "exit status %d after SIGTERM", proc_status(p));
  CHECK(took < DRAIN_S * 1000, "exit took %llu ms", (unsigned long long)took);
  proc_check_clean(p);
}

/* "caught after S s: message": the stop came after about one budget of
 * CPU time (os.clock: what the guard counts, so a busy machine does not
 * matter), with the clear message. */
static void check_caught(const char *reply, const char *fn,
                         const char *quoted_pattern) {
  CHECK(reply, "the stopped handler was not reported to bot.catch");
  double after = atof(reply + strlen("caught after "));
  CHECK(after >= BUDGET_MS / 1000.0 * 0.9 && after < BUDGET_MS / 1000.0 + 1.0,
        "stopped after %.3f s of CPU (budget %d ms): %s", after,
        BUDGET_MS, reply);
  char want[256];
  snprintf(want, sizeof want,
           "pattern matching stopped: the handler ran out of its CPU budget "
           "(%d ms) in string.%s; the pattern %s backtracks too much on this "
           "text", BUDGET_MS, fn, quoted_pattern);
  CHECK(strstr(reply, want), "the error says: %s\n  wanted: %s", reply, want);
}

static const char *budget_args[] = {"--cpu-budget", "0.5", "--drain-timeout",
                                    "2", NULL};

static void run_catching(const char *handler_body, const char *fn,
                         const char *quoted_pattern) {
  struct fakeapi *api = harness_api();
  char script[2048];
  snprintf(script, sizeof script,
           "local started\n"
           "bot.catch(function(err)\n"
           "  err.ctx:reply(string.format('caught after %%.3f s: %%s',\n"
           "                os.clock() - started, tostring(err.error)))\n"
           "end)\n"
           "bot.on('message', function(ctx)\n"
           "  local text = ctx.msg.text\n"
           "  if #text > 100 then\n"
           "    started = os.clock()\n"
           "    %s\n"
           "    ctx:reply('the pattern finished')\n"
           "  end\n"
           "  ctx:reply('r' .. text)\n"
           "end)\n"
           "run(bot)\n",
           handler_body);
  const char *path = harness_write("patterns.lua", script);
  char *hostile = hostile_text("a", 3000);
  push_numbered_range(0, 10);
  fakeapi_push_text(api, 7, 7, hostile);
  push_numbered_range(10, 20);
  struct proc *p = proc_start(path, budget_args);
  wait_calls("sendMessage", 21, 20000);
  check_range_answered_once(0, 20);
  char *caught = reply_starting("caught after ");
  check_caught(caught, fn, quoted_pattern);
  CHECK(!reply_starting("the pattern finished"), "the handler went on");
  free(caught);
  /* The bot serves on. */
  push_numbered_range(20, 30);
  wait_calls("sendMessage", 31, 20000);
  check_range_answered_once(0, 30);
  stop_within_drain(p);
  free(hostile);
}

TEST(find_on_update_text) {
  run_catching("string.find(text, '.-.-.-b')", "find", "\".-.-.-b\"");
}

TEST(pcall_loop) {
  run_catching("while true do pcall(string.gsub, text, '.-.-.-b', '') end",
               "gsub", "\".-.-.-b\"");
}

TEST(in_coroutine) {
  run_catching("coroutine.wrap(function() string.match(text, '.-.-.-b') "
               "end)()",
               "match", "\".-.-.-b\"");
}

TEST(hears_hostile_text) {
  struct fakeapi *api = harness_api();
  const char *path = harness_write("hears.lua",
      "bot.hears('^(.-)%s+(.-)%s+(.-)!$', function(ctx)\n"
      "  ctx:reply('heard ' .. #ctx.match[1])\n"
      "end)\n"
      "bot.on('message', function(ctx) ctx:reply('r' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  char *hostile = hostile_text("a ", 2000);
  push_numbered_range(0, 10);
  fakeapi_push_text(api, 1, 1, "a b c!");          /* it does match */
  uint64_t t0 = harness_now_ms();
  fakeapi_push_text(api, 7, 7, hostile);
  push_numbered_range(10, 20);
  struct proc *p = proc_start(path, budget_args);
  wait_calls("sendMessage", 21, 20000);
  uint64_t took = harness_now_ms() - t0;
  check_range_answered_once(0, 20);
  char *heard = reply_starting("heard ");
  CHECK(heard && strcmp(heard, "heard 1") == 0, "the pattern matched: %s",
        heard ? heard : "(no reply)");
  free(heard);
  /* No bot.catch: the error is logged, with the update and the pattern. */
  CHECK(run_until_stderr(p, "pattern matching stopped: the handler ran out "
                            "of its CPU budget (500 ms) in string.match; "
                            "the pattern \"^(.-)%s+(.-)%s+(.-)!$\" "
                            "backtracks too much on this text (4000 bytes)",
                            5000),
        "the log does not say why the update stopped");
  /* Lua's own matcher would take about a minute on this text. */
  CHECK(took < 15000, "the 21 updates took %llu ms", (unsigned long long)took);
  push_numbered_range(20, 30);
  wait_calls("sendMessage", 31, 20000);
  check_range_answered_once(0, 30);
  stop_within_drain(p);
  free(hostile);
}

/* --- work no hook reached -----------------------------------------------
 *
 * Each of these froze every other update (for as long as anyone waited:
 * 2^53 steps in one C call, or a finalizer the collector ran with hooks
 * off) and ignored the first SIGTERM. Now each is stopped within the CPU
 * budget or refused, the other updates are answered meanwhile, and a
 * SIGTERM sent while it runs ends tghost cleanly.
 *
 *   string_rep_empty     string.rep('', 1 << 53)
 *   table_move_range     table.move({}, 1, 1 << 53, 1, {})
 *   table_insert_len     table.insert on a table whose __len says 2^53
 *   gc_true_replaced     __gc = true at setmetatable, a loop set later
 *   gc_on_io_files       getmetatable(io.stdout).__gc = loop
 *   loadlib_string,      package.loadlib("liblua5.4.so.0", luaopen_...):
 *   loadlib_base,        fresh copies of the standard library without the
 *   loadlib_coroutine    guards (and the same through require and cpath)
 *   load_stall           load(string.rep('a=1\n', 12e6)): parsing 48 MB
 *   coroutine_close_loop coroutine.close running a looping __close */

#define ESCAPE_BUDGET_MS 200

/* The bot: 'evil' replies "started", then runs code; the catch reports
 * the CPU time from the start of code to the stop. */
static const char *escape_script(const char *name, const char *code) {
  char script[4096];
  snprintf(script, sizeof script,
           "local started\n"
           "bot.catch(function(err)\n"
           "  err.ctx:reply(string.format('caught after %%.3f s: %%s',\n"
           "                os.clock() - started, tostring(err.error)))\n"
           "end)\n"
           "bot.on('message:text', function(ctx)\n"
           "  if ctx.msg.text == 'evil' then\n"
           "    ctx:reply('started')\n"
           "    started = os.clock()\n"
           "%s\n"
           "  end\n"
           "  ctx:reply('r' .. ctx.msg.text)\n"
           "end)\n"
           "run(bot)\n",
           code);
  return harness_write(name, script);
}

static const char *escape_args[] = {"--cpu-budget", "0.2", "--drain-timeout",
                                    "5", NULL};

static bool second_start(void *ud) { return replies_with("started") >= 2; }

/* Runs code twice: once to see it stopped (the reply "caught after S s:
 * <message>" with caught in the message, S within the budget; or, with
 * caught NULL, the handler going on and log in the log) with the other
 * updates answered; once with a SIGTERM sent while it runs. */
static void run_escape(const char *name, const char *code,
                       const char *caught, const char *log) {
  struct fakeapi *api = harness_api();
  const char *path = escape_script(name, code);
  fakeapi_push_text(api, 1, 1, "evil");
  struct proc *p = proc_start(path, escape_args);
  CHECK(run_until(have_text, "started", 10000), "the handler did not start");
  run_for(50);
  uint64_t t0 = harness_now_ms();
  push_numbered(10, 3);
  CHECK(run_until(have_text, "r9", 20000), "the other updates were not "
        "answered");
  fprintf(stderr, "%s: the other updates were answered %llu ms after they "
          "came\n", name, (unsigned long long)(harness_now_ms() - t0));
  if (caught) {
    CHECK(run_until(reply_contains, "caught after ", 10000),
          "the handler was not stopped");
    char *reply = reply_starting("caught after ");
    double after = atof(reply + strlen("caught after "));
    fprintf(stderr, "%s: %s\n", name, reply);
    CHECK(strstr(reply, caught), "the error says: %s\n  wanted: %s", reply,
          caught);
    CHECK(after < ESCAPE_BUDGET_MS / 1000.0 + 1.0, "stopped after %.3f s of "
          "CPU (budget %d ms)", after, ESCAPE_BUDGET_MS);
    free(reply);
    CHECK(!api_sent_text("revil"), "the handler went on");
  } else {
    CHECK(run_until(have_text, "revil", 10000), "the handler did not finish");
  }
  if (log) wait_stderr(p, log, 10000);
  proc_stop_within(p, 4000);

  /* Again, with a SIGTERM while it runs (50 ms after it began: it would
   * run forever unstopped): the first one ends tghost. */
  fakeapi_push_text(api, 1, 1, "evil");
  p = proc_start(path, escape_args);
  CHECK(run_until(second_start, NULL, 10000), "the handler did not start");
  run_for(50);
  proc_stop_within(p, 4000);
}

TEST(string_rep_empty) {
  run_escape("rep.lua", "    local s = string.rep('', 1 << 53)\n"
                        "    while true do end\n",
             "ran for over 200 ms of CPU", NULL);
}

TEST(table_move_range) {
  run_escape("move.lua", "    table.move({}, 1, 1 << 53, 1, {})\n",
             "table.move stopped: the handler ran out of its CPU budget "
             "(200 ms) after ", NULL);
}

TEST(table_insert_len) {
  run_escape("insert.lua",
             "    local t = setmetatable({}, { __len = function() return 1 << 53 end })\n"
             "    table.insert(t, 1, 'x')\n",
             "table.insert stopped: the handler ran out of its CPU budget "
             "(200 ms) after ", NULL);
}

TEST(gc_true_replaced) {
  run_escape("gctrue.lua",
             "    local mt = { __gc = true }\n"
             "    setmetatable({}, mt)\n"
             "    mt.__gc = function() while true do end end\n"
             "    collectgarbage()\n"
             "    collectgarbage()\n",
             NULL, "a __gc finalizer was stopped: ");
}

TEST(gc_on_io_files) {
  run_escape("gcio.lua",
             "    local loop = function() while true do end end\n"
             "    pcall(function() getmetatable(io.stdout).__gc = loop end)\n"
             "    pcall(function() debug.getmetatable(io.stdout).__gc = loop end)\n"
             "    pcall(debug.setmetatable, io.stdout, { __gc = loop })\n"
             "    local f = io.open('/dev/null')\n"
             "    f = nil\n"
             "    collectgarbage()\n"
             "    collectgarbage()\n"
             "    if getmetatable(io.stdout) ~= 'FILE*' then error('reached') end\n",
             NULL, NULL);
}

/* Tries the library's opener through loadlib, and through require with
 * package.cpath at liblua; runs fn(copy) with any copy it gets (a freeze
 * with an unguarded one). */
#define LOADLIB_CODE(opener, use)                                          \
  "    local lib = '/usr/lib/x86_64-linux-gnu/liblua5.4.so.0'\n"           \
  "    local got = {}\n"                                                   \
  "    if package.loadlib then\n"                                          \
  "      local open = package.loadlib(lib, 'luaopen_" opener "')\n"         \
  "      if open then got[#got + 1] = open() end\n"                        \
  "    end\n"                                                              \
  "    package.cpath = lib .. ';' .. package.cpath\n"                      \
  "    package.loaded['" opener "'] = nil\n"                               \
  "    local ok, copy = pcall(require, '" opener "')\n"                    \
  "    if ok then got[#got + 1] = copy end\n"                              \
  "    for _, copy in ipairs(got) do " use " end\n"                        \
  "    if #got > 0 then error('reached a copy') end\n"

TEST(loadlib_string) {
  run_escape("libstring.lua",
             LOADLIB_CODE("string", "copy.rep('', 1 << 53)"), NULL, NULL);
}

TEST(loadlib_base) {
  run_escape("libbase.lua",
             LOADLIB_CODE("base", "copy.load(string.rep('a=1\\n', 12e6))"),
             NULL, NULL);
}

TEST(loadlib_coroutine) {
  run_escape("libco.lua",
             LOADLIB_CODE("coroutine",
                          "copy.wrap(function() while true do end end)()"),
             NULL, NULL);
}

TEST(load_stall) {
  run_escape("load.lua",
             "    local src = string.rep('a=1\\n', 12e6)\n"
             "    started = os.clock()\n"
             "    local f, err = load(src)\n"
             "    error(err or 'loaded')\n",
             "load stopped: the handler ran out of its CPU budget (200 ms) "
             "after ", NULL);
}

TEST(coroutine_close_loop) {
  run_escape("close.lua",
             "    local co = coroutine.create(function()\n"
             "      local x <close> = setmetatable({}, { __close = function()\n"
             "        while true do end\n"
             "      end })\n"
             "      coroutine.yield()\n"
             "    end)\n"
             "    coroutine.resume(co)\n"
             "    coroutine.close(co)\n",
             "ran for over 200 ms of CPU", NULL);
}

/* An error object whose __tostring loops: the handler's own error
 * handling runs it under the guard, and so does tghost's report of an
 * error that escaped everything (the top level's, here a reloaded script's
 * is the same), which ran it after the task's run was over. */
TEST(error_tostring_loop) {
  run_escape("tostring.lua",
             "    error(setmetatable({}, { __tostring = function()\n"
             "      while true do end\n"
             "    end }))\n",
             "ran for over 200 ms of CPU", NULL);
  harness_api();
  const char *top = harness_write("toptostring.lua",
      "error(setmetatable({}, { __tostring = function() while true do end "
      "end }))\n");
  const char *args[] = {"--check", "--cpu-budget", "0.2", NULL};
  struct proc *p = proc_start(top, args);
  CHECK(proc_wait(p, 10000), "the top level's error was never reported");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "(an error object of type table)"),
        "the report does not name the error object");
  proc_check_clean(p);
}
