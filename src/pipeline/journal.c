#include "pipeline/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/journalfile.h"
#include "pipeline/update.h"

/* The names the journal keeps beside FILE. */
#define LOCK_SUFFIX ".lock"
#define DEAD_SUFFIX ".dead"
#define TMP_SUFFIX ".tmp"
#define CORRUPT_SUFFIX ".corrupt"

/* Called on the loop once every batch appended so far is durable (ok), or
 * when writing failed (ok false, message says why). */
typedef void (*journal_durable_fn)(void *ud, bool ok, const char *message);

/* --- files -------------------------------------------------------------- */

static char *path_with(const char *path, const char *suffix) {
  struct buf b = BUF_INIT;
  buf_printf(&b, "%s%s", path, suffix);
  return buf_steal(&b, NULL);
}

static int read_file(const char *path, char **data, size_t *size) {
  *data = NULL;
  *size = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) return errno == ENOENT ? 0 : -1;
  struct buf b = BUF_INIT;
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) buf_append(&b, chunk, n);
  bool bad = ferror(fp);
  fclose(fp);
  if (bad) {
    buf_free(&b);
    return -1;
  }
  *data = buf_steal(&b, size);
  return 0;
}

static bool write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Makes a rename or a new file in path's folder durable. */
static void sync_folder(const char *path) {
  char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
  int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  free(dir);
}

/* Creates path anew (never through a symlink, never over a file someone
 * else put there meanwhile), 0600, with content, on disk. */
static bool create_file(const char *path, const char *data, size_t len) {
  if (unlink(path) != 0 && errno != ENOENT) return false;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
  if (fd < 0) return false;
  bool ok = write_all(fd, data, len) && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

/* Writes path's new content through FILE.tmp and a rename, so a crash
 * leaves the old or the new file, never half of one. Returns the new file
 * opened for appending, or -1 with err set. */
static int replace_file(const char *path, const struct buf *content,
                        struct buf *err) {
  char *tmp = path_with(path, TMP_SUFFIX);
  bool ok = create_file(tmp, content->data ? content->data : "",
                        content->len) &&
            rename(tmp, path) == 0;
  if (!ok) {
    buf_printf(err, "cannot write the journal %s: %s", path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  sync_folder(path);
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0)
    buf_printf(err, "cannot open the journal %s: %s", path, strerror(errno));
  return fd;
}

/* Keeps a damaged journal as FILE.corrupt (or .corrupt.1, .2, ... when
 * one is there already); returns the name used, or NULL. */
static char *keep_corrupt(const char *path, const char *data, size_t size) {
  for (int i = 0; i < 100; i++) {
    struct buf name = BUF_INIT;
    if (i == 0) buf_printf(&name, "%s%s", path, CORRUPT_SUFFIX);
    else buf_printf(&name, "%s%s.%d", path, CORRUPT_SUFFIX, i);
    int fd = open(name.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                 O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
      buf_free(&name);
      continue;
    }
    bool ok = fd >= 0 && write_all(fd, data, size) && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (ok) return buf_steal(&name, NULL);
    buf_free(&name);
    return NULL;
  }
  return NULL;
}

/* Appends lines to FILE.dead: created 0600 (it holds users' messages),
 * made 0600 if it was not, never through a symlink. */
static bool append_dead(const char *dead_path, const struct buf *lines) {
  int fd = open(dead_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
                               O_CLOEXEC, 0600);
  if (fd < 0) return false;
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077)) fchmod(fd, 0600);
  bool ok = write_all(fd, lines->data, lines->len) && fdatasync(fd) == 0;
  close(fd);
  return ok;
}

/* One dead letter as a JSON line: {"update_id", "reason", "at",
 * "update"}; the reason with the token taken out. */
static void put_dead_letter(struct buf *out, int64_t id, const char *json,
                            size_t len, const char *reason) {
  char at[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
  char *clean = log_redacted_copy(reason, strlen(reason));
  buf_printf(out, "{\"update_id\":%" PRId64 ",\"reason\":", id);
  json_write_string(out, clean, strlen(clean));
  buf_printf(out, ",\"at\":\"%s\",\"update\":", at);
  buf_append(out, json, len);
  buf_append_str(out, "}\n");
  free(clean);
}

/* --- the lock: one process per journal ---------------------------------- */

/* Takes FILE.lock (flock: released by the kernel when the process ends,
 * however it ends) and writes the pid into it. Returns its descriptor, or
 * -1 with err set. */
static int take_lock(const char *path, struct buf *err) {
  char *lock_path = path_with(path, LOCK_SUFFIX);
  int fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    buf_printf(err, "cannot write the journal's lock file %s: %s", lock_path,
               strerror(errno));
    free(lock_path);
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    if (errno == EWOULDBLOCK || errno == EAGAIN || errno == EINTR)
      buf_printf(err, "the journal %s is in use by another tghost (pid %s, "
                 "holding %s): two processes on one journal would lose and "
                 "repeat updates; give each bot one process and one journal",
                 path, pid[0] ? pid : "?", lock_path);
    else
      buf_printf(err, "cannot lock the journal %s: %s", path, strerror(errno));
    close(fd);
    free(lock_path);
    return -1;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    /* The lock holds without the pid: only the message is poorer. */
  }
  free(lock_path);
  return fd;
}

