/* The tghost.httpstream module under tghost.http (lua/http.lua): HTTP
 * requests whose bodies stream, both ways, on the host's loop.
 *
 * open(opts, mode) starts a request (opts as tghost.http.request's, plus
 * first_byte_timeout, idle_timeout, max_event; body may also be a function
 * or an InputFile, which lua/http.lua feeds) and returns a stream handle
 * at once; mode "sse" parses the body as server-sent events (base/sse.h).
 * The handle's await(what) returns at once when it can, and otherwise
 * suspends the calling task until something changes and returns "again"
 * (the Lua side loops):
 *   await("head")  -> "head", status, headers | "body" | "error", message
 *   await("data")  -> "data", chunk | "end" | "body" | "error", message
 *   await("event") -> "event", {event, data, id, retry} | "end" | "body" |
 *                     "error", message
 * "body": the upload wants its next piece (write(piece), write(nil) at the
 * end). A reader that does not call await leaves the data in the window
 * (64 KiB) and the transfer paused: backpressure, not buffering.
 *
 * close() ends the transfer at once (the connection is closed); so does
 * the end of the job that opened it (the handler returned, failed or was
 * cancelled: a job cleanup handler), and garbage collection. Messages pass
 * the token redactor. */
#ifndef TGHOST_LUASTREAM_H
#define TGHOST_LUASTREAM_H

#include <lua.h>

int luaopen_tghost_httpstream(lua_State *L);

#endif
