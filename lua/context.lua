-- The context object a handler receives, as grammY's Context: the update,
-- getters into it (ctx.msg, ctx.chat, ctx.from, ...) and shortcut methods
-- that fill in chat_id, message_id, callback_query_id, inline_message_id
-- and the like (ctx:reply, ctx:answerCallbackQuery, ...). A shortcut used
-- where the update has no target for it raises a clear error at the
-- script's line. Scripts may store their own fields on ctx for downstream
-- middleware (ctx.match is one such field, set by command/hears/...).
local errors = require("tghost.errors")
local filter = require("tghost.filter")
local replystream = require("tghost.replystream")
local triggers = require("tghost.triggers")
errors.internal()

local Context = {}

-- ctx.<name> -> ctx.update.<field>
local UPDATE_FIELDS = {
  message = "message",
  editedMessage = "edited_message",
  channelPost = "channel_post",
  editedChannelPost = "edited_channel_post",
  businessConnection = "business_connection",
  businessMessage = "business_message",
  editedBusinessMessage = "edited_business_message",
  deletedBusinessMessages = "deleted_business_messages",
  messageReaction = "message_reaction",
  messageReactionCount = "message_reaction_count",
  inlineQuery = "inline_query",
  chosenInlineResult = "chosen_inline_result",
  callbackQuery = "callback_query",
  shippingQuery = "shipping_query",
  preCheckoutQuery = "pre_checkout_query",
  purchasedPaidMedia = "purchased_paid_media",
  poll = "poll",
  pollAnswer = "poll_answer",
  myChatMember = "my_chat_member",
  chatMember = "chat_member",
  chatJoinRequest = "chat_join_request",
  chatBoost = "chat_boost",
  removedChatBoost = "removed_chat_boost",
}
Context.UPDATE_FIELDS = UPDATE_FIELDS

local getters = {}

-- The message of the update: new, edited, channel post, business, or the
-- message a callback query's button was attached to.
function getters.msg(ctx)
  local u = ctx.update
  local cq = u.callback_query
  return u.message or u.edited_message or u.channel_post
      or u.edited_channel_post or u.business_message
      or u.edited_business_message or (cq and cq.message)
end

function getters.chat(ctx)
  local u = ctx.update
  local holder = getters.msg(ctx) or u.deleted_business_messages
      or u.message_reaction or u.message_reaction_count or u.my_chat_member
      or u.chat_member or u.chat_join_request or u.chat_boost
      or u.removed_chat_boost
  return holder and holder.chat
end

function getters.senderChat(ctx)
  local m = getters.msg(ctx)
  return m and m.sender_chat
end

function getters.from(ctx)
  local u = ctx.update
  local holder = u.business_connection or u.message_reaction
  if holder then return holder.user end
  local boost = u.chat_boost and u.chat_boost.boost or u.removed_chat_boost
  if boost then return boost.source and boost.source.user end
  holder = u.callback_query or getters.msg(ctx) or u.inline_query
      or u.chosen_inline_result or u.shipping_query or u.pre_checkout_query
      or u.my_chat_member or u.chat_member or u.chat_join_request
      or u.purchased_paid_media
  if holder then return holder.from end
  if u.poll_answer then return u.poll_answer.user end
  return nil
end

function getters.msgId(ctx)
  local m = getters.msg(ctx) or ctx.update.message_reaction
      or ctx.update.message_reaction_count
  return m and m.message_id
end

function getters.chatId(ctx)
  local chat = getters.chat(ctx)
  if chat then return chat.id end
  local bc = ctx.update.business_connection
  return bc and bc.user_chat_id
end

function getters.inlineMessageId(ctx)
  local u = ctx.update
  local holder = u.callback_query or u.chosen_inline_result
  return holder and holder.inline_message_id
end

function getters.businessConnectionId(ctx)
  local m = getters.msg(ctx)
  if m and m.business_connection_id then return m.business_connection_id end
  local u = ctx.update
  if u.business_connection then return u.business_connection.id end
  local d = u.deleted_business_messages
  return d and d.business_connection_id
end

function getters.me(ctx) return ctx.bot.botInfo end
function getters.api(ctx) return ctx.bot.api end

Context.getters = getters

-- === Shortcut methods ===================================================

local methods = {}
local mt

-- What kind of update this is, for error messages ("a message update").
local function kind(ctx)
  for k in pairs(ctx.update) do
    if k ~= "update_id" then return k end
  end
  return "empty"
end

