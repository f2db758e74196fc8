#include "cluster/rendezvous.h"

#include <string.h>

static uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t rendezvous_weight(const char *member, size_t len, int partition) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)member[i];
    h *= 0x100000001b3ULL;
  }
  return mix(h ^ mix((uint64_t)(uint32_t)partition + 0x9e3779b97f4a7c15ULL));
}

int rendezvous_owner(const char *const *members, size_t n, int partition) {
  int best = -1;
  uint64_t best_w = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t w = rendezvous_weight(members[i], strlen(members[i]), partition);
    if (best < 0 || w > best_w ||
        (w == best_w && strcmp(members[i], members[best]) < 0)) {
      best = (int)i;
      best_w = w;
    }
  }
  return best;
}
