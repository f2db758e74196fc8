/* The tghost.task module: child tasks inside a job (tghost.spawn) and
 * joining them (tghost.wait, tghost.all; see lua/tasks.lua).
 *
 * A child runs in the job of the task that spawned it, so it shares the
 * update's lifetime: the job (and the update's slot) ends only when every
 * child has ended, and cancelling the update (its timeout, shutdown)
 * closes the children too. A handle keeps the child's results once it has
 * ended; a child that failed and whose handle was never waited on is
 * logged when the handle is collected, so no error vanishes silently. */
#ifndef TGHOST_LUATASK_H
#define TGHOST_LUATASK_H

#include <lua.h>

int luaopen_tghost_task(lua_State *L);

#endif
