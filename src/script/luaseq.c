#include "script/luaseq.h"

#include <lauxlib.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/keyhash.h"
#include "script/luabind.h"
#include "pipeline/seqmap.h"
#include "sched/task.h"

#define CLOSER_META "tghost.seq.held"
/* Spare holders kept beyond the live count. */
#define SPARE_HOLDERS 64
/* Keys of one call handled without a Lua allocation. */
#define STACK_KEYS 8

/* A job's keys: one per job that called acquire. */
struct seq_holder {
  struct seqmap_holder mh;
  struct job_cleanup cleanup;   /* on its job: releases the keys */
  struct luaseq *owner;
  struct job *job;
  uint64_t serial;              /* tells closers of other jobs apart */
  struct task *waiter;          /* the task suspended in acquire */
  unsigned wait_frame;          /* the frame it waits for */
  /* After luaseq_rejoin, until the job holds its keys again. */
  void (*rejoined)(struct job *job, void *arg);
  void *rejoined_arg;
  struct seq_holder *next_free;
};

struct luaseq {
  struct seqmap map;
  uint64_t serial;
  struct seq_holder *free_holders;
  size_t nfree, nlive;
};

/* What a closer remembers: whose keys, which call. */
struct seq_closer {
  uint64_t serial;
  unsigned frame;
};

/* --- holders ------------------------------------------------------------ */

static void on_job_end(struct job *job, struct job_cleanup *c);

static struct seq_holder *holder_of(struct job *job) {
  struct job_cleanup *c = job_find_cleanup(job, on_job_end);
  return c ? (struct seq_holder *)((char *)c -
                                   offsetof(struct seq_holder, cleanup))
           : NULL;
}

static struct seq_holder *holder_new(struct luaseq *s, struct job *job) {
  struct seq_holder *sh = s->free_holders;
  if (sh) {
    s->free_holders = sh->next_free;
    s->nfree--;
  } else {
    sh = xmalloc(sizeof *sh);
  }
  memset(sh, 0, sizeof *sh);
  seqmap_holder_init(&sh->mh, sh);
  sh->owner = s;
  sh->job = job;
  sh->serial = ++s->serial;
  s->nlive++;
  sh->cleanup.fn = on_job_end;
  job_add_cleanup(job, &sh->cleanup);
  return sh;
}

static void holder_free(struct luaseq *s, struct seq_holder *sh) {
  s->nlive--;
  if (s->nfree < s->nlive + SPARE_HOLDERS) {
    sh->next_free = s->free_holders;
    s->free_holders = sh;
    s->nfree++;
  } else {
    free(sh);
  }
  if (s->nfree > s->nlive + SPARE_HOLDERS) {
    struct seq_holder *spare = s->free_holders;
    s->free_holders = spare->next_free;
    s->nfree--;
    free(spare);
  }
}

/* The job's cleanup: its keys go, whatever ended it. */
static void on_job_end(struct job *job, struct job_cleanup *c) {
  struct seq_holder *sh =
      (struct seq_holder *)((char *)c - offsetof(struct seq_holder, cleanup));
  struct luaseq *s = sh->owner;
  sh->waiter = NULL;
  sh->rejoined = NULL;
  seqmap_release(&s->map, &sh->mh);
  holder_free(s, sh);
}

/* --- waiting ------------------------------------------------------------ */

static void push_closer(lua_State *L, const struct seq_holder *sh,
                        unsigned frame) {
  struct seq_closer *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->serial = sh->serial;
  c->frame = frame;
  luaL_setmetatable(L, CLOSER_META);
}

/* The closer, and true: it waited (the update may belong to a
 * conversation that started meanwhile). */
static int push_granted(lua_State *co, void *data) {
  struct seq_holder *sh = data;
  if (!co) return 0;
  luaL_checkstack(co, 3, "sequentialize");
  lua_pushboolean(co, 1);
  push_closer(co, sh, sh->wait_frame);
  lua_pushboolean(co, 1);
  return 3;
}

