#include "script/luajson.h"

#include <lauxlib.h>
#include <string.h>

/* Whatever decodes encodes: the reader allows JSON_MAX_DEPTH levels. */
#define ENCODE_MAX_DEPTH JSON_MAX_DEPTH

static const char ARRAY_MT[] = "tghost.json.array";
static const char OBJECT_MT[] = "tghost.json.object";

static void push_marker_mt(lua_State *L, const char *name, const char *type) {
  if (luaL_newmetatable(L, name)) {
    lua_pushstring(L, type);
    lua_setfield(L, -2, "__jsontype");
  }
}

static void mark_table(lua_State *L, const char *name, const char *type) {
  push_marker_mt(L, name, type);
  /* The markers are tghost's and have no finalizer: one a script put in
   * would make Lua call it from inside the collector (luaguard.h). */
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_pushliteral(L, "__gc");
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  lua_pop(L, 1);
  lua_setmetatable(L, -2);
}

static bool decode_array(lua_State *L, struct json_reader *r,
                         struct buf *scratch);
static bool decode_object(lua_State *L, struct json_reader *r,
                          struct buf *scratch);

static void push_string(lua_State *L, const struct json_slice *s,
                        struct buf *scratch) {
  if (!s->has_escapes) {
    lua_pushlstring(L, s->ptr, s->len);
    return;
  }
  buf_reset(scratch);
  json_unescape(s, scratch);
  lua_pushlstring(L, scratch->data, scratch->len);
}

/* Values wait on the stack until this many have come, so that the table
 * is made once at its size; a larger one is made then and grows. */
#define PENDING_MAX 16

/* Makes the table for the n values (or key-value pairs, 2 slots each)
 * above base and moves them in, in order; leaves the table at base + 1
 * (moved there, not inserted: lua_insert would shift every slot). */
static void flush_pending(lua_State *L, int base, int n, bool array,
                          int size_hint) {
  if (array) lua_createtable(L, size_hint, 0);
  else lua_createtable(L, 0, size_hint);
  int t = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (array) {
      lua_pushvalue(L, base + 1 + i);
      lua_rawseti(L, t, i + 1);
    } else {
      /* In order: of a repeated name the last value wins, as rawset
       * one after the other would. */
      lua_pushvalue(L, base + 1 + 2 * i);
      lua_pushvalue(L, base + 2 + 2 * i);
      lua_rawset(L, t);
    }
  }
  if (t != base + 1) lua_replace(L, base + 1);
  lua_settop(L, base + 1);
}

static bool decode_array(lua_State *L, struct json_reader *r,
                         struct buf *scratch) {
  if (!json_array_begin(r)) return false;
  if (!lua_checkstack(L, 2 * PENDING_MAX + 4)) {
    r->error = "out of Lua stack";
    return false;
  }
  int base = lua_gettop(L);
  lua_Integer i = 0;
  bool made = false;
  while (json_array_next(r)) {
    if (!luajson_decode_value(L, r, scratch)) return false;
    i++;
    if (made) {
      lua_rawseti(L, base + 1, i);
    } else if (i == PENDING_MAX) {
      flush_pending(L, base, (int)i, true, 2 * PENDING_MAX);
      made = true;
    }
  }
  if (r->error) return false;
  if (!made) flush_pending(L, base, (int)i, true, (int)i);
  if (i == 0) mark_table(L, ARRAY_MT, "array");
  return true;
}

static bool decode_object(lua_State *L, struct json_reader *r,
                          struct buf *scratch) {
  if (!json_object_begin(r)) return false;
  if (!lua_checkstack(L, 2 * PENDING_MAX + 4)) {
    r->error = "out of Lua stack";
    return false;
  }
  int base = lua_gettop(L);
  struct json_slice key;
  int members = 0;
  bool made = false;
  while (json_object_next(r, &key)) {
    push_string(L, &key, scratch);
    if (!luajson_decode_value(L, r, scratch)) return false;
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1)) {
      lua_pop(L, 2);    /* null members are absent, as in Lua */
      continue;
    }
    members++;
    if (made) {
      lua_rawset(L, base + 1);
    } else if (members == PENDING_MAX) {
      flush_pending(L, base, members, false, 2 * PENDING_MAX);
      made = true;
    }
  }
  if (r->error) return false;
  if (!made) flush_pending(L, base, members, false, members);
  /* Empty, even if it had null members: still an object ({"a":null}
   * must not encode back as []). */
  if (members == 0) mark_table(L, OBJECT_MT, "object");
  return true;
}

