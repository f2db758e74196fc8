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

-- The keys, without the nils of the namespaces an update has no key in.
local function keys(u, active)
  local out = {}
  local all = table.pack(runtime.conversation_keys(u, active or "bkuc"))
  for i = 1, all.n do
    if all[i] ~= nil then out[#out + 1] = all[i] end
  end
  return out
end

t.test("the default key is chat id:user id", function()
  local u = fx.get("message")
  local chat, user = u.message.chat.id, u.message.from.id
  t.eq(keys(u, "k"), { string.format("k%d:%d", chat, user) })
  -- A callback query's chat is its message's.
  local cq = fx.get("callback_query")
  t.eq(keys(cq, "k"), { string.format("k%d:%d",
       cq.callback_query.message.chat.id, cq.callback_query.from.id) })
  -- No user, no conversation.
  t.eq(keys(fx.get("channel_post"), "k"), {})
end)

t.test("an update's keys, most specific first", function()
  local u = fx.get("message")
  local chat, user = u.message.chat.id, u.message.from.id
  t.eq(keys(u), { string.format("b%d:%d", chat, user),
                  string.format("k%d:%d", chat, user),
                  "u" .. user, "c" .. chat })
  -- Only the namespaces that have conversations are asked for.
  t.eq(keys(u, "c"), { "c" .. chat })
  t.eq(keys(fx.get("channel_post"), "bkuc"),
       { "c" .. fx.get("channel_post").channel_post.chat.id })
end)

t.test("conversation{ key = fn }: keys are normalised", function()
  local u = fx.get("message")
  conversation{ key = function(ctx) return ctx.chat and ctx.chat.id end }
  t.eq(keys(u, "k"), { "k" .. u.message.chat.id })
  conversation{ key = function(ctx) return tostring(ctx.chat.id) end }
  t.eq(keys(u, "k"), { "k" .. u.message.chat.id })
  conversation{ key = function() return 5.0 end }
  t.eq(keys(u, "k"), { "k5" })
  conversation{ key = function() return {} end }
  t.raises(function() keys(u, "k") end,
           "the conversation key function returned table")
  tghost.conversation{}
  t.eq(keys(u, "k"), { string.format("k%d:%d", u.message.chat.id,
                                     u.message.from.id) })
  t.raises(function() conversation{ keys = print } end,
           "conversation: unknown option keys")
  t.raises(function() conversation{ key = 5 } end, "key must be a function")
  t.raises(function() conversation("x") end, "expected a table of options")
  t.raises(function() conversation{ timeout = 0 } end,
           "timeout must be a positive number of seconds (or false")
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
  t.raises(function() ctx:wait("message:text", { key = 1, chat = true }) end,
           "does not combine with chat or user")
  t.raises(function() ctx_of("channel_post"):wait("message:text",
                                                  { user = true }) end,
           "user = true, but this update has no user")
  t.raises(function() ctx:wait("message:text", { chat = "@lua" }) end,
           'chat = "@lua" can never match')
  t.raises(function() ctx:wait("message:text", { user = 1.5 }) end,
           "user = 1.5 can never match")
  t.raises(function() ctx.wait("message:text") end, "call it with a colon")
end)

t.test("a wait for a key no update can produce fails at the call", function()
  local ctx = ctx_of("message")
  local chat = ctx.chat.id
  -- Under the default key function every key is "chat id:user id".
  local msg = t.raises(function() ctx:wait("message:text", { key = chat }) end,
                       string.format('key "%d" can never match', chat),
                       string.format("pass { chat = %d }", chat))
  t.truthy(msg:find("conversation.lua:%d+: "), "no file:line in " .. msg)
  t.raises(function() ctx:wait("message:text", { key = "quiz" }) end,
           'key "quiz" can never match', "conversation{ key = fn }")
  -- A key function of one's own may give any key: no check.
  conversation{ key = function(c) return c.chat.id end }
  t.raises(function() ctx:wait("message:text", { key = "quiz" }) end,
           "ctx:wait can only be called while handling an update")
  tghost.conversation{}
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
