#include "store/memkv.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "store/memstore.h"

struct memkv {
  struct memstore *map;
  struct kv_deferred deferred;
};

/* --- listing ---------------------------------------------------------------- */

static int compare_keys(const struct kv_key *a, const struct kv_key *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->data, b->data, n);
  if (c) return c;
  return a->len < b->len ? -1 : a->len > b->len;
}

static int compare_key_ptrs(const void *a, const void *b) {
  return compare_keys(a, b);
}

/* The limit smallest keys that have the prefix and follow the cursor: a
 * max-heap of the best so far (keys point into the map, which does not
 * change meanwhile). */
struct page {
  const struct kvreq *req;
  struct kv_key *heap;
  size_t n;
};

static void sift_down(struct kv_key *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, top = i;
    if (l < n && compare_keys(&h[l], &h[top]) > 0) top = l;
    if (r < n && compare_keys(&h[r], &h[top]) > 0) top = r;
    if (top == i) return;
    struct kv_key t = h[i];
    h[i] = h[top];
    h[top] = t;
    i = top;
  }
}

static void sift_up(struct kv_key *h, size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (compare_keys(&h[i], &h[parent]) <= 0) return;
    struct kv_key t = h[i];
    h[i] = h[parent];
    h[parent] = t;
    i = parent;
  }
}

static void consider(const char *key, size_t key_len, const char *value,
                     size_t len, void *ud) {
  struct page *p = ud;
  const struct kvreq *r = p->req;
  if (key_len < r->key_len || memcmp(key, r->key, r->key_len) != 0) return;
  struct kv_key k = {(char *)key, key_len};
  if (r->cursor) {
    struct kv_key after = {r->cursor, r->cursor_len};
    if (compare_keys(&k, &after) <= 0) return;
  }
  if (p->n < r->limit) {
    p->heap[p->n] = k;
    sift_up(p->heap, p->n++);
  } else if (compare_keys(&k, &p->heap[0]) < 0) {
    p->heap[0] = k;
    sift_down(p->heap, p->n, 0);
  }
}

static void list(struct memkv *m, struct kvreq *r, int64_t now) {
  struct page p = {r, xcalloc(r->limit, sizeof *p.heap), 0};
  memstore_each(m->map, now, consider, &p);
  qsort(p.heap, p.n, sizeof *p.heap, compare_key_ptrs);
  for (size_t i = 0; i < p.n; i++)
    kvreq_add_key(r, p.heap[i].data, p.heap[i].len);
  /* A full page may have a next one; the last key is where it starts. */
  if (p.n == r->limit)
    kvreq_set_cursor(r, p.heap[p.n - 1].data, p.heap[p.n - 1].len);
  else
    kvreq_set_cursor(r, NULL, 0);
  free(p.heap);
}

/* --- operations ------------------------------------------------------------- */

/* Results point into the map when the caller reads them at once (see
 * kvreq_point_value), and are copies otherwise. */
static void run(struct memkv *m, struct kvreq *r, bool point) {
  int64_t now = (int64_t)clock_now_ms();
  int64_t expires = r->ttl_ms > 0 ? now + r->ttl_ms : 0;
  size_t len = 0;
  const char *cur;
  switch (r->op) {
    case KV_GET:
      cur = memstore_get(m->map, r->key, r->key_len, now, &len);
      if (point) kvreq_point_value(r, cur, len);
      else kvreq_set_value(r, cur, len);
      return;
    case KV_SET:
      memstore_set(m->map, r->key, r->key_len, r->value, r->value_len,
                   expires, now);
      return;
    case KV_DELETE:
      memstore_delete(m->map, r->key, r->key_len);
      return;
    case KV_LIST:
      list(m, r, now);
      return;
    case KV_CAS:
      cur = memstore_get(m->map, r->key, r->key_len, now, &len);
      r->swapped = r->expected ? cur && len == r->expected_len &&
                                     memcmp(cur, r->expected, len) == 0
                               : cur == NULL;
      if (!r->swapped) {
        kvreq_set_value(r, cur, len);
      } else if (r->value) {
        memstore_set(m->map, r->key, r->key_len, r->value, r->value_len,
                     expires, now);
      } else {
        memstore_delete(m->map, r->key, r->key_len);
      }
      return;
  }
}

static void run_now(void *impl, struct kvreq *r) { run(impl, r, r->borrowed); }

static void submit(void *impl, struct kvreq *r) {
  struct memkv *m = impl;
  run(m, r, false);
  kv_deferred_add(&m->deferred, r);
}

/* --- the backend -------------------------------------------------------------- */

static int check(const char *target, const char *ns, struct buf *err) {
  if (!target[0]) {
    buf_printf(err, "the name is empty");
    return -1;
  }
  return 0;
}

static void *open_store(struct event_base *base, const char *target,
                        struct buf *err) {
  struct memkv *m = xcalloc(1, sizeof *m);
  m->map = memstore_new();
  kv_deferred_init(&m->deferred, base);
  return m;
}

static void describe(const char *target, const char *ns, struct buf *out) {
  buf_printf(out, "memory storage \"%s\"", target);
}

static void close_store(void *impl) {
  struct memkv *m = impl;
  kv_deferred_free(&m->deferred);
  memstore_free(m->map);
  free(m);
}

const struct kv_backend memkv_backend = {
    .kind = "memory",
    .target_arg = "name",
    .target_what = "a name (a non-empty string)",
    .ns_arg = NULL,
    .ns_default = "",
    .opens_under_check = true,
    .check = check,
    .open = open_store,
    .describe = describe,
    .submit = submit,
    .run_now = run_now,
    .close = close_store,
};
