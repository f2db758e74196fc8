/* The tghost.storagecore module under tghost.storage and sessions
 * (lua/storage.lua, lua/session.lua): handles on the host's stores
 * (src/storages.h) and the value codec (src/storecodec.h).
 *
 * Layer: Lua bindings.
 *
 *   memory(name), sqlite(path, table), redis(url, prefix) -> handle[, name]
 *   get(handle, key) -> bytes or nil
 *   set(handle, key, bytes, ttl_ms)        ttl_ms 0: no expiry
 *   delete(handle, key)
 *   encode(value) -> bytes, or nil, "value.x is a function"
 *   decode(bytes) -> value
 *
 * Memory calls are immediate and work anywhere. SQLite and Redis calls
 * suspend the calling task (task_wait) until the store answers and raise
 * the store's error ("redis storage redis://...: connection lost"); a
 * task cancelled meanwhile detaches its request, which the store frees
 * when it completes. Under --check the SQLite and Redis constructors open
 * nothing and their calls raise. Misuse raises. */
#ifndef TGHOST_LUASTORAGE_H
#define TGHOST_LUASTORAGE_H

#include <lua.h>

int luaopen_tghost_storagecore(lua_State *L);

#endif