/* The stack room a value needs is made by its container (for all the
 * members it holds at once) or, for the outermost value, by the caller
 * (luajson_decode_value's contract). */
bool luajson_decode_value(lua_State *L, struct json_reader *r,
                          struct buf *scratch) {
  switch (json_peek(r)) {
    case JSON_NULL:
      if (!json_read_null(r)) return false;
      lua_pushlightuserdata(L, NULL);
      return true;
    case JSON_TRUE:
    case JSON_FALSE: {
      bool b;
      if (!json_read_bool(r, &b)) return false;
      lua_pushboolean(L, b);
      return true;
    }
    case JSON_NUMBER: {
      struct json_number n;
      if (!json_read_number(r, &n)) return false;
      if (n.is_integer) lua_pushinteger(L, (lua_Integer)n.i);
      else lua_pushnumber(L, n.d);
      return true;
    }
    case JSON_STRING: {
      struct json_slice s;
      if (!json_read_string(r, &s)) return false;
      push_string(L, &s, scratch);
      return true;
    }
    case JSON_ARRAY:
      return decode_array(L, r, scratch);
    case JSON_OBJECT:
      return decode_object(L, r, scratch);
    default:
      return false;
  }
}

int luajson_decode(lua_State *L, const char *s, size_t len, struct buf *err) {
  struct json_reader r;
  struct buf scratch = BUF_INIT;
  int top = lua_gettop(L);
  json_reader_init(&r, s, len);
  if (!lua_checkstack(L, LUAJSON_STACK)) {
    if (err) buf_append_str(err, "out of Lua stack");
    return -1;
  }
  bool ok = luajson_decode_value(L, &r, &scratch) && json_finish(&r);
  buf_free(&scratch);
  if (ok) return 0;
  lua_settop(L, top);
  if (err)
    buf_printf(err, "invalid JSON at byte %zu: %s", json_error_offset(&r),
               json_error(&r) ? json_error(&r) : "unknown error");
  return -1;
}

/* --- encoding ---------------------------------------------------------- */

struct encoder {
  lua_State *L;
  struct buf *out;
  struct buf *err;
  struct buf path;   /* built while unwinding after an error */
};

static bool encode(struct encoder *e, int idx, int depth);

static void path_prepend(struct encoder *e, const char *seg) {
  struct buf p = BUF_INIT;
  buf_append_str(&p, seg);
  if (e->path.len) buf_append(&p, e->path.data, e->path.len);
  buf_free(&e->path);
  e->path = p;
}

static void path_prepend_key(struct encoder *e, int keyidx) {
  lua_State *L = e->L;
  char seg[64];
  if (lua_type(L, keyidx) == LUA_TNUMBER) {
    snprintf(seg, sizeof seg, "[%lld]", (long long)lua_tointeger(L, keyidx));
    path_prepend(e, seg);
  } else {
    struct buf s = BUF_INIT;
    buf_printf(&s, ".%s", lua_tostring(L, keyidx));
    path_prepend(e, s.data);
    buf_free(&s);
  }
}

static bool encode_error(struct encoder *e, const char *fmt, const char *arg) {
  buf_printf(e->err, fmt, arg);
  return false;
}

static const char *jsontype_of(lua_State *L, int idx) {
  const char *type = NULL;
  if (lua_getmetatable(L, idx)) {
    if (lua_getfield(L, -1, "__jsontype") == LUA_TSTRING)
      type = lua_tostring(L, -1);   /* interned; safe after pop */
    lua_pop(L, 2);
  }
  return type;
}

