#include "script/luarun.h"

#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "script/luabind.h"
#include "script/luajson.h"
#include "pipeline/feed.h"
#include "pipeline/runopts.h"

static const char *const type_names[] = {
    [RUNOPT_INTEGER] = "integer",     [RUNOPT_NUMBER] = "number",
    [RUNOPT_BOOLEAN] = "boolean",     [RUNOPT_SINK_KIND] = "sink_kind",
    [RUNOPT_RETRY] = "retry",         [RUNOPT_UPDATE_TYPES] = "update_types",
    [RUNOPT_FUNCTION] = "function",   [RUNOPT_STRING] = "string",
    [RUNOPT_STORAGE] = "storage",
};

/* runner.schema(): the one list of options, for lua/options.lua. */
static int l_schema(lua_State *L) {
  lua_createtable(L, (int)run_option_count, 0);
  for (size_t i = 0; i < run_option_count; i++) {
    const struct run_option_spec *o = &run_option_specs[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, o->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, o->flat);
    lua_setfield(L, -2, "flat");
    lua_pushstring(L, type_names[o->type]);
    lua_setfield(L, -2, "type");
    if (o->type == RUNOPT_INTEGER || o->type == RUNOPT_NUMBER ||
        o->type == RUNOPT_RETRY) {
      lua_pushnumber(L, o->min);
      lua_setfield(L, -2, "min");
      lua_pushnumber(L, o->max);
      lua_setfield(L, -2, "max");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* Stores an integer into its field, an int or a long. */
static void set_integer(struct run_options *o, const struct run_option_spec *s,
                        long v) {
  void *field = (char *)o + s->offset;
  if (s->size == sizeof(int)) *(int *)field = (int)v;
  else *(long *)field = v;
}

/* Fills o from the flat table at idx (validated by lua/options.lua against
 * the same schema; a value of the wrong type here is a bug there). */
static void read_options(lua_State *L, int idx, struct run_options *o) {
  for (size_t i = 0; i < run_option_count; i++) {
    const struct run_option_spec *s = &run_option_specs[i];
    int type = lua_getfield(L, idx, s->flat);
    if (type == LUA_TNIL || s->size == 0) {   /* kept by the Lua half */
      lua_pop(L, 1);
      continue;
    }
    char *field = (char *)o + s->offset;
    switch (s->type) {
      case RUNOPT_INTEGER:
        set_integer(o, s, (long)luaL_checknumber(L, -1));
        break;
      case RUNOPT_NUMBER:
        *(double *)(void *)field = luaL_checknumber(L, -1);
        break;
      case RUNOPT_BOOLEAN:
        *(bool *)field = lua_toboolean(L, -1);
        break;
      case RUNOPT_SINK_KIND: {
        int k = sink_kind_from_name(luaL_checkstring(L, -1));
        if (k < 0) luaL_error(L, "run(): %s: unknown sink kind", s->path);
        o->sink = (enum sink_kind)k;
        break;
      }
      case RUNOPT_RETRY:
        if (type == LUA_TNUMBER) {
          o->retry = RETRY_FIXED;
          o->retry_ms = (long)lua_tonumber(L, -1);
        } else {
          const char *name = luaL_checkstring(L, -1);
          o->retry = strcmp(name, "quadratic") == 0 ? RETRY_QUADRATIC
                                                     : RETRY_EXPONENTIAL;
        }
        break;
      case RUNOPT_UPDATE_TYPES: {
        struct buf json = BUF_INIT, err = BUF_INIT;
        if (luajson_encode(L, -1, &json, &err) != 0) {
          lua_pushfstring(L, "run(): %s: %s", s->path, err.data);
          buf_free(&json);
          buf_free(&err);
          lua_error(L);
        }
        free(o->allowed_updates_json);
        o->allowed_updates_json = buf_steal(&json, NULL);
        break;
      }
      case RUNOPT_STRING: {
        char **field_str = (char **)(void *)field;
        free(*field_str);
        *field_str = xstrdup(luaL_checkstring(L, -1));
        break;
      }
      case RUNOPT_FUNCTION:
      case RUNOPT_STORAGE:
        break;
    }
    lua_pop(L, 1);
  }
}

/* runner.run(flat) with the table lua/options.lua produced. */
static int l_run(lua_State *L) {
  struct generation *g = gen_of(L);
  struct script_env *env = g->env;
  luaL_checktype(L, 1, LUA_TTABLE);
  struct task *t = sched_running(env->sched);
  if (!t || job_kind(task_job(t)) != JOB_LOAD)
    return luaL_error(L, "run() and bot.start() belong at the script's top "
                         "level, not inside a handler");
  if (g->run_called)
    return luaL_error(L, "run() or bot.start() was already called");
  /* Read into the generation's own struct: nothing leaks if it raises. */
  run_options_free(g->run_opts);
  run_options_init(g->run_opts);
  read_options(L, 1, g->run_opts);
  /* jobs.storage, described by the Lua half (lua/tghost.lua). */
  static const struct {
    const char *flat;
    size_t offset;
  } store_fields[] = {
      {"jobs_store_kind", offsetof(struct run_options, jobs_store_kind)},
      {"jobs_store_target", offsetof(struct run_options, jobs_store_target)},
      {"jobs_store_ns", offsetof(struct run_options, jobs_store_ns)},
  };
  for (size_t i = 0; i < 3; i++) {
    if (lua_getfield(L, 1, store_fields[i].flat) == LUA_TSTRING) {
      char **field = (char **)(void *)((char *)g->run_opts +
                                       store_fields[i].offset);
      free(*field);
      *field = xstrdup(lua_tostring(L, -1));
    }
    lua_pop(L, 1);
  }
  g->run_called = true;
  /* Whether this call starts the bot (no runner yet) or a reloaded script
   * calls it again; and whether the bot runs in a cluster. */
  lua_pushboolean(L, !env->host->started(env->host_ud));
  lua_pushboolean(L, g->run_opts->cluster_url || env->cluster);
  return 2;
}

static void stop_wait_cancel(void *data) {
  struct task *t = data;
  struct script_env *env = gen_of_job(task_job(t))->env;
  env->host->forget_waiter(env->host_ud, t);
}
static const struct task_wait_ops stop_wait_ops = {"runner stop",
                                                   stop_wait_cancel};

static int l_stop(lua_State *L) {
  struct script_env *env = env_of(L);
  const struct script_host_ops *bot = env->host;
  if (!bot->started(env->host_ud)) {
    /* Stopped before it started: the host will not start it. */
    struct generation *g = gen_of(L);
    g->run_called = false;
    g->run_stopped = true;
    return 0;
  }
  struct task *t = sched_running(env->sched);
  if (!t || !lua_isyieldable(L) || !bot->running(env->host_ud)) {
    bot->stop(env->host_ud, NULL);
    return 0;
  }
  bot->stop(env->host_ud, t);
  return task_wait(L, t, &stop_wait_ops, t);
}

/* True from run() on (the runner itself starts once the top level has
 * finished) until the runner stops. */
static int l_is_running(lua_State *L) {
  struct script_env *env = env_of(L);
  lua_pushboolean(L, env->host->started(env->host_ud)
                         ? env->host->running(env->host_ud)
                         : gen_of(L)->run_called);
  return 1;
}

/* runner.wait_stopped(): returns once the runner has stopped (at once if
 * there is none). */
static int l_wait_stopped(lua_State *L) {
  struct script_env *env = env_of(L);
  const struct script_host_ops *bot = env->host;
  struct task *running = sched_running(env->sched);
  bool top_level = running && job_kind(task_job(running)) == JOB_LOAD;
  /* The first top level runs before the bot starts, a reloaded one must
   * finish for the reload to take effect: neither can wait for a stop
   * (under --check as in a real run). No position: lua/tghost.lua raises
   * it again at the script's line. */
  if (top_level) {
    lua_pushliteral(L, "handle:task(): the script's top level cannot wait "
                       "for the bot to stop (the bot starts, or a reload "
                       "takes effect, when the top level has finished); "
                       "wait inside a handler");
    return lua_error(L);
  }
  bool started = bot->started(env->host_ud);
  if (!started && !gen_of(L)->run_called) return 0;
  if (env->check) return 0;
  if (!started || bot->finished(env->host_ud)) return 0;
  struct task *t = task_check_can_wait(L, env->sched, "handle:task()");
  bot->wait_stopped(env->host_ud, t);
  return task_wait(L, t, &stop_wait_ops, t);
}

/* runner.start(): handle:start(). Starts the bot again after a stop (at
 * once if it has completed, else when it does); false if it runs or a
 * start is already asked for. */
static int l_start(lua_State *L) {
  struct script_env *env = env_of(L);
  lua_pushboolean(L, env->host->start_again(env->host_ud));
  return 1;
}

/* runner.feed_push(json, id): queues an update in the feed (pipeline/
 * feed.h) and returns once the runner has accepted it (true), or false
 * and why it was not taken. */
static void feed_wait_cancel(void *data) { feed_forget(data); }
static const struct task_wait_ops feed_wait_ops = {"tghost.feed.push",
                                                   feed_wait_cancel};

static int l_feed_push(lua_State *L) {
  struct script_env *env = env_of(L);
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  lua_Integer id = luaL_checkinteger(L, 2);
  struct task *t = task_check_can_wait(L, env->sched, "tghost.feed.push");
  feed_push(env->base, (int64_t)id, xstrndup(json, len), len, t);
  lua_settop(L, 0);
  return task_wait(L, t, &feed_wait_ops, t);
}

static int l_feed_queued(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)feed_queued());
  return 1;
}

static int l_size(lua_State *L) {
  struct script_env *env = env_of(L);
  lua_pushinteger(L, (lua_Integer)env->host->size(env->host_ud));
  return 1;
}

/* An os.exit() that has asked for the stop: the task waits to be closed. */
static void exit_wait_cancel(void *data) {}
static const struct task_wait_ops exit_wait_ops = {"os.exit", exit_wait_cancel};

/* runner.exit([code]): os.exit for scripts. A graceful stop (in-flight
 * updates finish, the offset is confirmed) after which tghost exits with
 * code; the calling handler goes no further (its coroutine is closed, its
 * <close> variables run). */
static int l_exit(lua_State *L) {
  struct script_env *env = env_of(L);
  int code = 0;
  if (lua_isboolean(L, 1)) code = lua_toboolean(L, 1) ? 0 : 1;
  else if (!lua_isnoneornil(L, 1)) code = (int)luaL_checkinteger(L, 1);
  struct log_fields f = luabind_fields(L);
  struct task *t = sched_running(env->sched);
  log_msg(LOG_INFO, &f, "os.exit(%d) called: %s", code,
          env->host->running(env->host_ud) ? "stopping gracefully"
                                         : "exiting");
  env->host->exit(env->host_ud, code);
  if (!t || !lua_isyieldable(L)) return 0;
  job_close(task_job(t));
  return task_wait(L, t, &exit_wait_ops, NULL);
}

int luaopen_tghost_runner(lua_State *L) {
  static const luaL_Reg fns[] = {{"schema", l_schema},
                                 {"run", l_run},
                                 {"stop", l_stop},
                                 {"is_running", l_is_running},
                                 {"wait_stopped", l_wait_stopped},
                                 {"size", l_size},
                                 {"start", l_start},
                                 {"feed_push", l_feed_push},
                                 {"feed_queued", l_feed_queued},
                                 {"exit", l_exit},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
