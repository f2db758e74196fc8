/* A generation is one load of the bot script: its own Lua state with the
 * tghost runtime, the script's handlers and the options it gave run().
 *
 * Updates start in the current generation and finish in the one they
 * started in; a generation is freed when it is no longer current and its
 * last job has ended. Everything that must outlive a reload (the runner,
 * the offset, connections, sequentialize's keys) lives in C, outside.
 *
 * This module is the generation's data and the life of its Lua state; it
 * sits below the Lua bindings (which find their generation with gen_of),
 * and runtime.c, above them, boots the runtime into a new generation and
 * runs the script and updates in it. Jobs see a generation only as its
 * job_owner. */
#ifndef TGHOST_GENERATION_H
#define TGHOST_GENERATION_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "script/deps.h"
#include "sched/task.h"

struct buf;
struct run_options;
struct script_env;

/* Each field has one writer, named where it is not this module. */
struct generation {
  struct job_owner owner;       /* the Lua state, id and refcount for jobs */
  struct script_env *env;       /* what its bindings may touch (luabind.h) */
  size_t refs;
  char *script_path;
  char *script_dir;
  int runtime_ref;              /* the runtime table: luacore.c (set_runtime) */
  size_t lua_bytes;             /* Lua heap in use */
  /* luarun.c (run(), and stop() before the bot started): */
  bool run_called;              /* the script called run() or bot.start() */
  bool run_stopped;             /* ... and stopped it before it started */
  struct run_options *run_opts; /* ... with these options */
  /* The script and the modules it required: deps.c's searcher, which
   * runtime.c installs. */
  struct deps files;
  struct job *load_job;         /* the top level, while it runs: runtime.c */
  bool retiring;                /* replaced by a reload: reload.c */
  bool closing;                 /* its Lua state is being closed */
};

/* Limits on Lua memory (0: none): the heap of all generations together,
 * and what one job (an update, the top level, a task) may grow it by. An
 * allocation past a limit fails (Lua raises "not enough memory") and the
 * running task is stopped like the CPU guard stops it. */
void gen_set_memory_limits(size_t total_bytes, size_t per_job_bytes);
/* The heap of every generation together, in bytes. */
size_t gen_total_lua_bytes(void);

/* The generation whose Lua state L (or a thread of it) is. */
struct generation *gen_of(lua_State *L);
/* The generation a job runs in. */
struct generation *gen_of_job(const struct job *job);
struct generation *gen_of_owner(struct job_owner *owner);

/* A generation with a new, empty Lua state (standard libraries not yet
 * opened), its bindings seeing env (which must outlive it). NULL with err
 * set if the state cannot be created. The caller holds one reference. */
struct generation *gen_create(struct script_env *env, const char *script_path,
                              int id, struct buf *err);
void gen_ref(struct generation *g);
/* Frees the generation (closing its Lua state) with its last reference. */
void gen_unref(struct generation *g);

/* Pushes runtime[name] (a function of lua/runtime.lua) and returns true,
 * or pushes nothing and returns false. */
bool gen_push_runtime_fn(struct generation *g, const char *name);

#endif
