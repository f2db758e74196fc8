#include "pipeline/journalfile.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counters and ids stay below this: they never overflow when counted on. */
#define MAX_NUMBER ((uint64_t)1 << 62)
/* A record's first line is at most this long (its numbers are bounded). */
#define MAX_LINE 120

/* --- CRC-32 (IEEE) ------------------------------------------------------ */

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

/* The CRC of a record covers its letter, its numbers and its payload. */
static uint32_t record_crc(char kind, int64_t id, long a, long b,
                           const char *payload, size_t len) {
  char head[96];
  int n = snprintf(head, sizeof head, "%c %" PRId64 " %ld %ld", kind, id, a,
                   b);
  return crc32_of(payload, len, crc32_of(head, (size_t)n, 0));
}

/* --- writing ------------------------------------------------------------ */

static const char end_letters[] = {'d', 'f', 't', 'c', 'x'};

void journal_put_header(struct buf *out, int64_t bot_id) {
  buf_printf(out, "tghost-journal %d bot %" PRId64 "\n", JOURNAL_VERSION,
             bot_id);
}

void journal_put_update(struct buf *out, int64_t id, long crashes,
                        long failures, const char *json, size_t len) {
  uint32_t crc = record_crc('U', id, crashes, failures, json, len);
  buf_printf(out, "U %" PRId64 " %ld %ld %zu %08" PRIx32 "\n", id, crashes,
             failures, len, crc);
  buf_append(out, json, len);
  buf_append_char(out, '\n');
}

void journal_put_mark(struct buf *out, char kind, int64_t id) {
  uint32_t crc = record_crc(kind, id, 0, 0, "", 0);
  buf_printf(out, "%c %" PRId64 " %08" PRIx32 "\n", kind, id, crc);
}

void journal_put_end(struct buf *out, int64_t id, enum jend end,
                     const char *reason) {
  size_t len = reason ? strcspn(reason, "\r\n") : 0;
  if (len > JOURNAL_MAX_REASON) len = JOURNAL_MAX_REASON;
  uint32_t crc = record_crc('E', id, (long)end, 0, reason ? reason : "", len);
  buf_printf(out, "E %" PRId64 " %c %zu %08" PRIx32 "\n", id, end_letters[end],
             len, crc);
  if (len) buf_append(out, reason, len);
  buf_append_char(out, '\n');
}

/* --- the fold: every record applied to the state of its update ---------- */

static size_t hash_id(int64_t id) {
  uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
  return (size_t)(x ^ (x >> 29));
}

static void grow_slots(struct jfold *f) {
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

struct jentry *jfold_find(struct jfold *f, int64_t id) {
  if (!f->nslots) return NULL;
  size_t h = hash_id(id) & (f->nslots - 1);
  while (f->slots[h]) {
    if (f->e[f->slots[h] - 1].id == id) return &f->e[f->slots[h] - 1];
    h = (h + 1) & (f->nslots - 1);
  }
  return NULL;
}

struct jentry *jfold_add(struct jfold *f, int64_t id) {
  struct jentry *e = jfold_find(f, id);
  if (e) return e;
  if ((f->n + 1) * 2 > f->nslots) grow_slots(f);
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 64;
    f->e = xrealloc(f->e, f->cap * sizeof *f->e);
  }
  e = &f->e[f->n];
  memset(e, 0, sizeof *e);
  e->id = id;
  size_t h = hash_id(id) & (f->nslots - 1);
  while (f->slots[h]) h = (h + 1) & (f->nslots - 1);
  f->slots[h] = ++f->n;
  return e;
}

void jfold_free(struct jfold *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->e[i].json);
    free(f->e[i].reason);
  }
  free(f->e);
  free(f->slots);
  memset(f, 0, sizeof *f);
}

bool jentry_unfinished(const struct jentry *e) {
  return e->json &&
         !(e->ended && (e->end == JEND_DONE || e->end == JEND_DEAD));
}

/* --- reading ------------------------------------------------------------ */

enum read_status { READ_OK, READ_INCOMPLETE, READ_BAD };

/* A decimal number at *p (digits only, at most max), then *p past it. */
static bool parse_number(const char **p, const char *end, uint64_t max,
                         uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  size_t digits = 0;
  while (s < end && *s >= '0' && *s <= '9') {
    if (++digits > 19) return false;
    v = v * 10 + (uint64_t)(*s - '0');
    s++;
  }
  if (digits == 0 || v > max) return false;
  *out = v;
  *p = s;
  return true;
}