/* The job holds a slot again: resume the task from the loop. */
static void on_slot_regained(struct job *job, void *arg) {
  struct seq_holder *sh = arg;
  struct task *t = sh->waiter;
  if (!t) return;
  sh->waiter = NULL;
  task_wake(t, push_granted, sh);
}

/* Every earlier holder of the job's keys is done. Called from inside a
 * release: only asks for the slot back. */
static void on_grant(struct seqmap_holder *mh, void *ud) {
  struct seq_holder *sh = mh->ud;
  if (sh->rejoined) {
    void (*fn)(struct job *, void *) = sh->rejoined;
    sh->rejoined = NULL;
    fn(sh->job, sh->rejoined_arg);
    return;
  }
  if (sh->waiter) job_unpark(sh->job, on_slot_regained, sh);
}

/* The wait ended without a grant: the job is being cancelled, or the yield
 * could not reach the host and the task runs on. Either way this call's
 * keys are given up and the job's slot account is settled. */
static void wait_cancel(void *data) {
  struct seq_holder *sh = data;
  sh->waiter = NULL;
  seqmap_release_frame(&sh->owner->map, &sh->mh, sh->wait_frame);
  job_unpark(sh->job, NULL, NULL);
}

static const struct task_wait_ops seq_wait_ops = {"sequentialize",
                                                  wait_cancel};

/* --- conversations ----------------------------------------------------- */

bool luaseq_step_aside(struct luaseq *s, struct job *job) {
  struct seq_holder *sh = holder_of(job);
  return sh && seqmap_step_aside(&s->map, &sh->mh) > 0;
}

void luaseq_rejoin(struct luaseq *s, struct job *job,
                   void (*granted)(struct job *job, void *arg), void *arg) {
  struct seq_holder *sh = holder_of(job);
  if (!sh || !sh->mh.aside) {
    granted(job, arg);
    return;
  }
  sh->rejoined = granted;
  sh->rejoined_arg = arg;
  if (seqmap_rejoin(&s->map, &sh->mh) == 0 && sh->rejoined) {
    sh->rejoined = NULL;
    granted(job, arg);
  }
}

/* --- keys from Lua ------------------------------------------------------ */

static const char *const key_help =
    "expected a string, an integer, a list of them, or nil";

/* Reads the key at idx into k; raises on a value that cannot be a key.
 * `what` names it in the message ("the key", "key list item 2"). */
static void read_key(lua_State *L, int idx, struct seqmap_key *k,
                     const char *what) {
  memset(k, 0, sizeof *k);
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      k->type = SEQMAP_STRING;
      k->str = lua_tolstring(L, idx, &k->len);
      return;
    case LUA_TNUMBER: {
      int isint = 0;
      lua_Integer v = lua_tointegerx(L, idx, &isint);
      if (!isint)
        luaL_error(L, "sequentialize: %s is %s, which is not an integer (%s)",
                   what, lua_tostring(L, idx), key_help);
      k->type = SEQMAP_INTEGER;
      k->num = (int64_t)v;
      return;
    }
    default:
      luaL_error(L, "sequentialize: %s is a %s (%s)", what,
                 luaL_typename(L, idx), key_help);
  }
}

/* Collects the keys given at index 1 into *out (stack or a userdata left on
 * the Lua stack); returns how many. */
