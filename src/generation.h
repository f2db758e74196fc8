/* A generation is one load of the bot script: its own Lua state with the
 * tghost runtime, the script's handlers and the options it gave run().
 *
 * Updates start in the current generation and finish in the one they
 * started in; a generation is freed when it is no longer current and its
 * last job has ended. Everything that must outlive a reload (the runner,
 * the offset, connections, sequentialize's keys) lives in C, outside. */
#ifndef TGHOST_GENERATION_H
#define TGHOST_GENERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "buf.h"
#include "deps.h"
#include "runner.h"
#include "task.h"

struct host;

struct generation {
  struct host *host;
  struct scheduler *sched;
  int id;
  lua_State *L;
  size_t refs;
  char *script_path;
  char *script_dir;
  int runtime_ref;              /* the runtime table (lua/runtime.lua) */
  size_t lua_bytes;             /* Lua heap in use */
  bool run_called;              /* the script called run() or bot.start() */
  struct run_options run_opts;
  struct deps files;            /* the script and the modules it required */
  struct job *load_job;         /* the top level, while it runs */
  bool retiring;                /* replaced by a reload: log when freed */
};

struct generation *gen_of(lua_State *L);

/* Creates a generation with the runtime loaded; the script is not run yet.
 * Returns NULL with err set on failure. The caller holds one reference. */
struct generation *gen_new(struct host *h, const char *script_path,
                           struct buf *err);
void gen_ref(struct generation *g);
void gen_unref(struct generation *g);

/* Compiles the script and runs its top level as a job. Compile errors are
 * returned at once (-1, err); otherwise done() runs when the top level has
 * finished, with error NULL on success. */
typedef void (*gen_loaded_fn)(struct generation *g, const char *error,
                              void *ud);
int gen_load(struct generation *g, gen_loaded_fn done, void *ud,
             struct buf *err);

/* True when the script registered middleware on bot (runtime.has_handlers);
 * for telling a script that forgot run(bot). Call only while no Lua code
 * of g runs. */
bool gen_has_handlers(struct generation *g);

/* Starts handling an update (json is taken over). Returns NULL, after
 * logging why, if the update cannot be turned into a Lua value. */
struct job *gen_start_update(struct generation *g, int64_t update_id,
                             char *json, size_t len, job_end_fn on_end,
                             void *ud);

/* Runs runtime.<hook>(update, message) in a callback job: report a failed
 * update to bot.catch, or call the sink's timeout handler. json may be
 * NULL (then the update argument is nil) and is taken over. */
void gen_run_hook(struct generation *g, const char *hook, int64_t update_id,
                  char *json, size_t len, const char *message);

#endif