/* --- the journal: the file and its thread ------------------------------- */

struct op {
  struct buf data;
  bool sync;                     /* fsync, then tell the loop */
  bool dead;                     /* lines for FILE.dead, not the journal */
  struct op *next;
};

struct journal {
  char *path;
  char *dead_path;
  int64_t bot_id;
  int fd;
  int lock_fd;
  struct event *ev;
  int notify[2];
  journal_durable_fn on_durable;
  void *ud;
  unsigned long batches_sent;    /* loop only */
  /* Starts and ends gather here and go to the thread once per loop pass,
   * not one hand-over per record. */
  struct buf marks;              /* loop only */
  struct event *flush_ev;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  struct op *head, *tail;        /* under mu */
  bool closing;                  /* under mu */
  unsigned long batches_durable; /* under mu */
  char error[256];               /* under mu: the first write failure */
  size_t since_compact;          /* thread only */
  int64_t *known_ids;            /* until journal_take_known_ids */
  size_t nknown;
  size_t unfinished;             /* loop only: recorded, not ended */
};

static void enqueue(struct journal *j, struct op *op) {
  pthread_mutex_lock(&j->mu);
  if (j->tail) j->tail->next = op;
  else j->head = op;
  j->tail = op;
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->mu);
}

/* On the thread: rewrites the file with what has not finished, the state
 * of each kept; closing adds the clean end. */
static void compact(struct journal *j, bool closing) {
  char *data;
  size_t size;
  if (read_file(j->path, &data, &size) != 0) return;
  struct jfold f;
  jfold_read(&f, data, size);
  free(data);
  struct buf out = BUF_INIT, err = BUF_INIT;
  journal_put_header(&out, j->bot_id);
  jfold_put_unfinished(&f, &out);
  /* After the updates: an end read after it is this run's progress. */
  journal_put_mark(&out, 'O', f.progress ? 0 : f.streak);
  if (closing) journal_put_mark(&out, 'C', 0);
  jfold_free(&f);
  int fd = replace_file(j->path, &out, &err);
  if (fd >= 0) {
    close(j->fd);
    j->fd = fd;
  }
  buf_free(&out);
  buf_free(&err);
  j->since_compact = 0;
}

