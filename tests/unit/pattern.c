/* src/lpattern.c and src/luastring.c against Lua 5.4's own string library.
 *
 *   pattern_test differential   thousands of random patterns (valid and
 *                               malformed, every feature of the manual's
 *                               6.4.1) and subjects: string.find, match,
 *                               gmatch and gsub must give exactly the same
 *                               values, or raise exactly the same error, in
 *                               a plain lua_State with Lua's library and in
 *                               one with ours installed
 *   pattern_test abort          the bound: a backtracking pattern stops when
 *                               the guard says so, with the clear error, and
 *                               the state goes on working
 *
 * TGHOST_PATTERN_SEED=<n> replays a run (the seed is printed, and again
 * with a failing case); TGHOST_PATTERN_CASES=<n> runs more or fewer. */
#include <inttypes.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/lpattern.h"
#include "script/luastring.h"

static uint64_t current_seed;
static struct buf current_case = BUF_INIT;

#define CHECK_ON_FAILURE()                                                  \
  fprintf(stderr, "  seed %" PRIu64 " (TGHOST_PATTERN_SEED=%" PRIu64        \
          " replays it)\n%s\n", current_seed, current_seed,                 \
          current_case.data ? current_case.data : "")
#include "check.h"
#include "testreg.h"

/* xorshift64*: reproducible from the seed alone. */
static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}
static unsigned below(unsigned n) { return (unsigned)(rnd() % n); }
static bool chance(unsigned percent) { return below(100) < percent; }
static char pick(const char *from) {
  return from[below((unsigned)strlen(from))];
}

/* --- patterns from a grammar -------------------------------------------- */

/* Bytes of subjects and literal pattern items: mostly a few letters, so
 * patterns match often, and some of everything else (specials, spaces,
 * digits, a NUL, high bytes). */
static char subject_byte(void) {
  if (chance(70)) return pick("aab");
  if (chance(50)) return pick("cxyAB12 ");
  static const char other[] = "()[]%.-^$*+?\t\n,;\x80\xff";
  if (chance(10)) return '\0';
  return other[below(sizeof other - 1)];
}

static const char class_letters[] = "acdglpsuwxzACDGLPSUWXZ";

static void gen_class(struct buf *p) {
  buf_append_char(p, '%');
  if (chance(75)) buf_append_char(p, pick(class_letters));
  else buf_append_char(p, pick(".%()[]-^$*+?ab1"));   /* escapes */
}

static void gen_set(struct buf *p) {
  buf_append_char(p, '[');
  if (chance(30)) buf_append_char(p, '^');
  if (chance(10)) buf_append_char(p, ']');            /* "[]...]": a member */
  unsigned n = 1 + below(4);
  for (unsigned i = 0; i < n; i++) {
    switch (below(6)) {
      case 0: gen_class(p); break;
      case 1:                                           /* a range */
        buf_append_char(p, pick("aAb1"));
        buf_append_char(p, '-');
        buf_append_char(p, pick("bcyz9"));
        break;
      case 2: buf_append_char(p, '-'); break;
      default: buf_append_char(p, subject_byte()); break;
    }
  }
  buf_append_char(p, ']');
}

/* One single-character item: a byte, '.', a class, or a set. */
static void gen_single(struct buf *p) {
  switch (below(8)) {
    case 0: buf_append_char(p, '.'); break;
    case 1: case 2: gen_class(p); break;
    case 3: gen_set(p); break;
    default: {
      char c = subject_byte();
      /* A special byte here would be another item: escape it. */
      if (strchr("()[]%.-^$*+?", c) && c) buf_append_char(p, '%');
      buf_append_char(p, c);
    }
  }
}

struct gen {
  struct buf *p;
  int captures;      /* opened so far */
  int quantifiers;   /* repetitions so far: few, so no search explodes */
};

static void gen_sequence(struct gen *g, int depth);

