/* What a script can load: Lua source, parsed under the CPU guard, and no
 * fresh copy of the standard library.
 *
 *   - load, loadfile, dofile, and require's search of package.path behave
 *     as Lua 5.4.4's (arguments, results, messages), but hand the parser
 *     the chunk in pieces of 64 KiB and ask a guard between two pieces:
 *     Lua parses a chunk inside one C call no hook reaches, so
 *     load(string.rep("a=1\n", 12e6)) held the loop for seconds. When the
 *     guard says stop, the load fails with "load stopped: <why> after N of
 *     M bytes" (and the guard's hook stops the task).
 *   - Precompiled chunks are refused in any mode ("attempt to load a
 *     binary chunk: tghost loads Lua source only"): Lua does not check
 *     bytecode, and a crafted chunk can crash the process.
 *   - package.loadlib is gone, and the C searchers of require refuse a
 *     module whose luaopen_ function would be one of the standard
 *     library's (package.cpath pointed at liblua gave unguarded copies of
 *     string, table and the rest). Other C modules load as in Lua: native
 *     code, trusted like the script itself.
 *
 * Layer: Lua bindings. */
#ifndef TGHOST_LUALOAD_H
#define TGHOST_LUALOAD_H

#include <lua.h>

#include "script/luastring.h"

/* Installs the replacements in L (after luaL_openlibs, before anything
 * adds searchers to package.searchers), with guard (NULL: no bound; it
 * must outlive L) asked between pieces. */
void luaload_install(lua_State *L, const struct luastring_guard *guard);

/* Installs them with tghost's guard (luastring_tghost_guard). */
void luaload_install_guarded(lua_State *L);

#endif
