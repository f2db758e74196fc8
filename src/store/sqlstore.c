#include "store/sqlstore.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"

#define BATCH_MAX 512
#define BUSY_TIMEOUT_MS 5000
#define PURGE_EVERY_WRITES 1000
#define PURGE_EVERY_MS 60000

/* A table's prepared statements (worker only). */
struct table {
  struct table *next;
  char *name;
  sqlite3_stmt *get, *set, *del, *purge;
  long writes_since_purge;
  int64_t last_purge_ms;
};

struct sqlstore {
  char *path;
  /* Loop side. */
  struct event *results_event;
  int efd;
  /* Shared, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t wake;
  struct kvreq *queue, *queue_tail;    /* loop -> worker */
  struct kvreq *done, *done_tail;      /* worker -> loop */
  bool stopping;
  bool worker_waits;                   /* in its cond wait: signal it */
  pthread_t thread;
  /* Worker only. */
  sqlite3 *db;
  struct table *tables;
};

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sqlstore_valid_table(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 64 || strncasecmp(name, "sqlite_", 7) == 0)
    return false;
  if (!isalpha((unsigned char)name[0]) && name[0] != '_') return false;
  for (size_t i = 1; i < len; i++)
    if (!isalnum((unsigned char)name[i]) && name[i] != '_') return false;
  return true;
}

static void append(struct kvreq **head, struct kvreq **tail,
                   struct kvreq *first, struct kvreq *last) {
  if (*tail) (*tail)->next = first;
  else *head = first;
  *tail = last;
}

/* --- the worker ---------------------------------------------------------- */

static void fail_request(struct sqlstore *s, struct kvreq *r, const char *why) {
  if (r->ns[0])
    kvreq_set_error(r, "sqlite storage \"%s\" (table %s): %s", s->path, r->ns,
                    why);
  else
    kvreq_set_error(r, "sqlite storage \"%s\": %s", s->path, why);
}

static void close_tables(struct sqlstore *s) {
  struct table *t = s->tables;
  while (t) {
    struct table *next = t->next;
    sqlite3_finalize(t->get);
    sqlite3_finalize(t->set);
    sqlite3_finalize(t->del);
    sqlite3_finalize(t->purge);
    free(t->name);
    free(t);
    t = next;
  }
  s->tables = NULL;
}

static void close_db(struct sqlstore *s) {
  close_tables(s);
  if (s->db) sqlite3_close(s->db);
  s->db = NULL;
}

/* Opens the database; on failure *why is SQLite's reason (malloc'd). */
static bool open_db(struct sqlstore *s, char **why) {
  int rc = sqlite3_open_v2(s->path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    *why = xstrdup(s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    close_db(s);
    return false;
  }
  sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
  /* WAL: readers and the writer do not block each other, and a commit is
   * an append to the log. NORMAL: the log is synced at checkpoints, not at
   * every commit; the database stays consistent through any crash, and a
   * committed write survives the process dying (the last commits can be
   * lost only if the machine loses power). FULL would add an fsync per
   * batch, whose kernel work measurably delays the loop's thread on a
   * small machine. */
  char *msg = NULL;
  if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                   NULL, NULL, &msg) != SQLITE_OK) {
    *why = xstrdup(msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    close_db(s);
    return false;
  }
  return true;
}

