/* A libFuzzer target for tghost's JSON: the pull reader (src/json.c) and
 * JSON <-> Lua (src/luajson.c), with lua-cjson as the differential oracle.
 *
 * For every input it checks:
 *   1. the reader: walking the value with the pull API, skipping it
 *      (json_skip) and decoding it (luajson) accept or reject alike, and
 *      json_skip_unchecked delimits what json_skip accepts alike; every
 *      number reads as its text says (an integer prints back as its text,
 *      a float is strtod's value); every string unescapes to bytes that
 *      json_write_string escapes and the reader reads back unchanged;
 *      json_find_member finds what the decoded object has;
 *   2. the round trip: what decodes encodes (unless it holds an infinity,
 *      from a number like 1e400) and decodes again to exactly the same Lua
 *      value (integer and float subtypes, empty-table markers included),
 *      and lua-cjson reads our encoding as the same value;
 *   3. the oracle: lua-cjson (Debian's 2.1.0, with decode_invalid_numbers
 *      off and decode_max_depth at our JSON_MAX_DEPTH) accepts exactly what
 *      we accept and decodes it to the same value, except where these
 *      documented differences apply:
 *        a. numbers: lua-cjson makes every number a float; ours are
 *           integers when integral and within 64 bits, so a large integer
 *           (beyond 2^53) is exact in ours and rounded in lua-cjson. They
 *           are compared as (double)ours == cjson. "-0" is the integer 0
 *           in ours and -0.0 in lua-cjson.
 *        b. null members: ours leaves them out of the object ("absent, as
 *           in Lua"); lua-cjson stores cjson.null. So {"a":1,"a":null} is
 *           {a = 1} in ours and {a = null} in lua-cjson. (null in arrays is
 *           the same light userdata in both.)
 *        c. lua-cjson's leniencies it has no setting for: numbers that
 *           strtod reads but JSON does not allow ("1.", "-.5", "2.e3"); raw
 *           control characters (0x01-0x1f) inside strings; a NUL byte
 *           after the value, which it takes for the end of the input. Ours
 *           rejects all three.
 *        d. invalid \u escapes (a lone or unpaired surrogate): ours decodes
 *           them as U+FFFD, lua-cjson rejects the document.
 *      An input on which the two disagree is rewritten with c and d made
 *      strict (the number normalized, the control byte escaped, the text
 *      cut at the NUL, the surrogate written as \ufffd); the two must then
 *      agree, the rewrite must not change what the lenient side decoded,
 *      and the original disagreement must be one of those kinds.
 *
 * Any other difference, or a crash or sanitizer report, is a finding: the
 * target prints the input and aborts. Built with clang's libFuzzer
 * (cmake --preset fuzz: build-fuzz/fuzz_json), and, always, with the plain
 * driver tests/fuzz/fuzz_driver.c that ctest runs over tests/fuzz/corpus/json/. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua-cjson.h>

#include "base/buf.h"
#include "base/json.h"
#include "script/luajson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static const uint8_t *input;   /* for the report */
static size_t input_size;

static void print_bytes(FILE *f, const char *s, size_t len) {
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c >= 32 && c < 127) fputc(c, f);
    else fprintf(f, "\\x%02x", c);
  }
  fputc('"', f);
}

