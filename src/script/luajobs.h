/* The tghost.jobscore module: the C half of tghost.jobs (lua/jobs.lua).
 *
 *   put(spec) -> id          schedules a job (pipeline/jobsched.h)
 *   cancel(id) -> found
 *   list(prefix, limit) -> { {id=, name=, data=, next=, schedule=,
 *                             running=, attempts=}, ... }
 *   now() -> seconds         the scheduler's wall clock (the sandbox moves it)
 *   context() -> "top" | "handler" | "job" | "task" | nil
 *
 * From a handler, a job run or a task, put, cancel and list suspend the
 * caller until the job store has answered (a put returns once the job is
 * stored: with SQLite or Redis, durable). From the script's top level,
 * put and cancel are declarations instead: they return at once (put with
 * the id) and take effect when the generation goes live (the first one
 * once run() has started the bot; a reloaded one when it replaces the
 * old), so a script rejected by a reload schedules nothing, and a top
 * level that runs again at every start declares the same jobs again
 * without doubling them (a put keeps a stored job's place when its id and
 * schedule are unchanged).
 *
 * A job's data is encoded here (script/storecodec.h), when it is
 * scheduled, so data that cannot be stored is refused at the call. */
#ifndef TGHOST_LUAJOBS_H
#define TGHOST_LUAJOBS_H

#include <lua.h>

#include "pipeline/jobsched.h"
#include "script/generation.h"

int luaopen_tghost_jobscore(lua_State *L);

/* g has become the generation new work runs in: its top level's
 * declarations take effect (errors are logged). */
void luajobs_go_live(struct generation *g);

/* Pushes what a job's handler gets about its run: { id=, name=, data=,
 * scheduledAt= (Unix seconds), attempt=, redelivered= }. Data that can no
 * longer be decoded is nil, with a warning. */
void luajobs_push_run(lua_State *L, const struct job_run_info *run);

#endif
