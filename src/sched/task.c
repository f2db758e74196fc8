#include "sched/task.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"

struct task {
  struct job *job;
  lua_State *co;
  int ref;
  struct qnode job_node;
  struct qnode ready_node;
  bool started;
  int initial_nargs;
  const struct task_wait_ops *wait_ops;   /* set while waiting on the host */
  void *wait_data;
  task_push_fn push;                      /* set between wake and resume */
  void *push_data;
  task_end_fn on_end;
  void *end_ud;
};

/* A job: opaque outside this module (task.h has its accessors). */
struct job {
  struct scheduler *sched;
  struct job_owner *owner;
  enum job_kind kind;
  int64_t update_id;
  char *update_json;               /* owned; see job_take_update_json */
  size_t update_len;
  struct qlist tasks;
  enum job_end end;
  char *error;                     /* first hard failure, if any */
  bool ending;
  bool cancel_deferred;
  bool closing_done;               /* job_close: its end counts as done */
  bool dropping;                   /* job_drop: coroutines are not closed */
  bool loose_idle;                 /* parked idle with no slot owner */
  bool failure_reported;           /* job_mark_failed: reported already */
  struct qnode cancel_node;
  struct qnode all_node;           /* in sched->jobs */
  job_end_fn on_end;
  void *end_ud;
  struct job_cleanup *cleanups;
  long lua_bytes;                  /* Lua heap its tasks grew, net (>= 0) */
  /* The slot owner (see job_slot_ops), and job_unpark()'s callback until
   * the slot is back. */
  const struct job_slot_ops *slot_ops;
  void *slot;
  void (*slot_regained)(struct job *job, void *arg);
  void *slot_regained_arg;
};

static char yield_sentinel;

void *task_yield_sentinel(void) { return &yield_sentinel; }

static void on_ready(evutil_socket_t fd, short what, void *arg);

void sched_init(struct scheduler *s, struct event_base *base,
                long cpu_budget_ms) {
  memset(s, 0, sizeof *s);
  s->base = base;
  s->ready_event = event_new(base, -1, 0, on_ready, s);
  qlist_init(&s->ready);
  qlist_init(&s->cancels);
  qlist_init(&s->jobs);
  cpuguard_init(&s->guard, cpu_budget_ms);
}

void sched_free(struct scheduler *s) {
  cpuguard_free(&s->guard);
  if (s->ready_event) event_free(s->ready_event);
  s->ready_event = NULL;
}

struct task *sched_running(const struct scheduler *s) { return s->running; }

void sched_cancel_all(struct scheduler *s, const char *reason) {
  if (s->running) {
    /* Every cancel is deferred; the list does not change meanwhile. */
    qlist_foreach(node, &s->jobs)
      job_cancel(qlist_entry(node, struct job, all_node), reason);
    return;
  }
  /* Each cancel ends its job at once and unlinks it. */
  struct qnode *q;
  while ((q = qlist_front(&s->jobs)))
    job_cancel(qlist_entry(q, struct job, all_node), reason);
}

void sched_cancel_kind(struct scheduler *s, struct job_owner *owner,
                       enum job_kind kind, const char *reason) {
  size_t n = 0, i = 0;
  qlist_foreach(node, &s->jobs) {
    struct job *job = qlist_entry(node, struct job, all_node);
    if (job->kind == kind && (!owner || job->owner == owner)) n++;
  }
  if (n == 0) return;
  /* A cancel may end other jobs' waits, never other jobs: a snapshot of
   * the list stays valid. */
  struct job **jobs = xcalloc(n, sizeof *jobs);
  qlist_foreach(node, &s->jobs) {
    struct job *job = qlist_entry(node, struct job, all_node);
    if (job->kind == kind && (!owner || job->owner == owner)) jobs[i++] = job;
  }
  for (i = 0; i < n; i++) job_cancel(jobs[i], reason);
  free(jobs);
}

static void schedule(struct scheduler *s) {
  event_active(s->ready_event, 0, 0);
}

