#include "pipeline/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/update.h"

enum journal_outcome {
  JOURNAL_DONE,
  JOURNAL_FAILED,
  JOURNAL_TIMED_OUT,
  JOURNAL_CANCELLED,
};

/* Called on the loop once every batch appended so far is durable (ok), or
 * when writing failed (ok false, message says why). */
typedef void (*journal_durable_fn)(void *ud, bool ok, const char *message);

#define HEADER_FMT "tghost-journal 1 bot %" PRId64 "\n"
/* A failure's reason is kept this long at most. */
#define MAX_REASON 300

/* --- CRC-32 (IEEE), for damaged records -------------------------------- */

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc32_of(const char *p, size_t n, uint32_t crc) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, crc_init);
  crc = ~crc;
  for (size_t i = 0; i < n; i++)
    crc = crc_table[(crc ^ (unsigned char)p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

/* The CRC of a record covers its fields and its payload. */
static uint32_t record_crc(char kind, int64_t id, long a, long b,
                           const char *payload, size_t len) {
  char head[96];
  int n = snprintf(head, sizeof head, "%c %" PRId64 " %ld %ld", kind, id, a, b);
  return crc32_of(payload, len, crc32_of(head, (size_t)n, 0));
}

static void append_update(struct buf *out, int64_t id, long starts,
                          long failures, const char *json, size_t len) {
  uint32_t crc = record_crc('U', id, starts, failures, json, len);
  buf_printf(out, "U %" PRId64 " %ld %ld %zu %08" PRIx32 "\n", id, starts,
             failures, len, crc);
  buf_append(out, json, len);
  buf_append_char(out, '\n');
}

static void append_start(struct buf *out, int64_t id) {
  uint32_t crc = record_crc('S', id, 0, 0, "", 0);
  buf_printf(out, "S %" PRId64 " %08" PRIx32 "\n", id, crc);
}

static const char outcome_letter[] = {'d', 'f', 't', 'c'};

static void append_end(struct buf *out, int64_t id,
                       enum journal_outcome outcome, const char *reason) {
  size_t len = reason ? strcspn(reason, "\n") : 0;
  if (len > MAX_REASON) len = MAX_REASON;
  uint32_t crc = record_crc('E', id, outcome, 0, reason ? reason : "", len);
  buf_printf(out, "E %" PRId64 " %c %zu %08" PRIx32 "\n", id,
             outcome_letter[outcome], len, crc);
  if (len) buf_append(out, reason, len);
  buf_append_char(out, '\n');
}

/* --- reading: records folded into the state of each update -------------- */

struct entry {
  int64_t id;
  long starts, failures;
  char *json;
  size_t len;
  bool ended;
  enum journal_outcome outcome;
  char *reason;
};

struct fold {
  struct entry *e;
  size_t n, cap;
  size_t *slots;                 /* open addressing: index + 1, 0 = empty */
  size_t nslots;
  int64_t bot_id;                /* from the header, -1 if none */
  int64_t max_id;
  size_t good_bytes;             /* the readable part of the file */
  bool damaged;
};

static size_t hash_id(int64_t id) {
  uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
  return (size_t)(x ^ (x >> 29));
}

static void fold_grow(struct fold *f) {
  size_t nslots = f->nslots ? f->nslots * 2 : 64;
  size_t *slots = xcalloc(nslots, sizeof *slots);
  for (size_t i = 0; i < f->n; i++) {
    size_t h = hash_id(f->e[i].id) & (nslots - 1);
    while (slots[h]) h = (h + 1) & (nslots - 1);
    slots[h] = i + 1;
  }
  free(f->slots);
  f->slots = slots;
  f->nslots = nslots;
}

static struct entry *fold_find(struct fold *f, int64_t id, bool create) {
  if (f->nslots) {
    size_t h = hash_id(id) & (f->nslots - 1);
    while (f->slots[h]) {
      if (f->e[f->slots[h] - 1].id == id) return &f->e[f->slots[h] - 1];
      h = (h + 1) & (f->nslots - 1);
    }
  }
  if (!create) return NULL;
  if ((f->n + 1) * 2 > f->nslots) fold_grow(f);
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 64;
    f->e = xrealloc(f->e, f->cap * sizeof *f->e);
  }
  struct entry *e = &f->e[f->n];
  memset(e, 0, sizeof *e);
  e->id = id;
  size_t h = hash_id(id) & (f->nslots - 1);
  while (f->slots[h]) h = (h + 1) & (f->nslots - 1);
  f->slots[h] = ++f->n;
  return e;
}

static void fold_free(struct fold *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->e[i].json);
    free(f->e[i].reason);
  }
  free(f->e);
  free(f->slots);
  memset(f, 0, sizeof *f);
}

