/* Formatting and the update types in the sandbox: a transcript passes
 * only where Telegram would accept the bot's calls. The repros
 * (an unescaped '.' in MarkdownV2, an unclosed <i>, parse_mode
 * "Markdown3") fail with Telegram's own texts, as do texts and captions
 * over their limits counted in UTF-16 code units, long callback data and
 * too many buttons; tghost.fmt's entities come back from the sandbox as
 * sent and are shown; and a transcript sends every update type a bot may
 * need (inline queries and chosen results, reactions, poll votes,
 * payments, chat members, Web App data, business messages). */
#include <string.h>

#include "harness.h"

static const char *const no_env[] = {NULL};

static struct proc *play(const char *bot, const char *chat) {
  const char *args[] = {"--sandbox", "--script", chat, NULL};
  return proc_start_env(bot, args, no_env, false);
}

static void played(struct proc *p) {
  CHECK(proc_wait(p, 60000), "tghost did not exit");
  CHECK(proc_status(p) == 0, "the transcript failed (status %d)", proc_status(p));
  CHECK(!strstr(proc_stdout(p), "tghost-sandbox-token"), "the sandbox token was shown");
  proc_check_clean(p);
  proc_free(p);
}

#define TRY                                                                   \
  "local function try(f, ...)\n"                                              \
  "  local ok, e = pcall(f, ...)\n"                                           \
  "  return ok and 'sent' or type(e) == 'table' and e.description or tostring(e)\n" \
  "end\n"

TEST(telegram_refusals) {
  const char *bot = harness_write("refusals.lua", TRY
      "bot.command('repros', function(ctx)\n"
      "  ctx:reply('1 ' .. try(ctx.reply, ctx, 'Hello. World! *bold*', { parse_mode = 'MarkdownV2' }))\n"
      "  ctx:reply('2 ' .. try(ctx.reply, ctx, 'an <i>unclosed tag', { parse_mode = 'HTML' }))\n"
      "  ctx:reply('3 ' .. try(ctx.reply, ctx, 'x', { parse_mode = 'Markdown3' }))\n"
      "  ctx:reply('4 ' .. try(ctx.reply, ctx, tghost.markdown.escape('Hello. World!') .. ' *bold*', { parse_mode = 'MarkdownV2' }))\n"
      "  ctx:reply('5 ' .. try(ctx.reply, ctx, '<blink>x</blink>', { parse_mode = 'HTML' }))\n"
      "  ctx:reply('6 ' .. try(ctx.reply, ctx, 'a_b', { parse_mode = 'Markdown' }))\n"
      "end)\n"
      "bot.command('limits', function(ctx)\n"
      "  ctx:reply('text ' .. try(ctx.reply, ctx, string.rep('a', 4096)))\n"
      /* 2049 emoji: 2049 characters in Lua's eyes, 4098 UTF-16 units. */
      "  ctx:reply('emoji ' .. try(ctx.reply, ctx, string.rep('👍', 2049)))\n"
      /* Markup does not count: 4096 characters shown. */
      "  ctx:reply('markup ' .. try(ctx.reply, ctx, '<b>' .. string.rep('a', 4096) .. '</b>', { parse_mode = 'HTML' }))\n"
      "  ctx:reply('caption ' .. try(ctx.replyWithPhoto, ctx, 'https://example.com/a.png', { caption = string.rep('c', 1025) }))\n"
      "  ctx:reply('data ' .. try(ctx.reply, ctx, 'k', { reply_markup = { inline_keyboard = { { { text = 'b', callback_data = string.rep('d', 65) } } } } }))\n"
      "  local kb = tghost.InlineKeyboard()\n"
      "  for i = 1, 101 do kb:text(tostring(i), tostring(i)) if i % 8 == 0 then kb:row() end end\n"
      "  ctx:reply('buttons ' .. try(ctx.reply, ctx, 'k', { reply_markup = kb }))\n"
      "  ctx:reply('entities ' .. try(ctx.reply, ctx, 'ab', { entities = { { type = 'bold', offset = 1, length = 2 } } }))\n"
      "end)\n"
      "run(bot)\n");
  const char *chat = harness_write("refusals.chat",
      "> /repros\n"
      "< 1 Bad Request: can't parse entities: Character '.' is reserved and must "
      "be escaped with the preceding '\\'\n"
      "< 2 Bad Request: can't parse entities: Can't find end tag corresponding to "
      "start tag \"i\"\n"
      "< 3 Bad Request: unsupported parse_mode\n"
      "< 4 sent\n"
      "< 5 Bad Request: can't parse entities: Unsupported start tag \"blink\" at "
      "byte offset 0\n"
      "< 6 Bad Request: can't parse entities: Can't find end of the entity "
      "starting at byte offset 1\n"
      "> /limits\n"
      "< text sent\n"
      "< emoji Bad Request: message is too long\n"
      "< markup sent\n"
      "< caption Bad Request: message caption is too long\n"
      "< data Bad Request: BUTTON_DATA_INVALID\n"
      "< buttons Bad Request: reply markup is too long\n"
      "< entities Bad Request: can't parse entities: entity 0 (bold, offset 1, "
      "length 2) ends after the end of the text\n");
  played(play(bot, chat));
}