static size_t read_keys(lua_State *L, struct seqmap_key *stack,
                        struct seqmap_key **out) {
  *out = stack;
  switch (lua_type(L, 1)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return 0;
    case LUA_TSTRING:
    case LUA_TNUMBER:
      read_key(L, 1, &stack[0], "the key");
      return 1;
    case LUA_TTABLE:
      break;
    default:
      luaL_error(L, "sequentialize: the key function returned a %s (%s)",
                 luaL_typename(L, 1), key_help);
  }
  /* A list, possibly with holes ({chat and chat.id, from and from.id}):
   * every value counts; every index must be a positive integer. */
  size_t cap = STACK_KEYS, n = 0;
  struct seqmap_key *keys = stack;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1)
      luaL_error(L, "sequentialize: the key list has a non-list field %s "
                 "(%s)", luaL_tolstring(L, -2, NULL), key_help);
    if (n == cap) {
      /* Rare: a long list. A userdata below the iteration keeps it
       * collectable if a later item raises. */
      size_t ncap = cap * 4;
      struct seqmap_key *grown = lua_newuserdatauv(L, ncap * sizeof *grown, 0);
      memcpy(grown, keys, n * sizeof *keys);
      lua_replace(L, 2);
      keys = grown;
      cap = ncap;
    }
    char what[48];
    snprintf(what, sizeof what, "key list item %lld",
             (long long)lua_tointeger(L, -2));
    read_key(L, -1, &keys[n++], what);
    lua_pop(L, 1);
  }
  *out = keys;
  return n;
}

/* --- the module --------------------------------------------------------- */

static struct luaseq *seq_of(lua_State *L) { return env_of(L)->seq; }

/* seq.acquire(keys) -> closer | nothing; may suspend. */
static int l_acquire(lua_State *L) {
  struct luaseq *s = seq_of(L);
  struct task *t = task_check_can_wait(L, env_of(L)->sched, "sequentialize");
  lua_settop(L, 1);
  lua_pushnil(L);      /* slot 2: storage for a long key list */
  struct seqmap_key stack[STACK_KEYS], *keys;
  size_t n = read_keys(L, stack, &keys);
  if (n == 0) return 0;
  struct job *job = task_job(t);
  struct seq_holder *sh = holder_of(job);
  if (!sh) sh = holder_new(s, job);
  if (sh->mh.waiting > 0)
    return luaL_error(L, "sequentialize: another task of this update still "
                         "waits for its keys");
  if (sh->mh.aside)
    return luaL_error(L, "sequentialize: this update's keys are set aside "
                         "while its conversation waits (ctx:wait)");
  size_t waiting;
  unsigned frame = seqmap_acquire(&s->map, &sh->mh, keys, n, &waiting);
  if (waiting == 0) {
    push_closer(L, sh, frame);
    return 1;
  }
  sh->waiter = t;
  sh->wait_frame = frame;
  job_park(job);
  lua_settop(L, 0);
  return task_wait(L, t, &seq_wait_ops, sh);
}

/* __close: releases the keys of the call that returned this value, if they
 * belong to the running job and are still held. */
static int l_closer_close(lua_State *L) {
  struct seq_closer *c = luaL_checkudata(L, 1, CLOSER_META);
  struct script_env *env = env_of(L);
  struct task *t = sched_running(env->sched);
  if (!t || c->frame == 0) return 0;
  struct seq_holder *sh = holder_of(task_job(t));
  if (sh && sh->serial == c->serial)
    seqmap_release_frame(&env->seq->map, &sh->mh, c->frame);
  c->frame = 0;
  return 0;
}

static int l_stats(lua_State *L) {
  struct luaseq *s = seq_of(L);
  lua_pushinteger(L, (lua_Integer)seqmap_key_count(&s->map));
  lua_pushinteger(L, (lua_Integer)seqmap_link_count(&s->map));
  return 2;
}

int luaopen_tghost_seq(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"acquire", l_acquire},
      {"stats", l_stats},
      {NULL, NULL}};
  if (luaL_newmetatable(L, CLOSER_META)) {
    lua_pushcfunction(L, l_closer_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  return 1;
}

struct luaseq *luaseq_new(void) {
  struct luaseq *s = xcalloc(1, sizeof *s);
  /* Keys can come from users: seed the hash so they cannot be aimed at
   * one bucket. */
  seqmap_init(&s->map, keyhash_random_seed(), on_grant, s);
  return s;
}

void luaseq_free(struct luaseq *s) {
  if (!s) return;
  seqmap_free(&s->map);
  while (s->free_holders) {
    struct seq_holder *sh = s->free_holders;
    s->free_holders = sh->next_free;
    free(sh);
  }
  free(s);
}
