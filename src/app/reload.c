#include "app/reload.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "script/generation.h"
#include "script/luaconv.h"
#include "app/host.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/runner.h"
#include "script/luajobs.h"
#include "script/runtime.h"

#define QUIET_MS 100          /* a save is over when nothing moved this long */
#define MAX_WAIT_MS 1000      /* ... or this long after its first event */
#define LOAD_TIMEOUT_S 30.0   /* default bound on a reloaded top level */

/* What happens in a watched folder that may change a watched file. The
 * SELF events tell the folder itself went away. */
#define WATCH_MASK                                                       \
  (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_TO |    \
   IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct watched_dir {
  int wd;
  char *dir;                   /* canonical path */
};

struct watched_file {
  char *dir;                   /* canonical path of its folder */
  char *name;
};

struct reloader {
  struct host *h;
  struct script_env *env;      /* new generations' bindings see it */
  struct event *sighup;
  int ifd;                     /* inotify, or -1 */
  struct event *inotify_event;
  struct watched_dir *dirs;
  size_t ndirs;
  struct watched_file *files;
  size_t nfiles;

  struct event *debounce;
  uint64_t first_change_ms;    /* 0: no change waiting for the debounce */
  char *reason;                /* what asked for the next reload */
  bool started;
  bool pending;                /* asked while not started or while loading */
  bool pending_now;            /* ... by SIGHUP: no debounce */

  struct generation *loading;  /* our reference while its top level runs */
  struct event *load_timer;
  long load_timeout_ms;
};

static void arm(struct event *ev, long ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

/* --- which files, which folders ----------------------------------------- */

static void free_files(struct reloader *r) {
  for (size_t i = 0; i < r->nfiles; i++) {
    free(r->files[i].dir);
    free(r->files[i].name);
  }
  free(r->files);
  r->files = NULL;
  r->nfiles = 0;
}

static void add_file_entry(struct watched_file **files, size_t *n,
                           const char *dir, const char *name) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*files)[i].dir, dir) == 0 &&
        strcmp((*files)[i].name, name) == 0)
      return;
  *files = xrealloc(*files, (*n + 1) * sizeof **files);
  (*files)[*n].dir = xstrdup(dir);
  (*files)[*n].name = xstrdup(name);
  (*n)++;
}

/* Splits path into its canonical folder and its name. */
static void add_path(struct watched_file **files, size_t *n,
                     const char *path) {
  char *d = xstrdup(path), *b = xstrdup(path);
  char real[PATH_MAX];
  const char *dir = dirname(d);
  if (realpath(dir, real)) dir = real;
  add_file_entry(files, n, dir, basename(b));
  free(d);
  free(b);
  /* A symlinked script: its target's folder sees the edits. */
  char target[PATH_MAX];
  if (realpath(path, target) && strcmp(target, path) != 0) {
    d = xstrdup(target);
    b = xstrdup(target);
    add_file_entry(files, n, dirname(d), basename(b));
    free(d);
    free(b);
  }
}

static int find_wd(const struct reloader *r, int wd) {
  for (size_t i = 0; i < r->ndirs; i++)
    if (r->dirs[i].wd == wd) return (int)i;
  return -1;
}

static void drop_dir(struct reloader *r, size_t i) {
  free(r->dirs[i].dir);
  r->dirs[i] = r->dirs[--r->ndirs];
}

/* Watches the files of the current generation and of the one just tried
 * (a failed load may have required a module the current one does not use:
 * fixing it must reload). Watches of folders no longer needed go. */
