/* The Bot API surface end to end: every method of the committed Bot API
 * version (net/botapi_methods.c, generated from @grammyjs/types) called in
 * both of grammY's shapes against the sandbox, which must know each one
 * (no 404), and under --check, which must stand in for each one; what
 * positional calls, the default parse_mode, formatted strings and
 * transformers put on the wire; a misspelt method that never leaves the
 * process. (tests/lua/botapi.lua checks the annotations and the shapes'
 * parameters method by method.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Calls every method twice, positionally (grammY's positional arguments,
 * tghost.botapi.method(m).positional) and with a table (those and the
 * required parameters), with a value of each parameter's type
 * (lua/apispec.lua), counting what the server did not know (404). */
#define CALL_EVERY_METHOD                                                      \
  "local spec = require('tghost.apispec')\n"                                  \
  "local function dummy(ty, i)\n"                                             \
  "  ty = ty:match('^[^|]+')\n"                                               \
  "  if ty == 'integer' or ty == 'number' then return 100 + i end\n"          \
  "  if ty == 'string' or ty == 'InputFile' then return 'v' .. i end\n"       \
  "  if ty == 'boolean' then return true end\n"                               \
  "  if ty:sub(-2) == '[]' then return { { dummy = i } } end\n"               \
  "  if ty:match('^\"') then return ty:match('^\"(.*)\"$') end\n"             \
  "  return { dummy = i }\n"                                                  \
  "end\n"                                                                      \
  "local function call_every_method()\n"                                      \
  "  local calls, answered, unknown = 0, 0, {}\n"                             \
  "  for _, m in ipairs(tghost.botapi.methods()) do\n"                        \
  "    local args, tbl, val, i = {}, {}, {}, 0\n"                            \
  "    for p, req, ty in spec.methods[m][3]:gmatch('([%w_]+)(!?):(%S+)') do\n" \
  "      i = i + 1\n"                                                          \
  "      val[p] = dummy(ty, i)\n"                                              \
  "      if req == '!' then tbl[p] = val[p] end\n"                             \
  "    end\n"                                                                  \
  "    for k, p in ipairs(tghost.botapi.method(m).positional) do\n"           \
  "      p = p:gsub('%?$', '')\n"                                             \
  "      args[k] = val[p]\n"                                                   \
  "      tbl[p] = val[p]\n"                                                    \
  "    end\n"                                                                  \
  "    for _, shape in ipairs({ 'positional', 'table' }) do\n"                \
  "      local ok, err = pcall(function()\n"                                  \
  "        if shape == 'positional' then return bot.api[m](table.unpack(args)) end\n" \
  "        return bot.api[m](next(tbl) and tbl or nil)\n"                     \
  "      end)\n"                                                               \
  "      calls = calls + 1\n"                                                  \
  "      if ok then answered = answered + 1\n"                                 \
  "      elseif type(err) ~= 'table' then error(err, 0)\n"                    \
  "      elseif err.error_code == 404 then unknown[#unknown + 1] = m end\n"    \
  "    end\n"                                                                  \
  "  end\n"                                                                    \
  "  return calls, answered, unknown\n"                                        \
  "end\n"

static const char *const no_env[] = {NULL};

