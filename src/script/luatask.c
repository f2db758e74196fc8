#include "script/luatask.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "script/luabind.h"
#include "sched/task.h"

#define TASK_HANDLE_MT "tghost.Task"
#define SIGNAL_MT "tghost.TaskSignal"

enum child_state { CHILD_RUNNING, CHILD_DONE, CHILD_FAILED, CHILD_CANCELLED };

/* A child task as its handle and its waiters see it. Shared by the handle
 * (until collected), the running task (until it ends) and each waiter. */
struct child {
  int refs;
  struct generation *gen;        /* outlives every holder (see child_unref) */
  enum child_state state;
  int results_ref;               /* {n=, ok, ...} once ended */
  char *failure;                 /* what to log if nobody looks at it */
  bool observed;
  struct task *task;             /* while it runs */
  struct log_fields fields;
  struct qlist waiters;
};

struct join_wait {
  struct child *child;
  struct task *task;
  struct qnode node;
};

/* The generation cannot be freed while a holder exists: the handle lives
 * in its Lua state (and is collected at the latest by lua_close), the task
 * and the waiters in its jobs. So the registry is always there. */
static void child_unref(struct child *c) {
  if (--c->refs > 0) return;
  if (c->state == CHILD_FAILED && !c->observed)
    log_msg(LOG_ERROR, &c->fields,
            "a task started with tghost.spawn failed and nobody waited for "
            "it: %s", c->failure ? c->failure : "(no message)");
  if (c->results_ref != LUA_NOREF)
    luaL_unref(c->gen->owner.L, LUA_REGISTRYINDEX, c->results_ref);
  free(c->failure);
  free(c);
}

static int join_push(lua_State *co, void *data) {
  struct join_wait *w = data;
  int n = 0;
  if (co) {
    lua_pushboolean(co, 1);
    lua_rawgeti(co, LUA_REGISTRYINDEX, w->child->results_ref);
    n = 2;
  }
  child_unref(w->child);
  free(w);
  return n;
}

/* Stores {n=2, false, message} as the results (a failure the task could
 * not report itself). */
static void store_failure(struct child *c, const char *message) {
  lua_State *L = c->gen->owner.L;
  lua_createtable(L, 2, 1);
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, message);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, 2);
  lua_setfield(L, -2, "n");
  c->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void on_child_end(struct task *t, enum task_end_kind kind,
                         lua_State *co, int nres, const char *message,
                         void *ud) {
  struct child *c = ud;
  c->task = NULL;
  if (kind == TASK_RETURNED) {
    /* The Lua wrapper returns true, results... or false, error, text. */
    luaL_checkstack(co, 4, "task results");
    int base = lua_gettop(co) - nres;
    bool ok = nres >= 1 && lua_toboolean(co, base + 1);
    c->state = ok ? CHILD_DONE : CHILD_FAILED;
    if (!ok && nres >= 3 && lua_type(co, base + 3) == LUA_TSTRING)
      c->failure = xstrdup(lua_tostring(co, base + 3));
    int n = ok ? nres : (nres < 2 ? nres : 2);
    lua_createtable(co, n, 1);
    for (int i = 1; i <= n; i++) {
      lua_pushvalue(co, base + i);
      lua_rawseti(co, -2, i);
    }
    lua_pushinteger(co, n);
    lua_setfield(co, -2, "n");
    c->results_ref = luaL_ref(co, LUA_REGISTRYINDEX);
  } else {
    c->state = kind == TASK_FAILED ? CHILD_FAILED : CHILD_CANCELLED;
    if (kind == TASK_FAILED) c->failure = xstrdup(message);
    store_failure(c, kind == TASK_FAILED
                         ? message
                         : (message && *message ? message : "cancelled"));
  }
  struct qnode *n;
  while ((n = qlist_pop_front(&c->waiters))) {
    struct join_wait *w = qlist_entry(n, struct join_wait, node);
    task_wake(w->task, join_push, w);
  }
  child_unref(c);   /* the task's reference */
}

static struct child *check_handle(lua_State *L, int idx) {
  struct child **p = luaL_checkudata(L, idx, TASK_HANDLE_MT);
  return *p;
}

static int handle_gc(lua_State *L) {
  struct child **p = luaL_checkudata(L, 1, TASK_HANDLE_MT);
  if (*p) child_unref(*p);
  *p = NULL;
  return 0;
}

static int handle_tostring(lua_State *L) {
  lua_pushfstring(L, "tghost.Task (%p)", lua_topointer(L, 1));
  return 1;
}

static void on_background_end(struct job *job, void *ud) {
  /* A failure was logged by the task's own end (nobody waited) or
   * raised in its waiter; a cancel is the bot stopping or a reload. */
}

/* task.spawn(wrapper, fn, args...) -> handle. The task runs wrapper(fn,
 * args...) in the running task's job. */
static int l_spawn(lua_State *L) {
  struct script_env *env = env_of(L);
  struct task *parent = sched_running(env->sched);
  if (!parent)
    return luaL_error(L, "tghost.spawn can only be called from a handler or "
                         "the script's top level");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct job *job = task_job(parent);
  if (job_kind(job) == JOB_LOAD || job_kind(job) == JOB_BACKGROUND) {
    /* From the top level (or a task it started): background work of its
     * own, which the top level does not wait for. */
    struct generation *g = gen_of_job(job);
    struct job_params p = {JOB_BACKGROUND, -1, NULL, 0, on_background_end,
                           NULL};
    job = job_new(env->sched, &g->owner, &p);
  }
  struct child *c = xcalloc(1, sizeof *c);
  c->refs = 2;   /* the handle and the task */
  c->gen = gen_of_job(job);
  c->state = CHILD_RUNNING;
  c->results_ref = LUA_NOREF;
  c->fields = job_log_fields(job);
  qlist_init(&c->waiters);
  int nargs = lua_gettop(L) - 1;
  c->task = job_spawn(job, L, nargs);
  task_set_on_end(c->task, on_child_end, c);
  struct child **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = c;
  luaL_setmetatable(L, TASK_HANDLE_MT);
  return 1;
}

