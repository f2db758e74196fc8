/* The first hour: `tghost --sandbox` driven at a terminal (a pty: the
 * prompt, line editing and history) and by transcripts, the emulated Bot API's chat semantics, --trace lines,
 * the outage report, the log environment variables, and the examples'
 * transcripts that need a server of their own. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ptyrun.h"

#ifndef TGHOST_SOURCE_DIR
#error "TGHOST_SOURCE_DIR must name the source tree"
#endif

/* The sandbox's internal token (src/sandbox_api.c): never shown. */
#define SANDBOX_TOKEN_PART "tghost-sandbox-token"

static void check_pty_clean(const struct pty *p) {
  const char *out = pty_output(p);
  CHECK(!strstr(out, SANDBOX_TOKEN_PART), "the sandbox token was shown");
  CHECK(!strstr(out, "ERROR: AddressSanitizer") &&
            !strstr(out, "ERROR: LeakSanitizer") && !strstr(out, "runtime error:"),
        "a sanitizer reported something");
}

static struct pty *start_sandbox(const char *script) {
  const char *argv[] = {TGHOST_BINARY, "--sandbox", script, NULL};
  static const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
  return pty_start(argv, env);
}

#define WAIT_SHOWN(p, text, since)                                          \
  CHECK(pty_wait_for(p, text, since, 20000), "the terminal never showed %s", \
        text)

/* A person at the terminal: types a command, presses an inline button,
 * reads the answer, edits nothing by hand, leaves with Ctrl-D. */
TEST(interactive) {
  struct pty *p = start_sandbox(TGHOST_SOURCE_DIR "/examples/commands.lua");
  WAIT_SHOWN(p, ":help lists the commands", 0);
  WAIT_SHOWN(p, "running as @sandbox_bot", 0);
  size_t mark = pty_output_len(p);
  pty_type(p, "/poll\r");
  WAIT_SHOWN(p, "Alice: /poll", mark);
  WAIT_SHOWN(p, "Is Lua fun?", mark);
  WAIT_SHOWN(p, "[1] 👍 0   [2] 👎 0", mark);
  mark = pty_output_len(p);
  pty_type(p, ":click 1\r");
  WAIT_SHOWN(p, "Alice pressed [1] 👍 0", mark);
  WAIT_SHOWN(p, "bot answered the button: You voted yes", mark);
  WAIT_SHOWN(p, "[1] 👍 1   [2] 👎 0", mark);
  mark = pty_output_len(p);
  pty_type(p, ":click 9\r");
  WAIT_SHOWN(p, "sandbox: there is no button 9", mark);
  mark = pty_output_len(p);
  pty_type(p, ":help\r");
  WAIT_SHOWN(p, ":click MSG:N", mark);
  mark = pty_output_len(p);
  pty_type(p, "\x04");   /* Ctrl-D at the start of a line: end of input */
  CHECK(pty_wait_exit(p, 30000), "tghost did not exit after Ctrl-D");
  CHECK(pty_status(p) == 0, "exit status %d after Ctrl-D", pty_status(p));
  CHECK(strstr(pty_output(p) + mark, "stopped"), "no graceful stop after Ctrl-D");
  check_pty_clean(p);
  CHECK(!strstr(pty_output(p), TEST_TOKEN), "BOT_TOKEN was shown");
  pty_free(p);
}

/* The terminal as a chat: a prompt naming who types, line editing and
 * history (libedit), log lines dimmed apart from the chat, and a note for
 * an update no handler took. */
