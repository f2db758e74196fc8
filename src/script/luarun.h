/* The tghost.runner module: run(), the run handle (stop, isRunning, size)
 * and the schema of run()'s options for lua/options.lua.
 *
 *   runner.schema()   -> { {path=, flat=, type=, min=, max=}, ... }
 *   runner.run(flat)  records the flattened, validated options; the host
 *                     starts the runner once the top level has finished
 *   runner.stop()     graceful stop; inside a handler it returns once
 *                     everything else in flight is done
 *   runner.is_running(), runner.size() */
#ifndef TGHOST_LUARUN_H
#define TGHOST_LUARUN_H

#include <lua.h>

int luaopen_tghost_runner(lua_State *L);

#endif
