/* The process's storages, by name: memory stores, SQLite databases and
 * Redis connections. The host owns them (one pointer in struct host), so
 * they outlive every generation: a reloaded script that asks for the same
 * name gets the same store, with its contents, connection and worker.
 *
 * Layer: loop and HTTP (the host creates and frees it; the Lua bindings
 * look stores up in it). A store once opened lives until the process
 * exits.
 *
 * Names: a memory store by its name; an SQLite database by its path as
 * given (one worker and connection per file, whatever tables are used);
 * Redis by its URL (one connection, whatever key prefixes are used). */
#ifndef TGHOST_STORAGES_H
#define TGHOST_STORAGES_H

#include <event2/event.h>

#include "base/buf.h"
#include "store/memstore.h"
#include "store/redisstore.h"
#include "store/sqlstore.h"

struct storages;

struct storages *storages_new(struct event_base *base);
/* Teardown, after the loop has stopped: finishes queued SQLite writes,
 * closes everything. */
void storages_free(struct storages *s);

struct memstore *storages_memory(struct storages *s, const char *name);
/* NULL with a message in err when the store cannot be had (a bad URL; no
 * thread for SQLite). */
struct sqlstore *storages_sqlite(struct storages *s, const char *path,
                                 struct buf *err);
struct redisstore *storages_redis(struct storages *s, const char *url,
                                  struct buf *err);

#endif
