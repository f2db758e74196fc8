/* One operation on a key-value storage backend (src/store/kvstore.h), from
 * submission to its result: get, set, delete, list keys by prefix, and
 * compare-and-set.
 *
 * Layer: stores (every backend takes them; the Lua bindings create them
 * and receive them back).
 *
 * Ownership: the caller creates a request and submits it to a store, which
 * owns it until it completes; completion happens on the loop thread and
 * hands the request back through done(req, ud), after which the receiver
 * owns it (kvreq_free). A receiver that stops caring (its coroutine was
 * cancelled) calls kvreq_detach() instead: the store then frees the
 * request when it completes and calls nobody. Detaching and completing
 * both happen on the loop thread, so they never race.
 *
 * Keys and values are arbitrary bytes; every buffer below is also
 * NUL-terminated, for convenience (except a borrowed request's inputs).
 * ns is the backend's namespace (an SQLite table, a Redis key prefix;
 * memory ignores it).
 *
 * A request for a backend's run_now (src/store/kvstore.h) may instead
 * live on the caller's stack and borrow its inputs (borrowed = true: ns,
 * key, expected, and value and cursor as given, stay the caller's); the
 * caller reads the results at once and then calls kvreq_release. Only
 * such a request may get results that point into the store
 * (kvreq_point_value): nothing runs between run_now and the reading. */
#ifndef TGHOST_KVREQ_H
#define TGHOST_KVREQ_H

#include <stdbool.h>
#include <stddef.h>

enum kv_op { KV_GET, KV_SET, KV_DELETE, KV_LIST, KV_CAS };

/* Pages of KV_LIST hold at most this many keys. */
#define KV_LIST_MAX 10000

struct kvreq;
typedef void (*kvreq_done_fn)(struct kvreq *req, void *ud);

struct kv_key {
  char *data;
  size_t len;
};

/* A write made for a cluster partition's update (sessions in --cluster):
 * a backend that shares its data between processes (Redis) stores it only
 * while the lease named holds the epoch, checked by the store itself
 * (src/cluster/redislib.lua's tgc_kv), and otherwise fails the request
 * with KV_FENCE_REFUSED in its error. Backends whose data no other
 * process sees (memory, SQLite) have nothing to fence and ignore it.
 * epoch 0: no fence. */
struct kv_fence {
  char lease[64];        /* the Redis key of the lease */
  char refused[64];      /* the Redis hash counting refusals */
  long long epoch;
};

/* The start of a fenced write's error when the lease has moved on. */
#define KV_FENCE_REFUSED "refused: this process no longer owns the update's partition"

struct kvreq {
  enum kv_op op;
  struct kv_fence fence; /* KV_SET, KV_DELETE, KV_CAS: see above */
  char *ns;
  char *key;             /* KV_LIST: the prefix every key listed has */
  size_t key_len;
  /* KV_SET: the bytes to store. KV_CAS: the bytes to store if the stored
   * ones are as expected, NULL to delete the key then. Once done: KV_GET
   * the bytes found, KV_CAS (not swapped) the bytes found instead of the
   * expected ones; NULL when the key is absent (or expired). */
  char *value;
  size_t value_len;
  /* KV_CAS: the bytes the key must hold, NULL: the key must be absent. */
  char *expected;
  size_t expected_len;
  long long ttl_ms;      /* KV_SET, KV_CAS: time to live, 0 = forever */
  /* KV_LIST: at most limit keys (1..KV_LIST_MAX) of the page that follows
   * cursor (NULL: the first page). Once done: the keys (without ns), and
   * the cursor of the next page, NULL when there is none. A cursor is
   * opaque bytes, meaningful to the store that made it only. */
  size_t limit;
  char *cursor;
  size_t cursor_len;
  struct kv_key *keys;
  size_t nkeys, keys_cap;
  bool swapped;          /* KV_CAS, once done: the new value is stored */
  bool borrowed;         /* see above */
  bool value_owned, cursor_owned;   /* freed with the request */
  char *error;           /* once done: why it failed, or NULL */
  kvreq_done_fn done;
  void *ud;
  bool detached;
  struct kvreq *next;    /* the store's queues */
};

/* Constructors: every buffer is copied; value, expected and cursor may be
 * NULL (absent). */
struct kvreq *kvreq_get(const char *ns, const char *key, size_t key_len,
                        kvreq_done_fn done, void *ud);
struct kvreq *kvreq_set(const char *ns, const char *key, size_t key_len,
                        const char *value, size_t value_len, long long ttl_ms,
                        kvreq_done_fn done, void *ud);
struct kvreq *kvreq_delete(const char *ns, const char *key, size_t key_len,
                           kvreq_done_fn done, void *ud);
struct kvreq *kvreq_list(const char *ns, const char *prefix, size_t prefix_len,
                         size_t limit, const char *cursor, size_t cursor_len,
                         kvreq_done_fn done, void *ud);
struct kvreq *kvreq_cas(const char *ns, const char *key, size_t key_len,
                        const char *expected, size_t expected_len,
                        const char *value, size_t value_len, long long ttl_ms,
                        kvreq_done_fn done, void *ud);

/* A request of its own (done, ud) with copies of spec's inputs. */
struct kvreq *kvreq_copy(const struct kvreq *spec, kvreq_done_fn done,
                         void *ud);

void kvreq_free(struct kvreq *req);
/* Frees what a request owns but not the request itself (borrowed ones). */
void kvreq_release(struct kvreq *req);
void kvreq_detach(struct kvreq *req);
/* "get", "set", ... for messages. */
const char *kvreq_op_name(enum kv_op op);

/* For stores. Replaces the error message (printf-style). */
void kvreq_set_error(struct kvreq *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Replaces value with a copy of bytes (NULL: absent). */
void kvreq_set_value(struct kvreq *req, const char *bytes, size_t len);
/* For run_now on a borrowed request: value points at bytes, which stay
 * valid until the store next changes. */
void kvreq_point_value(struct kvreq *req, const char *bytes, size_t len);
/* Appends a key to a KV_LIST's result. */
void kvreq_add_key(struct kvreq *req, const char *key, size_t len);
/* Replaces the next-page cursor (NULL: no next page). */
void kvreq_set_cursor(struct kvreq *req, const char *cursor, size_t len);
/* On the loop thread: hands the finished request back, or frees it if it
 * was detached. */
void kvreq_complete(struct kvreq *req);

#endif
