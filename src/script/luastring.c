/* string.find/match/gmatch/gsub on lpattern: see luastring.h.
 *
 * Argument handling, results and messages follow Lua 5.4.4's string
 * library as the manual and its behaviour define them; tests/unit/pattern.c
 * compares the two on thousands of random patterns. */
#include "script/luastring.h"

#include <ctype.h>
#include <limits.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "base/lpattern.h"
#include "script/luabind.h"

/* One call of a string function: what the abort callback needs. */
struct call {
  lua_State *L;
  const struct luastring_guard *guard;
  char why[160];
};

static bool call_should_abort(void *ud) {
  struct call *c = ud;
  return c->guard->should_stop(c->L, c->guard->ud, c->why, sizeof c->why);
}

static const struct luastring_guard *guard_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static void start(struct lpat_matcher *m, struct call *c, lua_State *L,
                  const struct luastring_guard *guard, const char *s,
                  size_t ls, const char *p, size_t lp) {
  c->L = L;
  c->guard = guard;
  c->why[0] = '\0';
  if (guard && guard->should_stop)
    lpat_init(m, s, ls, p, lp, call_should_abort, c);
  else
    lpat_init(m, s, ls, p, lp, NULL, NULL);
}

/* Pushes "file:line: " of the code that called the string function, or ""
 * when that is tghost's own Lua code (bot.hears calls string.match for
 * the script: the pattern in the message tells which one). */
static void push_caller_where(lua_State *L) {
  lua_Debug ar;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) &&
      ar.currentline > 0 && strncmp(ar.source, "@[tghost]", 9) != 0) {
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

/* Pushes the pattern quoted for a message: at most 60 bytes, unprintable
 * ones as \ddd. */
static void push_quoted_pattern(lua_State *L, const char *p, size_t lp) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (size_t i = 0; i < lp && i < 60; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"' || c == '\\') {
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, (char)c);
    } else if (c >= 32 && c < 127) {
      luaL_addchar(&b, (char)c);
    } else {
      char esc[8];
      snprintf(esc, sizeof esc, "\\%u", c);
      luaL_addstring(&b, esc);
    }
  }
  luaL_addstring(&b, lp > 60 ? "\"..." : "\"");
  luaL_pushresult(&b);
}

/* Raises the error of a failed search of pattern (the whole argument, as
 * the script wrote it) in a subject of ls bytes. */
static int raise_failure(lua_State *L, const struct lpat_matcher *m,
                         const struct call *c, const char *fname, int pattern,
                         size_t ls) {
  if (m->failure == LPAT_ERROR) return luaL_error(L, "%s", m->error);
  size_t lp;
  const char *p = lua_tolstring(L, pattern, &lp);
  push_caller_where(L);
  push_quoted_pattern(L, p, lp);
  lua_pushfstring(L, "%spattern matching stopped: %s in string.%s; the "
                  "pattern %s backtracks too much on this text (%I bytes)",
                  lua_tostring(L, -2), c->why, fname, lua_tostring(L, -1),
                  (lua_Integer)ls);
  if (c->guard->stopped)
    c->guard->stopped(L, c->guard->ud, lua_tostring(L, -1));
  return lua_error(L);
}

/* Bytes of comparison between two looks at the guard in a plain find. */
#define PLAIN_WORK_STEP ((size_t)1 << 20)

/* The first occurrence of needle in haystack (an empty needle is found at
 * once), or NULL; *stopped (with c->why) when the guard said stop first.
 * For the short needles of plain finds a memchr for the first byte beats
 * a general string search's set-up; a long needle that nearly matches
 * everywhere costs up to hlen * nlen, hence the guard. */
