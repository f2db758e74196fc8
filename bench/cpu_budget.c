/* What the CPU guard costs, and what a stuck handler costs everyone else,
 * at a given --cpu-budget (issue 13). Run by hand, one budget (in ms) per
 * run, on an otherwise idle machine:
 *
 *   for b in 100 250 500 2000; do build/bench/cpu_budget $b; done
 *
 * Against the fake Bot API, tghost runs a bot with three handlers:
 * - "work": pure-Lua CPU-bound work in 400 slices of about 3 ms with a
 *   yield (tghost.sleep(0)) between them, as a busy but well-behaved
 *   handler runs; it replies with the CPU time per slice. The guard's
 *   timer ticks every 50 ms while Lua runs, whatever the budget; this shows
 *   what that costs (compare the budgets: the cost must not depend on it).
 * - "heavy": pieces of legitimate work, each done in one stretch (building
 *   and encoding 2 MB of JSON, decoding it, sorting 200,000 numbers,
 *   building a 1.3 MB string), to see what a budget lets through.
 * - "sleep" then "loop": one handler sleeps 50 ms while the next loops
 *   without yielding until the guard stops it; the sleeper replies how long
 *   its 50 ms sleep took: what every other update waits for a stuck
 *   handler. */
#include <string.h>

#include "harness.h"

static const char script[] =
    "local function kernel(n)\n"
    "  local x = 0\n"
    "  for i = 1, n do x = x + (i % 7) * (i % 13) end\n"
    "  return x\n"
    "end\n"
    "local function ms(fn) local t0 = os.clock(); fn(); return (os.clock() - t0) * 1e3 end\n"
    "bot.on('message', function(ctx)\n"
    "  local t = ctx.msg.text\n"
    "  if t == 'work' then\n"
    "    local n, slices = 160000, 400\n"
    "    local c0, w0 = os.clock(), tghost.now()\n"
    "    for _ = 1, slices do kernel(n); tghost.sleep(0) end\n"
    "    ctx:reply(string.format('work: %.3f ms of CPU per slice of %d iterations '\n"
    "      .. '(%.2f s wall for %d slices)', (os.clock() - c0) / slices * 1e3, n,\n"
    "      tghost.now() - w0, slices))\n"
    "  elseif t == 'heavy' then\n"
    "    local doc, text, nums = {}, nil, {}\n"
    "    local build = ms(function()\n"
    "      for i = 1, 20000 do\n"
    "        doc[i] = { update_id = i, message = { message_id = i, text = 'hello ' .. i,\n"
    "                   chat = { id = -1001234567890, type = 'supergroup' } } }\n"
    "      end\n"
    "    end)\n"
    "    tghost.sleep(0)\n"
    "    local encode = ms(function() text = tghost.json.encode(doc) end)\n"
    "    tghost.sleep(0)\n"
    "    local decode = ms(function() tghost.json.decode(text) end)\n"
    "    tghost.sleep(0)\n"
    "    for i = 1, 200000 do nums[i] = (i * 7919) % 1000003 end\n"
    "    tghost.sleep(0)\n"
    "    local sort = ms(function() table.sort(nums) end)\n"
    "    tghost.sleep(0)\n"
    "    local concat = ms(function()\n"
    "      local parts = {}\n"
    "      for i = 1, 200000 do parts[i] = tostring(i) end\n"
    "      return table.concat(parts, ',')\n"
    "    end)\n"
    "    ctx:reply(string.format('heavy, each in one stretch: 20,000 updates as Lua '\n"
    "      .. 'tables %.0f ms, json.encode (%d KB) %.0f ms, json.decode %.0f ms, '\n"
    "      .. 'table.sort of 200,000 numbers %.0f ms, 200,000 tostring + concat %.0f ms',\n"
    "      build, #text // 1024, encode, decode, sort, concat))\n"
    "  elseif t == 'sleep' then\n"
    "    local t0 = tghost.now()\n"
    "    tghost.sleep(0.05)\n"
    "    ctx:reply(string.format('stall: a 50 ms sleep took %.0f ms while another '\n"
    "      .. 'handler looped', (tghost.now() - t0) * 1e3))\n"
    "  elseif t == 'loop' then\n"
    "    while true do end\n"
    "  end\n"
    "end)\n"
    "bot.catch(function(err)\n"
    "  err.ctx:reply(err.ctx.msg.text .. ' stopped: ' .. tostring(err.error))\n"
    "end)\n"
    "run(bot)\n";

static void print_replies(size_t from) {
  struct fakeapi *api = harness_api();
  for (size_t i = from; i < fakeapi_call_count(api); i++) {
    char *t = fake_call_string(fakeapi_call(api, i), "text");
    if (t) printf("  %s\n", t);
    free(t);
  }
}

static const char *budget_secs;

TEST(run) {
  struct fakeapi *api = harness_api();
  const char *path = harness_write("cpu_budget.lua", script);
  const char *args[] = {"--cpu-budget", budget_secs, NULL};
  struct proc *p = proc_start(path, args);
  printf("--cpu-budget %s\n", budget_secs);
  fakeapi_push_text(api, 1, 1, "work");
  wait_calls("sendMessage", 1, 60000);
  fakeapi_push_text(api, 1, 1, "heavy");
  wait_calls("sendMessage", 2, 60000);
  fakeapi_push_text(api, 2, 2, "sleep");
  fakeapi_push_text(api, 3, 3, "loop");
  wait_calls("sendMessage", 4, 60000);
  print_replies(0);
  fflush(stdout);
  proc_stop_cleanly(p);
}

int main(int argc, char **argv) {
  static char secs[32];
  if (argc != 2 || atol(argv[1]) <= 0) {
    fprintf(stderr, "usage: %s BUDGET_MS\n", argv[0]);
    return 2;
  }
  snprintf(secs, sizeof secs, "%.3f", atol(argv[1]) / 1000.0);
  budget_secs = secs;
  char *run_argv[] = {argv[0], "run", NULL};
  return test_main(2, run_argv, harness_before_test);
}
