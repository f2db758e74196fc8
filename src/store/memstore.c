#include "store/memstore.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/hashmap.h"
#include "base/keyhash.h"

#define SWEEP_BUCKETS_PER_SET 2

struct entry {
  struct hashmap_node node;   /* keyed by key[] */
  int64_t expires_ms;         /* 0: never */
  char *value;
  size_t value_len;
  char key[];                 /* NUL-terminated too */
};

struct memstore {
  struct hashmap map;         /* of entry */
  size_t expiring;            /* entries with an expiry */
  size_t sweep_at;            /* the next bucket the sweep visits */
};

/* Keys are the script's: the map is seeded (keyhash.h). */
struct memstore *memstore_new(void) {
  struct memstore *m = xcalloc(1, sizeof *m);
  hashmap_init(&m->map, keyhash_random_seed());
  return m;
}

static struct entry *entry_of(struct hashmap_node *n) {
  return n ? hashmap_entry(n, struct entry, node) : NULL;
}

static void entry_free(struct entry *e) {
  free(e->value);
  free(e);
}

void memstore_free(struct memstore *m) {
  if (!m) return;
  size_t i;
  for (struct hashmap_node *n = hashmap_first(&m->map, &i), *next; n;
       n = next) {
    next = hashmap_next(&m->map, n, &i);
    entry_free(entry_of(n));
  }
  hashmap_free(&m->map);
  free(m);
}

size_t memstore_count(const struct memstore *m) {
  return hashmap_count(&m->map);
}

static bool expired(const struct entry *e, int64_t now_ms) {
  return e->expires_ms != 0 && e->expires_ms <= now_ms;
}

static void remove_entry(struct memstore *m, struct entry *e) {
  hashmap_remove(&m->map, &e->node);
  if (e->expires_ms) m->expiring--;
  entry_free(e);
}

struct sweep {
  struct memstore *m;
  int64_t now_ms;
};

static bool drop_expired(struct hashmap_node *n, void *ud) {
  struct sweep *sw = ud;
  struct entry *e = entry_of(n);
  if (!expired(e, sw->now_ms)) return false;
  sw->m->expiring--;
  entry_free(e);
  return true;
}

static void sweep(struct memstore *m, int64_t now_ms) {
  if (m->expiring == 0) return;
  struct sweep sw = {m, now_ms};
  hashmap_sweep(&m->map, &m->sweep_at, SWEEP_BUCKETS_PER_SET, drop_expired,
                &sw);
}

static struct entry *find(struct memstore *m, const struct hashmap_key *k) {
  return entry_of(hashmap_find(&m->map, k));
}

const char *memstore_get(struct memstore *m, const char *key, size_t key_len,
                         int64_t now_ms, size_t *len) {
  struct hashmap_key k = hashmap_key(&m->map, 0, key, key_len);
  struct entry *e = find(m, &k);
  if (!e) return NULL;
  if (expired(e, now_ms)) {
    remove_entry(m, e);
    return NULL;
  }
  *len = e->value_len;
  return e->value;
}

void memstore_set(struct memstore *m, const char *key, size_t key_len,
                  const char *value, size_t len, int64_t expires_ms,
                  int64_t now_ms) {
  sweep(m, now_ms);
  struct hashmap_key k = hashmap_key(&m->map, 0, key, key_len);
  struct entry *e = find(m, &k);
  if (!e) {
    e = xmalloc(sizeof *e + key_len + 1);
    memcpy(e->key, key, key_len);
    e->key[key_len] = '\0';
    e->expires_ms = 0;
    hashmap_insert(&m->map, &e->node, &k, e->key);
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
}

bool memstore_delete(struct memstore *m, const char *key, size_t key_len) {
  struct hashmap_key k = hashmap_key(&m->map, 0, key, key_len);
  struct entry *e = find(m, &k);
  if (!e) return false;
  remove_entry(m, e);
  return true;
}

void memstore_each(const struct memstore *m, int64_t now_ms,
                   void (*fn)(const char *key, size_t key_len,
                              const char *value, size_t len, void *ud),
                   void *ud) {
  size_t i;
  for (struct hashmap_node *n = hashmap_first(&m->map, &i); n;
       n = hashmap_next(&m->map, n, &i)) {
    const struct entry *e = entry_of(n);
    if (!expired(e, now_ms)) fn(n->key, n->len, e->value, e->value_len, ud);
  }
}