static void finding(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void finding(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_json: FINDING: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n  input (%zu bytes): ", input_size);
  print_bytes(stderr, (const char *)input,
              input_size > 2000 ? 2000 : input_size);
  fprintf(stderr, "\n");
  abort();
}

#define EXPECT(cond, ...)            \
  do {                               \
    if (!(cond)) finding(__VA_ARGS__); \
  } while (0)

/* --- set-up: one Lua state with lua-cjson, configured ------------------- */

static void setup(void) {
  L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode_max_depth");
  lua_pushinteger(L, JSON_MAX_DEPTH);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.cjson_decode");
  lua_pop(L, 1);
}

/* --- 1. the reader ------------------------------------------------------ */

static bool is_json_number(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-') i++;
  if (i >= n) return false;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return false;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return false;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  return i == n;
}

/* Whether an integral JSON number's digits fit in int64. */
static bool fits_int64(const char *s, size_t n) {
  bool neg = n > 0 && s[0] == '-';
  const char *d = s + neg;
  size_t len = n - neg;
  const char *limit = neg ? "9223372036854775808" : "9223372036854775807";
  if (len != 19) return len < 19;
  return memcmp(d, limit, 19) <= 0;
}

static double strtod_n(const char *s, size_t n) {
  char *tmp = xmalloc(n + 1);
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  double d = strtod(tmp, NULL);
  free(tmp);
  return d;
}

static void check_number(const char *s, size_t n,
                         const struct json_number *num) {
  EXPECT(is_json_number(s, n), "json_read_number took %.*s", (int)n, s);
  bool integral =
      !memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n);
  EXPECT(num->is_integer == (integral && fits_int64(s, n)),
         "%.*s read as %s", (int)n, s,
         num->is_integer ? "an integer" : "a float");
  if (num->is_integer) {
    char back[32];
    snprintf(back, sizeof back, "%lld", (long long)num->i);
    bool minus_zero = n == 2 && memcmp(s, "-0", 2) == 0;
    EXPECT((strlen(back) == n && memcmp(back, s, n) == 0) ||
               (minus_zero && num->i == 0),
           "%.*s read as the integer %s", (int)n, s, back);
    EXPECT(num->d == (double)num->i, "%.*s: d does not match i", (int)n, s);
  } else {
    double want = strtod_n(s, n);
    EXPECT(memcmp(&want, &num->d, sizeof want) == 0,
           "%.*s read as %.17g, strtod says %.17g", (int)n, s, num->d, want);
  }
}

static void check_string(const struct json_slice *s) {
  EXPECT(s->has_escapes == (memchr(s->ptr, '\\', s->len) != NULL),
         "has_escapes is wrong");
  struct buf u = BUF_INIT, w = BUF_INIT, again = BUF_INIT;
  json_unescape(s, &u);
  if (!s->has_escapes)
    EXPECT(u.len == s->len && memcmp(u.data, s->ptr, s->len) == 0,
           "a string without escapes changed when unescaped");
  json_write_string(&w, u.data ? u.data : "", u.len);
  struct json_reader r;
  struct json_slice back;
  json_reader_init(&r, w.data, w.len);
  EXPECT(json_read_string(&r, &back) && json_finish(&r),
         "json_write_string wrote what the reader rejects: %s",
         json_error(&r));
  json_unescape(&back, &again);
  EXPECT(again.len == u.len && memcmp(again.data ? again.data : "",
                                      u.data ? u.data : "", u.len) == 0,
         "a string changed through json_write_string");
  buf_free(&u);
  buf_free(&w);
  buf_free(&again);
}

/* Walks one value with the pull API, checking each number and string. */
static bool walk(struct json_reader *r) {
  switch (json_peek(r)) {
    case JSON_OBJECT: {
      if (!json_object_begin(r)) return false;
      struct json_slice key;
      while (json_object_next(r, &key)) {
        check_string(&key);
        if (!walk(r)) return false;
      }
      return !json_error(r);
    }
    case JSON_ARRAY:
      if (!json_array_begin(r)) return false;
      while (json_array_next(r))
        if (!walk(r)) return false;
      return !json_error(r);
    case JSON_STRING: {
      struct json_slice s;
      if (!json_read_string(r, &s)) return false;
      check_string(&s);
      return true;
    }
    case JSON_NUMBER: {
      const char *start = r->p;
      struct json_number n;
      if (!json_read_number(r, &n)) return false;
      check_number(start, (size_t)(r->p - start), &n);
      return true;
    }
    case JSON_TRUE:
    case JSON_FALSE: {
      bool b;
      return json_read_bool(r, &b);
    }
    case JSON_NULL:
      return json_read_null(r);
    default:
      return false;
  }
}

/* Decodes s with luajson; on success pushes the value, else pushes
 * nothing and fills *r's error. */
static bool ours_decode(const char *s, size_t n, struct json_reader *r) {
  struct buf scratch = BUF_INIT;
  int top = lua_gettop(L);
  json_reader_init(r, s, n);
  bool ok = lua_checkstack(L, LUAJSON_STACK) &&
            luajson_decode_value(L, r, &scratch) && json_finish(r);
  buf_free(&scratch);
  if (!ok) lua_settop(L, top);
  return ok;
}

