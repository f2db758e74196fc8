/* string.find, string.match, string.gmatch and string.gsub on lpattern,
 * and string.rep, so that no string function a script sizes can run away
 * with the process.
 *
 * They replace Lua's own in a state's `string` table (which is also the
 * strings' metatable __index, so ("x"):find(...) uses them too) and behave
 * exactly as Lua 5.4.4's: the same arguments, results, errors and
 * messages (tests/unit/pattern.c holds them to it). A plain find (the
 * fourth argument, or a pattern without special characters) stays a plain
 * memory search.
 *
 * The difference: every few thousand steps of matching (or of comparing,
 * in a plain find), a guard is asked whether to go on. When it says stop,
 * the function raises "pattern matching stopped: <why> in string.find;
 * this pattern backtracks too much on this text", with the guard's why.
 *
 * string.rep builds its result by doubling (a few large copies, not n
 * small ones) in a buffer allocated first, so a result past a memory limit
 * fails before any work; it returns "" at once when every copy is empty
 * (Lua's loops n times even then).
 *
 * Layer: Lua bindings. */
#ifndef TGHOST_LUASTRING_H
#define TGHOST_LUASTRING_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

struct luastring_guard {
  /* Whether matching in L must stop. On true, why (size bytes) receives
   * what ran out, for the error ("the handler ran out of its CPU budget
   * (2000 ms)"). Called from inside the string function, with L's stack
   * in use: it must not touch the stack. */
  bool (*should_stop)(lua_State *L, void *ud, char *why, size_t size);
  /* Optional: told the whole message just before it is raised. */
  void (*stopped)(lua_State *L, void *ud, const char *message);
  void *ud;
};

/* Installs the five functions into L's string table. guard (NULL: no
 * bound) must outlive L. */
void luastring_install(lua_State *L, const struct luastring_guard *guard);

/* Installs them with tghost's guard: matching stops once the running
 * task has used up its CPU budget (--cpu-budget, cpuguard_over_budget), and
 * the task is then stopped with the error above as its report. For a
 * generation's state (it finds the host through the generation). */
void luastring_install_guarded(lua_State *L);
/* That guard (the running task's CPU budget), for the other bindings
 * whose C loops a script sizes. */
const struct luastring_guard *luastring_tghost_guard(void);

#endif
