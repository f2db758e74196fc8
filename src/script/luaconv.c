#include "script/luaconv.h"

#include <lauxlib.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/keyhash.h"
#include "pipeline/conversation.h"
#include "script/luabind.h"
#include "script/luajson.h"
#include "script/luaseq.h"
#include "base/metrics.h"
#include "base/qlist.h"
#include "sched/task.h"
#include "pipeline/runopts.h"
#include "pipeline/update.h"

struct conv;

/* A key that has a conversation: in the table while its owner has it. */
struct conv_entry {
  struct convmap_node node;
  struct conv *owner;
  struct qlist held;            /* conv_holds, in arrival order */
  /* Updates of the key its waiting owner passed on (conv_claim) that have
   * not waited or ended yet: one may be a handler that starts a dialog on
   * the key, so the updates that came after them are held meanwhile. */
  size_t claims;
  bool detached;                /* out of the table, kept for its claims */
};

/* The entries whose waiting owner passed a job's update on to the
 * middleware: claimed until the job first waits (on any key) or ends. A
 * cleanup handler of the job. */
struct conv_claim {
  struct luaconv *lc;
  struct job_cleanup cleanup;
  size_t n;
  struct conv_entry *entries[4];
};

enum conv_state {
  CONV_RUNNING,                 /* owns its key (if any), not waiting */
  CONV_WAITING,                 /* in conv.wait, parked idle */
  CONV_WAKING,                  /* its wait is over: regaining keys, slot */
};

enum conv_outcome {
  OUT_NONE,
  OUT_UPDATE,                   /* outcome_ref: the context */
  OUT_TIMEOUT,
  OUT_CANCELLED,
  OUT_REPLACED,
  OUT_ERROR,                    /* outcome_ref: the error value */
};

/* A job's conversation (one per job), a cleanup handler of the job. */
struct conv {
  struct luaconv *lc;
  struct job *job;
  struct job_cleanup cleanup;
  struct conv_entry *entry;     /* the key it owns, or NULL */
  enum conv_state state;
  struct task *waiter;          /* its task in conv.wait, until resumed */
  int offer_ref;                /* while waiting, in the job's Lua state */
  char *site;                   /* the script's file:line of the wait */
  uint64_t waiting_since_ms;    /* while waiting (clock_now_ms) */
  uint64_t deadline_ms;         /* while waiting; 0: no timeout */
  struct event *timer;
  bool keys_aside;              /* its sequentialize keys are set aside */
  enum conv_outcome outcome;
  int outcome_ref;
  bool matched;
  /* Cancelled or replaced while running: its next wait says so. */
  enum conv_outcome pending;
  /* Its record is in a storage (lua/dialog.lua): a reload moves it to the
   * new generation instead of keeping the old one alive. */
  bool durable;
  /* The jobs of the answers it took since its record was last stored
   * (conv_receipts): they end when it is stored again, or with it. */
  struct qlist receipts;
};

/* An answer a durable conversation took: its update's job waits, parked
 * behind the conversation (which runs, and releases it at its next wait
 * or end: a graceful stop waits for that), until the conversation's
 * record has the answer, so that the journal counts it done only then (a
 * crash meanwhile hands it back, and the resumed dialog takes it again). */
struct conv_receipt {
  struct qnode node;            /* in conv->receipts while pending */
  struct conv *conv;            /* NULL once released */
  struct job *job;
  struct job_cleanup cleanup;
  struct task *waiter;          /* the job's task in conv.receipt_wait */
};

enum hold_state { HOLD_PENDING, HOLD_PASS, HOLD_CONSUMED };

/* An update held while its key's conversation runs; a cleanup handler of
 * the update's own job. */
struct conv_hold {
  struct qnode node;            /* in entry->held while pending */
  struct conv_entry *entry;     /* NULL once decided */
  struct luaconv *lc;
  struct job *job;
  struct job_cleanup cleanup;
  uint64_t serial;
  enum hold_state state;
  struct task *waiter;          /* the job's task in conv.hold_wait */
  /* Held after it got its sequentialize keys (conv.reroute): they are set
   * aside meanwhile, since the conversation it waits for may need them. */
  bool keys_aside;
};

/* Key namespaces (a key's first byte; see lua/conversation.lua), in the
 * order an update's keys are tried. */
static const char namespaces[] = "bkuc";
#define NAMESPACES 4

struct luaconv {
  struct script_env *env;
  struct convmap map;
  size_t in_namespace[NAMESPACES];  /* entries of each namespace */
  uint64_t serial;
  size_t waiting;               /* conversations in CONV_WAITING */
  size_t held;                  /* holds pending */
  /* The entries the update luaconv_route just routed was passed on by
   * (claimed for its job in luaconv_started). */
  struct conv_entry *offered[NAMESPACES];
  size_t n_offered;
  /* The generation new updates start in, as the last update routed or
   * reload told (luaconv_route, luaconv_move_durable): where a durable
   * conversation of a replaced one goes on. */
  struct generation *current;
};

/* User code that routing runs outside a task (a key function, a
 * conversation's filter) is guarded like a handler: cpuguard_pcall. */
static int guarded_pcall(struct luaconv *lc, lua_State *L, int nargs,
                         int nres) {
  return cpuguard_pcall(&lc->env->sched->guard, L, nargs, nres);
}

/* --- keys --------------------------------------------------------------- */

/* The namespace of a key (its first byte), or -1 (an integer key, or one
 * of no namespace: never produced by an update). */
static int namespace_of(const struct convmap_key *k) {
  if (k->type != CONVMAP_STRING || k->len == 0) return -1;
  const char *p = memchr(namespaces, k->str[0], NAMESPACES);
  return p ? (int)(p - namespaces) : -1;
}

static void count_key(struct luaconv *lc, const struct convmap_key *k,
                      int delta) {
  int ns = namespace_of(k);
  if (ns >= 0) lc->in_namespace[ns] += (size_t)delta;
}

