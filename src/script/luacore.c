#include "script/luacore.h"

#include <lauxlib.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "script/luabind.h"
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
  struct host *h = host_of(L);
  lua_Number secs = luaL_checknumber(L, 1);
  luaL_argcheck(L, secs >= 0 && secs < 1e9 && !isnan(secs), 1,
                "seconds must be a non-negative number");
  struct task *t = task_check_can_wait(L, &h->sched, "tghost.sleep");
  struct sleep_wait *w = xcalloc(1, sizeof *w);
  w->task = t;
  w->timer = evtimer_new(h->base, sleep_fired, w);
  long usec = (long)(secs * 1e6);
  struct timeval tv = {usec / 1000000, usec % 1000000};
  /* libevent measures from the time cached when this loop pass began; a
   * pass that resumed many handlers would make the sleep short by that
   * much. */
  event_base_update_cache_time(h->base);
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
  struct task *t = sched_running(&host_of(L)->sched);
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

/* print() goes to stdout like Lua's, but through the token redactor. */
static int l_print(lua_State *L) {
  int n = lua_gettop(L);
  struct buf line = BUF_INIT;
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = luaL_tolstring(L, i, &len);
    if (i > 1) buf_append_char(&line, '\t');
    buf_append(&line, s, len);
    lua_pop(L, 1);
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
  const char *token = host_of(L)->cfg->token;
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
  struct host *h = host_of(L);
  if (!h->bot_info_json ||
      luajson_decode(L, h->bot_info_json, h->bot_info_len, NULL) != 0)
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

/* core.wallclock() -> seconds since the epoch, with a fraction: for times
 * that must mean the same in another process (a durable conversation's
 * deadline). */
static int l_wallclock(lua_State *L) {
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
  struct task *t = sched_running(&host_of(L)->sched);
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
  struct host *h = host_of(L);
  struct task *t = sched_running(&h->sched);
  if (t && job_kind(task_job(t)) != JOB_LOAD)
    lua_pushliteral(L, "a handler cannot read the terminal: the whole bot "
                       "would stop while it waits for a line");
  else if (h->cfg->sandbox)
    lua_pushliteral(L, "in the sandbox the terminal is the chat, and the bot "
                       "cannot read it");
  else
    lua_pushnil(L);
  return 1;
}

/* core.watches_unhandled(): whether someone wants to hear of updates no
 * handler took (so the runtime watches for them only then). */
static int l_watches_unhandled(lua_State *L) {
  lua_pushboolean(L, host_of(L)->on_unhandled != NULL);
  return 1;
}

/* core.unhandled(type): the running update went through every middleware
 * with no handler taking it. */
static int l_unhandled(lua_State *L) {
  struct host *h = host_of(L);
  const char *type = luaL_checkstring(L, 1);
  struct log_fields f = luabind_fields(L);
  if (h->on_unhandled) h->on_unhandled(h->on_unhandled_ud, f.update_id, type);
  return 0;
}

static int l_check_mode(lua_State *L) {
  lua_pushboolean(L, host_of(L)->cfg->check);
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
      {"current", l_current},
      {"job_local", l_job_local},
      {"wallclock", l_wallclock},
      {"check_mode", l_check_mode},
      {"stdin_refusal", l_stdin_refusal},
      {"watches_unhandled", l_watches_unhandled},
      {"unhandled", l_unhandled},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
