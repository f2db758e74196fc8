#include "script/runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "base/embedded.h"
#include "base/log.h"
#include "script/luaapi.h"
#include "script/luacore.h"
#include "script/luaconv.h"
#include "script/luacoro.h"
#include "script/luafile.h"
#include "script/luaguard.h"
#include "script/luaexec.h"
#include "script/luacrypto.h"
#include "script/luahttp.h"
#include "script/luajobs.h"
#include "script/luastream.h"
#include "script/luajson.h"
#include "script/luaload.h"
#include "script/luarun.h"
#include "script/luaseq.h"
#include "script/luastorage.h"
#include "script/luastring.h"
#include "script/luatable.h"
#include "script/luatask.h"
#include "base/metrics.h"
#include "net/trace.h"
#include "pipeline/fence.h"

/* package.preload loader for an embedded module. TGHOST_LUA_DIR, when set,
 * loads lua/ from disk instead, so the Lua half can be edited without a
 * rebuild. */
static int load_embedded(lua_State *L) {
  const struct embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
  const char *dir = getenv("TGHOST_LUA_DIR");
  int status;
  if (dir && *dir) {
    struct buf path = BUF_INIT;
    const char *base = strrchr(m->path, '/');
    buf_printf(&path, "%s/%s", dir, base ? base + 1 : m->path);
    status = luaL_loadfilex(L, path.data, "t");
    buf_free(&path);
  } else {
    char chunkname[128];
    const char *base = strrchr(m->path, '/');
    snprintf(chunkname, sizeof chunkname, "@[tghost]/%s",
             base ? base + 1 : m->path);
    status = luaL_loadbufferx(L, m->code, m->len, chunkname, "t");
  }
  if (status != LUA_OK) return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

static void set_package_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  struct buf p = BUF_INIT;
  buf_printf(&p, "%s/?.lua;%s/?/init.lua;%s", dir, dir, old ? old : "");
  lua_pop(L, 1);
  lua_pushstring(L, p.data);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  buf_free(&p);
}

/* The C halves of the Lua API, each a module of its own. */
static const luaL_Reg c_modules[] = {
    {"tghost.core", luaopen_tghost_core},
    {"tghost.runner", luaopen_tghost_runner},
    {"tghost.json", luaopen_tghost_json},
    {"tghost.api", luaopen_tghost_api},
    {"tghost.file", luaopen_tghost_file},
    {"tghost.task", luaopen_tghost_task},
    {"tghost.httpcore", luaopen_tghost_httpcore},
    {"tghost.httpstream", luaopen_tghost_httpstream},
    {"tghost.execcore", luaopen_tghost_execcore},
    {"tghost.coroutine", luaopen_tghost_coroutine},
    {"tghost.seq", luaopen_tghost_seq},
    {"tghost.storagecore", luaopen_tghost_storagecore},
    {"tghost.conv", luaopen_tghost_conv},
    {"tghost.crypto", luaopen_tghost_crypto},
    {"tghost.jobscore", luaopen_tghost_jobscore},
    {NULL, NULL},
};

static int boot(lua_State *L) {
  struct generation *g = gen_of(L);
  luaL_openlibs(L);
  luaguard_install(L);
  /* Source text only, parsed under the CPU budget; before deps_install
   * puts its searcher in front of the Lua file searcher. */
  luaload_install_guarded(L);
  /* String and table functions whose work a script sizes, bounded by the
   * CPU budget. */
  luastring_install_guarded(L);
  luatable_install_guarded(L);
  deps_install(L, &g->files, g->script_dir);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *m = c_modules; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  for (const struct embedded_module *m = embedded_modules; m->name; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
  set_package_path(L, g->script_dir);
  lua_getglobal(L, "require");
  lua_pushstring(L, "tghost");
  lua_call(L, 1, 0);
  /* Every userdata type is registered now (io's, tghost's modules'). */
  luaguard_protect_metatables(L);
  return 0;
}

static int last_generation_id;

struct generation *runtime_new_generation(struct script_env *env,
                                          const char *script_path,
                                          struct buf *err) {
  struct generation *g =
      gen_create(env, script_path, ++last_generation_id, err);
  if (!g) return NULL;
  deps_add(&g->files, script_path);
  lua_State *L = g->owner.L;
  lua_pushcfunction(L, boot);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    buf_printf(err, "cannot start the tghost runtime: %s",
               lua_tostring(L, -1));
    gen_unref(g);
    return NULL;
  }
  if (g->runtime_ref == LUA_NOREF) {
    buf_append_str(err, "the tghost runtime did not register itself");
    gen_unref(g);
    return NULL;
  }
  return g;
}

/* --- the script's top level --------------------------------------------- */

struct load_state {
  runtime_loaded_fn done;
  void *ud;
};

/* Appends error to out, with the pointer to its fix runtime.explain
 * (lua/hints.lua) adds to Lua messages it knows. */
