/* --cluster: several tghost processes share one bot through a Redis of
 * the test's own (tests/support/clusterrun.h says what the bot records
 * and how each run is checked).
 *
 *   share_and_stop   two members share 3,000 updates, then one stops
 *                    gracefully mid-run: nothing lost or duplicated (a
 *                    partition moves only after its updates finished),
 *                    per-chat order, sessions complete.
 *   chaos            issue 24's: 20,000 updates over 500 chats, slow
 *                    handlers; one worker SIGKILLed and restarted twice, the
 *                    ingress holder SIGKILLed once, one worker SIGSTOPped
 *                    for three lease periods, one stopped gracefully. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/clusterkey.h"
#include "clusterrun.h"
#include "harness.h"
#include "probe.h"

static void check_exact(const struct cluster_tally *t) {
  CHECK(t->lost == 0, "%d updates lost", t->lost);
  CHECK(t->order_violations == 0, "%d per-chat order violations",
        t->order_violations);
  CHECK(t->unmarked == 0, "%d updates ran again without ctx.redelivered",
        t->unmarked);
  CHECK(t->session_missing == 0 && t->session_disorder == 0,
        "sessions: %d updates missing, %d out of order", t->session_missing,
        t->session_disorder);
}

TEST(share_and_stop) {
  struct cluster_run r = {0};
  clusterrun_init(&r, 1.5, 2, 20);
  clusterrun_push(&r, 3000, 60);
  clusterrun_start(&r, 0);
  clusterrun_start(&r, 1);
  /* Both members of the cluster and at work, then the first leaves. */
  wait_stderr(r.members[1], "cluster: 2 member(s) alive", 30000);
  wait_calls("sendMessage", 800, 30000);
  proc_kill(r.members[0], SIGTERM);
  CHECK(proc_wait(r.members[0], 30000), "the stopped member did not exit");
  CHECK(proc_status(r.members[0]) == 0, "exit status %d",
        proc_status(r.members[0]));
  CHECK(clusterrun_wait_all(&r, 60000), "not every update was answered");
  struct cluster_tally t = clusterrun_tally(&r);
  check_exact(&t);
  CHECK(t.duplicates == 0, "%d duplicates without a crash", t.duplicates);
  clusterrun_finish(&r);
}

/* Lines of every member's log that say it gave partitions up on its own
 * clock (each such loss may repeat up to the member's concurrency). */
static size_t self_stops(const struct cluster_run *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->nmembers; i++)
    if (r->members[i])
      n += count_in(proc_stderr(r->members[i]), "ran out before Redis renewed");
  return n;
}

