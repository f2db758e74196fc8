#include "base/keyhash.h"

#include <string.h>

uint64_t keyhash_mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t keyhash_int(uint64_t seed, int64_t key) {
  return keyhash_mix((uint64_t)key ^ seed);
}

uint64_t keyhash_bytes(uint64_t seed, const void *bytes, size_t len) {
  uint64_t h = keyhash_mix(seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL));
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
