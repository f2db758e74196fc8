#include "luacore.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "host.h"
#include "log.h"
#include "luajson.h"
#include "runner.h"
#include "task.h"

static struct host *host_of(lua_State *L) { return gen_of(L)->host; }

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

static struct log_fields current_fields(lua_State *L) {
  struct host *h = host_of(L);
  struct task *t = sched_running(&h->sched);
  if (t) return job_log_fields(task_job(t));
  struct log_fields f = {gen_of(L)->id, -1};
  return f;
}

static int l_log(lua_State *L) {
  static const char *const names[] = {"debug", "info", "warn", "error", NULL};
  int level = luaL_checkoption(L, 1, NULL, names);
  const char *msg = luaL_checkstring(L, 2);
  struct log_fields f = current_fields(L);
  log_msg((enum log_level)level, &f, "%s", msg);
  return 0;
}

/* An error no bot.catch handled (reported by lua/runtime.lua). */
static int l_report_error(lua_State *L) {
  const char *msg = luaL_checkstring(L, 1);
  struct log_fields f = current_fields(L);
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
  fwrite(line.data, 1, line.len, stdout);
  fflush(stdout);
  buf_free(&line);
  return 0;
}

/* --- the runner --------------------------------------------------------- */

/* The name a script used for a flattened option (see lua/options.lua). */
static const char *option_name(const char *flat) {
  static const char *const names[][2] = {
      {"concurrency", "sink.concurrency"},
      {"timeout_ms", "sink.timeout.milliseconds"},
      {"fetch_timeout", "runner.fetch.timeout"},
      {"max_retry_ms", "runner.maxRetryTime"},
      {"max_delay_ms", "source.maxDelayMilliseconds"},
      {"speed_traffic_balance", "source.speedTrafficBalance"},
      {"max_waiting", "sink.maxWaiting"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(names[i][0], flat) == 0) return names[i][1];
  return flat;
}

/* lua_pushfstring knows neither %ld nor %g. */
static void range_error(lua_State *L, const char *name, double min,
                        double max) {
  char msg[160];
  snprintf(msg, sizeof msg, "run(): option %s must be between %g and %g",
           option_name(name), min, max);
  luaL_error(L, "%s", msg);
}

static long opt_integer(lua_State *L, int t, const char *name, long def,
                        long min, long max) {
  long v = def;
  if (lua_getfield(L, t, name) != LUA_TNIL) {
    if (!lua_isnumber(L, -1))
      luaL_error(L, "run(): option %s must be a number", option_name(name));
    lua_Number n = lua_tonumber(L, -1);
    if (n < (lua_Number)min || n > (lua_Number)max || isnan(n))
      range_error(L, name, (double)min, (double)max);
    v = (long)n;
  }
  lua_pop(L, 1);
  return v;
}

static double opt_number(lua_State *L, int t, const char *name, double def,
                         double min, double max) {
  double v = def;
  if (lua_getfield(L, t, name) != LUA_TNIL) {
    if (!lua_isnumber(L, -1))
      luaL_error(L, "run(): option %s must be a number", option_name(name));
    v = lua_tonumber(L, -1);
    if (v < min || v > max || isnan(v))
      range_error(L, name, min, max);
  }
  lua_pop(L, 1);
  return v;
}

/* core.run(flat) with the table lua/options.lua produced. */
static int l_run(lua_State *L) {
  struct generation *g = gen_of(L);
  struct host *h = g->host;
  luaL_checktype(L, 1, LUA_TTABLE);
  struct task *t = sched_running(&h->sched);
  if (!t || task_job(t)->kind != JOB_LOAD)
    return luaL_error(L, "run() and bot.start() belong at the script's top "
                         "level, not inside a handler");
  if (g->run_called)
    return luaL_error(L, "run() or bot.start() was already called");

  struct run_options o;
  run_options_init(&o);
  lua_getfield(L, 1, "sink");
  const char *sink = lua_tostring(L, -1);
  if (sink && strcmp(sink, "sequential") == 0) o.sink = SINK_SEQUENTIAL;
  else if (sink && strcmp(sink, "batch") == 0) o.sink = SINK_BATCH;
  else o.sink = SINK_CONCURRENT;
  lua_pop(L, 1);
  o.concurrency = (int)opt_integer(L, 1, "concurrency", o.concurrency, 1,
                                   1000000);
  o.timeout_ms = opt_integer(L, 1, "timeout_ms", 0, 0, 1L << 40);
  o.fetch_timeout_s = (int)opt_integer(L, 1, "fetch_timeout",
                                       o.fetch_timeout_s, 0, 3600);
  o.max_retry_ms = opt_integer(L, 1, "max_retry_ms", o.max_retry_ms, 0,
                               1L << 45);
  o.max_delay_ms = opt_integer(L, 1, "max_delay_ms", o.max_delay_ms, 0,
                               1L << 30);
  o.speed_traffic_balance = opt_number(L, 1, "speed_traffic_balance", 0, 0, 1);
  o.max_waiting = opt_integer(L, 1, "max_waiting", -1, 0, 100000000);
  lua_getfield(L, 1, "silent");
  o.silent = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "retry_interval");
  if (lua_isnumber(L, -1)) {
    o.retry = RETRY_FIXED;
    o.retry_ms = (long)lua_tonumber(L, -1);
    if (o.retry_ms < 0) return luaL_error(L, "run(): retryInterval must be >= 0");
  } else if (lua_isstring(L, -1) &&
             strcmp(lua_tostring(L, -1), "quadratic") == 0) {
    o.retry = RETRY_QUADRATIC;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "allowed_updates") == LUA_TTABLE) {
    struct buf json = BUF_INIT, err = BUF_INIT;
    if (luajson_encode(L, -1, &json, &err) != 0) {
      lua_pushfstring(L, "run(): allowed_updates: %s", err.data);
      buf_free(&json);
      buf_free(&err);
      return lua_error(L);
    }
    o.allowed_updates_json = buf_steal(&json, NULL);
  }
  lua_pop(L, 1);
  run_options_free(&g->run_opts);
  g->run_opts = o;
  g->run_called = true;
  /* Whether this call starts the bot (no runner yet) or a reloaded script
   * calls it again. */
  lua_pushboolean(L, h->runner == NULL);
  return 1;
}

