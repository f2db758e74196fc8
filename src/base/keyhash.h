/* Seeded hashing of keys that come from users (sequentialize's keys,
 * conversation keys): with a secret seed per process, keys cannot be
 * chosen to land in one bucket.
 *
 * Layer: base (pure C). */
#ifndef TGHOST_KEYHASH_H
#define TGHOST_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

/* A good 64-bit mixer (splitmix64's finalizer). */
uint64_t keyhash_mix(uint64_t x);
/* The hash of an integer key / of a string key's bytes. */
uint64_t keyhash_int(uint64_t seed, int64_t key);
uint64_t keyhash_bytes(uint64_t seed, const void *bytes, size_t len);

#endif
