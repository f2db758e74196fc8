#include "script/luastorage.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "store/kvreq.h"
#include "script/luabind.h"
#include "store/storages.h"
#include "script/storecodec.h"
#include "sched/task.h"

static const char HANDLE_MT[] = "tghost.storage.handle";

enum handle_kind { HANDLE_MEMORY, HANDLE_SQLITE, HANDLE_REDIS };

/* What a script's storage object holds: the host's store (NULL under
 * --check, where it reads as empty) and, for SQLite, the table or, for
 * Redis, the key prefix. */
struct store_handle {
  enum handle_kind kind;
  void *store;
  char ns[];
};

static struct store_handle *push_handle(lua_State *L, enum handle_kind kind,
                                        void *store, const char *ns) {
  size_t len = ns ? strlen(ns) : 0;
  struct store_handle *h = lua_newuserdatauv(L, sizeof *h + len + 1, 0);
  h->kind = kind;
  h->store = store;
  memcpy(h->ns, ns ? ns : "", len + 1);
  luaL_setmetatable(L, HANDLE_MT);
  return h;
}

static struct store_handle *check_handle(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, HANDLE_MT);
}

/* --- constructors -------------------------------------------------------- */

static int l_memory(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  struct memstore *m = storages_memory(host_of(L)->storages, name);
  push_handle(L, HANDLE_MEMORY, m, NULL);
  return 1;
}

static int l_sqlite(lua_State *L) {
  struct host *h = host_of(L);
  const char *path = luaL_checkstring(L, 1);
  const char *table = luaL_checkstring(L, 2);
  if (!sqlstore_valid_table(table))
    return luaL_error(L, "tghost.storage.sqlite: table name \"%s\" must be "
                         "letters, digits and _ (at most 64, not starting "
                         "with a digit or sqlite_)", table);
  if (!path[0])
    return luaL_error(L, "tghost.storage.sqlite: the path is empty");
  struct sqlstore *q = NULL;
  if (!h->cfg->check) {
    struct buf err = BUF_INIT;
    q = storages_sqlite(h->storages, path, &err);
    if (!q) {
      lua_pushfstring(L, "tghost.storage.sqlite(\"%s\"): %s", path, err.data);
      buf_free(&err);
      return lua_error(L);
    }
  }
  push_handle(L, HANDLE_SQLITE, q, table);
  return 1;
}

static int l_redis(lua_State *L) {
  struct host *h = host_of(L);
  const char *url = luaL_checkstring(L, 1);
  const char *prefix = luaL_optstring(L, 2, "");
  struct buf err = BUF_INIT;
  struct redisstore *r = NULL;
  int rc = h->cfg->check ? redisstore_check_url(url, &err) : 0;
  if (rc == 0 && !h->cfg->check) r = storages_redis(h->storages, url, &err);
  if (rc != 0 || (!h->cfg->check && !r)) {
    /* The URL may hold a password: name the problem, not the URL. */
    lua_pushfstring(L, "tghost.storage.redis: %s", err.data);
    buf_free(&err);
    return lua_error(L);
  }
  push_handle(L, HANDLE_REDIS, r, prefix);
  if (r) lua_pushstring(L, redisstore_name(r));
  else lua_pushliteral(L, "redis");
  return 2;
}

/* --- calls --------------------------------------------------------------- */

static int kv_push(lua_State *co, void *data) {
  struct kvreq *r = data;
  int n = 0;
  if (co) {
    luaL_checkstack(co, 2, "storage result");
    if (r->error) {
      lua_pushboolean(co, 0);
      lua_pushstring(co, r->error);
      n = 2;
    } else {
      lua_pushboolean(co, 1);
      n = 1;
      if (r->op == KV_GET) {
        if (r->value) lua_pushlstring(co, r->value, r->value_len);
        else lua_pushnil(co);
        n = 2;
      }
    }
  }
  kvreq_free(r);
  return n;
}

static void kv_done(struct kvreq *r, void *ud) { task_wake(ud, kv_push, r); }

static void kv_cancel(void *data) { kvreq_detach(data); }