static void watch_files(struct reloader *r, const struct generation *also) {
  struct watched_file *files = NULL;
  size_t nfiles = 0;
  const struct deps *sets[2] = {&gen_of_owner(r->h->current)->files,
                                also ? &also->files : NULL};
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; sets[s] && i < sets[s]->count; i++)
      add_path(&files, &nfiles, sets[s]->paths[i]);
  bool changed = nfiles != r->nfiles;
  for (size_t i = 0; !changed && i < nfiles; i++)
    changed = strcmp(files[i].dir, r->files[i].dir) != 0 ||
              strcmp(files[i].name, r->files[i].name) != 0;
  free_files(r);
  r->files = files;
  r->nfiles = nfiles;
  if (r->ifd < 0) return;

  /* Adding a watch that exists returns its descriptor again; a folder
   * that was replaced gets a new one. */
  struct watched_dir *dirs = NULL;
  size_t ndirs = 0;
  for (size_t i = 0; i < nfiles; i++) {
    bool have = false;
    for (size_t j = 0; j < ndirs && !have; j++)
      have = strcmp(dirs[j].dir, files[i].dir) == 0;
    if (have) continue;
    int wd = inotify_add_watch(r->ifd, files[i].dir, WATCH_MASK);
    if (wd < 0) {
      log_warn("hot reload: cannot watch %s (%s): changes there need SIGHUP",
               files[i].dir, strerror(errno));
      continue;
    }
    dirs = xrealloc(dirs, (ndirs + 1) * sizeof *dirs);
    dirs[ndirs].wd = wd;
    dirs[ndirs].dir = xstrdup(files[i].dir);
    ndirs++;
  }
  for (size_t i = 0; i < r->ndirs; i++) {
    bool kept = false;
    for (size_t j = 0; j < ndirs && !kept; j++) kept = dirs[j].wd == r->dirs[i].wd;
    if (!kept) inotify_rm_watch(r->ifd, r->dirs[i].wd);
    free(r->dirs[i].dir);
  }
  free(r->dirs);
  r->dirs = dirs;
  r->ndirs = ndirs;

  if (changed && log_enabled(LOG_INFO)) {
    struct buf list = BUF_INIT;
    for (size_t i = 0; i < nfiles; i++)
      buf_printf(&list, "%s%s/%s", i ? ", " : "", files[i].dir,
                 files[i].name);
    log_info("hot reload: watching %s", list.data ? list.data : "nothing");
    buf_free(&list);
  }
}

/* --- requests and the debounce ------------------------------------------ */

static void begin_reload(struct reloader *r);

static void set_reason(struct reloader *r, const char *why) {
  free(r->reason);
  r->reason = xstrdup(why);
}

/* A reason to reload: at once for SIGHUP, after the debounce for a file. */
static void request(struct reloader *r, const char *why, bool now) {
  if (!r->started || r->loading) {
    if (!r->pending) set_reason(r, why);
    r->pending = true;
    r->pending_now = r->pending_now || now;
    return;
  }
  uint64_t t = clock_now_ms();
  if (r->first_change_ms == 0) {
    r->first_change_ms = t;
    set_reason(r, why);
  }
  long wait = now ? 0 : QUIET_MS;
  long left = MAX_WAIT_MS - (long)(t - r->first_change_ms);
  if (wait > left) wait = left > 0 ? left : 0;
  arm(r->debounce, wait);
}

/* A request that came while none could start. */
static void replay_pending(struct reloader *r) {
  if (!r->pending) return;
  r->pending = false;
  bool now = r->pending_now;
  r->pending_now = false;
  char *why = r->reason;
  r->reason = NULL;
  request(r, why ? why : "requested", now);
  free(why);
}

static void on_debounce(evutil_socket_t fd, short what, void *arg) {
  struct reloader *r = arg;
  r->first_change_ms = 0;
  begin_reload(r);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg) {
  request(arg, "SIGHUP", true);
}

static bool is_watched(const struct reloader *r, const char *dir,
                       const char *name) {
  for (size_t i = 0; i < r->nfiles; i++)
    if (strcmp(r->files[i].dir, dir) == 0 &&
        strcmp(r->files[i].name, name) == 0)
      return true;
  return false;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg) {
  struct reloader *r = arg;
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(r->ifd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN)
        log_warn("hot reload: reading inotify events: %s", strerror(errno));
      return;
    }
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        request(r, "file events were lost (inotify queue overflow)", false);
        continue;
      }
      int i = find_wd(r, ev->wd);
      if (i < 0) continue;
      if (ev->mask & IN_IGNORED) {
        /* The folder is gone; the next reload watches it again. */
        drop_dir(r, (size_t)i);
        continue;
      }
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        char why[PATH_MAX + 32];
        snprintf(why, sizeof why, "%s was moved or deleted", r->dirs[i].dir);
        request(r, why, false);
        continue;
      }
      if (ev->len == 0 || !is_watched(r, r->dirs[i].dir, ev->name)) continue;
      char why[PATH_MAX + 32];
      snprintf(why, sizeof why, "%s/%s changed", r->dirs[i].dir, ev->name);
      request(r, why, false);
    }
  }
}

/* --- loading a generation ----------------------------------------------- */

/* The innermost frame of the bot's own code in a traceback ("bot.lua:7"),
 * or false: errors raised inside the runtime on the script's behalf (an
 * invalid filter query, say) then still name the script's line. */
