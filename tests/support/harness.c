#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#ifndef TGHOST_BINARY
#error "TGHOST_BINARY must name the tghost executable"
#endif

#define MAX_PROCS 64

struct proc {
  pid_t pid;
  bool exited;
  int status;
  struct bufferevent *out, *err;
  bool out_eof, err_eof;
  struct buf out_text, err_text;
};

static struct event_base *base;
static struct fakeapi *api;
static char tmpdir[64];
static struct proc *procs[MAX_PROCS];
static int nprocs;
static struct event *child_event;
static char *written[256];
static int nwritten;

uint64_t harness_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void reap(evutil_socket_t sig, short what, void *arg) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < nprocs; i++) {
      struct proc *p = procs[i];
      if (p->pid != pid) continue;
      p->exited = true;
      p->status = WIFEXITED(status) ? WEXITSTATUS(status)
                                    : 128 + WTERMSIG(status);
    }
  }
}

struct event_base *harness_base(void) {
  if (!base) {
    base = event_base_new();
    child_event = evsignal_new(base, SIGCHLD, reap, NULL);
    evsignal_add(child_event, NULL);
  }
  return base;
}

struct fakeapi *harness_api(void) {
  if (!api) {
    struct fakeapi_config cfg = {.token = TEST_TOKEN, .username = "test_bot"};
    api = fakeapi_new(harness_base(), &cfg);
  }
  return api;
}

const char *harness_tmpdir(void) {
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tghost-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      exit(1);
    }
  }
  return tmpdir;
}

const char *harness_write(const char *name, const char *content) {
  struct buf path = BUF_INIT;
  buf_printf(&path, "%s/%s", harness_tmpdir(), name);
  FILE *f = fopen(path.data, "w");
  if (!f) {
    perror(path.data);
    exit(1);
  }
  fputs(content, f);
  fclose(f);
  char *p = buf_steal(&path, NULL);
  if (nwritten < 256) written[nwritten++] = p;
  return p;
}

static void on_pipe_read(struct bufferevent *bev, void *arg) {
  struct proc *p = arg;
  struct buf *dst = bev == p->out ? &p->out_text : &p->err_text;
  struct evbuffer *in = bufferevent_get_input(bev);
  size_t n = evbuffer_get_length(in);
  buf_reserve(dst, n);
  evbuffer_remove(in, dst->data + dst->len, n);
  dst->len += n;
  dst->data[dst->len] = '\0';
  /* Mirror tghost's output when asked to, for debugging a test. */
  if (getenv("TGHOST_TEST_VERBOSE")) fwrite(dst->data + dst->len - n, 1, n, stderr);
}

static void on_pipe_event(struct bufferevent *bev, short what, void *arg) {
  struct proc *p = arg;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    on_pipe_read(bev, arg);
    if (bev == p->out) p->out_eof = true;
    else p->err_eof = true;
    bufferevent_disable(bev, EV_READ);
  }
}

/* Forks and execs argv[0] with its output captured; env entries
 * ("NAME=value") are added to an environment without BOT_TOKEN and
 * TGHOST_API_ROOT. */