TEST_SERIAL(chaos) {
  enum { N = 20000, CHATS = 500, CONCURRENCY = 20, MEMBERS = 4 };
  const double lease = 1.5;
  struct cluster_run r = {0};
  clusterrun_init(&r, lease, 30, CONCURRENCY);
  for (size_t i = 0; i < MEMBERS; i++) clusterrun_start(&r, i);
  wait_calls("getMe", MEMBERS, 20000);
  /* Updates arrive over 12 s while things go wrong. */
  uint64_t t0 = harness_now_ms();
  int pushed = 0, step = 0, stopped = -1, killed_ingress = -1;
  size_t lost_members = 0;
  while (pushed < N || step < 8) {
    uint64_t now = harness_now_ms() - t0;
    int due = (int)(now * N / 12000);
    if (due > N) due = N;
    if (due > pushed) {
      clusterrun_push(&r, due - pushed, CHATS);
      pushed = due;
    }
    if (step == 0 && now >= 2000) {        /* a worker killed ... */
      proc_kill(r.members[1], SIGKILL);
      proc_wait(r.members[1], 5000);
      lost_members++;
      step++;
    } else if (step == 1 && now >= 2500) { /* ... and restarted */
      clusterrun_start(&r, 1);
      step++;
    } else if (step == 2 && now >= 4500) { /* again */
      proc_kill(r.members[1], SIGKILL);
      proc_wait(r.members[1], 5000);
      lost_members++;
      step++;
    } else if (step == 3 && now >= 5000) {
      clusterrun_start(&r, 1);
      step++;
    } else if (step == 4 && now >= 7000) { /* the ingress holder */
      killed_ingress = clusterrun_ingress_holder(&r);
      CHECK(killed_ingress >= 0, "no member holds the ingress lease");
      proc_kill(r.members[killed_ingress], SIGKILL);
      proc_wait(r.members[killed_ingress], 5000);
      lost_members++;
      fprintf(stderr, "killed the ingress holder, member %d\n",
              killed_ingress);
      clusterrun_start(&r, (size_t)killed_ingress);
      step++;
    } else if (step == 5 && now >= 9000) { /* a worker paused 3 leases */
      proc_kill(r.members[2], SIGSTOP);
      lost_members++;
      step++;
    } else if (step == 6 && now >= 9000 + (uint64_t)(3 * lease * 1000)) {
      proc_kill(r.members[2], SIGCONT);
      step++;
    } else if (step == 7 && now >= 15000) { /* one leaves gracefully */
      stopped = 3;
      proc_kill(r.members[3], SIGTERM);
      step++;
    }
    run_for(20);
  }
  CHECK(proc_wait(r.members[3], 30000), "the member stopped gracefully did "
        "not exit");
  CHECK(proc_status(r.members[3]) == 0, "the graceful stop exited with %d",
        proc_status(r.members[3]));
  proc_check_clean(r.members[3]);
  CHECK(clusterrun_wait_all(&r, 90000), "not every update was answered");
  struct cluster_tally t = clusterrun_tally(&r);
  check_exact(&t);
  /* The paused member found its leases gone when it woke, on its own
   * clock, before anything else ran. */
  CHECK(strstr(proc_stderr(r.members[2]), "ran out before Redis renewed"),
        "the paused member did not give its partitions up on waking");
  size_t losses = lost_members + self_stops(&r);
  fprintf(stderr, "%zu lost leases or members (%zu on a member's own clock); "
          "duplicates at most %zu x %d\n", losses, self_stops(&r), losses,
          CONCURRENCY);
  CHECK(t.duplicates <= (int)(losses * CONCURRENCY),
        "%d duplicates: more than the bound (%zu losses x concurrency %d)",
        t.duplicates, losses, CONCURRENCY);
  (void)stopped;
  clusterrun_finish(&r);
}

/* A paused owner that keeps running after its lease ran out (its own
 * clock switched off for the test) writes its session when it wakes:
 * Redis refuses it, counts it, and keeps the new owner's data. */
static const char fencing_bot[] =
    "local store = tghost.storage.redis(os.getenv('REDIS_URL'), 'sess:')\n"
    "bot.use(session{ storage = store })\n"
    "bot.on('message:text', function(ctx)\n"
    "  local me = os.getenv('NAME')\n"
    "  ctx:reply('start ' .. me .. (ctx.redelivered and ' again' or ''))\n"
    "  tghost.sleep(tonumber(ctx.msg.text))\n"
    "  ctx.session = { by = me }\n"
    "end)\n"
    "run(bot, { cluster = { lease = 1, partitions = 4 } })\n";

static bool text_sent(void *ud) { return api_sent_text(ud); }

TEST(fencing) {
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  r.script = harness_write("fencing.lua", fencing_bot);
  const char *a_env[] = {"NAME=A", "TGHOST_CLUSTER_NO_SELF_STOP=1", NULL};
  struct proc *a = clusterrun_start_env(&r, 0, a_env);
  fakeapi_push_text(harness_api(), 7, 7, "3");
  CHECK(run_until(text_sent, "start A", 15000), "A did not start the update");
  proc_kill(a, SIGSTOP);
  const char *b_env[] = {"NAME=B", NULL};
  clusterrun_start_env(&r, 1, b_env);
  CHECK(run_until(text_sent, "start B again", 20000),
        "B did not take the partition over with the update redelivered");
  /* A wakes up with its handler's sleep over: it writes at once. */
  run_for(2500);
  proc_kill(a, SIGCONT);
  CHECK(run_until_stderr(a, "no longer owns the update's partition", 10000),
        "A's session write was not refused by Redis:\n%s", proc_stderr(a));
  redisContext *c = redisproc_connect(&r.redis);
  /* B's own write, 3 s after its start, lands after A's refused one. */
  run_for(2000);
  redisReply *rep = redisproc_cmd(c, "GET sess:7");
  CHECK(rep->type == REDIS_REPLY_STRING && strstr(rep->str, "\"B\""),
        "the session holds %s, not B's write",
        rep->type == REDIS_REPLY_STRING ? rep->str : "nothing");
  freeReplyObject(rep);
  rep = redisproc_cmd(c, "HGET tgc:424242:stats refused");
  CHECK(rep->type == REDIS_REPLY_STRING && atoi(rep->str) >= 1,
        "Redis counted no refused write");
  freeReplyObject(rep);
  redisFree(c);
  clusterrun_finish(&r);
}