static void *journal_thread(void *arg) {
  struct journal *j = arg;
  pthread_mutex_lock(&j->mu);
  for (;;) {
    while (!j->head && !j->closing) pthread_cond_wait(&j->cond, &j->mu);
    if (!j->head && j->closing) break;
    /* Everything queued now goes out with one write pass and one fsync. */
    struct op *ops = j->head;
    j->head = j->tail = NULL;
    pthread_mutex_unlock(&j->mu);
    bool ok = true, sync = false;
    unsigned long batches = 0;
    int saved = 0;
    for (struct op *op = ops; op; op = op->next) {
      if (op->dead) {
        if (!append_dead(j->dead_path, &op->data))
          log_error("cannot write the dead letters to %s: %s", j->dead_path,
                    strerror(errno));
        continue;
      }
      if (ok && !write_all(j->fd, op->data.data, op->data.len)) {
        ok = false;
        saved = errno;
      }
      j->since_compact += op->data.len;
      if (op->sync) {
        sync = true;
        batches++;
      }
    }
    if (ok && sync && fdatasync(j->fd) != 0) {
      ok = false;
      saved = errno;
    }
    while (ops) {
      struct op *next = ops->next;
      buf_free(&ops->data);
      free(ops);
      ops = next;
    }
    if (ok && j->since_compact > JOURNAL_COMPACT_BYTES) compact(j, false);
    pthread_mutex_lock(&j->mu);
    if (!ok && !j->error[0])
      snprintf(j->error, sizeof j->error, "cannot write the journal %s: %s",
               j->path, strerror(saved ? saved : EIO));
    j->batches_durable += batches;
    pthread_mutex_unlock(&j->mu);
    if (batches || !ok) {
      char b = 1;
      if (write(j->notify[1], &b, 1) < 0) { /* a full pipe wakes the loop */ }
    }
    pthread_mutex_lock(&j->mu);
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

static void on_notify(evutil_socket_t fd, short what, void *arg) {
  struct journal *j = arg;
  char drain[64];
  while (read(fd, drain, sizeof drain) > 0) {
  }
  pthread_mutex_lock(&j->mu);
  bool failed = j->error[0] != '\0';
  char message[256];
  snprintf(message, sizeof message, "%s", j->error);
  pthread_mutex_unlock(&j->mu);
  j->on_durable(j->ud, !failed, failed ? message : NULL);
}

static bool journal_pending(const struct journal *j) {
  pthread_mutex_lock((pthread_mutex_t *)&j->mu);
  bool pending = j->batches_durable != j->batches_sent;
  pthread_mutex_unlock((pthread_mutex_t *)&j->mu);
  return pending;
}

static void flush_marks(struct journal *j) {
  if (!j->marks.len) return;
  struct op *op = xcalloc(1, sizeof *op);
  op->data = j->marks;
  memset(&j->marks, 0, sizeof j->marks);
  enqueue(j, op);
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  flush_marks(arg);
}

static void mark(struct journal *j) {
  if (j->marks.len > 65536) flush_marks(j);
  else event_active(j->flush_ev, 0, 0);
}

/* Appends data (taken) with the marks before it, and an fsync;
 * on_durable follows. */
static void append_durable(struct journal *j, struct buf *data) {
  flush_marks(j);
  struct op *op = xcalloc(1, sizeof *op);
  op->data = *data;
  memset(data, 0, sizeof *data);
  op->sync = true;
  j->batches_sent++;
  enqueue(j, op);
}

static void journal_append_batch(struct journal *j,
                                 const struct qlist *batch) {
  struct buf data = BUF_INIT;
  qlist_foreach(n, batch) {
    const struct update_item *u = qlist_entry(n, struct update_item, node);
    journal_put_update(&data, u->id, 0, 0, u->json, u->len);
  }
  j->unfinished += qlist_size(batch);
  append_durable(j, &data);
}

/* kind: 'S' (runs), 'W' (waits); 'A' goes through journal_record_alone. */
static void journal_record_mark(struct journal *j, char kind, int64_t id) {
  journal_put_mark(&j->marks, kind, id);
  mark(j);
}

/* Update id is about to run alone: its start on disk first (on_durable). */
static void journal_record_alone(struct journal *j, int64_t id) {
  struct buf data = BUF_INIT;
  journal_put_mark(&data, 'A', id);
  append_durable(j, &data);
}

/* Records the end of update id; reason (for failures) with the token
 * taken out. */
static void journal_record_end(struct journal *j, int64_t id, enum jend end,
                               const char *reason) {
  char *clean = reason ? log_redacted_copy(reason, strlen(reason)) : NULL;
  journal_put_end(&j->marks, id, end, clean);
  free(clean);
  mark(j);
  if (j->unfinished) j->unfinished--;
}

/* Dead letters go to FILE.dead from the thread, in order with the rest. */
static void journal_write_dead(struct journal *j, struct buf *lines) {
  flush_marks(j);
  struct op *op = xcalloc(1, sizeof *op);
  op->data = *lines;
  memset(lines, 0, sizeof *lines);
  op->dead = true;
  enqueue(j, op);
}

/* The journal's gauges (set when the metrics are read). */
static void journal_publish_metrics(struct journal *j) {
  pthread_mutex_lock(&j->mu);
  unsigned long unsynced = j->batches_sent - j->batches_durable;
  pthread_mutex_unlock(&j->mu);
  metric_set(METRIC_JOURNAL_UNSYNCED, (double)unsynced, NULL, NULL);
  metric_set(METRIC_JOURNAL_BACKLOG, (double)j->unfinished, NULL, NULL);
}

/* --- opening: damage, blame, dead letters ------------------------------- */

int64_t journal_bot_id_of_token(const char *token) {
  if (!token) return -1;
  char *end;
  errno = 0;
  long long id = strtoll(token, &end, 10);
  return errno || end == token || *end != ':' || id <= 0 ? -1 : (int64_t)id;
}

/* What a restart makes of an unfinished entry (see journal.h). */
struct verdict {
  long crashes, failures;
  char dead[JOURNAL_MAX_REASON + 160];   /* "" unless a dead letter */
};

static void judge(const struct jentry *e, struct verdict *v) {
  v->crashes = e->crashes;
  v->failures = e->failures;
  v->dead[0] = '\0';
  bool stopped_running = false, alone = e->state == JSTATE_ALONE;
  if (e->ended) {
    if (e->end == JEND_FAILED || e->end == JEND_TIMED_OUT) v->failures++;
    else if (e->end == JEND_CUT_SHORT) stopped_running = true;
  } else {
    stopped_running = e->state == JSTATE_RUNNING || alone;
  }
  if (stopped_running) v->crashes++;
  const char *why = e->reason && *e->reason ? e->reason : "(no message)";
  if (v->failures >= JOURNAL_MAX_FAILURES)
    snprintf(v->dead, sizeof v->dead, "%s twice: %s",
             e->ended && e->end == JEND_TIMED_OUT ? "timed out" : "failed",
             why);
  else if (stopped_running && alone &&
           v->crashes >= JOURNAL_ISOLATE_AFTER + JOURNAL_ALONE_STOPS)
    snprintf(v->dead, sizeof v->dead, "tghost stopped while it ran alone, "
             "%ld times in all (crashes, kills or cut-short runs)",
             v->crashes);
  else if (v->crashes >= JOURNAL_MAX_CRASHES)
    snprintf(v->dead, sizeof v->dead, "tghost stopped %ld times while it ran",
             v->crashes);
}

static void report_damage(const char *path, const struct jfold *f,
                          const char *data, size_t size) {
  if (f->truncated)
    log_warn("journal %s: a truncated record at the end (a crash while "
             "writing?): its %zu byte(s) are dropped", path,
             f->truncated_bytes);
  if (!f->damaged_regions) return;
  /* Updates whose own record is gone but whose later records survived
   * (a block of zeros leaves nothing else to count by). */
  size_t orphans = 0;
  struct buf ids = BUF_INIT;
  for (size_t i = 0; i < f->n; i++) {
    const struct jentry *e = &f->e[i];
    if (e->json || (e->ended && (e->end == JEND_DONE || e->end == JEND_DEAD)))
      continue;
    if (orphans++ < 10)
      buf_printf(&ids, "%s%" PRId64, orphans > 1 ? ", " : "", e->id);
  }
  char *kept = keep_corrupt(path, data, size);
  log_error("journal %s: %zu damaged region(s), %zu byte(s), skipped%s: "
            "%zu update record(s) lost with them%s%s%s (%zu good "
            "record(s) read); the damaged file is %s%s", path,
            f->damaged_regions, f->damaged_bytes,
            f->header_ok ? "" : " (the header among them)",
            f->damaged_updates + orphans,
            orphans ? "; unfinished updates lost by id: " : "",
            orphans ? ids.data : "", orphans > 10 ? ", ..." : "",
            f->records, kept ? "kept as " : "NOT kept (cannot write a copy)",
            kept ? kept : "");
  buf_free(&ids);
  free(kept);
}

/* The unfinished updates, decided: dead letters as lines for FILE.dead,
 * the others rewritten (with their counters) into content and handed back,
 * oldest first: to run alone those that were running at more than one
 * crash (or all of them, after a crash loop), the others to replay. */
struct recovery {
  struct buf dead_lines;
  size_t ndead, nreplay, nalone;
  struct jfold risky;            /* handed back after a failure: json kept */
};

struct pending_item {
  struct update_item *u;
  bool alone;
};

static int cmp_pending(const void *a, const void *b) {
  int64_t x = ((const struct pending_item *)a)->u->id;
  int64_t y = ((const struct pending_item *)b)->u->id;
  return x < y ? -1 : x > y;
}

static void recover(const char *path, const struct jfold *f, long streak,
                    struct buf *content, struct recovery *rc,
                    struct qlist *alone, struct qlist *replay) {
  struct pending_item *items = xcalloc(f->n ? f->n : 1, sizeof *items);
  size_t n = 0;
  jfold_read(&rc->risky, NULL, 0);
  for (size_t i = 0; i < f->n; i++) {
    const struct jentry *e = &f->e[i];
    if (!jentry_unfinished(e)) continue;
    struct verdict v;
    judge(e, &v);
    if (v.dead[0]) {
      put_dead_letter(&rc->dead_lines, e->id, e->json, e->len, v.dead);
      char *clean = log_redacted_copy(v.dead, strlen(v.dead));
      log_error("journal: update %" PRId64 " is a dead letter: %s (kept in "
                "%s%s)", e->id, clean, path, DEAD_SUFFIX);
      free(clean);
      rc->ndead++;
      continue;
    }
    journal_put_update(content, e->id, v.crashes, v.failures, e->json,
                       e->len);
    struct update_item *u = xcalloc(1, sizeof *u);
    u->id = e->id;
    u->json = xstrndup(e->json, e->len);
    u->len = e->len;
    u->redelivered = true;
    items[n].u = u;
    items[n].alone = v.crashes >= JOURNAL_ISOLATE_AFTER ||
                     streak >= JOURNAL_CRASH_LOOP_RUNS;
    n++;
    if (v.failures > 0) {
      struct jentry *r = jfold_add(&rc->risky, e->id);
      r->json = xstrndup(e->json, e->len);
      r->len = e->len;
      r->failures = v.failures;
    }
  }
  qsort(items, n, sizeof *items, cmp_pending);
  for (size_t i = 0; i < n; i++) {
    qlist_push_back(items[i].alone ? alone : replay, &items[i].u->node);
    if (items[i].alone) rc->nalone++;
    else rc->nreplay++;
  }
  free(items);
}

/* Opens the journal at path for the bot bot_id: takes its lock, reads and
 * recovers it, writes the dead letters, rewrites it with what must run
 * again (moved into alone and replay, oldest first) and starts its
 * thread. Returns NULL with err set when it cannot be used. */
static struct journal *journal_open(const char *path, int64_t bot_id,
                                    struct event_base *base,
                                    journal_durable_fn on_durable, void *ud,
                                    struct qlist *alone, struct qlist *replay,
                                    struct jfold *risky, struct buf *err) {
  int lock_fd = take_lock(path, err);
  if (lock_fd < 0) return NULL;
  char *data;
  size_t size;
  if (read_file(path, &data, &size) != 0) {
    buf_printf(err, "cannot read the journal %s: %s", path, strerror(errno));
    close(lock_fd);
    return NULL;
  }
  struct jfold f;
  jfold_read(&f, data, size);
  if (f.bot_id >= 0 && bot_id >= 0 && f.bot_id != bot_id) {
    buf_printf(err, "the journal %s belongs to bot %" PRId64 ", not to this "
               "bot (%" PRId64 "): give each bot a journal of its own", path,
               f.bot_id, bot_id);
    jfold_free(&f);
    free(data);
    close(lock_fd);
    return NULL;
  }
  report_damage(path, &f, data, size);
  free(data);
  /* Runs in a row that crashed before any update ended. */
  long streak = f.clean || f.records == 0 || f.progress ? 0 : f.streak + 1;
  if (streak >= JOURNAL_CRASH_LOOP_RUNS)
    log_warn("journal %s: tghost stopped %ld times in a row before any "
             "update ended: the updates it had run alone, one at a time, "
             "until the one that stops it is found", path, streak);

  int64_t own_id = bot_id >= 0 ? bot_id : f.bot_id;
  struct buf content = BUF_INIT;
  journal_put_header(&content, own_id);
  struct recovery rc;
  memset(&rc, 0, sizeof rc);
  recover(path, &f, streak, &content, &rc, alone, replay);
  journal_put_mark(&content, 'O', streak);
  char *dead_path = path_with(path, DEAD_SUFFIX);
  if (rc.ndead && !append_dead(dead_path, &rc.dead_lines))
    log_error("cannot write the dead letters to %s: %s", dead_path,
              strerror(errno));
  buf_free(&rc.dead_lines);
  int64_t *known_ids = xcalloc(f.n ? f.n : 1, sizeof *known_ids);
  size_t nknown = f.n;
  for (size_t i = 0; i < f.n; i++) known_ids[i] = f.e[i].id;
  jfold_free(&f);
  *risky = rc.risky;

  int fd = replace_file(path, &content, err);
  buf_free(&content);
  if (fd < 0) {
    update_batch_free(alone);
    update_batch_free(replay);
    jfold_free(risky);
    free(known_ids);
    free(dead_path);
    close(lock_fd);
    return NULL;
  }
  if (rc.nreplay || rc.nalone || rc.ndead)
    log_info("journal %s: %zu unfinished update(s) run again first%s%s", path,
             rc.nreplay + rc.nalone,
             rc.nalone ? " (some alone, one at a time: they were running "
                         "when tghost stopped more than once)" : "",
             rc.ndead ? "; see the dead letters above" : "");

  struct journal *j = xcalloc(1, sizeof *j);
  j->path = xstrdup(path);
  j->dead_path = dead_path;
  j->bot_id = own_id;
  j->fd = fd;
  j->lock_fd = lock_fd;
  j->on_durable = on_durable;
  j->ud = ud;
  j->known_ids = known_ids;
  j->nknown = nknown;
  j->unfinished = rc.nreplay + rc.nalone;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cond, NULL);
  if (pipe2(j->notify, O_NONBLOCK | O_CLOEXEC) != 0 ||
      pthread_create(&j->thread, NULL, journal_thread, j) != 0) {
    buf_printf(err, "cannot start the journal: %s", strerror(errno));
    close(fd);
    close(lock_fd);
    update_batch_free(alone);
    update_batch_free(replay);
    jfold_free(risky);
    free(j->known_ids);
    free(j->dead_path);
    free(j->path);
    free(j);
    return NULL;
  }
  j->ev = event_new(base, j->notify[0], EV_READ | EV_PERSIST, on_notify, j);
  event_add(j->ev, NULL);
  j->flush_ev = event_new(base, -1, 0, on_flush, j);
  return j;
}

/* Writes what is queued, stops the thread, compacts the file (marking a
 * clean end), closes it and lets go of the lock. */
static void journal_close(struct journal *j) {
  if (!j) return;
  flush_marks(j);
  pthread_mutex_lock(&j->mu);
  j->closing = true;
  pthread_cond_signal(&j->cond);
  pthread_mutex_unlock(&j->mu);
  pthread_join(j->thread, NULL);
  /* Leave it small for the next start (tghost is exiting: this may wait). */
  pthread_mutex_lock(&j->mu);
  bool failed = j->error[0] != '\0';
  pthread_mutex_unlock(&j->mu);
  if (!failed) compact(j, true);
  event_free(j->ev);
  event_free(j->flush_ev);
  buf_free(&j->marks);
  close(j->notify[0]);
  close(j->notify[1]);
  close(j->fd);
  close(j->lock_fd);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cond);
  free(j->known_ids);
  free(j->dead_path);
  free(j->path);
  free(j);
}