static sqlite3_stmt *prepare(struct sqlstore *s, const char *fmt,
                             const char *table) {
  struct buf sql = BUF_INIT;
  buf_printf(&sql, fmt, table);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(s->db, sql.data, (int)sql.len,
                         SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    st = NULL;
  buf_free(&sql);
  return st;
}

/* The table's statements, creating the table on first use; NULL with *why
 * set (a static string from SQLite) on failure. */
static struct table *table_for(struct sqlstore *s, const char *name,
                               const char **why) {
  for (struct table *t = s->tables; t; t = t->next)
    if (strcmp(t->name, name) == 0) return t;
  struct buf sql = BUF_INIT;
  buf_printf(&sql,
             "CREATE TABLE IF NOT EXISTS \"%s\" (key TEXT PRIMARY KEY NOT "
             "NULL, value TEXT NOT NULL, expires INTEGER);"
             "CREATE INDEX IF NOT EXISTS \"%s_expires\" ON \"%s\"(expires) "
             "WHERE expires IS NOT NULL",
             name, name, name);
  int rc = sqlite3_exec(s->db, sql.data, NULL, NULL, NULL);
  buf_free(&sql);
  if (rc != SQLITE_OK) {
    *why = sqlite3_errmsg(s->db);
    return NULL;
  }
  struct table *t = xcalloc(1, sizeof *t);
  t->name = xstrdup(name);
  t->get = prepare(s, "SELECT value, expires FROM \"%s\" WHERE key = ?1", name);
  t->set = prepare(s, "INSERT OR REPLACE INTO \"%s\"(key, value, expires) "
                      "VALUES (?1, ?2, ?3)", name);
  t->del = prepare(s, "DELETE FROM \"%s\" WHERE key = ?1", name);
  t->purge = prepare(s, "DELETE FROM \"%s\" WHERE expires IS NOT NULL AND "
                        "expires <= ?1", name);
  t->last_purge_ms = wall_ms();
  if (!t->get || !t->set || !t->del || !t->purge) {
    *why = sqlite3_errmsg(s->db);
    sqlite3_finalize(t->get);
    sqlite3_finalize(t->set);
    sqlite3_finalize(t->del);
    sqlite3_finalize(t->purge);
    free(t->name);
    free(t);
    return NULL;
  }
  t->next = s->tables;
  s->tables = t;
  return t;
}

static void run_request(struct sqlstore *s, struct kvreq *r, int64_t now) {
  const char *why = NULL;
  struct table *t = table_for(s, r->ns, &why);
  if (!t) {
    fail_request(s, r, why);
    return;
  }
  int rc;
  switch (r->op) {
    case KV_GET: {
      sqlite3_bind_text(t->get, 1, r->key, (int)r->key_len, SQLITE_STATIC);
      rc = sqlite3_step(t->get);
      if (rc == SQLITE_ROW) {
        bool expired = sqlite3_column_type(t->get, 1) != SQLITE_NULL &&
                       sqlite3_column_int64(t->get, 1) <= now;
        if (!expired) {
          const void *v = sqlite3_column_text(t->get, 0);
          int n = sqlite3_column_bytes(t->get, 0);
          r->value = xmalloc((size_t)n + 1);
          memcpy(r->value, v ? v : "", (size_t)n);
          r->value[n] = '\0';
          r->value_len = (size_t)n;
        }
      } else if (rc != SQLITE_DONE) {
        fail_request(s, r, sqlite3_errmsg(s->db));
      }
      sqlite3_reset(t->get);
      sqlite3_clear_bindings(t->get);
      return;
    }
    case KV_SET:
      sqlite3_bind_text(t->set, 1, r->key, (int)r->key_len, SQLITE_STATIC);
      sqlite3_bind_text(t->set, 2, r->value, (int)r->value_len, SQLITE_STATIC);
      if (r->ttl_ms > 0) sqlite3_bind_int64(t->set, 3, now + r->ttl_ms);
      else sqlite3_bind_null(t->set, 3);
      rc = sqlite3_step(t->set);
      if (rc != SQLITE_DONE) fail_request(s, r, sqlite3_errmsg(s->db));
      sqlite3_reset(t->set);
      sqlite3_clear_bindings(t->set);
      t->writes_since_purge++;
      return;
    case KV_DELETE:
      sqlite3_bind_text(t->del, 1, r->key, (int)r->key_len, SQLITE_STATIC);
      rc = sqlite3_step(t->del);
      if (rc != SQLITE_DONE) fail_request(s, r, sqlite3_errmsg(s->db));
      sqlite3_reset(t->del);
      sqlite3_clear_bindings(t->del);
      t->writes_since_purge++;
      return;
  }
}

static void purge_expired(struct sqlstore *s, int64_t now) {
  for (struct table *t = s->tables; t; t = t->next) {
    if (t->writes_since_purge < PURGE_EVERY_WRITES &&
        now - t->last_purge_ms < PURGE_EVERY_MS)
      continue;
    sqlite3_bind_int64(t->purge, 1, now);
    sqlite3_step(t->purge);   /* best effort: expired rows read as absent */
    sqlite3_reset(t->purge);
    t->writes_since_purge = 0;
    t->last_purge_ms = now;
  }
}

/* Runs a batch: the requests that queued up while the worker was busy.
 * Its writes share one transaction, so a burst of writes costs one
 * commit; results are handed back after the commit, so a write is
 * reported done once committed and a read never reports data that could
 * still be rolled back. */
static void run_batch(struct sqlstore *s, struct kvreq *batch) {
  if (!s->db) {
    char *why = NULL;
    if (!open_db(s, &why)) {
      for (struct kvreq *r = batch; r; r = r->next) fail_request(s, r, why);
      free(why);
      return;
    }
  }
  int writes = 0;
  for (struct kvreq *r = batch; r; r = r->next)
    if (r->op != KV_GET) writes++;
  int64_t now = wall_ms();
  /* If BEGIN fails, the requests run in autocommit: slower, still right. */
  bool txn = writes > 1 &&
             sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
  for (struct kvreq *r = batch; r; r = r->next) run_request(s, r, now);
  if (txn && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    char *why = xstrdup(sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (struct kvreq *r = batch; r; r = r->next)
      if (r->op != KV_GET && !r->error) fail_request(s, r, why);
    free(why);
  }
  if (writes) purge_expired(s, now);
}

static void *worker_main(void *arg) {
  struct sqlstore *s = arg;
  char *why = NULL;
  if (!open_db(s, &why)) free(why);   /* reported by the first request */
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->queue && !s->stopping) {
      s->worker_waits = true;
      pthread_cond_wait(&s->wake, &s->mu);
      s->worker_waits = false;
    }
    if (!s->queue) break;   /* stopping, and nothing is left */
    struct kvreq *batch = s->queue, *last = batch;
    for (int n = 1; n < BATCH_MAX && last->next; n++) last = last->next;
    s->queue = last->next;
    if (!s->queue) s->queue_tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&s->mu);

    run_batch(s, batch);

    pthread_mutex_lock(&s->mu);
    /* A list that is not empty has a wake-up pending already. */
    bool notify = !s->done;
    append(&s->done, &s->done_tail, batch, last);
    uint64_t one = 1;
    if (notify && write(s->efd, &one, sizeof one) < 0 && errno != EAGAIN) {
      /* The counter cannot overflow in practice; nothing else can fail. */
    }
  }
  pthread_mutex_unlock(&s->mu);
  close_db(s);
  return NULL;
}