static bool expect(const char **p, const char *end, char c) {
  if (*p >= end || **p != c) return false;
  (*p)++;
  return true;
}

static bool parse_crc(const char **p, const char *end, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 8; i++) {
    if (*p >= end) return false;
    char c = **p;
    unsigned d;
    if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
    else return false;   /* as written: lowercase, so no flip goes unseen */
    v = v << 4 | d;
    (*p)++;
  }
  *out = v;
  return true;
}

struct record {
  char kind;
  int64_t id;
  long a, b;                     /* U: crashes, failures; E: the end */
  const char *payload;
  size_t len;
  size_t size;                   /* of the whole record */
};

/* Parses the record at p (end: the end of the data). */
static enum read_status parse_record(const char *p, const char *end,
                                     struct record *r) {
  size_t avail = (size_t)(end - p);
  const char *nl = memchr(p, '\n', avail < MAX_LINE + 1 ? avail : MAX_LINE + 1);
  if (!nl) return avail <= MAX_LINE ? READ_INCOMPLETE : READ_BAD;
  const char *s = p, *le = nl;
  memset(r, 0, sizeof *r);
  r->kind = *s++;
  uint64_t id, a = 0, b = 0, len = 0;
  if (!expect(&s, le, ' ') || !parse_number(&s, le, MAX_NUMBER, &id))
    return READ_BAD;
  switch (r->kind) {
    case 'U':
      if (!expect(&s, le, ' ') || !parse_number(&s, le, MAX_NUMBER, &a) ||
          !expect(&s, le, ' ') || !parse_number(&s, le, MAX_NUMBER, &b) ||
          !expect(&s, le, ' ') ||
          !parse_number(&s, le, JOURNAL_MAX_RECORD, &len))
        return READ_BAD;
      break;
    case 'E': {
      if (!expect(&s, le, ' ') || s >= le) return READ_BAD;
      const char *l = memchr(end_letters, *s++, sizeof end_letters);
      if (!l) return READ_BAD;
      a = (uint64_t)(l - end_letters);
      if (!expect(&s, le, ' ') ||
          !parse_number(&s, le, JOURNAL_MAX_RECORD, &len))
        return READ_BAD;
      break;
    }
    case 'S': case 'W': case 'A': case 'O': case 'C':
      break;
    default:
      return READ_BAD;
  }
  uint32_t crc;
  if (!expect(&s, le, ' ') || !parse_crc(&s, le, &crc) || s != le)
    return READ_BAD;
  r->id = (int64_t)id;
  r->a = (long)a;
  r->b = (long)b;
  r->len = (size_t)len;
  r->payload = nl + 1;
  if (r->kind == 'U' || r->kind == 'E') {
    /* len is bounded: len + 1 cannot overflow. */
    if ((size_t)(end - r->payload) < r->len + 1) return READ_INCOMPLETE;
    if (r->payload[r->len] != '\n') return READ_BAD;
    r->size = (size_t)(r->payload + r->len + 1 - p);
  } else {
    r->len = 0;
    r->size = (size_t)(nl + 1 - p);
  }
  if (record_crc(r->kind, r->id, r->a, r->kind == 'U' ? r->b : 0, r->payload,
                 r->len) != crc)
    return READ_BAD;
  return READ_OK;
}

static void apply(struct jfold *f, const struct record *r) {
  f->records++;
  f->clean = r->kind == 'C';
  if (r->kind == 'O') {
    f->streak = r->id;
    f->progress = false;
  }
  if (r->kind == 'O' || r->kind == 'C') return;
  if (r->kind == 'E') f->progress = true;
  struct jentry *e = jfold_add(f, r->id);
  switch (r->kind) {
    case 'U':
      free(e->json);
      e->json = xstrndup(r->payload, r->len);
      e->len = r->len;
      e->crashes = r->a;
      e->failures = r->b;
      e->ended = false;
      free(e->reason);
      e->reason = NULL;
      e->state = JSTATE_NONE;
      break;
    case 'S': e->state = JSTATE_RUNNING; break;
    case 'W': e->state = JSTATE_WAITING; break;
    case 'A': e->state = JSTATE_ALONE; break;
    case 'E':
      e->ended = true;
      e->end = (enum jend)r->a;
      free(e->reason);
      e->reason = xstrndup(r->payload, r->len);
      break;
  }
  if (r->id > f->max_id) f->max_id = r->id;
}