static size_t journal_take_known_ids(struct journal *j, int64_t **ids) {
  *ids = j->known_ids;
  size_t n = j->nknown;
  j->known_ids = NULL;
  j->nknown = 0;
  return n;
}

int journal_list_dead_letters(const char *path, FILE *out, struct buf *err) {
  struct buf dead_path = BUF_INIT;
  buf_printf(&dead_path, "%s.dead", path);
  char *data;
  size_t size;
  if (read_file(dead_path.data, &data, &size) != 0) {
    buf_printf(err, "cannot read %s: %s", dead_path.data, strerror(errno));
    buf_free(&dead_path);
    return -1;
  }
  int n = 0;
  for (char *line = data; line && line < data + size;) {
    char *nl = memchr(line, '\n', (size_t)(data + size - line));
    size_t len = nl ? (size_t)(nl - line) : (size_t)(data + size - line);
    struct json_reader at;
    struct json_number id;
    struct json_slice s1 = {0}, s2 = {0};
    struct buf reason = BUF_INIT, when = BUF_INIT;
    if (len && json_find_member(line, len, "update_id", &at) &&
        json_read_number(&at, &id)) {
      if (json_find_member(line, len, "reason", &at) &&
          json_read_string(&at, &s1))
        json_unescape(&s1, &reason);
      if (json_find_member(line, len, "at", &at) && json_read_string(&at, &s2))
        json_unescape(&s2, &when);
      fprintf(out, "update %lld (%s): %s\n", (long long)id.i,
              when.data ? when.data : "?", reason.data ? reason.data : "?");
      n++;
    }
    buf_free(&reason);
    buf_free(&when);
    line = nl ? nl + 1 : NULL;
  }
  free(data);
  if (n)
    fprintf(out, "%d dead letter(s); each line of %s holds the whole update "
            "as JSON\n", n, dead_path.data);
  else
    fprintf(out, "no dead letters in %s\n", dead_path.data);
  buf_free(&dead_path);
  return n;
}

