#include "script/deps.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

void deps_init(struct deps *d) { memset(d, 0, sizeof *d); }

void deps_free(struct deps *d) {
  for (size_t i = 0; i < d->count; i++) free(d->paths[i]);
  free(d->paths);
  deps_init(d);
}

bool deps_contains(const struct deps *d, const char *path) {
  for (size_t i = 0; i < d->count; i++)
    if (strcmp(d->paths[i], path) == 0) return true;
  return false;
}

void deps_add(struct deps *d, const char *path) {
  if (deps_contains(d, path)) return;
  if (d->count == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 4;
    d->paths = xrealloc(d->paths, d->cap * sizeof *d->paths);
  }
  d->paths[d->count++] = xstrdup(path);
}

static bool under(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* package.searchers entry: records where Lua's file searcher is about to
 * find the module, and returns nothing so that searcher runs next. A
 * failure here (a script that replaced package.searchpath, say) only
 * means the module is not watched. */
static int record_searcher(lua_State *L) {
  struct deps *d = lua_touserdata(L, lua_upvalueindex(1));
  const char *dir = lua_tostring(L, lua_upvalueindex(2));
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  if (lua_getglobal(L, "package") != LUA_TTABLE) return 0;
  if (lua_getfield(L, 2, "searchpath") != LUA_TFUNCTION) return 0;
  lua_pushstring(L, name);
  if (lua_getfield(L, 2, "path") != LUA_TSTRING) return 0;
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) return 0;
  const char *file = lua_tostring(L, -1);
  if (file && dir && under(file, dir)) deps_add(d, file);
  return 0;
}

void deps_install(lua_State *L, struct deps *d, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  luaL_checktype(L, -1, LUA_TTABLE);
  /* Before the Lua file searcher (2), after the preload one (1), so the
   * embedded tghost modules are never looked up on disk. */
  lua_Integer n = (lua_Integer)luaL_len(L, -1);
  for (lua_Integer i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushlightuserdata(L, d);
  lua_pushstring(L, dir);
  lua_pushcclosure(L, record_searcher, 2);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}