static struct proc *spawn(const char *const *argv, const char *const *env) {
  harness_base();
  if (nprocs == MAX_PROCS) {
    fprintf(stderr, "harness: too many processes\n");
    exit(1);
  }
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) {
    perror("pipe");
    exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    /* Should the test itself die (a crash, an abort), tghost goes too. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    unsetenv("BOT_TOKEN");
    unsetenv("TGHOST_API_ROOT");
    for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  struct proc *p = xcalloc(1, sizeof *p);
  p->pid = pid;
  evutil_make_socket_nonblocking(out[0]);
  evutil_make_socket_nonblocking(err[0]);
  p->out = bufferevent_socket_new(base, out[0], BEV_OPT_CLOSE_ON_FREE);
  p->err = bufferevent_socket_new(base, err[0], BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(p->out, on_pipe_read, NULL, on_pipe_event, p);
  bufferevent_setcb(p->err, on_pipe_read, NULL, on_pipe_event, p);
  bufferevent_enable(p->out, EV_READ);
  bufferevent_enable(p->err, EV_READ);
  procs[nprocs++] = p;
  return p;
}

struct proc *proc_start_env(const char *script, const char *const *args,
                            const char *const *env, bool with_api_root) {
  const char *argv[64];
  int argc = 0;
  argv[argc++] = TGHOST_BINARY;
  if (with_api_root) {
    argv[argc++] = "--api-root";
    argv[argc++] = fakeapi_url(harness_api());
  }
  for (int i = 0; args && args[i] && argc < 60; i++) argv[argc++] = args[i];
  argv[argc++] = script;
  argv[argc] = NULL;
  return spawn(argv, env);
}

struct proc *proc_start_command(const char *const *argv,
                                const char *const *env) {
  return spawn(argv, env);
}

const char *harness_tghost_binary(void) { return TGHOST_BINARY; }

struct proc *proc_start(const char *script, const char *const *args) {
  static const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
  return proc_start_env(script, args, env, true);
}

static void proc_release(struct proc *p) {
  if (!p->exited) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
  }
  bufferevent_free(p->out);
  bufferevent_free(p->err);
  buf_free(&p->out_text);
  buf_free(&p->err_text);
  free(p);
}

void proc_free(struct proc *p) {
  for (int i = 0; i < nprocs; i++) {
    if (procs[i] != p) continue;
    procs[i] = procs[--nprocs];
    proc_release(p);
    return;
  }
}

bool proc_exited(const struct proc *p) { return p->exited; }
int proc_status(const struct proc *p) { return p->status; }
int proc_pid(const struct proc *p) { return p->pid; }
const char *proc_stdout(const struct proc *p) {
  return p->out_text.data ? p->out_text.data : "";
}
const char *proc_stderr(const struct proc *p) {
  return p->err_text.data ? p->err_text.data : "";
}

void proc_kill(struct proc *p, int sig) {
  if (!p->exited) kill(p->pid, sig);
}

static bool proc_done(void *ud) {
  struct proc *p = ud;
  return p->exited && p->out_eof && p->err_eof;
}

bool proc_wait(struct proc *p, int timeout_ms) {
  return run_until(proc_done, p, timeout_ms);
}

void proc_check_clean(const struct proc *p) {
  static const char *const reports[] = {"ERROR: AddressSanitizer",
                                        "ERROR: LeakSanitizer",
                                        "runtime error:", NULL};
  for (int i = 0; reports[i]; i++)
    CHECK(!strstr(proc_stderr(p), reports[i]), "sanitizer report: %s",
          reports[i]);
  CHECK(!strstr(proc_stdout(p), TEST_TOKEN) && !strstr(proc_stderr(p), TEST_TOKEN),
        "the bot token appears in tghost's output");
  CHECK(!strstr(proc_stdout(p), "TEST-secret") && !strstr(proc_stderr(p), "TEST-secret"),
        "part of the bot token appears in tghost's output");
}

/* A "Vm...:  N kB" field of /proc/PID/status, or -1. */
static long proc_status_kib(const struct proc *p, const char *field) {
  char path[64], line[256], format[32];
  snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
  snprintf(format, sizeof format, "%s: %%ld kB", field);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, format, &kib) == 1) break;
  fclose(f);
  return kib;
}

long proc_peak_rss_kib(const struct proc *p) {
  return proc_status_kib(p, "VmHWM");
}

long proc_rss_kib(const struct proc *p) { return proc_status_kib(p, "VmRSS"); }

double proc_cpu_seconds(const struct proc *p) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)p->pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  const char *at = strrchr(line, ')');
  unsigned long utime = 0, stime = 0;
  /* After the name: state and 10 more fields, then utime and stime. */
  if (at) sscanf(at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                 &utime, &stime);
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

struct count_wait {
  const char *method;
  size_t want;
};

static bool have_calls(void *ud) {
  struct count_wait *w = ud;
  return fakeapi_count_method(harness_api(), w->method) >= w->want;
}

void wait_calls(const char *method, size_t n, int timeout_ms) {
  struct count_wait w = {method, n};
  CHECK(run_until(have_calls, &w, timeout_ms), "only %zu of %zu %s calls arrived",
        fakeapi_count_method(harness_api(), method), n, method);
}

