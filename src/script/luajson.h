/* JSON <-> Lua values with exact integers.
 *
 * Numbers without a fraction or exponent that fit in 64 bits decode as Lua
 * integers (Telegram ids stay ids: tostring(chat.id) has no ".0"), others as
 * floats. Integers encode exactly, floats with the shortest text that reads
 * back the same. Empty JSON arrays and objects decode to tables marked with
 * a metatable (__jsontype = "array"/"object") so they encode back the same
 * way; an unmarked empty table encodes as []. JSON null is omitted from
 * objects and decodes to tghost.json.null inside arrays. */
#ifndef TGHOST_LUAJSON_H
#define TGHOST_LUAJSON_H

#include <lua.h>

#include "base/buf.h"
#include "base/json.h"

/* Decodes the whole of s and pushes the value. On error pushes nothing,
 * writes a message to err and returns -1. */
int luajson_decode(lua_State *L, const char *s, size_t len, struct buf *err);

/* Stack slots luajson_decode_value needs free when it is called. */
#define LUAJSON_STACK 4

/* Decodes the next value of r and pushes it; false on error (see
 * json_error(r)). scratch is a reusable buffer for unescaping. The
 * caller makes room for LUAJSON_STACK slots first (lua_checkstack); a
 * nested value's room is made by its container. */
bool luajson_decode_value(lua_State *L, struct json_reader *r,
                          struct buf *scratch);

/* Appends the JSON text of the value at idx to out. On error returns -1 and
 * writes a message naming the offending path to err. */
int luajson_encode(lua_State *L, int idx, struct buf *out, struct buf *err);

/* The tghost.json module: encode, decode, null, array, object. */
int luaopen_tghost_json(lua_State *L);

#endif
