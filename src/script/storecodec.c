#include "script/storecodec.h"

#include <ctype.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "script/luajson.h"

#define MAX_DEPTH 100
#define KEY_SHOWN_MAX 40

/* One encoding: the output, the path from the root to the part being
 * encoded (for messages), and the tables on that path (a table seen again
 * while it is being encoded is a cycle). */
struct encoder {
  lua_State *L;
  struct buf *out;
  struct buf *err;
  struct buf path;
  int ancestors;   /* stack index: table -> path length when entered */
};

static bool fail(struct encoder *e, const char *fmt, const char *arg) {
  buf_printf(e->err, "%s ", e->path.data);
  buf_printf(e->err, fmt, arg);
  return false;
}

static bool is_identifier(const char *s, size_t len) {
  if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (size_t i = 1; i < len; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
  return true;
}

/* Appends .name, ["any key"] or [n] to the path. */
static void path_push_string(struct buf *path, const char *s, size_t len) {
  if (is_identifier(s, len) && len <= KEY_SHOWN_MAX) {
    buf_append_char(path, '.');
    buf_append(path, s, len);
    return;
  }
  buf_append_str(path, "[\"");
  size_t shown = len > KEY_SHOWN_MAX ? KEY_SHOWN_MAX : len;
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') buf_printf(path, "\\%c", c);
    else if (c < 0x20 || c == 0x7f) buf_printf(path, "\\%d", c);
    else buf_append_char(path, (char)c);
  }
  if (shown < len) buf_append_str(path, "...");
  buf_append_str(path, "\"]");
}

static void path_truncate(struct buf *path, size_t len) {
  path->len = len;
  path->data[len] = '\0';
}

static bool encode_value(struct encoder *e, int idx, int depth, bool in_map);

/* The key that marks a map with integer keys (a NUL cannot start a key a
 * script writes by accident). */
#define INT_MAP_MARK "\0int"

struct map_key {
  const char *s;
  size_t len;
};

static int compare_keys(const void *a, const void *b) {
  const struct map_key *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, n);
  if (c != 0) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* Describes a key that is neither a string nor a list index. */
static bool fail_key(struct encoder *e, int key) {
  lua_State *L = e->L;
  char what[96];
  switch (lua_type(L, key)) {
    case LUA_TNUMBER:
      snprintf(what, sizeof what, "a float key (%.14g)", lua_tonumber(L, key));
      break;
    case LUA_TBOOLEAN:
      snprintf(what, sizeof what, "a boolean key (%s)",
               lua_toboolean(L, key) ? "true" : "false");
      break;
    default:
      snprintf(what, sizeof what, "a %s key", luaL_typename(L, key));
      break;
  }
  return fail(e, "has %s: keys must be strings, or 1..n for a list", what);
}

/* Sorted keys make the bytes canonical: the same data always gives the
 * same bytes, whatever order the table was built in (sessions compare
 * bytes to see whether anything changed). */
static bool encode_map(struct encoder *e, int idx, int depth, size_t count) {
  lua_State *L = e->L;
  struct map_key *keys = xmalloc(count * sizeof *keys);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    keys[n].s = lua_tolstring(L, -1, &keys[n].len);   /* a string key */
    n++;
  }
  qsort(keys, n, sizeof *keys, compare_keys);
  buf_append_char(e->out, '{');
  size_t path_len = e->path.len;
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    if (i > 0) buf_append_char(e->out, ',');
    json_write_string(e->out, keys[i].s, keys[i].len);
    buf_append_char(e->out, ':');
    lua_pushlstring(L, keys[i].s, keys[i].len);
    lua_rawget(L, idx);
    path_push_string(&e->path, keys[i].s, keys[i].len);
    ok = encode_value(e, lua_gettop(L), depth + 1, true);
    lua_pop(L, 1);
    if (ok) path_truncate(&e->path, path_len);
  }
  free(keys);
  if (ok) buf_append_char(e->out, '}');
  return ok;
}

