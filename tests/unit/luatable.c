/* src/script/luatable.c against Lua 5.4's own table library.
 *
 *   differential  thousands of random calls of table.insert, remove,
 *                 move, concat and sort (on tables, and on proxies whose
 *                 __index, __newindex and __len log every access), in a
 *                 plain lua_State with Lua's library and in one with ours:
 *                 the same results, the same errors and messages, the same
 *                 tables afterwards and, but for sort, the same accesses in
 *                 the same order (sort's algorithm is ours: its results
 *                 are compared, and a sort of equal keys is only checked
 *                 to be sorted)
 *   bound         each function stops soon after its guard says so, with
 *                 the clear error, on the sizes that froze tghost (a move
 *                 of 2^53 elements, an insert into a table whose __len says
 *                 2^53, a sort of 2^31 elements a C function makes up), and
 *                 the state works on; a large sort costs about what Lua's
 *                 does
 *
 * TGHOST_TABLE_SEED=<n> replays one seed of the differential run. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script/luatable.h"

static long current_seed;
#define CHECK_ON_FAILURE() \
  fprintf(stderr, "  (seed %ld: TGHOST_TABLE_SEED=%ld replays it)\n", \
          current_seed, current_seed)
#include "check.h"
#include "testreg.h"

/* The calls: a seed drives math.random, the same in both states. Every
 * result, error, access and final table goes into one log string. */
