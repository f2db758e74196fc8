/* The cluster's scaling (bench/README.md, "The cluster"): N tghost
 * processes with --cluster against one redis-server (appendonly yes,
 * appendfsync always) and the fake Bot API, all on this machine.
 *
 *   build/bench/clusterbench cpu1 | cpu2 | cpu3    a handler doing ~3 ms of
 *                                                   Lua work, 3,000 updates
 *   build/bench/clusterbench echo1 | echo2         one sendMessage each,
 *                                                   20,000 updates
 *
 * Each prints updates/s (from the first reply to the last) and the CPU
 * time per update of the tghost processes together, of redis-server and of
 * this process (the fake Bot API and the test's loop), read from
 * /proc/PID/stat before and after. The updates (over 1,000 chats) are
 * queued once the partitions have settled: a cluster's steady state, not
 * the hand-over when members join (bench/README.md measures that apart). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clusterrun.h"
#include "harness.h"

static const char cpu_bot[] =
    "local function work(n)\n"
    "  local x = 0\n"
    "  for i = 1, n do x = (x * 31 + i) %% 1000003 end\n"
    "  return x\n"
    "end\n"
    "bot.on('message:text', function(ctx)\n"
    "  ctx:reply(tostring(work(%d)))\n"
    "end)\n"
    "run(bot, { cluster = { lease = 5 } })\n";

static const char echo_bot[] =
    "bot.on('message:text', function(ctx) ctx:reply(ctx.msg.text) end)\n"
    "run(bot, { cluster = { lease = 5 } })\n";

/* CPU seconds (user + system) of pid so far. */
static double cpu_of(int pid) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  const char *at = strrchr(line, ')');
  unsigned long utime = 0, stime = 0;
  if (at)
    sscanf(at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
           &utime, &stime);
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

/* Lua iterations for about 3 ms of CPU on this machine (measured once:
 * the loop runs in tghost, not here, so it is timed through a process). */
#define CPU_ITERATIONS 270000

/* Waits until every member took partitions over and none changed hands
 * for 3 s: a member notices a new one at its next heartbeat, then hands
 * it its share once the updates it runs of that share end. */
static void wait_settled(struct cluster_run *r, size_t processes) {
  uint64_t start = harness_now_ms(), since = start;
  size_t last = 0;
  for (;;) {
    size_t total = 0, members_with = 0;
    for (size_t i = 0; i < processes; i++) {
      size_t n = count_in(proc_stderr(r->members[i]), "took over partition");
      total += n;
      members_with += n > 0;
    }
    uint64_t now = harness_now_ms();
    if (total != last) {
      last = total;
      since = now;
    }
    if (members_with == processes && now - since >= 3000) {
      fprintf(stderr, "partitions settled after %.1f s\n",
              (double)(since - start) / 1000.0);
      return;
    }
    CHECK(now - start < 60000, "the partitions did not settle in 60 s");
    run_for(100);
  }
}

static void run(const char *kind, size_t processes) {
  bool cpu = strcmp(kind, "cpu") == 0;
  int updates = cpu ? 3000 : 20000;
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  char script[1024];
  snprintf(script, sizeof script, cpu ? cpu_bot : echo_bot, CPU_ITERATIONS);
  r.script = harness_write("bench.lua", script);
  for (size_t i = 0; i < processes; i++) clusterrun_start(&r, i);
  wait_calls("getMe", processes, 30000);
  wait_settled(&r, processes);
  double t_cpu[CLUSTER_MAX_MEMBERS], redis0 = cpu_of(r.redis.pid),
         self0 = self_cpu();
  for (size_t i = 0; i < processes; i++)
    t_cpu[i] = cpu_of(proc_pid(r.members[i]));
  uint64_t start = harness_now_ms();
  clusterrun_push(&r, updates, 1000);
  wait_calls("sendMessage", (size_t)updates, 600000);
  uint64_t elapsed = harness_now_ms() - start;
  double tghost = 0;
  char each[CLUSTER_MAX_MEMBERS * 16] = "";
  for (size_t i = 0; i < processes; i++) {
    double used = cpu_of(proc_pid(r.members[i])) - t_cpu[i];
    tghost += used;
    size_t at = strlen(each);
    snprintf(each + at, sizeof each - at, "%s%.2f", i ? " / " : "", used);
  }
  double redis = cpu_of(r.redis.pid) - redis0, self = self_cpu() - self0;
  fprintf(stderr,
          "%s, %zu process(es): %d updates in %.2f s: %.0f updates/s; CPU "
          "per update: tghost %.3f ms (all processes), redis-server %.3f ms, "
          "fake API and bench %.3f ms; each process's CPU: %s s\n",
          cpu ? "cpu handler" : "echo", processes, updates, elapsed / 1000.0,
          updates * 1000.0 / (double)elapsed, tghost * 1000 / updates,
          redis * 1000 / updates, self * 1000 / updates, each);
  clusterrun_finish(&r);
}

TEST(cpu1) { run("cpu", 1); }
TEST(cpu2) { run("cpu", 2); }
TEST(cpu3) { run("cpu", 3); }
TEST(echo1) { run("echo", 1); }
TEST(echo2) { run("echo", 2); }
/* The handler alone, without a cluster: what 3 ms of Lua costs here. */
TEST(cpu_plain) {
  struct fakeapi *api = harness_api();
  for (int i = 0; i < 1000; i++) fakeapi_push_text(api, 1 + i % 100, 1, "x");
  char script[1024];
  snprintf(script, sizeof script, cpu_bot, CPU_ITERATIONS);
  char *cut = strstr(script, "run(bot");
  snprintf(cut, sizeof script - (size_t)(cut - script), "run(bot)\n");
  struct proc *p = proc_start(harness_write("plain.lua", script), NULL);
  wait_calls("getMe", 1, 10000);
  double c0 = cpu_of(proc_pid(p));
  uint64_t start = harness_now_ms();
  wait_calls("sendMessage", 1000, 120000);
  fprintf(stderr, "cpu handler, one process without a cluster: %.0f "
          "updates/s, %.3f ms of CPU per update\n",
          1000 * 1000.0 / (double)(harness_now_ms() - start),
          (cpu_of(proc_pid(p)) - c0) * 1000 / 1000);
  proc_stop_cleanly(p);
}

int main(int argc, char **argv) {
  return test_main(argc, argv, harness_before_test);
}
