/* What every C module of the Lua API (the luaXXX.c bindings) needs: the
 * process as far as a binding may touch it (env_of: struct script_env,
 * scriptenv.h), log fields for the running code, the --check guard,
 * option-table checks and the runtime's Lua values.
 *
 * Layer: with generation.h, below the bindings. */
#ifndef TGHOST_LUABIND_H
#define TGHOST_LUABIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "base/log.h"
#include "script/generation.h"
#include "script/scriptenv.h"
#include "sched/task.h"

static inline struct script_env *env_of(lua_State *L) {
  return gen_of(L)->env;
}

/* Log fields of the code running now: its update and generation. */
struct log_fields luabind_fields(lua_State *L);

/* Raises "<what>: network calls are disabled by --check" under --check. */
void luabind_check_network(lua_State *L, const char *what);

/* Raises unless every key of the table at idx is one of known (NULL
 * terminated): "<api>: unknown option <prefix><key> (known: a, b)". */
void luabind_check_keys(lua_State *L, int idx, const char *api,
                        const char *prefix, const char *const *known);

/* Pushes runtime[name] of L's generation (nil if absent). */
void luabind_push_runtime_field(lua_State *L, const char *name);

#endif