local function check_self(ctx, name)
  if getmetatable(ctx) ~= mt then
    errors.raise("ctx:%s(...) needs the context: call it with a colon, "
                 .. "not ctx.%s(...)", name, name)
  end
end

-- The target value, or an error saying that this update has none.
local function need(ctx, name, value, what)
  if value == nil then
    errors.raise("ctx:%s(): this %s update has no %s", name, kind(ctx), what)
  end
  return value
end

local function merge(name, params, other)
  if other == nil then return params end
  if type(other) ~= "table" then
    errors.raise("ctx:%s(): the extra options must be a table, not %s", name,
                 type(other))
  end
  for k, v in pairs(other) do params[k] = v end
  return params
end

local function call(ctx, method, params)
  return ctx.bot.api[method](params)
end

-- Targets a shortcut fills in.
local fill = {}
function fill.chat(ctx, name, p)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.business_connection_id = getters.businessConnectionId(ctx)
  local m = getters.msg(ctx)
  if m and m.is_topic_message then p.message_thread_id = m.message_thread_id end
end
function fill.chat_only(ctx, name, p)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
end
function fill.message(ctx, name, p)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.message_id = need(ctx, name, getters.msgId(ctx), "message")
  p.business_connection_id = getters.businessConnectionId(ctx)
end
-- A message to edit: the inline message of a callback query or chosen
-- inline result, or else the update's message.
function fill.edit(ctx, name, p)
  local inline = getters.inlineMessageId(ctx)
  if inline then
    p.inline_message_id = inline
  else
    p.chat_id = need(ctx, name, getters.chatId(ctx), "message to edit")
    p.message_id = need(ctx, name, getters.msgId(ctx), "message to edit")
  end
  p.business_connection_id = getters.businessConnectionId(ctx)
end
function fill.callback(ctx, name, p)
  local cq = ctx.update.callback_query
  p.callback_query_id = need(ctx, name, cq and cq.id, "callback query")
end
function fill.inline(ctx, name, p)
  local iq = ctx.update.inline_query
  p.inline_query_id = need(ctx, name, iq and iq.id, "inline query")
end
function fill.shipping(ctx, name, p)
  local q = ctx.update.shipping_query
  p.shipping_query_id = need(ctx, name, q and q.id, "shipping query")
end
function fill.pre_checkout(ctx, name, p)
  local q = ctx.update.pre_checkout_query
  p.pre_checkout_query_id = need(ctx, name, q and q.id, "pre-checkout query")
end
function fill.join_request(ctx, name, p)
  local r = ctx.update.chat_join_request
  p.chat_id = need(ctx, name, r and r.chat and r.chat.id, "chat join request")
  p.user_id = r.from and r.from.id
end
function fill.join_query(ctx, name, p)
  local r = ctx.update.chat_join_request
  p.chat_join_request_query_id = need(ctx, name, r and r.query_id,
                                      "chat join request query")
end
-- This update's message to another chat: from here.
function fill.source(ctx, name, p)
  p.from_chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.message_id = need(ctx, name, getters.msgId(ctx), "message")
end
function fill.sources(ctx, name, p)
  p.from_chat_id = need(ctx, name, getters.chatId(ctx), "chat")
end
local function sender_id(ctx, name)
  local from = getters.from(ctx)
  return need(ctx, name, from and from.id, "sender")
end
function fill.author(ctx, name, p)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.user_id = sender_id(ctx, name)
end
function fill.user(ctx, name, p) p.user_id = sender_id(ctx, name) end
function fill.topic(ctx, name, p)
  local m = getters.msg(ctx)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.message_thread_id = need(ctx, name, m and m.message_thread_id,
                             "forum topic (message_thread_id)")
end
function fill.business(ctx, name, p)
  p.business_connection_id = need(ctx, name, getters.businessConnectionId(ctx),
                                  "business connection")
end
function fill.business_message(ctx, name, p)
  fill.business(ctx, name, p)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.message_id = need(ctx, name, getters.msgId(ctx), "message")
end
function fill.payment(ctx, name, p)
  local m = getters.msg(ctx)
  local sp = m and m.successful_payment
  p.user_id = sender_id(ctx, name)
  p.telegram_payment_charge_id = need(ctx, name, sp and sp.telegram_payment_charge_id,
                                      "successful payment")
end
function fill.managed_bot(ctx, name, p)
  local mb = ctx.update.managed_bot
  p.user_id = need(ctx, name, mb and mb.bot and mb.bot.id, "managed bot")
