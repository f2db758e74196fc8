/* Storage values: plain Lua data to bytes and back, for every storage
 * (memory, SQLite, Redis) and for sessions' change detection.
 *
 * Layer: Lua state, beside src/luajson.h, which it uses (the bindings in
 * src/luastorage.c use it).
 *
 * The bytes are tghost's JSON (src/luajson.h): integers stay exact 64-bit
 * integers, floats stay floats, strings are kept byte for byte. Only what
 * reads back equal is accepted: nil (inside a list: no), booleans, finite
 * numbers, strings, tghost.json.null, and tables that are lists (keys
 * exactly 1..n), maps with string keys, or maps with integer keys
 * (votes[user_id] = true: a JSON object with decimal keys and the key
 * "\u0000int" marking it, so they read back as integers). Anything else is
 * refused before a byte is written, with the path to the offending part:
 * "value.items[3].cb is a function", "value.t mixes string keys and
 * integer keys", "value.a.b refers back to value.a (a cycle)".
 * Metatables are not stored (a table reads back as plain data). */
#ifndef TGHOST_STORECODEC_H
#define TGHOST_STORECODEC_H

#include <lua.h>

#include "base/buf.h"

/* Appends the bytes of the value at idx to out and returns 0; or returns
 * -1 with a message ("value... is ...") in err and out unchanged. */
int storecodec_encode(lua_State *L, int idx, struct buf *out, struct buf *err);

/* Pushes the value the bytes hold and returns 0; or pushes nothing,
 * writes why to err and returns -1 (bytes not written by this codec). */
int storecodec_decode(lua_State *L, const char *s, size_t len, struct buf *err);

#endif
