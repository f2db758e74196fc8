#include "base/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

struct signals {
  struct event *ev;
  int pipe[2];
  signals_fn on_signal;
  void *ud;
  int handled;                   /* signals the loop has acted on */
};

static volatile sig_atomic_t received, last_sig;
static int write_fd = -1;

/* Once a signal is repeated: if the loop has not ended the process by
 * now, it never will. */
static void on_alarm(int sig) { _exit(128 + last_sig); }

static void on_stop_signal(int sig) {
  int saved = errno;
  received++;
  last_sig = sig;
  unsigned char b = (unsigned char)sig;
  if (write_fd >= 0 && write(write_fd, &b, 1) < 0) {
    /* A full pipe already holds enough to wake the loop. */
  }
  if (received >= 2) alarm(SIGNALS_WATCHDOG_S);
  errno = saved;
}

static void on_pipe(evutil_socket_t fd, short what, void *arg) {
  struct signals *s = arg;
  unsigned char buf[64];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++)
      s->on_signal(buf[i], ++s->handled, s->ud);
  }
}

struct signals *signals_new(struct event_base *base, signals_fn on_signal,
                            void *ud) {
  struct signals *s = xcalloc(1, sizeof *s);
  s->on_signal = on_signal;
  s->ud = ud;
  if (pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    log_error("cannot install the signal handlers: %s", strerror(errno));
    free(s);
    return NULL;
  }
  write_fd = s->pipe[1];
  s->ev = event_new(base, s->pipe[0], EV_READ | EV_PERSIST, on_pipe, s);
  event_add(s->ev, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  return s;
}

void signals_free(struct signals *s) {
  if (!s) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  write_fd = -1;
  event_free(s->ev);
  close(s->pipe[0]);
  close(s->pipe[1]);
  free(s);
}