static void explain(struct generation *g, const char *error, struct buf *out) {
  lua_State *L = g->owner.L;
  int top = lua_gettop(L);
  if (gen_push_runtime_fn(g, "explain")) {
    lua_pushstring(L, error);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
      error = lua_tostring(L, -1);
  }
  buf_append_str(out, error);
  lua_settop(L, top);
}

static void on_load_end(struct job *job, void *ud) {
  struct load_state *ls = ud;
  struct generation *g = gen_of_job(job);
  struct buf error = BUF_INIT;
  g->load_job = NULL;
  if (job_how_ended(job) == JOB_CANCELLED)
    buf_append_str(&error, job_error(job) ? job_error(job) : "cancelled");
  else if (job_how_ended(job) == JOB_FAILED)
    explain(g, job_error(job) ? job_error(job) : "failed", &error);
  ls->done(g, error.data, ls->ud);
  buf_free(&error);
  free(ls);
}

int runtime_load_script(struct generation *g, runtime_loaded_fn done,
                        void *ud, struct buf *err) {
  lua_State *L = g->owner.L;
  if (luaL_loadfilex(L, g->script_path, "t") != LUA_OK) {
    char *message = xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    explain(g, message, err);
    free(message);
    return -1;
  }
  lua_pushstring(L, g->script_path);
  struct load_state *ls = xmalloc(sizeof *ls);
  ls->done = done;
  ls->ud = ud;
  struct job_params p = {JOB_LOAD, -1, NULL, 0, on_load_end, ls};
  struct job *job = job_new(g->env->sched, &g->owner, &p);
  g->load_job = job;
  job_spawn(job, L, 1);
  return 0;
}

bool runtime_has_handlers(struct generation *g) {
  lua_State *L = g->owner.L;
  int top = lua_gettop(L);
  bool yes = gen_push_runtime_fn(g, "has_handlers") &&
             lua_pcall(L, 0, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_settop(L, top);
  return yes;
}

/* --- updates and reports ------------------------------------------------ */

static struct job *start_update(struct job_owner *current,
                                struct update_item *u, job_end_fn on_end,
                                void *end_ud) {
  struct generation *g = gen_of_owner(current);
  lua_State *L = g->owner.L;
  int top = lua_gettop(L);
  struct log_fields f = {g->owner.id, u->id};
  trace_update(g->owner.id, u->id, u->fence ? u->partition : -1,
               u->redelivered, u->json, u->len);
  if (!gen_push_runtime_fn(g, "handle_update")) {
    log_msg(LOG_ERROR, &f, "the runtime has no handle_update");
    metric_inc(METRIC_UPDATES_HANDLED, "failed", NULL);
    return NULL;
  }
  struct buf err = BUF_INIT;
  if (luajson_decode(L, u->json, u->len, &err) != 0) {
    log_msg(LOG_ERROR, &f, "update dropped: %s", err.data);
    metric_inc(METRIC_UPDATES_HANDLED, "failed", NULL);
    buf_free(&err);
    lua_settop(L, top);
    return NULL;
  }
  /* Handed back by the journal after a restart, but a durable
   * conversation's record has it already (its first update, or an answer
   * it took): it resumed from the record and must not get it twice. */
  if (u->redelivered && gen_push_runtime_fn(g, "dialog_has")) {
    lua_pushinteger(L, (lua_Integer)u->id);
    bool has = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    lua_settop(L, top + 2);   /* handle_update and the update */
    if (has) {
      log_msg(LOG_DEBUG, &f, "a resumed conversation's record has it "
              "already: not run again");
      metric_inc(METRIC_UPDATES_HANDLED, "consumed", NULL);
      lua_settop(L, top);
      return NULL;
    }
  }
  /* A conversation waiting for this update takes it before any middleware
   * runs: then it needs no job of its own, unless the conversation is
   * durable (its job is the receipt the journal waits for). */
  struct conv_hold *hold;
  struct conv_receipt *receipt;
  enum luaconv_route route = luaconv_route(g->env->conv, g, u, &hold,
                                           &receipt);
  if (route == LUACONV_CONSUMED) {
    metric_inc(METRIC_UPDATES_HANDLED, "consumed", NULL);
    lua_settop(L, top);
    return NULL;
  }
  lua_pushboolean(L, u->redelivered);
  if (route == LUACONV_HOLD) lua_pushliteral(L, "held");
  else if (route == LUACONV_OFFERED) lua_pushliteral(L, "offered");
  else if (route == LUACONV_RECEIPT) lua_pushliteral(L, "receipt");
  else lua_pushnil(L);
  struct job_params p = {JOB_UPDATE, u->id, u->json, u->len, on_end, end_ud};
  u->json = NULL;
  struct job *job = job_new(g->env->sched, &g->owner, &p);
  /* Its storage writes carry its cluster partition's fence. */
  if (u->fence) update_fence_attach(job, u->fence);
  u->fence = NULL;
  if (hold) luaconv_hold(g->env->conv, hold, job);
  if (receipt) luaconv_receipt(g->env->conv, receipt, job);
  luaconv_started(g->env->conv, job);
  job_spawn(job, L, 3);
  return job;
}

static void on_hook_end(struct job *job, void *ud) {
  if (job_how_ended(job) == JOB_DONE) return;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_ERROR, &f, "%s failed: %s", (const char *)ud,
          job_error(job) ? job_error(job) : "cancelled");
}