static void check_reader(const char *s, size_t n) {
  struct json_reader r;
  json_reader_init(&r, s, n);
  bool walked = walk(&r) && json_finish(&r);

  json_reader_init(&r, s, n);
  struct json_slice span;
  bool skipped = json_skip(&r, &span) && json_finish(&r);
  EXPECT(walked == skipped, "the walk %s, json_skip %s",
         walked ? "accepts" : "rejects", skipped ? "accepts" : "rejects");

  /* The unchecked skip finds the same end as the validating one wherever
   * that one accepts, and never reads past the input either way. */
  json_reader_init(&r, s, n);
  struct json_slice loose;
  bool delimited = json_skip_unchecked(&r, &loose);
  EXPECT(!delimited || (loose.ptr >= s && loose.ptr + loose.len <= s + n),
         "json_skip_unchecked's span leaves the input");
  if (skipped)
    EXPECT(delimited && loose.ptr == span.ptr && loose.len == span.len,
           "json_skip_unchecked %s, span %zu bytes where json_skip's is %zu",
           delimited ? "delimits" : "fails", delimited ? loose.len : 0,
           span.len);

  struct buf err = BUF_INIT;
  bool decoded = luajson_decode(L, s, n, &err) == 0;
  EXPECT(decoded == skipped, "luajson_decode %s (%s), json_skip %s",
         decoded ? "accepts" : "rejects", err.data ? err.data : "",
         skipped ? "accepts" : "rejects");
  buf_free(&err);
  if (!decoded) return;
  /* The span is the value without the white space around it. */
  size_t lead = 0;
  while (lead < n && strchr(" \t\r\n", s[lead]) && s[lead]) lead++;
  EXPECT(span.ptr == s + lead, "json_skip's span starts at %td",
         span.ptr - s);

  /* json_find_member agrees with the decoded object. */
  static const char *const names[] = {"update_id", "ok", "result", "message",
                                       "text", "a", ""};
  bool object = lua_istable(L, -1) && s[lead] == '{';
  for (size_t i = 0; object && i < sizeof names / sizeof names[0]; i++) {
    struct json_reader at;
    bool found = json_find_member(s, n, names[i], &at);
    lua_getfield(L, -1, names[i]);
    bool present = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (present) EXPECT(found, "json_find_member misses \"%s\"", names[i]);
    if (found) {
      struct buf scratch = BUF_INIT;
      EXPECT(lua_checkstack(L, LUAJSON_STACK) &&
                 luajson_decode_value(L, &at, &scratch),
             "the value json_find_member found for \"%s\" does not decode",
             names[i]);
      lua_pop(L, 1);
      buf_free(&scratch);
    }
  }
  lua_pop(L, 1);
}

/* --- comparing decoded values ------------------------------------------- */

static const char *marker(int idx) {
  const char *type = NULL;
  if (lua_getmetatable(L, idx)) {
    if (lua_getfield(L, -1, "__jsontype") == LUA_TSTRING)
      type = lua_tostring(L, -1);
    lua_pop(L, 2);
  }
  return type ? type : "";
}

static size_t count_keys(int idx) {
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    n++;
  }
  return n;
}

/* Exactly the same value, as the same decoder makes it twice. */
static bool same_exact(int a, int b, int depth) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  int t = lua_type(L, a);
  if (t != lua_type(L, b)) return false;
  switch (t) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return false;
      if (lua_isinteger(L, a))
        return lua_tointeger(L, a) == lua_tointeger(L, b);
      {
        double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof x) == 0;
      }
    case LUA_TSTRING: {
      size_t la, lb;
      const char *x = lua_tolstring(L, a, &la), *y = lua_tolstring(L, b, &lb);
      return la == lb && memcmp(x, y, la) == 0;
    }
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TLIGHTUSERDATA:
      return lua_touserdata(L, a) == lua_touserdata(L, b);
    case LUA_TTABLE: {
      if (depth > JSON_MAX_DEPTH + 2 || !lua_checkstack(L, 8)) return false;
      if (strcmp(marker(a), marker(b)) != 0) return false;
      if (count_keys(a) != count_keys(b)) return false;
      lua_pushnil(L);
      while (lua_next(L, a)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        bool same = same_exact(-2, -1, depth + 1);
        lua_pop(L, 2);
        if (!same) {
          lua_pop(L, 1);
          return false;
        }
      }
      return true;
    }
    default: return false;
  }
}

