/* table.insert, table.remove, table.move, table.concat and table.sort,
 * so that no table function a script sizes can run away with the process.
 *
 * Lua's own loop in C over a range the script chooses (table.move({}, 1,
 * 1 << 53, 1, {}), or table.insert on a table whose __len says 2^53): no
 * hook reaches such a loop, so the CPU guard could not stop it. These
 * versions behave as Lua 5.4.4's (the same arguments, results, errors and
 * messages; tests/unit/luatable.c holds them to it), but every few
 * thousand elements ask a guard whether to go on, and when it says stop
 * raise "table.move stopped: <why> after N of M elements".
 *
 * table.sort keeps Lua's algorithm: with a Lua comparator every
 * comparison runs Lua code, which the guard's hook reaches; a large sort
 * without one (or with a C function) gets a comparator of ours that asks
 * the guard as it goes.
 *
 * Layer: Lua bindings. */
#ifndef TGHOST_LUATABLE_H
#define TGHOST_LUATABLE_H

#include <lua.h>

#include "script/luastring.h"

/* Installs the five functions into L's table library, with guard (NULL:
 * no bound; it must outlive L) asked as they go. */
void luatable_install(lua_State *L, const struct luastring_guard *guard);

/* Installs them with tghost's guard (luastring_tghost_guard). */
void luatable_install_guarded(lua_State *L);

#endif