static void stop_wait_cancel(void *data) {
  struct task *t = data;
  struct host *h = task_job(t)->gen->host;
  if (h->runner) runner_forget_waiter(h->runner, t);
}
static const struct task_wait_ops stop_wait_ops = {"runner stop",
                                                   stop_wait_cancel};

/* core.stop(): graceful stop; inside a handler it returns once everything
 * else in flight is done. */
static int l_stop(lua_State *L) {
  struct host *h = host_of(L);
  if (!h->runner) {
    /* Stopped before it started: the host will not start it. */
    gen_of(L)->run_called = false;
    return 0;
  }
  struct task *t = sched_running(&h->sched);
  if (!t || !lua_isyieldable(L) || !runner_is_running(h->runner)) {
    runner_stop(h->runner, NULL);
    return 0;
  }
  runner_stop(h->runner, t);
  return task_wait(L, t, &stop_wait_ops, t);
}

/* True from run() on (the runner itself starts once the top level has
 * finished) until the runner stops. */
static int l_is_running(lua_State *L) {
  struct host *h = host_of(L);
  lua_pushboolean(L, h->runner ? runner_is_running(h->runner)
                               : gen_of(L)->run_called);
  return 1;
}

/* core.wait_stopped(): returns once the runner has stopped (at once if
 * there is none); see runner_wait_stopped. */
static int l_wait_stopped(lua_State *L) {
  struct host *h = host_of(L);
  if (!h->runner) {
    if (gen_of(L)->run_called && !h->cfg->check)
      return luaL_error(L, "handle:task(): the bot starts when the script's "
                           "top level has finished, so the top level cannot "
                           "wait for it to stop; wait inside a handler");
    return 0;
  }
  if (runner_finished(h->runner)) return 0;
  struct task *t = task_check_can_wait(L, &h->sched, "handle:task()");
  runner_wait_stopped(h->runner, t);
  return task_wait(L, t, &stop_wait_ops, t);
}

static int l_size(lua_State *L) {
  struct host *h = host_of(L);
  lua_pushinteger(L, h->runner ? (lua_Integer)runner_size(h->runner) : 0);
  return 1;
}

/* --- runtime plumbing --------------------------------------------------- */

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

/* core.current() -> update_id or nil, generation id */
static int l_current(lua_State *L) {
  struct log_fields f = current_fields(L);
  if (f.update_id >= 0) lua_pushinteger(L, (lua_Integer)f.update_id);
  else lua_pushnil(L);
  lua_pushinteger(L, f.gen);
  return 2;
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
      {"print", l_print},
      {"run", l_run},
      {"stop", l_stop},
      {"is_running", l_is_running},
      {"wait_stopped", l_wait_stopped},
      {"size", l_size},
      {"set_runtime", l_set_runtime},
      {"bot_info", l_bot_info},
      {"sentinel", l_sentinel},
      {"now", l_now},
      {"current", l_current},
      {"check_mode", l_check_mode},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
