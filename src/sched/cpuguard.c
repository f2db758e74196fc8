#include "sched/cpuguard.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* The tick, and how long it keeps ticking without a run before it stops
 * the timer. */
#define TICK_MS 50
#define IDLE_TICKS 40
/* Instructions between two looks at the clock by the fallback hook. */
#define CHECK_INSTRUCTIONS 1000

/* glibc before 2.41 has SIGEV_THREAD_ID but not the name of its field. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* The hooks and the signal handler have no argument to find the guard by;
 * there is one per process. */
static struct cpuguard *volatile the_guard;

/* What the signal handler reads is published before in_run says a run is
 * on: the handler runs on this thread, so a compiler barrier is enough. */
static void publish(void) { atomic_signal_fence(memory_order_seq_cst); }

static long elapsed_ms(const struct timespec *since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - since->tv_sec) * 1000 +
         (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Stops the run. Yielding (not raising) is what stops it: an error would
 * be caught by the handler's own pcall. A nested coroutine, or code in a
 * context that cannot yield (a string.gsub callback, say), cannot yield to
 * the host, so it gets an error; the hook stays on every instruction, so
 * the error comes again as soon as a pcall returns, until the run reaches
 * a point where it can yield. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  struct cpuguard *g = the_guard;
  if (!g || !g->in_run || !g->stopping) {
    lua_sethook(L, NULL, 0, 0);   /* left over from an earlier stop */
    return;
  }
  /* Where it was looping: the report names it like any Lua error. */
  if (!g->where[0] && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    snprintf(g->where, sizeof g->where, "%s:%d: ", ar->short_src,
             ar->currentline);
  if (L == g->run_link.co && lua_isyieldable(L)) {
    lua_yield(L, 0);
    return;
  }
  if (g->stopping == CPUGUARD_STOP_MEMORY)
    luaL_error(L, "Lua memory limit exceeded");
  luaL_error(L, "CPU budget of %d ms exceeded without yielding",
             (int)g->budget_ms);
}

/* Puts the stop hook on every coroutine of the running chain. Safe in the
 * signal handler: lua_sethook may be called asynchronously, and the chain
 * is only ever linked before it is published. */
static void hook_chain(struct cpuguard *g) {
  for (struct cpuguard_link *l = g->innermost; l; l = l->outer)
    lua_sethook(l->co, stop_hook, LUA_MASKCOUNT, 1);
}

static void on_tick(int sig) {
  struct cpuguard *g = the_guard;
  if (!g) return;
  g->ticks++;
  if (!g->in_run) {
    if (++g->idle_ticks > IDLE_TICKS && g->timer_armed) {
      struct itimerspec off = {{0, 0}, {0, 0}};
      timer_settime(g->timer, 0, &off, NULL);
      g->timer_armed = 0;
    }
    return;
  }
  g->idle_ticks = 0;
  if (g->stopping) {
    /* Again on every tick: a script that removed the hook (from an
     * xpcall message handler, say) gets it back. */
    hook_chain(g);
    return;
  }
  long budget_ticks = (g->budget_ms + TICK_MS - 1) / TICK_MS;
  if (g->ticks - g->run_tick <= budget_ticks) return;
  g->stopping = CPUGUARD_STOP_CPU;
  hook_chain(g);
}

/* Without a timer: look at the clock every few instructions. */
static void fallback_hook(lua_State *L, lua_Debug *ar) {
  struct cpuguard *g = the_guard;
  if (!g || !g->in_run || g->budget_ms <= 0) return;
  if (!g->stopping) {
    if (elapsed_ms(&g->run_started) < g->budget_ms) return;
    g->stopping = CPUGUARD_STOP_CPU;
    hook_chain(g);
  }
  stop_hook(L, ar);
}

void cpuguard_init(struct cpuguard *g, long budget_ms) {
  memset(g, 0, sizeof *g);
  g->budget_ms = budget_ms;
  the_guard = g;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_tick;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  int signo = SIGRTMIN + 3;
  if (sigaction(signo, &sa, NULL) != 0) return;
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  /* To this thread only: curl's resolver threads must not take it. */
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = signo;
  sev.sigev_notify_thread_id = gettid();
  /* CPU time of this thread: a handler descheduled on a busy machine, or
   * blocked in a system call, is not charged for it (the blocked-loop
   * warning reports a stall). */
  if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &g->timer) != 0) {
    log_warn("CPU guard: no timer signal (%s); using a slower hook",
             strerror(errno));
    return;
  }
  g->have_timer = true;
}

void cpuguard_free(struct cpuguard *g) {
  if (g->have_timer) timer_delete(g->timer);
  g->have_timer = false;
  if (the_guard == g) the_guard = NULL;
}

void cpuguard_prepare_state(struct cpuguard *g, lua_State *L) {
  if (!g->have_timer)
    lua_sethook(L, fallback_hook, LUA_MASKCOUNT, CHECK_INSTRUCTIONS);
}

void cpuguard_reset_hook(struct cpuguard *g, lua_State *co) {
  if (g->have_timer) lua_sethook(co, NULL, 0, 0);
  else lua_sethook(co, fallback_hook, LUA_MASKCOUNT, CHECK_INSTRUCTIONS);
}

