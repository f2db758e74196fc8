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
  sqlite3_stmt *cas_update, *cas_delete, *cas_insert;
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

static void table_free(struct table *t) {
  sqlite3_finalize(t->get);
  sqlite3_finalize(t->set);
  sqlite3_finalize(t->del);
  sqlite3_finalize(t->purge);
  sqlite3_finalize(t->cas_update);
  sqlite3_finalize(t->cas_delete);
  sqlite3_finalize(t->cas_insert);
  free(t->name);
  free(t);
}

static void close_tables(struct sqlstore *s) {
  struct table *t = s->tables;
  while (t) {
    struct table *next = t->next;
    table_free(t);
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

/* The SQL with every {T} replaced by the table's name (an identifier
 * sqlstore_valid_table accepted, so quoting it is enough). */
static void table_sql(struct buf *sql, const char *fmt, const char *table) {
  for (const char *p = fmt; *p;) {
    const char *t = strstr(p, "{T}");
    if (!t) {
      buf_append_str(sql, p);
      break;
    }
    buf_append(sql, p, (size_t)(t - p));
    buf_printf(sql, "\"%s\"", table);
    p = t + 3;
  }
}

static sqlite3_stmt *prepare(struct sqlstore *s, const char *fmt,
                             const char *table, unsigned flags) {
  struct buf sql = BUF_INIT;
  table_sql(&sql, fmt, table);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(s->db, sql.data, (int)sql.len, flags, &st, NULL) !=
      SQLITE_OK)
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
  const unsigned keep = SQLITE_PREPARE_PERSISTENT;
  t->get = prepare(s, "SELECT value, expires FROM {T} WHERE key = ?1", name,
                   keep);
  t->set = prepare(s, "INSERT OR REPLACE INTO {T}(key, value, expires) "
                      "VALUES (?1, ?2, ?3)", name, keep);
  t->del = prepare(s, "DELETE FROM {T} WHERE key = ?1", name, keep);
  t->purge = prepare(s, "DELETE FROM {T} WHERE expires IS NOT NULL AND "
                        "expires <= ?1", name, keep);
  /* Compare-and-set, one statement each: ?1 key, ?2 expected, ?3 new,
   * ?4 new expiry, ?5 now. A row whose expiry has passed counts as
   * absent. */
  t->cas_update = prepare(s, "UPDATE {T} SET value = ?3, expires = ?4 "
                             "WHERE key = ?1 AND value = ?2 AND "
                             "(expires IS NULL OR expires > ?5)", name, keep);
  t->cas_delete = prepare(s, "DELETE FROM {T} WHERE key = ?1 AND value = ?2 "
                             "AND (expires IS NULL OR expires > ?5)", name,
                          keep);
  t->cas_insert = prepare(s, "INSERT INTO {T}(key, value, expires) "
                             "VALUES (?1, ?3, ?4) ON CONFLICT(key) DO UPDATE "
                             "SET value = excluded.value, expires = "
                             "excluded.expires WHERE {T}.expires IS NOT NULL "
                             "AND {T}.expires <= ?5", name, keep);
  t->last_purge_ms = wall_ms();
  if (!t->get || !t->set || !t->del || !t->purge || !t->cas_update ||
      !t->cas_delete || !t->cas_insert) {
    *why = sqlite3_errmsg(s->db);
    table_free(t);
    return NULL;
  }
  t->next = s->tables;
  s->tables = t;
  return t;
}

/* The live value of the key into r->value (NULL when absent or
 * expired); false, r failed, on an error. */
static bool read_value(struct sqlstore *s, struct table *t, struct kvreq *r,
                       int64_t now) {
  sqlite3_bind_text(t->get, 1, r->key, (int)r->key_len, SQLITE_STATIC);
  int rc = sqlite3_step(t->get);
  bool ok = true;
  kvreq_set_value(r, NULL, 0);
  if (rc == SQLITE_ROW) {
    bool expired = sqlite3_column_type(t->get, 1) != SQLITE_NULL &&
                   sqlite3_column_int64(t->get, 1) <= now;
    if (!expired) {
      const char *v = (const char *)sqlite3_column_text(t->get, 0);
      int n = sqlite3_column_bytes(t->get, 0);
      kvreq_set_value(r, v ? v : "", (size_t)n);
    }
  } else if (rc != SQLITE_DONE) {
    fail_request(s, r, sqlite3_errmsg(s->db));
    ok = false;
  }
  sqlite3_reset(t->get);
  sqlite3_clear_bindings(t->get);
  return ok;
}

/* The keys of a page: from the prefix or after the cursor, below the end
 * of the prefix (the prefix with its last byte that is not 0xff raised
 * by one; none if every byte is 0xff), in the index's byte order. */
static void list_keys(struct sqlstore *s, struct table *t, struct kvreq *r,
                      int64_t now) {
  size_t end_len = r->key_len;
  while (end_len > 0 && (unsigned char)r->key[end_len - 1] == 0xff) end_len--;
  char *end = end_len ? xstrndup(r->key, end_len) : NULL;
  if (end) end[end_len - 1] = (char)((unsigned char)end[end_len - 1] + 1);
  struct buf sql = BUF_INIT;
  buf_append_str(&sql, "SELECT key FROM {T} WHERE key >= ?1");
  if (r->cursor) buf_append_str(&sql, " AND key > ?2");
  if (end) buf_append_str(&sql, " AND key < ?3");
  buf_append_str(&sql, " AND (expires IS NULL OR expires > ?4) ORDER BY key "
                       "LIMIT ?5");
  sqlite3_stmt *st = prepare(s, sql.data, t->name, 0);
  buf_free(&sql);
  if (!st) {
    fail_request(s, r, sqlite3_errmsg(s->db));
    free(end);
    return;
  }
  sqlite3_bind_text(st, 1, r->key, (int)r->key_len, SQLITE_STATIC);
  if (r->cursor)
    sqlite3_bind_text(st, 2, r->cursor, (int)r->cursor_len, SQLITE_STATIC);
  if (end) sqlite3_bind_text(st, 3, end, (int)end_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, now);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)r->limit);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(st, 0);
    kvreq_add_key(r, k ? k : "", (size_t)sqlite3_column_bytes(st, 0));
  }
  if (rc != SQLITE_DONE) fail_request(s, r, sqlite3_errmsg(s->db));
  sqlite3_finalize(st);
  free(end);
  /* A full page may have a next one; its last key is where it starts. */
  if (!r->error && r->nkeys == r->limit)
    kvreq_set_cursor(r, r->keys[r->nkeys - 1].data, r->keys[r->nkeys - 1].len);
  else
    kvreq_set_cursor(r, NULL, 0);
}

