/* An update as the pipeline carries it from the source to the sink: its
 * id and its raw JSON, not decoded (decoding happens when it starts, in
 * the Lua state that runs it). Items are linked into batches and the
 * sink's backlog without allocating. */
#ifndef TGHOST_UPDATE_H
#define TGHOST_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/qlist.h"
#include "store/kvreq.h"

struct update_item {
  int64_t id;
  char *json;          /* owned */
  size_t len;
  bool redelivered;    /* run again after a restart (the journal), or by
                          a new owner of its cluster partition */
  struct kv_fence *fence;   /* owned, or NULL: see fence.h */
  int partition;       /* with a fence: its cluster partition */
  struct qnode node;
};

static inline void update_item_free(struct update_item *u) {
  if (!u) return;
  free(u->json);
  free(u->fence);
  free(u);
}

/* Frees the update_items of a list, leaving it empty. */
static inline void update_batch_free(struct qlist *batch) {
  struct qnode *n;
  while ((n = qlist_pop_front(batch)))
    update_item_free(qlist_entry(n, struct update_item, node));
}

#endif
