#include "store/sqlworker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/buf.h"

#define BUSY_TIMEOUT_MS 5000

struct sqlworker {
  const struct sqlworker_ops *ops;
  void *owner;
  /* Loop side. */
  struct event *results_event;
  int efd;
  /* Shared, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t wake;
  void *queue, *queue_tail;            /* loop -> worker */
  void *done, *done_tail;              /* worker -> loop */
  bool stopping;
  bool worker_waits;                   /* in its cond wait: signal it */
  pthread_t thread;
};

static void append(struct sqlworker *w, void **head, void **tail, void *first,
                   void *last) {
  if (*tail) w->ops->set_next(*tail, first);
  else *head = first;
  *tail = last;
}

bool sqlworker_open_db(const char *path, sqlite3 **db, char **why) {
  int rc = sqlite3_open_v2(path, db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    *why = xstrdup(*db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
    goto bad;
  }
  sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
  /* WAL: readers and the writer do not block each other, and a commit is
   * an append to the log. NORMAL: the log is synced at checkpoints, not at
   * every commit; the database stays consistent through any crash, and a
   * committed write survives the process dying (the last commits can be
   * lost only if the machine loses power). FULL would add an fsync per
   * batch, whose kernel work measurably delays the loop's thread on a
   * small machine. */
  char *msg = NULL;
  if (sqlite3_exec(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                   NULL, NULL, &msg) != SQLITE_OK) {
    *why = xstrdup(msg ? msg : sqlite3_errmsg(*db));
    sqlite3_free(msg);
    goto bad;
  }
  return true;
bad:
  if (*db) sqlite3_close(*db);
  *db = NULL;
  return false;
}

/* --- the worker ---------------------------------------------------------- */

static void *worker_main(void *arg) {
  struct sqlworker *w = arg;
  const struct sqlworker_ops *ops = w->ops;
  if (ops->started) ops->started(w->owner);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->queue && !w->stopping) {
      w->worker_waits = true;
      pthread_cond_wait(&w->wake, &w->mu);
      w->worker_waits = false;
    }
    if (!w->queue) break;   /* stopping, and nothing is left */
    void *batch = w->queue, *last = batch;
    for (int n = 1; n < SQLWORKER_BATCH_MAX && ops->next(last); n++)
      last = ops->next(last);
    w->queue = ops->next(last);
    if (!w->queue) w->queue_tail = NULL;
    ops->set_next(last, NULL);
    pthread_mutex_unlock(&w->mu);

    ops->run_batch(w->owner, batch);

    pthread_mutex_lock(&w->mu);
    /* A list that is not empty has a wake-up pending already. */
    bool notify = !w->done;
    append(w, &w->done, &w->done_tail, batch, last);
    uint64_t one = 1;
    if (notify && write(w->efd, &one, sizeof one) < 0 && errno != EAGAIN) {
      /* The counter cannot overflow in practice; nothing else can fail. */
    }
  }
  pthread_mutex_unlock(&w->mu);
  ops->stopped(w->owner);
  return NULL;
}

/* --- the loop side ------------------------------------------------------- */

static void on_results(evutil_socket_t fd, short what, void *arg) {
  struct sqlworker *w = arg;
  uint64_t n;
  if (read(w->efd, &n, sizeof n) < 0 && errno != EAGAIN) return;
  pthread_mutex_lock(&w->mu);
  void *r = w->done;
  w->done = w->done_tail = NULL;
  pthread_mutex_unlock(&w->mu);
  while (r) {
    void *next = w->ops->next(r);
    w->ops->set_next(r, NULL);
    w->ops->complete(r);
    r = next;
  }
}

struct sqlworker *sqlworker_start(struct event_base *base,
                                  const struct sqlworker_ops *ops,
                                  void *owner, char **err) {
  struct sqlworker *w = xcalloc(1, sizeof *w);
  w->ops = ops;
  w->owner = owner;
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->efd < 0) {
    *err = xstrdup(strerror(errno));
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->wake, NULL);
  /* Signals belong to the loop's thread: the worker blocks them all. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&w->thread, NULL, worker_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    *err = xstrdup(strerror(rc));
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    close(w->efd);
    free(w);
    return NULL;
  }
  w->results_event = event_new(base, w->efd, EV_READ | EV_PERSIST,
                               on_results, w);
  event_add(w->results_event, NULL);
  return w;
}

void sqlworker_submit(struct sqlworker *w, void *req) {
  w->ops->set_next(req, NULL);
  pthread_mutex_lock(&w->mu);
  append(w, &w->queue, &w->queue_tail, req, req);
  if (w->worker_waits) pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
}

void sqlworker_stop(struct sqlworker *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  event_free(w->results_event);
  close(w->efd);
  void *r = w->done;
  while (r) {
    void *next = w->ops->next(r);
    w->ops->discard(r);
    r = next;
  }
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->wake);
  free(w);
}
