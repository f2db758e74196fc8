#include "script/luabind.h"

#include <lauxlib.h>
#include <string.h>

#include "base/buf.h"

struct log_fields luabind_fields(lua_State *L) {
  struct task *t = sched_running(env_of(L)->sched);
  if (t) return job_log_fields(task_job(t));
  struct log_fields f = {gen_of(L)->owner.id, -1};
  return f;
}

void luabind_check_network(lua_State *L, const char *what) {
  if (env_of(L)->check)
    luaL_error(L, "%s: network calls are disabled by --check", what);
}

void luabind_check_keys(lua_State *L, int idx, const char *api,
                        const char *prefix, const char *const *known) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    bool ok = false;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (int i = 0; known[i] && !ok; i++)
        ok = strcmp(lua_tostring(L, -2), known[i]) == 0;
    if (!ok) {
      /* The key as text first (its __tostring may raise): then names,
       * built in C memory, is freed before anything can raise. */
      const char *key = luaL_tolstring(L, -2, NULL);
      struct buf names = BUF_INIT;
      for (int i = 0; known[i]; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", known[i]);
      lua_pushfstring(L, "%s: unknown option %s%s (known: %s)", api, prefix,
                      key, names.data);
      buf_free(&names);
      lua_error(L);
    }
    lua_pop(L, 1);
  }
}

void luabind_push_runtime_field(lua_State *L, const char *name) {
  struct generation *g = gen_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->runtime_ref);
  if (lua_istable(L, -1)) lua_getfield(L, -1, name);
  else lua_pushnil(L);
  lua_remove(L, -2);
}