/* --- the source: the journal around another ----------------------------- */

enum isolation {
  ALONE_NONE,         /* nobody runs alone now */
  ALONE_WRITING,      /* its A record goes to disk */
  ALONE_RUNNING,      /* delivered; until it ends or waits */
};

struct journaled {
  struct update_source base;
  struct update_source *inner;
  struct journal *j;
  struct qlist alone;            /* to run alone, one at a time */
  struct qlist replay;           /* handed back once those have run */
  struct jfold risky;            /* handed back after a failure */
  enum isolation isolation;
  struct update_item *alone_item;/* while its A record is written */
  int64_t alone_id;              /* running alone; -1 */
  bool alone_started;            /* its first start (A stands for it) */
  bool accept_waits;             /* accepted, not durable yet */
  bool drained_waits;            /* drained, not durable yet */
  bool stopping;
  bool failed;                   /* writing failed: nothing more passes */
};

static struct journaled *journaled_of(struct update_source *s) {
  return (struct journaled *)s;
}

/* Runs the next update that must run alone: its A record first. */
static void next_alone(struct journaled *js) {
  if (js->stopping || js->isolation != ALONE_NONE) return;
  struct qnode *n = qlist_pop_front(&js->alone);
  if (!n) return;
  js->alone_item = qlist_entry(n, struct update_item, node);
  js->isolation = ALONE_WRITING;
  journal_record_alone(js->j, js->alone_item->id);
}

