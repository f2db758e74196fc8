#include "net/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/qlist.h"

#define DEFAULT_WINDOW 65536
#define READ_PIECE 16384

extern char **environ;

struct out_pipe {
  struct child *c;
  int fd;                        /* -1 once closed */
  struct event *ev;
  bool reading;                  /* ev is added */
  struct buf buf;                /* from off on: not consumed */
  size_t off;
};

struct child {
  struct child_table *t;
  pid_t pid;
  struct qnode node;             /* in the table's children */
  child_notify_fn notify;
  void *ud;
  size_t window;
  struct out_pipe out[2];
  int in_fd;                     /* -1 once closed */
  struct event *in_ev;
  struct buf in_buf;             /* from in_off on: not yet written */
  size_t in_off;
  bool in_close_wanted;
  bool exited;
  int status;
  bool released;
  struct event *kill_timer;      /* SIGKILL after the grace period */
};

struct child_table {
  struct event_base *base;
  struct event *sigchld;
  struct qlist children;
};

static void notify(struct child *c) {
  if (c->notify && !c->released) c->notify(c, c->ud);
}

static void set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_out(struct out_pipe *p) {
  if (p->ev) {
    event_free(p->ev);
    p->ev = NULL;
  }
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  p->reading = false;
}

static void close_in(struct child *c) {
  if (c->in_ev) {
    event_free(c->in_ev);
    c->in_ev = NULL;
  }
  if (c->in_fd >= 0) close(c->in_fd);
  c->in_fd = -1;
  buf_free(&c->in_buf);
  c->in_off = 0;
}

static void child_free(struct child *c) {
  qlist_remove(&c->t->children, &c->node);
  close_out(&c->out[0]);
  close_out(&c->out[1]);
  close_in(c);
  buf_free(&c->out[0].buf);
  buf_free(&c->out[1].buf);
  if (c->kill_timer) event_free(c->kill_timer);
  free(c);
}

/* --- reaping -------------------------------------------------------------- */

/* SIGCHLD may stand for several children: every one is asked (by its own
 * pid, so the children of io.popen and os.execute are left to them). */
static void on_sigchld(evutil_socket_t sig, short what, void *arg) {
  struct child_table *t = arg;
  struct qnode *n = qlist_front(&t->children);
  while (n) {
    struct qnode *next = n->next == &t->children.head ? NULL : n->next;
    struct child *c = qlist_entry(n, struct child, node);
    if (!c->exited) {
      int status;
      pid_t r = waitpid(c->pid, &status, WNOHANG);
      if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->exited = true;
        c->status = r == c->pid ? status : 0;
        if (c->kill_timer) evtimer_del(c->kill_timer);
        if (c->released) child_free(c);
        else notify(c);
      }
    }
    n = next;
  }
}

struct child_table *child_table_new(struct event_base *base) {
  struct child_table *t = xcalloc(1, sizeof *t);
  t->base = base;
  qlist_init(&t->children);
  t->sigchld = evsignal_new(base, SIGCHLD, on_sigchld, t);
  if (!t->sigchld || event_add(t->sigchld, NULL) != 0) {
    log_error("cannot watch SIGCHLD: child processes are not available");
    if (t->sigchld) event_free(t->sigchld);
    free(t);
    return NULL;
  }
  return t;
}

void child_table_free(struct child_table *t) {
  if (!t) return;
  struct qnode *n;
  while ((n = qlist_front(&t->children))) {
    struct child *c = qlist_entry(n, struct child, node);
    if (!c->exited) {
      kill(-c->pid, SIGKILL);
      /* SIGKILL cannot be caught: the wait is short. The loop is over. */
      while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
      }
    }
    child_free(c);
  }
  event_free(t->sigchld);
  free(t);
}

size_t child_table_count(const struct child_table *t) {
  return t ? t->children.count : 0;
}

/* --- pipes ---------------------------------------------------------------- */

static size_t buffered(const struct out_pipe *p) { return p->buf.len - p->off; }

