/* load, loadfile, dofile and require's searchers: see luaload.h.
 *
 * Arguments, results and messages follow Lua 5.4.4's base and package
 * libraries as the manual and their behaviour define them;
 * tests/unit/luaload.c compares the two. */
#include "script/luaload.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* What the parser gets at a time: between two pieces, the guard is asked.
 * Lua parses some 20 MB a second, so a piece is a few milliseconds. */
#define PIECE ((size_t)64 * 1024)

/* The first byte of a precompiled chunk (LUA_SIGNATURE). */
#define BINARY_MARK '\x1b'

enum source { FROM_STRING, FROM_FUNCTION, FROM_FILE };

/* One chunk on its way to the parser. */
struct feed {
  lua_State *L;
  const struct luastring_guard *guard;
  enum source from;
  size_t fed, total;            /* total 0: not known in advance */
  bool started;                 /* the first byte was seen */
  /* FROM_STRING, and the string the reader function last returned: */
  const char *s;
  size_t len, at;
  int reader;                   /* FROM_FUNCTION: its stack index */
  int slot;                     /* keeps the function's string alive */
  bool done;
  /* FROM_FILE: */
  FILE *f;
  char prefix[2];               /* a newline for a skipped '#' line, and */
  size_t nprefix;               /* the first byte, read ahead */
  char *buf;                    /* PIECE bytes, a userdata on the stack */
};

static const struct luastring_guard *guard_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* Raises with message as the whole error (no position), as lua_load's own
 * errors have none. */
static void raise_plain(lua_State *L, const char *message) {
  lua_pushstring(L, message);
  lua_error(L);
}

static void ask_guard(struct feed *fd) {
  const struct luastring_guard *g = fd->guard;
  if (!g || !g->should_stop) return;
  char why[160] = "";
  if (!g->should_stop(fd->L, g->ud, why, sizeof why)) return;
  lua_State *L = fd->L;
  if (fd->total)
    lua_pushfstring(L, "load stopped: %s after %I of %I bytes", why,
                    (lua_Integer)fd->fed, (lua_Integer)fd->total);
  else
    lua_pushfstring(L, "load stopped: %s after %I bytes", why,
                    (lua_Integer)fd->fed);
  if (g->stopped) g->stopped(L, g->ud, lua_tostring(L, -1));
  lua_error(L);
}

/* The next piece of the current string, or NULL when it is used up. */
static const char *from_string(struct feed *fd, size_t *size) {
  if (fd->at >= fd->len) return NULL;
  size_t n = fd->len - fd->at < PIECE ? fd->len - fd->at : PIECE;
  const char *piece = fd->s + fd->at;
  fd->at += n;
  *size = n;
  return piece;
}

static const char *from_function(struct feed *fd, size_t *size) {
  lua_State *L = fd->L;
  for (;;) {
    const char *piece = from_string(fd, size);
    if (piece || fd->done) return piece;
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, fd->reader);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      fd->done = true;
      return NULL;
    }
    if (!lua_isstring(L, -1))
      luaL_error(L, "reader function must return a string");
    lua_replace(L, fd->slot);
    fd->s = lua_tolstring(L, fd->slot, &fd->len);
    fd->at = 0;
    if (fd->len == 0) {   /* an empty string ends the chunk, as nil does */
      fd->done = true;
      return NULL;
    }
  }
}

static const char *from_file(struct feed *fd, size_t *size) {
  if (fd->nprefix) {
    *size = fd->nprefix;
    fd->nprefix = 0;
    return fd->prefix;
  }
  if (feof(fd->f)) return NULL;
  size_t n = fread(fd->buf, 1, PIECE, fd->f);
  *size = n;
  return n ? fd->buf : NULL;
}

static const char *read_piece(lua_State *L, void *ud, size_t *size) {
  struct feed *fd = ud;
  if (fd->fed > 0) ask_guard(fd);
  const char *piece;
  switch (fd->from) {
    case FROM_STRING: piece = from_string(fd, size); break;
    case FROM_FUNCTION: piece = from_function(fd, size); break;
    default: piece = from_file(fd, size); break;
  }
  if (!piece) {
    *size = 0;
    return NULL;
  }
  if (!fd->started) {
    fd->started = true;
    if (piece[0] == BINARY_MARK)
      raise_plain(L, "attempt to load a binary chunk: tghost loads Lua "
                     "source only");
  }
  fd->fed += *size;
  return piece;
}