static const char script[] =
    "local seed, with_sort = ...\n"
    "math.randomseed(seed)\n"
    "local R = math.random\n"
    "local log, n = {}, 0\n"
    "local ids = {}\n"
    "local function ser(v)\n"
    "  local ty = type(v)\n"
    "  if ty == 'string' or ty == 'number' then return string.format('%q', v) end\n"
    "  if ty == 'table' then\n"
    "    if not ids[v] then ids[v] = 'T' .. (#log + 1) end\n"
    "    return ids[v]\n"
    "  end\n"
    "  return tostring(ty == 'function' and 'fn' or v)\n"
    "end\n"
    "local function out(s) n = n + 1; log[n] = s end\n"
    "local function access(what, k, v)\n"
    "  if with_sort then return end  -- sort's accesses are its algorithm's\n"
    "  out(what .. ' ' .. ser(k) .. (v ~= nil and ' ' .. ser(v) or ''))\n"
    "end\n"
    "local function value()\n"
    "  local k = R(10)\n"
    "  if k <= 5 then return R(-3, 20) end\n"
    "  if k <= 8 then return ('s' .. R(0, 20)) end\n"
    "  if k == 9 then return 1.5 end\n"
    "  return {}\n"
    "end\n"
    "local function list(len)\n"
    "  local t = {}\n"
    "  for i = 1, len do t[i] = value() end\n"
    "  return t\n"
    "end\n"
    "-- A proxy: empty, every access through logged metamethods.\n"
    "local function proxy(base, r, w, l)\n"
    "  local mt = {}\n"
    "  if r then mt.__index = function(_, k) access('r', k) return base[k] end end\n"
    "  if w then mt.__newindex = function(_, k, v) access('w', k, v) base[k] = v end end\n"
    "  if l then mt.__len = function() access('l') return #base end end\n"
    "  return setmetatable({}, mt)\n"
    "end\n"
    "local function target(len)\n"
    "  local base = list(len)\n"
    "  local k = R(10)\n"
    "  if k <= 6 then return base, base end\n"
    "  if k <= 9 then return proxy(base, true, true, true), base end\n"
    "  if k == 10 then\n"
    "    local which = R(4)\n"
    "    if which == 4 then return R(5), base end\n"
    "    return proxy(base, which ~= 1, which ~= 2, which ~= 3), base\n"
    "  end\n"
    "end\n"
    "local function dump(base, len)\n"
    "  local parts = {}\n"
    "  for i = -1, len + 3 do parts[#parts + 1] = ser(rawget(base, i)) end\n"
    "  for k, v in next, base do\n"
    "    if math.type(k) ~= 'integer' or k < -1 or k > len + 3 then\n"
    "      parts[#parts + 1] = ser(k) .. '=' .. ser(v)\n"
    "    end\n"
    "  end\n"
    "  out('table ' .. #parts .. ': ' .. string.format(string.rep('%s ', #parts), table.unpack(parts)))\n"
    "end\n"
    "local function pos(len)\n"
    "  local k = R(20)\n"
    "  if k == 1 then return math.maxinteger end\n"
    "  if k == 2 then return math.mininteger end\n"
    "  if k == 3 then return 2.0 end\n"
    "  if k == 4 then return 'x' end\n"
    "  return R(-2, len + 3)\n"
    "end\n"
    "local function call(name, fn, ...)\n"
    "  local r = table.pack(pcall(fn, ...))\n"
    "  local s = name .. ' ' .. tostring(r[1])\n"
    "  for i = 2, r.n do s = s .. ' ' .. ser(r[i]) end\n"
    "  out(s)\n"
    "  return r[1]\n"
    "end\n"
    "local function sorted(base, len, desc)\n"
    "  for i = 2, len do\n"
    "    local a, b = base[i - 1], base[i]\n"
    "    if (desc and a < b) or (not desc and b < a) then return false end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "for round = 1, 60 do\n"
    "  local len = R(0, 8)\n"
    "  local t, base = target(len)\n"
    "  local op = R(with_sort and 6 or 5)\n"
    "  if op == 1 then\n"
    "    local k = R(6)\n"
    "    if k == 1 then call('insert', table.insert, t, value())\n"
    "    elseif k <= 4 then call('insert', table.insert, t, pos(len), value())\n"
    "    elseif k == 5 then call('insert', table.insert, t)\n"
    "    else call('insert', table.insert, t, 1, 2, 3) end\n"
    "  elseif op == 2 then\n"
    "    if R(3) == 1 then call('remove', table.remove, t)\n"
    "    else call('remove', table.remove, t, pos(len)) end\n"
    "  elseif op == 3 then\n"
    "    local f, e, to = R(-2, len + 2), R(-2, len + 2), R(-2, len + 4)\n"
    "    local k = R(12)\n"
    "    if k == 1 then f, e = math.mininteger, math.maxinteger end\n"
    "    if k == 2 then f, e, to = 1, 3, math.maxinteger - 1 end\n"
    "    if k == 3 then f = 'a' end\n"
    "    if R(2) == 1 then\n"
    "      local t2, base2 = target(R(0, 4))\n"
    "      call('move', table.move, t, f, e, to, t2)\n"
    "      if type(t2) == 'table' then dump(base2, 12) end\n"
    "    else\n"
    "      call('move', table.move, t, f, e, to)\n"
    "    end\n"
    "  elseif op == 4 then\n"
    "    local k = R(5)\n"
    "    if k == 1 then call('concat', table.concat, t)\n"
    "    elseif k == 2 then call('concat', table.concat, t, ', ')\n"
    "    elseif k == 3 then call('concat', table.concat, t, '-', R(-1, 3))\n"
    "    elseif k == 4 then call('concat', table.concat, t, '', R(-1, 4), R(-1, len + 2))\n"
    "    else call('concat', table.concat, t, {}) end\n"
    "  elseif op == 5 then\n"
    "    call('len', function() return #t end)\n"
    "  else\n"
    "    -- Sort: distinct keys of one type, or equal ones; the order is\n"
    "    -- unique, or only sortedness is compared.\n"
    "    local distinct, strings = R(2) == 1, R(2) == 1\n"
    "    local size = R(0, 40)\n"
    "    for i = 1, size do\n"
    "      local v = distinct and i * 7 % 41 or R(3)\n"
    "      base[i] = strings and string.format('%03d', v) or v\n"
    "    end\n"
    "    for i = size + 1, len do base[i] = nil end\n"
    "    len = size\n"
    "    local k, desc = R(6), false\n"
    "    local ok\n"
    "    if k == 1 then desc = true; ok = call('sort', table.sort, t, function(a, b) return a > b end)\n"
    "    elseif k == 2 then ok = call('sort', table.sort, t, 42)\n"
    "    elseif k == 3 then base[R(math.max(size, 1))] = {}; ok = pcall(table.sort, t); out('sort mixed ' .. tostring(ok))\n"
    "    else ok = call('sort', table.sort, t) end\n"
    "    if ok and k ~= 3 then out('sorted ' .. tostring(sorted(base, len, desc))) end\n"
    "    if not distinct or k == 3 then base = {} end\n"
    "  end\n"
    "  dump(base, len)\n"
    "end\n"
    "return table.concat(log, '\\n')\n";