static const char *find_plain(const char *haystack, size_t hlen,
                              const char *needle, size_t nlen, struct call *c,
                              bool *stopped) {
  *stopped = false;
  if (nlen == 0) return haystack;
  if (nlen > hlen) return NULL;
  const char *last = haystack + (hlen - nlen);   /* last possible start */
  const char *p = haystack;
  size_t work = 0;
  bool guarded = c->guard && c->guard->should_stop;
  while (p <= last) {
    p = memchr(p, needle[0], (size_t)(last - p) + 1);
    if (!p) return NULL;
    if (memcmp(p + 1, needle + 1, nlen - 1) == 0) return p;
    p++;
    work += nlen;
    if (guarded && work >= PLAIN_WORK_STEP) {
      work = 0;
      if (call_should_abort(c)) {
        *stopped = true;
        return NULL;
      }
    }
  }
  return NULL;
}

/* Raises the error of a plain find of lp bytes in ls the guard stopped. */
static int raise_plain_stop(lua_State *L, const struct call *c, size_t lp,
                            size_t ls) {
  push_caller_where(L);
  lua_pushfstring(L, "%sstring.find stopped: %s in a plain search for %I "
                  "bytes in %I bytes", lua_tostring(L, -1), c->why,
                  (lua_Integer)lp, (lua_Integer)ls);
  if (c->guard->stopped)
    c->guard->stopped(L, c->guard->ud, lua_tostring(L, -1));
  return lua_error(L);
}

/* Lua's reading of a start position: negative counts from the end, and
 * anything before the start is the start. 1-based. */
static size_t start_position(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0) return 1;
  if (pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

/* Capture i of the last match: its text (*len bytes at *text), or a
 * position (returns true, *pos 1-based). With no captures, capture 0 is
 * the whole match [s, e). */
static bool get_capture(lua_State *L, const struct lpat_matcher *m, int i,
                        size_t s, size_t e, const char **text, size_t *len,
                        lua_Integer *pos) {
  if (i >= m->ncaptures) {
    if (i != 0) luaL_error(L, "invalid capture index %%%d", i + 1);
    *text = m->src + s;
    *len = e - s;
    return false;
  }
  const struct lpat_capture *cap = &m->captures[i];
  if (cap->len == LPAT_CAP_UNFINISHED) luaL_error(L, "unfinished capture");
  if (cap->len == LPAT_CAP_POSITION) {
    *pos = (lua_Integer)cap->start + 1;
    return true;
  }
  *text = m->src + cap->start;
  *len = (size_t)cap->len;
  return false;
}

static void push_capture(lua_State *L, const struct lpat_matcher *m, int i,
                         size_t s, size_t e) {
  const char *text;
  size_t len;
  lua_Integer pos;
  if (get_capture(L, m, i, s, e, &text, &len, &pos))
    lua_pushinteger(L, pos);
  else
    lua_pushlstring(L, text, len);
}

/* Pushes the captures (the whole match if there are none and whole is
 * set); returns how many. */
static int push_captures(lua_State *L, const struct lpat_matcher *m,
                         bool whole, size_t s, size_t e) {
  int n = (m->ncaptures == 0 && whole) ? 1 : m->ncaptures;
  luaL_checkstack(L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(L, m, i, s, e);
  return n;
}

/* --- find and match ----------------------------------------------------- */

static int find_or_match(lua_State *L, bool find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || lpat_is_plain(p, lp))) {
    struct call c = {L, guard_of(L), ""};
    bool stopped;
    const char *hit = find_plain(s + init, ls - init, p, lp, &c, &stopped);
    if (stopped) return raise_plain_stop(L, &c, lp, ls);
    if (!hit) {
      luaL_pushfail(L);
      return 1;
    }
    lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
    lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
    return 2;
  }
  bool anchored = lp > 0 && p[0] == '^';
  if (anchored) {
    p++;
    lp--;
  }
  struct lpat_matcher m;
  struct call c;
  start(&m, &c, L, guard_of(L), s, ls, p, lp);
  size_t ms, me;
  switch (lpat_search(&m, init, anchored, LPAT_ANY_END, &ms, &me)) {
    case LPAT_MATCH:
      if (!find) return push_captures(L, &m, true, ms, me);
      lua_pushinteger(L, (lua_Integer)ms + 1);
      lua_pushinteger(L, (lua_Integer)me);
      return push_captures(L, &m, false, ms, me) + 2;
    case LPAT_NOMATCH:
      luaL_pushfail(L);
      return 1;
    default:
      return raise_failure(L, &m, &c, find ? "find" : "match", 2, ls);
  }
}

