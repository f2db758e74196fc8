/* tghost.coroutine: coroutine.resume and coroutine.wrap for scripts.
 *
 * A tghost call (bot.api.*, tghost.sleep, ...) suspends a handler by
 * yielding a private sentinel to the host (task_wait). Inside one of the
 * script's own coroutines that yield would land in the script's resume;
 * these versions recognise it, suspend the resuming coroutine too (passing
 * the sentinel up), and hand the host's answer back down when the task is
 * resumed, so the call simply works, as in OpenResty. Ordinary yields
 * between the script's coroutines behave exactly as in Lua. They also tell
 * the scheduler which coroutine runs, so the CPU guard can stop a loop in
 * a nested coroutine. */
#include "script/luacoro.h"

#include <lauxlib.h>

#include "script/luabind.h"
#include "sched/task.h"

static lua_State *check_coroutine(lua_State *L, int idx) {
  lua_State *co = lua_tothread(L, idx);
  luaL_argexpected(L, co, idx, "coroutine");
  return co;
}

/* NULL if co can be resumed, else the reason (as Lua words it). */
static const char *resume_problem(lua_State *L, lua_State *co) {
  if (co == L) return "cannot resume non-suspended coroutine";
  switch (lua_status(co)) {
    case LUA_YIELD:
      return NULL;
    case LUA_OK: {
      lua_Debug ar;
      if (lua_getstack(co, 0, &ar)) return "cannot resume non-suspended coroutine";
      if (lua_gettop(co) == 0) return "cannot resume dead coroutine";
      return NULL;
    }
    default:
      return "cannot resume dead coroutine";
  }
}

static int resume_step(lua_State *L, lua_State *co, int nargs, bool wrap);

/* The task was resumed by the host: pass its answer down to co. */
static int after_host(lua_State *L, int status, lua_KContext ctx) {
  int base = (int)(ctx >> 1);
  bool wrap = ctx & 1;
  lua_State *co = wrap ? lua_tothread(L, lua_upvalueindex(1))
                       : lua_tothread(L, 1);
  int n = lua_gettop(L) - base;
  if (!lua_checkstack(co, n)) return luaL_error(L, "too many results to resume");
  lua_xmove(L, co, n);
  return resume_step(L, co, n, wrap);
}

/* Resumes co with nargs values already on its stack, and turns the outcome
 * into resume's (true, ... / false, err) or wrap's (... / raise) results. */
static int resume_step(lua_State *L, lua_State *co, int nargs, bool wrap) {
  struct scheduler *s = env_of(L)->sched;
  int nres = 0;
  struct cpuguard_link link;
  cpuguard_enter(&s->guard, &link, co);
  int status = lua_resume(co, L, nargs, &nres);
  cpuguard_leave(&s->guard, &link);

  if (status == LUA_YIELD && nres >= 1 &&
      lua_touserdata(co, -nres) == task_yield_sentinel()) {
    /* co waits on the host: so must we. */
    lua_pop(co, nres);
    if (!lua_isyieldable(L)) {
      struct task *t = sched_running(s);
      if (t) task_drop_wait(t);
      cpuguard_close_thread(&s->guard, co);
      return luaL_error(L, "a tghost call inside a coroutine cannot suspend "
                           "here: the coroutine was resumed from a function "
                           "that cannot yield (a table.sort comparator, "
                           "string.gsub callback or metamethod)");
    }
    int base = lua_gettop(L);
    lua_pushlightuserdata(L, task_yield_sentinel());
    return lua_yieldk(L, 1, (lua_KContext)(((lua_KContext)base << 1) | wrap),
                      after_host);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1))
      return luaL_error(L, "too many results to resume");
    if (!wrap) lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres + (wrap ? 0 : 1);
  }
  /* The coroutine raised an error. */
  if (!wrap) {
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
  }
  /* Runs its to-be-closed variables, under the guard like its body. */
  status = cpuguard_close_thread(&env_of(L)->sched->guard, co);
  lua_xmove(co, L, 1);
  if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int l_resume(lua_State *L) {
  lua_State *co = check_coroutine(L, 1);
  const char *problem = resume_problem(L, co);
  if (problem) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, problem);
    return 2;
  }
  int nargs = lua_gettop(L) - 1;
  if (!lua_checkstack(co, nargs)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return 2;
  }
  lua_xmove(L, co, nargs);
  return resume_step(L, co, nargs, false);
}

static int wrapped_call(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  const char *problem = resume_problem(L, co);
  if (problem) {
    luaL_where(L, 1);
    lua_pushstring(L, problem);
    lua_concat(L, 2);
    return lua_error(L);
  }
  int nargs = lua_gettop(L);
  if (!lua_checkstack(co, nargs))
    return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, nargs);
  return resume_step(L, co, nargs, true);
}

/* coroutine.close(co), as Lua's, but the to-be-closed variables it runs
 * (on co, which is not the running coroutine) are under the CPU guard:
 * Lua's own would run a looping __close where no hook of the guard
 * reaches. */
static int l_close(lua_State *L) {
  lua_State *co = check_coroutine(L, 1);
  int status = lua_status(co);
  lua_Debug ar;
  bool closable = co != L &&
                  (status == LUA_YIELD ||
                   (status == LUA_OK && !lua_getstack(co, 0, &ar)) ||
                   status != LUA_OK);
  if (!closable)
    return luaL_error(L, "cannot close a %s coroutine",
                      co == L ? "running" : "normal");
  status = cpuguard_close_thread(&env_of(L)->sched->guard, co);
  if (status == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);   /* the error object */
  return 2;
}

static int l_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, wrapped_call, 1);
  return 1;
}

int luaopen_tghost_coroutine(lua_State *L) {
  static const luaL_Reg fns[] = {{"resume", l_resume}, {"wrap", l_wrap},
                                 {"close", l_close}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