static void feed_init(struct feed *fd, lua_State *L, enum source from) {
  memset(fd, 0, sizeof *fd);
  fd->L = L;
  fd->guard = guard_of(L);
  fd->from = from;
}

/* --- files -------------------------------------------------------------- */

/* Lua's message for a file it could not use; pops the chunk name at
 * fname_index ("@path"). */
static int file_error(lua_State *L, const char *what, int fname_index) {
  const char *reason = strerror(errno);
  const char *name = lua_tostring(L, fname_index) + 1;
  lua_pushfstring(L, "cannot %s %s: %s", what, name, reason);
  lua_remove(L, fname_index);
  return LUA_ERRFILE;
}

/* Reads the start of the file as Lua does: a UTF-8 byte order mark and a
 * first line starting with '#' are skipped (a newline keeps the line
 * numbers right). Returns the first byte after them, or EOF. */
static int skip_start(struct feed *fd) {
  int c = getc(fd->f);
  if (c == 0xEF && getc(fd->f) == 0xBB && getc(fd->f) == 0xBF)
    c = getc(fd->f);
  else if (c == 0xEF)
    return c;   /* not a whole mark: Lua does not rewind either */
  if (c != '#') return c;
  do c = getc(fd->f); while (c != EOF && c != '\n');
  fd->prefix[fd->nprefix++] = '\n';
  return c == EOF ? EOF : getc(fd->f);
}

/* luaL_loadfilex, fed in pieces: the chunk (or an error message) on top.
 * filename NULL: standard input. */
static int load_file(lua_State *L, const char *filename, const char *mode) {
  struct feed fd;
  feed_init(&fd, L, FROM_FILE);
  fd.buf = lua_newuserdatauv(L, PIECE, 0);
  int buf_index = lua_gettop(L);
  int fname_index = buf_index + 1;
  if (filename) {
    lua_pushfstring(L, "@%s", filename);
    fd.f = fopen(filename, "r");
    if (!fd.f) {
      int status = file_error(L, "open", fname_index);
      lua_remove(L, buf_index);
      return status;
    }
  } else {
    lua_pushliteral(L, "=stdin");
    fd.f = stdin;
  }
  int c = skip_start(&fd);
  if (c != EOF) fd.prefix[fd.nprefix++] = (char)c;
  int status = lua_load(L, read_piece, &fd, lua_tostring(L, fname_index),
                        mode);
  int read_failed = ferror(fd.f);
  if (filename) fclose(fd.f);
  if (read_failed) {
    lua_settop(L, fname_index);
    status = file_error(L, "read", fname_index);
  } else {
    lua_remove(L, fname_index);
  }
  lua_remove(L, buf_index);
  return status;
}

/* --- load, loadfile, dofile --------------------------------------------- */

/* The result of a load: the function (with env as its first upvalue, if
 * given), or fail and the message. */
static int load_result(lua_State *L, int status, int env) {
  if (status != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env != 0) {
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  }
  return 1;
}

static int l_load(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  const char *mode = luaL_optstring(L, 3, "bt");
  int env = !lua_isnone(L, 4) ? 4 : 0;
  struct feed fd;
  int status;
  if (s) {
    const char *chunkname = luaL_optstring(L, 2, s);
    feed_init(&fd, L, FROM_STRING);
    fd.s = s;
    fd.len = fd.total = len;
    status = lua_load(L, read_piece, &fd, chunkname, mode);
  } else {
    const char *chunkname = luaL_optstring(L, 2, "=(load)");
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 4);
    lua_pushnil(L);   /* the slot for the reader's strings */
    feed_init(&fd, L, FROM_FUNCTION);
    fd.reader = 1;
    fd.slot = lua_gettop(L);
    status = lua_load(L, read_piece, &fd, chunkname, mode);
  }
  return load_result(L, status, env);
}

