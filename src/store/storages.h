/* The storage backends, registered once, and the process's open stores.
 *
 * Layer: stores (the host creates and frees it; the Lua bindings open
 * stores through it). The registry is the one list of backends
 * (src/store/kvstore.h): memory, SQLite, Redis. Nothing else names a
 * backend: adding one is its module plus a line in storages.c.
 *
 * The host owns the open stores (one pointer in struct host), so they
 * outlive every generation: a reloaded script that opens the same kind
 * and target gets the same store, with its contents, connection and
 * worker. A store once opened lives until the process exits. Targets: a
 * memory store's name, an SQLite file's path as given (one worker and
 * connection per file, whatever tables are used), a Redis URL (one
 * connection, whatever key prefixes are used). */
#ifndef TGHOST_STORAGES_H
#define TGHOST_STORAGES_H

#include <stddef.h>

#include <event2/event.h>

#include "base/buf.h"
#include "store/kvstore.h"

struct storages;

/* The backends, in registration order: i from 0 while non-NULL. */
const struct kv_backend *storages_backend_at(size_t i);
/* The backend of that kind, or NULL. */
const struct kv_backend *storages_backend(const char *kind);

struct storages *storages_new(struct event_base *base);
/* Teardown, after the loop has stopped: closes every store (SQLite
 * finishes its queued writes first). */
void storages_free(struct storages *s);

/* The store of backend b for target, opened on first use; NULL with a
 * message in err when it cannot be had (a bad URL; no thread for SQLite).
 * The target is not checked here: see kv_backend.check. */
struct kvstore *storages_open(struct storages *s, const struct kv_backend *b,
                              const char *target, struct buf *err);

#endif