/* Redis crashes (SIGKILL) mid-run and comes back from its append-only
 * file: nothing is lost, processing resumes, and each member says so in
 * one line (and one when it is back). */
TEST_SERIAL(redis_restart) {
  enum { N = 6000, CHATS = 100, CONCURRENCY = 20 };
  struct cluster_run r = {0};
  clusterrun_init(&r, 1.5, 10, CONCURRENCY);
  clusterrun_start(&r, 0);
  clusterrun_start(&r, 1);
  wait_calls("getMe", 2, 20000);
  uint64_t t0 = harness_now_ms();
  int pushed = 0, step = 0;
  while (pushed < N || step < 2) {
    uint64_t now = harness_now_ms() - t0;
    int due = (int)(now * N / 6000);
    if (due > N) due = N;
    if (due > pushed) {
      clusterrun_push(&r, due - pushed, CHATS);
      pushed = due;
    }
    if (step == 0 && now >= 2000) {
      redisproc_signal(&r.redis, SIGKILL);
      step++;
    } else if (step == 1 && now >= 4000) {
      redisproc_start(&r.redis, NULL,
                      (const char *[]){"--appendonly", "yes", "--appendfsync",
                                       "always", NULL});
      step++;
    }
    run_for(20);
  }
  CHECK(clusterrun_wait_all(&r, 60000), "not every update was answered "
        "after Redis came back");
  struct cluster_tally t = clusterrun_tally(&r);
  CHECK(t.lost == 0, "%d updates lost", t.lost);
  CHECK(t.order_violations == 0, "%d order violations", t.order_violations);
  CHECK(t.unmarked == 0, "%d reruns not marked redelivered", t.unmarked);
  /* One line says Redis is gone, one that it is back, per member (its
   * blocking-read connection keeps quiet); the session store says the
   * same for itself. */
  for (size_t i = 0; i < 2; i++) {
    const char *log = proc_stderr(r.members[i]);
    CHECK(count_in(log, "WARN  cluster redis://") == 1 &&
              count_in(log, "INFO  cluster redis://") == 1 &&
              !strstr(log, "cluster (reads)"),
          "member %zu did not log the outage in one line and the recovery "
          "in one:\n%s", i, log);
  }
  clusterrun_finish(&r);
}

/* Members join and leave (gracefully) while updates flow: partitions move
 * only after draining, so nothing is lost, nothing reordered, and nothing
 * runs twice unless a member gave a lease up on its own clock (a loaded
 * machine may delay a renewal). */
TEST_SERIAL(rebalance) {
  enum { N = 8000, CHATS = 200, CONCURRENCY = 20 };
  struct cluster_run r = {0};
  clusterrun_init(&r, 1.5, 10, CONCURRENCY);
  clusterrun_start(&r, 0);
  wait_calls("getMe", 1, 20000);
  uint64_t t0 = harness_now_ms();
  int pushed = 0, step = 0;
  size_t joins = 1;
  while (pushed < N || step < 5) {
    uint64_t now = harness_now_ms() - t0;
    int due = (int)(now * N / 10000);
    if (due > N) due = N;
    if (due > pushed) {
      clusterrun_push(&r, due - pushed, CHATS);
      pushed = due;
    }
    if (step == 0 && now >= 1500) {
      clusterrun_start(&r, 1), joins++, step++;
    } else if (step == 1 && now >= 3000) {
      clusterrun_start(&r, 2), joins++, step++;
    } else if (step == 2 && now >= 5000) {
      proc_kill(r.members[0], SIGTERM), step++;
    } else if (step == 3 && now >= 6500) {
      clusterrun_start(&r, 3), joins++, step++;
    } else if (step == 4 && now >= 8000) {
      proc_kill(r.members[1], SIGTERM), step++;
    }
    run_for(20);
  }
  for (size_t i = 0; i < 2; i++) {
    CHECK(proc_wait(r.members[i], 30000), "member %zu did not stop", i);
    CHECK(proc_status(r.members[i]) == 0, "member %zu exited with %d", i,
          proc_status(r.members[i]));
  }
  CHECK(clusterrun_wait_all(&r, 60000), "not every update was answered");
  struct cluster_tally t = clusterrun_tally(&r);
  check_exact(&t);
  size_t stops = self_stops(&r);
  CHECK(t.duplicates <= (int)(stops * CONCURRENCY),
        "%d duplicates, with %zu leases given up on a member's clock",
        t.duplicates, stops);
  /* Partitions moved: every member that stayed long enough owned some. */
  for (size_t i = 0; i < 4; i++)
    CHECK(strstr(proc_stderr(r.members[i]), "took over partition"),
          "member %zu never took a partition over", i);
  clusterrun_finish(&r);
}

