-- grammY's ctx shortcuts: every method of grammY's Context
-- (tests/lua/fixtures/grammy_context.lua, generated from npm's grammy) is
-- on tghost's ctx, or in the list below of what tghost leaves out and why;
-- each shortcut calls a method the Bot API has; and the targets fill in
-- what grammY's do, the positional arguments in the Bot API's order.
local t = require("lib.apitest")
local fx = require("fixtures.updates")
local grammy = require("fixtures.grammy_context")
local Context = require("tghost.context")
local shortcuts = require("tghost.shortcuts")

-- grammY's Context methods tghost does not have, and why (none, for
-- grammy 1.46.0: a new one fails the test below until it is added to
-- lua/shortcuts.lua or listed here with its reason).
local LEFT_OUT = {}

local bot, calls = t.fake_bot()
local function ctx_of(name) return Context.new(fx.get(name), bot) end
local function one_call(name, fn)
  for i = #calls, 1, -1 do calls[i] = nil end
  fn(ctx_of(name))
  t.eq(#calls, 1, "number of API calls")
  return calls[1].method, calls[1].params
end

local ADA, GROUP = 111222333, -1001234567890

t.test("every method of grammY's Context is on ctx", function()
  local missing = {}
  for _, name in ipairs(grammy) do
    local have = Context.methods[name] ~= nil or Context.getters[name] ~= nil
    if not have and not LEFT_OUT[name] then missing[#missing + 1] = name end
  end
  t.eq(missing, {}, "grammY ctx methods tghost does not have")
  t.truthy(#grammy > 150, "grammY's list has only " .. #grammy .. " methods")
end)

t.test("every shortcut calls a method the Bot API has", function()
  for _, s in ipairs(shortcuts.list) do
    t.truthy(tghost.botapi.method(s.method), s.name .. " calls " .. s.method)
    t.truthy(shortcuts.targets[s.target], s.name .. ": target " .. s.target)
    t.truthy(Context.methods[s.name], s.name .. " is not on ctx")
  end
end)

t.test("the author shortcuts: the sender in this chat", function()
  local m, p = one_call("message_reaction", function(ctx) ctx:banAuthor({ revoke_messages = true }) end)
  t.eq(m, "banChatMember")
  t.eq(p, { chat_id = GROUP, user_id = ADA, revoke_messages = true })
  m, p = one_call("message_reaction", function(ctx) ctx:restrictAuthor({ can_send_messages = false }) end)
  t.eq({ m, p.chat_id, p.user_id, p.permissions.can_send_messages },
       { "restrictChatMember", GROUP, ADA, false })
  m, p = one_call("message_reaction", function(ctx) ctx:getAuthor() end)
  t.eq({ m, p }, { "getChatMember", { chat_id = GROUP, user_id = ADA } })
  m, p = one_call("message_reaction", function(ctx) ctx:promoteAuthor() end)
  t.eq(m, "promoteChatMember")
end)

t.test("positional arguments in the Bot API's order", function()
  local m, p = one_call("message", function(ctx)
    ctx:replyWithInvoice("Tea", "A cup", "tea-1", "XTR", { { label = "Tea", amount = 5 } })
  end)
  t.eq(m, "sendInvoice")
  t.eq({ p.chat_id, p.title, p.description, p.payload, p.currency, p.prices[1].amount },
       { ADA, "Tea", "A cup", "tea-1", "XTR", 5 })
  m, p = one_call("message_reaction", function(ctx) ctx:restrictChatMember(555, { can_send_messages = false }) end)
  t.eq({ m, p.chat_id, p.user_id }, { "restrictChatMember", GROUP, 555 })
  m, p = one_call("message", function(ctx) ctx:replyWithChatAction("typing") end)
  t.eq({ m, p }, { "sendChatAction", { chat_id = ADA, action = "typing" } })
  m, p = one_call("message", function(ctx) ctx:deleteMessages({ 1, 2 }) end)
  t.eq({ m, p }, { "deleteMessages", { chat_id = ADA, message_ids = { 1, 2 } } })
  m, p = one_call("message", function(ctx) ctx:copyMessages(42, { 7, 8 }) end)
  t.eq({ m, p }, { "copyMessages", { chat_id = 42, from_chat_id = ADA, message_ids = { 7, 8 } } })
  m, p = one_call("message", function(ctx) ctx:forwardMessage(42) end)
  t.eq({ m, p }, { "forwardMessage", { chat_id = 42, from_chat_id = ADA, message_id = 501 } })
  m, p = one_call("message", function(ctx) ctx:unpinChatMessage() end)
  t.eq({ m, p }, { "unpinChatMessage", { chat_id = ADA } })
  m, p = one_call("message", function(ctx) ctx:stopPoll() end)
  t.eq({ m, p }, { "stopPoll", { chat_id = ADA, message_id = 501 } })
  -- pinChatMessage: the update's message, or grammY's (message_id, other)
  m, p = one_call("message", function(ctx) ctx:pinChatMessage() end)
  t.eq({ m, p }, { "pinChatMessage", { chat_id = ADA, message_id = 501 } })
  m, p = one_call("message", function(ctx) ctx:pinChatMessage({ disable_notification = true }) end)
  t.eq({ m, p }, { "pinChatMessage", { chat_id = ADA, message_id = 501, disable_notification = true } })
  m, p = one_call("message", function(ctx) ctx:pinChatMessage(77, { disable_notification = true }) end)
  t.eq({ m, p }, { "pinChatMessage", { chat_id = ADA, message_id = 77, disable_notification = true } })
  m, p = one_call("message", function(ctx) ctx:createChatInviteLink({ name = "x" }) end)
  t.eq({ m, p }, { "createChatInviteLink", { chat_id = ADA, name = "x" } })
  m, p = one_call("message", function(ctx) ctx:setChatPermissions({ can_send_messages = true }) end)
  t.eq(m, "setChatPermissions")
  m, p = one_call("message", function(ctx) ctx:getChatAdministrators() end)
  t.eq({ m, p }, { "getChatAdministrators", { chat_id = ADA } })
  m, p = one_call("message", function(ctx) ctx:unbanChatMember(555, { only_if_banned = true }) end)
  t.eq({ m, p }, { "unbanChatMember", { chat_id = ADA, user_id = 555, only_if_banned = true } })
  t.raises(function() ctx_of("message"):banChatMember() end, "ctx:banChatMember(): user_id is missing")
end)

t.test("business, payments, join requests, drafts", function()
  local m, p = one_call("business_message", function(ctx) ctx:readBusinessMessage() end)
  t.eq({ m, p }, { "readBusinessMessage", { business_connection_id = "bc-123",
                                           chat_id = ADA, message_id = 9001 } })
  m, p = one_call("business_message", function(ctx) ctx:reply("open") end)
  t.eq(p.business_connection_id, "bc-123")
  m, p = one_call("pre_checkout_query", function(ctx) ctx:answerPreCheckoutQuery(false, "sold out") end)
  t.eq({ m, p }, { "answerPreCheckoutQuery", { pre_checkout_query_id = "pcq-1", ok = false,
                                              error_message = "sold out" } })
  m, p = one_call("chat_join_request", function(ctx) ctx:approveChatJoinRequest() end)
  t.eq({ m, p }, { "approveChatJoinRequest", { chat_id = GROUP, user_id = ADA } })
  -- grammY's ctx.approveChatJoinRequest(user_id) and decline(user_id)
  m, p = one_call("chat_join_request", function(ctx) ctx:approveChatJoinRequest(ADA) end)
  t.eq({ m, p }, { "approveChatJoinRequest", { chat_id = GROUP, user_id = ADA } })
  m, p = one_call("chat_join_request", function(ctx) ctx:declineChatJoinRequest(555) end)
  t.eq({ m, p }, { "declineChatJoinRequest", { chat_id = GROUP, user_id = 555 } })
  -- grammY's ctx.getUserChatBoosts(chat_id?): the sender's boosts there
  m, p = one_call("message", function(ctx) ctx:getUserChatBoosts(-100777) end)
  t.eq({ m, p }, { "getUserChatBoosts", { chat_id = -100777, user_id = ADA } })
  m, p = one_call("message", function(ctx) ctx:getUserChatBoosts() end)
  t.eq({ m, p }, { "getUserChatBoosts", { chat_id = ADA, user_id = ADA } })
  m, p = one_call("message", function(ctx) ctx:replyWithDraft("typing...") end)
  t.eq({ m, p }, { "sendMessageDraft", { chat_id = ADA, draft_id = 10001, text = "typing..." } })
  t.raises(function() ctx_of("message"):getBusinessConnection() end,
           "this message update has no business connection")
  t.raises(function() ctx_of("message"):refundStarPayment() end, "successful payment")
end)

t.test("ctx:entities() and ctx:reactions()", function()
  local ctx = Context.new(tghost.json.decode([[{"update_id":1,"message":{"message_id":1,
    "chat":{"id":1,"type":"private"},"date":1,"text":"👍 see lua.org and *this*",
    "entities":[{"type":"url","offset":7,"length":7},{"type":"bold","offset":19,"length":6}]}}]]), bot)
  local e = ctx:entities()
  t.eq({ e[1].text, e[2].text }, { "lua.org", "*this*" })
  t.eq(#ctx:entities("bold"), 1)
  t.eq(#ctx:entities({ "url", "bold" }), 2)
  local r = ctx_of("message_reaction"):reactions()
  t.eq({ r.emoji, r.emojiAdded, r.emojiRemoved, r.paid }, { { "👍" }, { "👍" }, {}, false })
  local c = ctx_of("message")
  t.eq(c:hasText("hello there"), true)
  t.eq(c:hasChatType("private"), true)
  t.eq(c:hasCommand("start"), false)
end)

t.done()
