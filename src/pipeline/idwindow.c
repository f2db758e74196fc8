#include "pipeline/idwindow.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

void idwindow_init(struct idwindow *w, size_t capacity) {
  memset(w, 0, sizeof *w);
  w->capacity = capacity ? capacity : 1;
}

void idwindow_free(struct idwindow *w) {
  free(w->ring);
  free(w->slots);
  memset(w, 0, sizeof *w);
}

size_t idwindow_size(const struct idwindow *w) { return w->count; }

static size_t slot_of(int64_t id, size_t nslots) {
  uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
  return (size_t)(x ^ (x >> 32)) & (nslots - 1);
}

bool idwindow_contains(const struct idwindow *w, int64_t id) {
  if (!w->nslots || id < 0) return false;
  for (size_t i = slot_of(id, w->nslots);; i = (i + 1) & (w->nslots - 1)) {
    if (w->slots[i] == id) return true;
    if (w->slots[i] < 0) return false;
  }
}

static void table_insert(int64_t *slots, size_t nslots, int64_t id) {
  size_t i = slot_of(id, nslots);
  while (slots[i] >= 0) i = (i + 1) & (nslots - 1);
  slots[i] = id;
}

/* Removes id (present) and closes the gap it leaves, so that every
 * remaining id stays reachable from its home slot. */
static void table_remove(struct idwindow *w, int64_t id) {
  size_t mask = w->nslots - 1, i = slot_of(id, w->nslots);
  while (w->slots[i] != id) i = (i + 1) & mask;
  for (size_t j = (i + 1) & mask; w->slots[j] >= 0; j = (j + 1) & mask) {
    size_t home = slot_of(w->slots[j], w->nslots);
    /* j's entry may move to i if i lies cyclically in [home, j). */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      w->slots[i] = w->slots[j];
      i = j;
    }
  }
  w->slots[i] = -1;
}

static void grow(struct idwindow *w) {
  /* Eviction starts only once the ring has its final size, so a ring that
   * grows has head 0 and its ids in ring[0, count). */
  if (w->count == w->ring_cap && w->ring_cap < w->capacity) {
    size_t cap = w->ring_cap ? w->ring_cap * 2 : 64;
    if (cap > w->capacity) cap = w->capacity;
    w->ring = xrealloc(w->ring, cap * sizeof *w->ring);
    w->ring_cap = cap;
  }
  if ((w->count + 1) * 2 > w->nslots) {
    size_t nslots = w->nslots ? w->nslots * 2 : 128;
    int64_t *slots = xmalloc(nslots * sizeof *slots);
    memset(slots, 0xff, nslots * sizeof *slots);   /* -1 everywhere */
    for (size_t k = 0; k < w->count; k++)
      table_insert(slots, nslots, w->ring[(w->head + k) % w->ring_cap]);
    free(w->slots);
    w->slots = slots;
    w->nslots = nslots;
  }
}

bool idwindow_add(struct idwindow *w, int64_t id) {
  if (id < 0 || idwindow_contains(w, id)) return false;
  if (w->count == w->capacity) {
    table_remove(w, w->ring[w->head]);
    w->head = (w->head + 1) % w->ring_cap;
    w->count--;
  }
  grow(w);
  w->ring[(w->head + w->count) % w->ring_cap] = id;
  w->count++;
  table_insert(w->slots, w->nslots, id);
  return true;
}
