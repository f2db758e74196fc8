/* The C side of lua/runtime.lua: boots the tghost runtime into a new
 * generation (the standard libraries, the C modules of the Lua API, the
 * embedded lua/ files), runs the script's top level, and starts each
 * update and each report (bot.catch, the timeout handler) as a job in a
 * generation.
 *
 * It sits above the Lua bindings, whose modules it registers, and gives
 * the host the way to run updates (runtime_update_ops). */
#ifndef TGHOST_RUNTIME_H
#define TGHOST_RUNTIME_H

#include <stdbool.h>

#include "base/buf.h"
#include "script/generation.h"
#include "pipeline/runner.h"
#include "script/scriptenv.h"

/* Runs updates in the host's current generation. */
extern const struct update_ops runtime_update_ops;
/* Runs scheduled jobs (bot.job handlers) in a generation. */
extern const struct jobsched_ops runtime_job_ops;

/* A new generation of the script with the runtime loaded; the script is
 * not run yet. Returns NULL with err set on failure. The caller holds one
 * reference. */
struct generation *runtime_new_generation(struct script_env *env,
                                          const char *script_path,
                                          struct buf *err);

/* Compiles the script and runs its top level as a job. Compile errors are
 * returned at once (-1, err); otherwise done() runs when the top level has
 * finished, with error NULL on success. */
/* True when the script registered middleware on bot (runtime.has_handlers
 * of lua/runtime.lua): for telling a script that forgot run(bot). Call
 * only while no Lua code of g runs. */
bool runtime_has_handlers(struct generation *g);

typedef void (*runtime_loaded_fn)(struct generation *g, const char *error,
                                  void *ud);
int runtime_load_script(struct generation *g, runtime_loaded_fn done,
                        void *ud, struct buf *err);

#endif
