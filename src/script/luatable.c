/* table.insert/remove/move/concat/sort with their loops under a guard: see
 * luatable.h.
 *
 * Arguments, results and messages follow Lua 5.4.4's table library as the
 * manual and its behaviour define them (elements are read and written
 * with lua_geti/lua_seti, so metamethods run as they would there);
 * tests/unit/luatable.c compares the two. */
#include "script/luatable.h"

#include <lauxlib.h>
#include <lualib.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/keyhash.h"

/* Elements (comparisons, for sort) between two looks at the guard. */
#define STEP 4096

/* What check_table requires of a value that is not a table. */
enum { TAB_R = 1, TAB_W = 2, TAB_L = 4, TAB_RW = TAB_R | TAB_W };

static const struct luastring_guard *guard_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static bool meta_has(lua_State *L, int mt, const char *key) {
  lua_pushstring(L, key);
  bool has = lua_rawget(L, mt) != LUA_TNIL;
  lua_pop(L, 1);
  return has;
}

/* A table, or a value whose metatable has what the function uses. */
static void check_table(lua_State *L, int arg, int what) {
  if (lua_type(L, arg) == LUA_TTABLE) return;
  if (lua_getmetatable(L, arg)) {
    int mt = lua_gettop(L);
    bool ok = (!(what & TAB_R) || meta_has(L, mt, "__index")) &&
              (!(what & TAB_W) || meta_has(L, mt, "__newindex")) &&
              (!(what & TAB_L) || meta_has(L, mt, "__len"));
    lua_pop(L, 1);
    if (ok) return;
  }
  luaL_checktype(L, arg, LUA_TTABLE);   /* raises */
}

/* --- the guard ---------------------------------------------------------- */

/* One loop of one call: counts its steps and asks the guard every STEP. */
struct loop {
  lua_State *L;
  const struct luastring_guard *guard;
  const char *fname;
  const char *unit;             /* "elements", "comparisons" */
  lua_Unsigned done, total;     /* total 0: not known in advance */
  unsigned step;
};

static void loop_init(struct loop *lp, lua_State *L, const char *fname,
                      const char *unit, lua_Unsigned total) {
  lp->L = L;
  lp->guard = guard_of(L);
  lp->fname = fname;
  lp->unit = unit;
  lp->done = 0;
  lp->total = total;
  lp->step = 0;
}

static int raise_stop(struct loop *lp, const char *why) {
  lua_State *L = lp->L;
  luaL_where(L, 1);
  if (lp->total)
    lua_pushfstring(L, "table.%s stopped: %s after %I of %I %s", lp->fname,
                    why, (lua_Integer)lp->done, (lua_Integer)lp->total,
                    lp->unit);
  else
    lua_pushfstring(L, "table.%s stopped: %s after %I %s", lp->fname, why,
                    (lua_Integer)lp->done, lp->unit);
  lua_concat(L, 2);
  if (lp->guard->stopped)
    lp->guard->stopped(L, lp->guard->ud, lua_tostring(L, -1));
  return lua_error(L);
}

static void tick(struct loop *lp) {
  lp->done++;
  if (++lp->step < STEP) return;
  lp->step = 0;
  if (!lp->guard || !lp->guard->should_stop) return;
  char why[160] = "";
  if (lp->guard->should_stop(lp->L, lp->guard->ud, why, sizeof why))
    raise_stop(lp, why);
}

/* --- insert, remove, move ----------------------------------------------- */

static int t_insert(lua_State *L) {
  check_table(L, 1, TAB_RW | TAB_L);
  /* The first empty slot (wrapping around as Lua's integers do). */
  lua_Integer e = (lua_Integer)((lua_Unsigned)luaL_len(L, 1) + 1u);
  lua_Integer pos;
  switch (lua_gettop(L)) {
    case 2:
      pos = e;
      break;
    case 3: {
      pos = luaL_checkinteger(L, 2);
      luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2,
                    "position out of bounds");
      struct loop lp;
      loop_init(&lp, L, "insert", "elements",
                (lua_Unsigned)e - (lua_Unsigned)pos);
      for (lua_Integer i = e; i > pos; i--) {   /* t[pos..e-1] up by one */
        lua_geti(L, 1, i - 1);
        lua_seti(L, 1, i);
        tick(&lp);
      }
      break;
    }
    default:
      return luaL_error(L, "wrong number of arguments to 'insert'");
  }
  lua_seti(L, 1, pos);
  return 0;
}

