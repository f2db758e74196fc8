#include "base/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

#define MIN_BUCKETS 16

static void rehash(struct hashmap *m, size_t nbuckets) {
  struct hashmap_node **nb = xcalloc(nbuckets, sizeof *nb);
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct hashmap_node *n = m->buckets[i], *next;
    for (; n; n = next) {
      next = n->next;
      size_t j = (size_t)(n->hash & (nbuckets - 1));
      n->next = nb[j];
      nb[j] = n;
    }
  }
  free(m->buckets);
  m->buckets = nb;
  m->nbuckets = nbuckets;
}

void hashmap_grow(struct hashmap *m) {
  rehash(m, m->nbuckets ? m->nbuckets * 2 : MIN_BUCKETS);
}

/* No array once empty; half the array, or less, once less than an eighth
 * of it is used (it grows again only at twice the new size). */
void hashmap_shrink(struct hashmap *m) {
  if (m->count == 0) {
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    return;
  }
  size_t n = m->nbuckets;
  while (n > MIN_BUCKETS && m->count < n / 8) n /= 2;
  if (n != m->nbuckets) rehash(m, n);
}

void hashmap_init(struct hashmap *m, uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->seed = keyhash_mix(seed ^ 0x6a09e667f3bcc909ULL);
}

void hashmap_free(struct hashmap *m) {
  free(m->buckets);
  memset(m, 0, sizeof *m);
}

static struct hashmap_node *first_from(const struct hashmap *m,
                                       size_t *bucket) {
  for (; *bucket < m->nbuckets; (*bucket)++)
    if (m->buckets[*bucket]) return m->buckets[*bucket];
  return NULL;
}

struct hashmap_node *hashmap_first(const struct hashmap *m, size_t *bucket) {
  *bucket = 0;
  return first_from(m, bucket);
}

struct hashmap_node *hashmap_next(const struct hashmap *m,
                                  const struct hashmap_node *n,
                                  size_t *bucket) {
  if (n->next) return n->next;
  (*bucket)++;
  return first_from(m, bucket);
}

void hashmap_sweep(struct hashmap *m, size_t *cursor, size_t buckets,
                   bool (*drop)(struct hashmap_node *n, void *ud), void *ud) {
  if (m->nbuckets == 0) return;
  size_t removed = 0;
  for (size_t b = 0; b < buckets; b++) {
    size_t i = *cursor & (m->nbuckets - 1);
    struct hashmap_node **pp = &m->buckets[i];
    while (*pp) {
      struct hashmap_node *n = *pp, *next = n->next;
      if (drop(n, ud)) {
        *pp = next;   /* n may be gone: only the link is touched */
        removed++;
      } else {
        pp = &n->next;
      }
    }
    *cursor = (i + 1) & (m->nbuckets - 1);
  }
  m->count -= removed;
  if (removed) hashmap_shrink(m);
}

size_t hashmap_count(const struct hashmap *m) { return m->count; }

size_t hashmap_memory(const struct hashmap *m) {
  return m->nbuckets * sizeof(struct hashmap_node *);
}
