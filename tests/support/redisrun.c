#include "redisrun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static pid_t redis_pid;
static int redis_port;

static bool installed(void) {
  const char *path = getenv("PATH");
  char *copy = xstrdup(path ? path : "/usr/bin:/bin");
  bool found = false;
  for (char *dir = strtok(copy, ":"); dir && !found; dir = strtok(NULL, ":")) {
    char full[512];
    snprintf(full, sizeof full, "%s/redis-server", dir);
    found = access(full, X_OK) == 0;
  }
  free(copy);
  return found;
}

void redisrun_need(void) {
  if (installed()) return;
  fprintf(stderr, "SKIP: needs redis-server (Debian's redis-server, installed "
                  "by scripts/dev.sh)\n");
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

static bool accepts(void *ud) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)redis_port);
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void stop(void) {
  if (redis_pid <= 0) return;
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
  redis_pid = 0;
}

int redisrun_start(void) {
  if (redis_pid > 0) return redis_port;
  redisrun_need();
  redis_port = free_port();
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
           "--protected-mode", "no", "--daemonize", "no", (char *)NULL);
    _exit(127);
  }
  atexit(stop);
  CHECK(run_until(accepts, NULL, 10000), "redis-server did not start on "
        "port %d", redis_port);
  return redis_port;
}
