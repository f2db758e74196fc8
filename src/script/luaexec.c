#include "script/luaexec.h"

#include <lauxlib.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "net/child.h"
#include "script/luabind.h"
#include "sched/task.h"

#define PROC_MT "tghost.Process"
#define MAX_ARGS 4096

struct proc_jobs;

struct lproc {
  struct child *c;                 /* NULL once released */
  struct task *waiter;
  struct proc_jobs *jobs;          /* the job that started it, while it lives */
  struct qnode job_node;
  struct event *timer;             /* the timeout */
  double timeout;
  bool timed_out;
};

struct proc_jobs {
  struct job_cleanup cleanup;
  struct qlist procs;
};

static void proc_wake(struct lproc *p);

/* Lets the child go: killed if it still runs, reaped by the table. */
static void proc_release(struct lproc *p) {
  if (p->c) {
    child_release(p->c);
    p->c = NULL;
  }
  if (p->timer) {
    event_free(p->timer);
    p->timer = NULL;
  }
  if (p->jobs) {
    qlist_remove(&p->jobs->procs, &p->job_node);
    p->jobs = NULL;
  }
  proc_wake(p);
}

static void on_job_end(struct job *job, struct job_cleanup *cl) {
  struct proc_jobs *pj = (struct proc_jobs *)cl;
  struct qnode *n;
  while ((n = qlist_front(&pj->procs)))
    proc_release(qlist_entry(n, struct lproc, job_node));
  free(pj);
}

static void attach_to_job(struct lproc *p, struct job *job) {
  struct proc_jobs *pj = (struct proc_jobs *)job_find_cleanup(job, on_job_end);
  if (!pj) {
    pj = xcalloc(1, sizeof *pj);
    pj->cleanup.fn = on_job_end;
    qlist_init(&pj->procs);
    job_add_cleanup(job, &pj->cleanup);
  }
  qlist_push_back(&pj->procs, &p->job_node);
  p->jobs = pj;
}

/* --- waking ------------------------------------------------------------- */

static int push_again(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushliteral(co, "again");
  return 2;
}

static void wait_cancel(void *data) {
  struct lproc *p = data;
  p->waiter = NULL;
}

static const struct task_wait_ops proc_wait_ops = {"tghost.exec", wait_cancel};

static void proc_wake(struct lproc *p) {
  struct task *t = p->waiter;
  if (!t) return;
  p->waiter = NULL;
  task_wake(t, push_again, p);
}

static void on_child(struct child *c, void *ud) { proc_wake(ud); }

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  struct lproc *p = arg;
  if (!p->c || child_exited(p->c)) return;
  p->timed_out = true;
  child_kill(p->c, SIGKILL);
}

/* --- spawn -------------------------------------------------------------- */

static struct child_table *children_of(lua_State *L) {
  struct script_env *env = env_of(L);
  return env->host->children(env->host_ud);
}

