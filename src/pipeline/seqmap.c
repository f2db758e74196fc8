#include "pipeline/seqmap.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* Keys up to this many bytes live inside the entry (integers, chat ids as
 * strings); longer ones get their own allocation. */
#define INLINE_KEY 32
/* Free lists keep at most this many spare nodes beyond the live count. */
#define SPARE_NODES 64

/* Keyed by the key's bytes, of kind SEQMAP_STRING or SEQMAP_INTEGER (the
 * two never match). */
struct seqmap_entry {
  struct hashmap_node node;     /* in m->keys; next free in the free list */
  uint64_t stamp;               /* dedup mark of the acquire in progress */
  struct qlist queue;           /* links, in acquire order; head = holder */
  uint32_t pins;                /* holders that stepped aside with this key */
  char inline_key[INLINE_KEY];  /* the key, unless it is longer */
};

struct seqmap_link {
  struct qnode node;            /* in entry->queue */
  struct seqmap_entry *entry;
  struct seqmap_holder *holder;
  struct seqmap_link *next;     /* holder's list; next free */
  unsigned frame;
};

/* --- keys -------------------------------------------------------------- */

static struct hashmap_key key_of(const struct seqmap *m,
                                 const struct seqmap_key *k) {
  if (k->type == SEQMAP_INTEGER)
    return hashmap_key(&m->keys, SEQMAP_INTEGER, &k->num, sizeof k->num);
  return hashmap_key(&m->keys, SEQMAP_STRING, k->str, k->len);
}

static struct seqmap_entry *entry_of(struct hashmap_node *n) {
  return n ? hashmap_entry(n, struct seqmap_entry, node) : NULL;
}

static bool key_inline(const struct seqmap_entry *e) {
  return e->node.key == e->inline_key;
}

static struct seqmap_entry *entry_new(struct seqmap *m,
                                      const struct hashmap_key *k) {
  struct seqmap_entry *e = entry_of(m->free_entries);
  if (e) {
    m->free_entries = e->node.next;
    m->nfree_entries--;
  } else {
    e = xmalloc(sizeof *e);
  }
  e->stamp = 0;
  e->pins = 0;
  qlist_init(&e->queue);
  char *stored = k->len <= INLINE_KEY ? e->inline_key : xmalloc(k->len);
  memcpy(stored, k->bytes, k->len);
  hashmap_insert(&m->keys, &e->node, k, stored);
  return e;
}

static void entry_delete(struct seqmap *m, struct seqmap_entry *e) {
  hashmap_remove(&m->keys, &e->node);
  if (!key_inline(e)) free((char *)e->node.key);
  size_t nkeys = hashmap_count(&m->keys);
  /* Keep spares up to the live count plus a constant; as keys go, the
   * spares go too (one per deletion keeps that bound). */
  if (m->nfree_entries < nkeys + SPARE_NODES) {
    e->node.next = m->free_entries;
    m->free_entries = &e->node;
    m->nfree_entries++;
  } else {
    free(e);
  }
  if (m->nfree_entries > nkeys + SPARE_NODES) {
    struct hashmap_node *spare = m->free_entries;
    m->free_entries = spare->next;
    m->nfree_entries--;
    free(entry_of(spare));
  }
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
  hashmap_init(&m->keys, seed);
  m->on_grant = on_grant;
  m->ud = ud;
}

void seqmap_free(struct seqmap *m) {
  size_t i;
  for (struct hashmap_node *n = hashmap_first(&m->keys, &i), *next; n;
       n = next) {
    next = hashmap_next(&m->keys, n, &i);
    struct seqmap_entry *e = entry_of(n);
    /* Links still queued belong to holders nobody released. */
    struct qnode *q;
    while ((q = qlist_pop_front(&e->queue)))
      free(qlist_entry(q, struct seqmap_link, node));
    if (!key_inline(e)) free((char *)e->node.key);
    free(e);
  }
  hashmap_free(&m->keys);
  while (m->free_entries) {
    struct hashmap_node *n = m->free_entries;
    m->free_entries = n->next;
    free(entry_of(n));
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
    struct hashmap_key k = key_of(m, &keys[i]);
    struct seqmap_entry *e = entry_of(hashmap_find(&m->keys, &k));
    if (!e) e = entry_new(m, &k);
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

size_t seqmap_key_count(const struct seqmap *m) {
  return hashmap_count(&m->keys);
}

size_t seqmap_link_count(const struct seqmap *m) { return m->nlinks; }

size_t seqmap_memory(const struct seqmap *m) {
  size_t bytes = hashmap_memory(&m->keys) +
                 (hashmap_count(&m->keys) + m->nfree_entries) *
                     sizeof(struct seqmap_entry) +
                 (m->nlinks + m->nfree_links) * sizeof(struct seqmap_link);
  size_t i;
  for (struct hashmap_node *n = hashmap_first(&m->keys, &i); n;
       n = hashmap_next(&m->keys, n, &i))
    if (!key_inline(entry_of(n))) bytes += n->len;
  return bytes;
}
