#include "script/luaguard.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "script/luabind.h"

/* Registry key of a generation's queue: {fn, obj, fn, obj, ...}. */
static char pending_key;

struct finalizer_queue {
  struct host *h;
  struct event *ev;
  struct generation **gens;      /* each referenced while listed */
  size_t n, cap;
};

static void on_queue(evutil_socket_t fd, short what, void *arg);

struct finalizer_queue *finalizer_queue_new(struct host *h) {
  struct finalizer_queue *q = xcalloc(1, sizeof *q);
  q->h = h;
  q->ev = event_new(h->base, -1, 0, on_queue, q);
  return q;
}

void finalizer_queue_free(struct finalizer_queue *q) {
  if (!q) return;
  for (size_t i = 0; i < q->n; i++) gen_unref(q->gens[i]);
  event_free(q->ev);
  free(q->gens);
  free(q);
}

static void on_finalizers_end(struct job *job, void *ud) {
  if (job_how_ended(job) == JOB_DONE) return;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_ERROR, &f, "a __gc finalizer was stopped: %s",
          job_error(job) ? job_error(job) : "cancelled");
}

/* Runs one generation's queued finalizers: runtime.run_finalizers(list),
 * in a callback job of that generation. */
static void run_queued(struct generation *g) {
  lua_State *L = g->owner.L;
  if (g->closing || !gen_push_runtime_fn(g, "run_finalizers")) return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  struct job_params p = {JOB_CALLBACK, -1, NULL, 0, on_finalizers_end, NULL};
  struct job *job = job_new(g->sched, &g->owner, &p);
  job_spawn(job, L, 1);
}

static void on_queue(evutil_socket_t fd, short what, void *arg) {
  struct finalizer_queue *q = arg;
  /* Finalizers queued while these run wait for the next pass. */
  size_t n = q->n;
  struct generation **gens = q->gens;
  q->gens = NULL;
  q->n = q->cap = 0;
  for (size_t i = 0; i < n; i++) {
    run_queued(gens[i]);
    gen_unref(gens[i]);
  }
  free(gens);
}

static void schedule(struct finalizer_queue *q, struct generation *g) {
  for (size_t i = 0; i < q->n; i++)
    if (q->gens[i] == g) return;
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 4;
    q->gens = xrealloc(q->gens, q->cap * sizeof *q->gens);
  }
  gen_ref(g);
  q->gens[q->n++] = g;
  event_active(q->ev, 0, 0);
}

/* The __gc Lua calls, with hooks off: only queues the script's finalizer
 * (upvalue 1) with the object. */
static int gc_trampoline(lua_State *L) {
  struct generation *g = gen_of(L);
  struct finalizer_queue *q = g->host->finalizers;
  if (g->closing || !q) return 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_rawseti(L, -2, n + 1);
  lua_pushvalue(L, 1);   /* the object lives on until its finalizer ran */
  lua_rawseti(L, -2, n + 2);
  lua_pop(L, 1);
  schedule(q, g);
  return 0;
}

/* Wraps the __gc of the metatable at idx, if it has one of the script's. */
static void wrap_gc(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) return;
  idx = lua_absindex(L, idx);
  lua_pushliteral(L, "__gc");
  int type = lua_rawget(L, idx);
  bool wrap = (type == LUA_TFUNCTION &&
               lua_tocfunction(L, -1) != gc_trampoline) ||
              type == LUA_TTABLE || type == LUA_TUSERDATA;
  if (!wrap) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcclosure(L, gc_trampoline, 1);
  lua_pushliteral(L, "__gc");
  lua_insert(L, -2);
  lua_rawset(L, idx);
}

/* setmetatable(t, mt), as Lua's, with the script's __gc wrapped. */
static int l_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  wrap_gc(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* debug.setmetatable(value, mt), the same way. */
static int l_debug_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  lua_settop(L, 2);
  wrap_gc(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* debug.sethook(...): Lua's (upvalue 1), unless the guard needs the hooks
 * now. */
static int l_sethook(lua_State *L) {
  struct host *h = host_of(L);
  if (cpuguard_hooks_in_use(&h->sched.guard)) {
    static bool warned;
    if (!warned) {
      struct log_fields f = luabind_fields(L);
      log_msg(LOG_WARN, &f, "debug.sethook ignored: the CPU guard uses the "
              "hooks of running handlers%s",
              cpuguard_has_timer(&h->sched.guard) ? "" : " (no timer signal here)");
      warned = true;
    }
    return 0;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

void luaguard_install(lua_State *L) {
  lua_pushcfunction(L, l_setmetatable);
  lua_setglobal(L, "setmetatable");
  if (lua_getglobal(L, "debug") == LUA_TTABLE) {
    lua_pushcfunction(L, l_debug_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_getfield(L, -1, "sethook");
    lua_pushcclosure(L, l_sethook, 1);
    lua_setfield(L, -2, "sethook");
  }
  lua_pop(L, 1);
}
