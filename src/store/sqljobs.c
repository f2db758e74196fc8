#include "store/sqljobs.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/buf.h"
#include "store/sqlstore.h"

#define BATCH_MAX 512
#define BUSY_TIMEOUT_MS 5000

enum stmt {
  ST_GET, ST_SCHEDULE_OF, ST_UPSERT, ST_SET_BODY, ST_DELETE, ST_LIST,
  ST_LIST_FROM, ST_EXPIRED, ST_DUE, ST_TAKE, ST_FINISH_DELETE, ST_RELEASE,
  ST_RESCHEDULE, ST_RENEW, ST_NEXT_DUE, ST_NEXT_LEASE, ST_COUNT, ST_COUNT_DUE,
  ST_SEQ, ST_EXISTS, ST_COUNT_OF
};

static const char *const statements[ST_COUNT_OF] = {
    [ST_GET] = "SELECT id, schedule, due, body, attempts, token, lease "
               "FROM {T} WHERE id = ?1",
    [ST_SCHEDULE_OF] = "SELECT schedule FROM {T} WHERE id = ?1",
    [ST_UPSERT] = "INSERT INTO {T}(id, schedule, due, body, attempts, token, "
                  "lease) VALUES (?1, ?2, ?3, ?4, 0, NULL, NULL) "
                  "ON CONFLICT(id) DO UPDATE SET schedule = excluded.schedule, "
                  "due = excluded.due, body = excluded.body, attempts = 0, "
                  "token = NULL, lease = NULL",
    [ST_SET_BODY] = "UPDATE {T} SET body = ?2 WHERE id = ?1",
    [ST_DELETE] = "DELETE FROM {T} WHERE id = ?1",
    [ST_LIST] = "SELECT id, schedule, due, body, attempts, token, lease "
                "FROM {T} WHERE id >= ?1 ORDER BY id LIMIT ?2",
    [ST_LIST_FROM] = "SELECT id, schedule, due, body, attempts, token, lease "
                     "FROM {T} WHERE id >= ?1 AND id < ?3 ORDER BY id "
                     "LIMIT ?2",
    [ST_EXPIRED] = "SELECT id, lease FROM {T} WHERE token IS NOT NULL AND "
                   "lease <= ?1 ORDER BY lease LIMIT ?2",
    [ST_DUE] = "SELECT id, due FROM {T} WHERE token IS NULL AND due <= ?1 "
               "ORDER BY due LIMIT ?2",
    [ST_TAKE] = "UPDATE {T} SET token = ?2, lease = ?3, attempts = attempts "
                "+ 1 WHERE id = ?1",
    [ST_FINISH_DELETE] = "DELETE FROM {T} WHERE id = ?1 AND token = ?2",
    [ST_RELEASE] = "UPDATE {T} SET token = NULL, lease = NULL WHERE id = ?1 "
                   "AND token = ?2",
    [ST_RESCHEDULE] = "UPDATE {T} SET token = NULL, lease = NULL, due = ?3, "
                      "attempts = 0, body = coalesce(?4, body) WHERE id = ?1 "
                      "AND token = ?2",
    [ST_RENEW] = "UPDATE {T} SET lease = ?3 WHERE id = ?1 AND token = ?2",
    [ST_NEXT_DUE] = "SELECT min(due) FROM {T} WHERE token IS NULL",
    [ST_NEXT_LEASE] = "SELECT min(lease) FROM {T} WHERE token IS NOT NULL",
    [ST_COUNT] = "SELECT count(*) FROM {T}",
    [ST_COUNT_DUE] = "SELECT count(*) FROM {T} WHERE token IS NULL AND "
                     "due <= ?1",
    [ST_SEQ] = "INSERT INTO {S}(k, v) VALUES ('seq', 1) ON CONFLICT(k) DO "
               "UPDATE SET v = v + 1 RETURNING v",
    [ST_EXISTS] = "SELECT 1 FROM {T} WHERE id = ?1",
};

