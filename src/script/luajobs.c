#include "script/luajobs.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cron.h"
#include "base/log.h"
#include "base/tzfile.h"
#include "script/luabind.h"
#include "script/storecodec.h"
#include "sched/task.h"

/* The registry key of a generation's declarations: a list of spec tables
 * (with data already encoded, as data_bytes) and { cancel = id }. */
static char declarations_key;

/* --- specs ---------------------------------------------------------------- */

static const char *opt_string(lua_State *L, int idx, const char *field) {
  lua_getfield(L, idx, field);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);   /* the table keeps the string alive */
  return s;
}

static lua_Integer opt_integer(lua_State *L, int idx, const char *field,
                               lua_Integer dflt) {
  lua_getfield(L, idx, field);
  lua_Integer v = dflt;
  if (lua_isnumber(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)floor(n);
  }
  lua_pop(L, 1);
  return v;
}

/* Fills spec from the table at idx (data_bytes must be set on it). Raises
 * on a field the Lua half should have refused. */
static void read_spec(lua_State *L, int idx, struct job_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->id = opt_string(L, idx, "id");
  spec->prefix = opt_string(L, idx, "prefix");
  spec->name = opt_string(L, idx, "name");
  if (!spec->name) luaL_error(L, "tghost.jobs: the job has no name");
  lua_getfield(L, idx, "data_bytes");
  size_t len = 0;
  spec->data = lua_tolstring(L, -1, &len);
  spec->data_len = len;
  lua_pop(L, 1);
  const char *repeat = opt_string(L, idx, "repeat");
  spec->repeat = repeat && strcmp(repeat, "every") == 0  ? JOB_EVERY
                 : repeat && strcmp(repeat, "cron") == 0 ? JOB_CRON
                                                         : JOB_ONCE;
  spec->first_ms = opt_integer(L, idx, "first", -1);
  spec->interval_ms = opt_integer(L, idx, "interval", 0);
  spec->cron = opt_string(L, idx, "cron");
  spec->tz = opt_string(L, idx, "tz");
  spec->when = opt_string(L, idx, "when");
  const char *misfire = opt_string(L, idx, "misfire");
  int m = misfire ? job_misfire_from_name(misfire) : -1;
  spec->misfire = (enum job_misfire)m;
  spec->misfire_limit = (int)opt_integer(L, idx, "misfireLimit", 0);
  spec->grace_ms = -1;
  lua_getfield(L, idx, "declared");
  spec->keep_if_same = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (spec->repeat == JOB_EVERY && spec->interval_ms <= 0)
    luaL_error(L, "tghost.jobs.every: the interval must be positive");
  if (spec->cron) {
    struct cron_expr e;
    struct buf err = BUF_INIT;
    if (cron_parse(spec->cron, &e, &err) != 0) {
      lua_pushfstring(L, "tghost.jobs: cron \"%s\": %s", spec->cron, err.data);
      buf_free(&err);
      lua_error(L);
    }
  }
  if (spec->tz && *spec->tz && strcmp(spec->tz, "UTC") != 0 &&
      !tz_valid_name(spec->tz))
    luaL_error(L, "tghost.jobs: tz \"%s\" is not a time zone name (such as "
                  "Europe/Berlin)", spec->tz);
}

/* The running task, if L runs in one, and whether it is the top level. */
static struct task *running(lua_State *L, bool *top_level) {
  struct task *t = sched_running(env_of(L)->sched);
  *top_level = t && job_kind(task_job(t)) == JOB_LOAD;
  return t;
}

/* --- waits ------------------------------------------------------------------ */

struct jobs_wait {
  struct task *task;             /* NULL once the waiter was cancelled */
  char *error;
  char *id;
  bool found;
  struct job_info *infos;
  size_t n;
};