void cpuguard_run_begin(struct cpuguard *g, lua_State *co) {
  g->stopping = CPUGUARD_RUNS;
  g->where[0] = '\0';
  g->explanation[0] = '\0';
  g->run_link.co = co;
  g->run_link.outer = NULL;
  g->innermost = &g->run_link;
  g->run_tick = g->ticks;
  clock_gettime(CLOCK_MONOTONIC, &g->run_started);
  publish();
  g->in_run = 1;
  if (g->have_timer && !g->timer_armed && g->budget_ms > 0) {
    struct itimerspec every = {{0, TICK_MS * 1000000L},
                               {0, TICK_MS * 1000000L}};
    g->timer_armed = 1;
    timer_settime(g->timer, 0, &every, NULL);
  }
}

enum cpuguard_stop cpuguard_run_end(struct cpuguard *g) {
  g->in_run = 0;
  publish();
  g->innermost = NULL;
  enum cpuguard_stop stop = (enum cpuguard_stop)g->stopping;
  if (stop != CPUGUARD_RUNS) g->stops++;
  return stop;
}

void cpuguard_describe_stop(const struct cpuguard *g, const char *who,
                            char *msg, size_t size) {
  if (g->stopping == CPUGUARD_STOP_CPU && g->explanation[0])
    snprintf(msg, size, "%s", g->explanation);   /* cpuguard_explain_stop */
  else if (g->stopping == CPUGUARD_STOP_MEMORY)
    snprintf(msg, size, "%s%s stopped: %s", g->where, who,
             g->memory_reason ? g->memory_reason : "Lua memory limit");
  else
    snprintf(msg, size, "%s%s stopped: it ran for over %ld ms of CPU without "
             "yielding (--cpu-budget)", g->where, who, g->budget_ms);
}

int cpuguard_pcall(struct cpuguard *g, lua_State *L, int nargs, int nres) {
  int status;
  if (g->in_run) {
    struct cpuguard_link link;
    cpuguard_enter(g, &link, L);
    status = lua_pcall(L, nargs, nres, 0);
    cpuguard_leave(g, &link);
    return status;
  }
  /* L is often a main state, whose hook new coroutines inherit. */
  lua_Hook hook = lua_gethook(L);
  int mask = lua_gethookmask(L), count = lua_gethookcount(L);
  cpuguard_reset_hook(g, L);
  cpuguard_run_begin(g, L);
  status = lua_pcall(L, nargs, nres, 0);
  cpuguard_run_end(g);
  lua_sethook(L, hook, mask, count);
  return status;
}

int cpuguard_close_thread(struct cpuguard *g, lua_State *co) {
  cpuguard_reset_hook(g, co);
  int status;
  if (g->in_run) {
    struct cpuguard_link link;
    cpuguard_enter(g, &link, co);
    status = lua_resetthread(co);
    cpuguard_leave(g, &link);
  } else {
    cpuguard_run_begin(g, co);
    status = lua_resetthread(co);
    cpuguard_run_end(g);
  }
  return status;
}

void cpuguard_enter(struct cpuguard *g, struct cpuguard_link *link,
                    lua_State *co) {
  link->co = co;
  link->outer = g->innermost;
  publish();
  g->innermost = link;
  if (g->in_run && g->stopping) lua_sethook(co, stop_hook, LUA_MASKCOUNT, 1);
  else if (!g->have_timer)
    lua_sethook(co, fallback_hook, LUA_MASKCOUNT, CHECK_INSTRUCTIONS);
}

void cpuguard_leave(struct cpuguard *g, struct cpuguard_link *link) {
  g->innermost = link->outer;
}

void cpuguard_stop(struct cpuguard *g, enum cpuguard_stop why,
                   const char *reason) {
  if (!g->in_run || g->stopping) return;
  if (why == CPUGUARD_STOP_MEMORY) g->memory_reason = reason;
  g->stopping = why;
  hook_chain(g);
}

bool cpuguard_over_budget(struct cpuguard *g) {
  if (!g->in_run) return false;
  if (g->stopping) return true;
  if (g->have_timer || g->budget_ms <= 0) return false;
  /* Without the timer signal nothing else looks at the clock meanwhile. */
  if (elapsed_ms(&g->run_started) < g->budget_ms) return false;
  g->stopping = CPUGUARD_STOP_CPU;
  hook_chain(g);
  return true;
}

void cpuguard_explain_stop(struct cpuguard *g, const char *message) {
  if (g->in_run && g->stopping == CPUGUARD_STOP_CPU && !g->explanation[0])
    snprintf(g->explanation, sizeof g->explanation, "%s", message);
}

bool cpuguard_hooks_in_use(const struct cpuguard *g) {
  return (g->in_run && g->stopping) || !g->have_timer;
}

bool cpuguard_has_timer(const struct cpuguard *g) { return g->have_timer; }

long cpuguard_budget_ms(const struct cpuguard *g) { return g->budget_ms; }

unsigned long cpuguard_stop_count(const struct cpuguard *g) {
  return g->stops;
}
