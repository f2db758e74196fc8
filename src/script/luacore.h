/* The tghost.core module: the C primitives under the Lua API (lua/).
 * Scripts do not use it directly; lua/tghost.lua wraps it. */
#ifndef TGHOST_LUACORE_H
#define TGHOST_LUACORE_H

#include <lua.h>

int luaopen_tghost_core(lua_State *L);

#endif
