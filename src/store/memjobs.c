#include "store/memjobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/keyhash.h"

struct mrec {
  struct jobrec r;
  struct hashmap_node node;
  size_t pos;                  /* in its heap */
  bool claimed;                /* in the lease heap, else the due heap */
};

/* A binary min-heap of records, by due time or by lease end. */
struct heap {
  struct mrec **items;
  size_t n, cap;
  bool by_lease;
};

struct memjobs {
  char *name;
  struct hashmap map;
  struct heap due, leases;
  uint64_t seq;
  struct jobreq_deferred deferred;
};

/* --- heaps ---------------------------------------------------------------- */

static int64_t key_of(const struct heap *h, const struct mrec *m) {
  return h->by_lease ? m->r.lease_ms : m->r.due_ms;
}

static bool before(const struct heap *h, const struct mrec *a,
                   const struct mrec *b) {
  int64_t ka = key_of(h, a), kb = key_of(h, b);
  if (ka != kb) return ka < kb;
  return strcmp(a->r.id, b->r.id) < 0;
}

static void place(struct heap *h, size_t i, struct mrec *m) {
  h->items[i] = m;
  m->pos = i;
}

static void sift_up(struct heap *h, size_t i) {
  struct mrec *m = h->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(h, m, h->items[parent])) break;
    place(h, i, h->items[parent]);
    i = parent;
  }
  place(h, i, m);
}

static void sift_down(struct heap *h, size_t i) {
  struct mrec *m = h->items[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, best = i;
    struct mrec *b = m;
    if (l < h->n && before(h, h->items[l], b)) best = l, b = h->items[l];
    if (r < h->n && before(h, h->items[r], b)) best = r, b = h->items[r];
    if (best == i) break;
    place(h, i, b);
    i = best;
  }
  place(h, i, m);
}

static void heap_push(struct heap *h, struct mrec *m) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 64;
    h->items = xrealloc(h->items, h->cap * sizeof *h->items);
  }
  place(h, h->n++, m);
  sift_up(h, h->n - 1);
}

static void heap_remove(struct heap *h, struct mrec *m) {
  size_t i = m->pos;
  struct mrec *last = h->items[--h->n];
  if (i == h->n) return;
  place(h, i, last);
  sift_up(h, i);
  sift_down(h, last->pos);
}

static struct mrec *heap_top(const struct heap *h) {
  return h->n ? h->items[0] : NULL;
}

/* Records with key <= limit, counted by walking only the heap's prefix. */
static long count_upto(const struct heap *h, size_t i, int64_t limit) {
  if (i >= h->n || key_of(h, h->items[i]) > limit) return 0;
  return 1 + count_upto(h, 2 * i + 1, limit) + count_upto(h, 2 * i + 2, limit);
}

/* --- records -------------------------------------------------------------- */

static struct mrec *find(struct memjobs *s, const char *id) {
  struct hashmap_key k = hashmap_key(&s->map, 0, id, strlen(id));
  struct hashmap_node *n = hashmap_find(&s->map, &k);
  return n ? hashmap_entry(n, struct mrec, node) : NULL;
}

static void unqueue(struct memjobs *s, struct mrec *m) {
  heap_remove(m->claimed ? &s->leases : &s->due, m);
}

static void enqueue(struct memjobs *s, struct mrec *m) {
  m->claimed = m->r.token != NULL;
  heap_push(m->claimed ? &s->leases : &s->due, m);
}

static void drop(struct memjobs *s, struct mrec *m) {
  unqueue(s, m);
  hashmap_remove(&s->map, &m->node);
  jobrec_free(&m->r);
  free(m);
}

static void set_body(struct jobrec *r, const char *body, size_t len) {
  free(r->body);
  r->body = xmalloc(len + 1);
  memcpy(r->body, body ? body : "", len);
  r->body[len] = '\0';
  r->body_len = len;
}

static void put(struct memjobs *s, struct jobreq *q) {
  if (!q->rec.id) {
    /* A new id: the prefix and the next number not taken. */
    struct buf id = BUF_INIT;
    do {
      buf_reset(&id);
      buf_printf(&id, "%s%" PRIu64, q->prefix ? q->prefix : "", ++s->seq);
    } while (find(s, id.data));
    q->rec.id = buf_steal(&id, NULL);
  }
  struct mrec *m = find(s, q->rec.id);
  q->found = m != NULL;
  if (m && q->keep_if_same && strcmp(m->r.schedule, q->rec.schedule) == 0) {
    set_body(&m->r, q->rec.body, q->rec.body_len);
    return;
  }
  if (m) {
    unqueue(s, m);
  } else {
    m = xcalloc(1, sizeof *m);
    m->r.id = xstrdup(q->rec.id);
    struct hashmap_key k = hashmap_key(&s->map, 0, m->r.id, strlen(m->r.id));
    hashmap_insert(&s->map, &m->node, &k, m->r.id);
  }
  free(m->r.schedule);
  m->r.schedule = xstrdup(q->rec.schedule);
  set_body(&m->r, q->rec.body, q->rec.body_len);
  m->r.due_ms = q->rec.due_ms;
  m->r.attempts = 0;
  free(m->r.token);
  m->r.token = NULL;
  m->r.lease_ms = 0;
  enqueue(s, m);
}

static int cmp_rec_id(const void *a, const void *b) {
  const struct jobrec *x = a, *y = b;
  return strcmp(x->id, y->id);
}

