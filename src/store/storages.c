#include "store/storages.h"

#include <stdlib.h>
#include <string.h>

enum store_kind { STORE_MEMORY, STORE_SQLITE, STORE_REDIS };

struct named_store {
  struct named_store *next;
  enum store_kind kind;
  char *name;
  void *store;
};

struct storages {
  struct event_base *base;
  struct named_store *list;
};

struct storages *storages_new(struct event_base *base) {
  struct storages *s = xcalloc(1, sizeof *s);
  s->base = base;
  return s;
}

void storages_free(struct storages *s) {
  if (!s) return;
  struct named_store *n = s->list;
  while (n) {
    struct named_store *next = n->next;
    switch (n->kind) {
      case STORE_MEMORY: memstore_free(n->store); break;
      case STORE_SQLITE: sqlstore_free(n->store); break;
      case STORE_REDIS: redisstore_free(n->store); break;
    }
    free(n->name);
    free(n);
    n = next;
  }
  free(s);
}

static void *find(struct storages *s, enum store_kind kind, const char *name) {
  for (struct named_store *n = s->list; n; n = n->next)
    if (n->kind == kind && strcmp(n->name, name) == 0) return n->store;
  return NULL;
}

static void *add(struct storages *s, enum store_kind kind, const char *name,
                 void *store) {
  struct named_store *n = xcalloc(1, sizeof *n);
  n->kind = kind;
  n->name = xstrdup(name);
  n->store = store;
  n->next = s->list;
  s->list = n;
  return store;
}

struct memstore *storages_memory(struct storages *s, const char *name) {
  struct memstore *m = find(s, STORE_MEMORY, name);
  return m ? m : add(s, STORE_MEMORY, name, memstore_new());
}

struct sqlstore *storages_sqlite(struct storages *s, const char *path,
                                 struct buf *err) {
  struct sqlstore *q = find(s, STORE_SQLITE, path);
  if (q) return q;
  char *why = NULL;
  q = sqlstore_new(s->base, path, &why);
  if (!q) {
    buf_printf(err, "cannot start the SQLite worker: %s", why);
    free(why);
    return NULL;
  }
  return add(s, STORE_SQLITE, path, q);
}

struct redisstore *storages_redis(struct storages *s, const char *url,
                                  struct buf *err) {
  struct redisstore *r = find(s, STORE_REDIS, url);
  if (r) return r;
  r = redisstore_new(s->base, url, err);
  return r ? add(s, STORE_REDIS, url, r) : NULL;
}
