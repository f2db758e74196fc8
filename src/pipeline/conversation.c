#include "pipeline/conversation.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* A string key and an integer key never match: they are kinds apart. */
static struct hashmap_key key_of(const struct convmap *m,
                                 const struct convmap_key *k) {
  if (k->type == CONVMAP_INTEGER)
    return hashmap_key(&m->map, CONVMAP_INTEGER, &k->num, sizeof k->num);
  return hashmap_key(&m->map, CONVMAP_STRING, k->str, k->len);
}

static void free_key(struct convmap_node *n) {
  if (n->node.key != n->inline_key) free((char *)n->node.key);
  n->node.key = NULL;
}

void convmap_init(struct convmap *m, uint64_t seed) {
  hashmap_init(&m->map, seed);
}

void convmap_free(struct convmap *m) {
  size_t i;
  for (struct hashmap_node *h = hashmap_first(&m->map, &i), *next; h;
       h = next) {
    next = hashmap_next(&m->map, h, &i);
    free_key(hashmap_entry(h, struct convmap_node, node));
  }
  hashmap_free(&m->map);
}

struct convmap_node *convmap_find(const struct convmap *m,
                                  const struct convmap_key *k) {
  if (hashmap_count(&m->map) == 0) return NULL;
  struct hashmap_key hk = key_of(m, k);
  struct hashmap_node *h = hashmap_find(&m->map, &hk);
  return h ? hashmap_entry(h, struct convmap_node, node) : NULL;
}

void convmap_insert(struct convmap *m, struct convmap_node *n,
                    const struct convmap_key *k) {
  struct hashmap_key hk = key_of(m, k);
  char *stored = hk.len <= CONVMAP_INLINE_KEY ? n->inline_key
                                              : xmalloc(hk.len);
  memcpy(stored, hk.bytes, hk.len);
  hashmap_insert(&m->map, &n->node, &hk, stored);
}

void convmap_remove(struct convmap *m, struct convmap_node *n) {
  hashmap_remove(&m->map, &n->node);
  free_key(n);
}

struct convmap_key convmap_node_key(const struct convmap_node *n) {
  struct convmap_key k;
  memset(&k, 0, sizeof k);
  k.type = (enum convmap_key_type)n->node.kind;
  if (k.type == CONVMAP_INTEGER) {
    memcpy(&k.num, n->node.key, sizeof k.num);
  } else {
    k.str = n->node.key;
    k.len = n->node.len;
  }
  return k;
}

size_t convmap_count(const struct convmap *m) {
  return hashmap_count(&m->map);
}

size_t convmap_memory(const struct convmap *m) {
  size_t bytes = hashmap_memory(&m->map), i;
  for (const struct hashmap_node *h = hashmap_first(&m->map, &i); h;
       h = hashmap_next(&m->map, h, &i))
    if (h->key != hashmap_entry(h, struct convmap_node, node)->inline_key)
      bytes += h->len;
  return bytes;
}