TEST(every_method_in_the_sandbox) {
  const char *bot = harness_write("every.lua",
      CALL_EVERY_METHOD
      "bot.command('every', function(ctx)\n"
      "  local calls, answered, unknown = call_every_method()\n"
      "  ctx:reply(string.format('%d methods, %d calls, unknown to the sandbox: %d %s',\n"
      "            #tghost.botapi.methods(), calls, #unknown, table.concat(unknown, ' ')))\n"
      "end)\n"
      "run(bot)\n");
  const char *chat = harness_write("every.chat",
      ":timeout 60\n"
      "> /every\n"
      "< unknown to the sandbox: 0 \n");
  const char *args[] = {"--sandbox", "--script", chat, NULL};
  struct proc *p = proc_start_env(bot, args, no_env, false);
  CHECK(proc_wait(p, 120000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the sandbox did not know every method (status %d)",
        proc_status(p));
  /* Both shapes of every method reached the sandbox. */
  const char *out = proc_stdout(p);
  const char *line = strstr(out, " methods, ");
  CHECK(line, "no summary");
  int methods = 0, calls = 0;
  const char *start = line;
  while (start > out && start[-1] != ' ') start--;
  CHECK(sscanf(start, "%d methods, %d calls", &methods, &calls) == 2, "summary: %s", start);
  CHECK(methods >= 180 && calls == 2 * methods, "%d methods, %d calls", methods, calls);
  CHECK(!strstr(out, "Telegram has no such method"), "a method unknown to the sandbox");
  proc_check_clean(p);
  proc_free(p);
}

TEST(every_method_under_check) {
  const char *bot = harness_write("every_check.lua",
      CALL_EVERY_METHOD
      "local calls, answered, unknown = call_every_method()\n"
      "assert(#unknown == 0 and answered == calls, 'a call failed under --check')\n"
      "print(string.format('checked %d methods: %d stand-in results', #tghost.botapi.methods(), answered))\n"
      "run(bot)\n");
  const char *args[] = {"--check", NULL};
  struct proc *p = proc_start_env(bot, args, no_env, false);
  CHECK(proc_wait(p, 60000), "tghost --check did not exit");
  CHECK(proc_status(p) == 0, "tghost --check failed (status %d)", proc_status(p));
  int methods = 0, answered = 0;
  const char *line = strstr(proc_stdout(p), "checked ");
  CHECK(line && sscanf(line, "checked %d methods: %d stand-in", &methods, &answered) == 2,
        "no summary");
  CHECK(methods >= 180 && answered == 2 * methods, "%d methods, %d answered", methods,
        answered);
  /* Each call said it was not sent. */
  CHECK(count_in(proc_stderr(p), "was not sent") == (size_t)answered,
        "%zu notes for %d calls", count_in(proc_stderr(p), "was not sent"), answered);
  proc_check_clean(p);
  proc_free(p);
}

static char *param(const struct fake_call *c, const char *name) {
  char *s = fake_call_raw(c, name);
  CHECK(s, "call %s has no %s: %.*s", c->method, name, (int)c->params_len, c->params);
  return s;
}

TEST(calls_on_the_wire) {
  const char *bot = harness_write("wire.lua",
      "bot.api.config.use(function(prev, method, params)\n"
      "  print('transformer saw ' .. method)\n"
      "  return prev(method, params)\n"
      "end)\n"
      "bot.api.sendMessage(42, 'positional', { disable_notification = true })\n"
      "bot.api.sendMessage{ chat_id = 42, text = 'table' }\n"
      "local ok, err = pcall(bot.api.sendMesage, 42, 'typo')\n"
      "print('typo: ' .. tostring(err))\n"
      "bot.api.config{ parseMode = 'HTML' }\n"
      "bot.api.sendMessage(42, '<b>default</b>')\n"
      "bot.api.sendMessage(42, tghost.fmt('👍 ', tghost.fmt.bold('fmt')))\n"
      "print('init: ' .. bot.init().username .. ' ' .. bot.init().username)\n");
  struct proc *p = proc_start(bot, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "status %d", proc_status(p));
  struct fakeapi *api = harness_api();
  CHECK(fakeapi_count_method(api, "sendMessage") == 4, "%zu sendMessage calls",
        fakeapi_count_method(api, "sendMessage"));
  CHECK(fakeapi_count_method(api, "sendMesage") == 0, "the misspelt method was sent");
  const struct fake_call *calls[4];
  size_t n = 0;
  for (size_t i = 0; i < fakeapi_call_count(api) && n < 4; i++)
    if (!strcmp(fakeapi_call(api, i)->method, "sendMessage")) calls[n++] = fakeapi_call(api, i);
  char *s;
  /* Positional: chat_id and text in the Bot API's order, then other. */
  CHECK(calls[0]->chat_id == 42, "chat_id");
  s = param(calls[0], "text");
  CHECK(!strcmp(s, "\"positional\""), "text %s", s);
  free(s);
  s = param(calls[0], "disable_notification");
  CHECK(!strcmp(s, "true"), "other: %s", s);
  free(s);
  CHECK(!fake_call_raw(calls[0], "parse_mode"), "no parse_mode before config");
  s = param(calls[1], "text");
  CHECK(!strcmp(s, "\"table\""), "table shape: %s", s);
  free(s);
  /* The default parse_mode, and a formatted string's entities instead. */
  s = param(calls[2], "parse_mode");
  CHECK(!strcmp(s, "\"HTML\""), "default parse_mode: %s", s);
  free(s);
  CHECK(!fake_call_raw(calls[3], "parse_mode"), "parse_mode with entities");
  s = param(calls[3], "entities");
  CHECK(strstr(s, "\"offset\":3") && strstr(s, "\"length\":3") && strstr(s, "\"bold\""),
        "entities %s", s);
  free(s);
  const char *out = proc_stdout(p);
  CHECK(count_in(out, "transformer saw sendMessage") == 4, "the transformer saw %zu calls",
        count_in(out, "transformer saw sendMessage"));
  CHECK(strstr(out, "did you mean sendMessage?"), "no suggestion");
  CHECK(strstr(out, "init: test_bot test_bot"), "bot.init()");
  proc_check_clean(p);
  proc_free(p);
}

/* Each method's URL is parsed once and kept, for at most 256 methods;
 * past that a call is sent from the URL text. Calls to 300 names, each
 * twice, must each reach the server under their own name, in both
 * regimes. */
TEST(method_urls_kept_and_beyond) {
  const char *bot = harness_write("many.lua",
      "for round = 1, 2 do\n"
      "  for i = 1, 300 do bot.api.raw['method' .. i]({ n = i }) end\n"
      "end\n"
      "print('sent')\n");
  struct proc *p = proc_start(bot, NULL);
  CHECK(proc_wait(p, 60000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "status %d: %s", proc_status(p), proc_stderr(p));
  struct fakeapi *api = harness_api();
  static const int names[] = {1, 2, 255, 256, 257, 258, 299, 300};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    char m[32];
    snprintf(m, sizeof m, "method%d", names[k]);
    CHECK(fakeapi_count_method(api, m) == 2, "%s reached the server %zu times",
          m, fakeapi_count_method(api, m));
  }
  /* Each call carried its own parameters to its own method. */
  size_t checked = 0;
  for (size_t i = 0; i < fakeapi_call_count(api); i++) {
    const struct fake_call *c = fakeapi_call(api, i);
    if (strncmp(c->method, "method", 6) != 0) continue;
    int64_t n = 0;
    CHECK(fake_call_int(c, "n", &n) && n == atoll(c->method + 6),
          "%s came with n = %lld", c->method, (long long)n);
    checked++;
  }
  CHECK(checked == 600, "%zu calls", checked);
  proc_check_clean(p);
  proc_free(p);
}

/* A call's result is decoded as its reply is read: what a script gets
 * for a result that is not JSON, a reply without one, and one that names
 * it twice (the last wins, as in any JSON object read into Lua). */
static const char *const raw_replies[] = {
    "{\"ok\":true,\"result\":{\"a\":tru}}",
    "{\"ok\":true}",
    "{\"result\":1,\"ok\":true,\"result\":{\"x\":[1,2,{\"y\":\"z\"}]}}",
    "{\"result\":{\"x\":1},\"ok\":false,\"error_code\":400,"
    "\"description\":\"Bad Request: no\"}",
};
static size_t raw_next;

static enum fake_fault raw_fault(void *ud, const char *method, uint64_t nth) {
  (void)ud;
  (void)nth;
  if (strcmp(method, "probe") != 0) return FAULT_NONE;
  fakeapi_set_fault_raw_body(harness_api(), raw_replies[raw_next++ % 4]);
  return FAULT_RAW_200;
}

TEST(results_read_with_the_reply) {
  const char *bot = harness_write("results.lua",
      "local function show(ok, r)\n"
      "  if ok then return 'ok ' .. tghost.json.encode(r) end\n"
      "  return r.kind .. ' ' .. r.description\n"
      "end\n"
      "for i = 1, 4 do print(i .. ': ' .. show(pcall(bot.api.raw.probe, {}))) end\n");
  raw_next = 0;
  fakeapi_set_fault_fn(harness_api(), raw_fault, NULL);
  struct proc *p = proc_start(bot, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "status %d: %s", proc_status(p), proc_stderr(p));
  const char *out = proc_stdout(p);
  CHECK(strstr(out, "1: bad_response bad response (HTTP 200): invalid JSON at byte"),
        "invalid result: %s", out);
  CHECK(strstr(out, "2: bad_response bad response (HTTP 200): \"ok\": true "
                    "without a result"), "no result: %s", out);
  CHECK(strstr(out, "3: ok {\"x\":[1,2,{\"y\":\"z\"}]}"), "repeated result: %s", out);
  CHECK(strstr(out, "4: api Bad Request: no"), "ok false with a result: %s", out);
  proc_check_clean(p);
  proc_free(p);
}
