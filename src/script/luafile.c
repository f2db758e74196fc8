#include "script/luafile.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "script/luabind.h"
#include "script/luaguard.h"
#include "script/luajson.h"

#define INPUT_FILE_MT "tghost.InputFile"
/* How deep parameters are searched for files. */
#define SCAN_MAX_DEPTH 16

/* --- InputFile ----------------------------------------------------------- */

/* A file to upload: a path on disk (streamed when sent) or bytes in
 * memory (the Lua string, kept as the userdata's user value). */
struct input_file {
  char *path;
  char *filename;
  char *content_type;
};

static int input_file_gc(lua_State *L) {
  struct input_file *f = luaL_checkudata(L, 1, INPUT_FILE_MT);
  free(f->path);
  free(f->filename);
  free(f->content_type);
  f->path = f->filename = f->content_type = NULL;
  return 0;
}

static int input_file_index(lua_State *L) {
  struct input_file *f = luaL_checkudata(L, 1, INPUT_FILE_MT);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "path") == 0) lua_pushstring(L, f->path);
  else if (strcmp(key, "filename") == 0) lua_pushstring(L, f->filename);
  else if (strcmp(key, "content_type") == 0) lua_pushstring(L, f->content_type);
  else if (strcmp(key, "data") == 0) lua_getiuservalue(L, 1, 1);
  else lua_pushnil(L);
  return 1;
}

static int input_file_tostring(lua_State *L) {
  struct input_file *f = luaL_checkudata(L, 1, INPUT_FILE_MT);
  if (f->path) lua_pushfstring(L, "InputFile(%s)", f->path);
  else lua_pushfstring(L, "InputFile(%s, in memory)",
                       f->filename ? f->filename : "file");
  return 1;
}

/* Copies the string field name of the table at t into *out (NULL when
 * absent); raises on another type. *out belongs to a userdata already, so
 * nothing leaks when this raises. */
static void opt_field(lua_State *L, int t, const char *name, char **out) {
  int type = lua_getfield(L, t, name);
  if (type != LUA_TNIL) {
    if (type != LUA_TSTRING)
      luaL_error(L, "tghost.InputFile: %s must be a string", name);
    *out = xstrdup(lua_tostring(L, -1));
  }
  lua_pop(L, 1);
}

/* InputFile(path [, filename]) or InputFile{path=|data=, filename=,
 * content_type=}. The userdata comes first (as lauxlib's buffers do): its
 * __gc frees whatever was copied into it if a check below raises. */
static int l_input_file(lua_State *L) {
  int arg = lua_type(L, 1);
  if (arg != LUA_TSTRING && arg != LUA_TTABLE)
    return luaL_argerror(L, 1, "expected a path or a table {data=, filename=}");
  lua_settop(L, 2);
  struct input_file *f = lua_newuserdatauv(L, sizeof *f, 1);
  memset(f, 0, sizeof *f);
  luaL_setmetatable(L, INPUT_FILE_MT);
  int self = lua_gettop(L);
  bool has_data = false;
  if (arg == LUA_TSTRING) {
    f->path = xstrdup(lua_tostring(L, 1));
    if (!lua_isnoneornil(L, 2)) f->filename = xstrdup(luaL_checkstring(L, 2));
  } else {
    static const char *const known[] = {"path", "data", "filename",
                                        "content_type", NULL};
    luabind_check_keys(L, 1, "tghost.InputFile", "", known);
    int dt = lua_getfield(L, 1, "data");
    if (dt != LUA_TNIL && dt != LUA_TSTRING)
      return luaL_error(L, "tghost.InputFile: data must be a string");
    has_data = dt == LUA_TSTRING;
    if (has_data) lua_setiuservalue(L, self, 1);
    else lua_pop(L, 1);
    opt_field(L, 1, "path", &f->path);
    opt_field(L, 1, "filename", &f->filename);
    opt_field(L, 1, "content_type", &f->content_type);
    if (has_data == (f->path != NULL))
      return luaL_error(L, "tghost.InputFile: give either path or data");
  }
  if (f->path && !*f->path) return luaL_argerror(L, 1, "the path is empty");
  lua_settop(L, self);
  return 1;
}

static int l_is_input_file(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, INPUT_FILE_MT) != NULL);
  return 1;
}

/* --- multipart/form-data ------------------------------------------------- */

struct multipart {
  lua_State *L;
  curl_mime *mime;
  int nattach;
  struct buf *err;
};

static bool has_file_at(lua_State *L, int idx, int depth) {
  if (luaL_testudata(L, idx, INPUT_FILE_MT)) return true;
  if (!lua_istable(L, idx) || depth >= SCAN_MAX_DEPTH) return false;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (has_file_at(L, -1, depth + 1)) {
      lua_pop(L, 2);
      return true;
    }
    lua_pop(L, 1);
  }
  return false;
}