static void gen_item(struct gen *g, int depth) {
  struct buf *p = g->p;
  unsigned kind = below(100);
  if (kind < 55) {
    gen_single(p);
    if (g->quantifiers < 3 && chance(40)) {
      buf_append_char(p, pick("*+-?"));
      g->quantifiers++;
    }
  } else if (kind < 67 && depth < 3) {
    buf_append_char(p, '(');
    g->captures++;
    gen_sequence(g, depth + 1);
    buf_append_char(p, ')');
  } else if (kind < 71) {
    buf_append_str(p, "()");
    g->captures++;
  } else if (kind < 79) {
    /* Mostly a capture that exists, sometimes %0 or one that does not. */
    int n = g->captures > 0 && chance(80)
                ? 1 + (int)below((unsigned)g->captures)
                : (int)below(10);
    buf_printf(p, "%%%d", n);
  } else if (kind < 86) {
    buf_append_str(p, "%b");
    buf_append_char(p, pick("(a[x"));
    buf_append_char(p, pick(")b]a"));
  } else if (kind < 93) {
    buf_append_str(p, "%f");
    gen_set(p);
  } else if (kind < 96) {
    buf_append_char(p, '$');                 /* not at the end: a byte */
  } else {
    buf_append_char(p, '^');                 /* not at the start: a byte */
  }
}

static void gen_sequence(struct gen *g, int depth) {
  unsigned n = below(depth == 0 ? 6 : 4);
  for (unsigned i = 0; i < n; i++) gen_item(g, depth);
}

/* Breaks a pattern the ways people do. */
static void malform(struct buf *p) {
  switch (below(9)) {
    case 0:
    case 1:                                            /* cut anywhere */
      if (p->len) p->data[p->len = below((unsigned)p->len)] = '\0';
      break;
    case 2: buf_append_char(p, '%'); break;
    case 3:                                            /* %f without [ */
    case 4:                                            /* %b without xy */
      buf_append_str(p, below(2) ? "%f" : "%b");
      if (chance(50)) buf_append_char(p, 'a');
      break;
    case 5: buf_append_str(p, chance(50) ? "[a" : "[^%"); break;
    case 6: {                                          /* a stray byte */
      char c = pick("()[%]");
      size_t at = p->len ? below((unsigned)p->len + 1) : 0;
      buf_append_char(p, ' ');
      memmove(p->data + at + 1, p->data + at, p->len - at - 1);
      p->data[at] = c;
      break;
    }
    case 7:                                            /* too many captures */
      for (int i = 0; i < 33; i++) buf_append_str(p, chance(50) ? "()" : "(");
      break;
    default: buf_append_str(p, ")"); break;
  }
}

static void gen_pattern(struct buf *p) {
  buf_reset(p);
  if (chance(3)) {
    /* Deep nesting: Lua's "pattern too complex" (on long subjects), near
     * its limit of 200 nested matches, and past it. */
    bool exact = chance(50);
    unsigned n = exact ? 195 + below(11) : 150 + below(120);
    for (unsigned i = 0; i < n; i++)
      buf_append_str(p, exact || chance(90) ? "a?" : "(");
    return;
  }
  struct gen g = {p, 0, 0};
  if (chance(25)) buf_append_char(p, '^');
  gen_sequence(&g, 0);
  if (chance(20)) buf_append_char(p, '$');
  if (chance(20)) malform(p);
}

static void gen_subject(struct buf *s, const struct buf *pattern) {
  buf_reset(s);
  unsigned n = below(100) < 5 ? 200 + below(200) : below(24);
  bool long_a = pattern->len > 100;   /* for the deep patterns */
  bool only_a = long_a && chance(50);
  if (long_a) n = 190 + below(30);
  for (unsigned i = 0; i < n; i++)
    buf_append_char(s, only_a || (long_a && chance(95)) ? 'a' : subject_byte());
  if (n == 0) buf_append(s, "", 0);  /* a valid empty string */
}

/* --- one case: a call with its arguments -------------------------------- */

enum arg_kind {
  ARG_NONE, ARG_NIL, ARG_STRING, ARG_INT, ARG_FLOAT, ARG_TRUE, ARG_FALSE,
  ARG_FUNCTION, ARG_TABLE, ARG_BAD_FUNCTION,
};

struct arg {
  enum arg_kind kind;
  const char *str;
  size_t len;
  long long i;
  double d;
};

#define MAX_ARGS 4

struct pcase {
  const char *fn;                  /* "find", "match", "gmatch", "gsub" */
  struct arg args[MAX_ARGS];
  int nargs;
};

