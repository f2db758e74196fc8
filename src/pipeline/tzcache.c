#include "pipeline/tzcache.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"

struct tz_entry {
  char *name;
  struct tz_zone *zone;
  struct tz_entry *next;
};

struct tz_load {
  char *name;
  tzcache_fn done;
  void *ud;
  struct tz_zone *zone;     /* the worker's result */
  char *error;
  bool ready;               /* for loads answered from the cache */
  struct tz_load *next;
};

struct tzcache {
  struct event_base *base;
  struct tz_entry *zones;
  char *tz_env;             /* $TZ when the cache was made, or NULL */
  /* Loads answered from the cache, completed from the loop. */
  struct tz_load *ready_head, *ready_tail;
  struct event *ready_event;
  /* The worker. */
  pthread_mutex_t mu;
  pthread_cond_t wake;
  struct tz_load *queue_head, *queue_tail;   /* loop -> worker */
  struct tz_load *done_head, *done_tail;     /* worker -> loop */
  bool stopping, started;
  pthread_t thread;
  int efd;
  struct event *done_event;
};

static void push(struct tz_load **head, struct tz_load **tail,
                 struct tz_load *l) {
  l->next = NULL;
  if (*tail) (*tail)->next = l;
  else *head = l;
  *tail = l;
}

static void load_free(struct tz_load *l) {
  free(l->name);
  free(l->error);
  tz_free(l->zone);
  free(l);
}

const char *tzcache_display(const char *name) {
  return name && *name ? name : "the system's zone";
}

/* --- the worker --------------------------------------------------------- */

/* The system's zone: $TZ, /etc/localtime, UTC. */
static struct tz_zone *read_default(const char *tz_env, struct buf *err) {
  if (tz_env && *tz_env) {
    const char *tz = tz_env[0] == ':' ? tz_env + 1 : tz_env;
    if (tz[0] == '/') {
      const char *slash = strrchr(tz, '/');
      char *dir = xstrndup(tz, (size_t)(slash - tz));
      struct tz_zone *z = tz_read_file(*dir ? dir : "/", slash + 1, err);
      free(dir);
      return z;
    }
    /* A zone name, else a POSIX TZ string ("EST5EDT" can be either). */
    struct buf file_err = BUF_INIT, posix_err = BUF_INIT;
    struct tz_zone *z = tz_valid_name(tz) ? tz_read_file(NULL, tz, &file_err)
                                          : NULL;
    if (!z) z = tz_from_posix(tz, &posix_err);
    if (!z) {
      buf_printf(err, "TZ=%s: %s", tz_env,
                 file_err.data ? file_err.data : posix_err.data);
    }
    buf_free(&file_err);
    buf_free(&posix_err);
    return z;
  }
  struct buf ignored = BUF_INIT;
  struct tz_zone *z = tz_read_file("/etc", "localtime", &ignored);
  buf_free(&ignored);
  return z;   /* NULL: UTC */
}

static void *worker(void *arg) {
  struct tzcache *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->queue_head && !c->stopping) pthread_cond_wait(&c->wake, &c->mu);
    if (c->stopping) break;
    struct tz_load *l = c->queue_head;
    c->queue_head = l->next;
    if (!c->queue_head) c->queue_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    struct buf err = BUF_INIT;
    if (l->name[0] == '\0') {
      l->zone = read_default(c->tz_env, &err);
      if (!l->zone && !err.data) {
        /* No zone configured anywhere: UTC (tz_utc is not freeable). */
        struct buf ignored = BUF_INIT;
        l->zone = tz_from_posix("UTC0", &ignored);
        buf_free(&ignored);
      }
    } else {
      l->zone = tz_read_file(NULL, l->name, &err);
    }
    if (!l->zone) l->error = buf_steal(&err, NULL);
    buf_free(&err);
    pthread_mutex_lock(&c->mu);
    push(&c->done_head, &c->done_tail, l);
    uint64_t one = 1;
    ssize_t n = write(c->efd, &one, sizeof one);
    (void)n;
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* --- the loop side ------------------------------------------------------ */