struct task *task_check_can_wait(lua_State *L, struct scheduler *s,
                                 const char *what) {
  struct task *t = s->running;
  if (!t)
    luaL_error(L, "%s can only be called from a handler or the script's top "
               "level", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot be called here: this function cannot be "
               "suspended (a table.sort comparator, string.gsub callback, "
               "__close handler or other non-yieldable context)", what);
  return t;
}

static int wait_continue(lua_State *L, int status, lua_KContext ctx) {
  int base = (int)ctx;
  int n = lua_gettop(L) - base;
  if (n >= 1 && lua_toboolean(L, base + 1)) return n - 1;
  if (n >= 2) {
    lua_settop(L, base + 2);
    return lua_error(L);
  }
  return luaL_error(L, "internal error: task resumed without a result");
}

int task_wait(lua_State *L, struct task *t, const struct task_wait_ops *ops,
              void *data) {
  /* A wait left behind by a yield that could not reach the host (see the
   * coroutine wrappers) is stale: release it. */
  if (t->wait_ops) t->wait_ops->cancel(t->wait_data);
  t->wait_ops = NULL;
  t->wait_data = NULL;
  if (t->push) {
    /* Woken before it even yielded (e.g. stop() with nothing in flight):
     * the wake stands, nothing is left to wait for. */
    ops->cancel(data);
  } else {
    t->wait_ops = ops;
    t->wait_data = data;
  }
  int base = lua_gettop(L);
  lua_pushlightuserdata(L, &yield_sentinel);
  return lua_yieldk(L, 1, (lua_KContext)base, wait_continue);
}

void task_drop_wait(struct task *t) {
  if (!t->wait_ops) return;
  const struct task_wait_ops *ops = t->wait_ops;
  t->wait_ops = NULL;
  ops->cancel(t->wait_data);
}

void task_wake(struct task *t, task_push_fn push, void *data) {
  struct scheduler *s = t->job->sched;
  t->wait_ops = NULL;
  t->wait_data = NULL;
  t->push = push;
  t->push_data = data;
  if (!qnode_linked(&t->ready_node)) qlist_push_back(&s->ready, &t->ready_node);
  schedule(s);
}

int task_push_nothing(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  return 1;
}

int task_push_error_message(lua_State *co, void *data) {
  char *msg = data;
  int n = 0;
  if (co) {
    lua_pushboolean(co, 0);
    lua_pushstring(co, msg);
    n = 2;
  }
  free(msg);
  return n;
}

struct job *sched_charge_memory(struct scheduler *s, struct job_owner *owner,
                                long delta) {
  struct task *t = s->running;
  if (!t || t->job->owner != owner) return NULL;
  struct job *job = t->job;
  job->lua_bytes += delta;
  if (job->lua_bytes < 0) job->lua_bytes = 0;   /* freed others' garbage */
  return job;
}

/* --- jobs --------------------------------------------------------------- */

struct job *job_new(struct scheduler *s, struct job_owner *owner,
                    const struct job_params *p) {
  struct job *job = xcalloc(1, sizeof *job);
  job->sched = s;
  job->owner = owner;
  job->kind = p->kind;
  job->update_id = p->update_id;
  job->update_json = p->update_json;
  job->update_len = p->update_len;
  job->on_end = p->on_end;
  job->end_ud = p->end_ud;
  qlist_init(&job->tasks);
  qlist_push_back(&s->jobs, &job->all_node);
  owner->ref(owner);
  s->live_jobs++;
  if (job->kind == JOB_BACKGROUND) s->background_jobs++;
  return job;
}

void job_add_cleanup(struct job *job, struct job_cleanup *c) {
  c->next = job->cleanups;
  job->cleanups = c;
}

struct job_cleanup *job_find_cleanup(const struct job *job,
                                     void (*fn)(struct job *,
                                                struct job_cleanup *)) {
  for (struct job_cleanup *c = job->cleanups; c; c = c->next)
    if (c->fn == fn) return c;
  return NULL;
}

char *job_take_update_json(struct job *job, size_t *len) {
  char *json = job->update_json;
  if (len) *len = job->update_len;
  job->update_json = NULL;
  return json;
}

void job_set_slot_owner(struct job *job, const struct job_slot_ops *ops,
                        void *slot) {
  job->slot_ops = ops;
  job->slot = slot;
}

