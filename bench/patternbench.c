/* Pattern matching speed: tghost's string.find/match/gmatch/gsub
 * (src/luastring.c on src/lpattern.c, with a guard that is asked and says
 * go on, as in tghost) against Lua 5.4's own, on the patterns bots use.
 *
 *   build/bench/patternbench [rounds [filter]]
 *
 * (filter: run only the workloads whose name contains it.)
 *
 * Each workload runs as a Lua loop in both states, interleaved, several
 * rounds; the best time of each is kept. Prints ns per call and the ratio
 * ours / Lua's (below 1: ours is faster). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script/luastring.h"

static bool go_on(lua_State *L, void *ud, char *why, size_t size) {
  return false;
}

static const char setup[] =
    "msg = 'Hello there, this is a fairly ordinary message of a chat, with "
    "some words, 2 numbers (42 and 1234567) and  double  spaces.'\n"
    "long = string.rep(msg .. ' ', 20)\n"
    "cmd = '/start   deep-link-payload 123'\n"
    "upper = function(w) return w:upper() end\n"
    "subst = { Hello = 'Hi', chat = 'group', words = 'terms' }\n";

static const struct {
  const char *name;
  int iterations;
  const char *body;   /* the loop body; i is the counter */
} workloads[] = {
    {"cmd:match('^/(%w+)%s*(.*)$')", 1000000,
     "local a, b = cmd:match('^/(%w+)%s*(.*)$')"},
    {"msg:match('(%d+)')", 1000000, "local n = msg:match('(%d+)')"},
    {"msg:find('%d')", 1000000, "local s = msg:find('%d')"},
    {"msg:gsub('%s+', ' ')", 300000, "local s = msg:gsub('%s+', ' ')"},
    {"msg:gsub('%w+', upper)", 100000, "local s = msg:gsub('%w+', upper)"},
    {"msg:gsub('%w+', table)", 100000, "local s = msg:gsub('%w+', subst)"},
    {"gmatch('%a+') over msg", 100000,
     "for w in msg:gmatch('%a+') do end"},
    {"long:gsub('%s+', ' ') (2.8 KB)", 20000,
     "local s = long:gsub('%s+', ' ')"},
    {"msg:find('chat', 1, true)", 1000000,
     "local s = msg:find('chat', 1, true)"},
    {"msg:match('^(%S+)%s+(.-)%s*$')", 300000,
     "local a, b = msg:match('^(%S+)%s+(.-)%s*$')"},
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);   /* CPU time: less noise */
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static lua_State *new_state(bool ours) {
  static const struct luastring_guard guard = {go_on, NULL, NULL};
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (ours) luastring_install(L, &guard);
  if (luaL_dostring(L, setup) != LUA_OK) {
    fprintf(stderr, "setup: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  return L;
}

static double run(lua_State *L, int index) {
  char code[512];
  snprintf(code, sizeof code, "for i = 1, %d do %s end",
           workloads[index].iterations, workloads[index].body);
  if (luaL_loadstring(L, code) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    exit(1);
  }
  double t0 = now_s();
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    exit(1);
  }
  return now_s() - t0;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const char *filter = argc > 2 ? argv[2] : NULL;
  lua_State *lua = new_state(false), *ours = new_state(true);
  size_t n = sizeof workloads / sizeof workloads[0];
  printf("%-36s %10s %10s %7s\n", "workload", "Lua ns", "ours ns", "ratio");
  double sum_log = 0;
  int ran = 0;
  for (size_t i = 0; i < n; i++) {
    if (filter && !strstr(workloads[i].name, filter)) continue;
    ran++;
    double best_lua = 1e9, best_ours = 1e9;
    for (int r = 0; r < rounds; r++) {
      double a = run(lua, (int)i), b = run(ours, (int)i);
      if (a < best_lua) best_lua = a;
      if (b < best_ours) best_ours = b;
    }
    double per = 1e9 / workloads[i].iterations;
    printf("%-36s %10.0f %10.0f %7.2f\n", workloads[i].name, best_lua * per,
           best_ours * per, best_ours / best_lua);
    sum_log += __builtin_log(best_ours / best_lua);
  }
  printf("geometric mean of the ratios: %.2f\n",
         __builtin_exp(sum_log / ran));
  lua_close(lua);
  lua_close(ours);
  return 0;
}