static int compare_ints(const void *a, const void *b) {
  lua_Integer x = *(const lua_Integer *)a, y = *(const lua_Integer *)b;
  return x < y ? -1 : x > y;
}

/* A table keyed by integers that are not a list 1..n (votes[user_id]): a
 * JSON object with the keys in decimal, in numeric order, marked with the
 * key INT_MAP_MARK so that decoding gives integer keys back. */
static bool encode_int_map(struct encoder *e, int idx, int depth,
                           size_t count) {
  lua_State *L = e->L;
  lua_Integer *keys = xmalloc(count * sizeof *keys);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    keys[n++] = lua_tointeger(L, -1);
  }
  qsort(keys, n, sizeof *keys, compare_ints);
  buf_append_char(e->out, '{');
  json_write_string(e->out, INT_MAP_MARK, sizeof INT_MAP_MARK - 1);
  buf_append_str(e->out, ":true");
  size_t path_len = e->path.len;
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    buf_printf(e->out, ",\"%lld\":", (long long)keys[i]);
    lua_rawgeti(L, idx, keys[i]);
    buf_printf(&e->path, "[%lld]", (long long)keys[i]);
    ok = encode_value(e, lua_gettop(L), depth + 1, true);
    lua_pop(L, 1);
    if (ok) path_truncate(&e->path, path_len);
  }
  free(keys);
  if (ok) buf_append_char(e->out, '}');
  return ok;
}

static bool encode_table(struct encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  if (depth >= MAX_DEPTH)
    return fail(e, "is nested more than %s levels deep", "100");
  if (!lua_checkstack(L, 8)) return fail(e, "is %s", "too deep for the Lua stack");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->ancestors) != LUA_TNIL) {
    size_t at = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    buf_printf(e->err, "%s refers back to ", e->path.data);
    buf_append(e->err, e->path.data, at);
    buf_append_str(e->err, " (a cycle)");
    return false;
  }
  lua_pop(L, 1);

  /* Classify: a list (keys exactly 1..n) or a map (string keys only). */
  size_t count = 0, strings = 0, integers = 0;
  lua_Integer outside = 0;   /* an integer key that is not in 1..count */
  bool have_outside = false;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (lua_type(L, -1) == LUA_TSTRING) {
      strings++;
    } else if (lua_isinteger(L, -1)) {
      integers++;
    } else {
      bool r = fail_key(e, lua_gettop(L));
      lua_pop(L, 1);
      return r;
    }
  }
  if (strings && integers)
    return fail(e, "mixes string keys and integer keys: a stored table "
                   "keeps one kind (a list 1..n, integer keys, or string "
                   "keys)%s", "");
  if (integers) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      lua_Integer k = lua_tointeger(L, -1);
      if (!have_outside && (k < 1 || (lua_Unsigned)k > count)) {
        outside = k;
        have_outside = true;
      }
    }
  }
  (void)outside;

  lua_pushvalue(L, idx);
  lua_pushinteger(L, (lua_Integer)e->path.len);
  lua_rawset(L, e->ancestors);
  bool ok;
  if (count == 0) {
    /* An empty table reads back as an empty table either way; keep a
     * tghost.json.object() marked one an object. */
    const char *shape = "[]";
    int type = luaL_getmetafield(L, idx, "__jsontype");
    if (type != LUA_TNIL) {
      if (type == LUA_TSTRING && strcmp(lua_tostring(L, -1), "object") == 0)
        shape = "{}";
      lua_pop(L, 1);
    }
    buf_append_str(e->out, shape);
    ok = true;
  } else if (integers && have_outside) {
    ok = encode_int_map(e, idx, depth, count);
  } else if (integers) {
    buf_append_char(e->out, '[');
    size_t path_len = e->path.len;
    ok = true;
    for (size_t i = 1; i <= count && ok; i++) {
      if (i > 1) buf_append_char(e->out, ',');
      lua_rawgeti(L, idx, (lua_Integer)i);
      buf_printf(&e->path, "[%zu]", i);
      ok = encode_value(e, lua_gettop(L), depth + 1, false);
      lua_pop(L, 1);
      if (ok) path_truncate(&e->path, path_len);
    }
    if (ok) buf_append_char(e->out, ']');
  } else {
    ok = encode_map(e, idx, depth, count);
  }
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->ancestors);
  return ok;
}