struct sqljobs {
  char *path, *table, *seq_table;
  /* Loop side. */
  struct event *results_event;
  int efd;
  /* Shared, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t wake;
  struct jobreq *queue, *queue_tail;   /* loop -> worker */
  struct jobreq *done, *done_tail;     /* worker -> loop */
  bool stopping, worker_waits;
  pthread_t thread;
  /* Worker only. */
  sqlite3 *db;
  sqlite3_stmt *st[ST_COUNT_OF];
  int64_t counted_ms;                  /* when the counts were last taken */
};

/* The counts for the gauges cost a scan of the table: a claim takes them
 * at most this often. */
#define COUNT_EVERY_MS 1000

static void append(struct jobreq **head, struct jobreq **tail,
                   struct jobreq *first, struct jobreq *last) {
  if (*tail) (*tail)->next = first;
  else *head = first;
  *tail = last;
}

/* --- the worker ------------------------------------------------------------ */

static void fail(struct sqljobs *s, struct jobreq *r, const char *why) {
  jobreq_set_error(r, "sqlite job store \"%s\" (table %s): %s", s->path,
                   s->table, why);
}

static void close_db(struct sqljobs *s) {
  for (int i = 0; i < ST_COUNT_OF; i++) {
    sqlite3_finalize(s->st[i]);
    s->st[i] = NULL;
  }
  if (s->db) sqlite3_close(s->db);
  s->db = NULL;
}

/* The SQL with {T} the jobs table and {S} the sequence table (identifiers
 * sqlstore_valid_table accepted, so quoting them is enough). */
static void expand(struct sqljobs *s, const char *fmt, struct buf *sql) {
  for (const char *p = fmt; *p; p++) {
    if (p[0] == '{' && (p[1] == 'T' || p[1] == 'S') && p[2] == '}') {
      buf_printf(sql, "\"%s\"", p[1] == 'T' ? s->table : s->seq_table);
      p += 2;
    } else {
      buf_append_char(sql, *p);
    }
  }
}