static int t_remove(lua_State *L) {
  check_table(L, 1, TAB_RW | TAB_L);
  lua_Integer size = luaL_len(L, 1);
  lua_Integer pos = luaL_optinteger(L, 2, size);
  /* A position given must be in [1, size + 1]; Lua 5.4 blames argument
   * 1 for it. */
  if (pos != size)
    luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1,
                  "position out of bounds");
  lua_geti(L, 1, pos);   /* the result */
  struct loop lp;
  loop_init(&lp, L, "remove", "elements",
            pos < size ? (lua_Unsigned)size - (lua_Unsigned)pos : 0);
  for (; pos < size; pos++) {   /* t[pos+1..size] down by one */
    lua_geti(L, 1, pos + 1);
    lua_seti(L, 1, pos);
    tick(&lp);
  }
  lua_pushnil(L);
  lua_seti(L, 1, pos);
  return 1;
}

static int t_move(lua_State *L) {
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  lua_Integer t = luaL_checkinteger(L, 4);
  int dest = lua_isnoneornil(L, 5) ? 1 : 5;
  check_table(L, 1, TAB_R);
  check_table(L, dest, TAB_W);
  if (e >= f) {
    luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3,
                  "too many elements to move");
    lua_Integer n = e - f + 1;
    luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4,
                  "destination wrap around");
    struct loop lp;
    loop_init(&lp, L, "move", "elements", (lua_Unsigned)n);
    /* Front to back unless the destination starts inside the source of
     * the same table (then back to front, not to read what it wrote). */
    if (t > e || t <= f || (dest != 1 && !lua_compare(L, 1, dest, LUA_OPEQ))) {
      for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, f + i);
        lua_seti(L, dest, t + i);
        tick(&lp);
      }
    } else {
      for (lua_Integer i = n - 1; i >= 0; i--) {
        lua_geti(L, 1, f + i);
        lua_seti(L, dest, t + i);
        tick(&lp);
      }
    }
  }
  lua_pushvalue(L, dest);
  return 1;
}

/* --- concat ------------------------------------------------------------- */

static void add_field(lua_State *L, luaL_Buffer *b, lua_Integer i) {
  lua_geti(L, 1, i);
  if (!lua_isstring(L, -1))
    luaL_error(L, "invalid value (%s) at index %I in table for 'concat'",
               luaL_typename(L, -1), i);
  luaL_addvalue(b);
}

static int t_concat(lua_State *L) {
  check_table(L, 1, TAB_R | TAB_L);
  lua_Integer last = luaL_len(L, 1);
  size_t lsep;
  const char *sep = luaL_optlstring(L, 2, "", &lsep);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  last = luaL_optinteger(L, 4, last);
  struct loop lp;
  loop_init(&lp, L, "concat", "elements",
            i <= last ? (lua_Unsigned)last - (lua_Unsigned)i + 1u : 0);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (; i < last; i++) {
    add_field(L, &b, i);
    luaL_addlstring(&b, sep, lsep);
    tick(&lp);
  }
  if (i == last) add_field(L, &b, i);
  luaL_pushresult(&b);
  return 1;
}

/* --- sort --------------------------------------------------------------- */

/* An introsort over t[lo..hi] (the table at index 1, the comparator at 2
 * or none): quicksort on a median of three, the pivot chosen at random in
 * large ranges, heapsort where the quicksort goes too deep, so even a
 * comparator that contradicts itself costs O(n log n) comparisons and
 * never takes the scans past their range ("invalid order function for
 * sorting", as Lua says). Not stable, as Lua's is not. */
struct sorter {
  lua_State *L;
  bool comp;
  struct loop loop;
};

/* The value at stack index a < the one at b. */
static bool less(struct sorter *s, int a, int b) {
  lua_State *L = s->L;
  bool r;
  if (s->comp) {
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_call(L, 2, 1);
    r = lua_toboolean(L, -1);
    lua_pop(L, 1);
  } else {
    r = lua_compare(L, a, b, LUA_OPLT);
  }
  tick(&s->loop);
  return r;
}

static void get(struct sorter *s, lua_Integer i) { lua_geti(s->L, 1, i); }
static void set(struct sorter *s, lua_Integer i) { lua_seti(s->L, 1, i); }

/* t[i] < t[j]: compares and pops both. */
static bool less_at(struct sorter *s, lua_Integer i, lua_Integer j) {
  get(s, i);
  get(s, j);
  int top = lua_gettop(s->L);
  bool r = less(s, top - 1, top);
  lua_pop(s->L, 2);
  return r;
}

static void swap(struct sorter *s, lua_Integer i, lua_Integer j) {
  get(s, i);
  get(s, j);
  set(s, i);
  set(s, j);
}

static uint64_t pivot_rng;

static lua_Integer random_between(lua_Integer lo, lua_Integer hi) {
  if (!pivot_rng) pivot_rng = keyhash_random_seed() | 1;
  pivot_rng ^= pivot_rng >> 12;
  pivot_rng ^= pivot_rng << 25;
  pivot_rng ^= pivot_rng >> 27;
  uint64_t r = pivot_rng * 0x2545f4914f6cdd1dULL;
  return lo + (lua_Integer)(r % (uint64_t)(hi - lo + 1));
}

