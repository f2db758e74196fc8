#include "script/luacore.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "pipeline/update.h"
#include "script/luabind.h"
#include "script/deps.h"
#include "script/luajson.h"
#include "sched/task.h"

/* --- sleep -------------------------------------------------------------- */

struct sleep_wait {
  struct event *timer;
  struct task *task;
};

static void sleep_fired(evutil_socket_t fd, short what, void *arg) {
  struct sleep_wait *w = arg;
  struct task *t = w->task;
  event_free(w->timer);
  free(w);
  task_wake(t, task_push_nothing, NULL);
}

static void sleep_cancel(void *data) {
  struct sleep_wait *w = data;
  event_free(w->timer);
  free(w);
}

static const struct task_wait_ops sleep_wait_ops = {"sleep", sleep_cancel};

static int l_sleep(lua_State *L) {
  struct script_env *env = env_of(L);
  lua_Number secs = luaL_checknumber(L, 1);
  luaL_argcheck(L, secs >= 0 && secs < 1e9 && !isnan(secs), 1,
                "seconds must be a non-negative number");
  struct task *t = task_check_can_wait(L, env->sched, "tghost.sleep");
  struct sleep_wait *w = xcalloc(1, sizeof *w);
  w->task = t;
  w->timer = evtimer_new(env->base, sleep_fired, w);
  long usec = (long)(secs * 1e6);
  struct timeval tv = {usec / 1000000, usec % 1000000};
  /* libevent measures from the time cached when this loop pass began; a
   * pass that resumed many handlers would make the sleep short by that
   * much. */
  event_base_update_cache_time(env->base);
  evtimer_add(w->timer, &tv);
  lua_settop(L, 0);
  return task_wait(L, t, &sleep_wait_ops, w);
}

/* --- logging and output ------------------------------------------------- */

static int l_log(lua_State *L) {
  static const char *const names[] = {"debug", "info", "warn", "error", NULL};
  int level = luaL_checkoption(L, 1, NULL, names);
  const char *msg = luaL_checkstring(L, 2);
  struct log_fields f = luabind_fields(L);
  log_msg((enum log_level)level, &f, "%s", msg);
  return 0;
}

/* core.failed(message): the running update's handler failed, and that was
 * reported (to bot.catch or the log): its job ends as failed (the journal
 * records it so). */
static int l_failed(lua_State *L) {
  const char *msg = luaL_optstring(L, 1, "failed");
  struct task *t = sched_running(env_of(L)->sched);
  if (t) job_mark_failed(task_job(t), msg);
  return 0;
}

/* An error no bot.catch handled (reported by lua/runtime.lua). */
static int l_report_error(lua_State *L) {
  const char *msg = luaL_checkstring(L, 1);
  struct log_fields f = luabind_fields(L);
  log_msg(LOG_ERROR, &f, "%s", msg);
  return 0;
}

/* print() goes to stdout like Lua's, but through the token redactor. The
 * arguments become strings first (a __tostring may raise), and only then
 * is the line built in C memory, which nothing can raise past. */
static int l_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkstack(L, n, "too many arguments to print");
  for (int i = 1; i <= n; i++) luaL_tolstring(L, i, NULL);
  struct buf line = BUF_INIT;
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, n + i, &len);
    if (i > 1) buf_append_char(&line, '\t');
    buf_append(&line, s, len);
  }
  buf_append_char(&line, '\n');
  log_redact(&line);
  log_screen_before(false);
  fwrite(line.data, 1, line.len, stdout);
  fflush(stdout);
  log_screen_after(false);
  buf_free(&line);
  return 0;
}

/* --- runtime plumbing --------------------------------------------------- */

/* core.redact(s): s with the bot token (in any of its forms) removed. */
static int l_redact(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char *clean = log_redacted_copy(s, len);
  lua_pushstring(L, clean);
  free(clean);
  return 1;
}

/* core.token(): the bot token, for the rare script that needs it (it is
 * no longer in the environment). */
static int l_token(lua_State *L) {
  const char *token = env_of(L)->token;
  if (token) lua_pushstring(L, token);
  else lua_pushnil(L);
  return 1;
}

