/* tghost.coroutine: coroutine.resume and coroutine.wrap that let tghost
 * calls suspend a handler from inside the script's own coroutines. */
#ifndef TGHOST_LUACORO_H
#define TGHOST_LUACORO_H

#include <lua.h>

int luaopen_tghost_coroutine(lua_State *L);

#endif