static void compare_and_set(struct sqlstore *s, struct table *t,
                            struct kvreq *r, int64_t now) {
  if (!r->expected && !r->value) {   /* "absent stays absent" */
    if (read_value(s, t, r, now)) r->swapped = r->value == NULL;
    return;
  }
  sqlite3_stmt *st = !r->expected ? t->cas_insert
                     : r->value   ? t->cas_update
                                  : t->cas_delete;
  sqlite3_bind_text(st, 1, r->key, (int)r->key_len, SQLITE_STATIC);
  if (r->expected)
    sqlite3_bind_text(st, 2, r->expected, (int)r->expected_len, SQLITE_STATIC);
  if (r->value) {
    sqlite3_bind_text(st, 3, r->value, (int)r->value_len, SQLITE_STATIC);
    if (r->ttl_ms > 0) sqlite3_bind_int64(st, 4, now + r->ttl_ms);
    else sqlite3_bind_null(st, 4);
  }
  sqlite3_bind_int64(st, 5, now);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) r->swapped = sqlite3_changes(s->db) == 1;
  else fail_request(s, r, sqlite3_errmsg(s->db));
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  t->writes_since_purge++;
  /* Not swapped: what is there instead, for the caller's next try. */
  if (rc == SQLITE_DONE && !r->swapped) read_value(s, t, r, now);
  else if (rc == SQLITE_DONE) kvreq_set_value(r, NULL, 0);
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
    case KV_GET:
      read_value(s, t, r, now);
      return;
    case KV_LIST:
      list_keys(s, t, r, now);
      return;
    case KV_CAS:
      compare_and_set(s, t, r, now);
      return;
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
    if (r->op != KV_GET && r->op != KV_LIST) writes++;
  int64_t now = wall_ms();
  /* If BEGIN fails, the requests run in autocommit: slower, still right. */
  bool txn = writes > 1 &&
             sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
  for (struct kvreq *r = batch; r; r = r->next) run_request(s, r, now);
  if (txn && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    char *why = xstrdup(sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (struct kvreq *r = batch; r; r = r->next)
      if (r->op != KV_GET && r->op != KV_LIST && !r->error) {
        r->swapped = false;
        fail_request(s, r, why);
      }
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

static struct sqlstore *sqlstore_new(struct event_base *base,
                                     const char *path, char **err) {
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

static void sqlstore_submit(struct sqlstore *s, struct kvreq *req) {
  req->next = NULL;
  pthread_mutex_lock(&s->mu);
  append(&s->queue, &s->queue_tail, req, req);
  if (s->worker_waits) pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
}

static void sqlstore_free(struct sqlstore *s) {
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

/* --- the backend ------------------------------------------------------------ */

static int check(const char *path, const char *table, struct buf *err) {
  if (!path[0]) {
    buf_printf(err, "the path is empty");
    return -1;
  }
  if (!sqlstore_valid_table(table)) {
    buf_printf(err, "table name \"%s\" must be letters, digits and _ (at "
                    "most 64, not starting with a digit or sqlite_)", table);
    return -1;
  }
  return 0;
}

static void *open_store(struct event_base *base, const char *path,
                        struct buf *err) {
  char *why = NULL;
  struct sqlstore *s = sqlstore_new(base, path, &why);
  if (!s) {
    buf_printf(err, "cannot start the SQLite worker: %s", why);
    free(why);
  }
  return s;
}

static void describe(const char *path, const char *table, struct buf *out) {
  buf_printf(out, "sqlite storage \"%s\"", path);
  if (strcmp(table, "kv") != 0) buf_printf(out, " (table %s)", table);
}

static void submit(void *impl, struct kvreq *req) { sqlstore_submit(impl, req); }

static void close_store(void *impl) { sqlstore_free(impl); }

const struct kv_backend sqlstore_backend = {
    .kind = "sqlite",
    .target_arg = "path",
    .target_what = "a file path",
    .ns_arg = "table",
    .ns_default = "kv",
    .opens_under_check = false,
    .check = check,
    .open = open_store,
    .describe = describe,
    .submit = submit,
    .run_now = NULL,
    .close = close_store,
};