static void wait_free(struct jobs_wait *w) {
  free(w->error);
  free(w->id);
  for (size_t i = 0; i < w->n; i++) {
    free(w->infos[i].id);
    free(w->infos[i].name);
    free(w->infos[i].data);
    free(w->infos[i].schedule);
  }
  free(w->infos);
  free(w);
}

static void wait_cancel(void *data) {
  struct jobs_wait *w = data;
  w->task = NULL;   /* the answer frees it */
}

static const struct task_wait_ops put_wait_ops = {"tghost.jobs", wait_cancel};

/* Resumes the waiter (or frees w if it is gone). */
static void wake(struct jobs_wait *w, task_push_fn push) {
  if (!w->task) {
    wait_free(w);
    return;
  }
  task_wake(w->task, push, w);
}

static int push_put(lua_State *co, void *data) {
  struct jobs_wait *w = data;
  int n = 0;
  if (co) {
    if (w->error) {
      lua_pushboolean(co, 0);
      lua_pushfstring(co, "tghost.jobs: %s", w->error);
    } else {
      lua_pushboolean(co, 1);
      lua_pushstring(co, w->id);
    }
    n = 2;
  }
  wait_free(w);
  return n;
}

static void on_put(void *ud, const char *id, const char *error) {
  struct jobs_wait *w = ud;
  if (error) w->error = xstrdup(error);
  else w->id = xstrdup(id);
  wake(w, push_put);
}

/* put(spec) -> id */
static int l_put(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* The data, encoded now: what cannot be stored is refused here. */
  lua_getfield(L, 1, "data");
  struct buf bytes = BUF_INIT, err = BUF_INIT;
  /* No data is no bytes. */
  if (!lua_isnil(L, 2) && storecodec_encode(L, 2, &bytes, &err) != 0) {
    lua_pushfstring(L, "tghost.jobs: the job's data cannot be stored: %s",
                    err.data);
    buf_free(&bytes);
    buf_free(&err);
    return lua_error(L);
  }
  lua_pop(L, 1);
  lua_pushlstring(L, bytes.data ? bytes.data : "", bytes.len);
  lua_setfield(L, 1, "data_bytes");
  buf_free(&bytes);
  struct job_spec spec;
  read_spec(L, 1, &spec);
  bool top;
  struct task *t = running(L, &top);
  if (top) {
    /* A declaration: kept until the generation goes live. */
    lua_pushboolean(L, 1);
    lua_setfield(L, 1, "declared");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &declarations_key);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &declarations_key);
    }
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pushstring(L, spec.id);
    return 1;
  }
  struct script_env *env = env_of(L);
  if (!t) return luaL_error(L, "tghost.jobs: call it from a handler, a job or "
                               "the script's top level");
  t = task_check_can_wait(L, env->sched, "tghost.jobs");
  struct jobs_wait *w = xcalloc(1, sizeof *w);
  w->task = t;
  jobsched_put(env->jobs, &spec, on_put, w);
  return task_wait(L, t, &put_wait_ops, w);
}

static int push_cancel(lua_State *co, void *data) {
  struct jobs_wait *w = data;
  int n = 0;
  if (co) {
    if (w->error) {
      lua_pushboolean(co, 0);
      lua_pushfstring(co, "tghost.jobs.cancel: %s", w->error);
    } else {
      lua_pushboolean(co, 1);
      lua_pushboolean(co, w->found);
    }
    n = 2;
  }
  wait_free(w);
  return n;
}

static void on_cancel(void *ud, bool found, const char *error) {
  struct jobs_wait *w = ud;
  w->found = found;
  if (error) w->error = xstrdup(error);
  wake(w, push_cancel);
}

