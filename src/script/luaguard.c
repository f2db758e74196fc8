#include "script/luaguard.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "script/luabind.h"

/* Registry key of a generation's queue: {fn, obj, fn, obj, ...}. */
static char pending_key;
/* Registry key of the set of metatables luaguard_protect_metatables
 * protected. */
static char protected_key;

struct finalizer_queue {
  struct script_env *env;
  struct event *ev;
  struct generation **gens;      /* each referenced while listed */
  size_t n, cap;
};

static void on_queue(evutil_socket_t fd, short what, void *arg);

struct finalizer_queue *finalizer_queue_new(struct script_env *env) {
  struct finalizer_queue *q = xcalloc(1, sizeof *q);
  q->env = env;
  q->ev = event_new(env->base, -1, 0, on_queue, q);
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
  struct job *job = job_new(g->env->sched, &g->owner, &p);
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

/* --- finalizers ---------------------------------------------------------
 *
 * Lua marks a table for finalization when it gets a metatable that has a
 * __gc field (any value), and calls whatever __gc holds when the table
 * dies, with hooks off. So no table here ever gets such a metatable from
 * Lua's point of view: luaguard_setmetatable takes __gc out of the
 * metatable while it sets it, puts it back, and gives the table a
 * sentinel instead, a userdata of ours that Lua finalizes with a C
 * function, and that is alive exactly as long as the table (an ephemeron
 * table holds it, keyed by the table). When the table dies, the sentinel's
 * finalizer reads the table's __gc as it is then and queues it to run as a
 * task. */

/* Registry keys: the ephemeron table {object = sentinel}, and the
 * sentinels' metatable. */
static char sentinels_key;
static char sentinel_mt_key;

/* The sentinel's __gc, run by Lua with hooks off: only queues the
 * object's finalizer (the sentinel's user value is the object). */
static int sentinel_gc(lua_State *L) {
  struct generation *g = gen_of(L);
  struct finalizer_queue *q = g->env->finalizers;
  if (g->closing || !q) return 0;
  if (lua_getiuservalue(L, 1, 1) == LUA_TNIL) return 0;
  int obj = lua_gettop(L);
  /* Done with: a later setmetatable on a resurrected object makes a new
   * sentinel, as Lua marks such an object again. */
  lua_pushnil(L);
  lua_setiuservalue(L, 1, 1);
  if (!lua_getmetatable(L, obj)) return 0;
  lua_pushliteral(L, "__gc");
  int type = lua_rawget(L, -2);
  if (type != LUA_TFUNCTION && type != LUA_TTABLE && type != LUA_TUSERDATA)
    return 0;   /* nothing Lua could call either */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, n + 1);
  lua_pushvalue(L, obj);   /* the object lives on until its finalizer ran */
  lua_rawseti(L, -2, n + 2);
  schedule(q, g);
  return 0;
}

/* Gives the object at idx a sentinel, unless it has a live one. */
static void bind_finalizer(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinels_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinels_key);
  }
  int sentinels = lua_gettop(L);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, sentinels) == LUA_TUSERDATA) {
    lua_getiuservalue(L, -1, 1);
    bool live = lua_rawequal(L, -1, idx);
    lua_pop(L, 2);
    if (live) {
      lua_pop(L, 1);
      return;
    }
  } else {
    lua_pop(L, 1);
  }
  lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinel_mt_key);
  lua_setmetatable(L, -2);   /* a C __gc: Lua marks the sentinel */
  lua_pushvalue(L, idx);
  lua_insert(L, -2);
  lua_rawset(L, sentinels);
  lua_pop(L, 1);
}

