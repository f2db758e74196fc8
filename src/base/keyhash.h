/* Seeded hashing of keys that come from users (hashmap.h): with a secret
 * seed per process, keys cannot be chosen to land in one bucket.
 *
 * Layer: base (pure C). */
#ifndef TGHOST_KEYHASH_H
#define TGHOST_KEYHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A good 64-bit mixer (splitmix64's finalizer). */
static inline uint64_t keyhash_mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

/* The hash of a key's bytes: one mix per 8 bytes (the seed and the length
 * go into the first), so a chat id costs one. Inline: hash tables call it
 * for every update. */
static inline uint64_t keyhash_bytes(uint64_t seed, const void *bytes,
                                     size_t len) {
  uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
  if (len == 0) return keyhash_mix(h);
  const unsigned char *p = bytes;
  size_t n = len;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = keyhash_mix(h ^ w);
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = keyhash_mix(h ^ w ^ 0xff51afd7ed558ccdULL);
  }
  return h;
}

/* A seed nobody outside can guess: from the kernel's random source, or,
 * should that fail, from the clock, the process id and an address. */
uint64_t keyhash_random_seed(void);

#endif
