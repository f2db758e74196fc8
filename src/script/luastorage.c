#include "script/luastorage.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/fence.h"
#include "sched/task.h"
#include "script/luabind.h"
#include "script/storecodec.h"
#include "store/kvreq.h"
#include "store/storages.h"

static const char HANDLE_MT[] = "tghost.storage.handle";

/* What a script's storage object holds: the host's store (NULL under
 * --check for backends that open something outside the process: it reads
 * as empty and writes go nowhere) and the namespace its requests use. */
struct store_handle {
  const struct kv_backend *backend;
  struct kvstore *store;
  char ns[];
};

static struct store_handle *check_handle(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, HANDLE_MT);
}

/* --- backends and opening ---------------------------------------------------- */

static void set_string(lua_State *L, const char *field, const char *value) {
  if (!value) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

static int l_backends(lua_State *L) {
  lua_newtable(L);
  const struct kv_backend *b;
  for (size_t i = 0; (b = storages_backend_at(i)); i++) {
    lua_createtable(L, 0, 5);
    set_string(L, "kind", b->kind);
    set_string(L, "target_arg", b->target_arg);
    set_string(L, "target_what", b->target_what);
    set_string(L, "ns_arg", b->ns_arg);
    set_string(L, "ns_default", b->ns_default);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_open(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *target = luaL_checkstring(L, 2);
  const struct kv_backend *b = storages_backend(kind);
  if (!b) return luaL_error(L, "tghost.storage: no storage backend \"%s\"", kind);
  const char *ns = b->ns_arg ? luaL_optstring(L, 3, b->ns_default) : "";
  struct script_env *env = env_of(L);
  struct buf err = BUF_INIT;
  struct kvstore *store = NULL;
  /* Messages name the problem, never the target: a URL may hold a
   * password. */
  if (b->check(target, ns, &err) != 0 ||
      ((b->opens_under_check || !env->check) &&
       !(store = storages_open(env->storages, b, target, &err)))) {
    lua_pushfstring(L, "tghost.storage.%s: %s", kind, err.data);
    buf_free(&err);
    return lua_error(L);
  }
  size_t len = strlen(ns);
  struct store_handle *sh = lua_newuserdatauv(L, sizeof *sh + len + 1, 0);
  sh->backend = b;
  sh->store = store;
  memcpy(sh->ns, ns, len + 1);
  luaL_setmetatable(L, HANDLE_MT);
  struct buf label = BUF_INIT;
  b->describe(target, ns, &label);
  lua_pushlstring(L, label.data, label.len);
  buf_free(&label);
  return 2;
}

/* --- calls --------------------------------------------------------------------- */

/* The results of a finished request, without the leading true. */
static int push_results(lua_State *L, const struct kvreq *r) {
  luaL_checkstack(L, 3, "storage result");
  switch (r->op) {
    case KV_GET:
      if (r->value) lua_pushlstring(L, r->value, r->value_len);
      else lua_pushnil(L);
      return 1;
    case KV_SET:
    case KV_DELETE:
      return 0;
    case KV_LIST:
      lua_createtable(L, (int)r->nkeys, 0);
      for (size_t i = 0; i < r->nkeys; i++) {
        lua_pushlstring(L, r->keys[i].data, r->keys[i].len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      if (r->cursor) lua_pushlstring(L, r->cursor, r->cursor_len);
      else lua_pushnil(L);
      return 2;
    case KV_CAS:
      lua_pushboolean(L, r->swapped);
      if (r->swapped) return 1;
      if (r->value) lua_pushlstring(L, r->value, r->value_len);
      else lua_pushnil(L);
      return 2;
  }
  return 0;
}

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
      n = 1 + push_results(co, r);
    }
  }
  kvreq_free(r);
  return n;
}

static void kv_done(struct kvreq *r, void *ud) { task_wake(ud, kv_push, r); }

static void kv_cancel(void *data) { kvreq_detach(data); }

static const struct task_wait_ops kv_wait_ops = {"storage", kv_cancel};

/* Raises unless the handle's store can take a call here; returns the task
 * the call suspends, or NULL when it is answered at once (the backend can,
 * or --check opened nothing). */
static struct task *before_call(lua_State *L, struct store_handle *sh) {
  if (!sh->store || sh->backend->run_now) return NULL;
  char what[48];
  snprintf(what, sizeof what, "a %s storage call", sh->backend->kind);
  return task_check_can_wait(L, env_of(L)->sched, what);
}

/* A request on the stack borrowing the handle's namespace and the key. */
static struct kvreq spec(enum kv_op op, struct store_handle *sh,
                         const char *key, size_t key_len) {
  struct kvreq r;
  memset(&r, 0, sizeof r);
  r.op = op;
  r.ns = sh->ns;
  r.key = (char *)key;
  r.key_len = key_len;
  r.borrowed = true;
  return r;
}

/* A write made while an update of a cluster partition runs carries the
 * partition's fence (pipeline/fence.h). */
static void fence_write(lua_State *L, struct kvreq *q) {
  struct task *t = sched_running(env_of(L)->sched);
  const struct kv_fence *f = t ? update_fence_of(task_job(t)) : NULL;
  if (f) q->fence = *f;
}

/* Runs the request q describes on the handle's store: at once (t NULL;
 * q itself, no copy), or suspending t until the store answers a copy. The
 * Lua strings q borrows stay on the stack until then. */
static int call(lua_State *L, struct store_handle *sh, struct task *t,
                struct kvreq *q) {
  if (!sh->store) {
    /* --check opens no file and connects nowhere: the store reads as
     * empty and writes go nowhere, so that a script's top level runs. */
    q->swapped = q->expected == NULL;
    q->value = NULL;
    q->cursor = NULL;
    return push_results(L, q);
  }
  if (!t) {
    sh->backend->run_now(sh->store->impl, q);
    if (q->error) {
      lua_pushstring(L, q->error);
      kvreq_release(q);
      return lua_error(L);
    }
    int n = push_results(L, q);
    kvreq_release(q);
    return n;
  }
  struct kvreq *r = kvreq_copy(q, kv_done, t);
  lua_settop(L, 0);
  kvstore_submit(sh->store, r);
  return task_wait(L, t, &kv_wait_ops, r);
}

static long long check_ttl(lua_State *L, int idx) {
  lua_Integer ttl = luaL_optinteger(L, idx, 0);
  luaL_argcheck(L, ttl >= 0, idx, "ttl must be >= 0 milliseconds");
  return (long long)ttl;
}

/* An optional byte string argument: NULL for nil. */
static const char *opt_bytes(lua_State *L, int idx, size_t *len) {
  *len = 0;
  return lua_isnoneornil(L, idx) ? NULL : luaL_checklstring(L, idx, len);
}

static int l_get(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  struct task *t = before_call(L, sh);
  struct kvreq q = spec(KV_GET, sh, key, key_len);
  return call(L, sh, t, &q);
}

static int l_set(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len, len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  const char *bytes = luaL_checklstring(L, 3, &len);
  long long ttl_ms = check_ttl(L, 4);
  struct task *t = before_call(L, sh);
  struct kvreq q = spec(KV_SET, sh, key, key_len);
  fence_write(L, &q);
  q.value = (char *)bytes;
  q.value_len = len;
  q.ttl_ms = ttl_ms;
  return call(L, sh, t, &q);
}

static int l_delete(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  struct task *t = before_call(L, sh);
  struct kvreq q = spec(KV_DELETE, sh, key, key_len);
  fence_write(L, &q);
  return call(L, sh, t, &q);
}

static int l_list(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t prefix_len, cursor_len;
  const char *prefix = luaL_checklstring(L, 2, &prefix_len);
  lua_Integer limit = luaL_checkinteger(L, 3);
  luaL_argcheck(L, limit >= 1 && limit <= KV_LIST_MAX, 3,
                "limit must be 1 to 10000");
  const char *cursor = opt_bytes(L, 4, &cursor_len);
  struct task *t = before_call(L, sh);
  struct kvreq q = spec(KV_LIST, sh, prefix, prefix_len);
  q.limit = (size_t)limit;
  q.cursor = (char *)cursor;
  q.cursor_len = cursor_len;
  return call(L, sh, t, &q);
}

static int l_cas(lua_State *L) {
  struct store_handle *sh = check_handle(L, 1);
  size_t key_len, expected_len, len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  const char *expected = opt_bytes(L, 3, &expected_len);
  const char *bytes = opt_bytes(L, 4, &len);
  long long ttl_ms = check_ttl(L, 5);
  struct task *t = before_call(L, sh);
  struct kvreq q = spec(KV_CAS, sh, key, key_len);
  fence_write(L, &q);
  q.expected = (char *)expected;
  q.expected_len = expected_len;
  q.value = (char *)bytes;
  q.value_len = len;
  q.ttl_ms = ttl_ms;
  return call(L, sh, t, &q);
}

/* --- values -------------------------------------------------------------------- */

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
      {"backends", l_backends}, {"open", l_open},     {"get", l_get},
      {"set", l_set},           {"delete", l_delete}, {"list", l_list},
      {"cas", l_cas},           {"encode", l_encode}, {"decode", l_decode},
      {NULL, NULL}};
  /* A handle is a backend object (lua/storage.lua): handle:get(key), ... */
  static const luaL_Reg methods[] = {{"get", l_get},       {"set", l_set},
                                     {"delete", l_delete}, {"list", l_list},
                                     {"cas", l_cas},       {NULL, NULL}};
  if (luaL_newmetatable(L, HANDLE_MT)) {
    lua_pushliteral(L, "tghost.storage.handle");
    lua_setfield(L, -2, "__name");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  return 1;
}