/* The header line, strictly; p moves past it. */
static bool parse_header(struct jfold *f, const char **p, const char *end) {
  static const char magic[] = "tghost-journal ";
  const char *s = *p;
  size_t n = sizeof magic - 1;
  uint64_t version, bot;
  if ((size_t)(end - s) < n || memcmp(s, magic, n) != 0) return false;
  s += n;
  if (!parse_number(&s, end, 9, &version) || version < 1 ||
      version > JOURNAL_VERSION)
    return false;
  if ((size_t)(end - s) < 5 || memcmp(s, " bot ", 5) != 0) return false;
  s += 5;
  if (!parse_number(&s, end, MAX_NUMBER, &bot) || !expect(&s, end, '\n'))
    return false;
  f->version = (int)version;
  f->bot_id = (int64_t)bot;
  *p = s;
  return true;
}

/* Whether a line at p starts like an update record ("U <digit>"): what a
 * damaged region held, as far as can be told. */
static bool looks_like_update(const char *p, const char *end) {
  return end - p >= 3 && p[0] == 'U' && p[1] == ' ' && p[2] >= '0' &&
         p[2] <= '9';
}

/* The next position at or after p where a record could start: one of
 * the record letters followed by a space. */
static const char *next_candidate(const char *p, const char *end) {
  for (; p + 1 < end; p++) {
    if (p[1] != ' ') continue;
    switch (*p) {
      case 'U': case 'S': case 'W': case 'A': case 'E': case 'O': case 'C':
        return p;
      default:
        break;
    }
  }
  return end;
}

void jfold_read(struct jfold *f, const char *data, size_t size) {
  memset(f, 0, sizeof *f);
  f->bot_id = -1;
  f->max_id = -1;
  if (!data || size == 0) {   /* a new journal */
    f->header_ok = true;
    f->version = JOURNAL_VERSION;
    return;
  }
  const char *p = data, *end = data + size;
  f->header_ok = parse_header(f, &p, end);
  bool in_damage = !f->header_ok;
  enum read_status first_failure = READ_BAD;
  const char *damage_start = data;
  size_t damage_updates = 0;
  /* Unreadable header: records are looked for from its next line. */
  if (in_damage) {
    const char *nl = memchr(p, '\n', size);
    p = nl ? nl + 1 : end;
  }
  while (p < end) {
    struct record r;
    enum read_status st = parse_record(p, end, &r);
    if (st == READ_OK) {
      if (in_damage) {
        f->damaged_regions++;
        f->damaged_bytes += (size_t)(p - damage_start);
        f->damaged_updates += damage_updates;
        in_damage = false;
      }
      apply(f, &r);
      p += r.size;
      continue;
    }
    if (!in_damage) {
      in_damage = true;
      first_failure = st;
      damage_start = p;
      damage_updates = 0;
    }
    if ((p == data || p[-1] == '\n') && looks_like_update(p, end))
      damage_updates++;
    /* Look for a good record further on: at any record letter, not only
     * at line starts (the damage may have eaten the line break before the
     * next good record). The CRC tells a record from text that looks
     * like one. */
    p = next_candidate(p + 1, end);
  }
  if (in_damage) {
    /* Nothing good after it: a record cut off by the end of the data (a
     * crash while writing) if that is how it failed, else damage. */
    if (first_failure == READ_INCOMPLETE && damage_start != data) {
      f->truncated = true;
      f->truncated_bytes = (size_t)(end - damage_start);
    } else {
      f->damaged_regions++;
      f->damaged_bytes += (size_t)(end - damage_start);
      f->damaged_updates += damage_updates;
    }
  }
}

void jfold_put_unfinished(const struct jfold *f, struct buf *out) {
  static const char state_marks[] = {0, 'S', 'W', 'A'};
  for (size_t i = 0; i < f->n; i++) {
    const struct jentry *e = &f->e[i];
    if (!jentry_unfinished(e)) continue;
    journal_put_update(out, e->id, e->crashes, e->failures, e->json, e->len);
    if (e->state != JSTATE_NONE)
      journal_put_mark(out, state_marks[e->state], e->id);
    if (e->ended) journal_put_end(out, e->id, e->end, e->reason);
  }
}
