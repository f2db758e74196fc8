#include "script/luahandle.h"

#include <stdlib.h>

#include "script/luabind.h"

/* The handles a job opened: closed when it ends, however it ends. */
struct handle_jobs {
  struct job_cleanup cleanup;
  struct qlist handles;
};

void luahandle_register(lua_State *L, const char *mt,
                        const luaL_Reg *methods, lua_CFunction gc,
                        lua_CFunction close) {
  if (luaL_newmetatable(L, mt)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

static void on_job_end(struct job *job, struct job_cleanup *c) {
  struct handle_jobs *hj = (struct handle_jobs *)c;
  struct qnode *n;
  while ((n = qlist_front(&hj->handles))) {
    struct lua_handle *h = qlist_entry(n, struct lua_handle, job_node);
    h->close(h);   /* detaches it */
  }
  free(hj);
}

void luahandle_attach(struct lua_handle *h, struct job *job,
                      void (*close)(struct lua_handle *h)) {
  struct handle_jobs *hj =
      (struct handle_jobs *)job_find_cleanup(job, on_job_end);
  if (!hj) {
    hj = xcalloc(1, sizeof *hj);
    hj->cleanup.fn = on_job_end;
    qlist_init(&hj->handles);
    job_add_cleanup(job, &hj->cleanup);
  }
  qlist_push_back(&hj->handles, &h->job_node);
  h->jobs = hj;
  h->close = close;
}

void luahandle_detach(struct lua_handle *h) {
  if (!h->jobs) return;
  qlist_remove(&h->jobs->handles, &h->job_node);
  h->jobs = NULL;
}

/* --- waking ------------------------------------------------------------- */

static int push_again(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushliteral(co, "again");
  return 2;
}

void luahandle_wait_cancel(void *handle) {
  struct lua_handle *h = handle;
  h->waiter = NULL;
}

int luahandle_wait(lua_State *L, struct lua_handle *h,
                   const struct task_wait_ops *ops, const char *api,
                   const char *noun) {
  struct script_env *env = env_of(L);
  struct task *t = task_check_can_wait(L, env->sched, api);
  if (h->waiter && h->waiter != t)
    return luaL_error(L, "%s: another task is already reading this %s", api,
                      noun);
  h->waiter = t;
  lua_settop(L, 1);   /* the handle stays on this frame while it waits */
  return task_wait(L, t, ops, h);
}

void luahandle_wake(struct lua_handle *h) {
  struct task *t = h->waiter;
  if (!t) return;
  h->waiter = NULL;
  task_wake(t, push_again, h);
}