static bool script_frame(const char *traceback, char *out, size_t n) {
  for (const char *p = strchr(traceback, '\n'); p; p = strchr(p + 1, '\n')) {
    const char *src = p + 1;
    while (*src == '\t' || *src == ' ') src++;
    if (*src == '[' || *src == '(') continue;   /* [C], [tghost]/..., (...) */
    const char *eol = strchr(src, '\n');
    if (!eol) eol = src + strlen(src);
    /* "file:line:", the first colon followed by digits then a colon. */
    for (const char *c = src; c < eol; c++) {
      if (*c != ':' || c[1] < '0' || c[1] > '9') continue;
      const char *end = c + 1;
      while (end < eol && *end >= '0' && *end <= '9') end++;
      if (end == eol || *end != ':') continue;
      snprintf(out, n, "%.*s", (int)(end - src), src);
      return true;
    }
  }
  return false;
}

/* The error on one line, with the script's file:line; the traceback at
 * debug level. */
static void log_rejected(struct reloader *r, struct generation *g,
                         const char *error) {
  struct host *h = r->h;
  metric_inc(METRIC_RELOADS, "failed", NULL);
  struct log_fields f = {g->owner.id, -1};
  const char *tb = strstr(error, "\nstack traceback:");
  struct buf msg = BUF_INIT;
  for (const char *p = error; *p && p != tb; p++) {
    if (*p == '\n') {
      buf_append_char(&msg, ' ');
      while (p[1] == '\t') p++;
    } else {
      buf_append_char(&msg, *p);
    }
  }
  char where[160], with_colon[164];
  if (tb && script_frame(tb + 1, where, sizeof where)) {
    snprintf(with_colon, sizeof with_colon, "%s:", where);
    if (!strstr(msg.data ? msg.data : "", with_colon))
      buf_printf(&msg, " (at %s)", where);
  }
  log_msg(LOG_ERROR, &f, "generation %d rejected, generation %d keeps "
          "serving: %s", g->owner.id, h->current->id, msg.data ? msg.data : "");
  if (tb) log_msg(LOG_DEBUG, &f, "%s", tb + 1);
  buf_free(&msg);
}

static void go_live(struct reloader *r, struct generation *g) {
  struct host *h = r->h;
  /* Our reference becomes the host's, and the host's to old ours. */
  struct generation *old = gen_of_owner(host_swap_generation(h, &g->owner));
  int id = g->owner.id, old_id = old->owner.id;
  struct log_fields f = {id, -1};
  metric_inc(METRIC_RELOADS, "ok", NULL);
  /* Every other reference to old is a job that has not ended. */
  if (old->refs > 1)
    log_msg(LOG_INFO, &f, "generation %d loaded: new updates run on it; "
            "generation %d retires when its %zu job(s) in flight end",
            id, old_id, old->refs - 1);
  else
    log_msg(LOG_INFO, &f, "generation %d loaded: new updates run on it; "
            "generation %d has nothing in flight", id, old_id);
  host_reconfigure(h, g->run_opts, id);
  luajobs_go_live(g);
  /* The new top level started its own background tasks. */
  sched_cancel_kind(&h->sched, &old->owner, JOB_BACKGROUND,
                    "cancelled: a reload replaced its generation");
  old->retiring = true;
  gen_unref(old);
  /* Durable dialogs go on in the new code; the others that wait keep
   * their generation (their code) alive. */
  luaconv_move_durable(r->env->conv, g);
  luaconv_log_pinned(r->env->conv, &g->owner);
}

static void on_loaded(struct generation *g, const char *error, void *ud) {
  struct reloader *r = ud;
  struct host *h = r->h;
  evtimer_del(r->load_timer);
  r->loading = NULL;
  if (h->exiting || !h->runner || !runner_is_running(h->runner)) {
    struct log_fields f = {g->owner.id, -1};
    log_msg(LOG_INFO, &f, "generation %d discarded: tghost is stopping",
            g->owner.id);
    sched_cancel_kind(&h->sched, &g->owner, JOB_BACKGROUND,
                      "cancelled: tghost is stopping");
    gen_unref(g);
    return;
  }
  if (!error && !g->run_called)
    error = "the script no longer calls run(bot) or bot.start()";
  if (error) {
    log_rejected(r, g, error);
    watch_files(r, g);
    sched_cancel_kind(&h->sched, &g->owner, JOB_BACKGROUND,
                      "cancelled: its generation was rejected");
    gen_unref(g);
  } else {
    go_live(r, g);
    watch_files(r, NULL);
  }
  replay_pending(r);
}