TEST(line_editing) {
  const char *script = harness_write("editing.lua",
      "bot.on('message:text', function(ctx, next)\n"
      "  if ctx.msg.text == 'skip' then return next() end\n"
      "  ctx:reply('echo: ' .. ctx.msg.text)\n"
      "end)\n"
      "run(bot)\n");
  struct pty *p = start_sandbox(script);
  WAIT_SHOWN(p, "INFO  running as @sandbox_bot", 0);
  /* The log line is dimmed (SGR 2 just before it) and reset after. */
  size_t at = (size_t)(strstr(pty_output(p), "INFO  running as @sandbox_bot") -
                       pty_output(p));
  WAIT_SHOWN(p, "\033[0m", at);
  WAIT_SHOWN(p, "Alice> ", at);
  const char *out = pty_output(p);
  const char *dim = strstr(out + (at > 40 ? at - 40 : 0), "\033[2m");
  CHECK(dim && dim < out + at, "the log line is not dimmed");
  size_t mark = pty_output_len(p);
  pty_type(p, "hello there\r");
  WAIT_SHOWN(p, "bot #2: echo: hello there", mark);
  /* Arrow up recalls the last line; Enter sends it again. */
  mark = pty_output_len(p);
  pty_type(p, "\033[A");
  WAIT_SHOWN(p, "hello there", mark);
  pty_type(p, "\r");
  WAIT_SHOWN(p, "bot #4: echo: hello there", mark);
  /* Editing inside the line: left arrow, then a character inserted. */
  mark = pty_output_len(p);
  pty_type(p, "ac\033[Db\r");
  WAIT_SHOWN(p, "bot #6: echo: abc", mark);
  /* An update that went through every handler untaken. */
  mark = pty_output_len(p);
  pty_type(p, "skip\r");
  WAIT_SHOWN(p, "(no handler took this message: update 4 ended unhandled)", mark);
  /* The prompt follows :user and :group. */
  mark = pty_output_len(p);
  pty_type(p, ":user Bob\r");
  WAIT_SHOWN(p, "Bob> ", mark);
  mark = pty_output_len(p);
  pty_type(p, ":group Lua fans\r");
  WAIT_SHOWN(p, "[Lua fans] Bob> ", mark);
  pty_type(p, "\x04");
  CHECK(pty_wait_exit(p, 30000), "tghost did not exit after Ctrl-D");
  CHECK(pty_status(p) == 0, "exit status %d after Ctrl-D", pty_status(p));
  check_pty_clean(p);
  pty_free(p);
}

/* Ctrl-C stops the bot gracefully, as SIGINT does outside the sandbox. */
TEST(ctrl_c) {
  struct pty *p = start_sandbox(TGHOST_SOURCE_DIR "/examples/echo.lua");
  WAIT_SHOWN(p, "running as @sandbox_bot", 0);
  size_t mark = pty_output_len(p);
  pty_type(p, "hello there\r");
  WAIT_SHOWN(p, "bot #2: hello there", mark);
  pty_type(p, "\x03");
  CHECK(pty_wait_exit(p, 30000), "tghost did not exit after Ctrl-C");
  CHECK(pty_status(p) == 0, "exit status %d after Ctrl-C", pty_status(p));
  CHECK(strstr(pty_output(p), "received SIGINT: stopping gracefully"),
        "Ctrl-C was not a graceful stop");
  check_pty_clean(p);
  pty_free(p);
}