end
function fill.ephemeral(ctx, name, p)
  local m = getters.msg(ctx)
  p.chat_id = need(ctx, name, m and m.chat and m.chat.id, "message")
  p.receiver_user_id = need(ctx, name, m.receiver_user and m.receiver_user.id,
                            "ephemeral message")
  p.ephemeral_message_id = need(ctx, name, m.ephemeral_message_id,
                                "ephemeral message")
end
function fill.guest(ctx, name, p)
  local g = ctx.update.guest_message
  p.guest_query_id = need(ctx, name, g and g.guest_query_id, "guest message")
end
-- A draft of the message being answered: its id is the update's (grammY).
function fill.draft(ctx, name, p)
  p.chat_id = need(ctx, name, getters.chatId(ctx), "chat")
  p.draft_id = ctx.update.update_id
  local m = getters.msg(ctx)
  if m and m.is_topic_message then p.message_thread_id = m.message_thread_id end
end
function fill.none() end

-- define(name, method, target, args): ctx:name(arg1, ..., other) calls
-- bot.api[method] with the target filled in, the positional arguments
-- under the names in args (a name ending in "?" is optional; by default
-- the method's required parameters the target leaves, in the Bot API's
-- order), and the fields of other (a table of further parameters). What
-- the target fills that the method does not have is left out.
local apicore = require("tghost.api")
local shortcuts = require("tghost.shortcuts")