/* Reads one record at p (end: the end of the data); returns its length, or
 * 0 if it is damaged or incomplete. */
static size_t read_record(struct fold *f, const char *p, const char *end) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  if (!nl || nl - p > 120) return 0;
  char line[128];
  memcpy(line, p, (size_t)(nl - p));
  line[nl - p] = '\0';
  char kind, letter = 0;
  int64_t id;
  long a = 0, b = 0;
  size_t len;
  unsigned crc;
  int used = 0;
  if (line[0] == 'S') {
    if (sscanf(line, "S %" SCNd64 " %8x%n", &id, &crc, &used) != 2 ||
        line[used] != '\0' || id < 0 ||
        record_crc('S', id, 0, 0, "", 0) != crc)
      return 0;
    fold_find(f, id, true)->starts++;
    if (id > f->max_id) f->max_id = id;
    return (size_t)(nl + 1 - p);
  }
  if (line[0] == 'U') {
    if (sscanf(line, "U %" SCNd64 " %ld %ld %zu %8x%n", &id, &a, &b, &len,
               &crc, &used) != 5)
      return 0;
    kind = 'U';
  } else if (line[0] == 'E') {
    if (sscanf(line, "E %" SCNd64 " %c %zu %8x%n", &id, &letter, &len, &crc,
               &used) != 4)
      return 0;
    kind = 'E';
    const char *l = memchr(outcome_letter, letter, sizeof outcome_letter);
    if (!l) return 0;
    a = l - outcome_letter;
  } else {
    return 0;
  }
  if (line[used] != '\0' || id < 0) return 0;
  const char *payload = nl + 1;
  if ((size_t)(end - payload) < len + 1 || payload[len] != '\n') return 0;
  if (record_crc(kind, id, a, kind == 'U' ? b : 0, payload, len) != crc)
    return 0;
  struct entry *e = fold_find(f, id, true);
  if (kind == 'U') {
    free(e->json);
    e->json = xstrndup(payload, len);
    e->len = len;
    e->starts = a;
    e->failures = b;
    e->ended = false;
  } else {
    e->ended = true;
    e->outcome = (enum journal_outcome)a;
    free(e->reason);
    e->reason = xstrndup(payload, len);
  }
  if (id > f->max_id) f->max_id = id;
  return (size_t)(payload + len + 1 - p);
}

