#include "ptyrun.h"

#include <errno.h>
#include <stdint.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"

struct pty {
  pid_t pid;
  int master;
  struct buf out;
  bool exited, eof;
  int status;
};

static struct pty *live;   /* the one a failed test leaves behind */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dump_at_exit(void) {
  if (!live) return;
  fprintf(stderr, "--- the terminal showed (%zu bytes):\n%s\n--- end\n",
          live->out.len, live->out.data ? live->out.data : "");
  if (!live->exited) {
    kill(live->pid, SIGKILL);
    waitpid(live->pid, NULL, 0);
  }
}

struct pty *pty_start(const char *const *argv, const char *const *env) {
  struct winsize ws = {.ws_row = 40, .ws_col = 120};
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, &ws);
  if (pid < 0) {
    perror("forkpty");
    exit(1);
  }
  if (pid == 0) {
    for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execv(argv[0], (char *const *)argv);
    perror("execv");
    _exit(127);
  }
  struct pty *p = calloc(1, sizeof *p);
  p->pid = pid;
  p->master = master;
  if (!live) atexit(dump_at_exit);
  live = p;
  return p;
}

/* Reads what is there within wait_ms; false once the terminal is closed. */
static void read_some(struct pty *p, int wait_ms) {
  if (p->eof) {
    if (wait_ms > 0) poll(NULL, 0, wait_ms < 20 ? wait_ms : 20);
    return;
  }
  struct pollfd pfd = {p->master, POLLIN, 0};
  if (poll(&pfd, 1, wait_ms) <= 0) return;
  char chunk[4096];
  ssize_t n = read(p->master, chunk, sizeof chunk);
  if (n > 0) buf_append(&p->out, chunk, (size_t)n);
  else if (n == 0 || (errno != EINTR && errno != EAGAIN)) p->eof = true;   /* EIO */
}

static void reap(struct pty *p) {
  if (p->exited) return;
  int status;
  if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
    p->exited = true;
    p->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}

void pty_type(struct pty *p, const char *text) {
  size_t n = strlen(text);
  while (n > 0) {
    ssize_t w = write(p->master, text, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    text += w;
    n -= (size_t)w;
  }
}

bool pty_wait_for(struct pty *p, const char *text, size_t since,
                  int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    if (p->out.len > since && memmem(p->out.data + since, p->out.len - since,
                                     text, strlen(text)))
      return true;
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    read_some(p, (int)(deadline - now));
  }
}

const char *pty_output(const struct pty *p) {
  return p->out.data ? p->out.data : "";
}
size_t pty_output_len(const struct pty *p) { return p->out.len; }

bool pty_wait_exit(struct pty *p, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    reap(p);
    if (p->exited && p->eof) return true;
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    read_some(p, now + 50 < deadline ? 50 : (int)(deadline - now));
  }
}

int pty_status(const struct pty *p) { return p->status; }

void pty_free(struct pty *p) {
  if (!p) return;
  if (!p->exited) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
  }
  close(p->master);
  buf_free(&p->out);
  if (live == p) live = NULL;
  free(p);
}