static bool isolating(const struct journaled *js) {
  return js->isolation != ALONE_NONE || !qlist_empty(&js->alone);
}

/* Inner's batch: on disk (asked for) before it goes on; its accept waits
 * for the fsync. */
static void on_inner_batch(void *ud, struct qlist *batch, const char *via) {
  struct journaled *js = ud;
  if (!qlist_empty(batch)) journal_append_batch(js->j, batch);
  source_deliver(&js->base, batch, via);
}

static void on_inner_ready(void *ud) {
  struct journaled *js = ud;
  if (!journal_pending(js->j) && !isolating(js)) source_ready(&js->base);
}

static void on_inner_fatal(void *ud, const char *message) {
  struct journaled *js = ud;
  source_fatal(&js->base, message);
}

static void on_inner_stopped(void *ud) {
  struct journaled *js = ud;
  source_stopped(&js->base);
}

static const struct update_source_events inner_events = {
    on_inner_batch, on_inner_ready, on_inner_fatal, on_inner_stopped, NULL};

static void on_durable(void *ud, bool ok, const char *message) {
  struct journaled *js = ud;
  if (js->failed) return;
  if (!ok) {
    js->failed = true;
    struct buf msg = BUF_INIT;
    buf_printf(&msg, "%s: polling stops, so that no update is confirmed to "
               "Telegram without a record", message);
    source_fatal(&js->base, msg.data);
    buf_free(&msg);
    return;
  }
  if (journal_pending(js->j)) return;   /* a later batch: its own event */
  if (js->accept_waits) {
    js->accept_waits = false;
    source_accept(js->inner);
  }
  if (js->drained_waits) {
    js->drained_waits = false;
    source_drained(js->inner);
    return;
  }
  if (js->isolation == ALONE_WRITING) {
    /* Its start is on disk: it runs, with nothing beside it. */
    js->isolation = ALONE_RUNNING;
    js->alone_id = js->alone_item->id;
    js->alone_started = false;
    struct qlist one;
    qlist_init(&one);
    qlist_push_back(&one, &js->alone_item->node);
    js->alone_item = NULL;
    source_deliver(&js->base, &one, "journal");
    return;
  }
  if (!isolating(js)) source_ready(&js->base);
}