static int str_find(lua_State *L) { return find_or_match(L, true); }
static int str_match(lua_State *L) { return find_or_match(L, false); }

/* --- gmatch ------------------------------------------------------------- */

struct gmatch_state {
  size_t pos;          /* where the next search starts */
  size_t last_end;     /* end of the last match, or LPAT_ANY_END */
};

/* The iterator: upvalues are the guard, the subject, the pattern and the
 * state. */
static int gmatch_next(lua_State *L) {
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(3), &lp);
  struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(4));
  struct lpat_matcher m;
  struct call c;
  start(&m, &c, L, guard_of(L), s, ls, p, lp);
  size_t ms, me;
  switch (lpat_search(&m, g->pos, false, g->last_end, &ms, &me)) {
    case LPAT_MATCH:
      g->pos = g->last_end = me;
      return push_captures(L, &m, true, ms, me);
    case LPAT_NOMATCH:
      return 0;
    default:
      return raise_failure(L, &m, &c, "gmatch", lua_upvalueindex(3), ls);
  }
}

static int str_gmatch(lua_State *L) {
  size_t ls, lp;
  luaL_checklstring(L, 1, &ls);
  luaL_checklstring(L, 2, &lp);
  size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
  lua_settop(L, 2);
  struct gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
  /* Past the end: the iterator finds nothing (and nothing overflows). */
  g->pos = init > ls ? ls + 1 : init;
  g->last_end = LPAT_ANY_END;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushcclosure(L, gmatch_next, 4);
  return 1;
}

/* --- gsub --------------------------------------------------------------- */

/* A replacement string: %0-%9 and %% expanded. */
static void add_template(lua_State *L, luaL_Buffer *b,
                         const struct lpat_matcher *m, size_t s, size_t e) {
  size_t l;
  const char *t = lua_tolstring(L, 3, &l);
  const char *esc;
  while ((esc = memchr(t, '%', l)) != NULL) {
    luaL_addlstring(b, t, (size_t)(esc - t));
    const char *after = esc + 1;
    int c = after < t + l ? (unsigned char)*after : '\0';
    if (c == '%') {
      luaL_addchar(b, '%');
    } else if (c == '0') {
      luaL_addlstring(b, m->src + s, e - s);
    } else if (isdigit(c)) {
      const char *text;
      size_t len;
      lua_Integer pos;
      if (get_capture(L, m, c - '1', s, e, &text, &len, &pos)) {
        lua_pushinteger(L, pos);
        luaL_addvalue(b);
      } else {
        luaL_addlstring(b, text, len);
      }
    } else {
      luaL_error(L, "invalid use of '%%' in replacement string");
    }
    l -= (size_t)(after + 1 - t);
    t = after + 1;
  }
  luaL_addlstring(b, t, l);
}

/* Adds the replacement of the match [s, e); false when it kept the
 * original text (a function or table gave nil or false). */
static bool add_replacement(lua_State *L, luaL_Buffer *b,
                            const struct lpat_matcher *m, size_t s, size_t e,
                            int type) {
  if (type == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_captures(L, m, true, s, e);
    lua_call(L, n, 1);
  } else if (type == LUA_TTABLE) {
    push_capture(L, m, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_template(L, b, m, s, e);
    return true;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(b, m->src + s, e - s);
    return false;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)",
                      luaL_typename(L, -1));
  luaL_addvalue(b);
  return true;
}

