/* tghost.InputFile and multipart/form-data: files a script uploads.
 *
 * tghost.InputFile(path [, filename]) or InputFile{path=|data=, filename=,
 * content_type=} makes a file to send: a path on disk is streamed by curl
 * while it sends (a 50 MB upload is never in memory at once); data is a
 * Lua string kept by the userdata. Bot API parameters that hold files are
 * sent as multipart: files at the top level as parts of their own name,
 * nested ones (media groups, thumbnails) through attach://.
 *
 * Layer: a Lua binding; luaapi.c builds calls with it. */
#ifndef TGHOST_LUAFILE_H
#define TGHOST_LUAFILE_H

#include <stdbool.h>

#include <curl/curl.h>
#include <lua.h>

#include "base/buf.h"

int luaopen_tghost_file(lua_State *L);

/* Whether the value at idx is an InputFile or a table holding one. */
bool luafile_has_file(lua_State *L, int idx);
/* Fills mime from the params table at idx. Returns 0, or -1 with err set
 * (the stack is left as it was). */
int luafile_build_multipart(lua_State *L, int idx, curl_mime *mime,
                            struct buf *err);

#endif