/* Our guard in the differential run: asked, never stops. */
static unsigned long guard_calls;
static bool never_stop(lua_State *L, void *ud, char *why, size_t size) {
  guard_calls++;
  return false;
}

static lua_State *new_state(const struct luastring_guard *ours, bool install) {
  lua_State *L = luaL_newstate();
  CHECK(L, "cannot create a Lua state");
  luaL_openlibs(L);
  if (install) luatable_install(L, ours);
  return L;
}

/* Runs the script for seed; returns its log (malloc'd). */
static char *run(lua_State *L, long seed, bool with_sort) {
  CHECK(luaL_loadbuffer(L, script, sizeof script - 1, "=calls") == LUA_OK,
        "load: %s", lua_tostring(L, -1));
  lua_pushinteger(L, seed);
  lua_pushboolean(L, with_sort);
  CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK, "the script failed: %s",
        lua_tostring(L, -1));
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  char *copy = malloc(len + 1);
  memcpy(copy, s, len + 1);
  lua_pop(L, 1);
  return copy;
}

/* Where two logs part: the line of each. */
static void report_difference(const char *lua, const char *ours) {
  size_t i = 0, line_start = 0;
  while (lua[i] && lua[i] == ours[i]) {
    if (lua[i] == '\n') line_start = i + 1;
    i++;
  }
  const char *a = lua + line_start, *b = ours + line_start;
  int la = (int)(strchr(a, '\n') ? strchr(a, '\n') - a : (long)strlen(a));
  int lb = (int)(strchr(b, '\n') ? strchr(b, '\n') - b : (long)strlen(b));
  CHECK(false, "the logs differ:\n    Lua's: %.*s\n    ours:  %.*s", la, a,
        lb, b);
}