/* Webhook ingress on three instances, the test posting round-robin as
 * Telegram would (a chat's updates one after another; anything but a 200
 * sent again, to the next instance); one instance killed and restarted
 * mid-run. Only the ingress holder sets the webhook. */
TEST_SERIAL(webhook) {
  enum { N = 6000, CHATS = 150, CONCURRENCY = 20, INSTANCES = 3 };
  struct cluster_run r = {0};
  clusterrun_init(&r, 1.5, 10, CONCURRENCY);
  const char *secret_file = harness_write("secret", "cluster-secret-42\n");
  int ports[INSTANCES];
  char listen[INSTANCES][64];
  const char *args[INSTANCES][8];
  for (int i = 0; i < INSTANCES; i++) {
    snprintf(listen[i], sizeof listen[i], "127.0.0.1:0");
    args[i][0] = "--webhook";
    args[i][1] = "https://bot.example/hook";
    args[i][2] = "--listen";
    args[i][3] = listen[i];
    args[i][4] = "--webhook-secret-file";
    args[i][5] = secret_file;
    args[i][6] = NULL;
  }
  for (int i = 0; i < INSTANCES; i++) {
    r.extra_args = args[i];
    ports[i] = wait_port(clusterrun_start(&r, (size_t)i), WEBHOOK_MARK);
  }
  clusterrun_plan(&r, 5000, N, CHATS);
  struct cluster_poster *poster =
      clusterrun_poster(&r, ports, INSTANCES, "cluster-secret-42", 40);
  uint64_t t0 = harness_now_ms();
  bool killed = false, restarted = false;
  while (!clusterrun_posted(poster) && harness_now_ms() - t0 < 90000) {
    uint64_t now = harness_now_ms() - t0;
    if (!killed && now >= 2500) {
      proc_kill(r.members[1], SIGKILL);
      proc_wait(r.members[1], 5000);
      killed = true;
    } else if (killed && !restarted && now >= 3500) {
      /* Back on its own port: the round-robin reaches it again. */
      snprintf(listen[1], sizeof listen[1], "127.0.0.1:%d", ports[1]);
      r.extra_args = args[1];
      wait_port(clusterrun_start(&r, 1), WEBHOOK_MARK);
      restarted = true;
    }
    run_for(20);
  }
  CHECK(clusterrun_posted(poster), "not every update was accepted (200)");
  fprintf(stderr, "%zu posts answered otherwise than 200 (sent again)\n",
          clusterrun_post_failures(poster));
  CHECK(clusterrun_wait_all(&r, 60000), "not every update was answered");
  struct cluster_tally t = clusterrun_tally(&r);
  check_exact(&t);
  size_t losses = 1 + self_stops(&r);
  CHECK(t.duplicates <= (int)(losses * CONCURRENCY),
        "%d duplicates: more than %zu losses x %d", t.duplicates, losses,
        CONCURRENCY);
  /* setWebhook: by holders of the ingress lease only (one at a time). */
  size_t set = fakeapi_count_method(harness_api(), "setWebhook");
  CHECK(set >= 1 && set <= 2, "setWebhook called %zu times", set);
  clusterrun_poster_free(poster);
  clusterrun_finish(&r);
}

/* An update that kills whoever runs it (a crash loop across owners) is
 * run twice as usual, then alone in its process (a suspect), at most
 * cluster.maxAttempts times, then becomes a dead letter that
 * --dead-letters lists; no other update is blamed, and the others go on
 * being answered. */
static const char poison_bot[] =
    "bot.on('message:text', function(ctx)\n"
    "  if ctx.msg.text == 'poison' then os.execute('kill -9 $PPID') end\n"
    "  ctx:reply('ok ' .. ctx.update.update_id)\n"
    "end)\n"
    "run(bot, { cluster = { lease = 1, partitions = 4, maxAttempts = 1 } })\n";

