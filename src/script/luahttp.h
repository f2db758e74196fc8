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

#include <stdbool.h>

#include <lua.h>

#include "net/http.h"

int luaopen_tghost_httpcore(lua_State *L);

/* For the other HTTP bindings (luastream.c): reads url, method, headers,
 * query and body from the options table at index 1 and returns the request
 * they describe (on client), not started; raises on misuse, naming
 * `what`. Options in extra (NULL-terminated, or NULL) are allowed too and
 * left to the caller. With stream_body, a body that is a function or a
 * userdata is accepted and left to the caller as well. */
struct http_request *luahttp_new_request(lua_State *L,
                                         struct http_client *client,
                                         const char *what,
                                         const char *const *extra,
                                         bool stream_body);
/* Pushes {lowercase-name = value} from raw header lines. */
void luahttp_push_headers(lua_State *L, const struct buf *raw);

#endif