static int l_loadfile(lua_State *L) {
  const char *filename = luaL_optstring(L, 1, NULL);
  const char *mode = luaL_optstring(L, 2, NULL);
  int env = !lua_isnone(L, 3) ? 3 : 0;
  int status = load_file(L, filename, mode);
  return load_result(L, status, env);
}

static int dofile_done(lua_State *L, int status, lua_KContext ctx) {
  return lua_gettop(L) - 1;
}

static int l_dofile(lua_State *L) {
  const char *filename = luaL_optstring(L, 1, NULL);
  lua_settop(L, 1);
  if (load_file(L, filename, NULL) != LUA_OK) return lua_error(L);
  lua_callk(L, 0, LUA_MULTRET, 0, dofile_done);
  return dofile_done(L, 0, 0);
}

/* --- require ------------------------------------------------------------ */

/* package.searchers' Lua file searcher: the file package.searchpath finds
 * on package.path, loaded as loadfile does. Upvalues: the guard, the
 * package table, Lua's package.searchpath. */
static int search_lua(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, lua_upvalueindex(2), "path");
  if (!lua_isstring(L, -1))
    return luaL_error(L, "'package.path' must be a string");
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushstring(L, name);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1;   /* "no file '...'": not found here */
  lua_pop(L, 1);
  const char *filename = lua_tostring(L, -1);
  if (load_file(L, filename, NULL) != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                      name, filename, lua_tostring(L, -1));
  lua_pushstring(L, filename);   /* the loader's second argument */
  return 2;
}

/* Whether a C module named name would be opened by one of the standard
 * library's luaopen_ functions: Lua looks for luaopen_<name> with dots as
 * underscores, and for a name with a hyphen, first for the part before
 * it, then for the part after. */
static bool opens_standard_library(const char *name) {
  static const char *const std[] = {"base", "package", "coroutine", "table",
                                     "io", "os", "string", "math", "utf8",
                                     "debug", NULL};
  char opener[128];
  size_t n = strlen(name);
  if (n >= sizeof opener) return false;
  for (size_t i = 0; i <= n; i++) opener[i] = name[i] == '.' ? '_' : name[i];
  const char *parts[2] = {opener, NULL};
  char *mark = strchr(opener, '-');
  if (mark) {
    *mark = '\0';
    parts[1] = mark + 1;
  }
  for (int p = 0; p < 2 && parts[p]; p++)
    for (int i = 0; std[i]; i++)
      if (strcmp(parts[p], std[i]) == 0) return true;
  return false;
}

/* One of Lua's C searchers (upvalue 1), but not for the standard library:
 * a fresh copy of it would have none of tghost's guards. */
static int search_c(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (opens_standard_library(name)) {
    lua_pushfstring(L, "no C module for '%s': the standard libraries are "
                    "tghost's own", name);
    return 1;
  }
  int base = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, base, LUA_MULTRET);
  return lua_gettop(L);
}

/* --- installing --------------------------------------------------------- */

void luaload_install(lua_State *L, const struct luastring_guard *guard) {
  static const luaL_Reg base_fns[] = {
      {"load", l_load}, {"loadfile", l_loadfile}, {"dofile", l_dofile},
      {NULL, NULL}};
  lua_pushglobaltable(L);
  lua_pushlightuserdata(L, (void *)guard);
  luaL_setfuncs(L, base_fns, 1);
  lua_pop(L, 1);

  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) != LUA_TTABLE)
    luaL_error(L, "the package library is not open");
  int package = lua_gettop(L);
  lua_pushnil(L);
  lua_setfield(L, package, "loadlib");
  lua_getfield(L, package, "searchers");
  int searchers = lua_gettop(L);
  /* Lua's order: preload, Lua files, C files, C roots. */
  lua_pushlightuserdata(L, (void *)guard);
  lua_pushvalue(L, package);
  lua_getfield(L, package, "searchpath");
  lua_pushcclosure(L, search_lua, 3);
  lua_rawseti(L, searchers, 2);
  for (lua_Integer i = 3; i <= 4; i++) {
    lua_rawgeti(L, searchers, i);
    lua_pushcclosure(L, search_c, 1);
    lua_rawseti(L, searchers, i);
  }
  lua_pop(L, 3);
}

void luaload_install_guarded(lua_State *L) {
  luaload_install(L, luastring_tghost_guard());
}
