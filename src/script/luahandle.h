/* A Lua handle on something that runs on the loop (a child process, a
 * streaming HTTP transfer): what luaexec.c and luastream.c share.
 *
 * Layer: bindings. A handle belongs to the job that opened it: when the
 * job ends (returned, failed, cancelled) each of its handles still open
 * is closed through the close function given at attach. One task at a
 * time waits on a handle for a change; a change wakes it with true,
 * "again" (the Lua side looks again and loops).
 *
 * The handle is embedded in the binding's userdata; the binding calls
 * luahandle_detach when it closes, however it closes. */
#ifndef TGHOST_LUAHANDLE_H
#define TGHOST_LUAHANDLE_H

#include <lauxlib.h>
#include <lua.h>

#include "base/qlist.h"
#include "sched/task.h"

struct handle_jobs;

struct lua_handle {
  struct task *waiter;             /* a task suspended in luahandle_wait */
  struct handle_jobs *jobs;        /* the job that opened it, while it lives */
  struct qnode job_node;
  void (*close)(struct lua_handle *h);   /* at the job's end */
};

/* Registers the class: metatable mt with methods as __index, gc as
 * __gc and close as __close. Leaves the stack as it was. */
void luahandle_register(lua_State *L, const char *mt,
                        const luaL_Reg *methods, lua_CFunction gc,
                        lua_CFunction close);

/* Makes h belong to job, closed by close when the job ends. */
void luahandle_attach(struct lua_handle *h, struct job *job,
                      void (*close)(struct lua_handle *h));
/* h no longer belongs to a job (closed); no effect when it does not. */
void luahandle_detach(struct lua_handle *h);

/* The wait ops' cancel: for a binding's struct task_wait_ops, whose data
 * is the handle. */
void luahandle_wait_cancel(void *handle);
/* Suspends the calling task until luahandle_wake; its handle (at stack
 * index 1) stays on the frame meanwhile. api names the caller in errors
 * ("tghost.exec"), noun the handle ("process"): raises when another task
 * already waits on h. */
int luahandle_wait(lua_State *L, struct lua_handle *h,
                   const struct task_wait_ops *ops, const char *api,
                   const char *noun);
/* Wakes the task waiting on h, if any, with true, "again". */
void luahandle_wake(struct lua_handle *h);

#endif
