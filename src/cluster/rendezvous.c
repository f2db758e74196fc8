#include "cluster/rendezvous.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

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

struct pair {
  uint64_t weight;
  uint32_t rank;        /* the member's place in name order */
  uint32_t member;
  int partition;
};

/* Heaviest first; ties to the smaller name, then the smaller partition. */
static int heavier_first(const void *a, const void *b) {
  const struct pair *x = a, *y = b;
  if (x->weight != y->weight) return x->weight > y->weight ? -1 : 1;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return (x->partition > y->partition) - (x->partition < y->partition);
}

void rendezvous_assign(const char *const *members, size_t n, int partitions,
                       int *owner) {
  for (int p = 0; p < partitions; p++) owner[p] = -1;
  if (n == 0 || partitions <= 0) return;
  size_t *rank = xcalloc(n, sizeof *rank), *load = xcalloc(n, sizeof *load);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      rank[i] += strcmp(members[j], members[i]) < 0;
  size_t count = n * (size_t)partitions;
  struct pair *pairs = xcalloc(count, sizeof *pairs);
  for (size_t i = 0, k = 0; i < n; i++) {
    size_t len = strlen(members[i]);
    for (int p = 0; p < partitions; p++, k++)
      pairs[k] = (struct pair){rendezvous_weight(members[i], len, p),
                               (uint32_t)rank[i], (uint32_t)i, p};
  }
  qsort(pairs, count, sizeof *pairs, heavier_first);
  size_t cap = ((size_t)partitions + n - 1) / n;
  /* Every partition gets an owner: one left over would mean every member
   * is at its cap, n * cap >= partitions owned already. */
  for (size_t k = 0; k < count; k++) {
    const struct pair *pr = &pairs[k];
    if (owner[pr->partition] >= 0 || load[pr->member] == cap) continue;
    owner[pr->partition] = (int)pr->member;
    load[pr->member]++;
  }
  free(pairs);
  free(load);
  free(rank);
}