static void push_arg(lua_State *L, const struct arg *a) {
  switch (a->kind) {
    case ARG_NONE: case ARG_NIL: lua_pushnil(L); break;
    case ARG_STRING: lua_pushlstring(L, a->str, a->len); break;
    case ARG_INT: lua_pushinteger(L, (lua_Integer)a->i); break;
    case ARG_FLOAT: lua_pushnumber(L, a->d); break;
    case ARG_TRUE: lua_pushboolean(L, 1); break;
    case ARG_FALSE: lua_pushboolean(L, 0); break;
    case ARG_FUNCTION: lua_getglobal(L, "repl_fn"); break;
    case ARG_TABLE: lua_getglobal(L, "repl_tab"); break;
    case ARG_BAD_FUNCTION: lua_getglobal(L, "repl_bad"); break;
  }
}

static void describe_bytes(struct buf *out, const char *s, size_t len) {
  buf_append_char(out, '"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') buf_printf(out, "\\%c", c);
    else if (c >= 32 && c < 127) buf_append_char(out, (char)c);
    else buf_printf(out, "\\%u", c);
  }
  buf_append_char(out, '"');
}

static void describe_case(struct buf *out, const struct pcase *c) {
  buf_printf(out, "  string.%s(", c->fn);
  for (int i = 0; i < c->nargs; i++) {
    const struct arg *a = &c->args[i];
    if (i) buf_append_str(out, ", ");
    switch (a->kind) {
      case ARG_NONE: buf_append_str(out, "<none>"); break;
      case ARG_NIL: buf_append_str(out, "nil"); break;
      case ARG_STRING: describe_bytes(out, a->str, a->len); break;
      case ARG_INT: buf_printf(out, "%lld", a->i); break;
      case ARG_FLOAT: buf_printf(out, "%.17g", a->d); break;
      case ARG_TRUE: buf_append_str(out, "true"); break;
      case ARG_FALSE: buf_append_str(out, "false"); break;
      case ARG_FUNCTION: buf_append_str(out, "repl_fn"); break;
      case ARG_TABLE: buf_append_str(out, "repl_tab"); break;
      case ARG_BAD_FUNCTION: buf_append_str(out, "repl_bad"); break;
    }
  }
  buf_append_str(out, ")\n");
}

/* Appends the values L[first..top] with their exact types. */
static void serialize(lua_State *L, int first, struct buf *out) {
  int top = lua_gettop(L);
  buf_printf(out, "%d values:", top - first + 1);
  for (int i = first; i <= top; i++) {
    switch (lua_type(L, i)) {
      case LUA_TNIL: buf_append_str(out, " nil"); break;
      case LUA_TBOOLEAN:
        buf_append_str(out, lua_toboolean(L, i) ? " true" : " false");
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, i))
          buf_printf(out, " int %lld", (long long)lua_tointeger(L, i));
        else
          buf_printf(out, " float %.17g", lua_tonumber(L, i));
        break;
      case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        buf_append_str(out, " string ");
        describe_bytes(out, s, len);
        break;
      }
      default: buf_printf(out, " %s", luaL_typename(L, i)); break;
    }
  }
}

/* Calls the function below its nargs arguments at the top, protected;
 * appends what it returned or raised. Returns how many values it
 * returned, or -1 if it raised. */
static int call_and_record(lua_State *L, int nargs, struct buf *out) {
  int base = lua_gettop(L) - nargs;      /* where the function is */
  if (lua_pcall(L, nargs, LUA_MULTRET, 0) != LUA_OK) {
    buf_append_str(out, "error ");
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      describe_bytes(out, s, len);
    } else {
      buf_printf(out, "(a %s)", luaL_typename(L, -1));
    }
    lua_settop(L, base - 1);
    return -1;
  }
  int n = lua_gettop(L) - base + 1;
  serialize(L, base, out);
  lua_settop(L, base - 1);
  return n;
}

/* Runs c in L: the result (or error), and for gmatch every step of the
 * iteration and one call after its end; for gsub with a function, the
 * calls it made. */