static bool is_null(int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, idx);
}

/* Ours (at o) against lua-cjson's (at c) for the value r is at, read from
 * the same text, with differences a and b of the header. The reader gives
 * the structure: which keys an object has, and how often. */
static bool same_as_cjson(struct json_reader *r, int o, int c,
                          struct buf *why) {
  o = lua_absindex(L, o);
  c = lua_absindex(L, c);
  if (!lua_checkstack(L, 8)) return false;
  switch (json_peek(r)) {
    case JSON_OBJECT: {
      if (!lua_istable(L, o) || !lua_istable(L, c)) {
        buf_printf(why, "an object is not a table");
        return false;
      }
      /* First pass: per key, how often, and whether any is not null. */
      struct json_reader first = *r;
      lua_newtable(L);                       /* key -> {count, nonnull} */
      int info = lua_gettop(L);
      struct json_slice key;
      struct buf k = BUF_INIT;
      json_object_begin(&first);
      size_t distinct = 0, with_value = 0;
      while (json_object_next(&first, &key)) {
        buf_reset(&k);
        json_unescape(&key, &k);
        lua_pushlstring(L, k.data ? k.data : "", k.len);
        if (lua_rawget(L, info) == LUA_TNIL) {
          lua_pop(L, 1);
          lua_createtable(L, 2, 0);
          lua_pushinteger(L, 0);
          lua_rawseti(L, -2, 1);
          lua_pushboolean(L, 0);
          lua_rawseti(L, -2, 2);
          lua_pushlstring(L, k.data ? k.data : "", k.len);
          lua_pushvalue(L, -2);
          lua_rawset(L, info);
          distinct++;
        }
        lua_rawgeti(L, -1, 1);
        lua_pushinteger(L, lua_tointeger(L, -1) + 1);
        lua_rawseti(L, -3, 1);
        lua_pop(L, 1);
        if (json_peek(&first) != JSON_NULL) {
          lua_rawgeti(L, -1, 2);
          if (!lua_toboolean(L, -1)) with_value++;
          lua_pop(L, 1);
          lua_pushboolean(L, 1);
          lua_rawseti(L, -2, 2);
        }
        lua_pop(L, 1);
        json_skip(&first, NULL);
      }
      /* Second pass: the last occurrence of each key is what both kept. */
      json_object_begin(r);
      bool ok = true;
      while (ok && json_object_next(r, &key)) {
        buf_reset(&k);
        json_unescape(&key, &k);
        lua_pushlstring(L, k.data ? k.data : "", k.len);
        lua_rawget(L, info);
        lua_rawgeti(L, -1, 1);
        lua_Integer left = lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
        lua_pushinteger(L, left);
        lua_rawseti(L, -2, 1);
        lua_rawgeti(L, -1, 2);
        bool nonnull = lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (left > 0) {                      /* an earlier duplicate */
          json_skip(r, NULL);
          continue;
        }
        lua_pushlstring(L, k.data ? k.data : "", k.len);
        lua_rawget(L, o);
        lua_pushlstring(L, k.data ? k.data : "", k.len);
        lua_rawget(L, c);
        if (json_peek(r) == JSON_NULL) {
          json_read_null(r);
          /* b: ours leaves null out, or keeps an earlier non-null value. */
          if (!is_null(-1)) {
            buf_printf(why, "lua-cjson's .%s is not null",
                       k.data ? k.data : "");
            ok = false;
          } else if (lua_isnil(L, -2) == nonnull) {
            buf_printf(why, ".%s: ours %s", k.data ? k.data : "",
                       nonnull ? "lost an earlier value" : "kept a null");
            ok = false;
          }
        } else if (lua_isnil(L, -2) || lua_isnil(L, -1)) {
          buf_printf(why, ".%s missing in %s", k.data ? k.data : "",
                     lua_isnil(L, -2) ? "ours" : "lua-cjson's");
          ok = false;
        } else if (!same_as_cjson(r, -2, -1, why)) {
          buf_printf(why, " (in .%s)", k.data ? k.data : "");
          ok = false;
        }
        lua_pop(L, 2);
      }
      buf_free(&k);
      lua_pop(L, 1);                         /* info */
      if (!ok) return false;
      if (json_error(r)) return false;
      if (with_value == 0 && strcmp(marker(o), "object") != 0) {
        buf_printf(why, "an empty object is not marked as one");
        return false;
      }
      if (count_keys(o) != with_value || count_keys(c) != distinct) {
        buf_printf(why, "key counts: ours %zu (want %zu), lua-cjson %zu "
                   "(want %zu)", count_keys(o), with_value, count_keys(c),
                   distinct);
        return false;
      }
      return true;
    }
    case JSON_ARRAY: {
      if (!lua_istable(L, o) || !lua_istable(L, c)) {
        buf_printf(why, "an array is not a table");
        return false;
      }
      json_array_begin(r);
      lua_Integer i = 0;
      while (json_array_next(r)) {
        i++;
        lua_rawgeti(L, o, i);
        lua_rawgeti(L, c, i);
        bool same = same_as_cjson(r, -2, -1, why);
        lua_pop(L, 2);
        if (!same) {
          buf_printf(why, " (in [%lld])", (long long)i);
          return false;
        }
      }
      if (i == 0 && strcmp(marker(o), "array") != 0) {
        buf_printf(why, "an empty array is not marked as one");
        return false;
      }
      if (count_keys(o) != (size_t)i || count_keys(c) != (size_t)i) {
        buf_printf(why, "array lengths: ours %zu, lua-cjson %zu, want %lld",
                   count_keys(o), count_keys(c), (long long)i);
        return false;
      }
      return !json_error(r);
    }
    case JSON_NUMBER: {
      json_read_number(r, NULL);
      if (lua_type(L, o) != LUA_TNUMBER || lua_type(L, c) != LUA_TNUMBER ||
          lua_isinteger(L, c)) {
        buf_printf(why, "a number is not a number");
        return false;
      }
      double d = lua_tonumber(L, c);
      if (lua_isinteger(L, o)) {                         /* a */
        if ((double)lua_tointeger(L, o) == d) return true;
        buf_printf(why, "ours %lld, lua-cjson %.17g",
                   (long long)lua_tointeger(L, o), d);
        return false;
      }
      double x = lua_tonumber(L, o);
      if (memcmp(&x, &d, sizeof d) == 0) return true;
      buf_printf(why, "ours %.17g, lua-cjson %.17g", x, d);
      return false;
    }
    case JSON_STRING:
      json_read_string(r, NULL);
      if (lua_type(L, o) == LUA_TSTRING && lua_type(L, c) == LUA_TSTRING &&
          same_exact(o, c, 0))
        return true;
      buf_printf(why, "strings differ");
      return false;
    case JSON_TRUE:
    case JSON_FALSE: {
      bool b;
      json_read_bool(r, &b);
      if (lua_type(L, o) == LUA_TBOOLEAN && same_exact(o, c, 0)) return true;
      buf_printf(why, "booleans differ");
      return false;
    }
    case JSON_NULL:
      json_read_null(r);
      if (is_null(o) && is_null(c)) return true;
      buf_printf(why, "null differs");
      return false;
    default:
      buf_printf(why, "the reader failed: %s", json_error(r));
      return false;
  }
}