static void journaled_start(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  next_alone(js);
  source_start(js->inner);
}

/* What did not finish runs first: alone, one at a time, what was running
 * at more than one crash, then the rest at once. Then the inner source,
 * whose next fetch confirms (whose next 200s acknowledge) what it
 * delivered: not before that is on disk. */
static void journaled_fetch(struct update_source *s, int limit) {
  struct journaled *js = journaled_of(s);
  if (js->failed || isolating(js)) return;
  if (!qlist_empty(&js->replay)) {
    source_deliver(s, &js->replay, "journal");
    return;
  }
  if (journal_pending(js->j)) return;
  source_fetch(js->inner, limit);
}

static void journaled_accept(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  if (journal_pending(js->j)) js->accept_waits = true;
  else source_accept(js->inner);
}

/* An update handed back after a failure failed again: a dead letter now
 * (listed at once by --dead-letters), not at the next start. */
static bool dies_now(struct journaled *js, int64_t id, enum jend end,
                     const char *reason) {
  struct jentry *e = jfold_find(&js->risky, id);
  if (!e || !e->json || e->failures + 1 < JOURNAL_MAX_FAILURES) return false;
  char why[JOURNAL_MAX_REASON + 32];
  snprintf(why, sizeof why, "%s twice: %.*s",
           end == JEND_TIMED_OUT ? "timed out" : "failed", JOURNAL_MAX_REASON,
           reason && *reason ? reason : "(no message)");
  struct buf line = BUF_INIT;
  put_dead_letter(&line, id, e->json, e->len, why);
  journal_write_dead(js->j, &line);
  journal_record_end(js->j, id, JEND_DEAD, why);
  char *clean = log_redacted_copy(why, strlen(why));
  log_error("journal: update %" PRId64 " is a dead letter: %s (kept in %s)",
            id, clean, js->j->dead_path);
  free(clean);
  free(e->json);
  e->json = NULL;
  return true;
}

