#include "store/kvreq.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* A NUL-terminated copy of len bytes, or NULL for NULL. */
static char *copy_bytes(const char *p, size_t len) {
  if (!p) return NULL;
  char *c = xmalloc(len + 1);
  memcpy(c, p, len);
  c[len] = '\0';
  return c;
}

static struct kvreq *new_req(enum kv_op op, const char *ns, const char *key,
                             size_t key_len, kvreq_done_fn done, void *ud) {
  struct kvreq *r = xcalloc(1, sizeof *r);
  r->op = op;
  r->ns = xstrdup(ns ? ns : "");
  r->key = copy_bytes(key ? key : "", key ? key_len : 0);
  r->key_len = key ? key_len : 0;
  r->done = done;
  r->ud = ud;
  return r;
}

struct kvreq *kvreq_get(const char *ns, const char *key, size_t key_len,
                        kvreq_done_fn done, void *ud) {
  return new_req(KV_GET, ns, key, key_len, done, ud);
}

struct kvreq *kvreq_set(const char *ns, const char *key, size_t key_len,
                        const char *value, size_t value_len, long long ttl_ms,
                        kvreq_done_fn done, void *ud) {
  struct kvreq *r = new_req(KV_SET, ns, key, key_len, done, ud);
  r->value = copy_bytes(value ? value : "", value ? value_len : 0);
  r->value_len = value ? value_len : 0;
  r->value_owned = true;
  r->ttl_ms = ttl_ms;
  return r;
}

struct kvreq *kvreq_delete(const char *ns, const char *key, size_t key_len,
                           kvreq_done_fn done, void *ud) {
  return new_req(KV_DELETE, ns, key, key_len, done, ud);
}

struct kvreq *kvreq_list(const char *ns, const char *prefix, size_t prefix_len,
                         size_t limit, const char *cursor, size_t cursor_len,
                         kvreq_done_fn done, void *ud) {
  struct kvreq *r = new_req(KV_LIST, ns, prefix, prefix_len, done, ud);
  if (limit < 1) limit = 1;
  if (limit > KV_LIST_MAX) limit = KV_LIST_MAX;
  r->limit = limit;
  r->cursor = copy_bytes(cursor, cursor_len);
  r->cursor_len = cursor ? cursor_len : 0;
  r->cursor_owned = cursor != NULL;
  return r;
}

struct kvreq *kvreq_cas(const char *ns, const char *key, size_t key_len,
                        const char *expected, size_t expected_len,
                        const char *value, size_t value_len, long long ttl_ms,
                        kvreq_done_fn done, void *ud) {
  struct kvreq *r = new_req(KV_CAS, ns, key, key_len, done, ud);
  r->expected = copy_bytes(expected, expected_len);
  r->expected_len = expected ? expected_len : 0;
  r->value = copy_bytes(value, value_len);
  r->value_len = value ? value_len : 0;
  r->value_owned = value != NULL;
  r->ttl_ms = ttl_ms;
  return r;
}

static struct kvreq *copy_of(const struct kvreq *q, kvreq_done_fn done,
                             void *ud) {
  switch (q->op) {
    case KV_GET: return kvreq_get(q->ns, q->key, q->key_len, done, ud);
    case KV_SET:
      return kvreq_set(q->ns, q->key, q->key_len, q->value, q->value_len,
                       q->ttl_ms, done, ud);
    case KV_DELETE: return kvreq_delete(q->ns, q->key, q->key_len, done, ud);
    case KV_LIST:
      return kvreq_list(q->ns, q->key, q->key_len, q->limit, q->cursor,
                        q->cursor_len, done, ud);
    case KV_CAS:
      return kvreq_cas(q->ns, q->key, q->key_len, q->expected,
                       q->expected_len, q->value, q->value_len, q->ttl_ms,
                       done, ud);
  }
  return NULL;
}

struct kvreq *kvreq_copy(const struct kvreq *q, kvreq_done_fn done,
                         void *ud) {
  struct kvreq *r = copy_of(q, done, ud);
  if (r) r->fence = q->fence;
  return r;
}

void kvreq_release(struct kvreq *r) {
  if (!r->borrowed) {
    free(r->ns);
    free(r->key);
    free(r->expected);
  }
  if (r->value_owned) free(r->value);
  if (r->cursor_owned) free(r->cursor);
  for (size_t i = 0; i < r->nkeys; i++) free(r->keys[i].data);
  free(r->keys);
  free(r->error);
}

void kvreq_free(struct kvreq *r) {
  if (!r) return;
  kvreq_release(r);
  free(r);
}

void kvreq_detach(struct kvreq *r) { r->detached = true; }

const char *kvreq_op_name(enum kv_op op) {
  switch (op) {
    case KV_GET: return "get";
    case KV_SET: return "set";
    case KV_DELETE: return "delete";
    case KV_LIST: return "list";
    case KV_CAS: return "cas";
  }
  return "?";
}

void kvreq_set_error(struct kvreq *r, const char *fmt, ...) {
  struct buf b = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&b, fmt, ap);
  va_end(ap);
  free(r->error);
  r->error = buf_steal(&b, NULL);
}

void kvreq_set_value(struct kvreq *r, const char *bytes, size_t len) {
  if (r->value_owned) free(r->value);
  r->value = copy_bytes(bytes, len);
  r->value_len = bytes ? len : 0;
  r->value_owned = bytes != NULL;
}

void kvreq_point_value(struct kvreq *r, const char *bytes, size_t len) {
  if (r->value_owned) free(r->value);
  r->value = (char *)bytes;
  r->value_len = bytes ? len : 0;
  r->value_owned = false;
}

void kvreq_add_key(struct kvreq *r, const char *key, size_t len) {
  if (r->nkeys == r->keys_cap) {
    r->keys_cap = r->keys_cap ? r->keys_cap * 2 : 16;
    r->keys = xrealloc(r->keys, r->keys_cap * sizeof *r->keys);
  }
  r->keys[r->nkeys].data = copy_bytes(key, len);
  r->keys[r->nkeys].len = len;
  r->nkeys++;
}

void kvreq_set_cursor(struct kvreq *r, const char *cursor, size_t len) {
  if (r->cursor_owned) free(r->cursor);
  r->cursor = copy_bytes(cursor, len);
  r->cursor_len = cursor ? len : 0;
  r->cursor_owned = cursor != NULL;
}

void kvreq_complete(struct kvreq *r) {
  if (r->detached || !r->done) {
    kvreq_free(r);
    return;
  }
  r->done(r, r->ud);
}