/* Adds the InputFile at idx as a part called name. */
static int add_file_part(struct multipart *m, int idx, const char *name) {
  lua_State *L = m->L;
  struct input_file *f = luaL_testudata(L, idx, INPUT_FILE_MT);
  curl_mimepart *part = curl_mime_addpart(m->mime);
  if (!part) {
    buf_append_str(m->err, "out of memory");
    return -1;
  }
  curl_mime_name(part, name);
  if (f->path) {
    struct stat st;
    if (stat(f->path, &st) != 0 || access(f->path, R_OK) != 0) {
      buf_printf(m->err, "cannot read %s: %s", f->path, strerror(errno));
      return -1;
    }
    if (!S_ISREG(st.st_mode)) {
      buf_printf(m->err, "cannot upload %s: not a regular file", f->path);
      return -1;
    }
    /* curl reads the file while it sends, a buffer at a time. */
    CURLcode rc = curl_mime_filedata(part, f->path);
    if (rc != CURLE_OK) {
      buf_printf(m->err, "cannot read %s: %s", f->path, curl_easy_strerror(rc));
      return -1;
    }
    if (f->filename) curl_mime_filename(part, f->filename);
  } else {
    lua_getiuservalue(L, idx, 1);
    size_t len;
    const char *data = lua_tolstring(L, -1, &len);
    curl_mime_data(part, data ? data : "", data ? len : 0);   /* copies */
    lua_pop(L, 1);
    curl_mime_filename(part, f->filename ? f->filename : "file");
  }
  if (f->content_type) curl_mime_type(part, f->content_type);
  return 0;
}

/* Pushes the value at idx with every InputFile inside replaced by
 * "attach://name" (its part added): tables that hold files are copied,
 * keeping their JSON shape marks; the caller's tables are not changed. */
static int push_replaced(struct multipart *m, int idx, int depth) {
  lua_State *L = m->L;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 6, "multipart parameters");
  if (luaL_testudata(L, idx, INPUT_FILE_MT)) {
    char name[48];
    snprintf(name, sizeof name, "tghost_file_%d", m->nattach++);
    if (add_file_part(m, idx, name) != 0) return -1;
    lua_pushfstring(L, "attach://%s", name);
    return 0;
  }
  if (!lua_istable(L, idx) || !has_file_at(L, idx, depth)) {
    lua_pushvalue(L, idx);
    return 0;
  }
  lua_newtable(L);
  if (lua_getmetatable(L, idx)) luaguard_setmetatable(L, -2);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    if (push_replaced(m, -2, depth + 1) != 0) {
      lua_pop(L, 4);
      return -1;
    }
    lua_rawset(L, -5);
    lua_pop(L, 1);
  }
  return 0;
}

static int add_text_part(struct multipart *m, const char *name,
                         const char *data, size_t len) {
  curl_mimepart *part = curl_mime_addpart(m->mime);
  if (!part) {
    buf_append_str(m->err, "out of memory");
    return -1;
  }
  curl_mime_name(part, name);
  curl_mime_data(part, data, len);
  return 0;
}

/* Fills mime from the params table at idx: scalars as text fields, tables
 * as JSON, files at the top level as parts of their own name (thumbnails
 * through attach://, as the Bot API wants), nested files as attach://. */
int luafile_build_multipart(lua_State *L, int idx, curl_mime *mime,
                            struct buf *err) {
  struct multipart m = {L, mime, 0, err};
  int top = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      buf_append_str(err, "parameter names must be strings");
      lua_settop(L, top);
      return -1;
    }
    const char *key = lua_tostring(L, -2);
    int rc = 0;
    bool attach = strcmp(key, "thumbnail") == 0 || strcmp(key, "thumb") == 0;
    if (luaL_testudata(L, -1, INPUT_FILE_MT) && !attach) {
      rc = add_file_part(&m, -1, key);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      rc = add_text_part(&m, key, s, len);
    } else {
      if (push_replaced(&m, -1, 0) != 0) {
        lua_settop(L, top);
        return -1;
      }
      struct buf json = BUF_INIT, jerr = BUF_INIT;
      if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        buf_append(&json, s, len);
      } else if (luajson_encode(L, -1, &json, &jerr) != 0) {
        buf_printf(err, "%s: %s", key, jerr.data);
        rc = -1;
      }
      lua_pop(L, 1);
      if (rc == 0) rc = add_text_part(&m, key, json.data ? json.data : "",
                                      json.len);
      buf_free(&json);
      buf_free(&jerr);
    }
    if (rc != 0) {
      lua_settop(L, top);
      return -1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

bool luafile_has_file(lua_State *L, int idx) {
  return has_file_at(L, idx, 0);
}

int luaopen_tghost_file(lua_State *L) {
  if (luaL_newmetatable(L, INPUT_FILE_MT)) {
    lua_pushcfunction(L, input_file_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, input_file_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, input_file_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "tghost.InputFile");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"InputFile", l_input_file},
      {"is_input_file", l_is_input_file},
      {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
