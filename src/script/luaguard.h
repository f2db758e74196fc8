/* What a script cannot take away from the CPU guard.
 *
 * Lua runs __gc finalizers with hooks turned off, so a finalizer that
 * loops could never be stopped, and debug.sethook could remove the hook
 * the guard uses to stop a handler. This module replaces, in each
 * generation's state:
 *   - setmetatable and debug.setmetatable: a __gc metamethod is wrapped so
 *     that, when the object is collected, the script's finalizer is queued
 *     and later runs as a task of its own (a callback job), under the CPU
 *     guard like a handler: it may even yield. Finalizers still queued when
 *     a generation is closed (a reload retired it, or tghost exits) do not
 *     run;
 *   - debug.sethook: ignored (with a warning) while the guard relies on
 *     hooks (a task is being stopped, or there is no timer signal).
 *
 * Layer: a Lua binding. The queue of generations with finalizers to run is
 * the host's (attached by main.c as h->finalizers). */
#ifndef TGHOST_LUAGUARD_H
#define TGHOST_LUAGUARD_H

#include <lua.h>

struct host;
struct finalizer_queue;

struct finalizer_queue *finalizer_queue_new(struct host *h);
/* After every job has ended and before the generations are freed. */
void finalizer_queue_free(struct finalizer_queue *q);

/* Installs the replacements in L (after luaL_openlibs). */
void luaguard_install(lua_State *L);

#endif
