/* src/script/luaload.c against Lua 5.4's own load, loadfile, dofile and
 * require.
 *
 *   differential  load of strings and of reader functions (pieces, errors,
 *                 non-strings), chunk names, modes, environments; loadfile
 *                 and dofile of files with a byte order mark, a '#' line,
 *                 syntax errors, or none at all; require of modules found,
 *                 missing, broken or larger than a piece: the same results
 *                 and messages in a plain lua_State and in one with ours
 *   refused       precompiled chunks in every mode and way in,
 *                 package.loadlib, and C modules that would be a fresh
 *                 standard library
 *   bound         a chunk of 48 MB stops soon after the guard says so,
 *                 with the clear error, and the state works on */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "script/luaload.h"

#include "check.h"
#include "testreg.h"

static char dir[] = "/tmp/tghost-luaload-XXXXXX";

static void write_file(const char *name, const char *content, size_t len) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f, "cannot write %s", path);
  fwrite(content, 1, len, f);
  fclose(f);
}

static void make_files(void) {
  CHECK(mkdtemp(dir), "mkdtemp");
  static const char bom[] = "\xEF\xBB\xBFreturn 'bom', ...";
  write_file("bom.lua", bom, sizeof bom - 1);
  static const char shebang[] = "#!/usr/bin/env lua\nreturn debug.getinfo(1, 'l').currentline";
  write_file("shebang.lua", shebang, sizeof shebang - 1);
  static const char broken[] = "return 1 +\n\n";
  write_file("broken.lua", broken, sizeof broken - 1);
  write_file("empty.lua", "", 0);
  static const char multi[] = "return 1, 2, 3";
  write_file("multi.lua", multi, sizeof multi - 1);
  static const char raises[] = "error('from the file')";
  write_file("raises.lua", raises, sizeof raises - 1);
  static const char mod[] = "local name, path = ...\nreturn { name = name, "
                            "tail = path:match('[^/]*$') }";
  write_file("mod.lua", mod, sizeof mod - 1);
  write_file("badmod.lua", broken, sizeof broken - 1);
  /* A module over a few pieces long, with a long string across them. */
  size_t big_len = 300000;
  char *big = malloc(big_len);
  static const char head[] = "local t = {}\nlocal s = [[";
  memcpy(big, head, sizeof head - 1);
  size_t at = sizeof head - 1;
  for (; at < big_len - 200; at++) big[at] = (char)('a' + at % 26);
  static const char tail[] = "]]\nreturn { len = #s, last = s:sub(-3) }\n";
  memcpy(big + at, tail, sizeof tail - 1);
  write_file("bigmod.lua", big, at + sizeof tail - 1);
  free(big);
}

static void remove_files(void) {
  static const char *const names[] = {"bom.lua", "shebang.lua", "broken.lua",
                                      "empty.lua", "multi.lua", "raises.lua",
                                      "mod.lua", "badmod.lua", "bigmod.lua"};
  char path[256];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* Each case is an expression list; the state runs
 * return ser(pcall(function() return <case> end)). */
static const char *const cases[] = {
    "load('return 1 + 1')()",
    "load('return ...', 'named', 't')(7, 8)",
    "load('syntax error here')",
    "load('x =', '=custom')",
    "load('x =', '@file.lua')",
    "load('return x', 'c', 't', { x = 5 })()",
    "load('return x', 'c', 'bt', nil)()",
    "load('return 1', 'c', 'b')",
    "load('return 1', 'c', 'q')",
    "load(42)",
    "load(42)()",
    "load({})",
    "load(nil)",
    "load(function() return nil end)",
    "load(function() return '' end)()",
    "(function() local p, i = {'return ', '4', '2'}, 0\n"
    "  return load(function() i = i + 1 return p[i] end)() end)()",
    "(function() local i = 0\n"
    "  return load(function() i = i + 1 return i == 1 and 'return 1' or {} end) end)()",
    "(function() local i = 0\n"
    "  return load(function() i = i + 1 if i == 2 then error('reader') end return 'return 1' end) end)()",
    "(function() local i = 0\n"
    "  return load(function() i = i + 1 return i == 1 and 7 or nil end)() end)()",
    "load(string.rep('x', 100000) .. ' =')",
    "#load('return [[' .. string.rep('y', 200000) .. ']]')()",
    "loadfile(DIR .. '/bom.lua')(1, 2)",
    "loadfile(DIR .. '/shebang.lua')()",
    "loadfile(DIR .. '/broken.lua')",
    "loadfile(DIR .. '/empty.lua')()",
    "loadfile(DIR .. '/missing.lua')",
    "loadfile(DIR .. '/multi.lua', 't', {})()",
    "loadfile(DIR .. '/multi.lua', 'b')",
    "loadfile(DIR)",
    "dofile(DIR .. '/multi.lua')",
    "dofile(DIR .. '/raises.lua')",
    "dofile(DIR .. '/broken.lua')",
    "dofile(DIR .. '/missing.lua')",
    "require('mod').name, require('mod').tail",
    "require('bigmod').len, require('bigmod').last",
    "require('badmod')",
    "require('nosuchmodule')",
    "require('a.b.c')",
    "require(42)",
};

static const char prelude[] =
    "local function ser(...)\n"
    "  local n, out = select('#', ...), {}\n"
    "  for i = 1, n do\n"
    "    local v = select(i, ...)\n"
    "    local t = type(v)\n"
    "    out[i] = (t == 'string' or t == 'number') and string.format('%q', v)\n"
    "             or (t == 'function' or t == 'table') and t or tostring(v)\n"
    "  end\n"
    "  return n .. ': ' .. table.concat(out, ', ')\n"
    "end\n";

static lua_State *new_state(const struct luastring_guard *guard, bool ours) {
  lua_State *L = luaL_newstate();
  CHECK(L, "cannot create a Lua state");
  luaL_openlibs(L);
  if (ours) luaload_install(L, guard);
  lua_pushstring(L, dir);
  lua_setglobal(L, "DIR");
  char path[300];
  snprintf(path, sizeof path, "package.path = '%s/?.lua'", dir);
  CHECK(luaL_dostring(L, path) == LUA_OK, "%s", lua_tostring(L, -1));
  return L;
}

static char *run_case(lua_State *L, const char *expr) {
  char code[1024];
  snprintf(code, sizeof code,
           "%sreturn ser(pcall(function() return %s end))", prelude, expr);
  CHECK(luaL_loadbuffer(L, code, strlen(code), "=case") == LUA_OK,
        "%s: %s", expr, lua_tostring(L, -1));
  CHECK(lua_pcall(L, 0, 1, 0) == LUA_OK, "%s: %s", expr, lua_tostring(L, -1));
  char *r = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return r;
}

TEST(differential) {
  make_files();
  lua_State *lua = new_state(NULL, false), *ours = new_state(NULL, true);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *a = run_case(lua, cases[i]), *b = run_case(ours, cases[i]);
    CHECK(strcmp(a, b) == 0, "%s\n    Lua's: %s\n    ours:  %s", cases[i], a,
          b);
    free(a);
    free(b);
  }
  fprintf(stderr, "%zu cases agree\n", sizeof cases / sizeof cases[0]);
  lua_close(lua);
  lua_close(ours);
  remove_files();
}