TEST(dead_letters) {
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  r.script = harness_write("poison.lua", poison_bot);
  struct fakeapi *api = harness_api();
  int64_t poison = fakeapi_push_text(api, 9, 9, "poison");
  for (int i = 0; i < 20; i++) fakeapi_push_text(api, 10 + i, 10 + i, "fine");
  clusterrun_start(&r, 0);
  clusterrun_start(&r, 1);
  /* Restart whoever dies, until the fine ones are all answered and the
   * poison is a dead letter. */
  char line[96];
  snprintf(line, sizeof line, "update %lld of partition", (long long)poison);
  uint64_t t0 = harness_now_ms();
  int deaths = 0;
  bool logged = false;
  while ((fakeapi_count_method(api, "sendMessage") < 20 || !logged) &&
         harness_now_ms() - t0 < 60000) {
    for (size_t i = 0; i < 2 && !logged; i++)
      logged = strstr(proc_stderr(r.members[i]), line) != NULL;
    for (size_t i = 0; i < 2; i++) {
      if (!proc_exited(r.members[i])) continue;
      CHECK(proc_status(r.members[i]) == 128 + SIGKILL, "member %zu exited "
            "with %d", i, proc_status(r.members[i]));
      deaths++;
      clusterrun_start(&r, i);
    }
    run_for(50);
  }
  CHECK(fakeapi_count_method(api, "sendMessage") >= 20,
        "the other updates were not all answered (%d deaths)", deaths);
  /* Twice as an ordinary update (a suspect then), once alone in its
   * process (maxAttempts 1): then it is a dead letter. */
  CHECK(deaths == 3, "the poison killed %d owners, not 3", deaths);
  CHECK(logged, "no member logged the dead letter");
  const char *list_args[] = {"--cluster", r.redis.url, "--dead-letters", NULL};
  struct proc *l = proc_start_env(
      NULL, list_args, (const char *[]){"BOT_TOKEN=" TEST_TOKEN, NULL}, false);
  CHECK(proc_wait(l, 10000), "--dead-letters did not exit");
  CHECK(proc_status(l) == 0, "--dead-letters exit status %d: %s",
        proc_status(l), proc_stderr(l));
  snprintf(line, sizeof line, "update %lld (", (long long)poison);
  CHECK(strstr(proc_stdout(l), line) && strstr(proc_stdout(l), "\"poison\"") &&
            strstr(proc_stdout(l), "1 dead letter(s)"),
        "the dead letter is not listed:\n%s", proc_stdout(l));
  proc_check_clean(l);
  proc_free(l);
  clusterrun_finish(&r);
}

static struct proc *run_expecting_exit(const char *script,
                                       const char *const *args,
                                       const char *redis_url) {
  char url_env[400];
  snprintf(url_env, sizeof url_env, "REDIS_URL=%s", redis_url);
  struct proc *p = proc_start_env(
      script, args, (const char *[]){"BOT_TOKEN=" TEST_TOKEN, url_env, NULL},
      true);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  proc_check_clean(p);
  return p;
}