TEST(differential) {
  static const struct luastring_guard counting = {never_stop, NULL, NULL};
  lua_State *lua = new_state(NULL, false), *ours = new_state(&counting, true);
  long first = 1, last = 400;
  const char *one = getenv("TGHOST_TABLE_SEED");
  if (one) first = last = strtol(one, NULL, 10);
  size_t bytes = 0;
  for (long seed = first; seed <= last; seed++) {
    current_seed = seed;
    /* The logs must be the same to the byte. With sort in the mix, the
     * accesses a sort makes are its algorithm's: proxies log nothing then,
     * only what the calls leave behind is compared. */
    for (int with_sort = 0; with_sort <= 1; with_sort++) {
      char *a = run(lua, seed, with_sort), *b = run(ours, seed, with_sort);
      if (strcmp(a, b) != 0) report_difference(a, b);
      bytes += strlen(a);
      free(a);
      free(b);
    }
  }
  fprintf(stderr, "%ld seeds agree (%zu bytes of log); the guard was asked "
          "%lu times\n", last - first + 1, bytes, guard_calls);
  lua_close(lua);
  lua_close(ours);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct deadline {
  double at;
  unsigned long asked;
};

static bool past_deadline(lua_State *L, void *ud, char *why, size_t size) {
  struct deadline *d = ud;
  d->asked++;
  if (now_ms() < d->at) return false;
  snprintf(why, size, "the test's deadline passed");
  return true;
}

static char last_stop_message[512];
static void note_stop(lua_State *L, void *ud, const char *message) {
  snprintf(last_stop_message, sizeof last_stop_message, "%s", message);
}

TEST(bound) {
  struct deadline d = {0, 0};
  const struct luastring_guard guard = {past_deadline, note_stop, &d};
  lua_State *L = new_state(&guard, true);
  static const struct {
    const char *code, *want;
  } calls[] = {
      {"table.move({}, 1, 1 << 53, 1, {})",
       "bound:1: table.move stopped: the test's deadline passed after "},
      {"table.insert(setmetatable({}, { __len = function() return 1 << 53 "
       "end }), 1, 'x')",
       "bound:1: table.insert stopped: the test's deadline passed after "},
      {"table.remove(setmetatable({}, { __len = function() return 1 << 53 "
       "end }), 1)",
       "bound:1: table.remove stopped: the test's deadline passed after "},
      {"table.concat(setmetatable({}, { __index = function() return 'x' "
       "end, __len = function() return 1 << 53 end }))",
       "bound:1: table.concat stopped: the test's deadline passed after "},
      /* 2^31 - 2 elements that a C function makes up: rawlen(t, k) is 0
       * for every k, so every comparison is C. */
      {"table.sort(setmetatable({}, { __len = function() return (1 << 31) - "
       "2 end, __index = rawlen, __newindex = function() end }))",
       "bound:1: table.sort stopped: the test's deadline passed after "},
  };
  const double limit_ms = 100;
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    d.asked = 0;
    last_stop_message[0] = '\0';
    double started = now_ms();
    d.at = started + limit_ms;
    const char *code = calls[i].code;
    CHECK(luaL_loadbuffer(L, code, strlen(code), "=bound") == LUA_OK,
          "load: %s", lua_tostring(L, -1));
    int status = lua_pcall(L, 0, 0, 0);
    double took = now_ms() - started;
    CHECK(status != LUA_OK, "%s ran to its end", code);
    const char *msg = lua_tostring(L, -1);
    CHECK(strncmp(msg, calls[i].want, strlen(calls[i].want)) == 0,
          "the error: %s\n  wanted: %s...", msg, calls[i].want);
    CHECK(strcmp(last_stop_message, msg) == 0, "the guard was told: %s",
          last_stop_message);
    CHECK(took < limit_ms + 400, "%s stopped after %.0f ms", code, took);
    fprintf(stderr, "%s\n  stopped after %.0f ms: %s\n", code, took, msg);
    lua_pop(L, 1);
  }
  /* The state works on, and large sorts are right and about as fast as
   * Lua's. */
  d.at = now_ms() + 600000;
  static const char big_sort[] =
      "local n, desc = ...\n"
      "local t = {}\n"
      "for i = 1, n do t[i] = (i * 7919) % 1000003 end\n"
      "local t0 = os.clock()\n"
      "if desc then table.sort(t, function(a, b) return a > b end)\n"
      "else table.sort(t) end\n"
      "local took = os.clock() - t0\n"
      "for i = 2, n do\n"
      "  if (desc and t[i - 1] < t[i]) or (not desc and t[i] < t[i - 1]) then\n"
      "    error('not sorted at ' .. i)\n"
      "  end\n"
      "end\n"
      "return took\n";
  lua_State *plain = new_state(NULL, false);
  for (int desc = 0; desc <= 1; desc++) {
    double took[2];
    lua_State *states[2] = {plain, L};
    for (int k = 0; k < 2; k++) {
      lua_State *S = states[k];
      CHECK(luaL_loadbuffer(S, big_sort, sizeof big_sort - 1, "=sort") ==
                LUA_OK, "%s", lua_tostring(S, -1));
      lua_pushinteger(S, 300000);
      lua_pushboolean(S, desc);
      CHECK(lua_pcall(S, 2, 1, 0) == LUA_OK, "%s", lua_tostring(S, -1));
      took[k] = lua_tonumber(S, -1) * 1000;
      lua_pop(S, 1);
    }
    fprintf(stderr, "sorting 300,000 numbers%s: Lua's %.0f ms, ours %.0f ms\n",
            desc ? " with a Lua comparator" : "", took[0], took[1]);
  }
  lua_close(plain);
  lua_close(L);
}