/* Editing the script while chatting: the next message gets the new code. */
TEST(hot_reload) {
  const char *script = harness_write("reloading.lua",
      "bot.on('message:text', function(ctx) ctx:reply('v1: ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  struct pty *p = start_sandbox(script);
  WAIT_SHOWN(p, "running as @sandbox_bot", 0);
  size_t mark = pty_output_len(p);
  pty_type(p, "first\r");
  WAIT_SHOWN(p, "v1: first", mark);
  mark = pty_output_len(p);
  harness_write("reloading.lua",
      "bot.on('message:text', function(ctx) ctx:reply('v2: ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  WAIT_SHOWN(p, "generation 2 loaded", mark);
  mark = pty_output_len(p);
  pty_type(p, "second\r");
  WAIT_SHOWN(p, "v2: second", mark);
  pty_type(p, ":quit\r");
  CHECK(pty_wait_exit(p, 30000), "tghost did not exit after :quit");
  CHECK(pty_status(p) == 0, "exit status %d after :quit", pty_status(p));
  check_pty_clean(p);
  pty_free(p);
}

/* --- transcripts ------------------------------------------------------- */

static struct proc *play(const char *bot, const char *chat,
                         const char *const *env) {
  const char *args[] = {"--sandbox", "--script", chat, NULL};
  static const char *const none[] = {NULL};
  return proc_start_env(bot, args, env ? env : none, false);
}

static void check_no_sandbox_token(const struct proc *p) {
  CHECK(!strstr(proc_stdout(p), SANDBOX_TOKEN_PART) &&
            !strstr(proc_stderr(p), SANDBOX_TOKEN_PART),
        "the sandbox token appears in the output");
}

/* An expectation that never comes fails the run, naming its line and
 * showing what the bot said instead. */
TEST(script_failure) {
  const char *bot = harness_write("echo.lua",
      "bot.on('message:text', function(ctx) ctx:reply('echo: ' .. ctx.msg.text) end)\n"
      "run(bot)\n");
  const char *chat = harness_write("fails.chat",
      "# the second expectation is wrong\n"
      "> hello\n"
      "< echo: hello\n"
      ":timeout 1\n"
      "> again\n"
      "< something else\n"
      "> never sent\n");
  struct proc *p = play(bot, chat, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status %d, not 1", proc_status(p));
  CHECK(strstr(proc_stderr(p), "fails.chat:6: the bot did not say \"something "
                               "else\" within 1 s"),
        "the failure does not name the line");
  CHECK(strstr(proc_stderr(p), "bot #4: echo: again"),
        "the failure does not show what the bot said");
  CHECK(!strstr(proc_stdout(p), "never sent"), "the script went on after a failure");
  proc_check_clean(p);
  check_no_sandbox_token(p);

  /* A malformed transcript is refused before anything runs. */
  const char *bad = harness_write("bad.chat", "> hi\nhello\n");
  p = play(bot, bad, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status %d for a bad transcript", proc_status(p));
  CHECK(strstr(proc_stderr(p), "bad.chat:2: a line starts with '>'"),
        "no file:line for a bad transcript line");
  const char *unset = harness_write("unset.chat", "> ${TGHOST_TEST_UNSET_VAR}\n");
  p = play(bot, unset, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1 &&
            strstr(proc_stderr(p), "unset.chat:1: ${TGHOST_TEST_UNSET_VAR} is not set"),
        "an unset variable is not reported (status %d)", proc_status(p));

  /* A bot that never starts: the failure says why there is no answer. */
  const char *idle = harness_write("idle.lua",
      "bot.on('message', function(ctx) ctx:reply('x') end)\n"
      "tghost.sleep(30)\n");
  const char *one = harness_write("one.chat", ":timeout 1\n> hi\n< x\n");
  p = play(idle, one, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "does the script call run(bot)?"),
        "no hint about run(bot)");
}

/* Arguments a transcript (or a person) can get wrong are refused with
 * their usage, not passed on: NaN and infinities read as numbers by strtod
 * made the emulator send the bot invalid JSON (:location) or wait for
 * ever (:timeout). And an empty file is sent and downloaded without a
 * leak (libevent's file segment of 0 bytes was never freed). */
/* A transcript's first lines wait for the bot's first getUpdates: before
 * it the bot's allowed_updates are not known, and a chat_member update
 * (which Telegram sends only when they name it) was dropped. */
TEST(first_lines_wait_for_the_first_poll) {
  const char *bot = harness_write("members.lua",
      "bot.on('chat_member', function(ctx)\n"
      "  local m = ctx.chatMember.new_chat_member\n"
      "  ctx.api.sendMessage{ chat_id = ctx.chat.id,\n"
      "    text = m.user.first_name .. ' is now ' .. m.status }\n"
      "end)\n"
      "run(bot)\n");
  const char *chat = harness_write("members.chat",
      ":group friends\n"
      ":user Bob\n"
      ":leave\n"
      "< Bob is now left\n");
  struct proc *p = play(bot, chat, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "exit status %d: %s", proc_status(p),
        proc_stderr(p));
  proc_check_clean(p);
}

TEST(bad_arguments) {
  struct buf script = BUF_INIT;
  buf_printf(&script,
      "bot.on('message:location', function(ctx)\n"
      "  ctx:reply('at ' .. ctx.msg.location.latitude .. ' ' .. ctx.msg.location.longitude)\n"
      "end)\n"
      "bot.on('message:photo', function(ctx)\n"
      "  local path, size = tghost.download(ctx:getFile(), '%s/got.jpg')\n"
      "  ctx:reply('downloaded ' .. tostring(size))\n"
      "end)\n"
      "run(bot)\n", harness_tmpdir());
  const char *bot = harness_write("where.lua", script.data);
  buf_free(&script);
  static const char *const bad[][2] = {
      {":location nan inf\n< at 0 0\n", "usage: :location"},
      {":location 91 0\n< at 0 0\n", "usage: :location"},
      {":location 1 -inf\n< at 0 0\n", "usage: :location"},
      {":timeout nan\n:location 1 2\n< at 1.0 2.0\n", "usage: :timeout"},
      {":sleep inf\n< at 0 0\n", "usage: :sleep"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *chat = harness_write("bad.chat", bad[i][0]);
    struct proc *p = play(bot, chat, NULL);
    CHECK(proc_wait(p, 30000), "tghost did not exit");
    CHECK(proc_status(p) == 1 && strstr(proc_stderr(p), bad[i][1]),
          "case %zu: status %d, no '%s'", i, proc_status(p), bad[i][1]);
    CHECK(!strstr(proc_stderr(p), "invalid JSON"), "case %zu: invalid JSON", i);
  }
  harness_write("empty.jpg", "");
  const char *chat = harness_write("good.chat",
      ":location -33.8568 151.2153\n"
      "< at -33.8568 151.2153\n"
      ":photo empty.jpg\n"
      "< downloaded 0\n");
  struct proc *p = play(bot, chat, NULL);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the good transcript: status %d", proc_status(p));
  proc_check_clean(p);
}

/* A transcript passes only when the bot ran and said what it expects:
 * one whose bot never starts, one with nothing to check, and one the bot
 * stops in the middle of all fail, saying why. */
TEST(script_cannot_pass_by_accident) {
  static const char *const none[] = {NULL};
  const char *chat = harness_write("hi.chat", "> hi\n< x\n");
  static const struct {
    const char *name, *bot, *says;
  } never_started[] = {
      {"norun.lua", "bot.on('message', function(ctx) ctx:reply('x') end)\n",
       "norun.lua never starts the bot: it does not call run(bot) or "
       "bot.start(), so the transcript "},
      {"stopped.lua",
       "bot.on('message', function(ctx) ctx:reply('x') end)\n"
       "local handle = run(bot)\nhandle:stop()\n",
       "stopped.lua never starts the bot: it stops the bot before it starts "
       "(its run() handle's stop() at the top level)"},
  };
  for (size_t i = 0; i < 2; i++) {
    const char *bot = harness_write(never_started[i].name, never_started[i].bot);
    struct proc *p = play(bot, chat, none);
    CHECK(proc_wait(p, 30000), "tghost did not exit");
    CHECK(proc_status(p) == 1, "%s: exit status %d, not 1", never_started[i].name,
          proc_status(p));
    CHECK(strstr(proc_stderr(p), never_started[i].says), "%s: no reason given",
          never_started[i].name);
    proc_check_clean(p);
  }

  const char *bot = harness_write("echo.lua",
      "bot.on('message:text', function(ctx)\n"
      "  ctx:reply('echo: ' .. ctx.msg.text)\n"
      "  if ctx.msg.text == 'bye' then os.exit(0) end\n"
      "end)\n"
      "run(bot)\n");
  const char *nothing = harness_write("nothing.chat",
      "# says things, checks nothing\n> hello\n:sleep 0.1\n> again\n");
  struct proc *p = play(bot, nothing, none);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "a transcript without expectations: status %d",
        proc_status(p));
  CHECK(strstr(proc_stderr(p), "nothing.chat has no expectation (a line "
                               "'< text' the bot must say)"),
        "no reason for refusing a transcript without expectations");
  CHECK(!strstr(proc_stdout(p), "Alice: hello"), "it was played anyway");

  /* The bot stops (os.exit) while expectations are still ahead. */
  const char *cut = harness_write("cut.chat",
      "> hi\n< echo: hi\n> bye\n< echo: bye\n:sleep 0.3\n> more\n"
      "< echo: more\n");
  p = play(bot, cut, none);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1, "a transcript the bot left: status %d",
        proc_status(p));
  CHECK(strstr(proc_stderr(p), "cut.chat:7: the bot stopped before this "
                               "expectation (\"echo: more\") was reached"),
        "the unreached expectation is not named");
  proc_check_clean(p);
  check_no_sandbox_token(p);

  /* :quit ends a transcript; expectations after it were never checked. */
  const char *quit = harness_write("quit.chat",
      "> hi\n< echo: hi\n:quit\n< echo: later\n");
  p = play(bot, quit, none);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 1 &&
            strstr(proc_stderr(p), "quit.chat:4: the bot stopped before"),
        "expectations after :quit passed unchecked (status %d)",
        proc_status(p));
}

/* io.read in a handler would stop the whole bot until a line comes (and
 * in the sandbox, take the next chat line): it raises instead, saying how
 * to ask the user. A plain script's top level still reads stdin. */
TEST(io_read_refused) {
  const char *file = harness_write("data.txt", "from a file\n");
  struct buf code = BUF_INIT;
  buf_printf(&code,
      "bot.catch(function(err) err.ctx:reply('caught: ' .. tostring(err.error)) end)\n"
      "bot.command('read', function(ctx) ctx:reply('got ' .. tostring(io.read())) end)\n"
      "bot.command('lines', function(ctx) for l in io.stdin:lines() do end end)\n"
      "bot.command('file', function(ctx)\n"
      "  local f = assert(io.open('%s', 'r'))\n"
      "  ctx:reply('file says ' .. f:read('l'))\n"
      "  f:close()\n"
      "end)\n"
      "run(bot)\n", file);
  const char *bot = harness_write("reader.lua", code.data);
  buf_free(&code);
  const char *chat = harness_write("reader.chat",
      "> /read\n"
      "< caught: ${TGHOST_TEST_DIR}/reader.lua:2: io.read: a handler cannot read the terminal: the whole bot would stop "
      "while it waits for a line; ask the user in the chat with ctx:wait()\n"
      "> /lines\n"
      "< io.lines: a handler cannot read the terminal\n"
      "> /file\n"
      "< file says from a file\n");
  struct buf dir = BUF_INIT;
  buf_printf(&dir, "TGHOST_TEST_DIR=%s", harness_tmpdir());
  const char *env[] = {dir.data, NULL};
  struct proc *p = play(bot, chat, env);
  CHECK(proc_wait(p, 30000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the transcript failed (status %d)", proc_status(p));
  proc_check_clean(p);
  buf_free(&dir);

  /* A plain script's top level reads stdin as Lua does. */
  const char *plain = harness_write("plain.lua", "print('read:', io.read())\n");
  static const char *const none[] = {NULL};
  p = proc_start_env(plain, NULL, none, false);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(proc_status(p) == 0 && strstr(proc_stdout(p), "read:\tnil"),
        "the top level could not read stdin (status %d)", proc_status(p));
}

/* The emulator keeps a real chat's state and Telegram's rules: message ids
 * per chat, entities, edits ("not modified"), deletions, callback answers
 * (and their expiry), limits, unknown methods, groups and several users. */
TEST(chat_semantics) {
  const char *bot = harness_write("semantics.lua",
      "local function try(f, ...) local ok, e = pcall(f, ...) return ok and 'ok' or type(e) == 'table' and e.description or tostring(e) end\n"
      "bot.command('ent', function(ctx)\n"
      "  local e = ctx.msg.entities[1]\n"
      "  ctx:reply(string.format('%s %d %d', e.type, e.offset, e.length))\n"
      "end)\n"
      "bot.hears('^emoji', function(ctx)\n"
      "  local e = ctx.msg.entities and ctx.msg.entities[1]\n"
      "  ctx:reply(e and string.format('%s at %d', e.type, e.offset) or 'none')\n"
      "end)\n"
      "bot.command('edit', function(ctx)\n"
      "  local m = ctx:reply('first', { reply_markup = tghost.InlineKeyboard():text('A', 'a') })\n"
      "  ctx.api.editMessageText{ chat_id = ctx.chat.id, message_id = m.message_id, text = 'second' }\n"
      "  ctx:reply('again: ' .. try(ctx.api.editMessageText, { chat_id = ctx.chat.id, message_id = m.message_id, text = 'second' }))\n"
      "  ctx:reply('user: ' .. try(ctx.api.editMessageText, { chat_id = ctx.chat.id, message_id = ctx.msg.message_id, text = 'x' }))\n"
      "  ctx.api.deleteMessage{ chat_id = ctx.chat.id, message_id = m.message_id }\n"
      "  ctx:reply('gone: ' .. try(ctx.api.deleteMessage, { chat_id = ctx.chat.id, message_id = m.message_id }))\n"
      "end)\n"
      "bot.command('limits', function(ctx)\n"
      "  ctx:reply('long: ' .. try(ctx.reply, ctx, string.rep('x', 4097)))\n"
      "  ctx:reply('empty: ' .. try(ctx.reply, ctx, ''))\n"
      "  ctx:reply('data: ' .. try(ctx.reply, ctx, 'k', { reply_markup = { inline_keyboard = { { { text = 'b', callback_data = string.rep('d', 65) } } } } }))\n"
      "  ctx:reply('chat: ' .. try(ctx.api.sendMessage, { chat_id = 12345, text = 'x' }))\n"
      "  ctx:reply('typo: ' .. try(ctx.api.sendMesage, { chat_id = ctx.chat.id, text = 'x' }))\n"
      "  ctx:reply('method: ' .. try(ctx.api.raw.sendMesage, { chat_id = ctx.chat.id, text = 'x' }))\n"
      "  ctx:sendChatAction('upload_photo')\n"
      "end)\n"
      "bot.command('buttons', function(ctx)\n"
      "  ctx:reply('pick', { reply_markup = tghost.InlineKeyboard():text('Answered', 'yes'):text('Silent', 'no') })\n"
      "end)\n"
      "bot.callbackQuery('yes', function(ctx) ctx:answerCallbackQuery{ text = 'done', show_alert = true } end)\n"
      "bot.callbackQuery('no', function(ctx) end)\n"
      "bot.command('where', function(ctx)\n"
      "  ctx:reply(string.format('%s %s %d msg %d from %s', ctx.chat.type, ctx.chat.id < 0 and 'negative' or 'positive', ctx.chat.id, ctx.msg.message_id, ctx.from.first_name))\n"
      "end)\n"
      "bot.on('my_chat_member', function(ctx) ctx:reply('added by ' .. ctx.from.first_name) end)\n"
      "bot.on('edited_message', function(ctx) ctx:reply('you edited: ' .. ctx.editedMessage.text) end)\n"
      "bot.on('message:text', function(ctx) if ctx.msg.reply_to_message then ctx:reply('reply to ' .. ctx.msg.reply_to_message.text) end end)\n"
      "run(bot)\n");
  const char *chat = harness_write("semantics.chat",
      "> /ent now\n"
      "< bot_command 0 4\n"
      "> emoji 🙂 #tag\n"
      "< hashtag at 9\n"
      "> /edit\n"
      "< bot #6: first\n"
      "< [1] A\n"
      "< bot edited #6: second\n"
      "< again: Bad Request: message is not modified\n"
      "< user: Bad Request: message can't be edited\n"
      "< bot deleted #6\n"
      "< gone: Bad Request: message to delete not found\n"
      "> /limits\n"
      "< long: Bad Request: message is too long\n"
      "< empty: Bad Request: message text is empty\n"
      "< data: Bad Request: BUTTON_DATA_INVALID\n"
      "< chat: Bad Request: chat not found\n"
      "< no method sendMesage (did you mean sendMessage?)\n"
      "< bot called sendMesage: Telegram has no such method (404 Not Found)\n"
      "< method: Not Found\n"
      "< bot is sending a photo...\n"
      "> /buttons\n"
      "< [1] Answered   [2] Silent\n"
      ":click 1\n"
      "< bot shows an alert: done\n"
      ":click 2\n"
      "< (the bot did not answer the press of \"Silent\" within 1 s\n"
      "> /where\n"
      "< private positive 100000001 msg\n"
      ":edit /where edited\n"
      "< you edited: /where edited\n"
      ":reply 1 replying\n"
      "< reply to /ent now\n"
      ":user Bob\n"
      "> /where\n"
      "< private positive 100000002 msg 1 from Bob\n"
      ":group Lua fans\n"
      "< added by Bob\n"
      "> /where\n"
      "< group negative\n"
      ":user Alice\n"
      "> /where\n"
      "< from Alice\n");
  /* Button presses expire after 1 s instead of Telegram's 15. */
  static const char *const env[] = {"TGHOST_SANDBOX_ANSWER_TIMEOUT=1", NULL};
  struct proc *p = play(bot, chat, env);
  CHECK(proc_wait(p, 60000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the transcript failed (status %d)", proc_status(p));
  CHECK(strstr(proc_stdout(p), "Alice joined Lua fans"), "no join message");
  proc_check_clean(p);
  check_no_sandbox_token(p);
}

/* examples/http.lua's transcript, with the fake server's plain HTTP
 * endpoint as the web to talk to. */
TEST(example_http) {
  struct buf env = BUF_INIT;
  buf_printf(&env, "HTTP_EXAMPLE_URL=%s", fakeapi_url(harness_api()));
  const char *envv[] = {env.data, NULL};
  struct proc *p = play(TGHOST_SOURCE_DIR "/examples/http.lua",
                        TGHOST_SOURCE_DIR "/examples/http.chat", envv);
  CHECK(proc_wait(p, 60000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the transcript failed (status %d)", proc_status(p));
  CHECK(fakeapi_http_requests(harness_api()) >= 4, "only %zu HTTP requests",
        fakeapi_http_requests(harness_api()));
  proc_check_clean(p);
  check_no_sandbox_token(p);
  buf_free(&env);
}

/* --- --trace and logging ----------------------------------------------- */

static const char trace_bot[] =
    "bot.on('message:text', function(ctx)\n"
    "  ctx:reply('got ' .. ctx.msg.text)\n"
    "  pcall(ctx.api.editMessageText, { chat_id = ctx.chat.id, message_id = 1, text = 'x' })\n"
    "end)\n"
    "run(bot)\n";

/* Runs trace_bot against the fake server for one update, then stops. */
static struct proc *trace_run(const char *const *args, const char *const *env) {
  struct fakeapi *api = harness_api();
  const char *script = harness_write("trace.lua", trace_bot);
  struct proc *p = proc_start_env(script, args, env, true);
  fakeapi_push_text(api, 42, 7, "hello trace");
  wait_calls("editMessageText", 1, 20000);
  proc_stop_cleanly(p);
  return p;
}

TEST(trace) {
  static const char *const args[] = {"--trace", NULL};
  static const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN, NULL};
  struct proc *p = trace_run(args, env);
  const char *err = proc_stderr(p);
  CHECK(strstr(err, "TRACE [gen 1] [update 1000] update message chat 42 from "
                    "User: \"hello trace\""),
        "no trace line for the update");
  CHECK(strstr(err, "TRACE [gen 1] [update 1000] call sendMessage chat 42: ok ("),
        "no trace line for sendMessage");
  CHECK(strstr(err, "TRACE [gen 1] [update 1000] call editMessageText chat 42: ok ("),
        "no trace line for editMessageText");
  CHECK(!strstr(err, "DEBUG"), "--trace turned on debug lines");
  /* proc_stop_cleanly checked that the token appears nowhere. */
}

TEST(trace_json) {
  /* JSON through the environment, the trace through --log-level debug. */
  static const char *const args[] = {"--log-level", "debug", NULL};
  static const char *const env[] = {"BOT_TOKEN=" TEST_TOKEN,
                                    "TGHOST_LOG_FORMAT=json", NULL};
  struct proc *p = trace_run(args, env);
  const char *err = proc_stderr(p);
  CHECK(strstr(err, "\"level\":\"trace\",\"gen\":1,\"update_id\":1000,"
                    "\"event\":\"update\",\"type\":\"message\",\"chat\":42,"
                    "\"from\":7,\"text\":\"hello trace\""),
        "no JSON trace line for the update");
  CHECK(strstr(err, "\"event\":\"call\",\"method\":\"sendMessage\",\"chat\":\"42\""),
        "no JSON trace line for sendMessage");
  CHECK(strstr(err, "\"status\":\"ok\""), "no status in the JSON call line");
  CHECK(!strstr(err, "TRACE "), "text lines in a JSON log");
}

TEST(log_env) {
  const char *script = harness_write("logs.lua",
      "tghost.log.info('an info line')\ntghost.log.warn('a warning')\n");
  static const char *const warn_env[] = {"TGHOST_LOG_LEVEL=warn", NULL};
  struct proc *p = proc_start_env(script, NULL, warn_env, false);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "exit status %d", proc_status(p));
  CHECK(strstr(proc_stderr(p), "a warning") && !strstr(proc_stderr(p), "an info line"),
        "TGHOST_LOG_LEVEL=warn was not applied");
  /* The command line wins over the environment. */
  static const char *const args[] = {"--log-level", "info", NULL};
  p = proc_start_env(script, args, warn_env, false);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(strstr(proc_stderr(p), "an info line"), "--log-level did not override");
  static const char *const bad_env[] = {"TGHOST_LOG_LEVEL=loud", NULL};
  p = proc_start_env(script, NULL, bad_env, false);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(proc_status(p) == 2 &&
            strstr(proc_stderr(p), "TGHOST_LOG_LEVEL must be debug, info, warn or error"),
        "a bad TGHOST_LOG_LEVEL was not refused (status %d)", proc_status(p));
  /* Options after the script work as well as before it: the harness puts
   * its "script" last, so this runs `tghost logs.lua --check`. */
  const char *script_first[] = {script, NULL};
  static const char *const none[] = {NULL};
  p = proc_start_env("--check", script_first, none, false);
  CHECK(proc_wait(p, 20000), "tghost did not exit");
  CHECK(proc_status(p) == 0 && strstr(proc_stdout(p), "loads without errors"),
        "an option after the script was not taken (status %d)", proc_status(p));
}

/* While getUpdates cannot get through, an INFO line repeats with backoff
 * and says what to check. */
static uint64_t outage_until;

static enum fake_fault outage(void *ud, const char *method, uint64_t nth) {
  return strcmp(method, "getUpdates") == 0 && harness_now_ms() < outage_until
             ? FAULT_RESET : FAULT_NONE;
}

static bool two_reports(void *ud) {
  const char *err = proc_stderr(ud), *first = strstr(err, "still failing after");
  return first && strstr(first + 1, "still failing after");
}

TEST(outage_report) {
  struct fakeapi *api = harness_api();
  outage_until = harness_now_ms() + 4500;
  fakeapi_set_fault_fn(api, outage, NULL);
  const char *script = harness_write("outage.lua",
      "bot.on('message', function(ctx) ctx:reply('ok') end)\n"
      "run(bot, { runner = { retryInterval = 200 } })\n");
  struct proc *p = proc_start(script, NULL);
  CHECK(run_until(two_reports, p, 30000), "no repeated outage report");
  const char *line = strstr(proc_stderr(p), "INFO  getUpdates still failing after");
  CHECK(line, "the report is not an INFO line");
  CHECK(strstr(line, "attempts since ") && strstr(line, "giving up at ") &&
            strstr(line, "(maxRetryTime)") &&
            strstr(line, "--api-root (http://127.0.0.1:") &&
            strstr(line, "https_proxy, HTTPS_PROXY, ALL_PROXY, NO_PROXY"),
        "the report lacks attempts, times or the hint");
  fakeapi_push_text(api, 5, 5, "after the outage");
  wait_calls("sendMessage", 1, 20000);
  CHECK(strstr(proc_stderr(p), "getUpdates works again after"),
        "the end of the outage is not reported");
  proc_stop_cleanly(p);
}