/* What a cluster refuses at start, saying why. */
TEST(refusals) {
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  const char *args[] = {"--cluster", r.redis.url, "--no-watch", NULL};
  /* Sessions this process alone sees. */
  const char *mem = harness_write(
      "mem.lua", "bot.use(session{})\nbot.on('message', function() end)\n"
                 "run(bot)\n");
  struct proc *p = run_expecting_exit(mem, args, r.redis.url);
  CHECK(proc_status(p) == 1 && strstr(proc_stderr(p), "sessions need a "
        "storage every process shares") &&
            strstr(proc_stderr(p), "uses memory"),
        "memory sessions in a cluster: status %d\n%s", proc_status(p),
        proc_stderr(p));
  proc_free(p);
  const char *sql = harness_write(
      "sql.lua", "bot.use(session{ storage = tghost.storage.sqlite("
                 "os.getenv('REDIS_URL'):gsub('[^%w]', '_') .. '.db') })\n"
                 "bot.on('message', function() end)\nrun(bot)\n");
  p = run_expecting_exit(sql, args, r.redis.url);
  CHECK(proc_status(p) == 1 && strstr(proc_stderr(p), "sqlite storage"),
        "SQLite sessions in a cluster: status %d\n%s", proc_status(p),
        proc_stderr(p));
  proc_free(p);
  /* Another partition count than the cluster's. */
  const char *p16 = harness_write(
      "p16.lua", "bot.on('message', function() end)\n"
                 "run(bot, { cluster = { partitions = 16, lease = 1 } })\n");
  const char *p8 = harness_write(
      "p8.lua", "bot.on('message', function() end)\n"
                "run(bot, { cluster = { partitions = 8, lease = 1 } })\n");
  char url_env[400];
  snprintf(url_env, sizeof url_env, "REDIS_URL=%s", r.redis.url);
  struct proc *first = proc_start_env(
      p16, args, (const char *[]){"BOT_TOKEN=" TEST_TOKEN, url_env, NULL},
      true);
  wait_stderr(first, "member ", 20000);
  p = run_expecting_exit(p8, args, r.redis.url);
  CHECK(proc_status(p) == 1 && strstr(proc_stderr(p), "has 16 partitions"),
        "a partition count mismatch: status %d\n%s", proc_status(p),
        proc_stderr(p));
  proc_free(p);
  proc_stop_cleanly(first);
  proc_free(first);
  /* The journal: the cluster keeps updates itself. */
  const char *jargs[] = {"--cluster", r.redis.url, "--journal", "x.journal",
                         NULL};
  p = run_expecting_exit(p16, jargs, r.redis.url);
  CHECK(proc_status(p) == 2 && strstr(proc_stderr(p), "do not go together"),
        "--journal with --cluster: status %d\n%s", proc_status(p),
        proc_stderr(p));
  proc_free(p);
  /* A webhook every instance can check needs a shared secret. */
  const char *wargs[] = {"--cluster", r.redis.url, "--webhook",
                         "https://bot.example/hook", "--listen",
                         "127.0.0.1:0", NULL};
  p = run_expecting_exit(p16, wargs, r.redis.url);
  CHECK(proc_status(p) == 1 && strstr(proc_stderr(p), "--webhook-secret-file"),
        "a cluster webhook without a secret file: status %d\n%s",
        proc_status(p), proc_stderr(p));
  proc_free(p);
  redisproc_signal(&r.redis, SIGTERM);
}

/* A sample's value in /metrics text ("name" or "name{labels}"), or -1. */
static double metric_line(const struct buf *m, const char *sample_name) {
  char key[160];
  snprintf(key, sizeof key, "\n%s ", sample_name);
  const char *at = m->data ? strstr(m->data, key) : NULL;
  return at ? strtod(at + strlen(key), NULL) : -1;
}

/* cluster.key replaces the default key (here: the message's text, so two
 * chats share a key and a partition), --trace shows each update's
 * partition, and /metrics the cluster's state. */
static const char key_bot[] =
    "bot.on('message:text', function(ctx) ctx:reply('ok') end)\n"
    "run(bot, { cluster = { lease = 1, partitions = 16,\n"
    "                       key = function(ctx) return 'k' .. ctx.msg.text end } })\n";