static bool encode_table(struct encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  if (depth > ENCODE_MAX_DEPTH)
    return encode_error(e, "%s", "table nested too deeply (a cycle?)");
  if (!lua_checkstack(L, 6)) return encode_error(e, "%s", "out of Lua stack");

  /* One pass to classify: a sequence 1..n is an array. */
  lua_Integer count = 0, max = 0;
  bool array = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (array && lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k > max) max = k;
    } else {
      array = false;
    }
  }
  const char *forced = jsontype_of(L, idx);
  if (count == 0) {
    buf_append_str(e->out, forced && strcmp(forced, "object") == 0 ? "{}" : "[]");
    return true;
  }
  if (array && max == count && !(forced && strcmp(forced, "object") == 0)) {
    buf_append_char(e->out, '[');
    for (lua_Integer i = 1; i <= count; i++) {
      if (i > 1) buf_append_char(e->out, ',');
      lua_rawgeti(L, idx, i);
      bool ok = encode(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (!ok) {
        char seg[32];
        snprintf(seg, sizeof seg, "[%lld]", (long long)i);
        path_prepend(e, seg);
        return false;
      }
    }
    buf_append_char(e->out, ']');
    return true;
  }
  buf_append_char(e->out, '{');
  bool first = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int key = lua_gettop(L) - 1;
    int kt = lua_type(L, key);
    if (kt == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, key, &len);
      if (!first) buf_append_char(e->out, ',');
      json_write_string(e->out, s, len);
    } else if (kt == LUA_TNUMBER && lua_isinteger(L, key)) {
      if (!first) buf_append_char(e->out, ',');
      buf_printf(e->out, "\"%lld\"", (long long)lua_tointeger(L, key));
    } else {
      lua_pop(L, 2);
      return encode_error(e, "table key of type %s cannot be encoded",
                          lua_typename(L, kt));
    }
    first = false;
    buf_append_char(e->out, ':');
    if (!encode(e, lua_gettop(L), depth + 1)) {
      path_prepend_key(e, key);
      lua_pop(L, 2);
      return false;
    }
    lua_pop(L, 1);
  }
  buf_append_char(e->out, '}');
  return true;
}

static bool encode(struct encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      buf_append_str(e->out, "null");
      return true;
    case LUA_TBOOLEAN:
      buf_append_str(e->out, lua_toboolean(L, idx) ? "true" : "false");
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        buf_printf(e->out, "%lld", (long long)lua_tointeger(L, idx));
        return true;
      }
      if (!json_write_double(e->out, lua_tonumber(L, idx)))
        return encode_error(e, "%s", "NaN or infinity cannot be encoded");
      return true;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      json_write_string(e->out, s, len);
      return true;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        buf_append_str(e->out, "null");
        return true;
      }
      break;
    case LUA_TTABLE:
      return encode_table(e, idx, depth);
    default:
      break;
  }
  return encode_error(e, "a %s cannot be encoded as JSON",
                      luaL_typename(L, idx));
}

int luajson_encode(lua_State *L, int idx, struct buf *out, struct buf *err) {
  struct encoder e = {L, out, err, BUF_INIT};
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L);
  bool ok = encode(&e, idx, 0);
  lua_settop(L, top);
  if (!ok && e.path.len) {
    struct buf msg = BUF_INIT;
    buf_printf(&msg, " (at %s)", e.path.data[0] == '.' ? e.path.data + 1 : e.path.data);
    buf_append(err, msg.data, msg.len);
    buf_free(&msg);
  }
  buf_free(&e.path);
  return ok ? 0 : -1;
}

/* --- the tghost.json module -------------------------------------------- */

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  struct buf out = BUF_INIT, err = BUF_INIT;
  if (luajson_encode(L, 1, &out, &err) != 0) {
    lua_pushfstring(L, "json.encode: %s", err.data);
    buf_free(&out);
    buf_free(&err);
    return lua_error(L);
  }
  lua_pushlstring(L, out.data, out.len);
  buf_free(&out);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  struct buf err = BUF_INIT;
  if (luajson_decode(L, s, len, &err) != 0) {
    lua_pushnil(L);
    lua_pushlstring(L, err.data, err.len);
    buf_free(&err);
    return 2;
  }
  return 1;
}

static int mark(lua_State *L, const char *name, const char *type) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  else luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  mark_table(L, name, type);
  return 1;
}

static int l_array(lua_State *L) { return mark(L, ARRAY_MT, "array"); }
static int l_object(lua_State *L) { return mark(L, OBJECT_MT, "object"); }

int luaopen_tghost_json(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"encode", l_encode}, {"decode", l_decode},
      {"array", l_array},   {"object", l_object},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  return 1;
}