/* lua-cjson's decode of s: pushes the value (true) or the message. */
static bool cjson_decode(const char *s, size_t n) {
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.cjson_decode");
  lua_pushlstring(L, s, n);
  return lua_pcall(L, 1, 1, 0) == LUA_OK;
}

/* --- 2. the round trip -------------------------------------------------- */

static bool has_nonfinite(int idx, int depth) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TNUMBER)
    return !lua_isinteger(L, idx) && !isfinite(lua_tonumber(L, idx));
  if (lua_type(L, idx) != LUA_TTABLE || depth > JSON_MAX_DEPTH + 2)
    return false;
  bool found = false;
  lua_pushnil(L);
  while (!found && lua_next(L, idx)) {
    found = has_nonfinite(-1, depth + 1);
    lua_pop(L, 1);
  }
  if (found) lua_pop(L, 1);
  return found;
}

static void check_round_trip(const char *s, size_t n) {
  struct json_reader r;
  if (!ours_decode(s, n, &r)) return;
  int v = lua_gettop(L);
  struct buf out = BUF_INIT, err = BUF_INIT;
  if (luajson_encode(L, v, &out, &err) != 0) {
    EXPECT(has_nonfinite(v, 0) &&
               strstr(err.data, "NaN or infinity cannot be encoded"),
           "what decoded does not encode: %s", err.data);
    goto done;
  }
  EXPECT(lua_gettop(L) == v, "luajson_encode left the stack changed");
  struct json_reader again;
  EXPECT(ours_decode(out.data, out.len, &again),
         "our encoding does not decode: %s at %zu of %.*s", json_error(&again),
         json_error_offset(&again), (int)out.len, out.data);
  EXPECT(same_exact(v, -1, 0), "decode(encode(v)) is not v: %.*s",
         (int)out.len, out.data);
  lua_pop(L, 1);
  /* lua-cjson reads our encoding as the same value. */
  EXPECT(cjson_decode(out.data, out.len),
         "lua-cjson rejects our encoding %.*s: %s", (int)out.len, out.data,
         lua_tostring(L, -1));
  struct buf why = BUF_INIT;
  json_reader_init(&again, out.data, out.len);
  EXPECT(same_as_cjson(&again, v, -1, &why),
         "lua-cjson reads our encoding %.*s differently: %s", (int)out.len,
         out.data, why.data);
  buf_free(&why);
  lua_pop(L, 1);
done:
  lua_settop(L, v - 1);
  buf_free(&out);
  buf_free(&err);
}