static const struct task_wait_ops kv_wait_ops = {"storage", kv_cancel};

static const char *kind_name(enum handle_kind kind) {
  switch (kind) {
    case HANDLE_MEMORY: return "memory";
    case HANDLE_SQLITE: return "sqlite";
    case HANDLE_REDIS: return "redis";
  }
  return "?";
}

/* Sends a request to an SQLite or Redis store and suspends the task until
 * it is answered. */
static int call_async(lua_State *L, struct store_handle *sh, enum kv_op op,
                      const char *key, size_t key_len, const char *value,
                      size_t value_len, long long ttl_ms) {
  struct host *h = host_of(L);
  if (!sh->store) {
    /* --check opens no file and connects nowhere: the store reads as
     * empty and writes go nowhere, so that a script's top level runs. */
    if (op != KV_GET) return 0;
    lua_pushnil(L);
    return 1;
  }
  char what[48];
  snprintf(what, sizeof what, "a %s storage call", kind_name(sh->kind));
  struct task *t = task_check_can_wait(L, &h->sched, what);
  struct kvreq *r = kvreq_new(op, sh->ns, key, key_len, value, value_len,
                              ttl_ms, kv_done, t);
  if (sh->kind == HANDLE_SQLITE) {
    sqlstore_submit(sh->store, r);
  } else if (redisstore_submit(sh->store, r) != 0) {
    lua_pushstring(L, r->error);
    kvreq_free(r);
    return lua_error(L);
  }
  lua_settop(L, 0);
  return task_wait(L, t, &kv_wait_ops, r);
}

static long long check_ttl(lua_State *L, int idx) {
  lua_Integer ttl = luaL_optinteger(L, idx, 0);
  luaL_argcheck(L, ttl >= 0, idx, "ttl must be >= 0 milliseconds");
  return (long long)ttl;
}

static int l_get(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  if (sh->kind != HANDLE_MEMORY)
    return call_async(L, sh, KV_GET, key, key_len, NULL, 0, 0);
  size_t len;
  const char *v = memstore_get(sh->store, key, key_len,
                               (int64_t)clock_now_ms(), &len);
  if (v) lua_pushlstring(L, v, len);
  else lua_pushnil(L);
  return 1;
}

static int l_set(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len, len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  const char *bytes = luaL_checklstring(L, 3, &len);
  long long ttl_ms = check_ttl(L, 4);
  if (sh->kind != HANDLE_MEMORY)
    return call_async(L, sh, KV_SET, key, key_len, bytes, len, ttl_ms);
  int64_t now = (int64_t)clock_now_ms();
  memstore_set(sh->store, key, key_len, bytes, len, ttl_ms ? now + ttl_ms : 0,
               now);
  return 0;
}

static int l_delete(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  if (sh->kind != HANDLE_MEMORY)
    return call_async(L, sh, KV_DELETE, key, key_len, NULL, 0, 0);
  memstore_delete(sh->store, key, key_len);
  return 0;
}

/* --- values -------------------------------------------------------------- */

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  struct buf out = BUF_INIT, err = BUF_INIT;
  if (storecodec_encode(L, 1, &out, &err) != 0) {
    lua_pushnil(L);
    lua_pushlstring(L, err.data, err.len);
  } else {
    lua_pushlstring(L, out.data ? out.data : "", out.len);
  }
  buf_free(&out);
  buf_free(&err);
  return lua_isnil(L, -2) ? 2 : 1;
}

static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  struct buf err = BUF_INIT;
  if (storecodec_decode(L, s, len, &err) != 0) {
    lua_pushfstring(L, "stored value is not one tghost wrote (%s)", err.data);
    buf_free(&err);
    return lua_error(L);
  }
  return 1;
}

int luaopen_tghost_storagecore(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"memory", l_memory}, {"sqlite", l_sqlite}, {"redis", l_redis},
      {"get", l_get},       {"set", l_set},       {"delete", l_delete},
      {"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
  if (luaL_newmetatable(L, HANDLE_MT)) {
    lua_pushliteral(L, "tghost.storage.handle");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  return 1;
}