static void on_out(evutil_socket_t fd, short what, void *arg) {
  struct out_pipe *p = arg;
  struct child *c = p->c;
  for (;;) {
    if (buffered(p) >= c->window) {
      event_del(p->ev);   /* the reader is behind: the pipe waits */
      p->reading = false;
      break;
    }
    buf_reserve(&p->buf, READ_PIECE);
    ssize_t n = read(p->fd, p->buf.data + p->buf.len, READ_PIECE);
    if (n > 0) {
      p->buf.len += (size_t)n;
      p->buf.data[p->buf.len] = '\0';
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_out(p);   /* the end, or an error that is one */
    break;
  }
  notify(c);
}

static void flush_stdin(struct child *c) {
  while (c->in_fd >= 0 && c->in_off < c->in_buf.len) {
    ssize_t n = write(c->in_fd, c->in_buf.data + c->in_off,
                      c->in_buf.len - c->in_off);
    if (n > 0) {
      c->in_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      event_add(c->in_ev, NULL);
      return;
    }
    close_in(c);   /* EPIPE: the child does not read any more */
    return;
  }
  if (c->in_fd < 0) return;
  buf_reset(&c->in_buf);
  c->in_off = 0;
  event_del(c->in_ev);
  if (c->in_close_wanted) close_in(c);
}

static void on_in(evutil_socket_t fd, short what, void *arg) {
  struct child *c = arg;
  flush_stdin(c);
  if (c->in_fd < 0 || c->in_off == c->in_buf.len) notify(c);
}

/* --- spawning --------------------------------------------------------------- */

static bool named(const char *entry, const char *name, size_t len) {
  return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

/* tghost's environment less secrets and the names env_add sets or
 * removes, then env_add's assignments. */
static char **child_environment(const char *const *env_add) {
  size_t n = 0, nadd = 0;
  for (char **e = environ; *e; e++) n++;
  for (const char *const *a = env_add; a && *a; a++) nadd++;
  char **out = xcalloc(n + nadd + 1, sizeof *out);
  size_t k = 0;
  for (char **e = environ; *e; e++) {
    if (named(*e, "BOT_TOKEN", 9)) continue;
    bool replaced = false;
    for (const char *const *a = env_add; a && *a && !replaced; a++) {
      size_t len = strcspn(*a, "=");
      replaced = named(*e, *a, len);
    }
    if (replaced) continue;
    size_t len = strlen(*e);
    char *clean = log_redacted_copy(*e, len);
    bool secret = strcmp(clean, *e) != 0;
    free(clean);
    if (secret) continue;
    out[k++] = *e;
  }
  for (const char *const *a = env_add; a && *a; a++)
    if (strchr(*a, '=')) out[k++] = (char *)*a;
  out[k] = NULL;
  return out;
}

static void close_pair(int p[2]) {
  if (p[0] >= 0) close(p[0]);
  if (p[1] >= 0) close(p[1]);
}

struct child *child_spawn(struct child_table *t, const struct child_spec *spec,
                          child_notify_fn notify_fn, void *ud,
                          struct buf *err) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(errp, O_CLOEXEC) != 0) {
    buf_printf(err, "cannot make pipes: %s", strerror(errno));
    close_pair(in);
    close_pair(out);
    close_pair(errp);
    return NULL;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
  /* Nothing else of tghost's: sockets, the journal, inotify. */
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (spec->cwd) posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&at, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  char **envp = child_environment(spec->env_add);
  pid_t pid;
  int rc = posix_spawnp(&pid, spec->argv[0], &fa, &at,
                        (char *const *)spec->argv, envp);
  free(envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(in[0]);
  close(out[1]);
  close(errp[1]);
  if (rc != 0) {
    /* posix_spawn's chdir fails with the same errno as a missing
     * program: name the directory too, or "No such file" misleads. */
    if (spec->cwd)
      buf_printf(err, "cannot run %s in %s: %s", spec->argv[0], spec->cwd,
                 strerror(rc));
    else
      buf_printf(err, "cannot run %s: %s", spec->argv[0], strerror(rc));
    close(in[1]);
    close(out[0]);
    close(errp[0]);
    return NULL;
  }
  struct child *c = xcalloc(1, sizeof *c);
  c->t = t;
  c->pid = pid;
  c->notify = notify_fn;
  c->ud = ud;
  c->window = spec->window ? spec->window : DEFAULT_WINDOW;
  int fds[2] = {out[0], errp[0]};
  for (int i = 0; i < 2; i++) {
    struct out_pipe *p = &c->out[i];
    p->c = c;
    p->fd = fds[i];
    set_nonblocking(p->fd);
    p->ev = event_new(t->base, p->fd, EV_READ | EV_PERSIST, on_out, p);
    event_add(p->ev, NULL);
    p->reading = true;
  }
  c->in_fd = in[1];
  set_nonblocking(c->in_fd);
  c->in_ev = event_new(t->base, c->in_fd, EV_WRITE | EV_PERSIST, on_in, c);
  qlist_push_back(&t->children, &c->node);
  return c;
}

pid_t child_pid(const struct child *c) { return c->pid; }

size_t child_peek(const struct child *c, enum child_stream s,
                  const char **data) {
  const struct out_pipe *p = &c->out[s];
  *data = p->buf.data ? p->buf.data + p->off : "";
  return buffered(p);
}

void child_consume(struct child *c, enum child_stream s, size_t n) {
  struct out_pipe *p = &c->out[s];
  if (n > buffered(p)) n = buffered(p);
  p->off += n;
  if (p->off == p->buf.len) {
    buf_reset(&p->buf);
    p->off = 0;
  } else if (p->off > p->buf.len / 2) {
    memmove(p->buf.data, p->buf.data + p->off, p->buf.len - p->off);
    p->buf.len -= p->off;
    p->buf.data[p->buf.len] = '\0';
    p->off = 0;
  }
  if (p->fd >= 0 && !p->reading && buffered(p) < c->window / 2) {
    event_add(p->ev, NULL);
    p->reading = true;
  }
}

bool child_drained(const struct child *c, enum child_stream s) {
  return c->out[s].fd < 0 && buffered(&c->out[s]) == 0;
}

int child_write(struct child *c, const char *data, size_t len) {
  if (c->in_fd < 0 || c->in_close_wanted) return -1;
  buf_append(&c->in_buf, data, len);
  flush_stdin(c);
  return c->in_fd < 0 ? -1 : 0;
}

size_t child_stdin_pending(const struct child *c) {
  return c->in_fd < 0 ? 0 : c->in_buf.len - c->in_off;
}

void child_close_stdin(struct child *c) {
  c->in_close_wanted = true;
  if (c->in_fd >= 0 && c->in_off == c->in_buf.len) close_in(c);
}

bool child_exited(const struct child *c) { return c->exited; }
int child_wait_status(const struct child *c) { return c->status; }

void child_kill(struct child *c, int sig) {
  if (!c->exited) kill(-c->pid, sig);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg) {
  child_kill(arg, SIGKILL);
}

void child_release(struct child *c) {
  c->released = true;
  close_out(&c->out[0]);
  close_out(&c->out[1]);
  close_in(c);
  if (c->exited) {
    child_free(c);
    return;
  }
  child_kill(c, SIGTERM);
  c->kill_timer = evtimer_new(c->t->base, on_kill_timer, c);
  struct timeval tv = {CHILD_KILL_GRACE_MS / 1000,
                       (CHILD_KILL_GRACE_MS % 1000) * 1000};
  evtimer_add(c->kill_timer, &tv);
}