TEST(formatted_messages) {
  const char *bot = harness_write("fmt.lua",
      "local fmt = tghost.fmt\n"
      "local function same(a, b)\n"
      "  if #a ~= #b then return false end\n"
      "  for i, e in ipairs(a) do\n"
      "    local f = b[i]\n"
      "    if e.type ~= f.type or e.offset ~= f.offset or e.length ~= f.length or e.url ~= f.url then return false end\n"
      "  end\n"
      "  return true\n"
      "end\n"
      "bot.command('fmt', function(ctx)\n"
      "  local name = ctx.from.first_name .. ' <*_>'\n"
      "  local s = fmt('👋 ', fmt.bold(name), ', see ', fmt.link('the docs', 'https://core.telegram.org/bots/api'),\n"
      "                ' or ', fmt.italic(fmt.code('ctx:reply')), '.')\n"
      "  local m = ctx:reply(s)\n"
      "  ctx:reply('round trip: ' .. tostring(m.text == s.text and same(m.entities, s.entities)))\n"
      "  local h = ctx:reply('👋 <b>' .. tghost.html.escape(name) .. '</b>', { parse_mode = 'HTML' })\n"
      "  ctx:reply('html: ' .. h.entities[1].type .. ' ' .. h.entities[1].offset .. ' ' .. h.entities[1].length)\n"
      "  local md = ctx:reply('👋 *' .. tghost.markdown.escape(name) .. '*', { parse_mode = 'MarkdownV2' })\n"
      "  ctx:reply('markdown: ' .. md.entities[1].type .. ' ' .. md.entities[1].offset .. ' ' .. md.entities[1].length)\n"
      "end)\n"
      "bot.command('edit', function(ctx)\n"
      "  local m = ctx:reply('plain')\n"
      "  ctx.api.editMessageText{ chat_id = ctx.chat.id, message_id = m.message_id, text = fmt.spoiler('hidden') }\n"
      "end)\n"
      "run(bot)\n");
  const char *chat = harness_write("fmt.chat",
      "> /fmt\n"
      "< 👋 Alice <*_>, see the docs or ctx:reply.\n"
      "< entities: bold \"Alice <*_>\", text_link \"the docs\" "
      "(https://core.telegram.org/bots/api), italic \"ctx:reply\", code \"ctx:reply\"\n"
      "< round trip: true\n"
      "< html: bold 3 10\n"
      "< markdown: bold 3 10\n"
      "> /edit\n"
      "< bot edited #\n"
      "< entities: spoiler \"hidden\"\n");
  played(play(bot, chat));
}