static void join_cancel(void *data) {
  struct join_wait *w = data;
  qlist_remove(&w->child->waiters, &w->node);
  child_unref(w->child);
  free(w);
}

static const struct task_wait_ops join_wait_ops = {"tghost.wait",
                                                   join_cancel};

/* task.join(handle) -> {n=, ok, ...}: waits until the task has ended. */
static int l_join(lua_State *L) {
  struct script_env *env = env_of(L);
  struct child *c = check_handle(L, 1);
  if (c->state != CHILD_RUNNING) {
    c->observed = true;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->results_ref);
    return 1;
  }
  struct task *t = task_check_can_wait(L, env->sched, "tghost.wait");
  if (t == c->task) return luaL_error(L, "tghost.wait: a task cannot wait "
                                         "for itself");
  c->observed = true;
  struct join_wait *w = xcalloc(1, sizeof *w);
  w->child = c;
  w->task = t;
  c->refs++;
  qlist_push_back(&c->waiters, &w->node);
  return task_wait(L, t, &join_wait_ops, w);
}

/* task.status(handle) -> "running" | "done" | "failed" | "cancelled" */
static int l_status(lua_State *L) {
  static const char *const names[] = {"running", "done", "failed",
                                      "cancelled"};
  lua_pushstring(L, names[check_handle(L, 1)->state]);
  return 1;
}

static int l_is_handle(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, TASK_HANDLE_MT) != NULL);
  return 1;
}

/* --- signals ------------------------------------------------------------
 *
 * A wake-up one task gives another: sig:wait([seconds]) suspends until
 * sig:notify() (true) or the timeout (false); a notify with nobody waiting
 * is kept for the next wait. One waiter at a time. (ctx:replyStream's
 * sender waits on one for new text or its next turn.) */

struct task_signal {
  struct task *waiter;
  struct event *timer;
  bool pending;
};

static int push_true(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushboolean(co, 1);
  return 2;
}

static int push_false(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushboolean(co, 0);
  return 2;
}

static void signal_cancel(void *data) {
  struct task_signal *sig = data;
  sig->waiter = NULL;
  if (sig->timer) evtimer_del(sig->timer);
}

static const struct task_wait_ops signal_wait_ops = {"signal:wait",
                                                     signal_cancel};

static void signal_timeout(evutil_socket_t fd, short what, void *arg) {
  struct task_signal *sig = arg;
  struct task *t = sig->waiter;
  sig->waiter = NULL;
  if (t) task_wake(t, push_false, sig);
}

static int l_signal(lua_State *L) {
  struct task_signal *sig = lua_newuserdatauv(L, sizeof *sig, 0);
  memset(sig, 0, sizeof *sig);
  luaL_setmetatable(L, SIGNAL_MT);
  return 1;
}

static int signal_wait(lua_State *L) {
  struct script_env *env = env_of(L);
  struct task_signal *sig = luaL_checkudata(L, 1, SIGNAL_MT);
  double secs = luaL_optnumber(L, 2, -1);
  if (sig->pending) {
    sig->pending = false;
    lua_pushboolean(L, 1);
    return 1;
  }
  struct task *t = task_check_can_wait(L, env->sched, "signal:wait");
  if (sig->waiter) return luaL_error(L, "signal:wait: another task waits");
  if (secs >= 0) {
    if (!sig->timer) sig->timer = evtimer_new(env->base, signal_timeout, sig);
    long usec = (long)(secs * 1e6);
    struct timeval tv = {usec / 1000000, usec % 1000000};
    event_base_update_cache_time(env->base);
    evtimer_add(sig->timer, &tv);
  }
  sig->waiter = t;
  lua_settop(L, 1);   /* the signal stays alive while it is waited on */
  return task_wait(L, t, &signal_wait_ops, sig);
}

static int signal_notify(lua_State *L) {
  struct task_signal *sig = luaL_checkudata(L, 1, SIGNAL_MT);
  struct task *t = sig->waiter;
  if (!t) {
    sig->pending = true;
    return 0;
  }
  sig->waiter = NULL;
  if (sig->timer) evtimer_del(sig->timer);
  task_wake(t, push_true, sig);
  return 0;
}

static int signal_gc(lua_State *L) {
  struct task_signal *sig = luaL_checkudata(L, 1, SIGNAL_MT);
  if (sig->timer) event_free(sig->timer);
  sig->timer = NULL;
  return 0;
}

int luaopen_tghost_task(lua_State *L) {
  static const luaL_Reg fns[] = {{"spawn", l_spawn},
                                 {"join", l_join},
                                 {"status", l_status},
                                 {"is_handle", l_is_handle},
                                 {"signal", l_signal},
                                 {NULL, NULL}};
  if (luaL_newmetatable(L, SIGNAL_MT)) {
    static const luaL_Reg sig_methods[] = {{"wait", signal_wait},
                                           {"notify", signal_notify},
                                           {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, sig_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, signal_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  /* The handle's methods: filled in by lua/tasks.lua. */
  lua_newtable(L);
  if (luaL_newmetatable(L, TASK_HANDLE_MT)) {
    lua_pushcfunction(L, handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, handle_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, TASK_HANDLE_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_setfield(L, -2, "methods");
  return 1;
}