/* --- the loop side ------------------------------------------------------- */

static void on_results(evutil_socket_t fd, short what, void *arg) {
  struct sqlstore *s = arg;
  uint64_t n;
  if (read(s->efd, &n, sizeof n) < 0 && errno != EAGAIN) return;
  pthread_mutex_lock(&s->mu);
  struct kvreq *r = s->done;
  s->done = s->done_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  while (r) {
    struct kvreq *next = r->next;
    r->next = NULL;
    kvreq_complete(r);
    r = next;
  }
}

struct sqlstore *sqlstore_new(struct event_base *base, const char *path,
                              char **err) {
  struct sqlstore *s = xcalloc(1, sizeof *s);
  s->path = xstrdup(path);
  s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->efd < 0) {
    *err = xstrdup(strerror(errno));
    free(s->path);
    free(s);
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->wake, NULL);
  /* Signals belong to the loop's thread: the worker blocks them all. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&s->thread, NULL, worker_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    *err = xstrdup(strerror(rc));
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    close(s->efd);
    free(s->path);
    free(s);
    return NULL;
  }
  s->results_event = event_new(base, s->efd, EV_READ | EV_PERSIST,
                               on_results, s);
  event_add(s->results_event, NULL);
  return s;
}

void sqlstore_submit(struct sqlstore *s, struct kvreq *req) {
  req->next = NULL;
  pthread_mutex_lock(&s->mu);
  append(&s->queue, &s->queue_tail, req, req);
  if (s->worker_waits) pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
}

void sqlstore_free(struct sqlstore *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  event_free(s->results_event);
  close(s->efd);
  struct kvreq *r = s->done;
  while (r) {
    struct kvreq *next = r->next;
    kvreq_free(r);
    r = next;
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->wake);
  free(s->path);
  free(s);
}