static void list(struct memjobs *s, struct jobreq *q) {
  const char *prefix = q->prefix ? q->prefix : "";
  size_t plen = strlen(prefix);
  size_t bucket;
  for (struct hashmap_node *n = hashmap_first(&s->map, &bucket); n;
       n = hashmap_next(&s->map, n, &bucket)) {
    struct mrec *m = hashmap_entry(n, struct mrec, node);
    if (strncmp(m->r.id, prefix, plen) == 0) jobreq_add_rec(q, &m->r);
  }
  if (q->nrecs > 1) qsort(q->recs, q->nrecs, sizeof *q->recs, cmp_rec_id);
  while (q->nrecs > q->limit) jobrec_free(&q->recs[--q->nrecs]);
}

static void claim(struct memjobs *s, struct jobreq *q) {
  while (q->nrecs < q->limit) {
    struct mrec *d = heap_top(&s->due), *l = heap_top(&s->leases);
    if (d && d->r.due_ms > q->now_ms) d = NULL;
    if (l && l->r.lease_ms > q->now_ms) l = NULL;
    struct mrec *m = !d ? l : !l ? d : (l->r.lease_ms < d->r.due_ms ? l : d);
    if (!m) break;
    unqueue(s, m);
    free(m->r.token);
    m->r.token = jobstore_new_token(q->owner);
    m->r.lease_ms = q->lease_ms;
    m->r.attempts++;
    enqueue(s, m);
    jobreq_add_rec(q, &m->r);
  }
  struct mrec *d = heap_top(&s->due), *l = heap_top(&s->leases);
  q->next_ms = d ? d->r.due_ms : -1;
  if (l && (q->next_ms < 0 || l->r.lease_ms < q->next_ms))
    q->next_ms = l->r.lease_ms;
  q->oldest_due_ms = d && d->r.due_ms <= q->now_ms ? d->r.due_ms : -1;
  q->stored = (long)hashmap_count(&s->map);
  q->due = count_upto(&s->due, 0, q->now_ms);
}

static void finish(struct memjobs *s, struct jobreq *q) {
  struct mrec *m = find(s, q->rec.id);
  q->found = m && m->r.token && q->rec.token &&
             strcmp(m->r.token, q->rec.token) == 0;
  if (!q->found) return;
  if (!q->release && q->rec.due_ms < 0) {
    drop(s, m);
    return;
  }
  unqueue(s, m);
  free(m->r.token);
  m->r.token = NULL;
  m->r.lease_ms = 0;
  if (!q->release) {
    m->r.due_ms = q->rec.due_ms;
    m->r.attempts = 0;
    if (q->rec.body) set_body(&m->r, q->rec.body, q->rec.body_len);
  }
  enqueue(s, m);
}

static void renew(struct memjobs *s, struct jobreq *q) {
  q->held = xcalloc(q->nrecs ? q->nrecs : 1, sizeof *q->held);
  for (size_t i = 0; i < q->nrecs; i++) {
    struct mrec *m = find(s, q->recs[i].id);
    if (!m || !m->r.token || !q->recs[i].token ||
        strcmp(m->r.token, q->recs[i].token) != 0)
      continue;
    q->held[i] = true;
    unqueue(s, m);
    m->r.lease_ms = q->lease_ms;
    enqueue(s, m);
  }
}

static void submit(void *impl, struct jobreq *q) {
  struct memjobs *s = impl;
  switch (q->op) {
    case JOBREQ_PUT:
      put(s, q);
      break;
    case JOBREQ_DELETE: {
      struct mrec *m = find(s, q->rec.id);
      q->found = m != NULL;
      if (m) drop(s, m);
      break;
    }
    case JOBREQ_GET: {
      struct mrec *m = find(s, q->rec.id);
      q->found = m != NULL;
      if (m) jobreq_add_rec(q, &m->r);
      break;
    }
    case JOBREQ_LIST:
      list(s, q);
      break;
    case JOBREQ_CLAIM:
      claim(s, q);
      break;
    case JOBREQ_FINISH:
      finish(s, q);
      break;
    case JOBREQ_RENEW:
      renew(s, q);
      break;
  }
  jobreq_deferred_add(&s->deferred, q);
}

static void *open_store(struct event_base *base, const char *target,
                        const char *ns, struct buf *err) {
  struct memjobs *s = xcalloc(1, sizeof *s);
  struct buf name = BUF_INIT;
  buf_printf(&name, "%s%s%s", target ? target : "", ns && *ns ? "/" : "",
             ns ? ns : "");
  s->name = buf_steal(&name, NULL);
  hashmap_init(&s->map, keyhash_random_seed());
  s->leases.by_lease = true;
  jobreq_deferred_init(&s->deferred, base);
  return s;
}

static void describe(void *impl, struct buf *out) {
  struct memjobs *s = impl;
  if (s->name[0]) buf_printf(out, "memory job store \"%s\"", s->name);
  else buf_append_str(out, "memory job store");
}

static void close_store(void *impl) {
  struct memjobs *s = impl;
  jobreq_deferred_free(&s->deferred);
  size_t bucket;
  struct hashmap_node *n = hashmap_first(&s->map, &bucket);
  while (n) {
    struct hashmap_node *next = hashmap_next(&s->map, n, &bucket);
    struct mrec *m = hashmap_entry(n, struct mrec, node);
    jobrec_free(&m->r);
    free(m);
    n = next;
  }
  hashmap_free(&s->map);
  free(s->due.items);
  free(s->leases.items);
  free(s->name);
  free(s);
}

const struct jobstore_backend memjobs_backend = {
    .kind = "memory",
    .shared = false,
    .open = open_store,
    .describe = describe,
    .submit = submit,
    .close = close_store,
};
