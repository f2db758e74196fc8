/* The storage-backend interface: what a key-value backend (memory, SQLite,
 * Redis) implements, and the one contract everything above relies on.
 * Like Redis's ConnectionType or curl's struct Curl_ssl: one struct of
 * operations per backend, registered once (src/store/storages.c); callers
 * hold a struct kvstore and never ask which backend it is. A script's
 * tghost.storage.<kind>(...) is built from the struct's description, so a
 * new backend is one module and one line in the registry.
 *
 * Layer: stores.
 *
 * The submit contract, the same for every backend:
 *   - submit takes the request (src/store/kvreq.h) and never fails: an
 *     error (a full disk, Redis down, a bad table) is the request's result;
 *   - the request completes on the loop thread, never inside submit, and
 *     always exactly once (kvreq_complete), in submission order for the
 *     requests of one store;
 *   - get and list never see an expired key; a ttl counts from the write.
 *   Memory keeps it too: it does the work at once but hands the result
 *   back from the loop (struct kv_deferred below).
 *
 * Operations: get, set (with a ttl), delete, list (the keys with a prefix,
 * a page at a time), and compare-and-set. Compare-and-set compares the
 * stored bytes: KV_CAS stores its value (or deletes the key) only if the
 * key holds exactly the expected bytes (or, expected NULL, is absent or
 * expired), atomically, and otherwise reports what is there. We chose the
 * bytes over a version per key because it works on the data every store
 * already holds (an SQLite table or a Redis string written by an older
 * tghost has no version to read, and gets none by being read), costs no
 * extra column or key, and means what the callers want: "the value is
 * still the one I read". The values come from a canonical encoding
 * (src/script/storecodec.h: equal data, equal bytes), so equal bytes are
 * equal values; a value changed and changed back (A, B, A) passes, which
 * is right for state whose meaning is its value (a session, a dialog's
 * record, a job's schedule). Whoever needs to see every change puts a
 * counter in the value. Each backend makes it atomic its own way: memory
 * inline on the loop, SQLite in one statement on its worker, Redis in one
 * server-side script (EVALSHA).
 *
 * Listing is by key prefix, in pages of at most limit keys, following an
 * opaque cursor until there is none. A key present for the whole listing
 * is listed at least once; keys written or deleted meanwhile may or may
 * not be. Memory and SQLite list in byte order and never repeat a key;
 * Redis lists in its own order (SCAN) and may repeat one. */
#ifndef TGHOST_KVSTORE_H
#define TGHOST_KVSTORE_H

#include <stdbool.h>

#include <event2/event.h>

#include "base/buf.h"
#include "store/kvreq.h"

/* One backend. The descriptive fields shape tghost.storage.<kind>(target
 * [, ns]) and its messages. */
struct kv_backend {
  const char *kind;          /* "sqlite": tghost.storage.sqlite */
  const char *target_arg;    /* its first argument's name: "path" */
  const char *target_what;   /* what it must be: "a file path" */
  const char *ns_arg;        /* its second argument ("table"), NULL: none */
  const char *ns_default;    /* when the script gives none: "kv" */
  /* Opening it has no effect outside the process, so it may be opened
   * under --check (memory). */
  bool opens_under_check;

  /* Whether target and ns can be used, without opening anything: 0, or -1
   * with what is wrong in err (never a password). */
  int (*check)(const char *target, const char *ns, struct buf *err);
  /* The store for target; NULL with err. One per target and process
   * (storages.c keeps them), whatever the namespaces used on it. */
  void *(*open)(struct event_base *base, const char *target, struct buf *err);
  /* Appends how messages name a store of target with namespace ns:
   * sqlite storage "bot.db" (table sessions). */
  void (*describe)(const char *target, const char *ns, struct buf *out);
  /* The contract above. */
  void (*submit)(void *impl, struct kvreq *req);
  /* Optional, for backends whose operations need no I/O: does req's work
   * within the call and returns, nobody called. A script's memory call
   * uses it and so never suspends (a get followed by a set of a memory
   * store is atomic, which scripts rely on). */
  void (*run_now)(void *impl, struct kvreq *req);
  /* Teardown, after the loop has stopped: finishes what must be finished
   * (SQLite commits queued writes), frees requests still owned without
   * completing them, closes everything. */
  void (*close)(void *impl);
};

/* An open store: a backend and its state. */
struct kvstore {
  const struct kv_backend *backend;
  void *impl;
};

static inline void kvstore_submit(struct kvstore *s, struct kvreq *req) {
  s->backend->submit(s->impl, req);
}

/* For backends that finish requests at once: completes them from the loop
 * (one event per batch of requests), in the order they were added. */
struct kv_deferred {
  struct event *event;
  struct kvreq *head, *tail;
};

void kv_deferred_init(struct kv_deferred *d, struct event_base *base);
/* Completes req from the loop. */
void kv_deferred_add(struct kv_deferred *d, struct kvreq *req);
/* Frees the requests not completed yet, without completing them. */
void kv_deferred_free(struct kv_deferred *d);

#endif