/* spawn(spec) -> process | nil, message */
static int l_spawn(lua_State *L) {
  struct script_env *senv = env_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Options are the string keys; the command is the list part. */
  static const char *const known[] = {"env", "cwd", "timeout", "stdin",
                                      "stdout", "stderr", "max_output", NULL};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TNUMBER) continue;
    bool ok = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; known[i] && !ok; i++)
        ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
    if (!ok)
      return luaL_error(L, "tghost.exec: unknown option %s (known: env, cwd, "
                           "timeout, stdin, stdout, stderr, max_output)",
                        luaL_tolstring(L, -1, NULL));
  }
  lua_Integer argc = (lua_Integer)lua_rawlen(L, 1);
  if (argc < 1)
    return luaL_error(L, "tghost.exec: expected the program and its "
                         "arguments: { \"program\", \"arg\", ... }");
  if (argc > MAX_ARGS)
    return luaL_error(L, "tghost.exec: more than %d arguments", MAX_ARGS);
  for (lua_Integer i = 1; i <= argc; i++) {
    int t = lua_rawgeti(L, 1, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_error(L, "tghost.exec: argument %d must be a string, not "
                           "%s", (int)i, luaL_typename(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (memchr(s, '\0', len))
      return luaL_error(L, "tghost.exec: argument %d contains a NUL byte",
                        (int)i);
    if (i == 1 && len == 0)
      return luaL_error(L, "tghost.exec: the program name is empty");
    lua_pop(L, 1);
  }
  double timeout = 0;
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    if (!lua_isnumber(L, -1) || !(lua_tonumber(L, -1) > 0) ||
        lua_tonumber(L, -1) > 86400)
      return luaL_error(L, "tghost.exec: timeout must be a number of seconds "
                           "(0 < timeout <= 86400)");
    timeout = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  const char *cwd = NULL;
  if (lua_getfield(L, 1, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "tghost.exec: cwd must be a string");
    cwd = lua_tostring(L, -1);
  }
  int cwd_idx = lua_gettop(L);   /* keeps cwd's string alive */
  int env_idx = 0;
  if (lua_getfield(L, 1, "env") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "tghost.exec: env must be a table of names to "
                           "strings (false removes one)");
    env_idx = lua_gettop(L);
  }
  luabind_check_network(L, "tghost.exec");
  struct task *t = task_check_can_wait(L, senv->sched, "tghost.exec");

  /* argv and env as C strings: copies in a buffer of pointers. */
  char **argv = xcalloc((size_t)argc + 1, sizeof *argv);
  for (lua_Integer i = 1; i <= argc; i++) {
    lua_rawgeti(L, 1, i);
    argv[i - 1] = xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  size_t nenv = 0, env_cap = 8;
  char **env = xcalloc(env_cap, sizeof *env);
  const char *bad = NULL;
  if (env_idx) {
    lua_pushnil(L);
    while (lua_next(L, env_idx)) {
      if (nenv + 2 >= env_cap) env = xrealloc(env, (env_cap *= 2) * sizeof *env);
      const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (!name || !*name || strchr(name, '=')) {
        bad = "env: names must be non-empty strings without '='";
      } else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        env[nenv++] = xstrdup(name);
      } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s=%s", name, lua_tostring(L, -1));
        env[nenv++] = buf_steal(&b, NULL);
      } else {
        bad = "env: values must be strings (or false to remove a name)";
      }
      lua_pop(L, 1);
      if (bad) {
        lua_pop(L, 1);
        break;
      }
    }
  }
  struct lproc *p = NULL;
  struct buf err = BUF_INIT;
  struct child *c = NULL;
  struct child_table *table = bad ? NULL : children_of(L);
  if (!bad && table) {
    struct child_spec spec = {(const char *const *)argv,
                              (const char *const *)env, cwd, 0};
    p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    c = child_spawn(table, &spec, on_child, p, &err);
  }
  for (lua_Integer i = 0; i < argc; i++) free(argv[i]);
  free(argv);
  for (size_t i = 0; i < nenv; i++) free(env[i]);
  free(env);
  (void)cwd_idx;
  if (bad) return luaL_error(L, "tghost.exec: %s", bad);
  if (!table) {
    lua_pushnil(L);
    lua_pushliteral(L, "tghost.exec: child processes are not available");
    return 2;
  }
  if (!c) {
    lua_pushnil(L);
    lua_pushfstring(L, "tghost.exec: %s", err.data);
    buf_free(&err);
    return 2;
  }
  buf_free(&err);
  p->c = c;
  luaL_setmetatable(L, PROC_MT);
  attach_to_job(p, task_job(t));
  if (timeout > 0) {
    p->timeout = timeout;
    p->timer = evtimer_new(senv->base, on_timeout, p);
    long ms = (long)ceil(timeout * 1000);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(p->timer, &tv);
  }
  return 1;
}

/* --- the handle --------------------------------------------------------- */

static struct lproc *check_proc(lua_State *L) {
  return luaL_checkudata(L, 1, PROC_MT);
}

static void push_signal_name(lua_State *L, int sig) {
  const char *abbrev = sigabbrev_np(sig);
  if (abbrev) lua_pushfstring(L, "SIG%s", abbrev);
  else lua_pushinteger(L, sig);
}