static int str_gsub(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int type = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING ||
                   type == LUA_TFUNCTION || type == LUA_TTABLE, 3,
                   "string/function/table");
  bool anchored = lp > 0 && p[0] == '^';
  if (anchored) {
    p++;
    lp--;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  struct lpat_matcher m;
  struct call c;
  start(&m, &c, L, guard_of(L), s, ls, p, lp);
  size_t at = 0, last_end = LPAT_ANY_END;
  lua_Integer n = 0;
  bool changed = false;
  while (n < max_n) {
    size_t ms, me;
    enum lpat_result r = lpat_search(&m, at, anchored, last_end, &ms, &me);
    if (r == LPAT_NOMATCH) break;
    if (r != LPAT_MATCH) return raise_failure(L, &m, &c, "gsub", 2, ls);
    luaL_addlstring(&b, s + at, ms - at);
    n++;
    changed = add_replacement(L, &b, &m, ms, me, type) || changed;
    at = last_end = me;
    if (anchored) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, s + at, ls - at);
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

/* --- rep --------------------------------------------------------------- */

/* Lua's bound on the strings its string library builds. */
#define MAX_RESULT ((size_t)INT_MAX)

static int str_rep(lua_State *L) {
  size_t l, lsep;
  const char *s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  /* n copies of s with n - 1 separators: n * (s + sep) - sep. */
  size_t unit = l + lsep;
  if (unit < l || unit > MAX_RESULT / (lua_Unsigned)n)
    return luaL_error(L, "resulting string too large");
  size_t total = (size_t)n * unit - lsep;
  /* Allocated before any copy: past a memory limit, the allocation fails
   * (and the guard stops the task) before any work is done. */
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, total);
  /* s, then the units (sep, s) by doubling what is there: the copies are
   * few and large, whatever n is. */
  memcpy(p, s, l);
  size_t done = l;
  if (n > 1) {
    memcpy(p + done, sep, lsep);
    memcpy(p + done + lsep, s, l);
    done += unit;
    while (done < total) {
      size_t chunk = done - l < total - done ? done - l : total - done;
      memcpy(p + done, p + l, chunk);
      done += chunk;
    }
  }
  luaL_pushresultsize(&b, total);
  return 1;
}

/* --- installing --------------------------------------------------------- */

void luastring_install(lua_State *L, const struct luastring_guard *guard) {
  static const luaL_Reg fns[] = {
      {"find", str_find},
      {"match", str_match},
      {"gmatch", str_gmatch},
      {"gsub", str_gsub},
      {"rep", str_rep},
      {NULL, NULL},
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_STRLIBNAME);
  if (!lua_istable(L, -1)) luaL_error(L, "the string library is not open");
  lua_pushlightuserdata(L, (void *)guard);
  luaL_setfuncs(L, fns, 1);
  lua_pop(L, 2);
}

/* tghost's guard: the running task's CPU budget. */

static bool over_cpu_budget(lua_State *L, void *ud, char *why, size_t size) {
  struct scheduler *s = env_of(L)->sched;
  if (!cpuguard_over_budget(&s->guard)) return false;
  struct task *t = sched_running(s);
  struct job *job = t ? task_job(t) : NULL;
  const char *who = !job ? "the task"
                    : job_kind(job) == JOB_LOAD ? "the script's top level"
                    : job_kind(job) == JOB_UPDATE ? "the handler"
                                              : "the task";
  snprintf(why, size, "%s ran out of its CPU budget (%ld ms)", who,
           cpuguard_budget_ms(&s->guard));
  return true;
}

static void explain_stop(lua_State *L, void *ud, const char *message) {
  cpuguard_explain_stop(&env_of(L)->sched->guard, message);
}

static const struct luastring_guard tghost_guard = {over_cpu_budget,
                                                    explain_stop, NULL};

const struct luastring_guard *luastring_tghost_guard(void) {
  return &tghost_guard;
}

void luastring_install_guarded(lua_State *L) {
  luastring_install(L, &tghost_guard);
}