/* cancel(id) -> found (nothing from the top level: a declaration) */
static int l_cancel(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  bool top;
  struct task *t = running(L, &top);
  if (top) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &declarations_key);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &declarations_key);
    }
    lua_createtable(L, 0, 1);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "cancel");
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    return 0;
  }
  struct script_env *env = env_of(L);
  if (!t) return luaL_error(L, "tghost.jobs.cancel: call it from a handler, "
                               "a job or the script's top level");
  t = task_check_can_wait(L, env->sched, "tghost.jobs.cancel");
  struct jobs_wait *w = xcalloc(1, sizeof *w);
  w->task = t;
  jobsched_cancel(env->jobs, id, on_cancel, w);
  return task_wait(L, t, &put_wait_ops, w);
}

static int push_list(lua_State *co, void *data) {
  struct jobs_wait *w = data;
  int n = 0;
  if (co) {
    if (w->error) {
      lua_pushboolean(co, 0);
      lua_pushfstring(co, "tghost.jobs.list: %s", w->error);
    } else {
      luaL_checkstack(co, 8, "job list");
      lua_pushboolean(co, 1);
      lua_createtable(co, (int)w->n, 0);
      for (size_t i = 0; i < w->n; i++) {
        const struct job_info *ji = &w->infos[i];
        lua_createtable(co, 0, 7);
        lua_pushstring(co, ji->id);
        lua_setfield(co, -2, "id");
        lua_pushstring(co, ji->name);
        lua_setfield(co, -2, "name");
        struct buf err = BUF_INIT;
        if (ji->data_len == 0 ||
            storecodec_decode(co, ji->data, ji->data_len, &err) != 0)
          lua_pushnil(co);
        buf_free(&err);
        lua_setfield(co, -2, "data");
        lua_pushnumber(co, (lua_Number)ji->next_ms / 1000.0);
        lua_setfield(co, -2, "next");
        lua_pushstring(co, ji->schedule);
        lua_setfield(co, -2, "schedule");
        lua_pushboolean(co, ji->running);
        lua_setfield(co, -2, "running");
        lua_pushinteger(co, ji->attempts);
        lua_setfield(co, -2, "attempts");
        lua_rawseti(co, -2, (lua_Integer)i + 1);
      }
    }
    n = 2;
  }
  wait_free(w);
  return n;
}

static void on_list(void *ud, const struct job_info *infos, size_t n,
                    const char *error) {
  struct jobs_wait *w = ud;
  if (error) {
    w->error = xstrdup(error);
  } else {
    w->infos = xcalloc(n ? n : 1, sizeof *w->infos);
    for (size_t i = 0; i < n; i++) {
      struct job_info *ji = &w->infos[i];
      *ji = infos[i];
      ji->id = xstrdup(infos[i].id);
      ji->name = xstrdup(infos[i].name);
      ji->schedule = xstrdup(infos[i].schedule);
      ji->data = xmalloc(infos[i].data_len + 1);
      memcpy(ji->data, infos[i].data, infos[i].data_len);
      ji->data[infos[i].data_len] = '\0';
    }
    w->n = n;
  }
  wake(w, push_list);
}

/* list(prefix, limit) -> { info, ... } */
static int l_list(lua_State *L) {
  const char *prefix = luaL_optstring(L, 1, "");
  lua_Integer limit = luaL_optinteger(L, 2, 1000);
  bool top;
  struct task *t = running(L, &top);
  if (top)
    return luaL_error(L, "tghost.jobs.list: the jobs are not known at the "
                         "top level (their store opens when the bot starts); "
                         "list them in a handler or a job");
  struct script_env *env = env_of(L);
  if (!t) return luaL_error(L, "tghost.jobs.list: call it from a handler or "
                               "a job");
  t = task_check_can_wait(L, env->sched, "tghost.jobs.list");
  struct jobs_wait *w = xcalloc(1, sizeof *w);
  w->task = t;
  jobsched_list(env->jobs, prefix, limit > 0 ? (size_t)limit : 1000, on_list,
                w);
  return task_wait(L, t, &put_wait_ops, w);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)jobsched_now_ms(env_of(L)->jobs) / 1000.0);
  return 1;
}

