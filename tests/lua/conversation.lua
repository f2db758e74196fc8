-- Conversations from Lua: what ctx:wait and conversation{} accept and the
-- errors they give (the waiting itself is tested end to end in
-- tests/e2e/conversation.c); the default conversation key; the error
-- objects.
local t = require("lib.apitest")
local fx = require("fixtures.updates")
local Context = require("tghost.context")
local runtime = require("tghost.runtime")

local bot = t.fake_bot()
local function ctx_of(name) return Context.new(fx.get(name), bot) end

t.test("the default key is chat id:user id", function()
  local u = fx.get("message")
  t.eq(runtime.conversation_key(u),
       string.format("%d:%d", u.message.chat.id, u.message.from.id))
  -- A callback query's chat is its message's.
  local cq = fx.get("callback_query")
  t.eq(runtime.conversation_key(cq), string.format("%d:%d",
       cq.callback_query.message.chat.id, cq.callback_query.from.id))
  -- No user, no conversation.
  t.eq(runtime.conversation_key(fx.get("channel_post")), nil)
end)

t.test("conversation{ key = fn }", function()
  conversation{ key = function(ctx) return ctx.chat and ctx.chat.id end }
  local u = fx.get("message")
  t.eq(runtime.conversation_key(u), u.message.chat.id)
  tghost.conversation{}
  t.eq(runtime.conversation_key(u),
       string.format("%d:%d", u.message.chat.id, u.message.from.id))
  t.raises(function() conversation{ keys = print } end,
           "conversation: unknown option keys")
  t.raises(function() conversation{ key = 5 } end, "key must be a function")
  t.raises(function() conversation("x") end, "expected a table of options")
end)

t.test("ctx:wait checks its arguments before it waits", function()
  local ctx = ctx_of("message")
  t.raises(function() ctx:wait("mesage:text") end, "mesage")
  t.raises(function() ctx:wait(42) end,
           "expected a filter query, a list of them or a predicate")
  t.raises(function() ctx:wait("message:text", { timout = 5 }) end,
           "unknown option timout", "did you mean timeout?")
  t.raises(function() ctx:wait("message:text", { timeout = -1 }) end,
           "timeout must be a positive number")
  t.raises(function() ctx:wait("message:text", { otherwise = "no" }) end,
           "otherwise must be a function")
  t.raises(function() ctx:wait("message:text", { commands = 1 }) end,
           "commands must be true or false")
  t.raises(function() ctx:wait("message:text", { key = {} }) end,
           "a conversation key must be a string or an integer")
  t.raises(function() ctx_of("channel_post"):wait("message:text") end,
           "this update has no conversation key", "pass opts.key")
  t.raises(function() ctx.wait("message:text") end, "call it with a colon")
end)

t.test("ctx:wait only waits in a handler of an update", function()
  -- This file runs as the script's top level.
  t.raises(function() ctx_of("message"):wait("message:text") end,
           "ctx:wait can only be called while handling an update")
end)

t.test("cancelConversation without a conversation", function()
  t.eq(ctx_of("message"):cancelConversation(), false)
  t.eq(ctx_of("message"):cancelConversation("nobody"), false)
  t.eq(ctx_of("channel_post"):cancelConversation(), false)
end)

t.test("the error objects", function()
  local e = setmetatable({ key = "1:2", timeout = 300 }, tghost.ConversationTimeout)
  t.eq(tostring(e), "ConversationTimeout: no answer within 300 s (conversation 1:2)")
  e = setmetatable({ key = "1:2", reason = "replaced" }, tghost.ConversationCancelled)
  t.eq(tostring(e), "ConversationCancelled: conversation 1:2 replaced by a "
                    .. "newer one on the same key")
  e.reason = "cancelled"
  t.eq(tostring(e), "ConversationCancelled: conversation 1:2 cancelled by "
                    .. "ctx:cancelConversation()")
end)

t.done()