TEST(every_update_type) {
  const char *bot = harness_write("updates.lua",
      "bot.on('inline_query', function(ctx)\n"
      "  ctx:answerInlineQuery({\n"
      "    { type = 'article', id = 'a1', title = 'Green tea', input_message_content = { message_text = 'green' } },\n"
      "    { type = 'article', id = 'b2', title = 'Black tea', input_message_content = { message_text = 'black' } } })\n"
      "end)\n"
      "bot.on('chosen_inline_result', function(ctx)\n"
      "  ctx.api.sendMessage(ctx.from.id, 'chose ' .. ctx.chosenInlineResult.result_id .. ' for ' .. ctx.chosenInlineResult.query)\n"
      "end)\n"
      "bot.command('poll', function(ctx) ctx:replyWithPoll('Tea?', { 'yes', 'no' }, { is_anonymous = false }) end)\n"
      "bot.on('poll_answer', function(ctx) ctx.api.sendMessage(ctx.pollAnswer.user.id, 'voted ' .. ctx.pollAnswer.option_ids[1]) end)\n"
      "bot.on('poll', function(ctx) ctx.api.sendMessage(100000001, 'poll now has ' .. ctx.poll.total_voter_count .. ' vote(s)') end)\n"
      "bot.on('message_reaction', function(ctx) ctx:reply('thanks for ' .. ctx:reactions().emojiAdded[1]) end)\n"
      "bot.command('buy', function(ctx) ctx:replyWithInvoice('Tea', 'A cup', 'tea-1', 'EUR', { { label = 'Tea', amount = 250 } }) end)\n"
      "bot.on('pre_checkout_query', function(ctx) ctx:answerPreCheckoutQuery(true) end)\n"
      "bot.on('message:successful_payment', function(ctx) ctx:reply('paid for ' .. ctx.msg.successful_payment.invoice_payload) end)\n"
      "bot.on('chat_member', function(ctx) ctx:reply(ctx.chatMember.from.first_name .. ' is now ' .. ctx.chatMember.new_chat_member.status) end)\n"
      "bot.on('chat_join_request', function(ctx) ctx:approveChatJoinRequest() end)\n"
      "bot.on('message:web_app_data', function(ctx) ctx:reply('web app: ' .. ctx.msg.web_app_data.data) end)\n"
      "bot.on('business_message', function(ctx) ctx:reply('business: ' .. ctx.msg.text) end)\n"
      "run(bot, { sink = { kind = 'sequential' }, runner = { fetch = { allowed_updates = { 'message', 'inline_query',\n"
      "  'chosen_inline_result', 'poll', 'poll_answer', 'message_reaction', 'pre_checkout_query',\n"
      "  'chat_member', 'chat_join_request', 'business_connection', 'business_message' } } } })\n");
  const char *chat = harness_write("updates.chat",
      ":inline tea\n"
      "< bot answered the inline query \"tea\" with 2 result(s): [1] Green tea   [2] Black tea\n"
      ":choose 2\n"
      "< chose b2 for tea\n"
      "> /poll\n"
      "< [poll \"Tea?\": yes / no]\n"
      ":vote 2\n"
      "< poll now has 1 vote(s)\n"
      "< voted 1\n"
      ":react 🔥\n"
      "< thanks for 🔥\n"
      "> /buy\n"
      "< [invoice \"Tea\": A cup, 2.50 EUR]\n"
      ":pay\n"
      "< paid for tea-1\n"
      ":group Tea club\n"
      ":leave\n"
      "< Alice is now left\n"
      ":join\n"
      "< Alice is now member\n"
      ":request\n"
      "< bot called approveChatJoinRequest\n"
      ":webapp {\"cups\":2}\n"
      "< web app: {\"cups\":2}\n"
      ":business hello from my shop\n"
      "< business: hello from my shop\n");
  played(play(bot, chat));
}
