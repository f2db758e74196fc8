#include "pipeline/seqmap.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/keyhash.h"

/* Keys up to this many bytes live inside the entry (integers, chat ids as
 * strings); longer ones get their own allocation. */
#define INLINE_KEY 32
/* Free lists keep at most this many spare nodes beyond the live count. */
#define SPARE_NODES 64
#define MIN_BUCKETS 16

struct seqmap_entry {
  struct seqmap_entry *chain;   /* next in the bucket; next free */
  uint64_t hash;
  uint64_t stamp;               /* dedup mark of the acquire in progress */
  struct qlist queue;           /* links, in acquire order; head = holder */
  uint32_t pins;                /* holders that stepped aside with this key */
  uint32_t len;
  uint8_t type;
  char *key;                    /* inline_key or a heap copy */
  char inline_key[INLINE_KEY];
};

struct seqmap_link {
  struct qnode node;            /* in entry->queue */
  struct seqmap_entry *entry;
  struct seqmap_holder *holder;
  struct seqmap_link *next;     /* holder's list; next free */
  unsigned frame;
};

/* --- hashing ------------------------------------------------------------ */

/* Seeded so that keys chosen by users cannot be aimed at one bucket
 * without knowing the seed. */
static uint64_t hash_key(const struct seqmap *m, const struct seqmap_key *k) {
  return k->type == SEQMAP_INTEGER ? keyhash_int(m->seed, k->num)
                                   : keyhash_bytes(m->seed, k->str, k->len);
}

/* The bytes a key is stored and compared as. */
static const char *key_bytes(const struct seqmap_key *k, size_t *len,
                             char scratch[8]) {
  if (k->type == SEQMAP_INTEGER) {
    memcpy(scratch, &k->num, 8);
    *len = 8;
    return scratch;
  }
  *len = k->len;
  return k->str;
}

/* --- the table ---------------------------------------------------------- */

static void rehash(struct seqmap *m, size_t nbuckets) {
  struct seqmap_entry **nb = xcalloc(nbuckets, sizeof *nb);
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct seqmap_entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->chain;
      size_t j = (size_t)(e->hash & (nbuckets - 1));
      e->chain = nb[j];
      nb[j] = e;
    }
  }
  free(m->buckets);
  m->buckets = nb;
  m->nbuckets = nbuckets;
}

static struct seqmap_entry *lookup(const struct seqmap *m, uint64_t hash,
                                   uint8_t type, const char *bytes,
                                   size_t len) {
  if (m->nbuckets == 0) return NULL;
  struct seqmap_entry *e = m->buckets[hash & (m->nbuckets - 1)];
  for (; e; e = e->chain)
    if (e->hash == hash && e->type == type && e->len == len &&
        memcmp(e->key, bytes, len) == 0)
      return e;
  return NULL;
}

static struct seqmap_entry *entry_new(struct seqmap *m, uint64_t hash,
                                      uint8_t type, const char *bytes,
                                      size_t len) {
  struct seqmap_entry *e = m->free_entries;
  if (e) {
    m->free_entries = e->chain;
    m->nfree_entries--;
  } else {
    e = xmalloc(sizeof *e);
  }
  e->hash = hash;
  e->stamp = 0;
  e->pins = 0;
  qlist_init(&e->queue);
  e->type = type;
  e->len = (uint32_t)len;
  e->key = len <= INLINE_KEY ? e->inline_key : xmalloc(len);
  memcpy(e->key, bytes, len);
  if (m->nkeys >= m->nbuckets)
    rehash(m, m->nbuckets ? m->nbuckets * 2 : MIN_BUCKETS);
  size_t i = (size_t)(hash & (m->nbuckets - 1));
  e->chain = m->buckets[i];
  m->buckets[i] = e;
  m->nkeys++;
  return e;
}

