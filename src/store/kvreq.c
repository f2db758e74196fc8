#include "store/kvreq.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

struct kvreq *kvreq_new(enum kv_op op, const char *ns, const char *key,
                        size_t key_len, const char *value, size_t value_len,
                        long long ttl_ms, kvreq_done_fn done, void *ud) {
  struct kvreq *r = xcalloc(1, sizeof *r);
  r->op = op;
  r->ns = xstrdup(ns ? ns : "");
  r->key = xstrndup(key, key_len);
  r->key_len = key_len;
  if (value) {
    r->value = xmalloc(value_len + 1);
    memcpy(r->value, value, value_len);
    r->value[value_len] = '\0';
    r->value_len = value_len;
  }
  r->ttl_ms = ttl_ms;
  r->done = done;
  r->ud = ud;
  return r;
}

void kvreq_free(struct kvreq *r) {
  if (!r) return;
  free(r->ns);
  free(r->key);
  free(r->value);
  free(r->error);
  free(r);
}

void kvreq_detach(struct kvreq *r) { r->detached = true; }

void kvreq_set_error(struct kvreq *r, const char *fmt, ...) {
  struct buf b = BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&b, fmt, ap);
  va_end(ap);
  free(r->error);
  r->error = buf_steal(&b, NULL);
}

void kvreq_complete(struct kvreq *r) {
  if (r->detached || !r->done) {
    kvreq_free(r);
    return;
  }
  r->done(r, r->ud);
}