static bool open_db(struct sqljobs *s, char **why) {
  int rc = sqlite3_open_v2(s->path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) goto bad;
  sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
  struct buf sql = BUF_INIT;
  buf_printf(&sql,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
             "CREATE TABLE IF NOT EXISTS \"%s\" (id TEXT PRIMARY KEY NOT "
             "NULL, schedule TEXT NOT NULL, due INTEGER NOT NULL, body BLOB "
             "NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, token TEXT, "
             "lease INTEGER);"
             "CREATE INDEX IF NOT EXISTS \"%s_due\" ON \"%s\"(due) WHERE "
             "token IS NULL;"
             "CREATE INDEX IF NOT EXISTS \"%s_lease\" ON \"%s\"(lease) WHERE "
             "token IS NOT NULL;"
             "CREATE TABLE IF NOT EXISTS \"%s\" (k TEXT PRIMARY KEY NOT NULL, "
             "v INTEGER NOT NULL)",
             s->table, s->table, s->table, s->table, s->table, s->seq_table);
  rc = sqlite3_exec(s->db, sql.data, NULL, NULL, NULL);
  buf_free(&sql);
  if (rc != SQLITE_OK) goto bad;
  for (int i = 0; i < ST_COUNT_OF; i++) {
    struct buf q = BUF_INIT;
    expand(s, statements[i], &q);
    rc = sqlite3_prepare_v3(s->db, q.data, (int)q.len,
                            SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
    buf_free(&q);
    if (rc != SQLITE_OK) goto bad;
  }
  return true;
bad:
  *why = xstrdup(s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
  close_db(s);
  return false;
}

static sqlite3_stmt *stmt(struct sqljobs *s, enum stmt which) {
  sqlite3_stmt *st = s->st[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

/* Runs st to its end; false on an error. */
static bool exec(sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  return rc == SQLITE_DONE;
}

static char *column_text(sqlite3_stmt *st, int i) {
  const char *v = (const char *)sqlite3_column_text(st, i);
  return v ? xstrdup(v) : NULL;
}

/* The current row of a SELECT id, schedule, due, body, attempts, token,
 * lease. */
static void read_row(sqlite3_stmt *st, struct jobrec *r) {
  memset(r, 0, sizeof *r);
  r->id = column_text(st, 0);
  r->schedule = column_text(st, 1);
  r->due_ms = sqlite3_column_int64(st, 2);
  const void *body = sqlite3_column_blob(st, 3);
  int n = sqlite3_column_bytes(st, 3);
  r->body = xmalloc((size_t)n + 1);
  if (n) memcpy(r->body, body, (size_t)n);
  r->body[n] = '\0';
  r->body_len = (size_t)n;
  r->attempts = sqlite3_column_int(st, 4);
  r->token = column_text(st, 5);
  r->lease_ms = sqlite3_column_int64(st, 6);
}

static bool put(struct sqljobs *s, struct jobreq *r) {
  if (!r->rec.id) {
    for (;;) {
      sqlite3_stmt *st = stmt(s, ST_SEQ);
      if (sqlite3_step(st) != SQLITE_ROW) return false;
      int64_t n = sqlite3_column_int64(st, 0);
      sqlite3_reset(st);
      struct buf id = BUF_INIT;
      buf_printf(&id, "%s%" PRId64, r->prefix ? r->prefix : "", n);
      st = stmt(s, ST_EXISTS);
      bind_text(st, 1, id.data);
      int rc = sqlite3_step(st);
      sqlite3_reset(st);
      if (rc == SQLITE_DONE) {
        r->rec.id = buf_steal(&id, NULL);
        break;
      }
      buf_free(&id);
      if (rc != SQLITE_ROW) return false;
    }
  }
  sqlite3_stmt *st = stmt(s, ST_SCHEDULE_OF);
  bind_text(st, 1, r->rec.id);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return false;
  r->found = rc == SQLITE_ROW;
  bool same = r->found && r->keep_if_same &&
              strcmp((const char *)sqlite3_column_text(st, 0),
                     r->rec.schedule) == 0;
  sqlite3_reset(st);
  if (same) {
    st = stmt(s, ST_SET_BODY);
    bind_text(st, 1, r->rec.id);
    sqlite3_bind_blob(st, 2, r->rec.body, (int)r->rec.body_len,
                      SQLITE_STATIC);
    return exec(st);
  }
  st = stmt(s, ST_UPSERT);
  bind_text(st, 1, r->rec.id);
  bind_text(st, 2, r->rec.schedule);
  sqlite3_bind_int64(st, 3, r->rec.due_ms);
  sqlite3_bind_blob(st, 4, r->rec.body, (int)r->rec.body_len, SQLITE_STATIC);
  return exec(st);
}

static bool get(struct sqljobs *s, struct jobreq *r) {
  sqlite3_stmt *st = stmt(s, ST_GET);
  bind_text(st, 1, r->rec.id);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    struct jobrec rec;
    read_row(st, &rec);
    jobreq_add_rec(r, &rec);
    jobrec_free(&rec);
    r->found = true;
    rc = SQLITE_DONE;
  }
  return rc == SQLITE_DONE;
}

/* The smallest string above every string with the prefix, or NULL (the
 * prefix is empty or all 0xff). */
static char *upper_bound(const char *prefix) {
  size_t n = strlen(prefix);
  while (n > 0 && (unsigned char)prefix[n - 1] == 0xff) n--;
  if (n == 0) return NULL;
  char *u = xstrndup(prefix, n);
  u[n - 1] = (char)((unsigned char)u[n - 1] + 1);
  return u;
}

static bool list(struct sqljobs *s, struct jobreq *r) {
  const char *prefix = r->prefix ? r->prefix : "";
  char *upper = upper_bound(prefix);
  sqlite3_stmt *st = stmt(s, upper ? ST_LIST_FROM : ST_LIST);
  bind_text(st, 1, prefix);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)r->limit);
  if (upper) bind_text(st, 3, upper);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct jobrec rec;
    read_row(st, &rec);
    jobreq_add_rec(r, &rec);
    jobrec_free(&rec);
  }
  free(upper);
  return rc == SQLITE_DONE;
}

