#include "store/storages.h"

#include <stdlib.h>
#include <string.h>

#include "store/memkv.h"
#include "store/redisstore.h"
#include "store/sqlstore.h"

/* The registry: one line per backend. */
static const struct kv_backend *const backends[] = {
    &memkv_backend,
    &sqlstore_backend,
    &redisstore_backend,
};

const struct kv_backend *storages_backend_at(size_t i) {
  return i < sizeof backends / sizeof *backends ? backends[i] : NULL;
}

const struct kv_backend *storages_backend(const char *kind) {
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
    if (strcmp(backends[i]->kind, kind) == 0) return backends[i];
  return NULL;
}

struct open_store {
  struct open_store *next;
  char *target;
  struct kvstore store;
};

struct storages {
  struct event_base *base;
  struct open_store *list;
};

struct storages *storages_new(struct event_base *base) {
  struct storages *s = xcalloc(1, sizeof *s);
  s->base = base;
  return s;
}

void storages_free(struct storages *s) {
  if (!s) return;
  struct open_store *o = s->list;
  while (o) {
    struct open_store *next = o->next;
    o->store.backend->close(o->store.impl);
    free(o->target);
    free(o);
    o = next;
  }
  free(s);
}

struct kvstore *storages_open(struct storages *s, const struct kv_backend *b,
                              const char *target, struct buf *err) {
  for (struct open_store *o = s->list; o; o = o->next)
    if (o->store.backend == b && strcmp(o->target, target) == 0)
      return &o->store;
  void *impl = b->open(s->base, target, err);
  if (!impl) return NULL;
  struct open_store *o = xcalloc(1, sizeof *o);
  o->target = xstrdup(target);
  o->store.backend = b;
  o->store.impl = impl;
  o->next = s->list;
  s->list = o;
  return &o->store;
}
