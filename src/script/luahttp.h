/* The tghost.httpcore module under tghost.http (lua/http.lua): HTTP
 * requests from Lua on the host's loop and connection pool.
 *
 * request{method, url, headers, body, query, timeout, max_body} suspends
 * the calling task and returns {status, headers, body} (headers keyed by
 * lowercase name), or nil, message for a transport failure, a timeout or a
 * body over max_body; misuse raises. Any HTTP status is a response, not an
 * error. TLS peers are verified; messages pass the token redactor. */
#ifndef TGHOST_LUAHTTP_H
#define TGHOST_LUAHTTP_H

#include <lua.h>

int luaopen_tghost_httpcore(lua_State *L);

#endif