/* Folds data; a damaged record ends the readable part. */
static void fold_data(struct fold *f, const char *data, size_t size) {
  f->bot_id = -1;
  f->max_id = -1;
  if (!data || size == 0) return;   /* a new journal */
  const char *p = data, *end = data + size;
  const char *nl = memchr(p, '\n', size);
  if (!nl || sscanf(p, "tghost-journal 1 bot %" SCNd64, &f->bot_id) != 1) {
    f->damaged = size > 0;
    return;
  }
  p = nl + 1;
  while (p < end) {
    size_t n = read_record(f, p, end);
    if (!n) {
      f->damaged = true;
      break;
    }
    p += n;
  }
  f->good_bytes = (size_t)(p - data);
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

/* The entries that must still run (not done): their U record, and an end
 * that failed or timed out with its reason (a cancel means no end). */
static void write_unfinished(const struct fold *f, struct buf *out) {
  for (size_t i = 0; i < f->n; i++) {
    const struct entry *e = &f->e[i];
    if (!e->json || (e->ended && e->outcome == JOURNAL_DONE)) continue;
    append_update(out, e->id, e->starts, e->failures, e->json, e->len);
    if (e->ended &&
        (e->outcome == JOURNAL_FAILED || e->outcome == JOURNAL_TIMED_OUT))
      append_end(out, e->id, e->outcome, e->reason);
  }
}

/* Writes path's new content through a temporary file and a rename, so a
 * crash leaves the old or the new file, never half of one. Returns the new
 * file opened for appending, or -1. */
static int replace_file(const char *path, const struct buf *content,
                        struct buf *err) {
  struct buf tmp = BUF_INIT;
  buf_printf(&tmp, "%s.tmp", path);
  int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0;
  size_t done = 0;
  while (ok && done < content->len) {
    ssize_t w = write(fd, content->data + done, content->len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ok = false;
    else done += (size_t)w;
  }
  if (ok && fsync(fd) != 0) ok = false;
  if (fd >= 0) close(fd);
  if (ok && rename(tmp.data, path) != 0) ok = false;
  if (!ok) {
    buf_printf(err, "cannot write the journal %s: %s", path, strerror(errno));
    unlink(tmp.data);
    buf_free(&tmp);
    return -1;
  }
  buf_free(&tmp);
  /* The rename itself is durable once the folder is. */
  char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
  int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  free(dir);
  fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0)
    buf_printf(err, "cannot open the journal %s: %s", path, strerror(errno));
  return fd;
}

/* --- the journal -------------------------------------------------------- */

struct op {
  struct buf data;
  bool sync;                     /* a batch: fsync, then tell the loop */
  struct op *next;
};

struct journal {
  char *path;
  int64_t bot_id;
  int fd;
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

/* On the thread: rewrites the file with what has not finished. */
static void compact(struct journal *j) {
  char *data;
  size_t size;
  if (read_file(j->path, &data, &size) != 0) return;
  struct fold f;
  memset(&f, 0, sizeof f);
  fold_data(&f, data, size);
  free(data);
  struct buf out = BUF_INIT, err = BUF_INIT;
  buf_printf(&out, HEADER_FMT, j->bot_id);
  write_unfinished(&f, &out);
  fold_free(&f);
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
    if (ok && j->since_compact > JOURNAL_COMPACT_BYTES) compact(j);
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

static void journal_append_batch(struct journal *j,
                                 const struct qlist *batch) {
  flush_marks(j);
  struct op *op = xcalloc(1, sizeof *op);
  qlist_foreach(n, batch) {
    const struct update_item *u = qlist_entry(n, struct update_item, node);
    append_update(&op->data, u->id, 0, 0, u->json, u->len);
  }
  op->sync = true;
  j->batches_sent++;
  j->unfinished += qlist_size(batch);
  enqueue(j, op);
}

static void journal_record_start(struct journal *j, int64_t id) {
  append_start(&j->marks, id);
  mark(j);
}

static void journal_record_end(struct journal *j, int64_t id,
                               enum journal_outcome outcome,
                               const char *reason) {
  append_end(&j->marks, id, outcome, reason);
  mark(j);
  if (j->unfinished) j->unfinished--;
}

/* The journal's gauges (set when the metrics are read). */
static void journal_publish_metrics(struct journal *j) {
  pthread_mutex_lock(&j->mu);
  unsigned long unsynced = j->batches_sent - j->batches_durable;
  pthread_mutex_unlock(&j->mu);
  metric_set(METRIC_JOURNAL_UNSYNCED, (double)unsynced, NULL, NULL);
  metric_set(METRIC_JOURNAL_BACKLOG, (double)j->unfinished, NULL, NULL);
}

/* --- opening: recovery, dead letters ------------------------------------ */

static void json_string(struct buf *out, const char *s) {
  json_write_string(out, s ? s : "", s ? strlen(s) : 0);
}

static void write_dead_letter(FILE *fp, const struct entry *e,
                              const char *reason) {
  struct buf line = BUF_INIT;
  char at[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
  buf_printf(&line, "{\"update_id\":%" PRId64 ",\"reason\":", e->id);
  json_string(&line, reason);
  buf_printf(&line, ",\"at\":\"%s\",\"update\":", at);
  buf_append(&line, e->json, e->len);
  buf_append_str(&line, "}\n");
  fwrite(line.data, 1, line.len, fp);
  buf_free(&line);
}

static int cmp_items(const void *a, const void *b) {
  int64_t x = (*(struct update_item *const *)a)->id;
  int64_t y = (*(struct update_item *const *)b)->id;
  return x < y ? -1 : x > y;
}

int64_t journal_bot_id_of_token(const char *token) {
  if (!token) return -1;
  char *end;
  errno = 0;
  long long id = strtoll(token, &end, 10);
  return errno || end == token || *end != ':' || id <= 0 ? -1 : (int64_t)id;
}

static struct journal *journal_open(const char *path, int64_t bot_id,
                             struct event_base *base,
                             journal_durable_fn on_durable, void *ud,
                             struct qlist *replay, int64_t *max_id,
                             struct buf *err) {
  char *data;
  size_t size;
  if (read_file(path, &data, &size) != 0) {
    buf_printf(err, "cannot read the journal %s: %s", path, strerror(errno));
    return NULL;
  }
  struct fold f;
  memset(&f, 0, sizeof f);
  fold_data(&f, data, size);
  free(data);
  if (f.bot_id >= 0 && bot_id >= 0 && f.bot_id != bot_id) {
    buf_printf(err, "the journal %s belongs to bot %" PRId64 ", not to this "
               "bot (%" PRId64 "): give each bot a journal of its own", path,
               f.bot_id, bot_id);
    fold_free(&f);
    return NULL;
  }
  if (f.damaged)
    log_warn("journal %s: a damaged or truncated record at byte %zu (a crash "
             "while writing?): it and what follows are skipped", path,
             f.good_bytes);

  /* Decide each unfinished update: run it again, or a dead letter. */
  struct buf dead_path = BUF_INIT, content = BUF_INIT;
  buf_printf(&dead_path, "%s.dead", path);
  buf_printf(&content, HEADER_FMT, bot_id >= 0 ? bot_id : f.bot_id);
  FILE *dead = NULL;
  size_t nreplay = 0, ndead = 0;
  struct update_item **items = xcalloc(f.n ? f.n : 1, sizeof *items);
  for (size_t i = 0; i < f.n; i++) {
    struct entry *e = &f.e[i];
    if (!e->json || (e->ended && e->outcome == JOURNAL_DONE)) continue;
    bool failed = e->ended && (e->outcome == JOURNAL_FAILED ||
                               e->outcome == JOURNAL_TIMED_OUT);
    long failures = e->failures + (failed ? 1 : 0);
    char reason[MAX_REASON + 96] = "";
    if (failures >= 2)
      snprintf(reason, sizeof reason, "%s twice: %s",
               e->outcome == JOURNAL_TIMED_OUT ? "timed out" : "failed",
               e->reason && *e->reason ? e->reason : "(no message)");
    else if (e->starts >= JOURNAL_MAX_STARTS)
      snprintf(reason, sizeof reason, "cut short %ld times (crashes, kills "
               "or drain timeouts) without finishing", e->starts);
    if (reason[0]) {
      if (!dead) dead = fopen(dead_path.data, "a");
      if (dead) write_dead_letter(dead, e, reason);
      log_error("journal: update %" PRId64 " is a dead letter: %s (kept in "
                "%s)", e->id, reason, dead_path.data);
      ndead++;
      continue;
    }
    append_update(&content, e->id, e->starts, failures, e->json, e->len);
    struct update_item *u = xcalloc(1, sizeof *u);
    u->id = e->id;
    u->json = e->json;
    u->len = e->len;
    u->redelivered = true;
    e->json = NULL;
    items[nreplay++] = u;
  }
  if (dead && fclose(dead) != 0)
    log_error("cannot write %s: %s", dead_path.data, strerror(errno));
  buf_free(&dead_path);
  *max_id = f.max_id;
  int64_t *known_ids = xcalloc(f.n ? f.n : 1, sizeof *known_ids);
  size_t nknown = f.n;
  for (size_t i = 0; i < f.n; i++) known_ids[i] = f.e[i].id;
  fold_free(&f);

  int fd = replace_file(path, &content, err);
  buf_free(&content);
  if (fd < 0) {
    for (size_t i = 0; i < nreplay; i++) update_item_free(items[i]);
    free(items);
    free(known_ids);
    return NULL;
  }
  qsort(items, nreplay, sizeof *items, cmp_items);
  for (size_t i = 0; i < nreplay; i++) qlist_push_back(replay, &items[i]->node);
  free(items);
  if (nreplay || ndead)
    log_info("journal %s: %zu unfinished update(s) run again first%s", path,
             nreplay, ndead ? "; see the dead letters above" : "");

  struct journal *j = xcalloc(1, sizeof *j);
  j->path = xstrdup(path);
  j->bot_id = bot_id >= 0 ? bot_id : f.bot_id;
  j->fd = fd;
  j->on_durable = on_durable;
  j->ud = ud;
  j->known_ids = known_ids;
  j->nknown = nknown;
  j->unfinished = nreplay;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cond, NULL);
  if (pipe2(j->notify, O_NONBLOCK | O_CLOEXEC) != 0 ||
      pthread_create(&j->thread, NULL, journal_thread, j) != 0) {
    buf_printf(err, "cannot start the journal: %s", strerror(errno));
    close(fd);
    free(j->known_ids);
    free(j->path);
    free(j);
    return NULL;
  }
  j->ev = event_new(base, j->notify[0], EV_READ | EV_PERSIST, on_notify, j);
  event_add(j->ev, NULL);
  j->flush_ev = event_new(base, -1, 0, on_flush, j);
  return j;
}

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
  if (!failed) compact(j);
  event_free(j->ev);
  event_free(j->flush_ev);
  buf_free(&j->marks);
  close(j->notify[0]);
  close(j->notify[1]);
  close(j->fd);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cond);
  free(j->known_ids);
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

struct journaled {
  struct update_source base;
  struct update_source *inner;
  struct journal *j;
  struct qlist replay;           /* handed back at start */
  bool accept_waits;             /* accepted, not durable yet */
  bool drained_waits;            /* drained, not durable yet */
  bool failed;                   /* writing failed: nothing more passes */
};

static struct journaled *journaled_of(struct update_source *s) {
  return (struct journaled *)s;
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
  if (!journal_pending(js->j)) source_ready(&js->base);
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
  source_ready(&js->base);
}

static void journaled_start(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  /* What did not finish runs before anything new. */
  if (!qlist_empty(&js->replay)) source_deliver(s, &js->replay, "journal");
  source_start(js->inner);
}

/* The next fetch confirms (the next 200s acknowledge) what was delivered:
 * not before it is on disk. */
static void journaled_fetch(struct update_source *s, int limit) {
  struct journaled *js = journaled_of(s);
  if (js->failed || journal_pending(js->j)) return;
  source_fetch(js->inner, limit);
}

static void journaled_accept(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  if (journal_pending(js->j)) js->accept_waits = true;
  else source_accept(js->inner);
}

static void journaled_outcome(struct update_source *s, int64_t id,
                              enum update_outcome outcome,
                              const char *reason) {
  struct journaled *js = journaled_of(s);
  switch (outcome) {
    case UPDATE_STARTED: journal_record_start(js->j, id); break;
    case UPDATE_DONE: journal_record_end(js->j, id, JOURNAL_DONE, reason); break;
    case UPDATE_FAILED:
      journal_record_end(js->j, id, JOURNAL_FAILED, reason);
      break;
    case UPDATE_TIMED_OUT:
      journal_record_end(js->j, id, JOURNAL_TIMED_OUT, reason);
      break;
    case UPDATE_CUT_SHORT:
      journal_record_end(js->j, id, JOURNAL_CANCELLED, reason);
      break;
    case UPDATE_RELEASED:
      break;   /* unfinished in the file: it runs at the next start */
    case UPDATE_WAITING:
      break;   /* not an end */
  }
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
  source_stop(journaled_of(s)->inner);
}

static void journaled_drained(struct update_source *s) {
  struct journaled *js = journaled_of(s);
  if (journal_pending(js->j)) js->drained_waits = true;
  else source_drained(js->inner);
}

static void journaled_abort(struct update_source *s) {
  source_abort(journaled_of(s)->inner);
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
  update_batch_free(&js->replay);
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
  qlist_init(&js->replay);
  int64_t max_id = -1;
  js->j = journal_open(path, bot_id, base, on_durable, js, &js->replay,
                       &max_id, err);
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
