/* One hash table for every map in tghost whose keys may come from users
 * (sequentialize's keys, conversation keys, tghost.storage.memory's keys,
 * chats of the flood control): keyed by bytes, hashed with a secret seed
 * (keyhash.h), so keys cannot be chosen to land in one bucket.
 *
 * Nodes are intrusive: the caller embeds a hashmap_node in its own record
 * (and gets the record back with hashmap_entry), and keeps the key's bytes
 * in that record too; the node points at them. A key is its bytes and a
 * kind, a small number the caller chooses so that key spaces which must
 * never match do not (a string key and an integer key whose 8 bytes spell
 * the same). A key is in the map at most once: hashmap_insert() of a key
 * already there is a bug the caller avoids with hashmap_find().
 *
 * Cost: expected O(1 + key length) per find, insert and remove (chained
 * buckets, a power of two of them, grown at a load of 1 and halved once
 * less than an eighth full); memory is 8 bytes per bucket and the array is
 * freed when the last key goes, so a burst of keys does not pin its table.
 *
 * Layer: base (pure C). */
#ifndef TGHOST_HASHMAP_H
#define TGHOST_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/keyhash.h"

/* Caller-owned; filled in by hashmap_insert. */
struct hashmap_node {
  struct hashmap_node *next;    /* in its bucket */
  uint64_t hash;
  const char *key;              /* the record's own copy of the key */
  size_t len;
  uint8_t kind;
};

#define hashmap_entry(node, type, member) \
  ((type *)((char *)(node) - offsetof(type, member)))

/* A key to look up or insert, with its hash (from hashmap_key). */
struct hashmap_key {
  const char *bytes;
  size_t len;
  uint8_t kind;
  uint64_t hash;
};

/* Read the fields through the functions below. */
struct hashmap {
  struct hashmap_node **buckets;
  size_t nbuckets;              /* a power of two, or 0 */
  size_t count;
  uint64_t seed;
};

/* seed randomizes the hash (keyhash_random_seed() in production; a fixed
 * one in tests that replay a schedule). */
void hashmap_init(struct hashmap *m, uint64_t seed);
/* Frees the bucket array; the nodes are the caller's. */
void hashmap_free(struct hashmap *m);

/* The key (bytes not copied: they must outlive the key's use). This and
 * the functions below are inline: they are on the path of every update
 * in sequentialize and conversations. */
static inline struct hashmap_key hashmap_key(const struct hashmap *m,
                                             uint8_t kind, const void *bytes,
                                             size_t len) {
  struct hashmap_key k = {bytes, len, kind, 0};
  k.hash = keyhash_bytes(m->seed ^ ((uint64_t)kind << 56), bytes, len);
  return k;
}

/* The node with key k, or NULL. */
static inline struct hashmap_node *hashmap_find(const struct hashmap *m,
                                                const struct hashmap_key *k) {
  if (m->count == 0) return NULL;
  for (struct hashmap_node *n = m->buckets[k->hash & (m->nbuckets - 1)]; n;
       n = n->next)
    if (n->hash == k->hash && n->kind == k->kind && n->len == k->len &&
        memcmp(n->key, k->bytes, k->len) == 0)
      return n;
  return NULL;
}

/* The slow halves of insert and remove (a new bucket array). */
void hashmap_grow(struct hashmap *m);
void hashmap_shrink(struct hashmap *m);

/* Adds n under k, which must not be present. stored is the record's own
 * copy of k's bytes, which stays put while n is in the map (n->key points
 * at it). */
static inline void hashmap_insert(struct hashmap *m, struct hashmap_node *n,
                                  const struct hashmap_key *k,
                                  const char *stored) {
  n->hash = k->hash;
  n->kind = k->kind;
  n->len = k->len;
  n->key = stored;
  if (m->count >= m->nbuckets) hashmap_grow(m);
  struct hashmap_node **head = &m->buckets[n->hash & (m->nbuckets - 1)];
  n->next = *head;
  *head = n;
  m->count++;
}

/* Takes n out of the map (the map may shrink). */
static inline void hashmap_remove(struct hashmap *m, struct hashmap_node *n) {
  struct hashmap_node **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
  while (*pp != n) pp = &(*pp)->next;
  *pp = n->next;
  n->next = NULL;
  m->count--;
  if (m->count < m->nbuckets / 8) hashmap_shrink(m);
}

/* Every node, in no particular order: for (n = hashmap_first(m, &i); n;
 * n = hashmap_next(m, n, &i)). The caller may free n once it has asked
 * for the next one, but must not insert or remove meanwhile. */
struct hashmap_node *hashmap_first(const struct hashmap *m, size_t *bucket);
struct hashmap_node *hashmap_next(const struct hashmap *m,
                                  const struct hashmap_node *n,
                                  size_t *bucket);

/* Visits the nodes of the next `buckets` buckets from *cursor on (a
 * sweep that goes round the table a little at a time, the cursor
 * wrapping), and takes out those for which drop(n, ud) returns true; drop
 * may free such a node. The map shrinks, if it may, after the visit. */
void hashmap_sweep(struct hashmap *m, size_t *cursor, size_t buckets,
                   bool (*drop)(struct hashmap_node *n, void *ud), void *ud);

size_t hashmap_count(const struct hashmap *m);
/* Bytes of the bucket array. */
size_t hashmap_memory(const struct hashmap *m);

#endif