static void run_case(lua_State *L, const struct pcase *c, struct buf *out) {
  buf_reset(out);
  lua_getglobal(L, "reset_log");
  lua_call(L, 0, 0);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, c->fn);
  lua_remove(L, -2);
  int nargs = c->nargs;
  while (nargs > 0 && c->args[nargs - 1].kind == ARG_NONE) nargs--;
  for (int i = 0; i < nargs; i++) push_arg(L, &c->args[i]);
  if (strcmp(c->fn, "gmatch") != 0) {
    call_and_record(L, nargs, out);
  } else {
    if (lua_pcall(L, nargs, 1, 0) != LUA_OK) {
      buf_append_str(out, "error ");
      describe_bytes(out, lua_tostring(L, -1), lua_rawlen(L, -1));
      lua_pop(L, 1);
    } else {
      int ends = 0;
      for (int step = 0; step < 64 && ends < 2; step++) {
        buf_printf(out, "\n  step %d: ", step);
        lua_pushvalue(L, -1);
        int n = call_and_record(L, 0, out);
        if (n < 0) break;
        if (n == 0) ends++;
      }
      lua_pop(L, 1);
    }
  }
  lua_getglobal(L, "log_text");
  lua_call(L, 0, 1);
  buf_append_str(out, "\n  replacement calls: ");
  buf_append_str(out, lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* What both states know: replacement functions and a table, logging the
 * calls gsub makes. No pattern functions in here: they are under test. */
static const char helpers[] =
    "local log = {}\n"
    "function reset_log() log = {} end\n"
    "function log_text() return table.concat(log, ' / ') end\n"
    "local function show(v)\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  return math.type(v) or type(v), tostring(v)\n"
    "end\n"
    "function repl_fn(...)\n"
    "  local parts = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    parts[#parts + 1] = table.concat({show((select(i, ...)))}, ' ')\n"
    "  end\n"
    "  log[#log + 1] = '(' .. table.concat(parts, ', ') .. ')'\n"
    "  local k, first = #log % 6, ...\n"
    "  if k == 0 then return nil end\n"
    "  if k == 1 then return '<' .. tostring(first) .. '>' end\n"
    "  if k == 2 then return false end\n"
    "  if k == 3 then return #log end\n"
    "  if k == 4 then return 1.5 end\n"
    "  return first\n"
    "end\n"
    "function repl_bad(...) log[#log + 1] = 'bad' return {} end\n"
    "repl_tab = { a = 'A', b = false, ab = 'AB', aa = 7, [1] = 'one',\n"
    "             [2] = {}, [3] = 2.5, x = 'X', [''] = 'empty' }\n";

static lua_State *new_state(const struct luastring_guard *ours, bool install) {
  lua_State *L = luaL_newstate();
  CHECK(L, "cannot create a Lua state");
  luaL_openlibs(L);
  if (install) luastring_install(L, ours);
  CHECK(luaL_dostring(L, helpers) == LUA_OK, "helpers: %s",
        lua_tostring(L, -1));
  return L;
}

/* Our guard in the differential run: asked, never stops, so the checking
 * path runs as it does in tghost. */
static unsigned long guard_calls;
static bool never_stop(lua_State *L, void *ud, char *why, size_t size) {
  guard_calls++;
  return false;
}

/* --- the random arguments ----------------------------------------------- */

static struct arg string_arg(const struct buf *b) {
  struct arg a = {ARG_STRING, b->data ? b->data : "", b->len, 0, 0};
  return a;
}

static struct arg init_arg(size_t subject_len) {
  struct arg a = {ARG_NONE, NULL, 0, 0, 0};
  unsigned k = below(100);
  if (k < 45) return a;
  if (k < 50) { a.kind = ARG_NIL; return a; }
  if (k < 90) {
    a.kind = ARG_INT;
    a.i = (long long)below((unsigned)subject_len * 2 + 7) -
          (long long)subject_len - 3;
    return a;
  }
  if (k < 93) {
    a.kind = ARG_INT;
    a.i = chance(50) ? INT64_MIN : INT64_MAX;
    return a;
  }
  if (k < 97) { a.kind = ARG_FLOAT; a.d = (double)below(5); return a; }
  a.kind = ARG_FLOAT;
  a.d = 1.5;                                      /* not an integer: error */
  return a;
}

static void gen_template(struct buf *t) {
  buf_reset(t);
  unsigned n = below(5);
  for (unsigned i = 0; i < n; i++) {
    if (chance(50)) {
      buf_append_char(t, pick("xy-<>"));
    } else {
      buf_append_char(t, '%');
      if (chance(90)) buf_append_char(t, pick("0123456789%"));
      else if (chance(50)) buf_append_char(t, pick("ax"));
      /* else: '%' last, or before the next byte */
    }
  }
}

static const char *const fn_names[] = {"find", "match", "gmatch", "gsub"};

static void gen_case(struct pcase *c, const struct buf *subject,
                     const struct buf *pattern, const struct buf *tmpl) {
  c->fn = fn_names[below(4)];
  memset(c->args, 0, sizeof c->args);
  c->args[0] = string_arg(subject);
  c->args[1] = string_arg(pattern);
  c->nargs = 2;
  if (chance(2)) {                    /* a wrong argument type */
    c->args[below(2)].kind = chance(50) ? ARG_NIL : ARG_TABLE;
  } else if (chance(2)) {             /* numbers are strings here */
    struct arg number = {ARG_INT, NULL, 0, (long long)below(200), 0};
    c->args[below(2)] = number;
  }
  if (strcmp(c->fn, "gsub") != 0) {
    c->args[2] = init_arg(subject->len);
    c->nargs = 3;
    if (strcmp(c->fn, "find") == 0 && chance(30)) {
      c->args[3].kind = chance(70) ? ARG_TRUE : ARG_FALSE;
      c->nargs = 4;
    }
    return;
  }
  unsigned r = below(100);
  struct arg *repl = &c->args[2];
  if (r < 45) *repl = string_arg(tmpl);
  else if (r < 65) repl->kind = ARG_FUNCTION;
  else if (r < 80) repl->kind = ARG_TABLE;
  else if (r < 85) { repl->kind = ARG_INT; repl->i = 42; }
  else if (r < 88) { repl->kind = ARG_FLOAT; repl->d = 0.5; }
  else if (r < 91) repl->kind = ARG_BAD_FUNCTION;
  else if (r < 94) repl->kind = chance(50) ? ARG_NIL : ARG_TRUE;
  else *repl = string_arg(tmpl);
  c->nargs = 3;
  if (chance(30)) {
    struct arg *n = &c->args[3];
    c->nargs = 4;
    unsigned k = below(10);
    if (k < 6) { n->kind = ARG_INT; n->i = (long long)below(5) - 1; }
    else if (k < 8) { n->kind = ARG_FLOAT; n->d = chance(50) ? 2.0 : 1.5; }
    else n->kind = ARG_NIL;
  }
}

/* Fixed cases first: the edges a random run might miss. */
static const char *const fixed_cases[][3] = {
    /* subject, pattern, function */
    {"hello world", "o w", "find"},
    {"hello", "", "gsub"},
    {"", "", "gmatch"},
    {"abc", "^", "gsub"},
    {"abc", "$", "gsub"},
    {"abc", "a*", "gmatch"},
    {"abc", "^a", "gmatch"},          /* '^' is a byte in gmatch */
    {"^abc", "^^a", "find"},
    {"a]b", "[]]", "find"},
    {"a]b", "[^]]", "gsub"},
    {"a%b", "[%]]", "find"},
    {"a-b", "[a-]", "gsub"},
    {"THE (quick) fox", "%f[%a]%a+", "gmatch"},
    {"THE (quick) fox", "%f[%A]", "gsub"},
    {"f(a(b)c)d", "%b()", "gsub"},
    {"hello hello", "(h)(e)(l)(l)(o) %1%2%3%4%5", "match"},
    {"abc", "()a()", "find"},
    {"abc", "()", "gsub"},
    {"abc", "(a", "find"},
    {"abc", "a)", "match"},
    {"abc", "%1", "find"},
    {"abc", "(a)%2", "find"},
    {"abc", "()%1", "find"},
    {"abc", "%", "match"},
    {"abc", "[a", "match"},
    {"abc", "[^", "match"},
    {"abc", "[%", "match"},
    {"abc", "%f", "match"},
    {"abc", "%fa", "match"},
    {"abc", "%b", "match"},
    {"abc", "%ba", "match"},
    {"abc", "a%", "find"},
    {"bbb", "a%", "find"},
    {"a\0b", "%z", "gsub"},
    {"a\0b", "[%z]", "find"},
    {"a.b", "a.b", "find"},
};

static void differential(void) {
  uint64_t seed = 20261130;
  const char *env = getenv("TGHOST_PATTERN_SEED");
  if (env && *env) seed = strtoull(env, NULL, 10);
  unsigned cases = 30000;
  env = getenv("TGHOST_PATTERN_CASES");
  if (env && *env) cases = (unsigned)strtoul(env, NULL, 10);
  current_seed = seed;
  rng_state = seed ? seed : 1;
  printf("pattern_test: seed %" PRIu64 ", %u random cases\n", seed, cases);

  static const struct luastring_guard counting = {never_stop, NULL, NULL};
  lua_State *ref = new_state(NULL, false);
  lua_State *ours = new_state(&counting, true);
  struct buf pattern = BUF_INIT, subject = BUF_INIT, tmpl = BUF_INIT;
  struct buf want = BUF_INIT, got = BUF_INIT;
  unsigned errors = 0, matched = 0, kinds[4] = {0};

  unsigned nfixed = sizeof fixed_cases / sizeof fixed_cases[0];
  for (unsigned n = 0; n < nfixed + cases; n++) {
    struct pcase c;
    if (n < nfixed) {
      buf_reset(&subject);
      /* The fixed subjects may hold a NUL: "a\0b" is 3 bytes. */
      const char *s = fixed_cases[n][0];
      size_t len = strlen(s);
      if (strcmp(fixed_cases[n][1], "%z") == 0 ||
          strcmp(fixed_cases[n][1], "[%z]") == 0)
        len = 3;
      buf_append(&subject, s, len);
      buf_reset(&pattern);
      buf_append_str(&pattern, fixed_cases[n][1]);
      buf_reset(&tmpl);
      buf_append_str(&tmpl, "<%0>");
      memset(&c, 0, sizeof c);
      c.fn = fixed_cases[n][2];
      c.args[0] = string_arg(&subject);
      c.args[1] = string_arg(&pattern);
      c.nargs = 2;
      if (strcmp(c.fn, "gsub") == 0) {
        c.args[2] = string_arg(&tmpl);
        c.nargs = 3;
      }
    } else {
      gen_pattern(&pattern);
      gen_subject(&subject, &pattern);
      gen_template(&tmpl);
      gen_case(&c, &subject, &pattern, &tmpl);
    }
    buf_reset(&current_case);
    buf_printf(&current_case, "  case %u:\n", n);
    describe_case(&current_case, &c);
    run_case(ref, &c, &want);
    run_case(ours, &c, &got);
    if (strcmp(want.data, got.data) != 0) {
      buf_printf(&current_case, "  Lua 5.4:\n  %s\n  ours:\n  %s", want.data,
                 got.data);
      CHECK(false, "string.%s differs from Lua's", c.fn);
    }
    if (strncmp(want.data, "error", 5) == 0) errors++;
    else if (!strstr(want.data, "1 values: nil")) matched++;
    for (int k = 0; k < 4; k++)
      if (strcmp(c.fn, fn_names[k]) == 0) kinds[k]++;
  }
  printf("pattern_test: %u cases agree (find %u, match %u, gmatch %u, "
         "gsub %u): %u raised the same error, %u found something; the "
         "guard was asked %lu times\n",
         nfixed + cases, kinds[0], kinds[1], kinds[2], kinds[3], errors,
         matched, guard_calls);
  /* A generator that stopped producing errors or matches tests little. */
  CHECK(errors > cases / 50, "only %u cases raised errors", errors);
  CHECK(matched > cases / 5, "only %u cases matched", matched);
  lua_close(ref);
  lua_close(ours);
  buf_free(&pattern);
  buf_free(&subject);
  buf_free(&tmpl);
  buf_free(&want);
  buf_free(&got);
  buf_free(&current_case);
}

/* --- the bound ---------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct deadline {
  double at;
  unsigned long asked;
};

static bool past_deadline(lua_State *L, void *ud, char *why, size_t size) {
  struct deadline *d = ud;
  d->asked++;
  if (now_ms() < d->at) return false;
  snprintf(why, size, "the test's deadline passed");
  return true;
}

static char last_stop_message[512];
static void note_stop(lua_State *L, void *ud, const char *message) {
  snprintf(last_stop_message, sizeof last_stop_message, "%s", message);
}

/* Through Lua: each function stops soon after the guard says so, with the
 * clear error at the script's line, and the state works on. */
static void bound_in_lua(void) {
  struct deadline d = {0, 0};
  const struct luastring_guard guard = {past_deadline, note_stop, &d};
  lua_State *L = new_state(&guard, true);
  static const struct {
    const char *fn, *code, *quoted_pattern;
    int bytes;
  } calls[] = {
      {"find", "return string.find(string.rep('a', 3000), '.-.-.-b')",
       "\".-.-.-b\"", 3000},
      {"match", "return ('x' .. string.rep('a', 3000)):match('.-.-.-b')",
       "\".-.-.-b\"", 3001},
      {"gmatch",
       "for a in string.gmatch(string.rep('a', 3000), '.-.-.-b') do end",
       "\".-.-.-b\"", 3000},
      {"gsub", "return string.gsub(string.rep('a', 3000), '.-.-.-b', '')",
       "\".-.-.-b\"", 3000},
      {"find", "return string.find(string.rep('(', 100000) .. ')', '%b()x')",
       "\"%b()x\"", 100001},
      {"match", "return string.rep('a', 5000):match('(.-)%1%1b')",
       "\"(.-)%1%1b\"", 5000},
      {"find", "return string.find(string.rep('a', 3000), "
               "string.rep('.-', 40) .. '\\1\"')",
       "\".-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-.-\"...",
       3000},
  };
  const double limit_ms = 100;
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    const char *code = calls[i].code;
    d.asked = 0;
    last_stop_message[0] = '\0';
    double started = now_ms();
    d.at = started + limit_ms;
    CHECK(luaL_loadbuffer(L, code, strlen(code), "=bound") == LUA_OK,
          "load: %s", lua_tostring(L, -1));
    int status = lua_pcall(L, 0, 0, 0);
    double took = now_ms() - started;
    CHECK(status != LUA_OK, "%s ran to its end (%.0f ms)", code, took);
    const char *msg = lua_tostring(L, -1);
    char want[300];
    snprintf(want, sizeof want,
             "bound:1: pattern matching stopped: the test's deadline passed "
             "in string.%s; the pattern %s backtracks too much on this text "
             "(%d bytes)", calls[i].fn, calls[i].quoted_pattern,
             calls[i].bytes);
    CHECK(strcmp(msg, want) == 0, "the error: %s\n  wanted: %s", msg, want);
    CHECK(strcmp(last_stop_message, want) == 0, "the guard was told: %s",
          last_stop_message);
    /* The guard is asked every few thousand steps: microseconds apart. */
    CHECK(took < limit_ms + 400, "%s stopped after %.0f ms", code, took);
    CHECK(d.asked > 10, "the guard was asked %lu times", d.asked);
    printf("pattern_test: %s stopped after %.0f ms (guard asked %lu times)\n",
           code, took, d.asked);
    lua_pop(L, 1);
  }
  /* A plain find whose needle nearly matches everywhere: n * m bytes of
   * comparing, asked about as it goes. */
  d.asked = 0;
  last_stop_message[0] = '\0';
  double started = now_ms();
  d.at = started + limit_ms;
  static const char plain[] =
      "return string.find(string.rep('a', 400000), string.rep('a', 100000) "
      ".. 'b', 1, true)";
  CHECK(luaL_loadbuffer(L, plain, sizeof plain - 1, "=bound") == LUA_OK,
        "load: %s", lua_tostring(L, -1));
  CHECK(lua_pcall(L, 0, 0, 0) != LUA_OK, "the plain find ran to its end");
  double took = now_ms() - started;
  static const char plain_want[] =
      "bound:1: string.find stopped: the test's deadline passed in a plain "
      "search for 100001 bytes in 400000 bytes";
  CHECK(strcmp(lua_tostring(L, -1), plain_want) == 0, "the error: %s",
        lua_tostring(L, -1));
  CHECK(strcmp(last_stop_message, plain_want) == 0, "the guard was told: %s",
        last_stop_message);
  CHECK(took < limit_ms + 400, "the plain find stopped after %.0f ms", took);
  printf("pattern_test: a plain find stopped after %.0f ms\n", took);
  lua_pop(L, 1);
  d.at = now_ms() + 60000;
  CHECK(luaL_dostring(L, "return ('key=value'):match('^(%w+)=(%w+)$')") ==
            LUA_OK, "%s", lua_tostring(L, -1));
  CHECK(strcmp(lua_tostring(L, -2), "key") == 0 &&
            strcmp(lua_tostring(L, -1), "value") == 0,
        "a match after the stops");
  lua_close(L);
}

