/* The tghost.storagecore module under tghost.storage and sessions
 * (lua/storage.lua, lua/session.lua): handles on the host's stores
 * (src/store/storages.h) through the backend interface
 * (src/store/kvstore.h), and the value codec (src/script/storecodec.h).
 * Nothing here knows which backends exist: they are the registry's.
 *
 * Layer: Lua bindings.
 *
 *   backends() -> { {kind=, target_arg=, target_what=, ns_arg=,
 *                    ns_default=}, ... }   in registration order
 *   open(kind, target, ns) -> handle, label   (ns nil: the default)
 *   get(handle, key) -> bytes or nil       (also handle:get(key), and so
 *                                          on: a handle is a backend
 *                                          object, see lua/storage.lua)
 *   set(handle, key, bytes, ttl_ms)        ttl_ms 0: no expiry
 *   delete(handle, key)
 *   list(handle, prefix, limit, cursor) -> { key, ... }, next cursor or nil
 *   cas(handle, key, expected, new, ttl_ms) -> true | false, current
 *                                      (nil for expected/new/current:
 *                                      absent)
 *   encode(value) -> bytes, or nil, "value.x is a function"
 *   decode(bytes) -> value
 *
 * A backend with run_now (memory) answers within the call, anywhere.
 * Every other call suspends the calling task (task_wait) until the store
 * answers and raises the store's error ("redis storage redis://...:
 * connection lost"); a task cancelled meanwhile detaches its request,
 * which the store frees when it completes. Under --check, backends that
 * would open something outside the process (files, connections) open
 * nothing: their targets are checked and their calls raise. Misuse
 * raises. */
#ifndef TGHOST_LUASTORAGE_H
#define TGHOST_LUASTORAGE_H

#include <lua.h>

int luaopen_tghost_storagecore(lua_State *L);

#endif
