#include "pipeline/conversation.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/keyhash.h"

#define MIN_BUCKETS 16

static uint64_t hash_key(const struct convmap *m, const struct convmap_key *k) {
  return k->type == CONVMAP_INTEGER ? keyhash_int(m->seed, k->num)
                                   : keyhash_bytes(m->seed, k->str, k->len);
}

/* The bytes a key is stored and compared as. */
static const char *key_bytes(const struct convmap_key *k, size_t *len,
                             char scratch[8]) {
  if (k->type == CONVMAP_INTEGER) {
    memcpy(scratch, &k->num, 8);
    *len = 8;
    return scratch;
  }
  *len = k->len;
  return k->str;
}

static void rehash(struct convmap *m, size_t nbuckets) {
  struct convmap_node **nb = xcalloc(nbuckets, sizeof *nb);
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct convmap_node *n = m->buckets[i], *next;
    for (; n; n = next) {
      next = n->chain;
      size_t j = (size_t)(n->hash & (nbuckets - 1));
      n->chain = nb[j];
      nb[j] = n;
    }
  }
  free(m->buckets);
  m->buckets = nb;
  m->nbuckets = nbuckets;
}

void convmap_init(struct convmap *m, uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->seed = keyhash_mix(seed ^ 0x6a09e667f3bcc909ULL);
}

void convmap_free(struct convmap *m) {
  for (size_t i = 0; i < m->nbuckets; i++)
    for (struct convmap_node *n = m->buckets[i]; n; n = n->chain)
      if (n->key != n->inline_key) free(n->key);
  free(m->buckets);
  memset(m, 0, sizeof *m);
}

struct convmap_node *convmap_find(const struct convmap *m,
                                  const struct convmap_key *k) {
  if (m->count == 0) return NULL;
  char scratch[8];
  size_t len;
  const char *bytes = key_bytes(k, &len, scratch);
  uint64_t hash = hash_key(m, k);
  for (struct convmap_node *n = m->buckets[hash & (m->nbuckets - 1)]; n;
       n = n->chain)
    if (n->hash == hash && n->type == (uint8_t)k->type && n->len == len &&
        memcmp(n->key, bytes, len) == 0)
      return n;
  return NULL;
}

void convmap_insert(struct convmap *m, struct convmap_node *n,
                    const struct convmap_key *k) {
  char scratch[8];
  size_t len;
  const char *bytes = key_bytes(k, &len, scratch);
  n->hash = hash_key(m, k);
  n->type = (uint8_t)k->type;
  n->len = (uint32_t)len;
  n->key = len <= CONVMAP_INLINE_KEY ? n->inline_key : xmalloc(len);
  memcpy(n->key, bytes, len);
  if (m->count >= m->nbuckets)
    rehash(m, m->nbuckets ? m->nbuckets * 2 : MIN_BUCKETS);
  size_t i = (size_t)(n->hash & (m->nbuckets - 1));
  n->chain = m->buckets[i];
  m->buckets[i] = n;
  m->count++;
}

void convmap_remove(struct convmap *m, struct convmap_node *n) {
  struct convmap_node **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
  while (*pp != n) pp = &(*pp)->chain;
  *pp = n->chain;
  n->chain = NULL;
  m->count--;
  if (n->key != n->inline_key) free(n->key);
  n->key = NULL;
  /* Shrink once mostly empty (and grow again only at twice the new size). */
  if (m->count == 0) {
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
  } else if (m->nbuckets > MIN_BUCKETS && m->count < m->nbuckets / 8) {
    rehash(m, m->nbuckets / 2);
  }
}

struct convmap_key convmap_node_key(const struct convmap_node *n) {
  struct convmap_key k;
  memset(&k, 0, sizeof k);
  k.type = (enum convmap_key_type)n->type;
  if (k.type == CONVMAP_INTEGER) {
    memcpy(&k.num, n->key, 8);
  } else {
    k.str = n->key;
    k.len = n->len;
  }
  return k;
}

size_t convmap_count(const struct convmap *m) { return m->count; }

size_t convmap_memory(const struct convmap *m) {
  size_t bytes = m->nbuckets * sizeof(struct convmap_node *);
  for (size_t i = 0; i < m->nbuckets; i++)
    for (struct convmap_node *n = m->buckets[i]; n; n = n->chain)
      if (n->key != n->inline_key) bytes += n->len;
  return bytes;
}