static bool encode_value(struct encoder *e, int idx, int depth, bool in_map) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      buf_append_str(e->out, lua_toboolean(L, idx) ? "true" : "false");
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        buf_printf(e->out, "%lld", (long long)lua_tointeger(L, idx));
        return true;
      }
      if (isnan(lua_tonumber(L, idx))) return fail(e, "is %s", "NaN");
      if (!json_write_double(e->out, lua_tonumber(L, idx)))
        return fail(e, "is %s", "infinite");
      return true;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      json_write_string(e->out, s, len);
      return true;
    }
    case LUA_TTABLE:
      return encode_table(e, idx, depth);
    case LUA_TNIL:
      return fail(e, "is %s", "nil");
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        if (in_map)
          return fail(e, "is %s", "tghost.json.null, which a map cannot keep "
                                  "(it reads back as absent)");
        buf_append_str(e->out, "null");
        return true;
      }
      return fail(e, "is %s", "a light userdata");
    case LUA_TFUNCTION:
      return fail(e, "is %s", "a function");
    case LUA_TTHREAD:
      return fail(e, "is %s", "a coroutine");
    default: {
      const char *name = NULL;
      if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
        name = lua_tostring(L, -1);
      char what[96];
      snprintf(what, sizeof what, "a userdata%s%s%s", name ? " (" : "",
               name ? name : "", name ? ")" : "");
      if (name) lua_pop(L, 1);
      return fail(e, "is %s", what);
    }
  }
}

int storecodec_encode(lua_State *L, int idx, struct buf *out, struct buf *err) {
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L);
  struct encoder e = {L, out, err, BUF_INIT, 0};
  luaL_checkstack(L, 8, "storage value");
  lua_newtable(L);
  e.ancestors = lua_gettop(L);
  buf_append_str(&e.path, "value");
  size_t out_len = out->len;
  bool ok = encode_value(&e, idx, 0, false);
  lua_settop(L, top);
  buf_free(&e.path);
  if (!ok && out->data) path_truncate(out, out_len);
  return ok ? 0 : -1;
}

/* Gives the tables encode_int_map wrote their integer keys back: the table
 * at idx (replaced in its stack slot if it was one) and those inside it. */
static void restore_int_maps(lua_State *L, int idx, int depth) {
  if (depth > MAX_DEPTH || !lua_checkstack(L, 8)) return;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      const void *before = lua_topointer(L, -1);
      restore_int_maps(L, -1, depth + 1);
      if (lua_topointer(L, -1) != before) {   /* replaced: store it */
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, idx);
      }
    }
    lua_pop(L, 1);
  }
  lua_pushlstring(L, INT_MAP_MARK, sizeof INT_MAP_MARK - 1);
  int marked = lua_rawget(L, idx) != LUA_TNIL;
  lua_pop(L, 1);
  if (!marked) return;
  lua_newtable(L);
  int out = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* key, value: decimal keys become integers; the mark goes. */
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t n = lua_stringtonumber(L, lua_tostring(L, -2));
      if (n && lua_isinteger(L, -1)) {
        lua_Integer k = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, out, k);
      } else if (n) {
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_replace(L, idx);
}

int storecodec_decode(lua_State *L, const char *s, size_t len, struct buf *err) {
  if (luajson_decode(L, s, len, err) != 0) return -1;
  if (lua_type(L, -1) == LUA_TTABLE) restore_int_maps(L, -1, 0);
  return 0;
}
