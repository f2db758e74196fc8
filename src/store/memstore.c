#include "store/memstore.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

#define INITIAL_BUCKETS 16
#define SWEEP_BUCKETS_PER_SET 2

struct entry {
  struct entry *next;
  uint64_t hash;
  int64_t expires_ms;      /* 0: never */
  char *value;
  size_t value_len;
  size_t key_len;
  char key[];
};

struct memstore {
  struct entry **buckets;
  size_t nbuckets;         /* a power of two */
  size_t count;
  size_t expiring;         /* entries with an expiry */
  size_t sweep_at;         /* the next bucket the sweep visits */
};

/* FNV-1a, 64 bit. */
static uint64_t hash_key(const char *key, size_t len) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 1099511628211ULL;
  }
  return h;
}

struct memstore *memstore_new(void) {
  struct memstore *m = xcalloc(1, sizeof *m);
  m->nbuckets = INITIAL_BUCKETS;
  m->buckets = xcalloc(m->nbuckets, sizeof *m->buckets);
  return m;
}

static void entry_free(struct entry *e) {
  free(e->value);
  free(e);
}

void memstore_free(struct memstore *m) {
  if (!m) return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct entry *e = m->buckets[i];
    while (e) {
      struct entry *next = e->next;
      entry_free(e);
      e = next;
    }
  }
  free(m->buckets);
  free(m);
}

size_t memstore_count(const struct memstore *m) { return m->count; }

static bool expired(const struct entry *e, int64_t now_ms) {
  return e->expires_ms != 0 && e->expires_ms <= now_ms;
}

/* Unlinks *link's entry and frees it. */
static void remove_at(struct memstore *m, struct entry **link) {
  struct entry *e = *link;
  *link = e->next;
  if (e->expires_ms) m->expiring--;
  m->count--;
  entry_free(e);
}

/* The link that points at key's entry, or at the NULL ending its chain. */
static struct entry **find(struct memstore *m, const char *key, size_t len,
                           uint64_t h) {
  struct entry **link = &m->buckets[h & (m->nbuckets - 1)];
  for (; *link; link = &(*link)->next) {
    struct entry *e = *link;
    if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
      break;
  }
  return link;
}

static void grow(struct memstore *m) {
  size_t n = m->nbuckets * 2;
  struct entry **b = xcalloc(n, sizeof *b);
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct entry *e = m->buckets[i];
    while (e) {
      struct entry *next = e->next;
      struct entry **slot = &b[e->hash & (n - 1)];
      e->next = *slot;
      *slot = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  m->sweep_at = 0;
}

static void sweep(struct memstore *m, int64_t now_ms) {
  for (int i = 0; i < SWEEP_BUCKETS_PER_SET && m->expiring > 0; i++) {
    struct entry **link = &m->buckets[m->sweep_at];
    while (*link) {
      if (expired(*link, now_ms)) remove_at(m, link);
      else link = &(*link)->next;
    }
    m->sweep_at = (m->sweep_at + 1) & (m->nbuckets - 1);
  }
}

const char *memstore_get(struct memstore *m, const char *key, size_t key_len,
                         int64_t now_ms, size_t *len) {
  struct entry **link = find(m, key, key_len, hash_key(key, key_len));
  if (!*link) return NULL;
  if (expired(*link, now_ms)) {
    remove_at(m, link);
    return NULL;
  }
  *len = (*link)->value_len;
  return (*link)->value;
}

void memstore_set(struct memstore *m, const char *key, size_t key_len,
                  const char *value, size_t len, int64_t expires_ms,
                  int64_t now_ms) {
  sweep(m, now_ms);
  uint64_t h = hash_key(key, key_len);
  struct entry **link = find(m, key, key_len, h);
  struct entry *e = *link;
  if (!e) {
    e = xmalloc(sizeof *e + key_len + 1);
    e->next = NULL;
    e->hash = h;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    e->key[key_len] = '\0';
    e->expires_ms = 0;
    *link = e;
    m->count++;
  } else {
    free(e->value);
  }
  e->value = xmalloc(len + 1);
  memcpy(e->value, value, len);
  e->value[len] = '\0';
  e->value_len = len;
  if (e->expires_ms && !expires_ms) m->expiring--;
  if (!e->expires_ms && expires_ms) m->expiring++;
  e->expires_ms = expires_ms;
  if (m->count > m->nbuckets) grow(m);
}

bool memstore_delete(struct memstore *m, const char *key, size_t key_len) {
  struct entry **link = find(m, key, key_len, hash_key(key, key_len));
  if (!*link) return false;
  remove_at(m, link);
  return true;
}

void memstore_each(const struct memstore *m, int64_t now_ms,
                   void (*fn)(const char *key, size_t key_len,
                              const char *value, size_t len, void *ud),
                   void *ud) {
  for (size_t i = 0; i < m->nbuckets; i++)
    for (const struct entry *e = m->buckets[i]; e; e = e->next)
      if (!expired(e, now_ms)) fn(e->key, e->key_len, e->value, e->value_len, ud);
}