/* Reads a key value at idx; false (with why) if it cannot be one. */
static bool to_key(lua_State *L, int idx, struct convmap_key *k,
                   const char **why) {
  memset(k, 0, sizeof *k);
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      k->type = CONVMAP_STRING;
      k->str = lua_tolstring(L, idx, &k->len);
      return true;
    case LUA_TNUMBER: {
      int isint = 0;
      lua_Integer v = lua_tointegerx(L, idx, &isint);
      if (!isint) {
        *why = "a number that is not an integer";
        return false;
      }
      k->type = CONVMAP_INTEGER;
      k->num = (int64_t)v;
      return true;
    }
    default:
      *why = luaL_typename(L, idx);
      return false;
  }
}

static void check_key(lua_State *L, int idx, struct convmap_key *k) {
  const char *why;
  if (!to_key(L, idx, k, &why))
    luaL_error(L, "ctx:wait: a conversation key must be a string or an "
               "integer, not %s", why);
}

/* --- entries and holds -------------------------------------------------- */

static struct conv_entry *entry_of(struct convmap_node *n) {
  return n ? (struct conv_entry *)((char *)n -
                                   offsetof(struct conv_entry, node))
           : NULL;
}

static int push_hold_result(lua_State *co, void *data) {
  struct conv_hold *hd = data;
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushboolean(co, hd->state == HOLD_CONSUMED);
  return 2;
}

static void on_hold_slot_back(struct job *job, void *arg) {
  struct conv_hold *hd = arg;
  struct task *t = hd->waiter;
  if (!t) return;
  hd->waiter = NULL;
  task_wake(t, push_hold_result, hd);
}

static void on_hold_keys_back(struct job *job, void *arg) {
  struct conv_hold *hd = arg;
  if (hd->waiter) job_unpark(job, on_hold_slot_back, hd);
}

/* Decides a pending hold: it leaves the queue; a waiting job resumes (a
 * consumed one at once: it only returns; one that runs on gets a slot
 * first). */
static void decide(struct conv_hold *hd, enum hold_state state) {
  struct conv_entry *e = hd->entry;
  qlist_remove(&e->held, &hd->node);
  hd->entry = NULL;
  hd->state = state;
  hd->lc->held--;
  if (!hd->waiter) return;
  if (state == HOLD_CONSUMED) {
    /* It only returns (its keys, if aside, go when it ends). */
    struct task *t = hd->waiter;
    hd->waiter = NULL;
    task_wake(t, push_hold_result, hd);
  } else if (hd->keys_aside) {
    /* It runs on: its keys first, behind whoever has them now. */
    hd->keys_aside = false;
    luaseq_rejoin(hd->lc->env->seq, hd->job, on_hold_keys_back, hd);
  } else {
    job_unpark(hd->job, on_hold_slot_back, hd);
  }
}

static void on_hold_job_end(struct job *job, struct job_cleanup *cl) {
  struct conv_hold *hd =
      (struct conv_hold *)((char *)cl - offsetof(struct conv_hold, cleanup));
  if (hd->entry) {
    qlist_remove(&hd->entry->held, &hd->node);
    hd->lc->held--;
  }
  free(hd);
}

static struct conv_hold *hold_of(struct job *job) {
  struct job_cleanup *cl = job_find_cleanup(job, on_hold_job_end);
  return cl ? (struct conv_hold *)((char *)cl -
                                   offsetof(struct conv_hold, cleanup))
            : NULL;
}

/* The owner lets its key go: updates held for it run through the
 * middleware, in order, and the key leaves the table. */
static void let_go(struct conv *c) {
  struct conv_entry *e = c->entry;
  if (!e) return;
  c->entry = NULL;
  e->owner = NULL;
  struct qnode *n;
  while ((n = qlist_front(&e->held)))
    decide(qlist_entry(n, struct conv_hold, node), HOLD_PASS);
  struct convmap_key k = convmap_node_key(&e->node);
  count_key(c->lc, &k, -1);
  convmap_remove(&c->lc->map, &e->node);
  if (e->claims) e->detached = true;
  else free(e);
}

/* --- claims ------------------------------------------------------------- */

static bool offer(struct luaconv *lc, struct conv *c,
                  const struct update_item *u);
static struct conv_receipt *receipt_new(struct conv *c, struct job *job);
static void claim(struct luaconv *lc, struct job *job, struct conv_entry *e);

/* Nothing claims e any more: its waiting owner is offered the first update
 * held meanwhile. Taken, the owner runs and finds the rest at its next
 * wait; passed on, that update claims e in turn. */
static void unclaimed(struct luaconv *lc, struct conv_entry *e) {
  struct conv *c = e->owner;
  struct qnode *front = qlist_front(&e->held);
  if (!c || c->state != CONV_WAITING || !front) return;
  struct conv_hold *hd = qlist_entry(front, struct conv_hold, node);
  size_t len;
  const char *json = job_update_json(hd->job, &len);
  struct update_item u = {.id = job_update_id(hd->job), .json = (char *)json,
                          .len = len};
  if (json && offer(lc, c, &u)) {
    if (c->durable) receipt_new(c, hd->job);
    decide(hd, HOLD_CONSUMED);
    return;
  }
  struct job *job = hd->job;
  decide(hd, HOLD_PASS);
  claim(lc, job, e);
}

static void unclaim(struct luaconv *lc, struct conv_entry *e) {
  if (--e->claims) return;
  if (e->detached) free(e);
  else unclaimed(lc, e);
}

static void release_claims(struct conv_claim *cl) {
  size_t n = cl->n;
  cl->n = 0;
  for (size_t i = 0; i < n; i++) unclaim(cl->lc, cl->entries[i]);
}

static void on_claim_job_end(struct job *job, struct job_cleanup *cl) {
  struct conv_claim *c =
      (struct conv_claim *)((char *)cl - offsetof(struct conv_claim, cleanup));
  release_claims(c);
  free(c);
}

static struct conv_claim *claim_of(struct job *job) {
  struct job_cleanup *cl = job_find_cleanup(job, on_claim_job_end);
  return cl ? (struct conv_claim *)((char *)cl -
                                    offsetof(struct conv_claim, cleanup))
            : NULL;
}

static void claim(struct luaconv *lc, struct job *job, struct conv_entry *e) {
  struct conv_claim *cl = claim_of(job);
  if (!cl) {
    cl = xcalloc(1, sizeof *cl);
    cl->lc = lc;
    cl->cleanup.fn = on_claim_job_end;
    job_add_cleanup(job, &cl->cleanup);
  }
  for (size_t i = 0; i < cl->n; i++)
    if (cl->entries[i] == e) return;
  if (cl->n == sizeof cl->entries / sizeof cl->entries[0]) return;
  cl->entries[cl->n++] = e;
  e->claims++;
}

