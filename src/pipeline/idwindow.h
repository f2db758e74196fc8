/* A window of recently seen update ids: remembers the last `capacity` ids
 * added (the oldest is forgotten first) and answers "seen?" in O(1).
 *
 * The webhook receiver keeps one: Telegram delivers an update again when
 * it got no 200 for it (a timeout, a connection reset after tghost had
 * accepted it), and a redelivery must not run the update twice.
 *
 * A ring of ids in arrival order and an open-addressing table (linear
 * probing, kept at most half full, deletion by backward shift, so no
 * tombstones pile up). Both grow with use up to their bound: memory is
 * at most about 24 bytes x capacity. Ids are non-negative (update ids are).
 *
 * Layer: pipeline (pure data, no loop). */
#ifndef TGHOST_IDWINDOW_H
#define TGHOST_IDWINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idwindow {
  size_t capacity;
  int64_t *ring;          /* ids, oldest at head */
  size_t ring_cap, count, head;
  int64_t *slots;         /* the table; -1 = empty */
  size_t nslots;          /* a power of two */
};

void idwindow_init(struct idwindow *w, size_t capacity);
void idwindow_free(struct idwindow *w);
bool idwindow_contains(const struct idwindow *w, int64_t id);
/* Remembers id, forgetting the oldest one when the window is full.
 * Returns false (and changes nothing) if id is remembered already. */
bool idwindow_add(struct idwindow *w, int64_t id);
size_t idwindow_size(const struct idwindow *w);

#endif