static int l_set_runtime(lua_State *L) {
  struct generation *g = gen_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (g->runtime_ref != LUA_NOREF)
    luaL_unref(L, LUA_REGISTRYINDEX, g->runtime_ref);
  lua_settop(L, 1);
  g->runtime_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int l_bot_info(lua_State *L) {
  struct script_env *env = env_of(L);
  size_t len;
  const char *identity = env->host->identity(env->host_ud, &len);
  if (!identity || luajson_decode(L, identity, len, NULL) != 0)
    lua_pushnil(L);
  return 1;
}

static int l_sentinel(lua_State *L) {
  lua_pushlightuserdata(L, task_yield_sentinel());
  return 1;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.time() -> seconds since the epoch (the wall clock, sub-second):
 * for what processes must agree on (rate-limit windows), unlike now(). */
static int l_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* --- per-job Lua data -------------------------------------------------- */

/* A table that lives as long as its job: what Lua modules keep for one
 * update across its tasks and waits (the conversation's wait hooks). */
struct job_local {
  struct job_cleanup cleanup;
  int ref;
};

static void on_job_local_end(struct job *job, struct job_cleanup *cl) {
  struct job_local *jl =
      (struct job_local *)((char *)cl - offsetof(struct job_local, cleanup));
  luaL_unref(job_owner_of(job)->L, LUA_REGISTRYINDEX, jl->ref);
  free(jl);
}

/* core.job_local([create]) -> the running job's table, made when create is
 * true; nil outside a job (or none made yet). */
static int l_job_local(lua_State *L) {
  struct task *t = sched_running(env_of(L)->sched);
  if (!t) {
    lua_pushnil(L);
    return 1;
  }
  struct job *job = task_job(t);
  struct job_cleanup *cl = job_find_cleanup(job, on_job_local_end);
  if (cl) {
    struct job_local *jl =
        (struct job_local *)((char *)cl - offsetof(struct job_local, cleanup));
    lua_rawgeti(L, LUA_REGISTRYINDEX, jl->ref);
    return 1;
  }
  if (!lua_toboolean(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  struct job_local *jl = xcalloc(1, sizeof *jl);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  jl->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  jl->cleanup.fn = on_job_local_end;
  job_add_cleanup(job, &jl->cleanup);
  return 1;
}

/* core.current() -> update_id or nil, generation id */
static int l_current(lua_State *L) {
  struct log_fields f = luabind_fields(L);
  if (f.update_id >= 0) lua_pushinteger(L, (lua_Integer)f.update_id);
  else lua_pushnil(L);
  lua_pushinteger(L, f.gen);
  return 2;
}

/* core.stdin_refusal() -> nil when the running code may read the
 * terminal (a plain script's top level), or why not. Reading it blocks
 * the whole loop until a line comes; in the sandbox it is the chat. */
static int l_stdin_refusal(lua_State *L) {
  struct script_env *env = env_of(L);
  struct task *t = sched_running(env->sched);
  if (t && job_kind(task_job(t)) != JOB_LOAD)
    lua_pushliteral(L, "a handler cannot read the terminal: the whole bot "
                       "would stop while it waits for a line");
  else if (env->sandbox)
    lua_pushliteral(L, "in the sandbox the terminal is the chat, and the bot "
                       "cannot read it");
  else
    lua_pushnil(L);
  return 1;
}

/* core.watches_unhandled(): whether someone wants to hear of updates no
 * handler took (so the runtime watches for them only then). */
static int l_watches_unhandled(lua_State *L) {
  lua_pushboolean(L, env_of(L)->on_unhandled != NULL);
  return 1;
}

/* core.unhandled(type): the running update went through every middleware
 * with no handler taking it. */
static int l_unhandled(lua_State *L) {
  struct script_env *env = env_of(L);
  const char *type = luaL_checkstring(L, 1);
  struct log_fields f = luabind_fields(L);
  if (env->on_unhandled)
    env->on_unhandled(env->on_unhandled_ud, f.update_id, type);
  return 0;
}

/* --- bot.handleUpdate ---------------------------------------------------
 *
 * core.handle_update(json, id) runs one update through the bot as the
 * runner would (update_ops->start: the conversations first, then the whole
 * middleware in a job of its own, with its CPU and memory limits) and
 * suspends the caller until that job has ended. Returns "done", "failed"
 * (and the job's error), "cancelled" (and why), or "consumed" when a
 * waiting conversation took the update (no job of its own). */

struct handled_wait {
  struct task *waiter;   /* NULL once the waiter was cancelled */
  enum job_end end;
  char *error;
};

static int push_handled(lua_State *co, void *data) {
  struct handled_wait *w = data;
  int n = 0;
  if (co) {
    lua_pushboolean(co, 1);
    lua_pushstring(co, w->end == JOB_DONE     ? "done"
                       : w->end == JOB_FAILED ? "failed"
                                              : "cancelled");
    if (w->error) lua_pushstring(co, w->error);
    else lua_pushnil(co);
    n = 3;
  }
  free(w->error);
  free(w);
  return n;
}

static void handled_end(struct job *job, void *ud) {
  struct handled_wait *w = ud;
  if (!w->waiter) {
    free(w);
    return;
  }
  w->end = job_how_ended(job);
  w->error = job_error(job) ? xstrdup(job_error(job)) : NULL;
  task_wake(w->waiter, push_handled, w);
}

/* The caller went away (its job was cancelled): the update runs on. */
static void handled_cancel(void *data) {
  struct handled_wait *w = data;
  w->waiter = NULL;
}
static const struct task_wait_ops handled_wait_ops = {"bot.handleUpdate",
                                                      handled_cancel};

static int l_handle_update(lua_State *L) {
  struct script_env *env = env_of(L);
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  lua_Integer id = luaL_checkinteger(L, 2);
  struct task *t = task_check_can_wait(L, env->sched, "bot.handleUpdate");
  struct update_item *u = xcalloc(1, sizeof *u);
  u->id = (int64_t)id;
  u->json = xstrndup(json, len);
  u->len = len;
  struct handled_wait *w = xcalloc(1, sizeof *w);
  w->waiter = t;
  struct job *job =
      env->host->start_update(env->host_ud, &gen_of(L)->owner, u, handled_end,
                              w);
  update_item_free(u);
  if (!job) {
    free(w);
    lua_pushliteral(L, "consumed");
    return 1;
  }
  lua_settop(L, 0);
  return task_wait(L, t, &handled_wait_ops, w);
}

/* --- files the script reads besides its modules ----------------------- */

/* core.script_dir() -> the folder of the script (relative paths in the
 * script's files are read from there). */
static int l_script_dir(lua_State *L) {
  lua_pushstring(L, gen_of(L)->script_dir);
  return 1;
}

/* core.watch(path): hot reload watches path as it watches the script's
 * modules (i18n's locale files). */
static int l_watch(lua_State *L) {
  deps_add(&gen_of(L)->files, luaL_checkstring(L, 1));
  return 0;
}

/* core.list_dir(path) -> the names in a folder (sorted, without "." and
 * ".."), or nil and why. For loading at the script's top level only: it
 * reads the disk on the loop, as require does. */
static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int l_list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      names = xrealloc(names, cap * sizeof *names);
    }
    names[n++] = xstrdup(e->d_name);
  }
  closedir(d);
  if (n > 0) qsort(names, n, sizeof *names, name_cmp);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
    free(names[i]);
  }
  free(names);
  return 1;
}

static int l_check_mode(lua_State *L) {
  lua_pushboolean(L, env_of(L)->check);
  return 1;
}

/* core.cluster() -> whether tghost runs with --cluster (run()'s own
 * cluster option is the script's to see). */
static int l_cluster(lua_State *L) {
  lua_pushboolean(L, env_of(L)->cluster);
  return 1;
}

int luaopen_tghost_core(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"sleep", l_sleep},
      {"log", l_log},
      {"report_error", l_report_error},
      {"failed", l_failed},
      {"print", l_print},
      {"set_runtime", l_set_runtime},
      {"redact", l_redact},
      {"token", l_token},
      {"bot_info", l_bot_info},
      {"sentinel", l_sentinel},
      {"now", l_now},
      {"time", l_time},
      {"current", l_current},
      {"job_local", l_job_local},
      {"check_mode", l_check_mode},
      {"cluster", l_cluster},
      {"handle_update", l_handle_update},
      {"script_dir", l_script_dir},
      {"watch", l_watch},
      {"list_dir", l_list_dir},
      {"stdin_refusal", l_stdin_refusal},
      {"watches_unhandled", l_watches_unhandled},
      {"unhandled", l_unhandled},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