static int64_t single_int(struct sqljobs *s, enum stmt which, int64_t bind1,
                          bool *ok) {
  sqlite3_stmt *st = stmt(s, which);
  if (bind1 >= 0) sqlite3_bind_int64(st, 1, bind1);
  int rc = sqlite3_step(st);
  int64_t v = -1;
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
      v = sqlite3_column_int64(st, 0);
  } else {
    *ok = false;
  }
  sqlite3_reset(st);
  return v;
}

struct candidate {
  char *id;
  int64_t key;
};

static bool read_candidates(struct sqljobs *s, enum stmt which, int64_t now,
                            size_t limit, struct candidate **out, size_t *n) {
  sqlite3_stmt *st = stmt(s, which);
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    *out = xrealloc(*out, (*n + 1) * sizeof **out);
    (*out)[*n].id = column_text(st, 0);
    (*out)[*n].key = sqlite3_column_int64(st, 1);
    (*n)++;
  }
  return rc == SQLITE_DONE;
}

static bool claim(struct sqljobs *s, struct jobreq *r) {
  struct candidate *expired = NULL, *due = NULL;
  size_t ne = 0, nd = 0, ie = 0, id = 0;
  bool ok = read_candidates(s, ST_EXPIRED, r->now_ms, r->limit, &expired, &ne) &&
            read_candidates(s, ST_DUE, r->now_ms, r->limit, &due, &nd);
  /* Oldest first, lapsed claims and due jobs together. */
  while (ok && r->nrecs < r->limit && (ie < ne || id < nd)) {
    struct candidate *c = id >= nd || (ie < ne && expired[ie].key < due[id].key)
                              ? &expired[ie++]
                              : &due[id++];
    char *token = jobstore_new_token(r->owner);
    sqlite3_stmt *st = stmt(s, ST_TAKE);
    bind_text(st, 1, c->id);
    bind_text(st, 2, token);
    sqlite3_bind_int64(st, 3, r->lease_ms);
    ok = exec(st);
    free(token);
    if (!ok) break;
    st = stmt(s, ST_GET);
    bind_text(st, 1, c->id);
    if (sqlite3_step(st) == SQLITE_ROW) {
      struct jobrec rec;
      read_row(st, &rec);
      jobreq_add_rec(r, &rec);
      jobrec_free(&rec);
    }
    sqlite3_reset(st);
  }
  for (size_t i = 0; i < ne; i++) free(expired[i].id);
  for (size_t i = 0; i < nd; i++) free(due[i].id);
  free(expired);
  free(due);
  if (!ok) return false;
  int64_t next_due = single_int(s, ST_NEXT_DUE, -1, &ok);
  int64_t next_lease = single_int(s, ST_NEXT_LEASE, -1, &ok);
  r->next_ms = next_due;
  if (next_lease >= 0 && (r->next_ms < 0 || next_lease < r->next_ms))
    r->next_ms = next_lease;
  r->oldest_due_ms = next_due >= 0 && next_due <= r->now_ms ? next_due : -1;
  if (r->now_ms - s->counted_ms >= COUNT_EVERY_MS || r->now_ms < s->counted_ms) {
    s->counted_ms = r->now_ms;
    r->stored = (long)single_int(s, ST_COUNT, -1, &ok);
    r->due = (long)single_int(s, ST_COUNT_DUE, r->now_ms, &ok);
  }
  return ok;
}