static void entry_delete(struct seqmap *m, struct seqmap_entry *e) {
  struct seqmap_entry **pp = &m->buckets[e->hash & (m->nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->chain;
  *pp = e->chain;
  m->nkeys--;
  if (e->key != e->inline_key) free(e->key);
  /* Keep spares up to the live count plus a constant; as keys go, the
   * spares go too (one per deletion keeps that bound). */
  if (m->nfree_entries < m->nkeys + SPARE_NODES) {
    e->chain = m->free_entries;
    m->free_entries = e;
    m->nfree_entries++;
  } else {
    free(e);
  }
  if (m->nfree_entries > m->nkeys + SPARE_NODES) {
    struct seqmap_entry *spare = m->free_entries;
    m->free_entries = spare->chain;
    m->nfree_entries--;
    free(spare);
  }
  /* Shrink once the table is mostly empty (and grow again only at twice
   * the new size), so a burst of keys does not pin its table forever. */
  if (m->nbuckets > MIN_BUCKETS && m->nkeys < m->nbuckets / 8)
    rehash(m, m->nbuckets / 2);
}

/* --- links -------------------------------------------------------------- */

static struct seqmap_link *link_new(struct seqmap *m) {
  struct seqmap_link *l = m->free_links;
  if (l) {
    m->free_links = l->next;
    m->nfree_links--;
  } else {
    l = xmalloc(sizeof *l);
  }
  m->nlinks++;
  return l;
}

static void link_free(struct seqmap *m, struct seqmap_link *l) {
  m->nlinks--;
  if (m->nfree_links < m->nlinks + SPARE_NODES) {
    l->next = m->free_links;
    m->free_links = l;
    m->nfree_links++;
  } else {
    free(l);
  }
  if (m->nfree_links > m->nlinks + SPARE_NODES) {
    struct seqmap_link *spare = m->free_links;
    m->free_links = spare->next;
    m->nfree_links--;
    free(spare);
  }
}

static bool link_is_head(const struct seqmap_link *l) {
  return qlist_is_front(&l->entry->queue, &l->node);
}

/* Takes l out of its queue; grants the next holder if l was the head and
 * that holder now waits for nothing. */
static void unqueue(struct seqmap *m, struct seqmap_link *l) {
  struct seqmap_entry *e = l->entry;
  bool was_head = link_is_head(l);
  if (!was_head) l->holder->waiting--;
  qlist_remove(&e->queue, &l->node);
  if (qlist_empty(&e->queue)) {
    if (e->pins == 0) entry_delete(m, e);
    return;
  }
  if (!was_head) return;
  struct seqmap_link *next =
      qlist_entry(qlist_front(&e->queue), struct seqmap_link, node);
  if (--next->holder->waiting == 0 && m->on_grant)
    m->on_grant(next->holder, m->ud);
}

/* A link of a holder that stepped aside leaves for good. */
static void unpin(struct seqmap *m, struct seqmap_link *l) {
  struct seqmap_entry *e = l->entry;
  if (--e->pins == 0 && qlist_empty(&e->queue)) entry_delete(m, e);
}

/* --- the API ------------------------------------------------------------ */

void seqmap_init(struct seqmap *m, uint64_t seed, seqmap_grant_fn on_grant,
                 void *ud) {
  memset(m, 0, sizeof *m);
  m->seed = keyhash_mix(seed ^ 0x2545f4914f6cdd1dULL);
  m->on_grant = on_grant;
  m->ud = ud;
}

void seqmap_free(struct seqmap *m) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct seqmap_entry *e = m->buckets[i], *next;
    for (; e; e = next) {
      next = e->chain;
      /* Links still queued belong to holders nobody released. */
      struct qnode *n;
      while ((n = qlist_pop_front(&e->queue)))
        free(qlist_entry(n, struct seqmap_link, node));
      if (e->key != e->inline_key) free(e->key);
      free(e);
    }
  }
  free(m->buckets);
  while (m->free_entries) {
    struct seqmap_entry *e = m->free_entries;
    m->free_entries = e->chain;
    free(e);
  }
  while (m->free_links) {
    struct seqmap_link *l = m->free_links;
    m->free_links = l->next;
    free(l);
  }
  memset(m, 0, sizeof *m);
}

void seqmap_holder_init(struct seqmap_holder *h, void *ud) {
  memset(h, 0, sizeof *h);
  h->ud = ud;
}

