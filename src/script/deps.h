/* The source files one load of the script is made of: the script itself
 * and every Lua module it `require`d from the script's folder (or a folder
 * below it). Hot reload watches them.
 *
 * deps_install() puts a searcher in front of Lua's file searcher in
 * package.searchers. It resolves the module name with package.searchpath
 * (the same lookup Lua's own searcher makes next) and records the file when
 * it lies under the script's folder, before the file is even compiled: a
 * module with a syntax error is watched too, so fixing it reloads. It
 * loads nothing itself. */
#ifndef TGHOST_DEPS_H
#define TGHOST_DEPS_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

struct deps {
  char **paths;       /* as Lua found them, e.g. "./lib/util.lua" */
  size_t count, cap;
};

void deps_init(struct deps *d);
void deps_free(struct deps *d);
/* Records path (copied) unless it is there already. */
void deps_add(struct deps *d, const char *path);
bool deps_contains(const struct deps *d, const char *path);

/* Installs the recording searcher in L: modules found under dir are added
 * to d, which must outlive L. Raises on a broken package table. */
void deps_install(lua_State *L, struct deps *d, const char *dir);

#endif
