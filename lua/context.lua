-- The context object a handler receives: the update, shortcuts into it
-- (ctx.message, ctx.chat, ctx.from, ...) and methods that fill in chat_id,
-- message_id and the like (ctx:reply, ...). Scripts may add their own
-- fields for downstream middleware.
local Context = {}

local getters = {}
local methods = {}

function getters.message(ctx) return ctx.update.message end
function getters.editedMessage(ctx) return ctx.update.edited_message end
function getters.channelPost(ctx) return ctx.update.channel_post end
function getters.editedChannelPost(ctx) return ctx.update.edited_channel_post end
function getters.callbackQuery(ctx) return ctx.update.callback_query end
function getters.inlineQuery(ctx) return ctx.update.inline_query end

function getters.msg(ctx)
  local u = ctx.update
  local cq = u.callback_query
  return u.message or u.edited_message or u.channel_post
      or u.edited_channel_post or u.business_message
      or u.edited_business_message or (cq and cq.message)
end

function getters.chat(ctx)
  local m = getters.msg(ctx)
  if m then return m.chat end
  local u = ctx.update
  local other = u.my_chat_member or u.chat_member or u.chat_join_request
      or u.message_reaction or u.message_reaction_count or u.chat_boost
      or u.removed_chat_boost
  return other and other.chat
end

function getters.from(ctx)
  local u = ctx.update
  local src = u.callback_query or u.inline_query or u.chosen_inline_result
      or u.shipping_query or u.pre_checkout_query or u.my_chat_member
      or u.chat_member or u.chat_join_request
  if src then return src.from end
  local m = getters.msg(ctx)
  if m then return m.from end
  if u.poll_answer then return u.poll_answer.user end
  if u.message_reaction then return u.message_reaction.user end
  return nil
end

function getters.me(ctx) return ctx.bot.botInfo end
function getters.api(ctx) return ctx.bot.api end

local function merge(base, extra)
  if extra ~= nil then
    if type(extra) ~= "table" then error("extra options must be a table", 3) end
    for k, v in pairs(extra) do base[k] = v end
  end
  return base
end

local function chat_id(ctx, what)
  local chat = getters.chat(ctx)
  if not chat then error(what .. ": this update has no chat to answer in", 3) end
  return chat.id
end

function methods.reply(ctx, text, extra)
  return ctx.bot.api.sendMessage(merge({ chat_id = chat_id(ctx, "ctx:reply"),
                                         text = text }, extra))
end

-- ctx:getFile(): getFile for the file in the update's message (the
-- largest photo size, or the document, video, audio, voice, ...).
function methods.getFile(ctx)
  local m = getters.msg(ctx)
  local file = m and ((m.photo and m.photo[#m.photo]) or m.document or m.video
      or m.audio or m.voice or m.video_note or m.animation or m.sticker)
  if not file then error("ctx:getFile: this update's message has no file", 2) end
  return ctx.bot.api.getFile{ file_id = file.file_id }
end

Context.getters = getters
Context.methods = methods

local mt = {
  __index = function(ctx, key)
    local g = getters[key]
    if g then return g(ctx) end
    return methods[key]
  end,
  __name = "tghost.Context",
}

function Context.new(update, bot)
  return setmetatable({ update = update, bot = bot }, mt)
end

return Context