struct log_fields job_log_fields(const struct job *job) {
  struct log_fields f = {job->owner ? job->owner->id : 0, job->update_id};
  return f;
}

enum job_kind job_kind(const struct job *job) { return job->kind; }
int64_t job_update_id(const struct job *job) { return job->update_id; }
const char *job_update_json(const struct job *job, size_t *len) {
  if (len) *len = job->update_json ? job->update_len : 0;
  return job->update_json;
}
struct job_owner *job_owner_of(const struct job *job) { return job->owner; }
enum job_end job_how_ended(const struct job *job) { return job->end; }
const char *job_error(const struct job *job) { return job->error; }
bool job_failure_reported(const struct job *job) {
  return job->failure_reported;
}
bool job_cancel_pending(const struct job *job) {
  return job->cancel_deferred;
}
long job_lua_bytes(const struct job *job) { return job->lua_bytes; }
void *job_slot_of(const struct job *job, const struct job_slot_ops *ops) {
  return job->slot_ops == ops ? job->slot : NULL;
}
struct job *task_job(const struct task *t) { return t->job; }

lua_State *job_thread(const struct job *job) {
  struct qnode *n = qlist_front(&job->tasks);
  return n ? qlist_entry(n, struct task, job_node)->co : NULL;
}

void task_set_on_end(struct task *t, task_end_fn fn, void *ud) {
  t->on_end = fn;
  t->end_ud = ud;
}

static void task_notify_end(struct task *t, enum task_end_kind kind,
                            int nres, const char *message) {
  task_end_fn fn = t->on_end;
  if (!fn) return;
  t->on_end = NULL;
  fn(t, kind, kind == TASK_RETURNED ? t->co : NULL, nres, message,
     t->end_ud);
}

static void job_record_failure(struct job *job, const char *msg) {
  if (job->end != JOB_CANCELLED) job->end = JOB_FAILED;
  if (!job->error) job->error = xstrdup(msg);
}

void job_park(struct job *job) {
  if (job->slot_ops) job->slot_ops->park(job, job->slot, JOB_PARK_BEHIND);
}

void job_park_handoff(struct job *job) {
  if (job->slot_ops) job->slot_ops->park(job, job->slot, JOB_PARK_HANDOFF);
}

void job_park_idle(struct job *job) {
  if (job->slot_ops) {
    job->slot_ops->park(job, job->slot, JOB_PARK_IDLE);
    return;
  }
  if (job->loose_idle) return;
  struct scheduler *s = job->sched;
  job->loose_idle = true;
  s->loose_idle_jobs++;
  if (s->live_jobs == s->background_jobs + s->loose_idle_jobs && s->on_idle)
    s->on_idle(s->idle_ud);
}

void job_unpark(struct job *job, void (*regained)(struct job *job, void *arg),
                void *arg) {
  job->slot_regained = regained;
  job->slot_regained_arg = arg;
  if (job->loose_idle) {
    job->loose_idle = false;
    job->sched->loose_idle_jobs--;
  }
  if (job->slot_ops) job->slot_ops->unpark(job, job->slot);
  else job_slot_regained(job);
}

void job_slot_regained(struct job *job) {
  void (*fn)(struct job *, void *) = job->slot_regained;
  job->slot_regained = NULL;
  if (fn) fn(job, job->slot_regained_arg);
}

static void job_finish(struct job *job) {
  struct scheduler *s = job->sched;
  enum job_kind kind = job->kind;
  bool loose_idle = job->loose_idle;
  /* A handler may register another (it runs too). */
  struct job_cleanup *c;
  while ((c = job->cleanups)) {
    job->cleanups = c->next;
    c->fn(job, c);
  }
  if (job->cancel_deferred) qlist_remove(&s->cancels, &job->cancel_node);
  qlist_remove(&s->jobs, &job->all_node);
  if (job->on_end) job->on_end(job, job->end_ud);
  job->owner->unref(job->owner);
  free(job->update_json);
  free(job->error);
  free(job);
  if (kind == JOB_BACKGROUND) s->background_jobs--;
  if (loose_idle) s->loose_idle_jobs--;
  if (--s->live_jobs == s->background_jobs + s->loose_idle_jobs && s->on_idle)
    s->on_idle(s->idle_ud);
}