static struct tz_entry *find(struct tzcache *c, const char *name) {
  for (struct tz_entry *e = c->zones; e; e = e->next)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

const struct tz_zone *tzcache_get(struct tzcache *c, const char *name) {
  if (!name) name = "";
  if (strcmp(name, "UTC") == 0) return tz_utc();
  struct tz_entry *e = find(c, name);
  return e ? e->zone : NULL;
}

static void finish_load(struct tzcache *c, struct tz_load *l) {
  const struct tz_zone *zone = NULL;
  if (l->zone) {
    struct tz_entry *e = find(c, l->name);
    if (!e) {
      e = xcalloc(1, sizeof *e);
      e->name = xstrdup(l->name);
      e->zone = l->zone;
      e->next = c->zones;
      c->zones = e;
    } else {
      tz_free(l->zone);   /* loaded twice at once: keep the first */
    }
    l->zone = NULL;
    zone = e->zone;
  } else if (l->ready) {
    zone = tzcache_get(c, l->name);
  }
  l->done(l->ud, zone, zone ? NULL : l->error ? l->error : "no such zone");
  load_free(l);
}

static void on_done(evutil_socket_t fd, short what, void *arg) {
  struct tzcache *c = arg;
  uint64_t n;
  ssize_t r = read(c->efd, &n, sizeof n);
  (void)r;
  pthread_mutex_lock(&c->mu);
  struct tz_load *l = c->done_head;
  c->done_head = c->done_tail = NULL;
  pthread_mutex_unlock(&c->mu);
  while (l) {
    struct tz_load *next = l->next;
    finish_load(c, l);
    l = next;
  }
}

static void on_ready(evutil_socket_t fd, short what, void *arg) {
  struct tzcache *c = arg;
  struct tz_load *l = c->ready_head;
  c->ready_head = c->ready_tail = NULL;
  while (l) {
    struct tz_load *next = l->next;
    finish_load(c, l);
    l = next;
  }
}

struct tzcache *tzcache_new(struct event_base *base) {
  struct tzcache *c = xcalloc(1, sizeof *c);
  c->base = base;
  const char *tz = getenv("TZ");
  c->tz_env = tz ? xstrdup(tz) : NULL;
  c->efd = -1;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->wake, NULL);
  c->ready_event = event_new(base, -1, 0, on_ready, c);
  return c;
}

static bool start_worker(struct tzcache *c) {
  c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (c->efd < 0) return false;
  c->done_event = event_new(c->base, c->efd, EV_READ | EV_PERSIST, on_done, c);
  event_add(c->done_event, NULL);
  /* Signals are the loop's business, not the worker's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&c->thread, NULL, worker, c);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return false;
  c->started = true;
  return true;
}

void tzcache_load(struct tzcache *c, const char *name, tzcache_fn done,
                  void *ud) {
  struct tz_load *l = xcalloc(1, sizeof *l);
  l->name = xstrdup(name ? name : "");
  l->done = done;
  l->ud = ud;
  if (tzcache_get(c, l->name)) {
    l->ready = true;
    push(&c->ready_head, &c->ready_tail, l);
    event_active(c->ready_event, 0, 0);
    return;
  }
  if (!c->started && !start_worker(c)) {
    l->error = xstrdup("cannot start a thread to read time zones");
    push(&c->ready_head, &c->ready_tail, l);
    event_active(c->ready_event, 0, 0);
    return;
  }
  pthread_mutex_lock(&c->mu);
  push(&c->queue_head, &c->queue_tail, l);
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->mu);
}

static void free_list(struct tz_load *l) {
  while (l) {
    struct tz_load *next = l->next;
    load_free(l);
    l = next;
  }
}

void tzcache_free(struct tzcache *c) {
  if (!c) return;
  if (c->started) {
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
  }
  free_list(c->queue_head);
  free_list(c->done_head);
  free_list(c->ready_head);
  if (c->done_event) event_free(c->done_event);
  if (c->ready_event) event_free(c->ready_event);
  if (c->efd >= 0) close(c->efd);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->wake);
  struct tz_entry *e = c->zones;
  while (e) {
    struct tz_entry *next = e->next;
    free(e->name);
    tz_free(e->zone);
    free(e);
    e = next;
  }
  free(c->tz_env);
  free(c);
}
