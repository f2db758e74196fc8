#include "redisproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define MAX_SERVERS 8
static struct redisproc *servers[MAX_SERVERS];
static size_t nservers;

static void kill_servers(void) {
  for (size_t i = 0; i < nservers; i++) {
    if (servers[i]->pid > 0) {
      kill(servers[i]->pid, SIGKILL);
      waitpid(servers[i]->pid, NULL, 0);
      servers[i]->pid = 0;
    }
  }
}

static void remember(struct redisproc *r) {
  for (size_t i = 0; i < nservers; i++)
    if (servers[i] == r) return;
  CHECK(nservers < MAX_SERVERS, "too many redis-servers in one test");
  if (nservers == 0) atexit(kill_servers);
  servers[nservers++] = r;
}

void redisproc_need(void) {
  const char *path = getenv("PATH");
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", path ? path : "/usr/bin:/bin");
  for (char *dir = strtok(copy, ":"); dir; dir = strtok(NULL, ":")) {
    char full[4200];
    snprintf(full, sizeof full, "%s/redis-server", dir);
    if (access(full, X_OK) == 0) return;
  }
  fprintf(stderr, "SKIP: needs redis-server (Debian's redis-server, "
                  "installed by scripts/dev.sh)\n");
  exit(77);
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0,
        "no free port: %s", strerror(errno));
  close(fd);
  return ntohs(a.sin_port);
}

void redisproc_start(struct redisproc *r, const char *dir,
                     const char *const *extra) {
  if (!r->port) r->port = free_port();
  if (dir) snprintf(r->dir, sizeof r->dir, "%s", dir);
  mkdir(r->dir, 0700);
  snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  const char *argv[64] = {"redis-server", "--port", port, "--bind",
                          "127.0.0.1", "--dir", r->dir, "--protected-mode",
                          "no", "--daemonize", "no", "--save", ""};
  size_t n = 13;
  bool persistence = false;
  for (size_t i = 0; extra && extra[i] && n < 62; i++) {
    if (strcmp(extra[i], "--appendonly") == 0) persistence = true;
    argv[n++] = extra[i];
  }
  if (!persistence) {
    argv[n++] = "--appendonly";
    argv[n++] = "no";
  }
  argv[n] = NULL;
  remember(r);
  r->pid = fork();
  CHECK(r->pid >= 0, "fork: %s", strerror(errno));
  if (r->pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execvp("redis-server", (char *const *)argv);
    _exit(127);
  }
}

bool redisproc_ready(struct redisproc *r) {
  struct timeval tv = {0, 200000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
  if (!c) return false;
  bool ok = false;
  if (!c->err) {
    redisReply *reply = redisCommand(c, "PING");
    /* -LOADING while it reads its append-only file back. */
    ok = reply && reply->type == REDIS_REPLY_STATUS;
    if (reply) freeReplyObject(reply);
  }
  redisFree(c);
  return ok;
}

void redisproc_wait(struct redisproc *r, int timeout_ms) {
  for (int waited = 0; !redisproc_ready(r); waited += 20) {
    CHECK(waited < timeout_ms, "redis-server did not start on port %d",
          r->port);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
}

void redisproc_signal(struct redisproc *r, int sig) {
  if (r->pid <= 0) return;
  kill(r->pid, sig);
  if (sig == SIGSTOP || sig == SIGCONT) return;
  waitpid(r->pid, NULL, 0);
  r->pid = 0;
}

redisContext *redisproc_connect(const struct redisproc *r) {
  redisContext *c = redisConnect("127.0.0.1", r->port);
  CHECK(c && !c->err, "cannot connect to redis-server on port %d: %s",
        r->port, c ? c->errstr : "out of memory");
  return c;
}

redisReply *redisproc_cmd(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *reply = redisvCommand(c, fmt, ap);
  va_end(ap);
  CHECK(reply, "redis command '%s' got no reply: %s", fmt, c->errstr);
  return reply;
}