static void alone_over(struct journaled *js, int64_t id) {
  if (js->isolation != ALONE_RUNNING || id != js->alone_id) return;
  js->isolation = ALONE_NONE;
  js->alone_id = -1;
  next_alone(js);
  /* The last one: what else was handed back, then the inner source. */
  if (!isolating(js) && !js->stopping) source_ready(&js->base);
}

static void journaled_outcome(struct update_source *s, int64_t id,
                              enum update_outcome outcome,
                              const char *reason) {
  struct journaled *js = journaled_of(s);
  bool alone = js->isolation == ALONE_RUNNING && id == js->alone_id;
  switch (outcome) {
    case UPDATE_STARTED:
      /* Its A record says it runs (alone). */
      if (alone && !js->alone_started) js->alone_started = true;
      else journal_record_mark(js->j, 'S', id);
      return;
    case UPDATE_WAITING:
      journal_record_mark(js->j, 'W', id);
      /* Not running: the next may run alone. */
      if (alone) alone_over(js, id);
      return;
    case UPDATE_DONE:
      journal_record_end(js->j, id, JEND_DONE, reason);
      break;
    case UPDATE_FAILED:
    case UPDATE_TIMED_OUT: {
      enum jend end =
          outcome == UPDATE_FAILED ? JEND_FAILED : JEND_TIMED_OUT;
      if (!dies_now(js, id, end, reason))
        journal_record_end(js->j, id, end, reason);
      break;
    }
    case UPDATE_CUT_SHORT:
      journal_record_end(js->j, id, JEND_CUT_SHORT, reason);
      break;
    case UPDATE_RELEASED:
      return;   /* unfinished in the file: it runs at the next start */
    case UPDATE_IDLE:
      return;   /* not an end; its WAITING says it waits */
  }
  if (alone) alone_over(js, id);
}

static void journaled_known(struct update_source *s, const int64_t *ids,
                            size_t n) {
  source_known(journaled_of(s)->inner, ids, n);
}

static void journaled_reconfigure(struct update_source *s,
                                  const struct run_options *o) {
  source_reconfigure(journaled_of(s)->inner, o);
}

static void journaled_stop(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  js->stopping = true;
  source_stop(js->inner);
}

static void journaled_drained(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  if (journal_pending(js->j)) js->drained_waits = true;
  else source_drained(js->inner);
}

static void journaled_abort(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  js->stopping = true;
  source_abort(js->inner);
}

static void journaled_health(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  journal_publish_metrics(js->j);
  source_health(js->inner);
}

static void journaled_free(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  source_free(js->inner);
  journal_close(js->j);
  update_batch_free(&js->alone);
  update_batch_free(&js->replay);
  update_item_free(js->alone_item);
  jfold_free(&js->risky);
  free(js);
}

static const struct update_source_type journaled_type = {
    .name = "journal",
    /* The file keeps them: they run at the next start. */
    .releases_unstarted = true,
    .start = journaled_start,
    .fetch = journaled_fetch,
    .accept = journaled_accept,
    .outcome = journaled_outcome,
    .known = journaled_known,
    .reconfigure = journaled_reconfigure,
    .stop = journaled_stop,
    .drained = journaled_drained,
    .abort = journaled_abort,
    .health = journaled_health,
    .free = journaled_free,
};

struct update_source *journal_source_new(const char *path, int64_t bot_id,
                                         struct update_source *inner,
                                         struct event_base *base,
                                         struct buf *err) {
  struct journaled *js = xcalloc(1, sizeof *js);
  qlist_init(&js->alone);
  qlist_init(&js->replay);
  js->alone_id = -1;
  js->j = journal_open(path, bot_id, base, on_durable, js, &js->alone,
                       &js->replay, &js->risky, err);
  if (!js->j) {
    source_free(inner);
    free(js);
    return NULL;
  }
  update_source_init(&js->base, &journaled_type, NULL, NULL);
  js->inner = inner;
  inner->events = &inner_events;
  inner->events_ud = js;
  /* Telegram may deliver again what was accepted before a crash. */
  int64_t *ids;
  size_t n = journal_take_known_ids(js->j, &ids);
  source_known(inner, ids, n);
  free(ids);
  return &js->base;
}