static bool stop_now(void *ud) {
  (*(unsigned *)ud)++;
  return true;
}

/* The engine alone: without a callback a search runs to its end; with one
 * that says stop, it stops at the first check, for good. */
static void bound_in_engine(void) {
  static const char subject[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  struct lpat_matcher m;
  size_t s, e;
  lpat_init(&m, subject, strlen(subject), ".-.-.-.-b", 9, NULL, NULL);
  CHECK(lpat_search(&m, 0, false, LPAT_ANY_END, &s, &e) == LPAT_NOMATCH,
        "no callback: the search runs to its end");
  uint64_t full = lpat_steps(&m);
  CHECK(full > 100000, "'.-.-.-.-b' on 40 bytes took %" PRIu64 " steps", full);
  printf("pattern_test: '.-.-.-.-b' on 40 bytes: %" PRIu64 " steps\n", full);

  unsigned asked = 0;
  lpat_init(&m, subject, strlen(subject), ".-.-.-.-b", 9, stop_now, &asked);
  CHECK(lpat_search(&m, 0, false, LPAT_ANY_END, &s, &e) == LPAT_ABORTED,
        "the search was not aborted");
  CHECK(asked == 1, "the callback was asked %u times", asked);
  CHECK(lpat_steps(&m) <= LPAT_CHECK_EVERY + 64,
        "it went on for %" PRIu64 " steps", lpat_steps(&m));
  CHECK(lpat_search(&m, 0, false, LPAT_ANY_END, &s, &e) == LPAT_ABORTED,
        "an abort is not final");
  CHECK(asked == 1, "asked again after the abort");
}

TEST(differential) { differential(); }

/* string.rep: Lua's results and errors on small cases, and at once where
 * Lua's loops n times over empty copies. */
TEST(rep) {
  lua_State *lua = new_state(NULL, false), *ours = new_state(NULL, true);
  static const char *const strs[] = {"", "a", "ab", "x\0y", "hello"};
  static const long long counts[] = {-1, 0, 1, 2, 3, 7, 100, 1LL << 31,
                                     INT64_MAX};
  size_t cases = 0;
  for (size_t si = 0; si < 5; si++)
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
      for (int sep = -1; sep < 5; sep++) {
        const char *s = strs[si];
        size_t ls = si == 3 ? 3 : strlen(s);
        const char *sp = sep < 0 ? NULL : strs[sep];
        size_t lsp = sep == 3 ? 3 : sp ? strlen(sp) : 0;
        /* Lua's own loops n times when every copy is empty: not run. */
        if (ls + lsp == 0 && counts[ci] > 1000) continue;
        char *got[2];
        for (int k = 0; k < 2; k++) {
          lua_State *L = k ? ours : lua;
          lua_getglobal(L, "pcall");
          lua_getglobal(L, "string");
          lua_getfield(L, -1, "rep");
          lua_remove(L, -2);
          lua_pushlstring(L, s, ls);
          lua_pushinteger(L, counts[ci]);
          if (sp) lua_pushlstring(L, sp, lsp);
          lua_call(L, sp ? 4 : 3, 2);
          size_t len;
          const char *r = lua_tolstring(L, -1, &len);
          got[k] = malloc(len + 2);
          got[k][0] = lua_toboolean(L, -2) ? 'T' : 'F';
          memcpy(got[k] + 1, r, len);
          got[k][len + 1] = '\0';
          CHECK(k == 0 || strlen(got[0] + 1) == strlen(got[1] + 1),
                "different lengths");
          lua_pop(L, 2);
        }
        CHECK(memcmp(got[0], got[1], strlen(got[0] + 1) + 1) == 0,
              "string.rep(%zu bytes, %lld, %d): Lua's %.60s, ours %.60s", ls,
              counts[ci], sep, got[0], got[1]);
        free(got[0]);
        free(got[1]);
        cases++;
      }
  double started = now_ms();
  CHECK(luaL_dostring(ours, "return #string.rep('', 1 << 53) + "
                      "#string.rep('', 1 << 53, '')") == LUA_OK,
        "%s", lua_tostring(ours, -1));
  CHECK(lua_tointeger(ours, -1) == 0 && now_ms() - started < 50,
        "2^53 empty copies");
  lua_pop(ours, 1);
  printf("pattern_test: string.rep agrees on %zu cases\n", cases);
  lua_close(lua);
  lua_close(ours);
}

TEST(abort) {
  bound_in_engine();
  bound_in_lua();
}
