/* Rate limiting end to end: two tghost processes (each polling a fake Bot
 * API of its own) count one user's updates in one Redis, and together
 * let exactly `limit` of them through per window, the excess answered
 * once. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* --- a Redis server of the test's own (as tests/e2e/storage.c starts
 * one: no persistence, a free loopback port) ----------------------------- */

static pid_t redis_pid;
static int redis_port;

static void redis_kill(void) {
  if (redis_pid > 0) {
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
  }
}

static bool redis_accepts(void *ud) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)redis_port);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void redis_start(void) {
  if (system("command -v redis-server >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: needs redis-server (installed by scripts/dev.sh)\n");
    exit(77);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0,
        "no free port: %s", strerror(errno));
  close(fd);
  redis_port = ntohs(a.sin_port);
  char port[16];
  snprintf(port, sizeof port, "%d", redis_port);
  const char *dir = harness_tmpdir();
  redis_pid = fork();
  CHECK(redis_pid >= 0, "fork: %s", strerror(errno));
  if (redis_pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execlp("redis-server", "redis-server", "--port", port, "--bind",
           "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
           "--protected-mode", "no", (char *)NULL);
    _exit(127);
  }
  atexit(redis_kill);
  CHECK(run_until(redis_accepts, NULL, 10000), "redis-server did not start");
}

/* --- the test ------------------------------------------------------------ */

static const char *script_fmt =
    "local store = tghost.storage.redis('redis://127.0.0.1:%d', 'rl:')\n"
    "bot.use(tghost.ratelimit{ limit = 4, window = 60, storage = store,\n"
    "  reply = 'Slow down!',\n"
    "  onLimitExceeded = function(ctx) ctx:reply('dropped') end })\n"
    "bot.on('message', function(ctx) ctx:reply('ok') end)\n"
    "run(bot)\n";

static size_t replies(struct fakeapi *api, const char *text) {
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strcmp(c->method, "sendMessage") != 0) continue;
    char *t = fake_call_string(c, "text");
    if (t && strcmp(t, text) == 0) n++;
    free(t);
  }
  return n;
}

struct two {
  struct fakeapi *a, *b;
  size_t want;
};

static bool all_answered(void *ud) {
  struct two *t = ud;
  return replies(t->a, "ok") + replies(t->a, "dropped") + replies(t->b, "ok") +
             replies(t->b, "dropped") >= t->want;
}

/* 20 messages of one user, 10 to each process at once: 4 get through in
 * all, 16 are dropped, one "Slow down!" is sent. A second user has a
 * count of their own. */
TEST(two_processes_one_redis) {
  redis_start();
  char script_text[1024];
  snprintf(script_text, sizeof script_text, script_fmt, redis_port);
  const char *script = harness_write("bot.lua", script_text);
  struct fakeapi_config cfg = {TEST_TOKEN, "other_bot", 4343};
  struct fakeapi *other = fakeapi_new(harness_base(), &cfg);
  struct proc *a = proc_start(script, NULL);
  const char *args[] = {"--api-root", fakeapi_url(other), NULL};
  const char *env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
  struct proc *b = proc_start_env(script, args, env, false);
  for (int i = 0; i < 10; i++) {
    fakeapi_push_text(harness_api(), 7, 7, "hi");
    fakeapi_push_text(other, 7, 7, "hi");
  }
  struct two t = {harness_api(), other, 20};
  CHECK(run_until(all_answered, &t, 20000), "not every update was answered");
  run_for(300);
  size_t ok = replies(harness_api(), "ok") + replies(other, "ok");
  size_t dropped = replies(harness_api(), "dropped") + replies(other, "dropped");
  size_t told = replies(harness_api(), "Slow down!") + replies(other, "Slow down!");
  printf("ok %zu (a %zu, b %zu), dropped %zu, told %zu\n", ok,
         replies(harness_api(), "ok"), replies(other, "ok"), dropped, told);
  CHECK(ok == 4, "%zu updates got through the limit of 4", ok);
  CHECK(dropped == 16, "%zu dropped", dropped);
  CHECK(told == 1, "'Slow down!' sent %zu times", told);

  /* Another user is counted apart. */
  fakeapi_push_text(other, 8, 8, "hi");
  t.want = 21;
  CHECK(run_until(all_answered, &t, 10000), "user 8 was not answered");
  CHECK(replies(other, "ok") + replies(harness_api(), "ok") == 5,
        "user 8 was limited by user 7's count");
  proc_stop_cleanly(a);
  proc_stop_cleanly(b);
  fakeapi_free(other);
}