static void job_maybe_finish(struct job *job) {
  if (!job->ending && qlist_empty(&job->tasks)) job_finish(job);
}

void job_abandon(struct job *job, const char *error) {
  job_record_failure(job, error);
  job_maybe_finish(job);
}

/* Tears a task down: releases its wait or pending wake, closes its
 * coroutine unless it returned normally, and drops the anchor. The job is
 * not finished here; callers decide when. */
static void task_destroy(struct task *t, bool returned, bool errored) {
  struct job *job = t->job;
  struct scheduler *s = job->sched;
  task_notify_end(t, TASK_CANCELLED, 0,
                  job->error ? job->error : "cancelled");
  if (t->wait_ops) {
    const struct task_wait_ops *ops = t->wait_ops;
    t->wait_ops = NULL;
    ops->cancel(t->wait_data);
  }
  if (qnode_linked(&t->ready_node)) qlist_remove(&s->ready, &t->ready_node);
  if (t->push) {
    t->push(NULL, t->push_data);
    t->push = NULL;
  }
  if (!returned && !job->dropping) {
    /* Runs the coroutine's pending to-be-closed variables, under the
     * guard (and with the task as the one running, for log lines). */
    struct task *was_running = s->running;
    s->running = t;
    int status = cpuguard_close_thread(&s->guard, t->co);
    s->running = was_running;
    /* For a coroutine that died of an error, Lua 5.4.4 returns that error
     * again; only a suspended one's status tells of a failing __close. */
    if (!errored && status != LUA_OK && status != LUA_YIELD) {
      struct log_fields f = job_log_fields(job);
      const char *msg = lua_tostring(t->co, -1);
      log_msg(LOG_WARN, &f, "error while closing a cancelled handler: %s",
              msg ? msg : "(non-string error)");
    }
  }
  luaL_unref(job->owner->L, LUA_REGISTRYINDEX, t->ref);
  qlist_remove(&job->tasks, &t->job_node);
  free(t);
}

static void job_cancel_now(struct job *job) {
  job->ending = true;
  job->end = job->closing_done ? JOB_DONE : JOB_CANCELLED;
  struct qnode *n;
  while ((n = qlist_front(&job->tasks)))
    task_destroy(qlist_entry(n, struct task, job_node), false, false);
  job->ending = false;
  job_finish(job);
}

void job_mark_failed(struct job *job, const char *error) {
  job_record_failure(job, error);
  job->failure_reported = true;
}

void job_close(struct job *job) {
  job->closing_done = true;
  job_cancel(job, NULL);
}

void job_drop(struct job *job) {
  job->dropping = true;
  job_close(job);
}

void job_cancel(struct job *job, const char *reason) {
  struct scheduler *s = job->sched;
  if (!job->error && reason) job->error = xstrdup(reason);
  if (s->running) {
    if (!job->cancel_deferred) {
      job->cancel_deferred = true;
      qlist_push_back(&s->cancels, &job->cancel_node);
      schedule(s);
    }
    return;
  }
  if (job->cancel_deferred) {
    qlist_remove(&s->cancels, &job->cancel_node);
    job->cancel_deferred = false;
  }
  job_cancel_now(job);
}

struct task *job_spawn(struct job *job, lua_State *from, int nargs) {
  lua_State *GL = job->owner->L;
  struct task *t = xcalloc(1, sizeof *t);
  t->job = job;
  t->co = lua_newthread(GL);
  t->ref = luaL_ref(GL, LUA_REGISTRYINDEX);
  t->initial_nargs = nargs;
  lua_xmove(from, t->co, nargs + 1);
  qlist_push_back(&job->tasks, &t->job_node);
  qlist_push_back(&job->sched->ready, &t->ready_node);
  schedule(job->sched);
  return t;
}

/* --- running ------------------------------------------------------------ */

/* The job's owner reports the failure when the job ends. */
static void task_failed(struct task *t, const char *msg, bool errored) {
  struct job *job = t->job;
  job_record_failure(job, msg);
  task_notify_end(t, TASK_FAILED, 0, msg);
  task_destroy(t, false, errored);
  job_maybe_finish(job);
}