/* Whether updates of e other than job's own claim it. */
static bool claimed_by_others(struct conv_entry *e, struct job *job) {
  size_t own = 0;
  struct conv_claim *cl = claim_of(job);
  for (size_t i = 0; cl && i < cl->n; i++) own += cl->entries[i] == e;
  return e->claims > own;
}

/* --- waking a waiting conversation -------------------------------------- */

static void drop_ref(struct conv *c, int *ref) {
  if (*ref != LUA_NOREF) luaL_unref(job_owner_of(c->job)->L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

static int push_outcome(lua_State *co, void *data) {
  struct conv *c = data;
  int n = 0;
  if (co) {
    luaL_checkstack(co, 4, "ctx:wait");
    lua_pushboolean(co, 1);
    n = 2;
    switch (c->outcome) {
      case OUT_UPDATE:
        lua_pushliteral(co, "update");
        lua_rawgeti(co, LUA_REGISTRYINDEX, c->outcome_ref);
        lua_pushboolean(co, c->matched);
        n = 4;
        break;
      case OUT_TIMEOUT:
        lua_pushliteral(co, "timeout");
        break;
      case OUT_CANCELLED:
      case OUT_REPLACED:
        lua_pushliteral(co, "cancelled");
        lua_pushstring(co, c->outcome == OUT_REPLACED ? "replaced"
                                                      : "cancelled");
        n = 3;
        break;
      case OUT_ERROR:
        lua_pushliteral(co, "error");
        lua_rawgeti(co, LUA_REGISTRYINDEX, c->outcome_ref);
        n = 3;
        break;
      case OUT_NONE:
        lua_pushliteral(co, "cancelled");
        lua_pushliteral(co, "cancelled");
        n = 3;
        break;
    }
  }
  drop_ref(c, &c->outcome_ref);
  c->outcome = OUT_NONE;
  c->state = CONV_RUNNING;
  return n;
}

static void on_slot_back(struct job *job, void *arg) {
  struct conv *c = arg;
  struct task *t = c->waiter;
  if (!t) return;
  c->waiter = NULL;
  task_wake(t, push_outcome, c);
}

static void on_keys_back(struct job *job, void *arg) {
  struct conv *c = arg;
  if (c->waiter) job_unpark(job, on_slot_back, c);
}

/* The wait is over: the conversation takes its sequentialize keys back
 * (behind whoever has them now), then a slot, then resumes. ref (or
 * LUA_NOREF) is taken over. */
static void deliver(struct conv *c, enum conv_outcome outcome, int ref,
                    bool matched) {
  struct luaconv *lc = c->lc;
  c->state = CONV_WAKING;
  lc->waiting--;
  metrics_set_conversations_waiting(lc->waiting);
  if (c->timer) evtimer_del(c->timer);
  drop_ref(c, &c->offer_ref);
  c->outcome = outcome;
  c->outcome_ref = ref;
  c->matched = matched;
  if (c->keys_aside) {
    c->keys_aside = false;
    job_park(c->job);            /* it now waits behind other jobs */
    luaseq_rejoin(lc->env->seq, c->job, on_keys_back, c);
  } else {
    on_keys_back(c->job, c);
  }
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  struct conv *c = arg;
  if (c->state == CONV_WAITING) deliver(c, OUT_TIMEOUT, LUA_NOREF, false);
}

/* The wait ends without a wake: the job is being cancelled (its coroutine
 * is closed next), or the yield could not reach the host and the task runs
 * on. Either way it runs again as far as the accounts go. */
static void no_callback(struct job *job, void *arg) {}

static void wait_cancel(void *data) {
  struct conv *c = data;
  struct luaconv *lc = c->lc;
  /* First: nothing may wake the task from here on. */
  c->waiter = NULL;
  if (c->state == CONV_WAITING) {
    lc->waiting--;
    metrics_set_conversations_waiting(lc->waiting);
    if (c->timer) evtimer_del(c->timer);
    drop_ref(c, &c->offer_ref);
    if (c->keys_aside) {
      c->keys_aside = false;
      luaseq_rejoin(lc->env->seq, c->job, no_callback, NULL);
    }
  }
  drop_ref(c, &c->outcome_ref);
  c->outcome = OUT_NONE;
  c->state = CONV_RUNNING;
  job_unpark(c->job, NULL, NULL);
}

static const struct task_wait_ops conv_wait_ops = {"ctx:wait", wait_cancel};

/* --- receipts ----------------------------------------------------------- */

/* conv.receipt_wait and conv.reroute return true: the update was the
 * conversation's (sequentialize then runs no middleware for it). */
static int push_taken(lua_State *co, void *data) {
  if (!co) return 0;
  lua_pushboolean(co, 1);
  lua_pushboolean(co, 1);
  return 2;
}

static void on_receipt_slot_back(struct job *job, void *arg) {
  struct conv_receipt *r = arg;
  struct task *t = r->waiter;
  if (!t) return;
  r->waiter = NULL;
  task_wake(t, push_taken, NULL);
}

/* r's answer is in the record (or the conversation ended): its job ends. */
static void release(struct conv_receipt *r) {
  if (!r->conv) return;
  qlist_remove(&r->conv->receipts, &r->node);
  r->conv = NULL;
  if (r->waiter) job_unpark(r->job, on_receipt_slot_back, r);
}

static void release_all(struct conv *c) {
  struct qnode *n;
  while ((n = qlist_front(&c->receipts)))
    release(qlist_entry(n, struct conv_receipt, node));
}

static void on_receipt_job_end(struct job *job, struct job_cleanup *cl) {
  struct conv_receipt *r = (struct conv_receipt *)((char *)cl -
                                offsetof(struct conv_receipt, cleanup));
  if (r->conv) qlist_remove(&r->conv->receipts, &r->node);
  free(r);
}

static struct conv_receipt *receipt_of(struct job *job) {
  struct job_cleanup *cl = job_find_cleanup(job, on_receipt_job_end);
  return cl ? (struct conv_receipt *)((char *)cl -
                  offsetof(struct conv_receipt, cleanup))
            : NULL;
}

/* A receipt of c's, for a job to come (luaconv_receipt) or this one. */
static struct conv_receipt *receipt_new(struct conv *c, struct job *job) {
  struct conv_receipt *r = xcalloc(1, sizeof *r);
  r->conv = c;
  qlist_push_back(&c->receipts, &r->node);
  r->cleanup.fn = on_receipt_job_end;
  if (job) {
    r->job = job;
    job_add_cleanup(job, &r->cleanup);
  }
  return r;
}

static void receipt_wait_cancel(void *data) {
  struct conv_receipt *r = data;
  r->waiter = NULL;
  job_unpark(r->job, NULL, NULL);
}

static const struct task_wait_ops receipt_wait_ops = {"conversation",
                                                      receipt_wait_cancel};

/* Makes the running task wait until its receipt is released. */
static int wait_released(lua_State *L, struct task *t,
                         struct conv_receipt *r) {
  if (!r->conv) {
    lua_pushboolean(L, 1);
    return 1;
  }
  r->waiter = t;
  job_park_handoff(r->job);
  lua_settop(L, 0);
  return task_wait(L, t, &receipt_wait_ops, r);
}

/* --- conversations ------------------------------------------------------ */

static void on_conv_job_end(struct job *job, struct job_cleanup *cl) {
  struct conv *c =
      (struct conv *)((char *)cl - offsetof(struct conv, cleanup));
  if (c->state == CONV_WAITING) {
    c->lc->waiting--;
    metrics_set_conversations_waiting(c->lc->waiting);
  }
  release_all(c);
  let_go(c);
  if (c->timer) event_free(c->timer);
  drop_ref(c, &c->offer_ref);
  drop_ref(c, &c->outcome_ref);
  free(c->site);
  free(c);
}

static struct conv *conv_of(struct job *job) {
  struct job_cleanup *cl = job_find_cleanup(job, on_conv_job_end);
  return cl ? (struct conv *)((char *)cl - offsetof(struct conv, cleanup))
            : NULL;
}

static struct conv *conv_get(struct luaconv *lc, struct job *job) {
  struct conv *c = conv_of(job);
  if (c) return c;
  c = xcalloc(1, sizeof *c);
  c->lc = lc;
  c->job = job;
  c->state = CONV_RUNNING;
  c->offer_ref = LUA_NOREF;
  c->outcome_ref = LUA_NOREF;
  qlist_init(&c->receipts);
  c->cleanup.fn = on_conv_job_end;
  job_add_cleanup(job, &c->cleanup);
  return c;
}

/* c owns the key k from now on; another owner is replaced. */
static struct conv_entry *take_key(struct conv *c,
                                   const struct convmap_key *k) {
  struct luaconv *lc = c->lc;
  struct conv_entry *e = entry_of(convmap_find(&lc->map, k));
  if (e && e == c->entry) return e;
  let_go(c);
  if (!e) {
    e = xcalloc(1, sizeof *e);
    qlist_init(&e->held);
    convmap_insert(&lc->map, &e->node, k);
    count_key(lc, k, +1);
  } else if (e->owner) {
    struct conv *other = e->owner;
    other->entry = NULL;
    if (other->state == CONV_WAITING)
      deliver(other, OUT_REPLACED, LUA_NOREF, false);
    else
      other->pending = OUT_REPLACED;
  }
  e->owner = c;
  c->entry = e;
  return e;
}

static bool offer(struct luaconv *lc, struct conv *c,
                  const struct update_item *u);

/* Queues job's update for the key's running conversation. */
static struct conv_hold *hold_new(struct luaconv *lc, struct conv_entry *e) {
  struct conv_hold *hd = xcalloc(1, sizeof *hd);
  hd->lc = lc;
  hd->cleanup.fn = on_hold_job_end;
  hd->entry = e;
  hd->serial = ++lc->serial;
  hd->state = HOLD_PENDING;
  qlist_push_back(&e->held, &hd->node);
  lc->held++;
  return hd;
}

/* --- the module --------------------------------------------------------- */

static struct luaconv *lc_of(lua_State *L) { return env_of(L)->conv; }

/* conv.wait(key, offer [, timeout [, site [, durable]]]) */
static int l_wait(lua_State *L) {
  struct script_env *env = env_of(L);
  struct luaconv *lc = env->conv;
  struct task *t = task_check_can_wait(L, env->sched, "ctx:wait");
  struct job *job = task_job(t);
  if (job_kind(job) != JOB_UPDATE)
    return luaL_error(L, "ctx:wait can only be called while handling an "
                         "update");
  struct convmap_key k;
  check_key(L, 1, &k);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  double timeout = -1;
  if (!lua_isnoneornil(L, 3)) {
    timeout = luaL_checknumber(L, 3);
    luaL_argcheck(L, timeout >= 0 && timeout < 1e9, 3,
                  "the timeout must be a non-negative number of seconds");
  }
  const char *site = luaL_optstring(L, 4, NULL);
  bool durable = lua_toboolean(L, 5);
  struct conv *c = conv_get(lc, job);
  if (c->state != CONV_RUNNING)
    return luaL_error(L, "ctx:wait: another task of this update is waiting "
                         "already (one wait at a time per update)");
  if (c->pending != OUT_NONE) {
    bool replaced = c->pending == OUT_REPLACED;
    c->pending = OUT_NONE;
    lua_pushliteral(L, "cancelled");
    lua_pushstring(L, replaced ? "replaced" : "cancelled");
    return 2;
  }
  struct conv_entry *e = take_key(c, &k);
  c->durable = durable;
  /* Its update no longer holds back others' (it took the key, or waits on
   * another). */
  struct conv_claim *claims = claim_of(job);
  if (claims) release_claims(claims);
  struct qnode *front = e->claims ? NULL : qlist_front(&e->held);
  if (front) {
    struct conv_hold *hd = qlist_entry(front, struct conv_hold, node);
    lua_pushliteral(L, "held");
    size_t held_len;
    const char *held_json = job_update_json(hd->job, &held_len);
    if (held_json)
      lua_pushlstring(L, held_json, held_len);
    else
      lua_pushliteral(L, "{}");
    lua_pushinteger(L, (lua_Integer)hd->serial);
    return 3;
  }
  lua_pushvalue(L, 2);
  c->offer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  free(c->site);
  c->site = site ? xstrdup(site) : NULL;
  c->waiting_since_ms = clock_now_ms();
  c->deadline_ms = timeout >= 0 ? c->waiting_since_ms +
                                      (uint64_t)(timeout * 1000) : 0;
  if (timeout >= 0) {
    if (!c->timer) c->timer = evtimer_new(env->base, on_timer, c);
    long usec = (long)(timeout * 1e6);
    struct timeval tv = {usec / 1000000, usec % 1000000};
    event_base_update_cache_time(env->base);
    evtimer_add(c->timer, &tv);
  }
  c->keys_aside = luaseq_step_aside(env->seq, job);
  c->state = CONV_WAITING;
  c->waiter = t;
  lc->waiting++;
  metrics_set_conversations_waiting(lc->waiting);
  job_park_idle(job);
  lua_settop(L, 0);
  return task_wait(L, t, &conv_wait_ops, c);
}

/* conv.take(key): the running update's conversation takes key before it
 * waits on it (a durable dialog, while its record is written): updates of
 * the key are held for it from now on, so an answer that comes meanwhile
 * reaches its wait instead of the middleware. */
static int l_take(lua_State *L) {
  struct script_env *env = env_of(L);
  struct task *t = sched_running(env->sched);
  struct job *job = t ? task_job(t) : NULL;
  if (!job || job_kind(job) != JOB_UPDATE) return 0;
  struct convmap_key k;
  check_key(L, 1, &k);
  struct conv *c = conv_get(env->conv, job);
  if (c->state == CONV_RUNNING && c->pending == OUT_NONE) take_key(c, &k);
  return 0;
}

/* conv.settle(serial, consumed) */
static int l_settle(lua_State *L) {
  struct script_env *env = env_of(L);
  lua_Integer serial = luaL_checkinteger(L, 1);
  bool consumed = lua_toboolean(L, 2);
  struct task *t = sched_running(env->sched);
  struct conv *c = t ? conv_of(task_job(t)) : NULL;
  if (!c || !c->entry) return 0;
  qlist_foreach(n, &c->entry->held) {
    struct conv_hold *hd = qlist_entry(n, struct conv_hold, node);
    if (hd->serial == (uint64_t)serial) {
      /* A durable conversation's answer is done once its record has it. */
      if (consumed && c->durable) receipt_new(c, hd->job);
      decide(hd, consumed ? HOLD_CONSUMED : HOLD_PASS);
      break;
    }
  }
  return 0;
}

static void no_callback(struct job *job, void *arg);

static void hold_wait_cancel(void *data) {
  struct conv_hold *hd = data;
  hd->waiter = NULL;
  if (hd->keys_aside) {
    hd->keys_aside = false;
    luaseq_rejoin(hd->lc->env->seq, hd->job, no_callback, NULL);
  }
  job_unpark(hd->job, NULL, NULL);
}

static const struct task_wait_ops hold_wait_ops = {"conversation",
                                                   hold_wait_cancel};

/* conv.hold_wait() -> consumed */
static int l_hold_wait(lua_State *L) {
  struct script_env *env = env_of(L);
  struct task *t = task_check_can_wait(L, env->sched, "conversation");
  struct conv_hold *hd = hold_of(task_job(t));
  if (!hd) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (hd->state != HOLD_PENDING) {
    lua_pushboolean(L, hd->state == HOLD_CONSUMED);
    return 1;
  }
  hd->waiter = t;
  job_park(hd->job);
  lua_settop(L, 0);
  return task_wait(L, t, &hold_wait_ops, hd);
}

/* conv.reroute(key, ...) -> consumed: routes the running update again, as
 * if it came now (sequentialize calls it after the update waited for its
 * keys: a conversation of one of its keys, most specific first, may have
 * started waiting meanwhile). */
static int l_reroute(lua_State *L) {
  struct script_env *env = env_of(L);
  struct luaconv *lc = env->conv;
  struct task *t = task_check_can_wait(L, env->sched, "conversation");
  struct job *job = task_job(t);
  size_t len;
  const char *json = job_update_json(job, &len);
  if (job_kind(job) != JOB_UPDATE || !json) {
    lua_pushboolean(L, 0);
    return 1;
  }
  struct update_item u = {.id = job_update_id(job), .json = (char *)json,
                          .len = len};
  struct conv_entry *e = NULL;
  for (int i = 1, top = lua_gettop(L); i <= top && !e; i++) {
    if (lua_isnil(L, i)) continue;
    struct convmap_key k;
    check_key(L, i, &k);
    struct conv_entry *found = entry_of(convmap_find(&lc->map, &k));
    struct conv *c = found ? found->owner : NULL;
    if (!c || c->job == job) continue;
    if (c->state != CONV_WAITING || claimed_by_others(found, job)) {
      e = found;              /* running: the update is held for it */
    } else if (offer(lc, c, &u)) {
      if (!c->durable) {
        lua_pushboolean(L, 1);
        return 1;
      }
      /* Done once the durable conversation's record has it; meanwhile its
       * keys are the conversation's, which takes them back to go on (they
       * go when this job ends). */
      luaseq_step_aside(env->seq, job);
      return wait_released(L, t, receipt_new(c, job));
    } else {
      claim(lc, job, found);
    }
  }
  if (!e) {
    lua_pushboolean(L, 0);
    return 1;
  }
  struct conv_hold *hd = hold_of(job);
  if (hd && hd->entry) {   /* held already (cannot happen): let it run */
    lua_pushboolean(L, 0);
    return 1;
  }
  if (hd) {
    hd->entry = e;
    hd->serial = ++lc->serial;
    hd->state = HOLD_PENDING;
    qlist_push_back(&e->held, &hd->node);
    lc->held++;
  } else {
    hd = hold_new(lc, e);
    luaconv_hold(lc, hd, job);
  }
  hd->waiter = t;
  /* Whatever it holds, the conversation may be waiting for (it is taking
   * its own keys back behind this update, say). */
  hd->keys_aside = luaseq_step_aside(env->seq, job);
  job_park(job);
  lua_settop(L, 0);
  return task_wait(L, t, &hold_wait_ops, hd);
}

/* --- durable conversations --------------------------------------------- */

static void on_resumed_end(struct job *job, void *ud) {
  if (job_how_ended(job) != JOB_FAILED || job_failure_reported(job)) return;
  struct log_fields f = job_log_fields(job);
  log_msg(LOG_ERROR, &f, "a resumed conversation failed: %s",
          job_error(job) ? job_error(job) : "(no message)");
}

/* A job of g for a conversation that resumes: handling update id (json
 * copied, may be NULL), with its conversation made durable. */
static struct conv *resumed_conv(struct luaconv *lc, struct generation *g,
                                 int64_t id, const char *json, size_t len) {
  struct job_params p = {JOB_UPDATE, id, json ? xstrndup(json, len) : NULL,
                         json ? len : 0, on_resumed_end, NULL};
  struct job *job = job_new(g->env->sched, &g->owner, &p);
  struct conv *c = conv_get(lc, job);
  c->durable = true;
  return c;
}

/* conv.resume(key, update_id, update_json, fn, ...) -> bool: starts
 * fn(...) as a job of this generation handling update_id, which owns key
 * from now on (updates of key are held for it until it waits); false,
 * starting nothing, if key has a conversation already. */
static int l_resume(lua_State *L) {
  struct luaconv *lc = lc_of(L);
  struct convmap_key k;
  check_key(L, 1, &k);
  lua_Integer id = luaL_checkinteger(L, 2);
  size_t len;
  const char *json = luaL_checklstring(L, 3, &len);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  struct conv_entry *e = entry_of(convmap_find(&lc->map, &k));
  if (e && e->owner) {
    lua_pushboolean(L, 0);
    return 1;
  }
  struct conv *c = resumed_conv(lc, gen_of(L), id, json, len);
  take_key(c, &k);
  /* The key string is on the stack below what job_spawn moves. */
  job_spawn(c->job, L, lua_gettop(L) - 4);
  lua_pushboolean(L, 1);
  return 1;
}

/* In a cluster a waiting durable conversation stays in its generation at
 * a reload: its first update, which the runner's source keeps unfinished
 * while it waits (the cluster partition's record), is what resumes it at
 * the partition's next owner; a job that moved would end that update. */
static bool in_cluster(const struct luaconv *lc, const struct generation *g) {
  return lc->env->cluster || (g->run_opts && g->run_opts->cluster_url);
}

/* Starts old's conversation again in g (runtime.resume_dialog_key(key)
 * replays its record), handing its key over at once so that nothing of
 * the key slips past it meanwhile. false if g cannot (no storage for
 * conversations there). */
static bool move_to(struct luaconv *lc, struct conv *old,
                    struct generation *g) {
  lua_State *GL = g->owner.L;
  int top = lua_gettop(GL);
  if (!old->entry || !gen_push_runtime_fn(g, "dialogs_durable")) return false;
  bool durable = lua_pcall(GL, 0, 1, 0) == LUA_OK && lua_toboolean(GL, -1);
  lua_settop(GL, top);
  if (!durable || !gen_push_runtime_fn(g, "resume_dialog_key")) return false;
  struct convmap_key k = convmap_node_key(&old->entry->node);
  if (k.type == CONVMAP_STRING) lua_pushlstring(GL, k.str, k.len);
  else lua_pushinteger(GL, (lua_Integer)k.num);
  size_t len;
  const char *json = job_update_json(old->job, &len);
  struct conv *c = resumed_conv(lc, g, job_update_id(old->job), json, len);
  struct conv_entry *e = old->entry;
  old->entry = NULL;
  e->owner = c;
  c->entry = e;
  job_spawn(c->job, GL, 1);
  return true;
}

/* conv.receipt_wait() -> true: in an answer's job (route "receipt"):
 * waits until the durable conversation that took it has it in its stored
 * record, or has ended. */
static int l_receipt_wait(lua_State *L) {
  struct task *t = task_check_can_wait(L, env_of(L)->sched, "conversation");
  struct conv_receipt *r = receipt_of(task_job(t));
  if (!r) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return wait_released(L, t, r);
}

/* conv.release_receipts(): the running conversation's record was stored:
 * the answers it took so far are in it. */
static int l_release_receipts(lua_State *L) {
  struct task *t = sched_running(env_of(L)->sched);
  struct conv *c = t ? conv_of(task_job(t)) : NULL;
  if (c) release_all(c);
  return 0;
}

/* conv.update_json() -> the running job's update as it came (JSON), or
 * nil. */
static int l_update_json(lua_State *L) {
  struct task *t = sched_running(env_of(L)->sched);
  size_t len;
  const char *json = t ? job_update_json(task_job(t), &len) : NULL;
  if (json) lua_pushlstring(L, json, len);
  else lua_pushnil(L);
  return 1;
}

/* conv.stale() -> whether the running code's generation is no longer the
 * one new updates start in (a reload replaced it). */
static int l_stale(lua_State *L) {
  lua_pushboolean(L, gen_of(L)->retiring);
  return 1;
}

static void moved_cancel(void *data) {}
static const struct task_wait_ops moved_wait_ops = {"moved", moved_cancel};

/* conv.move() -> false | (does not return): the running durable
 * conversation, whose record is stored, goes on in the current generation
 * (replaying it); this job ends where it stands, its coroutines not
 * closed. false if the current generation cannot take it. */
static int l_move(lua_State *L) {
  struct luaconv *lc = lc_of(L);
  struct task *t = task_check_can_wait(L, lc->env->sched, "conversation");
  struct conv *c = conv_of(task_job(t));
  struct generation *current = lc->current;
  if (!c || !current || current == gen_of(L) || in_cluster(lc, current) ||
      !move_to(lc, c, current)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  struct log_fields f = job_log_fields(task_job(t));
  log_msg(LOG_INFO, &f, "1 durable conversation moves to generation %d at "
          "its wait (replayed from its record)", current->owner.id);
  job_drop(task_job(t));
  lua_settop(L, 0);
  return task_wait(L, t, &moved_wait_ops, NULL);
}

void luaconv_move_durable(struct luaconv *lc, struct generation *current) {
  lc->current = current;
  if (in_cluster(lc, current)) return;
  size_t n = 0, cap = 0;
  struct conv **list = NULL;
  size_t bucket;
  for (struct hashmap_node *hn = hashmap_first(&lc->map.map, &bucket); hn;
       hn = hashmap_next(&lc->map.map, hn, &bucket)) {
    struct conv_entry *e = entry_of(
        (struct convmap_node *)((char *)hn - offsetof(struct convmap_node, node)));
    struct conv *c = e->owner;
    if (!c || !c->durable || c->state != CONV_WAITING ||
        job_owner_of(c->job) == &current->owner)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      list = xrealloc(list, cap * sizeof *list);
    }
    list[n++] = c;
  }
  /* Ending a job may start others (which route updates): the table is
   * not walked while that happens. */
  size_t moved = 0;
  for (size_t i = 0; i < n; i++) {
    if (!move_to(lc, list[i], current)) continue;
    job_drop(list[i]->job);
    moved++;
  }
  free(list);
  if (moved) {
    struct log_fields f = {current->owner.id, -1};
    log_msg(LOG_INFO, &f, "%zu waiting durable conversation(s) move to "
            "generation %d (replayed from their records)", moved,
            current->owner.id);
  }
}

/* The letters of the namespaces that have conversations, in routing
 * order, into out (NAMESPACES + 1 bytes); their number. */
static size_t active_namespaces(const struct luaconv *lc, char *out) {
  size_t n = 0;
  for (int i = 0; i < NAMESPACES; i++)
    if (lc->in_namespace[i]) out[n++] = namespaces[i];
  out[n] = '\0';
  return n;
}

/* conv.namespaces() -> the letters of the key namespaces some conversation
 * uses ("" if none): the keys worth computing for an update. */
static int l_namespaces(lua_State *L) {
  char active[NAMESPACES + 1];
  active_namespaces(lc_of(L), active);
  lua_pushstring(L, active);
  return 1;
}

/* conv.active() -> whether any conversation exists */
static int l_active(lua_State *L) {
  lua_pushboolean(L, convmap_count(&lc_of(L)->map) > 0);
  return 1;
}

/* conv.cancel(key, ...) -> bool: ends the conversation of the first key
 * that has one. */
static int l_cancel(lua_State *L) {
  struct luaconv *lc = lc_of(L);
  struct conv *c = NULL;
  for (int i = 1, top = lua_gettop(L); i <= top && !c; i++) {
    if (lua_isnil(L, i)) continue;
    struct convmap_key k;
    check_key(L, i, &k);
    struct conv_entry *e = entry_of(convmap_find(&lc->map, &k));
    c = e ? e->owner : NULL;
  }
  if (!c) {
    lua_pushboolean(L, 0);
    return 1;
  }
  let_go(c);
  if (c->state == CONV_WAITING) deliver(c, OUT_CANCELLED, LUA_NOREF, false);
  else c->pending = OUT_CANCELLED;
  lua_pushboolean(L, 1);
  return 1;
}

static int l_stats(lua_State *L) {
  struct luaconv *lc = lc_of(L);
  lua_pushinteger(L, (lua_Integer)convmap_count(&lc->map));
  lua_pushinteger(L, (lua_Integer)lc->waiting);
  lua_pushinteger(L, (lua_Integer)lc->held);
  return 3;
}

int luaopen_tghost_conv(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"wait", l_wait},
      {"take", l_take},
      {"settle", l_settle},
      {"hold_wait", l_hold_wait},
      {"cancel", l_cancel},
      {"reroute", l_reroute},
      {"active", l_active},
      {"namespaces", l_namespaces},
      {"stats", l_stats},
      {"resume", l_resume},
      {"stale", l_stale},
      {"update_json", l_update_json},
      {"receipt_wait", l_receipt_wait},
      {"release_receipts", l_release_receipts},
      {"move", l_move},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/* --- routing ------------------------------------------------------------ */

/* The update's keys (on L's top: the decoded update) for the namespaces
 * that have conversations, most specific first, by the current
 * generation's lua/conversation.lua: pushed, and their number returned (0
 * if none, or the key function failed). */
static int push_update_keys(struct luaconv *lc, struct generation *g,
                            const struct update_item *u) {
  lua_State *L = g->owner.L;
  struct log_fields f = {g->owner.id, u->id};
  char active[NAMESPACES + 1];
  if (active_namespaces(lc, active) == 0) return 0;
  int base = lua_gettop(L);
  if (!gen_push_runtime_fn(g, "conversation_keys")) return 0;
  lua_pushvalue(L, -2);
  lua_pushstring(L, active);
  if (guarded_pcall(lc, L, 2, LUA_MULTRET) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    log_msg(LOG_ERROR, &f, "the conversation key function failed (the "
            "update runs through the middleware): %s",
            msg ? msg : "(an error object)");
    lua_settop(L, base);
    return 0;
  }
  return lua_gettop(L) - base;
}

/* Offers the update to c (waiting): true if c took it. */
static bool offer(struct luaconv *lc, struct conv *c,
                  const struct update_item *u) {
  lua_State *GL = job_owner_of(c->job)->L;
  int top = lua_gettop(GL);
  lua_rawgeti(GL, LUA_REGISTRYINDEX, c->offer_ref);
  if (luajson_decode(GL, u->json, u->len, NULL) != 0) {
    lua_settop(GL, top);
    return false;
  }
  if (guarded_pcall(lc, GL, 1, 2) != LUA_OK) {
    /* The filter's error is the waiting handler's to handle. */
    int ref = luaL_ref(GL, LUA_REGISTRYINDEX);
    lua_settop(GL, top);
    deliver(c, OUT_ERROR, ref, false);
    return false;
  }
  if (lua_isnil(GL, -2)) {
    lua_settop(GL, top);
    return false;
  }
  bool matched = lua_toboolean(GL, -1);
  lua_pop(GL, 1);
  int ref = luaL_ref(GL, LUA_REGISTRYINDEX);
  lua_settop(GL, top);
  struct log_fields f = {job_owner_of(c->job)->id, u->id};
  log_msg(LOG_DEBUG, &f, "answers the conversation of update %lld",
          (long long)job_update_id(c->job));
  deliver(c, OUT_UPDATE, ref, matched);
  return true;
}

enum luaconv_route luaconv_route(struct luaconv *lc, struct generation *g,
                                 const struct update_item *u,
                                 struct conv_hold **hold,
                                 struct conv_receipt **receipt) {
  *hold = NULL;
  *receipt = NULL;
  lc->n_offered = 0;
  lc->current = g;
  if (convmap_count(&lc->map) == 0) return LUACONV_START;
  lua_State *L = g->owner.L;
  int top = lua_gettop(L);
  int n = push_update_keys(lc, g, u);
  enum luaconv_route route = LUACONV_START;
  /* Its keys, most specific first: a waiting conversation that does not
   * want it passes it on to the next; a running one holds it. */
  for (int i = top + 1; i <= top + n; i++) {
    struct convmap_key k;
    const char *why = "not a string";
    if (lua_type(L, i) != LUA_TSTRING || !to_key(L, i, &k, &why)) continue;
    struct conv_entry *e = entry_of(convmap_find(&lc->map, &k));
    struct conv *c = e ? e->owner : NULL;
    if (!c) continue;
    if (c->state != CONV_WAITING || e->claims) {
      *hold = hold_new(lc, e);
      route = LUACONV_HOLD;
      break;
    }
    if (offer(lc, c, u)) {
      route = LUACONV_CONSUMED;
      if (c->durable) {
        *receipt = receipt_new(c, NULL);
        route = LUACONV_RECEIPT;
      }
      break;
    }
    route = LUACONV_OFFERED;
    lc->offered[lc->n_offered++] = e;
  }
  lua_settop(L, top);
  return route;
}

void luaconv_started(struct luaconv *lc, struct job *job) {
  for (size_t i = 0; i < lc->n_offered; i++) claim(lc, job, lc->offered[i]);
  lc->n_offered = 0;
}

void luaconv_receipt(struct luaconv *lc, struct conv_receipt *r,
                     struct job *job) {
  r->job = job;
  job_add_cleanup(job, &r->cleanup);
}

void luaconv_hold(struct luaconv *lc, struct conv_hold *hd, struct job *job) {
  hd->job = job;
  job_add_cleanup(job, &hd->cleanup);
}

/* --- what keeps old generations alive ---------------------------------- */

/* A key as lua/conversation.lua shows it. */
static void append_key(struct buf *out, const struct convmap_key *k) {
  if (k->type == CONVMAP_INTEGER) {
    buf_printf(out, "%lld", (long long)k->num);
    return;
  }
  const char *rest = k->str + 1;
  int n = (int)(k->len ? k->len - 1 : 0);
  switch (k->len ? k->str[0] : 0) {
    case 'k': buf_printf(out, "%.*s", n, rest); break;
    case 'c': buf_printf(out, "chat %.*s", n, rest); break;
    case 'u': buf_printf(out, "user %.*s", n, rest); break;
    case 'b': {
      const char *colon = memchr(rest, ':', (size_t)n);
      int cn = colon ? (int)(colon - rest) : n;
      buf_printf(out, "chat %.*s user %.*s", cn, rest,
                 colon ? n - cn - 1 : 0, colon ? colon + 1 : "");
      break;
    }
    default: buf_printf(out, "%.*s", (int)k->len, k->str);
  }
}

static void append_duration(struct buf *out, uint64_t ms) {
  uint64_t s = ms / 1000;
  if (s < 60) buf_printf(out, "%llu s", (unsigned long long)s);
  else if (s < 3600) buf_printf(out, "%llu min", (unsigned long long)(s / 60));
  else buf_printf(out, "%llu h %llu min", (unsigned long long)(s / 3600),
                  (unsigned long long)(s % 3600 / 60));
}

#define PINNED_LISTED 5

struct pinned {
  const struct job_owner *owner;
  size_t count;
  struct buf names;
};

void luaconv_log_pinned(struct luaconv *lc, const struct job_owner *current) {
  struct pinned gens[8];
  size_t ngens = 0;
  uint64_t now = clock_now_ms();
  size_t bucket;
  for (struct hashmap_node *n = hashmap_first(&lc->map.map, &bucket); n;
       n = hashmap_next(&lc->map.map, n, &bucket)) {
    struct conv_entry *e = entry_of(
        (struct convmap_node *)((char *)n - offsetof(struct convmap_node, node)));
    struct conv *c = e->owner;
    if (!c || c->state != CONV_WAITING) continue;
    const struct job_owner *o = job_owner_of(c->job);
    if (o == current) continue;
    size_t i = 0;
    while (i < ngens && gens[i].owner != o) i++;
    if (i == ngens) {
      if (ngens == sizeof gens / sizeof gens[0]) continue;
      gens[ngens++] = (struct pinned){o, 0, BUF_INIT};
    }
    struct pinned *p = &gens[i];
    if (p->count++ >= PINNED_LISTED) continue;
    if (p->count > 1) buf_append_str(&p->names, ", ");
    struct convmap_key k = convmap_node_key(&e->node);
    append_key(&p->names, &k);
    buf_printf(&p->names, " (at %s, waiting ", c->site ? c->site : "?");
    append_duration(&p->names, now - c->waiting_since_ms);
    if (c->deadline_ms) {
      buf_append_str(&p->names, ", times out in ");
      append_duration(&p->names, c->deadline_ms > now ? c->deadline_ms - now
                                                      : 0);
    } else {
      buf_append_str(&p->names, ", no timeout");
    }
    buf_append_char(&p->names, ')');
  }
  for (size_t i = 0; i < ngens; i++) {
    struct pinned *p = &gens[i];
    struct log_fields f = {p->owner->id, -1};
    log_msg(LOG_INFO, &f, "generation %d stays alive for %zu waiting "
            "conversation(s): %s%s", p->owner->id, p->count, p->names.data,
            p->count > PINNED_LISTED ? ", ..." : "");
    buf_free(&p->names);
  }
}

struct luaconv *luaconv_new(struct script_env *env) {
  struct luaconv *lc = xcalloc(1, sizeof *lc);
  lc->env = env;
  convmap_init(&lc->map, keyhash_random_seed());
  return lc;
}

void luaconv_free(struct luaconv *lc) {
  if (!lc) return;
  convmap_free(&lc->map);
  free(lc);
}