TEST(key_trace_metrics) {
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  r.script = harness_write("key.lua", key_bot);
  const char *extra[] = {"--trace", "--metrics", "127.0.0.1:0", NULL};
  r.extra_args = extra;
  struct proc *p = clusterrun_start(&r, 0);
  int port = wait_port(p, METRICS_MARK);
  struct fakeapi *api = harness_api();
  int64_t a = fakeapi_push_text(api, 1, 1, "a");
  int64_t b = fakeapi_push_text(api, 2, 2, "a");
  int64_t c = fakeapi_push_text(api, 3, 3, "b");
  wait_calls("sendMessage", 3, 20000);
  char want[160];
  int pa = clusterkey_partition("ka", 2, 16), pb = clusterkey_partition("kb", 2,
                                                                        16);
  for (int i = 0; i < 3; i++) {
    int64_t id = i == 0 ? a : i == 1 ? b : c;
    snprintf(want, sizeof want, "[update %lld] update message chat %d from User: "
             "\"%s\" (partition %d)", (long long)id, i + 1, i < 2 ? "a" : "b",
             i < 2 ? pa : pb);
    CHECK(strstr(proc_stderr(p), want), "no trace line '%s'", want);
  }
  struct buf m = BUF_INIT;
  CHECK(get_url(port, "/metrics", &m) == 200, "/metrics failed");
  CHECK(metric_line(&m, "tghost_cluster_partitions_owned") == 16,
        "owned partitions %g", metric_line(&m, "tghost_cluster_partitions_owned"));
  CHECK(metric_line(&m, "tghost_source_state{state=\"polling\"}") == 1,
        "the holder's source state is not polling");
  CHECK(metric_line(&m, "tghost_cluster_ingress_holder") == 1, "not the holder");
  CHECK(metric_line(&m, "tghost_cluster_members") == 1, "members %g",
        metric_line(&m, "tghost_cluster_members"));
  CHECK(metric_line(&m, "tghost_cluster_ingested_total{result=\"added\"}") == 3,
        "ingested %g",
        metric_line(&m, "tghost_cluster_ingested_total{result=\"added\"}"));
  CHECK(metric_line(&m, "tghost_updates_received_total{source=\"cluster\"}") ==
            3,
        "received %g",
        metric_line(&m, "tghost_updates_received_total{source=\"cluster\"}"));
  struct buf health = BUF_INIT;
  CHECK(get_url(port, "/healthz", &health) == 200 &&
            strstr(health.data, "ok: polling"),
        "the ingress holder's /healthz: %s", health.data);
  /* A second member, which does not poll, is healthy too. */
  struct proc *q = clusterrun_start(&r, 1);
  int qport = wait_port(q, METRICS_MARK);
  wait_stderr(q, "took over partition", 20000);
  CHECK(get_url(qport, "/healthz", &health) == 200 &&
            strstr(health.data, "ok: cluster"),
        "a member's /healthz: %s", health.data);
  buf_free(&health);
  /* Renewals and per-partition lag come with the next ticks. */
  run_for(1200);
  CHECK(get_url(port, "/metrics", &m) == 200, "/metrics failed");
  CHECK(metric_line(&m, "tghost_cluster_lease_renewals_total") > 0,
        "no lease renewal counted");
  /* The second member took its share: the first drained some away. */
  CHECK(metric_line(&m, "tghost_cluster_partitions_owned") < 16 &&
            metric_line(&m, "tghost_cluster_members") == 2,
        "owned %g of 16 with %g members",
        metric_line(&m, "tghost_cluster_partitions_owned"),
        metric_line(&m, "tghost_cluster_members"));
  char lag[96];
  snprintf(lag, sizeof lag, "tghost_cluster_partition_lag{partition=\"%d\"}",
           pa);
  CHECK(metric_line(&m, lag) >= 0, "no lag for partition %d", pa);
  buf_free(&m);
  clusterrun_finish(&r);
}

/* A conversation waits for its user in a cluster: the update it waits
 * for passes its own (steps aside, as with sequentialize), and its
 * partition is not moved to a member that joins meanwhile. */
static const char dialog_bot[] =
    "local me = os.getenv('NAME')\n"
    "bot.command('ask', function(ctx)\n"
    "  ctx:reply('name? ' .. me)\n"
    "  local answer = ctx:wait('message:text')\n"
    "  ctx:reply('hi ' .. answer.msg.text .. ' from ' .. me)\n"
    "end)\n"
    "bot.on('message:text', function(ctx) ctx:reply('plain ' .. me) end)\n"
    "run(bot, { cluster = { lease = 1, partitions = 8 } })\n";

TEST(conversation) {
  struct cluster_run r = {0};
  clusterrun_redis(&r);
  r.script = harness_write("dialog.lua", dialog_bot);
  struct proc *a = clusterrun_start_env(&r, 0, (const char *[]){"NAME=A", NULL});
  struct fakeapi *api = harness_api();
  fakeapi_push_text(api, 5, 5, "/ask");
  CHECK(run_until(text_sent, "name? A", 20000), "A did not ask");
  /* B joins: half the partitions move, but not the one waiting. */
  struct proc *b = clusterrun_start_env(&r, 1, (const char *[]){"NAME=B", NULL});
  CHECK(run_until_stderr(b, "took over partition", 20000),
        "B took no partition over");
  run_for(1500);
  fakeapi_push_text(api, 5, 5, "Bob");
  CHECK(run_until(text_sent, "hi Bob from A", 20000),
        "the answer did not reach A's waiting conversation");
  /* Other chats are served by both. */
  for (int i = 0; i < 40; i++) fakeapi_push_text(api, 100 + i, 100 + i, "x");
  CHECK(run_until(text_sent, "plain A", 20000) &&
            run_until(text_sent, "plain B", 20000),
        "the chats were not shared between A and B");
  (void)a;
  clusterrun_finish(&r);
}
