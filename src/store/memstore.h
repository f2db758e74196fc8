/* An in-memory key-value map of byte strings with optional expiry: what
 * tghost.storage.memory(name) keeps. Pure C (no Lua, no loop); the host
 * owns the stores (src/storages.h), so their contents outlive every
 * generation and so every hot reload.
 *
 * Layer: loop and HTTP, with the other stores, though it is pure data
 * (src/storages.c owns the stores, src/luastorage.c reads and writes them).
 *
 * Keys and values are arbitrary bytes (copied in). Time is passed in as
 * milliseconds on any monotonic clock, so tests can drive it. An entry
 * whose expiry has come is absent from then on; its memory is reclaimed
 * by a sweep that visits two buckets per set, so a store that keeps
 * receiving writes reclaims every expired entry within one pass over its
 * buckets (and any get or set of that key reclaims it at once).
 *
 * Cost: expected O(1 + key length) per get, set and delete (a hashmap,
 * seeded: the keys are the script's); memory is the entries (about 64
 * bytes plus key and value each) and 8 bytes per bucket. */
#ifndef TGHOST_MEMSTORE_H
#define TGHOST_MEMSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct memstore;

struct memstore *memstore_new(void);
void memstore_free(struct memstore *m);

/* The value of key, or NULL when it is absent or expired at now_ms; *len
 * is its length. The pointer stays valid until the store next changes. */
const char *memstore_get(struct memstore *m, const char *key, size_t key_len,
                         int64_t now_ms, size_t *len);

/* Stores a copy of value under key, replacing any earlier value.
 * expires_ms is the time at which it expires, or 0 for never. */
void memstore_set(struct memstore *m, const char *key, size_t key_len,
                  const char *value, size_t len, int64_t expires_ms,
                  int64_t now_ms);

/* Removes key; false if no entry (live or expired) was there. */
bool memstore_delete(struct memstore *m, const char *key, size_t key_len);

/* Calls fn for every live entry (not expired at now_ms), in no particular
 * order. fn must not change the store. */
void memstore_each(const struct memstore *m, int64_t now_ms,
                   void (*fn)(const char *key, size_t key_len,
                              const char *value, size_t len, void *ud),
                   void *ud);

/* Entries held, including expired ones not reclaimed yet. */
size_t memstore_count(const struct memstore *m);

#endif