TEST(refused) {
  make_files();
  lua_State *L = new_state(NULL, true);
  static const char code[] =
      "local bin = string.dump(function() return 1 end)\n"
      "local f = io.open(DIR .. '/bin.lua', 'wb') f:write(bin) f:close()\n"
      "local why = 'attempt to load a binary chunk: tghost loads Lua source only'\n"
      "for _, mode in ipairs({ 'b', 'bt', 't' }) do\n"
      "  local fn, err = load(bin, 'x', mode)\n"
      "  assert(fn == nil, mode)\n"
      "  assert(err == why or (mode == 't' and err:find('mode is')), err)\n"
      "end\n"
      "local i = 0\n"
      "assert(select(2, load(function() i = i + 1 return i == 1 and bin or nil end)) == why)\n"
      "assert(select(2, loadfile(DIR .. '/bin.lua')) == why)\n"
      "assert(select(2, pcall(dofile, DIR .. '/bin.lua')) == why)\n"
      "package.path = DIR .. '/?.lua'\n"
      "local ok, err = pcall(require, 'bin')\n"
      "assert(not ok and err:find(why, 1, true), err)\n"
      "os.remove(DIR .. '/bin.lua')\n"
      "assert(package.loadlib == nil)\n"
      "package.cpath = '/usr/lib/x86_64-linux-gnu/liblua5.4.so.0;' .. package.cpath\n"
      "for _, name in ipairs({ 'string', 'table', 'base', 'x-string', 'coroutine' }) do\n"
      "  package.loaded[name] = nil\n"
      "  local ok, err = pcall(require, name)\n"
      "  assert(not ok and err:find(\"no C module for '\" .. name .. \"': the \"\n"
      "         .. 'standard libraries', 1, true), err)\n"
      "end\n";
  CHECK(luaL_dostring(L, code) == LUA_OK, "%s", lua_tostring(L, -1));
  lua_close(L);
  remove_files();
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 0: starts 100 ms from the first question (the load's first piece). */
static double deadline;
static bool past_deadline(lua_State *L, void *ud, char *why, size_t size) {
  if (deadline == 0) deadline = now_ms() + 100;
  if (now_ms() < deadline) return false;
  snprintf(why, size, "the test's deadline passed");
  return true;
}

static char last_stop_message[512];
static void note_stop(lua_State *L, void *ud, const char *message) {
  snprintf(last_stop_message, sizeof last_stop_message, "%s", message);
}

TEST(bound) {
  const struct luastring_guard guard = {past_deadline, note_stop, NULL};
  lua_State *L = new_state(&guard, true);
  static const char code[] =
      "local src = string.rep('a=1\\n', 12e6)\n"
      "local t0 = os.clock()\n"
      "local f, err = load(src)\n"
      "return f, err, os.clock() - t0\n";
  CHECK(luaL_loadbuffer(L, code, sizeof code - 1, "=bound") == LUA_OK,
        "%s", lua_tostring(L, -1));
  deadline = 0;
  CHECK(lua_pcall(L, 0, 3, 0) == LUA_OK, "%s", lua_tostring(L, -1));
  double took = lua_tonumber(L, -1) * 1000;
  CHECK(lua_isnil(L, -3), "the 48 MB chunk loaded");
  const char *err = lua_tostring(L, -2);
  CHECK(strncmp(err, "load stopped: the test's deadline passed after ", 47) ==
            0 && strstr(err, " of 48000000 bytes"), "the error: %s", err);
  CHECK(strcmp(last_stop_message, err) == 0, "the guard was told: %s",
        last_stop_message);
  fprintf(stderr, "a load of 48 MB stopped after %.0f ms of CPU: %s\n", took,
          err);
  CHECK(took < 100 + 400, "stopped after %.0f ms", took);
  lua_pop(L, 3);
  deadline = now_ms() + 600000;
  CHECK(luaL_dostring(L, "return load('return 6 * 7')()") == LUA_OK &&
            lua_tointeger(L, -1) == 42, "a load after the stop");
  lua_close(L);
}