local function method_params(method)
  local _, _, params = apicore.method(method)
  if not params then
    error("lua/shortcuts.lua: the Bot API has no method " .. method, 0)
  end
  local known, required = {}, {}
  for p in params:gmatch("%S+") do
    local bare = p:gsub("!$", "")
    known[bare] = true
    if bare ~= p then required[#required + 1] = bare end
  end
  return known, required
end

-- Resolved on a shortcut's first call (most are never called): its
-- positional parameter names, which are required, and the parameters its
-- method has.
local function resolve(sc)
  local known, req = method_params(sc.method)
  local filled = {}
  for _, f in ipairs(shortcuts.targets[sc.target] or {}) do filled[f] = true end
  local args = sc.args
  if not args then
    args = {}
    for _, r in ipairs(req) do
      if not filled[r] then args[#args + 1] = r end
    end
  end
  local names, required = {}, {}
  for i, a in ipairs(args) do
    names[i] = a:gsub("%?$", "")
    required[i] = a:sub(-1) ~= "?"
  end
  sc.known, sc.names, sc.required = known, names, required
end

local function run_shortcut(sc, ctx, ...)
  local name = sc.name
  check_self(ctx, name)
  if not sc.names then resolve(sc) end
  local p = {}
  sc.filler(ctx, name, p)
  local known = sc.known
  for k in pairs(p) do
    if not known[k] then p[k] = nil end
  end
  local names, required = sc.names, sc.required
  local n = #names
  for i = 1, n do
    local v = (select(i, ...))
    if v == nil and required[i] then
      errors.raise("ctx:%s(): %s is missing", name, names[i])
    end
    p[names[i]] = v
  end
  local other = (select(n + 1, ...))
  if sc.convert then other = sc.convert(ctx, name, p, other) end
  return call(ctx, sc.method, merge(name, p, other))
end

-- One small closure per shortcut; its entry (lua/shortcuts.lua's, or a
-- new one) holds the rest.
local function define_entry(sc)
  sc.filler = fill[sc.target]
  if not sc.filler then error("ctx:" .. sc.name .. ": no target " .. sc.target, 0) end
  methods[sc.name] = function(ctx, ...) return run_shortcut(sc, ctx, ...) end
end

local function define(name, method, target, args, convert)
  define_entry({ name = name, method = method, target = target, args = args,
                 convert = convert })
end

for _, sc in ipairs(shortcuts.list) do define_entry(sc) end


-- ctx:react("👍"), ctx:react({"👍", "🎉"}), ctx:react{type = ...}, or
-- ctx:react({}) to remove the bot's reactions.
local function reaction_list(r)
  if type(r) == "string" then return { { type = "emoji", emoji = r } } end
  if type(r) ~= "table" then
    errors.raise("ctx:react(): expected an emoji, a reaction table or a list "
                 .. "of them, not %s", type(r))
  end
  if r.type ~= nil then return { r } end
  local out = {}
  for i, v in ipairs(r) do
    out[i] = type(v) == "string" and { type = "emoji", emoji = v } or v
  end
  return out
end
define("react", "setMessageReaction", "message", { "reaction" },
       function(ctx, name, p, other)
         p.reaction = reaction_list(p.reaction)
         return other
       end)

-- ctx:answerCallbackQuery("text") or ctx:answerCallbackQuery{ text = ...,
-- show_alert = true }.
define("answerCallbackQuery", "answerCallbackQuery", "callback", {})
do
  local f = methods.answerCallbackQuery
  methods.answerCallbackQuery = function(ctx, other)
    if type(other) == "string" then other = { text = other } end
    return f(ctx, other)
  end
end

-- ctx:editMessageReplyMarkup{ reply_markup = kb }, or the markup itself:
-- ctx:editMessageReplyMarkup(kb); no argument removes the inline keyboard.
define("editMessageReplyMarkup", "editMessageReplyMarkup", "edit", {},
       function(ctx, name, p, other)
         if type(other) == "table" and other.inline_keyboard ~= nil then
           return { reply_markup = other }
         end
         return other
       end)

-- grammY's ctx.pinChatMessage(message_id, other) pins a message of this
-- chat by its id, ctx.approveChatJoinRequest(user_id) (decline too) names
-- the user, ctx.getUserChatBoosts(chat_id) the chat; without a number
-- (nothing, or other alone) they act on the update's message, user and
-- chat.
local function id_first(method, param)
  local f = methods[method]
  methods[method] = function(ctx, id, ...)
    if math.type(id) ~= "integer" then return f(ctx, id, ...) end
    local other = ...
    if other ~= nil and type(other) ~= "table" then return f(ctx, other) end
    local p = { [param] = id }
    for k, v in pairs(other or {}) do
      if p[k] == nil then p[k] = v end
    end
    return f(ctx, p)
  end
end
id_first("pinChatMessage", "message_id")
id_first("approveChatJoinRequest", "user_id")
id_first("declineChatJoinRequest", "user_id")
id_first("getUserChatBoosts", "chat_id")

-- ctx:answerPreCheckoutQuery(false, "error text") as in grammY.
do
  local f = methods.answerPreCheckoutQuery
  methods.answerPreCheckoutQuery = function(ctx, ok, other)
    if type(other) == "string" then other = { error_message = other } end
    return f(ctx, ok, other)
  end
end

-- The text of msg between UTF-16 offsets [offset, offset + length).
local function utf16_sub(text, offset, length)
  local units, first, last = 0, nil, #text
  for pos, cp in utf8.codes(text, true) do
    if units == offset then first = pos end
    if units == offset + length then
      last = pos - 1
      break
    end
    units = units + (cp >= 0x10000 and 2 or 1)
  end
  if first == nil then return "" end
  return text:sub(first, last)
end
Context.utf16_sub = utf16_sub

-- ctx:entities([types]): the entities of the message's text or caption,
-- each with its text (grammY's ctx.entities()); types: a type or a list.
function methods.entities(ctx, types)
  check_self(ctx, "entities")
  local m = getters.msg(ctx)
  if not m then return {} end
  local text = m.text or m.caption
  local list = m.entities or m.caption_entities
  if not text or not list then return {} end
  local want
  if type(types) == "string" then want = { [types] = true }
  elseif type(types) == "table" then
    want = {}
    for _, t in ipairs(types) do want[t] = true end
  end
  local out = {}
  for _, e in ipairs(list) do
    if not want or want[e.type] then
      local copy = {}
      for k, v in pairs(e) do copy[k] = v end
      copy.text = utf16_sub(text, e.offset, e.length)
      out[#out + 1] = copy
    end
  end
  return out
end

-- ctx:reactions(): what changed in a message_reaction update (grammY's):
-- emoji, emojiAdded, emojiKept, emojiRemoved, customEmoji..., paid,
-- paidAdded.
function methods.reactions(ctx)
  check_self(ctx, "reactions")
  local r = ctx.update.message_reaction
  local out = { emoji = {}, emojiAdded = {}, emojiKept = {}, emojiRemoved = {},
                customEmoji = {}, customEmojiAdded = {}, customEmojiKept = {},
                customEmojiRemoved = {}, paid = false, paidAdded = false }
  if not r then return out end
  local function keyed(list)
    local set = {}
    for _, x in ipairs(list or {}) do
      if x.type == "emoji" then set["e" .. x.emoji] = x
      elseif x.type == "custom_emoji" then set["c" .. x.custom_emoji_id] = x
      elseif x.type == "paid" then set.paid = x end
    end
    return set
  end
  local old, new = keyed(r.old_reaction), keyed(r.new_reaction)
  local function put(kind, x)
    if x.type == "emoji" then table.insert(out["emoji" .. kind], x.emoji)
    elseif x.type == "custom_emoji" then
      table.insert(out["customEmoji" .. kind], x.custom_emoji_id)
    end
  end
  for k, x in pairs(new) do
    if x.type == "paid" then
      out.paid = true
      out.paidAdded = old.paid == nil
    else
      if x.type == "emoji" then table.insert(out.emoji, x.emoji)
      else table.insert(out.customEmoji, x.custom_emoji_id) end
      put(old[k] and "Kept" or "Added", x)
    end
  end
  for k, x in pairs(old) do
    if new[k] == nil and x.type ~= "paid" then put("Removed", x) end
  end
  return out
end

-- ctx:getCustomEmojiStickers(): the stickers of the custom emoji in the
-- message.
function methods.getCustomEmojiStickers(ctx)
  check_self(ctx, "getCustomEmojiStickers")
  local ids = {}
  for _, e in ipairs(methods.entities(ctx, "custom_emoji")) do
    ids[#ids + 1] = e.custom_emoji_id
  end
  return ctx.bot.api.getCustomEmojiStickers{ custom_emoji_ids = ids }
end

-- ctx:hasText(trigger), ctx:hasCommand(name), ctx:hasCallbackQuery(data),
-- ...: grammY's checks, the predicates of bot.hears, bot.command, ... (they
-- set ctx.match as those do).
local HAS = {
  hasText = "hears", hasCommand = "command", hasCallbackQuery = "callback_query",
  hasGameQuery = "game_query", hasInlineQuery = "inline_query",
  hasChosenInlineResult = "chosen_inline_result",
  hasPreCheckoutQuery = "pre_checkout_query",
  hasShippingQuery = "shipping_query", hasReaction = "reaction",
  hasChatType = "chat_type",
}
for name, trigger in pairs(HAS) do
  methods[name] = function(ctx, value)
    check_self(ctx, name)
    return triggers[trigger](value)(ctx) and true or false
  end
end

-- ctx:replyStream(source, opts): an answer shown while it grows (a draft
-- in private chats, else a message edited at a bounded rate), then sent
-- for good, cut into several messages past 4096 characters; see
-- lua/replystream.lua.
function methods.replyStream(ctx, source, opts)
  check_self(ctx, "replyStream")
  local chat = need(ctx, "replyStream", getters.chat(ctx), "chat")
  return replystream.reply(chat, getters.businessConnectionId(ctx), source, opts)
end

-- ctx:has(query): whether this update matches a filter query (compiled
-- once per query string).
function methods.has(ctx, query)
  check_self(ctx, "has")
  return filter.cached(query)(ctx)
end

-- ctx:getFile(): getFile for the file in the update's message (the
-- largest photo size, or the document, video, audio, voice, ...).
function methods.getFile(ctx)
  check_self(ctx, "getFile")
  local m = getters.msg(ctx)
  local file = m and ((m.photo and m.photo[#m.photo]) or m.document or m.video
      or m.audio or m.voice or m.video_note or m.animation or m.sticker)
  need(ctx, "getFile", file, "file in its message")
  return ctx.bot.api.getFile{ file_id = file.file_id }
end

Context.methods = methods

-- Properties that middleware defines on one context (ctx.session): the
-- getter runs when the name is read, the setter when it is assigned.
local properties = setmetatable({}, { __mode = "k" })   -- ctx -> name -> {get, set}

function Context.defineProperty(ctx, name, get, set)
  local props = properties[ctx]
  if not props then
    props = {}
    properties[ctx] = props
  end
  props[name] = { get, set }
  rawset(ctx, name, nil)
end

mt = {
  __index = function(ctx, key)
    local props = properties[ctx]
    local prop = props and props[key]
    if prop then return prop[1](ctx) end
    local field = UPDATE_FIELDS[key]
    if field then return ctx.update[field] end
    local g = getters[key]
    if g then return g(ctx) end
    return methods[key]
  end,
  __newindex = function(ctx, key, value)
    local props = properties[ctx]
    local prop = props and props[key]
    if prop then return prop[2](ctx, value) end
    rawset(ctx, key, value)
  end,
  __name = "tghost.Context",
}

-- The key of a context's field that lua/composer.lua keeps the update's
-- path through the middleware in (a table, so no script's field name can
-- clash with it); made with the context, so that setting it costs no
-- table growth.
local PATH = setmetatable({}, { __name = "tghost.Context path" })
Context.PATH = PATH

function Context.new(update, bot)
  return setmetatable({ update = update, bot = bot, [PATH] = false }, mt)
end

return Context