/* Whether the clock can move (the sandbox's :wait). */
static int l_clock_moves(lua_State *L) {
  lua_pushboolean(L, env_of(L)->sandbox);
  return 1;
}

static int l_context(lua_State *L) {
  struct task *t = sched_running(env_of(L)->sched);
  if (!t) return 0;
  switch (job_kind(task_job(t))) {
    case JOB_LOAD:
      lua_pushliteral(L, "top");
      break;
    case JOB_UPDATE:
      lua_pushliteral(L, "handler");
      break;
    case JOB_SCHEDULED:
      lua_pushliteral(L, "job");
      break;
    default:
      lua_pushliteral(L, "task");
      break;
  }
  return 1;
}

int luaopen_tghost_jobscore(lua_State *L) {
  static const luaL_Reg fns[] = {{"put", l_put},         {"cancel", l_cancel},
                                 {"list", l_list},       {"now", l_now},
                                 {"context", l_context},
                                 {"clock_moves", l_clock_moves},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/* --- going live ---------------------------------------------------------------- */

struct declared {
  char *what;
  int gen;
};

static void on_declared_put(void *ud, const char *id, const char *error) {
  struct declared *d = ud;
  if (error && error != jobsched_exiting) {
    struct log_fields f = {d->gen, -1};
    log_msg(LOG_ERROR, &f, "tghost.jobs: the top level's job %s was not "
            "scheduled: %s", d->what, error);
  }
  free(d->what);
  free(d);
}

static void on_declared_cancel(void *ud, bool found, const char *error) {
  on_declared_put(ud, NULL, error);
}

/* Runs with the declarations list at index 1 of a fresh stack. */
static int apply_declarations(lua_State *L) {
  struct generation *g = gen_of(L);
  struct jobsched *s = g->env->jobs;
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    int idx = lua_gettop(L);
    struct declared *d = xcalloc(1, sizeof *d);
    d->gen = g->owner.id;
    const char *cancel = opt_string(L, idx, "cancel");
    if (cancel) {
      d->what = xstrdup(cancel);
      jobsched_cancel(s, cancel, on_declared_cancel, d);
    } else {
      struct job_spec spec;
      read_spec(L, idx, &spec);
      d->what = xstrdup(spec.id ? spec.id : spec.name);
      jobsched_put(s, &spec, on_declared_put, d);
    }
    lua_settop(L, idx - 1);
  }
  return 0;
}

void luajobs_go_live(struct generation *g) {
  lua_State *L = g->owner.L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, apply_declarations);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &declarations_key);
  if (lua_isnil(L, -1)) {
    lua_settop(L, top);
    return;
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &declarations_key);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    struct log_fields f = {g->owner.id, -1};
    log_msg(LOG_ERROR, &f, "tghost.jobs: the top level's jobs: %s",
            lua_tostring(L, -1));
  }
  lua_settop(L, top);
}

void luajobs_push_run(lua_State *L, const struct job_run_info *run) {
  luaL_checkstack(L, 4, "job run");
  lua_createtable(L, 0, 6);
  lua_pushstring(L, run->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, run->name);
  lua_setfield(L, -2, "name");
  struct buf err = BUF_INIT;
  if (run->data_len == 0) {
    lua_pushnil(L);
  } else if (storecodec_decode(L, run->data, run->data_len, &err) != 0) {
    log_warn("job %s (id %s): its data cannot be read (%s); it runs with "
             "data = nil", run->name, run->id, err.data);
    lua_pushnil(L);
  }
  buf_free(&err);
  lua_setfield(L, -2, "data");
  lua_pushnumber(L, (lua_Number)run->scheduled_ms / 1000.0);
  lua_setfield(L, -2, "scheduledAt");
  lua_pushinteger(L, run->attempt);
  lua_setfield(L, -2, "attempt");
  lua_pushboolean(L, run->redelivered);
  lua_setfield(L, -2, "redelivered");
}