bool api_sent_text(const char *text) {
  struct fakeapi *f = harness_api();
  for (size_t i = 0; i < fakeapi_call_count(f); i++) {
    char *t = fake_call_string(fakeapi_call(f, i), "text");
    bool hit = t && strcmp(t, text) == 0;
    free(t);
    if (hit) return true;
  }
  return false;
}

struct stderr_wait {
  struct proc *p;
  const char *needle;
};

static bool stderr_shows(void *ud) {
  struct stderr_wait *w = ud;
  return strstr(proc_stderr(w->p), w->needle) || proc_exited(w->p);
}

bool run_until_stderr(struct proc *p, const char *needle, int timeout_ms) {
  struct stderr_wait w = {p, needle};
  run_until(stderr_shows, &w, timeout_ms);
  return strstr(proc_stderr(p), needle) != NULL;
}

void wait_stderr(struct proc *p, const char *needle, int timeout_ms) {
  CHECK(run_until_stderr(p, needle, timeout_ms),
        "tghost's log does not show '%s'", needle);
}

size_t count_in(const char *text, const char *needle) {
  size_t n = 0, len = strlen(needle);
  for (const char *p = strstr(text, needle); p; p = strstr(p + len, needle))
    n++;
  return n;
}

void proc_stop_cleanly(struct proc *p) {
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, 20000), "tghost did not exit after SIGTERM");
  CHECK(proc_status(p) == 0, "exit status %d after SIGTERM", proc_status(p));
  proc_check_clean(p);
}

void proc_stop_within(struct proc *p, int ms) {
  uint64_t t0 = harness_now_ms();
  proc_kill(p, SIGTERM);
  CHECK(proc_wait(p, ms), "tghost did not exit within %d ms of SIGTERM", ms);
  CHECK(proc_status(p) == 0, "exit status %d after SIGTERM", proc_status(p));
  fprintf(stderr, "stopped %llu ms after SIGTERM\n",
          (unsigned long long)(harness_now_ms() - t0));
  proc_check_clean(p);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

bool run_until(bool (*pred)(void *ud), void *ud, int timeout_ms) {
  struct event_base *b = harness_base();
  struct event *tick = event_new(b, -1, EV_PERSIST, on_tick, NULL);
  struct timeval tv = {0, 5000};
  evtimer_add(tick, &tv);
  uint64_t deadline = harness_now_ms() + (uint64_t)timeout_ms;
  bool ok = false;
  for (;;) {
    if (pred && pred(ud)) {
      ok = true;
      break;
    }
    if (harness_now_ms() >= deadline) break;
    event_base_loop(b, EVLOOP_ONCE);
  }
  event_free(tick);
  return ok;
}

static bool never(void *ud) { return false; }

void run_for(int ms) { run_until(never, NULL, ms); }

void harness_dump_output(void) {
  for (int i = 0; i < nprocs; i++) {
    struct proc *p = procs[i];
    const char *o = proc_stdout(p), *e = proc_stderr(p);
    size_t ol = strlen(o), el = strlen(e);
    fprintf(stderr, "--- tghost #%d (pid %d, %s %d) stdout (last 3000 bytes):\n%s\n",
            i + 1, (int)p->pid, p->exited ? "exit" : "running", p->status,
            ol > 3000 ? o + ol - 3000 : o);
    fprintf(stderr, "--- stderr (last 6000 bytes):\n%s\n",
            el > 6000 ? e + el - 6000 : e);
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  remove(path);
  return 0;
}

void harness_cleanup(void) {
  for (int i = 0; i < nprocs; i++) proc_release(procs[i]);
  nprocs = 0;
  fakeapi_free(api);
  api = NULL;
  for (int i = 0; i < nwritten; i++) free(written[i]);
  /* Everything in it goes: the scripts written, and what tghost made there
   * (journals, databases, downloads). */
  if (tmpdir[0]) nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (child_event) event_free(child_event);
  if (base) event_base_free(base);
}

void harness_before_test(void) {
  signal(SIGPIPE, SIG_IGN);
  atexit(harness_cleanup);
}
