/* What a script cannot take away from the CPU guard.
 *
 * Lua runs __gc finalizers inside the garbage collector with hooks turned
 * off, so a finalizer that loops could never be stopped; and a script
 * could remove the hook the guard stops a handler with, or reach tghost's
 * own C data through the debug library. This module, in each
 * generation's state:
 *   - binds finalizers when a metatable is set (setmetatable,
 *     debug.setmetatable, and tghost's C code through
 *     luaguard_setmetatable; the JSON markers' metatables never get a
 *     __gc at all): Lua never marks a table for finalization
 *     itself; a sentinel of ours does, and when the object dies its __gc,
 *     whatever it holds then (set later, or changed since), is queued and
 *     runs as a task of its own (a callback job), under the CPU guard like
 *     a handler: it may even yield. Finalizers still queued when a
 *     generation is closed (a reload retired it, or tghost exits) do not
 *     run;
 *   - protects the metatables of userdata types (io's files, tghost's
 *     handles): getmetatable and debug.getmetatable give their name, and
 *     neither setmetatable changes them, so no script puts a __gc of its
 *     own where the collector would call it;
 *   - debug.sethook: ignored (with a warning) while the guard relies on
 *     hooks (a task is being stopped, or there is no timer signal);
 *     debug.setupvalue refuses C functions (their upvalues are tghost's
 *     guards); debug.getregistry is gone (the registry is tghost's state).
 *
 * Layer: a Lua binding (the others set metatables through it). The queue
 * of generations with finalizers to run is struct script_env's
 * (app/bindenv.c makes it). */
#ifndef TGHOST_LUAGUARD_H
#define TGHOST_LUAGUARD_H

#include <lua.h>

struct script_env;
struct finalizer_queue;

struct finalizer_queue *finalizer_queue_new(struct script_env *env);
/* After every job has ended and before the generations are freed. */
void finalizer_queue_free(struct finalizer_queue *q);

/* Installs the replacements in L (after luaL_openlibs). */
void luaguard_install(lua_State *L);
/* Protects the metatables of the userdata types registered so far (call
 * once the runtime has loaded, before the script runs). */
void luaguard_protect_metatables(lua_State *L);

/* lua_setmetatable for tghost's C code: pops a metatable (or nil) and
 * sets it on the value at idx, binding its finalizer as above. */
void luaguard_setmetatable(lua_State *L, int idx);

#endif