/* --- 3. the oracle ------------------------------------------------------ */

static bool hex4(const char *p, const char *end, unsigned *cp) {
  if (end - p < 4) return false;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char h = p[i];
    int d = h >= '0' && h <= '9'   ? h - '0'
            : h >= 'a' && h <= 'f' ? h - 'a' + 10
            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                   : -1;
    if (d < 0) return false;
    v = v << 4 | (unsigned)d;
  }
  *cp = v;
  return true;
}

/* The input with lua-cjson's leniencies (c) and ours (d) made strict; see
 * the header. */
static void make_strict(const char *s, size_t n, struct buf *out) {
  const char *p = s, *end = s + n;
  bool in_string = false;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (in_string) {
      if (c == '"') {
        in_string = false;
      } else if (c == '\\') {
        unsigned cp, lo;
        if (end - p >= 6 && p[1] == 'u' && hex4(p + 2, end, &cp)) {
          if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 12 && p[6] == '\\' &&
              p[7] == 'u' && hex4(p + 8, end, &lo) && lo >= 0xDC00 &&
              lo <= 0xDFFF) {
            buf_append(out, p, 12);          /* a good pair */
            p += 12;
          } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            buf_append_str(out, "\\ufffd");
            p += 6;
          } else {
            buf_append(out, p, 6);
            p += 6;
          }
          continue;
        }
        buf_append(out, p, end - p >= 2 ? 2 : 1);
        p += end - p >= 2 ? 2 : 1;
        continue;
      } else if (c >= 0x01 && c < 0x20) {
        buf_printf(out, "\\u%04x", c);
        p++;
        continue;
      }
      buf_append_char(out, (char)c);
      p++;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '\0') {
      return;                                /* lua-cjson's end of input */
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const char *q = p;
      while (q < end && strchr("+-.0123456789eE", *q) && *q) q++;
      char *tmp = xstrndup(p, (size_t)(q - p));
      char *stop;
      double d = strtod(tmp, &stop);
      size_t took = (size_t)(stop - tmp);
      free(tmp);
      if (took > 0 && memchr(p, '.', took) && !is_json_number(p, took)) {
        char num[40];
        if (isinf(d)) snprintf(num, sizeof num, "%s1e999", d < 0 ? "-" : "");
        else snprintf(num, sizeof num, "%.17g", d);
        buf_append_str(out, num);
        if (!strpbrk(num, ".eE")) buf_append_str(out, ".0");
        p += took;
        continue;
      }
      buf_append(out, p, took > 0 ? took : 1);
      p += took > 0 ? took : 1;
      continue;
    }
    buf_append_char(out, (char)c);
    p++;
  }
}

