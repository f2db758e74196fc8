/* The CPU guard: stops Lua code that keeps the loop's thread busy for
 * longer than its budget without giving the loop back.
 *
 * The guard watches one run at a time: a resume of a task's coroutine
 * (task.c), or a protected call of user code outside any task
 * (cpuguard_pcall: a conversation's key function, say). While a run lasts,
 * a periodic timer signal on the CPU clock of this thread counts ticks;
 * once the run has had its budget, the signal handler installs a hook on
 * every coroutine of the running chain (the run's own and each one the
 * script resumed inside it, see cpuguard_enter) that stops the run, and
 * installs it again on every tick until the run is over. No hook is set
 * otherwise, so Lua code runs at full speed. Without a timer signal
 * (timer_create failed) a count hook looks at the clock every 1,000
 * instructions instead.
 *
 * How the hook stops a run: the run's own coroutine, where it can yield,
 * yields (an error would be caught by the script's own pcall), and the
 * caller ends the task (cpuguard_run_end says it was stopped). Anywhere
 * else (a nested coroutine, a string.gsub callback, a run outside a task)
 * it raises an error, and again at every instruction, so a pcall loop gets
 * nowhere, until the run reaches a point where it can yield or is over.
 *
 * The memory limit stops a run the same way (cpuguard_stop), and long
 * loops in C (pattern matching) ask cpuguard_over_budget() as they go.
 *
 * There is one guard per process (its hooks and signal handler find it
 * without an argument). It knows nothing of jobs or tasks. Layer: below
 * the scheduler (task.c). */
#ifndef TGHOST_CPUGUARD_H
#define TGHOST_CPUGUARD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <lua.h>

enum cpuguard_stop {
  CPUGUARD_RUNS,          /* not stopped */
  CPUGUARD_STOP_CPU,      /* over its CPU budget without yielding */
  CPUGUARD_STOP_MEMORY,   /* over a Lua memory limit */
};

/* One coroutine in the chain the guard stops. Links live on the C stack
 * of whoever resumes, so nesting has no limit. */
struct cpuguard_link {
  lua_State *co;
  struct cpuguard_link *volatile outer;
};

/* Fields written by the signal handler are volatile; the rest are the
 * guard's own (read them through the functions below). */
struct cpuguard {
  long budget_ms;                  /* 0: no budget */
  volatile sig_atomic_t ticks;
  volatile sig_atomic_t run_tick;  /* ticks when the run began */
  volatile sig_atomic_t idle_ticks;
  volatile sig_atomic_t timer_armed;
  volatile sig_atomic_t in_run;
  volatile sig_atomic_t stopping;  /* enum cpuguard_stop of the run */
  struct cpuguard_link *volatile innermost;   /* NULL: nothing runs */
  struct cpuguard_link run_link;   /* the run's own coroutine */
  timer_t timer;
  bool have_timer;
  struct timespec run_started;     /* for the fallback count hook */
  char where[96];                  /* "file:line: " the run was stopped at */
  const char *memory_reason;       /* why CPUGUARD_STOP_MEMORY */
  char explanation[256];           /* see cpuguard_explain_stop; "" if none */
  unsigned long stops;             /* runs that ended stopped */
};

/* Sets the guard up with its timer signal (it logs a warning and falls
 * back to the count hook if there is none). budget_ms <= 0: no budget. */
void cpuguard_init(struct cpuguard *g, long budget_ms);
void cpuguard_free(struct cpuguard *g);

/* Prepares a new main Lua state: without a timer signal, installs the
 * count hook that coroutines created from it afterwards inherit. */
void cpuguard_prepare_state(struct cpuguard *g, lua_State *L);
/* Gives co the hook it has between runs (none, or the count hook): a
 * coroutine that was stopped runs its __close handlers afresh. */
void cpuguard_reset_hook(struct cpuguard *g, lua_State *co);

/* A run of co starts, with a full budget. Runs do not nest (a protected
 * call inside a run joins it instead, see cpuguard_pcall). */
void cpuguard_run_begin(struct cpuguard *g, lua_State *co);
/* The run is over. Returns whether, and why, the guard stopped it (then
 * cpuguard_describe_stop says it in words, until the next run begins). */
enum cpuguard_stop cpuguard_run_end(struct cpuguard *g);
/* Why the run was stopped, naming where and who (a "handler", "task",
 * ...): "bot.lua:3: handler stopped: it ran for over 250 ms of CPU
 * without yielding (--cpu-budget)". */
void cpuguard_describe_stop(const struct cpuguard *g, const char *who,
                            char *msg, size_t size);

/* lua_pcall of user code under the guard, outside a task (nargs
 * arguments and the function on L's top, as lua_pcall). Inside a run, L
 * joins that run's chain (its budget is the run's); otherwise it is a run
 * of its own, after which L's hook is put back as it was. A stopped call
 * fails with the guard's error. */
int cpuguard_pcall(struct cpuguard *g, lua_State *L, int nargs, int nres);

/* lua_resetthread(co) under the guard, its hook reset first: co's pending
 * to-be-closed variables run (a cancelled task's). A run of its own, or
 * part of the run in progress, as cpuguard_pcall. Returns its status. */
int cpuguard_close_thread(struct cpuguard *g, lua_State *co);

/* A coroutine nested in the run starts or stops running (the coroutine
 * wrappers call these so the guard can reach it). link lives until the
 * matching leave. */
void cpuguard_enter(struct cpuguard *g, struct cpuguard_link *link,
                    lua_State *co);
void cpuguard_leave(struct cpuguard *g, struct cpuguard_link *link);

/* Stops the run at its next Lua instruction, as the budget does (the
 * memory limit: why = CPUGUARD_STOP_MEMORY with reason, a static string,
 * saying which limit). No-op outside a run or when it is being stopped. */
void cpuguard_stop(struct cpuguard *g, enum cpuguard_stop why,
                   const char *reason);

/* For long loops in C called from Lua (pattern matching), which no Lua
 * hook can interrupt: true once the run has used up its budget. The caller
 * raises an error then; the hook stops the run at its next Lua
 * instruction. Cheap enough to call every few thousand steps. */
bool cpuguard_over_budget(struct cpuguard *g);
/* For such a caller: message (copied) becomes the run's report in place
 * of the generic one, so the log says what ran out of time ("bot.lua:3:
 * pattern matching stopped: ..."). Only while the run is being stopped
 * for its CPU budget. */
void cpuguard_explain_stop(struct cpuguard *g, const char *message);

/* Whether the guard relies on Lua hooks now (the run is being stopped, or
 * there is no timer signal and a count hook is the guard): a script's
 * debug.sethook must then leave the hooks alone. */
bool cpuguard_hooks_in_use(const struct cpuguard *g);
/* Whether there is a timer signal (for messages). */
bool cpuguard_has_timer(const struct cpuguard *g);
long cpuguard_budget_ms(const struct cpuguard *g);
/* Runs the guard has stopped so far (the blocked-loop warning does not
 * report a stall the guard ended). */
unsigned long cpuguard_stop_count(const struct cpuguard *g);

#endif
