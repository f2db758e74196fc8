/* One get, set or delete on an asynchronous key-value store (SQLite,
 * Redis), from submission to its result.
 *
 * Layer: loop and HTTP (src/sqlstore.h, src/redisstore.h use it; the Lua
 * bindings create requests and receive them back).
 *
 * Ownership: the caller creates a request and submits it to a store, which
 * owns it until it completes; completion happens on the loop thread and
 * hands the request back through done(req, ud), after which the receiver
 * owns it (kvreq_free). A receiver that stops caring (its coroutine was
 * cancelled) calls kvreq_detach() instead: the store then frees the
 * request when it completes and calls nobody. Detaching and completing
 * both happen on the loop thread, so they never race. */
#ifndef TGHOST_KVREQ_H
#define TGHOST_KVREQ_H

#include <stdbool.h>
#include <stddef.h>

enum kv_op { KV_GET, KV_SET, KV_DELETE };

struct kvreq;
typedef void (*kvreq_done_fn)(struct kvreq *req, void *ud);

struct kvreq {
  enum kv_op op;
  char *ns;              /* SQLite: the table; Redis: the key prefix */
  char *key;
  size_t key_len;
  /* KV_SET: the bytes to store. KV_GET, once done: the bytes found, or
   * NULL when the key is absent (or expired). */
  char *value;
  size_t value_len;
  long long ttl_ms;      /* KV_SET: time to live, 0 = forever */
  char *error;           /* once done: why it failed, or NULL */
  kvreq_done_fn done;
  void *ud;
  bool detached;
  struct kvreq *next;    /* the store's queues */
};

/* Copies ns, key and value (value may be NULL). */
struct kvreq *kvreq_new(enum kv_op op, const char *ns, const char *key,
                        size_t key_len, const char *value, size_t value_len,
                        long long ttl_ms, kvreq_done_fn done, void *ud);
void kvreq_free(struct kvreq *req);
void kvreq_detach(struct kvreq *req);
/* For stores: replaces the error message (printf-style). */
void kvreq_set_error(struct kvreq *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For stores, on the loop thread: hands the finished request back, or
 * frees it if it was detached. */
void kvreq_complete(struct kvreq *req);

#endif