static int tostring_protected(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Pushes onto L a description of the error object on top of co: its
 * __tostring if it has one (the script's Lua code: run protected and
 * under the guard, since the task's own run is over). */
static void describe_error(struct scheduler *s, lua_State *L, lua_State *co) {
  int type = lua_type(co, -1);
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    lua_pushstring(L, lua_tostring(co, -1));
    return;
  }
  lua_pushcfunction(L, tostring_protected);
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  if (cpuguard_pcall(&s->guard, L, 1, 1) != LUA_OK || !lua_isstring(L, -1)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(an error object of type %s)", lua_typename(L, type));
  }
}

/* Why the guard stopped t, naming where. */
static void stop_message(const struct scheduler *s, const struct task *t,
                         char *msg, size_t size) {
  const char *who = t->job->kind == JOB_LOAD ? "the script's top level"
                    : t->job->kind == JOB_UPDATE ? "handler"
                    : t->job->kind == JOB_SCHEDULED ? "job"
                                                 : "task";
  cpuguard_describe_stop(&s->guard, who, msg, size);
}

static void task_resume(struct scheduler *s, struct task *t) {
  int nargs;
  if (!t->started) {
    t->started = true;
    nargs = t->initial_nargs;
  } else {
    nargs = t->push ? t->push(t->co, t->push_data) : 0;
    t->push = NULL;
  }
  s->running = t;
  cpuguard_run_begin(&s->guard, t->co);
  int nres = 0;
  int status = lua_resume(t->co, NULL, nargs, &nres);
  bool stopped = cpuguard_run_end(&s->guard) != CPUGUARD_RUNS;
  s->running = NULL;

  if (status == LUA_YIELD) {
    if (stopped) {
      char msg[320];
      stop_message(s, t, msg, sizeof msg);
      task_failed(t, msg, false);
      return;
    }
    bool to_host = nres >= 1 &&
                   lua_touserdata(t->co, -nres) == &yield_sentinel &&
                   (t->wait_ops != NULL || t->push != NULL);
    lua_pop(t->co, nres);
    if (!to_host) {
      task_failed(t, "coroutine.yield() was called outside of a coroutine: "
                     "a handler may only suspend through tghost calls", false);
    }
    return;
  }
  if (status == LUA_OK) {
    task_notify_end(t, TASK_RETURNED, nres, NULL);
    lua_settop(t->co, 0);
    struct job *job = t->job;
    task_destroy(t, true, false);
    job_maybe_finish(job);
    return;
  }
  /* An error escaped the runtime's own error handling. */
  if (stopped) {
    /* "not enough memory" or the stop hook's own error: say why. */
    char stop[320];
    stop_message(s, t, stop, sizeof stop);
    task_failed(t, stop, true);
    return;
  }
  struct buf msg = BUF_INIT;
  lua_State *GL = t->job->owner->L;
  describe_error(s, GL, t->co);
  luaL_traceback(GL, t->co, lua_tostring(GL, -1), 0);
  lua_remove(GL, -2);
  buf_append_str(&msg, lua_tostring(GL, -1));
  lua_pop(GL, 1);
  task_failed(t, msg.data, true);
  buf_free(&msg);
}

static void on_ready(evutil_socket_t fd, short what, void *arg) {
  struct scheduler *s = arg;
  struct qnode *n;
  while ((n = qlist_pop_front(&s->cancels))) {
    struct job *job = qlist_entry(n, struct job, cancel_node);
    job->cancel_deferred = false;
    job_cancel_now(job);
  }
  /* Tasks woken while this pass runs wait for the next one, so the loop
   * gets to service sockets and timers in between. */
  size_t budget = qlist_size(&s->ready);
  while (budget-- > 0 && (n = qlist_pop_front(&s->ready))) {
    task_resume(s, qlist_entry(n, struct task, ready_node));
    while ((n = qlist_pop_front(&s->cancels))) {
      struct job *job = qlist_entry(n, struct job, cancel_node);
      job->cancel_deferred = false;
      job_cancel_now(job);
    }
  }
  if (!qlist_empty(&s->ready)) schedule(s);
}