void luaguard_setmetatable(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int mt = lua_gettop(L);
  int type = lua_type(L, idx);
  bool finalizable = type == LUA_TTABLE || type == LUA_TUSERDATA;
  bool has_gc = false;
  if (finalizable && lua_istable(L, mt)) {
    lua_pushliteral(L, "__gc");
    has_gc = lua_rawget(L, mt) != LUA_TNIL;
    if (has_gc) {
      lua_pushliteral(L, "__gc");
      lua_pushnil(L);
      lua_rawset(L, mt);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushvalue(L, mt);
  lua_setmetatable(L, idx);   /* with no __gc in it: Lua marks nothing */
  if (has_gc) {
    lua_pushliteral(L, "__gc");
    lua_insert(L, -2);
    lua_rawset(L, mt);   /* the script's __gc, back in place */
    bind_finalizer(L, idx);
  }
  lua_pop(L, 1);   /* mt */
}

/* Whether the metatable of the value at idx is one tghost protects (a
 * userdata type's: its __gc and methods are C code's). */
static bool protected_metatable(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  bool yes = false;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &protected_key) == LUA_TTABLE) {
    lua_pushvalue(L, -2);
    yes = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return yes;
}

/* setmetatable(t, mt), as Lua's, with the finalizer bound. */
static int l_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  luaguard_setmetatable(L, 1);
  return 1;
}

/* debug.setmetatable(value, mt), the same way; a userdata type's
 * metatable stays. */
static int l_debug_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (protected_metatable(L, 1))
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  luaguard_setmetatable(L, 1);
  return 1;
}

/* debug.getmetatable(value): Lua's, but a userdata type's metatable reads
 * as getmetatable says (its name). */
static int l_debug_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  if (protected_metatable(L, 1)) {
    luaL_getmetafield(L, 1, "__metatable");
    return 1;
  }
  if (!lua_getmetatable(L, 1)) lua_pushnil(L);
  return 1;
}

/* debug.setupvalue(f, n, v): Lua's for Lua functions; a C function's
 * upvalues are tghost's own (the guards of the string functions). */
static int l_debug_setupvalue(lua_State *L) {
  luaL_checkany(L, 3);
  if (lua_iscfunction(L, 1))
    return luaL_argerror(L, 1, "Lua function expected");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

void luaguard_protect_metatables(lua_State *L) {
  /* The set of protected metatables, keyed by the metatable. */
  lua_newtable(L);
  int set = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX)) {
    bool userdata_type = false;
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
      lua_pushliteral(L, "__name");
      int name = lua_rawget(L, -2);
      lua_pushliteral(L, "__jsontype");
      int json = lua_rawget(L, -3);
      lua_pop(L, 2);
      /* luaL_newmetatable's, but not the JSON markers (tables of the
       * script's, see luaguard_setmetatable) */
      userdata_type = name == LUA_TSTRING && json == LUA_TNIL;
    }
    if (userdata_type) {
      lua_pushliteral(L, "__metatable");
      if (lua_rawget(L, -2) == LUA_TNIL) {
        lua_pushliteral(L, "__metatable");
        lua_pushvalue(L, -4);   /* the name */
        lua_rawset(L, -4);
      }
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 1);
      lua_rawset(L, set);
    }
    lua_pop(L, 1);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &protected_key);
}

/* debug.sethook(...): Lua's (upvalue 1), unless the guard needs the hooks
 * now. */
static int l_sethook(lua_State *L) {
  struct script_env *env = env_of(L);
  if (cpuguard_hooks_in_use(&env->sched->guard)) {
    static bool warned;
    if (!warned) {
      struct log_fields f = luabind_fields(L);
      log_msg(LOG_WARN, &f, "debug.sethook ignored: the CPU guard uses the "
              "hooks of running handlers%s",
              cpuguard_has_timer(&env->sched->guard) ? "" : " (no timer signal here)");
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
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, sentinel_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_mt_key);
  lua_pushcfunction(L, l_setmetatable);
  lua_setglobal(L, "setmetatable");
  if (lua_getglobal(L, "debug") == LUA_TTABLE) {
    lua_pushcfunction(L, l_debug_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, l_debug_getmetatable);
    lua_setfield(L, -2, "getmetatable");
    lua_getfield(L, -1, "setupvalue");
    lua_pushcclosure(L, l_debug_setupvalue, 1);
    lua_setfield(L, -2, "setupvalue");
    lua_getfield(L, -1, "sethook");
    lua_pushcclosure(L, l_sethook, 1);
    lua_setfield(L, -2, "sethook");
    /* The registry holds tghost's own state. */
    lua_pushnil(L);
    lua_setfield(L, -2, "getregistry");
  }
  lua_pop(L, 1);
}
