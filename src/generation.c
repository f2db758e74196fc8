#include "generation.h"

#include <lauxlib.h>
#include <libgen.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "host.h"
#include "log.h"
#include "luaapi.h"
#include "luacoro.h"
#include "luacore.h"
#include "luahttp.h"
#include "luajson.h"
#include "luaseq.h"
#include "luastorage.h"
#include "luatask.h"

struct generation *gen_of(lua_State *L) {
  return *(struct generation **)lua_getextraspace(L);
}

static void *gen_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct generation *g = ud;
  if (nsize == 0) {
    if (ptr) g->lua_bytes -= osize;
    free(ptr);
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p) g->lua_bytes += nsize - (ptr ? osize : 0);
  return p;
}

static int gen_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  log_error("unprotected Lua error: %s", msg ? msg : "(not a string)");
  abort();
  return 0;
}

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
    {"tghost.json", luaopen_tghost_json},
    {"tghost.api", luaopen_tghost_api},
    {"tghost.task", luaopen_tghost_task},
    {"tghost.httpcore", luaopen_tghost_httpcore},
    {"tghost.coroutine", luaopen_tghost_coroutine},
    {"tghost.seq", luaopen_tghost_seq},
    {"tghost.storagecore", luaopen_tghost_storagecore},
    {NULL, NULL},
};

static int boot(lua_State *L) {
  luaL_openlibs(L);
  deps_install(L);
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
  set_package_path(L, lua_tostring(L, 1));
  lua_getglobal(L, "require");
  lua_pushstring(L, "tghost");
  lua_call(L, 1, 0);
  return 0;
}

struct generation *gen_new(struct host *h, const char *script_path,
                           struct buf *err) {
  struct generation *g = xcalloc(1, sizeof *g);
  g->host = h;
  g->sched = &h->sched;
  g->id = ++h->last_generation_id;
  g->refs = 1;
  g->runtime_ref = LUA_NOREF;
  g->script_path = xstrdup(script_path);
  char *copy = xstrdup(script_path);
  g->script_dir = xstrdup(dirname(copy));
  free(copy);
  run_options_init(&g->run_opts);
  deps_init(&g->files);
  deps_add(&g->files, script_path);

  g->L = lua_newstate(gen_alloc, g);
  if (!g->L) {
    buf_append_str(err, "cannot create a Lua state (out of memory)");
    gen_unref(g);
    return NULL;
  }
  *(struct generation **)lua_getextraspace(g->L) = g;
  lua_atpanic(g->L, gen_panic);
  task_install_cpu_guard(g->sched, g->L);
  lua_pushcfunction(g->L, boot);
  lua_pushstring(g->L, g->script_dir);
  if (lua_pcall(g->L, 1, 0, 0) != LUA_OK) {
    buf_printf(err, "cannot start the tghost runtime: %s",
               lua_tostring(g->L, -1));
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

void gen_ref(struct generation *g) { g->refs++; }

void gen_unref(struct generation *g) {
  if (--g->refs > 0) return;
  if (g->retiring) {
    struct log_fields f = {g->id, -1};
    log_msg(LOG_INFO, &f, "generation %d retired: its last job ended "
            "(%zu KiB of Lua heap freed)", g->id, g->lua_bytes / 1024);
  }
  if (g->L) lua_close(g->L);
  run_options_free(&g->run_opts);
  deps_free(&g->files);
  free(g->script_path);
  free(g->script_dir);
  free(g);
}

/* Pushes runtime[name]; false (nothing pushed) if it is not a function. */
static bool push_runtime_fn(struct generation *g, const char *name) {
  lua_State *L = g->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->runtime_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) return true;
  lua_pop(L, 1);
  return false;
}

struct load_state {
  gen_loaded_fn done;
  void *ud;
};

static void on_load_end(struct job *job, void *ud) {
  struct load_state *ls = ud;
  const char *error = NULL;
  job->gen->load_job = NULL;
  if (job->end == JOB_CANCELLED) error = job->error ? job->error : "cancelled";
  else if (job->end == JOB_FAILED) error = job->error ? job->error : "failed";
  ls->done(job->gen, error, ls->ud);
  free(ls);
}

int gen_load(struct generation *g, gen_loaded_fn done, void *ud,
             struct buf *err) {
  lua_State *L = g->L;
  if (luaL_loadfilex(L, g->script_path, "t") != LUA_OK) {
    buf_append_str(err, lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  lua_pushstring(L, g->script_path);
  struct load_state *ls = xmalloc(sizeof *ls);
  ls->done = done;
  ls->ud = ud;
  struct job *job = job_new(g->sched, g, JOB_LOAD);
  job->on_end = on_load_end;
  job->end_ud = ls;
  g->load_job = job;
  job_spawn(job, L, 1);
  return 0;
}

struct job *gen_start_update(struct generation *g, int64_t update_id,
                             char *json, size_t len, job_end_fn on_end,
                             void *ud) {
  lua_State *L = g->L;
  int top = lua_gettop(L);
  if (!push_runtime_fn(g, "handle_update")) {
    struct log_fields f = {g->id, update_id};
    log_msg(LOG_ERROR, &f, "the runtime has no handle_update");
    free(json);
    return NULL;
  }
  struct buf err = BUF_INIT;
  if (luajson_decode(L, json, len, &err) != 0) {
    struct log_fields f = {g->id, update_id};
    log_msg(LOG_ERROR, &f, "update dropped: %s", err.data);
    buf_free(&err);
    lua_settop(L, top);
    free(json);
    return NULL;
  }
  struct job *job = job_new(g->sched, g, JOB_UPDATE);
  job->update_id = update_id;
  job->update_json = json;
  job->update_len = len;
  job->on_end = on_end;
  job->end_ud = ud;
  job_spawn(job, L, 1);
  return job;
}

static void on_hook_end(struct job *job, void *ud) {
  if (job->end == JOB_DONE) return;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_ERROR, &f, "%s failed: %s", (const char *)ud,
          job->error ? job->error : "cancelled");
}

void gen_run_hook(struct generation *g, const char *hook, int64_t update_id,
                  char *json, size_t len, const char *message) {
  lua_State *L = g->L;
  int top = lua_gettop(L);
  struct log_fields f = {g->id, update_id};
  if (!push_runtime_fn(g, hook)) {
    log_msg(LOG_ERROR, &f, "%s", message ? message : "(no message)");
    free(json);
    return;
  }
  if (!json || luajson_decode(L, json, len, NULL) != 0) lua_pushnil(L);
  if (message) lua_pushstring(L, message);
  else lua_pushnil(L);
  struct job *job = job_new(g->sched, g, JOB_CALLBACK);
  job->update_id = update_id;
  job->update_json = json;
  job->update_len = len;
  job->on_end = on_hook_end;
  job->end_ud = (void *)hook;
  job_spawn(job, L, 2);
  (void)top;
}