static bool finish(struct sqljobs *s, struct jobreq *r) {
  sqlite3_stmt *st;
  if (r->release) st = stmt(s, ST_RELEASE);
  else if (r->rec.due_ms < 0) st = stmt(s, ST_FINISH_DELETE);
  else st = stmt(s, ST_RESCHEDULE);
  bind_text(st, 1, r->rec.id);
  bind_text(st, 2, r->rec.token);
  if (!r->release && r->rec.due_ms >= 0) {
    sqlite3_bind_int64(st, 3, r->rec.due_ms);
    if (r->rec.body)
      sqlite3_bind_blob(st, 4, r->rec.body, (int)r->rec.body_len,
                        SQLITE_STATIC);
  }
  if (!exec(st)) return false;
  r->found = sqlite3_changes(s->db) > 0;
  return true;
}

static bool renew(struct sqljobs *s, struct jobreq *r) {
  r->held = xcalloc(r->nrecs ? r->nrecs : 1, sizeof *r->held);
  for (size_t i = 0; i < r->nrecs; i++) {
    sqlite3_stmt *st = stmt(s, ST_RENEW);
    bind_text(st, 1, r->recs[i].id);
    bind_text(st, 2, r->recs[i].token);
    sqlite3_bind_int64(st, 3, r->lease_ms);
    if (!exec(st)) return false;
    r->held[i] = sqlite3_changes(s->db) > 0;
  }
  return true;
}

static void run_request(struct sqljobs *s, struct jobreq *r) {
  /* Each request in a savepoint: one that fails leaves nothing behind. */
  sqlite3_exec(s->db, "SAVEPOINT req", NULL, NULL, NULL);
  bool ok = false;
  switch (r->op) {
    case JOBREQ_PUT:
      ok = put(s, r);
      break;
    case JOBREQ_DELETE: {
      sqlite3_stmt *st = stmt(s, ST_DELETE);
      bind_text(st, 1, r->rec.id);
      ok = exec(st);
      r->found = ok && sqlite3_changes(s->db) > 0;
      break;
    }
    case JOBREQ_GET:
      ok = get(s, r);
      break;
    case JOBREQ_LIST:
      ok = list(s, r);
      break;
    case JOBREQ_CLAIM:
      ok = claim(s, r);
      break;
    case JOBREQ_FINISH:
      ok = finish(s, r);
      break;
    case JOBREQ_RENEW:
      ok = renew(s, r);
      break;
  }
  if (!ok) {
    fail(s, r, sqlite3_errmsg(s->db));
    for (size_t i = 0; i < r->nrecs && r->op != JOBREQ_RENEW; i++)
      jobrec_free(&r->recs[i]);
    if (r->op != JOBREQ_RENEW) r->nrecs = 0;
    sqlite3_exec(s->db, "ROLLBACK TO req", NULL, NULL, NULL);
  }
  sqlite3_exec(s->db, "RELEASE req", NULL, NULL, NULL);
}

static void run_batch(struct sqljobs *s, struct jobreq *batch) {
  if (!s->db) {
    char *why = NULL;
    if (!open_db(s, &why)) {
      for (struct jobreq *r = batch; r; r = r->next) fail(s, r, why);
      free(why);
      return;
    }
  }
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    const char *why = sqlite3_errmsg(s->db);
    for (struct jobreq *r = batch; r; r = r->next) fail(s, r, why);
    return;
  }
  for (struct jobreq *r = batch; r; r = r->next) run_request(s, r);
  if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    char *why = xstrdup(sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (struct jobreq *r = batch; r; r = r->next) {
      if (r->error) continue;
      fail(s, r, why);
      for (size_t i = 0; i < r->nrecs && r->op != JOBREQ_RENEW; i++)
        jobrec_free(&r->recs[i]);
      if (r->op != JOBREQ_RENEW) r->nrecs = 0;
    }
    free(why);
  }
}