static void sift_down(struct sorter *s, lua_Integer base, lua_Integer root,
                      lua_Integer n) {
  /* Heap positions are 1..n; element k lives at t[base + k - 1]. */
  for (;;) {
    lua_Integer child = 2 * root;
    if (child > n) return;
    if (child < n && less_at(s, base + child - 1, base + child)) child++;
    if (!less_at(s, base + root - 1, base + child - 1)) return;
    swap(s, base + root - 1, base + child - 1);
    root = child;
  }
}

static void heap_sort(struct sorter *s, lua_Integer lo, lua_Integer hi) {
  lua_Integer n = hi - lo + 1;
  for (lua_Integer k = n / 2; k >= 1; k--) sift_down(s, lo, k, n);
  for (lua_Integer last = n; last > 1; last--) {
    swap(s, lo, lo + last - 1);
    sift_down(s, lo, 1, last - 1);
  }
}

/* Partitions t[lo..hi] (at least 4 elements, t[lo] <= t[hi-1] <= t[hi]
 * with the pivot at hi - 1); returns the pivot's final place. */
static lua_Integer partition(struct sorter *s, lua_Integer lo,
                             lua_Integer hi) {
  lua_State *L = s->L;
  get(s, hi - 1);
  int pivot = lua_gettop(L);
  lua_Integer i = lo, j = hi - 1;
  for (;;) {
    /* Up to an element not below the pivot (t[hi-1] stops a consistent
     * comparator). */
    for (;;) {
      get(s, ++i);
      if (!less(s, lua_gettop(L), pivot)) break;
      if (i == hi - 1) luaL_error(L, "invalid order function for sorting");
      lua_pop(L, 1);
    }
    /* Down to an element not above it (t[lo] stops a consistent one). */
    for (;;) {
      get(s, --j);
      if (!less(s, pivot, lua_gettop(L))) break;
      if (j < i) luaL_error(L, "invalid order function for sorting");
      lua_pop(L, 1);
    }
    if (j < i) {
      lua_pop(L, 2);   /* t[j], t[i] */
      lua_pop(L, 1);   /* the pivot */
      swap(s, hi - 1, i);
      return i;
    }
    /* t[i] and t[j] are on the stack: store them swapped. */
    set(s, i);   /* t[i] = old t[j] */
    set(s, j);   /* t[j] = old t[i] */
  }
}

static void intro_sort(struct sorter *s, lua_Integer lo, lua_Integer hi,
                       int depth) {
  while (hi > lo) {
    if (hi - lo == 1) {
      if (less_at(s, hi, lo)) swap(s, lo, hi);
      return;
    }
    if (depth-- == 0) {
      heap_sort(s, lo, hi);
      return;
    }
    lua_Integer mid = hi - lo < 100 ? lo + (hi - lo) / 2
                                    : random_between(lo + (hi - lo) / 4,
                                                     hi - (hi - lo) / 4);
    /* Order t[lo], t[mid], t[hi]; the median becomes the pivot. */
    if (less_at(s, hi, lo)) swap(s, lo, hi);
    if (less_at(s, mid, lo)) swap(s, mid, lo);
    else if (less_at(s, hi, mid)) swap(s, mid, hi);
    if (hi - lo == 2) return;
    swap(s, mid, hi - 1);
    lua_Integer p = partition(s, lo, hi);
    /* The smaller side first (recursion depth O(log n)), then the larger
     * in this loop. */
    if (p - lo < hi - p) {
      intro_sort(s, lo, p - 1, depth);
      lo = p + 1;
    } else {
      intro_sort(s, p + 1, hi, depth);
      hi = p - 1;
    }
  }
}

static int t_sort(lua_State *L) {
  check_table(L, 1, TAB_RW | TAB_L);
  lua_Integer n = luaL_len(L, 1);
  if (n > 1) {
    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    struct sorter s = {L, !lua_isnil(L, 2), {0}};
    loop_init(&s.loop, L, "sort", "comparisons", 0);
    int depth = 2;
    for (lua_Integer m = n; m > 1; m >>= 1) depth += 2;
    intro_sort(&s, 1, n, depth);
  }
  return 0;
}

/* --- installing --------------------------------------------------------- */

void luatable_install(lua_State *L, const struct luastring_guard *guard) {
  static const luaL_Reg fns[] = {
      {"insert", t_insert}, {"remove", t_remove}, {"move", t_move},
      {"concat", t_concat}, {"sort", t_sort},     {NULL, NULL},
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_TABLIBNAME);
  if (!lua_istable(L, -1)) luaL_error(L, "the table library is not open");
  lua_pushlightuserdata(L, (void *)guard);
  luaL_setfuncs(L, fns, 1);
  lua_pop(L, 2);
}

void luatable_install_guarded(lua_State *L) {
  luatable_install(L, luastring_tghost_guard());
}