/* Runs runtime.<hook>(update, message) in a callback job. json may be
 * NULL (then the update argument is nil) and is taken over. */
static void run_hook(struct generation *g, const char *hook,
                     int64_t update_id, char *json, size_t len,
                     const char *message) {
  lua_State *L = g->owner.L;
  struct log_fields f = {g->owner.id, update_id};
  if (!gen_push_runtime_fn(g, hook)) {
    log_msg(LOG_ERROR, &f, "%s", message ? message : "(no message)");
    free(json);
    return;
  }
  if (!json || luajson_decode(L, json, len, NULL) != 0) lua_pushnil(L);
  if (message) lua_pushstring(L, message);
  else lua_pushnil(L);
  struct job_params p = {JOB_CALLBACK, update_id, json, len, on_hook_end,
                         (void *)hook};
  struct job *job = job_new(g->env->sched, &g->owner, &p);
  job_spawn(job, L, 2);
}

/* A hard failure (CPU budget, runtime error): reported like a handler
 * error, through bot.catch when there is one. */
static void report_failure(struct job *job) {
  size_t len;
  char *json = job_take_update_json(job, &len);
  run_hook(gen_of_job(job), "handle_failure", job_update_id(job), json, len,
           job_error(job) ? job_error(job) : "failed");
}

static void report_timeout(struct job *job, long timeout_ms) {
  char msg[96];
  snprintf(msg, sizeof msg, "the update timed out after %ld ms", timeout_ms);
  size_t len;
  const char *json = job_update_json(job, &len);
  run_hook(gen_of_job(job), "handle_timeout", job_update_id(job),
           json ? xstrndup(json, len) : NULL, len, msg);
}

/* runtime.cluster_key_of(update) under the CPU guard: the script's own
 * cluster key, computed when an update is stored, outside any task. */
static int cluster_key(struct job_owner *gen, const char *json, size_t len,
                       struct buf *key, struct buf *err) {
  struct generation *g = gen_of_owner(gen);
  lua_State *L = g->owner.L;
  int top = lua_gettop(L);
  /* Without a cluster.key the update is not decoded at all. */
  bool has_fn = gen_push_runtime_fn(g, "cluster_key");
  lua_settop(L, top);
  if (!has_fn || !gen_push_runtime_fn(g, "cluster_key_of")) return 0;
  if (luajson_decode(L, json, len, err) != 0) {
    lua_settop(L, top);
    return -1;
  }
  int result = 0;
  if (cpuguard_pcall(&g->env->sched->guard, L, 1, 1) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    buf_append_str(err, msg ? msg : "(an error object)");
    result = -1;
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    buf_append(key, s, n);
    result = 1;
  }
  lua_settop(L, top);
  return result;
}

const struct update_ops runtime_update_ops = {start_update, report_failure,
                                              report_timeout, cluster_key};

/* --- scheduled jobs -------------------------------------------------------- */

static struct job *start_job_run(struct job_owner *current,
                                 const struct job_run_info *run,
                                 job_end_fn on_end, void *end_ud) {
  struct generation *g = gen_of_owner(current);
  lua_State *L = g->owner.L;
  if (!gen_push_runtime_fn(g, "handle_job")) {
    struct log_fields f = {g->owner.id, -1};
    log_msg(LOG_ERROR, &f, "job %s (id %s): the runtime has no handle_job",
            run->name, run->id);
    return NULL;
  }
  luajobs_push_run(L, run);
  struct job_params p = {JOB_SCHEDULED, -1, NULL, 0, on_end, end_ud};
  struct job *job = job_new(g->env->sched, &g->owner, &p);
  job_spawn(job, L, 1);
  return job;
}

static void on_job_report_end(struct job *job, void *ud) {
  if (job_how_ended(job) == JOB_DONE) return;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_ERROR, &f, "reporting a job's failure failed: %s",
          job_error(job) ? job_error(job) : "cancelled");
}

/* runtime.handle_job_failure(run, message) in a callback job of the run's
 * generation: bot.catch, or the log. */
static void report_job_failure(struct job *job, const struct job_run_info *run,
                               const char *message) {
  struct generation *g = gen_of_job(job);
  lua_State *L = g->owner.L;
  if (!gen_push_runtime_fn(g, "handle_job_failure")) {
    struct log_fields f = {g->owner.id, -1};
    log_msg(LOG_ERROR, &f, "job %s (id %s): %s", run->name, run->id, message);
    return;
  }
  luajobs_push_run(L, run);
  lua_pushstring(L, message);
  struct job_params p = {JOB_CALLBACK, -1, NULL, 0, on_job_report_end, NULL};
  struct job *report = job_new(g->env->sched, &g->owner, &p);
  job_spawn(report, L, 2);
}

const struct jobsched_ops runtime_job_ops = {start_job_run,
                                             report_job_failure};