/* Both accept and agree, or both reject: ours at -2, lua-cjson's at -1
 * (each nil or the message when it rejected). */
static bool agree(const char *s, size_t n, bool ours_ok, bool cjson_ok,
                  struct buf *why) {
  if (ours_ok != cjson_ok) {
    buf_printf(why, "ours %s, lua-cjson %s", ours_ok ? "accepts" : "rejects",
               cjson_ok ? "accepts" : "rejects");
    return false;
  }
  if (!ours_ok) return true;
  struct json_reader r;
  json_reader_init(&r, s, n);
  return same_as_cjson(&r, -2, -1, why);
}

static void check_oracle(const char *s, size_t n) {
  int top = lua_gettop(L);
  struct json_reader r;
  bool ours_ok = ours_decode(s, n, &r);
  if (!ours_ok) lua_pushnil(L);
  int ours = lua_gettop(L);
  bool cjson_ok = cjson_decode(s, n);
  int theirs = lua_gettop(L);
  struct buf why = BUF_INIT;
  if (agree(s, n, ours_ok, cjson_ok, &why)) goto done;

  struct buf strict = BUF_INIT;
  make_strict(s, n, &strict);
  EXPECT(strict.len != n || (n && memcmp(strict.data, s, n) != 0),
         "ours and lua-cjson differ (%s); ours: %s; lua-cjson: %s", why.data,
         ours_ok ? "ok" : json_error(&r),
         cjson_ok ? "ok" : lua_tostring(L, theirs));
  struct json_reader r2;
  bool ours2_ok = ours_decode(strict.data ? strict.data : "", strict.len, &r2);
  if (!ours2_ok) lua_pushnil(L);
  int ours2 = lua_gettop(L);
  bool cjson2_ok = cjson_decode(strict.data ? strict.data : "", strict.len);
  int theirs2 = lua_gettop(L);
  buf_reset(&why);
  lua_pushvalue(L, ours2);
  lua_pushvalue(L, theirs2);
  EXPECT(agree(strict.data ? strict.data : "", strict.len, ours2_ok,
               cjson2_ok, &why),
         "ours and lua-cjson differ even on the strict rewrite %.*s: %s",
         (int)strict.len, strict.data, why.data);
  if (ours_ok) {
    /* d: lua-cjson rejected a surrogate escape that ours read as U+FFFD. */
    EXPECT(!cjson_ok && strstr(lua_tostring(L, theirs),
                               "invalid unicode escape code"),
           "ours accepts what lua-cjson rejects: %s", lua_tostring(L, theirs));
    EXPECT(ours2_ok && same_exact(ours, ours2, 0),
           "ours reads the \\ufffd rewrite differently");
  } else {
    /* c: lua-cjson's leniency, which the rewrite must not change. */
    const char *e = json_error(&r);
    EXPECT(strcmp(e, "bad number") == 0 ||
               strcmp(e, "control character in string") == 0 ||
               (strcmp(e, "trailing characters after JSON value") == 0 &&
                s[json_error_offset(&r)] == '\0'),
           "lua-cjson accepts what ours rejects (%s at byte %zu)", e,
           json_error_offset(&r));
    EXPECT(cjson2_ok && same_exact(theirs, theirs2, 0),
           "lua-cjson reads the strict rewrite differently");
  }
  buf_free(&strict);
done:
  buf_free(&why);
  lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  input = data;
  input_size = size;
  const char *s = size ? (const char *)data : "";
  check_reader(s, size);
  check_round_trip(s, size);
  check_oracle(s, size);
  EXPECT(lua_gettop(L) == 0, "the stack grew to %d", lua_gettop(L));
  return 0;
}
