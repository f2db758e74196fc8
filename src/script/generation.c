#include "script/generation.h"

#include <lauxlib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/runopts.h"
#include "script/scriptenv.h"
#include "base/log.h"
#include "base/metrics.h"

struct generation *gen_of(lua_State *L) {
  return *(struct generation **)lua_getextraspace(L);
}

struct generation *gen_of_owner(struct job_owner *owner) {
  return (struct generation *)((char *)owner -
                               offsetof(struct generation, owner));
}

struct generation *gen_of_job(const struct job *job) {
  return gen_of_owner(job_owner_of(job));
}

static size_t total_bytes, limit_total, limit_per_job;

void gen_set_memory_limits(size_t total, size_t per_job) {
  limit_total = total;
  limit_per_job = per_job;
}

size_t gen_total_lua_bytes(void) { return total_bytes; }

/* Whether growing g's heap by grow bytes would cross a limit; if so, the
 * running task is told to stop (the allocation then fails). */
static bool over_limit(struct generation *g, size_t grow) {
  struct scheduler *s = g->env->sched;
  if (limit_total && total_bytes + grow > limit_total) {
    static char why[128];
    snprintf(why, sizeof why, "the Lua memory of all handlers reached the "
             "limit of %zu MiB (--memory-limit)", limit_total >> 20);
    cpuguard_stop(&s->guard, CPUGUARD_STOP_MEMORY, why);
    return true;
  }
  if (!limit_per_job) return false;
  struct job *job = sched_charge_memory(s, &g->owner, 0);
  if (job &&
      (size_t)job_lua_bytes(job) + grow > limit_per_job) {
    static char why[128];
    snprintf(why, sizeof why, "it used more than %zu MiB of Lua memory "
             "(--update-memory-limit)", limit_per_job >> 20);
    cpuguard_stop(&s->guard, CPUGUARD_STOP_MEMORY, why);
    return true;
  }
  return false;
}

static void *gen_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct generation *g = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    g->lua_bytes -= old;
    total_bytes -= old;
    if (old) sched_charge_memory(g->env->sched, &g->owner, -(long)old);
    free(ptr);
    return NULL;
  }
  if (nsize > old && !g->closing && over_limit(g, nsize - old)) return NULL;
  /* Most of Lua's requests are new blocks: malloc's path is the short one. */
  void *p = ptr ? realloc(ptr, nsize) : malloc(nsize);
  if (p) {
    g->lua_bytes += nsize - old;
    total_bytes += nsize - old;
    sched_charge_memory(g->env->sched, &g->owner, (long)nsize - (long)old);
  }
  return p;
}

static int gen_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  log_error("unprotected Lua error: %s", msg ? msg : "(not a string)");
  abort();
  return 0;
}

static void owner_ref(struct job_owner *o) { gen_ref(gen_of_owner(o)); }
static void owner_unref(struct job_owner *o) { gen_unref(gen_of_owner(o)); }

/* Generations created and not yet freed. */
static size_t alive;

struct generation *gen_create(struct script_env *env, const char *script_path,
                              int id, struct buf *err) {
  struct generation *g = xcalloc(1, sizeof *g);
  metric_set(METRIC_GENERATIONS_ALIVE, (double)++alive, NULL, NULL);
  g->owner.id = id;
  g->owner.ref = owner_ref;
  g->owner.unref = owner_unref;
  g->env = env;
  g->refs = 1;
  g->runtime_ref = LUA_NOREF;
  g->script_path = xstrdup(script_path);
  char *copy = xstrdup(script_path);
  g->script_dir = xstrdup(dirname(copy));
  free(copy);
  g->run_opts = xmalloc(sizeof *g->run_opts);
  run_options_init(g->run_opts);
  deps_init(&g->files);

  lua_State *L = lua_newstate(gen_alloc, g);
  if (!L) {
    buf_append_str(err, "cannot create a Lua state (out of memory)");
    gen_unref(g);
    return NULL;
  }
  g->owner.L = L;
  *(struct generation **)lua_getextraspace(L) = g;
  lua_atpanic(L, gen_panic);
  cpuguard_prepare_state(&env->sched->guard, L);
  return g;
}

void gen_ref(struct generation *g) { g->refs++; }

void gen_unref(struct generation *g) {
  if (--g->refs > 0) return;
  if (g->retiring) {
    struct log_fields f = {g->owner.id, -1};
    log_msg(LOG_INFO, &f, "generation %d retired: its last job ended "
            "(%zu KiB of Lua heap freed)", g->owner.id, g->lua_bytes / 1024);
  }
  g->closing = true;
  if (g->owner.L) lua_close(g->owner.L);
  run_options_free(g->run_opts);
  free(g->run_opts);
  deps_free(&g->files);
  free(g->script_path);
  free(g->script_dir);
  free(g);
  metric_set(METRIC_GENERATIONS_ALIVE, (double)--alive, NULL, NULL);
}

bool gen_push_runtime_fn(struct generation *g, const char *name) {
  lua_State *L = g->owner.L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->runtime_ref);
  if (lua_istable(L, -1)) lua_getfield(L, -1, name);
  else lua_pushnil(L);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) return true;
  lua_pop(L, 1);
  return false;
}