static void on_load_timeout(evutil_socket_t fd, short what, void *arg) {
  struct reloader *r = arg;
  struct generation *g = r->loading;
  if (!g || !g->load_job) return;
  /* Where the top level waits, before its coroutine is closed. */
  char where[160] = "";
  lua_State *co = job_thread(g->load_job);
  if (co) {
    lua_State *L = g->owner.L;
    luaL_traceback(L, co, NULL, 0);
    char at[150];
    if (script_frame(lua_tostring(L, -1), at, sizeof at))
      snprintf(where, sizeof where, "%s: ", at);
    lua_pop(L, 1);
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%sthe script's top level did not finish within "
           "%.1f s (TGHOST_RELOAD_TIMEOUT)", where,
           r->load_timeout_ms / 1000.0);
  /* Ends the load job, whose end calls on_loaded with msg. */
  job_cancel(g->load_job, msg);
}

static void begin_reload(struct reloader *r) {
  struct host *h = r->h;
  if (h->exiting || !h->runner || !runner_is_running(h->runner)) return;
  /* Saved by moving the old file away first: its replacement's own
   * event brings us back. */
  if (access(h->cfg->script, F_OK) != 0 && errno == ENOENT) {
    log_warn("%s is gone; generation %d keeps serving until it is back",
             h->cfg->script, h->current->id);
    return;
  }
  log_info("reloading %s (%s)", h->cfg->script,
           r->reason ? r->reason : "requested");
  struct buf err = BUF_INIT;
  struct generation *g = runtime_new_generation(r->env, h->cfg->script, &err);
  if (!g) {
    log_error("reload failed, generation %d keeps serving: %s",
              h->current->id, err.data);
    metric_inc(METRIC_RELOADS, "failed", NULL);
    buf_free(&err);
    return;
  }
  r->loading = g;
  if (runtime_load_script(g, on_loaded, r, &err) != 0) {
    /* Did not compile: nothing ran. */
    r->loading = NULL;
    log_rejected(r, g, err.data);
    watch_files(r, g);
    gen_unref(g);
    buf_free(&err);
    return;
  }
  arm(r->load_timer, r->load_timeout_ms);
}

/* --- lifecycle ---------------------------------------------------------- */

static long load_timeout_ms(void) {
  const char *s = getenv("TGHOST_RELOAD_TIMEOUT");
  if (s && *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end == '\0' && v > 0 && v <= 86400 && !isnan(v))
      return (long)(v * 1000);
    log_warn("TGHOST_RELOAD_TIMEOUT=%s is not a number of seconds; using "
             "%.0f", s, LOAD_TIMEOUT_S);
  }
  return (long)(LOAD_TIMEOUT_S * 1000);
}

struct reloader *reload_new(struct host *h, struct script_env *env) {
  struct reloader *r = xcalloc(1, sizeof *r);
  r->h = h;
  r->env = env;
  r->ifd = -1;
  r->debounce = evtimer_new(h->base, on_debounce, r);
  r->load_timer = evtimer_new(h->base, on_load_timeout, r);
  r->load_timeout_ms = load_timeout_ms();
  r->sighup = evsignal_new(h->base, SIGHUP, on_sighup, r);
  evsignal_add(r->sighup, NULL);
  if (h->cfg->watch) {
    r->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->ifd < 0) {
      log_warn("hot reload: cannot watch files (%s); send SIGHUP to reload",
               strerror(errno));
    } else {
      r->inotify_event =
          event_new(h->base, r->ifd, EV_READ | EV_PERSIST, on_inotify, r);
      event_add(r->inotify_event, NULL);
    }
  }
  return r;
}

void reload_start(struct reloader *r) {
  if (r->started) return;
  r->started = true;
  if (r->ifd >= 0) watch_files(r, NULL);
  else log_info("hot reload: not watching files; SIGHUP reloads");
  replay_pending(r);
}

void reload_free(struct reloader *r) {
  if (!r) return;
  if (r->loading) gen_unref(r->loading);
  event_free(r->debounce);
  event_free(r->load_timer);
  event_free(r->sighup);
  if (r->inotify_event) event_free(r->inotify_event);
  if (r->ifd >= 0) close(r->ifd);
  for (size_t i = 0; i < r->ndirs; i++) free(r->dirs[i].dir);
  free(r->dirs);
  free_files(r);
  free(r->reason);
  free(r);
}