unsigned seqmap_acquire(struct seqmap *m, struct seqmap_holder *h,
                        const struct seqmap_key *keys, size_t n,
                        size_t *waiting) {
  if (h->waiting > 0 || h->aside) return 0;
  unsigned frame = ++h->frames;
  if (frame == 0) frame = ++h->frames;   /* 0 means "refused" */
  /* Mark the keys h already holds, and each key as it is added, so
   * duplicates cost one comparison instead of a walk. */
  uint64_t stamp = ++m->stamp;
  for (struct seqmap_link *l = h->links; l; l = l->next) l->entry->stamp = stamp;
  for (size_t i = 0; i < n; i++) {
    char scratch[8];
    size_t len;
    const char *bytes = key_bytes(&keys[i], &len, scratch);
    uint64_t hash = hash_key(m, &keys[i]);
    uint8_t type = (uint8_t)keys[i].type;
    struct seqmap_entry *e = lookup(m, hash, type, bytes, len);
    if (!e) e = entry_new(m, hash, type, bytes, len);
    else if (e->stamp == stamp) continue;
    e->stamp = stamp;
    struct seqmap_link *l = link_new(m);
    l->entry = e;
    l->holder = h;
    l->frame = frame;
    l->next = h->links;
    h->links = l;
    h->nlinks++;
    if (!qlist_empty(&e->queue)) h->waiting++;
    qlist_push_back(&e->queue, &l->node);
  }
  *waiting = h->waiting;
  return frame;
}

void seqmap_release_frame(struct seqmap *m, struct seqmap_holder *h,
                          unsigned frame) {
  struct seqmap_link **pp = &h->links;
  while (*pp) {
    struct seqmap_link *l = *pp;
    if (l->frame != frame) {
      pp = &l->next;
      continue;
    }
    *pp = l->next;
    h->nlinks--;
    if (h->aside) unpin(m, l);
    else unqueue(m, l);
    link_free(m, l);
  }
  if (h->nlinks == 0) h->aside = false;
}

void seqmap_release(struct seqmap *m, struct seqmap_holder *h) {
  struct seqmap_link *l;
  while ((l = h->links)) {
    h->links = l->next;
    h->nlinks--;
    if (h->aside) unpin(m, l);
    else unqueue(m, l);
    link_free(m, l);
  }
  h->waiting = 0;
  h->aside = false;
}

size_t seqmap_step_aside(struct seqmap *m, struct seqmap_holder *h) {
  if (h->aside || h->waiting > 0 || h->nlinks == 0) return 0;
  /* Pinned first, so that an entry left with an empty queue stays. */
  for (struct seqmap_link *l = h->links; l; l = l->next) l->entry->pins++;
  h->aside = true;
  for (struct seqmap_link *l = h->links; l; l = l->next) unqueue(m, l);
  return h->nlinks;
}

size_t seqmap_rejoin(struct seqmap *m, struct seqmap_holder *h) {
  if (!h->aside) return h->waiting;
  h->aside = false;
  for (struct seqmap_link *l = h->links; l; l = l->next) {
    struct seqmap_entry *e = l->entry;
    e->pins--;
    if (!qlist_empty(&e->queue)) h->waiting++;
    qlist_push_back(&e->queue, &l->node);
  }
  return h->waiting;
}

size_t seqmap_key_count(const struct seqmap *m) { return m->nkeys; }

size_t seqmap_link_count(const struct seqmap *m) { return m->nlinks; }

size_t seqmap_memory(const struct seqmap *m) {
  size_t bytes = m->nbuckets * sizeof(struct seqmap_entry *) +
                 (m->nkeys + m->nfree_entries) * sizeof(struct seqmap_entry) +
                 (m->nlinks + m->nfree_links) * sizeof(struct seqmap_link);
  for (size_t i = 0; i < m->nbuckets; i++)
    for (struct seqmap_entry *e = m->buckets[i]; e; e = e->chain)
      if (e->key != e->inline_key) bytes += e->len;
  return bytes;
}