/* proc:await("output" [, want_stdin]) -> see luaexec.h */
static int l_await(lua_State *L) {
  struct lproc *p = check_proc(L);
  luaL_checkstring(L, 2);
  bool want_stdin = lua_toboolean(L, 3);
  luaL_checkstack(L, 6, "tghost.exec");
  if (!p->c) {
    lua_pushliteral(L, "exit");
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushboolean(L, p->timed_out);
    lua_pushliteral(L, "closed");
    return 5;
  }
  static const char *const names[] = {"stdout", "stderr"};
  if (strcmp(lua_tostring(L, 2), "stdin") == 0) {
    /* A writer waits for the pipe to take what is queued. */
    if (child_exited(p->c)) {
      lua_pushliteral(L, "exit");
      return 1;
    }
    if (child_stdin_pending(p->c) <= 65536) {
      lua_pushliteral(L, "stdin");
      return 1;
    }
    goto wait;
  }
  for (int s = 0; s < 2; s++) {
    const char *data;
    size_t n = child_peek(p->c, (enum child_stream)s, &data);
    if (n) {
      lua_pushstring(L, names[s]);
      lua_pushlstring(L, data, n);
      child_consume(p->c, (enum child_stream)s, n);
      return 2;
    }
  }
  if (child_exited(p->c) && child_drained(p->c, CHILD_STDOUT) &&
      child_drained(p->c, CHILD_STDERR)) {
    int st = child_wait_status(p->c);
    lua_pushliteral(L, "exit");
    if (WIFEXITED(st)) {
      lua_pushinteger(L, WEXITSTATUS(st));
      lua_pushnil(L);
    } else {
      lua_pushnil(L);
      if (WIFSIGNALED(st)) push_signal_name(L, WTERMSIG(st));
      else lua_pushnil(L);
    }
    lua_pushboolean(L, p->timed_out);
    return 4;
  }
  if (want_stdin && child_stdin_pending(p->c) == 0) {
    lua_pushliteral(L, "stdin");
    return 1;
  }
wait:;
  struct script_env *env = env_of(L);
  struct task *t = task_check_can_wait(L, env->sched, "tghost.exec");
  if (p->waiter && p->waiter != t)
    return luaL_error(L, "tghost.exec: another task is already reading this "
                         "process");
  p->waiter = t;
  lua_settop(L, 1);
  return task_wait(L, t, &proc_wait_ops, p);
}

static int l_write(lua_State *L) {
  struct lproc *p = check_proc(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!p->c || child_write(p->c, data, len) != 0) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "stdin is closed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_pending(lua_State *L) {
  struct lproc *p = check_proc(L);
  lua_pushinteger(L, p->c ? (lua_Integer)child_stdin_pending(p->c) : 0);
  return 1;
}

static int l_close_stdin(lua_State *L) {
  struct lproc *p = check_proc(L);
  if (p->c) child_close_stdin(p->c);
  return 0;
}

static int l_kill(lua_State *L) {
  struct lproc *p = check_proc(L);
  int sig = SIGTERM;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    sig = (int)luaL_checkinteger(L, 2);
  } else if (!lua_isnoneornil(L, 2)) {
    const char *name = luaL_checkstring(L, 2);
    if (strncmp(name, "SIG", 3) == 0) name += 3;
    sig = 0;
    for (int s = 1; s < NSIG && !sig; s++) {
      const char *a = sigabbrev_np(s);
      if (a && strcmp(a, name) == 0) sig = s;
    }
    if (!sig) return luaL_error(L, "tghost.exec: unknown signal %s",
                                lua_tostring(L, 2));
  }
  if (sig <= 0 || sig >= NSIG)
    return luaL_error(L, "tghost.exec: unknown signal %d", sig);
  if (p->c) child_kill(p->c, sig);
  return 0;
}

static int l_pid(lua_State *L) {
  struct lproc *p = check_proc(L);
  if (p->c) lua_pushinteger(L, child_pid(p->c));
  else lua_pushnil(L);
  return 1;
}

static int l_close(lua_State *L) {
  proc_release(check_proc(L));
  return 0;
}

static int l_gc(lua_State *L) {
  struct lproc *p = check_proc(L);
  p->waiter = NULL;
  proc_release(p);
  return 0;
}

int luaopen_tghost_execcore(lua_State *L) {
  static const luaL_Reg methods[] = {{"await", l_await},
                                     {"write", l_write},
                                     {"pending", l_pending},
                                     {"close_stdin", l_close_stdin},
                                     {"kill", l_kill},
                                     {"pid", l_pid},
                                     {"close", l_close},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, PROC_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"spawn", l_spawn}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
