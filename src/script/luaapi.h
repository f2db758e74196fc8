/* The tghost.api module: Bot API calls from Lua (JSON, or multipart when a
 * parameter holds a tghost.InputFile: see luafile.h), their configuration
 * (auto-retry on 429, the throttle: see apicall.h) and file downloads.
 *
 * A call suspends the calling task until the answer is in and returns the
 * decoded result, or raises an ApiError {method, error_code, kind,
 * description, parameters}. A download streams to DEST.part and renames it
 * to DEST when complete; it returns DEST, size or nil, message. */
#ifndef TGHOST_LUAAPI_H
#define TGHOST_LUAAPI_H

#include <lua.h>

int luaopen_tghost_api(lua_State *L);

#endif