static void *worker_main(void *arg) {
  struct sqljobs *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->queue && !s->stopping) {
      s->worker_waits = true;
      pthread_cond_wait(&s->wake, &s->mu);
      s->worker_waits = false;
    }
    if (!s->queue) break;   /* stopping, and nothing is left */
    struct jobreq *batch = s->queue, *last = batch;
    for (int n = 1; n < BATCH_MAX && last->next; n++) last = last->next;
    s->queue = last->next;
    if (!s->queue) s->queue_tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&s->mu);

    run_batch(s, batch);

    pthread_mutex_lock(&s->mu);
    bool notify = !s->done;
    append(&s->done, &s->done_tail, batch, last);
    uint64_t one = 1;
    if (notify && write(s->efd, &one, sizeof one) < 0 && errno != EAGAIN) {
      /* The counter cannot overflow in practice. */
    }
  }
  pthread_mutex_unlock(&s->mu);
  close_db(s);
  return NULL;
}

/* --- the loop side ------------------------------------------------------- */

static void on_results(evutil_socket_t fd, short what, void *arg) {
  struct sqljobs *s = arg;
  uint64_t n;
  if (read(s->efd, &n, sizeof n) < 0 && errno != EAGAIN) return;
  pthread_mutex_lock(&s->mu);
  struct jobreq *r = s->done;
  s->done = s->done_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  while (r) {
    struct jobreq *next = r->next;
    r->next = NULL;
    jobreq_complete(r);
    r = next;
  }
}

static void *open_store(struct event_base *base, const char *path,
                        const char *ns, struct buf *err) {
  struct buf table = BUF_INIT;
  buf_printf(&table, "%s_jobs", ns && *ns ? ns : "kv");
  if (!path || !*path || !sqlstore_valid_table(table.data)) {
    buf_printf(err, "sqlite job store: %s", !path || !*path
                                                ? "the path is empty"
                                                : "the table name is too long");
    buf_free(&table);
    return NULL;
  }
  struct sqljobs *s = xcalloc(1, sizeof *s);
  s->path = xstrdup(path);
  s->table = buf_steal(&table, NULL);
  struct buf seq = BUF_INIT;
  buf_printf(&seq, "%s_seq", s->table);
  s->seq_table = buf_steal(&seq, NULL);
  s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->efd < 0) {
    buf_printf(err, "sqlite job store: %s", strerror(errno));
    goto bad;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->wake, NULL);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&s->thread, NULL, worker_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    buf_printf(err, "sqlite job store: cannot start its worker: %s",
               strerror(rc));
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    close(s->efd);
    goto bad;
  }
  s->results_event = event_new(base, s->efd, EV_READ | EV_PERSIST, on_results,
                               s);
  event_add(s->results_event, NULL);
  return s;
bad:
  free(s->path);
  free(s->table);
  free(s->seq_table);
  free(s);
  return NULL;
}

static void describe(void *impl, struct buf *out) {
  struct sqljobs *s = impl;
  buf_printf(out, "sqlite job store \"%s\" (table %s)", s->path, s->table);
}

static void submit(void *impl, struct jobreq *r) {
  struct sqljobs *s = impl;
  r->next = NULL;
  pthread_mutex_lock(&s->mu);
  append(&s->queue, &s->queue_tail, r, r);
  if (s->worker_waits) pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
}

static void close_store(void *impl) {
  struct sqljobs *s = impl;
  /* The worker runs what is queued (committing it) before it stops. */
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  event_free(s->results_event);
  close(s->efd);
  struct jobreq *r = s->done;
  while (r) {
    struct jobreq *next = r->next;
    jobreq_free(r);
    r = next;
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->wake);
  free(s->path);
  free(s->table);
  free(s->seq_table);
  free(s);
}

const struct jobstore_backend sqljobs_backend = {
    .kind = "sqlite",
    .shared = true,
    .open = open_store,
    .describe = describe,
    .submit = submit,
    .close = close_store,
};
