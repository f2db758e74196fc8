-- The context: getters on every update type, the shortcut methods and the
-- parameters they fill in, and clear errors where a shortcut has no target.
local t = require("lib.apitest")
local fx = require("fixtures.updates")
local Context = require("tghost.context")

local bot, calls = t.fake_bot()

local function ctx_of(name) return Context.new(fx.get(name), bot) end

-- Calls fn(ctx) and returns the one API call it made.
local function one_call(name, fn)
  for i = #calls, 1, -1 do calls[i] = nil end
  fn(ctx_of(name))
  t.eq(#calls, 1, "number of API calls")
  return calls[1].method, calls[1].params
end

local ADA = 111222333
local GROUP = -1001234567890
local CHANNEL = -1009876543210

t.test("update getters", function()
  for field in pairs(fx.types) do
    local ctx = ctx_of(field)
    local camel = field:gsub("_(%a)", string.upper)
    t.truthy(ctx[camel] ~= nil and ctx[camel] == ctx.update[field],
             "ctx." .. camel .. " on a " .. field .. " update")
  end
  local ctx = ctx_of("message")
  t.eq(ctx.editedMessage, nil)
  t.eq(ctx.callbackQuery, nil)
  t.eq(ctx.api, bot.api)
  t.eq(ctx.me.username, "test_bot")
  t.eq(ctx.match, nil)
end)

t.test("ctx.msg", function()
  t.eq(ctx_of("message").msg.message_id, 501)
  t.eq(ctx_of("edited_message").msg.edit_date, 1717000060)
  t.eq(ctx_of("channel_post").msg.message_id, 77)
  t.eq(ctx_of("edited_channel_post").msg.edit_date, 1717000200)
  t.eq(ctx_of("business_message").msg.message_id, 9001)
  t.eq(ctx_of("callback_query").msg.text, "Agree?")
  t.eq(ctx_of("inline_callback").msg, nil)
  t.eq(ctx_of("inline_query").msg, nil)
end)

t.test("ctx.chat and ctx.from on every update type", function()
  local want = {
    message = { ADA, ADA }, edited_message = { ADA, ADA },
    channel_post = { CHANNEL, nil }, edited_channel_post = { CHANNEL, nil },
    business_connection = { nil, ADA }, business_message = { ADA, ADA },
    edited_business_message = { ADA, ADA }, deleted_business_messages = { ADA, nil },
    message_reaction = { GROUP, ADA }, message_reaction_count = { CHANNEL, nil },
    inline_query = { nil, ADA }, chosen_inline_result = { nil, ADA },
    callback_query = { ADA, ADA }, shipping_query = { nil, ADA },
    pre_checkout_query = { nil, ADA }, purchased_paid_media = { nil, ADA },
    poll = { nil, nil }, poll_answer = { nil, ADA },
    my_chat_member = { GROUP, ADA }, chat_member = { GROUP, ADA },
    chat_join_request = { GROUP, ADA }, chat_boost = { CHANNEL, ADA },
    removed_chat_boost = { CHANNEL, ADA },
  }
  for name, w in pairs(want) do
    local ctx = ctx_of(name)
    t.eq(ctx.chat and ctx.chat.id, w[1], name .. ": ctx.chat.id")
    t.eq(ctx.from and ctx.from.id, w[2], name .. ": ctx.from.id")
  end
  -- ids stay integers
  t.eq(math.type(ctx_of("my_chat_member").chat.id), "integer")
  t.eq(tostring(ctx_of("my_chat_member").chat.id), "-1001234567890")
end)

t.test("msgId, chatId, inlineMessageId, businessConnectionId, senderChat", function()
  t.eq(ctx_of("message_reaction").msgId, 640)
  t.eq(ctx_of("callback_query").msgId, 502)
  t.eq(ctx_of("business_connection").chatId, ADA)
  t.eq(ctx_of("inline_callback").inlineMessageId, "AAEAAQ-inline-2")
  t.eq(ctx_of("chosen_inline_result").inlineMessageId, "AAEAAQ-inline-1")
  t.eq(ctx_of("business_message").businessConnectionId, "bc-123")
  t.eq(ctx_of("business_connection").businessConnectionId, "bc-123")
  t.eq(ctx_of("deleted_business_messages").businessConnectionId, "bc-123")
  t.eq(ctx_of("channel_post").senderChat.id, CHANNEL)
  t.eq(ctx_of("message").businessConnectionId, nil)
end)

t.test("scripts may add their own fields", function()
  local ctx = ctx_of("message")
  ctx.session = { n = 1 }
  ctx.match = "m"
  t.eq(ctx.session.n, 1)
  t.eq(ctx.match, "m")
end)

t.test("ctx:reply", function()
  local m, p = one_call("message", function(ctx) ctx:reply("hi") end)
  t.eq(m, "sendMessage")
  t.eq(p, { chat_id = ADA, text = "hi" })
  m, p = one_call("callback_query", function(ctx)
    ctx:reply("*bold*", { parse_mode = "MarkdownV2", reply_parameters = { message_id = 502 } })
  end)
  t.eq(p, { chat_id = ADA, text = "*bold*", parse_mode = "MarkdownV2",
            reply_parameters = { message_id = 502 } })
  -- a business message is answered through its connection
  m, p = one_call("business_message", function(ctx) ctx:reply("open 9-5") end)
  t.eq(p, { chat_id = ADA, text = "open 9-5", business_connection_id = "bc-123" })
  -- the call's result is returned
  local b2 = t.fake_bot(function(method, params) return { message_id = 9, text = params.text } end)
  local sent = Context.new(fx.get("message"), b2):reply("x")
  t.eq(sent, { message_id = 9, text = "x" })
end)

t.test("ctx:replyWith...: the file goes as the method's parameter", function()
  local file = { some = "InputFile" }   -- passed through untouched
  local cases = {
    { "replyWithPhoto", "sendPhoto", "photo" },
    { "replyWithDocument", "sendDocument", "document" },
    { "replyWithAudio", "sendAudio", "audio" },
    { "replyWithVideo", "sendVideo", "video" },
    { "replyWithSticker", "sendSticker", "sticker" },
    { "replyWithAnimation", "sendAnimation", "animation" },
    { "replyWithVoice", "sendVoice", "voice" },
    { "replyWithVideoNote", "sendVideoNote", "video_note" },
  }
  for _, c in ipairs(cases) do
    local m, p = one_call("text", function(ctx) ctx[c[1]](ctx, file, { caption = "c" }) end)
    t.eq(m, c[2], c[1])
    t.eq(p, { chat_id = GROUP, [c[3]] = file, caption = "c" }, c[1])
    t.truthy(p[c[3]] == file, c[1] .. " passes the same object")
    m, p = one_call("text", function(ctx) ctx[c[1]](ctx, "file_id_123") end)
    t.eq(p, { chat_id = GROUP, [c[3]] = "file_id_123" }, c[1] .. " by file_id")
  end
  local m, p = one_call("message", function(ctx) ctx:replyWithLocation(51.5, -0.12) end)
  t.eq({ m, p }, { "sendLocation", { chat_id = ADA, latitude = 51.5, longitude = -0.12 } })
  m, p = one_call("message", function(ctx) ctx:replyWithDice() end)
  t.eq({ m, p }, { "sendDice", { chat_id = ADA } })
end)

t.test("ctx:forwardMessage and ctx:copyMessage", function()
  local m, p = one_call("text", function(ctx) ctx:forwardMessage(ADA) end)
  t.eq({ m, p }, { "forwardMessage", { chat_id = ADA, from_chat_id = GROUP, message_id = 601 } })
  m, p = one_call("channel_post", function(ctx) ctx:copyMessage(ADA, { caption = "via bot" }) end)
  t.eq({ m, p }, { "copyMessage", { chat_id = ADA, from_chat_id = CHANNEL,
                                     message_id = 77, caption = "via bot" } })
end)

t.test("ctx:answerCallbackQuery", function()
  local m, p = one_call("callback_query", function(ctx) ctx:answerCallbackQuery() end)
  t.eq({ m, p }, { "answerCallbackQuery", { callback_query_id = "9876543210987654" } })
  m, p = one_call("callback_query", function(ctx) ctx:answerCallbackQuery("Saved!") end)
  t.eq(p, { callback_query_id = "9876543210987654", text = "Saved!" })
  m, p = one_call("inline_callback", function(ctx)
    ctx:answerCallbackQuery({ text = "Nope", show_alert = true })
  end)
  t.eq(p, { callback_query_id = "1234567890123", text = "Nope", show_alert = true })
end)

t.test("ctx:answerInlineQuery", function()
  local results = { { type = "article", id = "1", title = "T",
                      input_message_content = { message_text = "x" } } }
  local m, p = one_call("inline_query", function(ctx)
    ctx:answerInlineQuery(results, { cache_time = 0 })
  end)
  t.eq({ m, p }, { "answerInlineQuery", { inline_query_id = "4394759203958",
                                          results = results, cache_time = 0 } })
end)

t.test("ctx:editMessageText: the callback's message, or its inline message", function()
  local m, p = one_call("callback_query", function(ctx) ctx:editMessageText("Voted") end)
  t.eq({ m, p }, { "editMessageText", { chat_id = ADA, message_id = 502, text = "Voted" } })
  m, p = one_call("inline_callback", function(ctx)
    ctx:editMessageText("Page 2", { parse_mode = "HTML" })
  end)
  t.eq(p, { inline_message_id = "AAEAAQ-inline-2", text = "Page 2", parse_mode = "HTML" })
  m, p = one_call("chosen_inline_result", function(ctx) ctx:editMessageText("done") end)
  t.eq(p, { inline_message_id = "AAEAAQ-inline-1", text = "done" })
  m, p = one_call("message", function(ctx) ctx:editMessageText("own message") end)
  t.eq(p, { chat_id = ADA, message_id = 501, text = "own message" })
end)

t.test("ctx:editMessageReplyMarkup", function()
  local kb = tghost.InlineKeyboard():text("Undo", "undo")
  local m, p = one_call("callback_query", function(ctx) ctx:editMessageReplyMarkup({ reply_markup = kb }) end)
  t.eq({ m, p }, { "editMessageReplyMarkup", { chat_id = ADA, message_id = 502, reply_markup = kb } })
  m, p = one_call("callback_query", function(ctx) ctx:editMessageReplyMarkup(kb) end)
  t.eq(p, { chat_id = ADA, message_id = 502, reply_markup = kb })
  m, p = one_call("inline_callback", function(ctx) ctx:editMessageReplyMarkup() end)
  t.eq(p, { inline_message_id = "AAEAAQ-inline-2" })
end)

t.test("ctx:deleteMessage, ctx:sendChatAction, ctx:react", function()
  local m, p = one_call("text", function(ctx) ctx:deleteMessage() end)
  t.eq({ m, p }, { "deleteMessage", { chat_id = GROUP, message_id = 601 } })
  m, p = one_call("callback_query", function(ctx) ctx:deleteMessage() end)
  t.eq(p, { chat_id = ADA, message_id = 502 })
  m, p = one_call("text", function(ctx) ctx:sendChatAction("typing") end)
  t.eq({ m, p }, { "sendChatAction", { chat_id = GROUP, action = "typing" } })
  m, p = one_call("business_message", function(ctx) ctx:sendChatAction("typing") end)
  t.eq(p, { chat_id = ADA, action = "typing", business_connection_id = "bc-123" })
  m, p = one_call("text", function(ctx) ctx:react("👍") end)
  t.eq({ m, p }, { "setMessageReaction", { chat_id = GROUP, message_id = 601,
                   reaction = { { type = "emoji", emoji = "👍" } } } })
  m, p = one_call("text", function(ctx)
    ctx:react({ "🔥", { type = "custom_emoji", custom_emoji_id = "5368" } }, { is_big = true })
  end)
  t.eq(p, { chat_id = GROUP, message_id = 601, is_big = true,
            reaction = { { type = "emoji", emoji = "🔥" },
                         { type = "custom_emoji", custom_emoji_id = "5368" } } })
  m, p = one_call("message_reaction", function(ctx) ctx:react({}) end)
  t.eq(p, { chat_id = GROUP, message_id = 640, reaction = {} })
end)

t.test("other shortcuts fill their targets", function()
  local m, p = one_call("pre_checkout_query", function(ctx) ctx:answerPreCheckoutQuery(true) end)
  t.eq({ m, p }, { "answerPreCheckoutQuery", { pre_checkout_query_id = "pcq-1", ok = true } })
  m, p = one_call("shipping_query", function(ctx) ctx:answerShippingQuery(false, { error_message = "no" }) end)
  t.eq(p, { shipping_query_id = "ship-1", ok = false, error_message = "no" })
  m, p = one_call("chat_join_request", function(ctx) ctx:approveChatJoinRequest() end)
  t.eq({ m, p }, { "approveChatJoinRequest", { chat_id = GROUP, user_id = ADA } })
  m, p = one_call("text", function(ctx) ctx:pinChatMessage({ disable_notification = true }) end)
  t.eq(p, { chat_id = GROUP, message_id = 601, disable_notification = true })
  m, p = one_call("business_message", function(ctx) ctx:getChat() end)
  t.eq({ m, p }, { "getChat", { chat_id = ADA } })
end)

t.test("a shortcut without a target raises a clear error at the script's line", function()
  local cases = {
    { "message", "answerCallbackQuery", "ctx:answerCallbackQuery(): this message update has no callback query" },
    { "callback_query", "answerInlineQuery", "ctx:answerInlineQuery(): this callback_query update has no inline query" },
    { "inline_query", "reply", "ctx:reply(): this inline_query update has no chat" },
    { "poll", "deleteMessage", "ctx:deleteMessage(): this poll update has no chat" },
    { "chat_member", "deleteMessage", "ctx:deleteMessage(): this chat_member update has no message" },
    { "inline_query", "editMessageText", "ctx:editMessageText(): this inline_query update has no message to edit" },
    { "chosen_inline_result", "react", "ctx:react(): this chosen_inline_result update has no chat" },
    { "poll_answer", "sendChatAction", "ctx:sendChatAction(): this poll_answer update has no chat" },
    { "message", "answerPreCheckoutQuery", "has no pre-checkout query" },
  }
  for i = #calls, 1, -1 do calls[i] = nil end
  for _, c in ipairs(cases) do
    local ctx = ctx_of(c[1])
    t.raises(function() ctx[c[2]](ctx, "x", "y") end, c[3])
  end
  local ctx = ctx_of("message")
  local line = debug.getinfo(1, "l").currentline + 1
  local msg = t.raises(function() ctx:answerCallbackQuery() end, "no callback query")
  t.truthy(msg:find("context.lua:" .. line .. ":", 1, true), "points at the caller: " .. msg)
  t.eq(#calls, 0, "no call was made")
end)

t.test("misuse: dot instead of colon, a missing argument, bad extra", function()
  local ctx = ctx_of("message")
  t.raises(function() ctx.reply("hi") end, "call it with a colon")
  t.raises(function() ctx:reply() end, "ctx:reply(): text is missing")
  t.raises(function() ctx:reply("x", "y") end, "extra options must be a table, not string")
  t.raises(function() ctx:forwardMessage() end, "chat_id is missing")
  t.raises(function() ctx:react(5) end, "ctx:react(): expected an emoji")
end)

t.done()
