-- The matchers behind bot.command, bot.hears, bot.callbackQuery and
-- bot.inlineQuery. Each is built once, at registration (where bad input
-- raises at the script's line), into a predicate pred(ctx) that sets
-- ctx.match when it matches. Each also returns the update types it can
-- match, for allowed_updates.
local errors = require("tghost.errors")
errors.internal()

local M = {}

local function list_of(value, what)
  local list = type(value) == "table" and value or { value }
  if #list == 0 then errors.raise("%s: expected at least one trigger", what) end
  for _, v in ipairs(list) do
    if type(v) ~= "string" then
      errors.raise("%s: expected a string or a list of strings, got %s", what,
                   type(v))
    end
  end
  return list
end

local function check_pattern(pattern, what)
  local ok, err = pcall(string.find, "", pattern)
  if not ok then
    errors.raise("%s: invalid Lua pattern '%s': %s", what, pattern,
                 (tostring(err):gsub("^.-:%d+: ", "")))
  end
end

-- The captures of a successful match as a table (the whole match when
-- the pattern has no captures), or nil.
local function captures(first, ...)
  if first == nil then return nil end
  return { first, ... }
end

-- === Commands ===========================================================

-- /name, /name@thisbot (not /name@otherbot), in a message's text or a
-- caption, recognised by the bot_command entity at offset 0 as Telegram
-- marks it (so "/name" must begin the message). ctx.match is the text
-- after the command, without leading white space. Names are matched
-- exactly, as in grammY; the bot's username without regard to case.
function M.command(names)
  local list = list_of(names, "command")
  local plain, at = {}, {}
  for _, n in ipairs(list) do
    if n:sub(1, 1) == "/" then
      errors.raise("command: do not include '/' in the command name (use "
                   .. "'%s' not '%s')", n:sub(2), n)
    end
    local name, user = n:match("^([%w_]+)@([%w_]+)$")
    if name then
      at[name .. "@" .. user:lower()] = true
    elseif n:match("^[%w_]+$") then
      plain[n] = true
    else
      errors.raise("command: invalid command name '%s' (letters, digits "
                   .. "and '_', optionally followed by @botname)", n)
    end
  end

  local function pred(ctx)
    local u = ctx.update
    local msg = u.message or u.channel_post
    if msg == nil then return false end
    local text, entities = msg.text, msg.entities
    if text == nil then text, entities = msg.caption, msg.caption_entities end
    if type(text) ~= "string" or type(entities) ~= "table" then return false end
    local len
    for i = 1, #entities do
      local e = entities[i]
      if e.offset == 0 and e.type == "bot_command" then len = e.length break end
    end
    if not len or text:byte(1) ~= 47 then return false end   -- 47 = '/'
    -- A command is ASCII, so its UTF-16 length is its length in bytes.
    local cmd = text:sub(2, len)
    local name, target = cmd:match("^([^@]+)@(.+)$")
    if name == nil then
      if not plain[cmd] then return false end
    elseif not at[name .. "@" .. target:lower()] then
      if not plain[name] then return false end
      local me = ctx.me
      local username = me and me.username
      if type(username) ~= "string" or username:lower() ~= target:lower() then
        return false
      end
    end
    ctx.match = (text:sub(len + 1):gsub("^%s+", ""))
    return true
  end
  return pred, { message = true, channel_post = true }
end

-- === Text, callback data, inline queries, payloads ======================
--
-- One rule for every trigger, as in grammY: a string matches the whole
-- text exactly ("hi" never matches "this is high"); a Lua pattern is an
-- explicit choice, either a string that starts with "^" (anchored at the
-- start, as Lua reads it) or tghost.pattern(p) (any pattern; like a grammY
-- RegExp it may match anywhere). ctx.match is a table: { text } for an
-- exact string, the captures for a pattern (the whole match when it has
-- none).

local Pattern = { __name = "tghost.Pattern" }
function Pattern.__tostring(p) return "tghost.pattern(" .. string.format("%q", p.pattern) .. ")" end
M.Pattern = Pattern

-- tghost.pattern(p): an explicit Lua pattern for hears, callbackQuery, ...
function M.pattern(p)
  if type(p) ~= "string" then
    errors.raise("tghost.pattern: expected a Lua pattern (a string), got %s", type(p))
  end
  check_pattern(p, "tghost.pattern")
  return setmetatable({ pattern = p }, Pattern)
end

local function is_pattern_object(v)
  return type(v) == "table" and type(v.pattern) == "string"
end

-- Whether a plain string looks as if it was meant as a pattern: a class
-- (%d, %a, [a-z]), a repetition of any character (.*, .+, .-), or a final
-- $ anchor. Punctuation of ordinary text ("What?", "page.2", "vote-up",
-- "C++") does not count.
local function looks_like_pattern(s)
  return s:find("%%[%a%p]") ~= nil or s:find("%.[%*%+%-]") ~= nil
      or s:find("%[[^%]]+%]") ~= nil or (#s > 1 and s:sub(-1) == "$")
end

-- The triggers of one registration, compiled: exact strings in a set,
-- patterns in a list. Returns match(text) -> captures table or nil.
local function compile(value, what)
  local list
  if type(value) == "table" and not is_pattern_object(value) then
    list = value
    if #list == 0 then errors.raise("%s: expected at least one trigger", what) end
  else
    list = { value }
  end
  local exact, patterns = {}, {}
  for _, v in ipairs(list) do
    if is_pattern_object(v) then
      check_pattern(v.pattern, what)
      patterns[#patterns + 1] = v.pattern
    elseif type(v) ~= "string" then
      errors.raise("%s: expected a string, tghost.pattern(...) or a list of "
                   .. "them, got %s", what, type(v))
    elseif v:sub(1, 1) == "^" then
      check_pattern(v, what)
      patterns[#patterns + 1] = v
    else
      exact[v] = true
      if looks_like_pattern(v) then
        errors.warn("%s(%q) matches exactly this text; to use it as a Lua "
                    .. "pattern start it with ^ or write tghost.pattern(%q)",
                    what, v, v)
      end
    end
  end
  local n = #patterns
  return function(text)
    if exact[text] then return { text } end
    for i = 1, n do
      local m = captures(text:match(patterns[i]))
      if m then return m end
    end
    return nil
  end
end
M.compile = compile

-- A predicate over one string field of the update: get(update) returns
-- the string (or nil), and a match sets ctx.match.
local function text_trigger(value, what, get, types)
  local match = compile(value, what)
  return function(ctx)
    local text = get(ctx.update)
    if type(text) ~= "string" then return false end
    local m = match(text)
    if m == nil then return false end
    ctx.match = m
    return true
  end, types
end

local MESSAGE_TYPES = { message = true, channel_post = true }

-- The text or caption of a message or channel post.
function M.hears(triggers_)
  return text_trigger(triggers_, "hears", function(u)
    local msg = u.message or u.channel_post
    return msg and (msg.text or msg.caption)
  end, MESSAGE_TYPES)
end

-- Callback data (not game queries, which have none).
function M.callback_query(triggers_)
  return text_trigger(triggers_, "callbackQuery", function(u)
    local cq = u.callback_query
    return cq and cq.data
  end, { callback_query = true })
end

-- The game_short_name of a callback query from a game's button.
function M.game_query(triggers_)
  return text_trigger(triggers_, "gameQuery", function(u)
    local cq = u.callback_query
    return cq and cq.game_short_name
  end, { callback_query = true })
end

-- An inline query's text.
function M.inline_query(triggers_)
  return text_trigger(triggers_, "inlineQuery", function(u)
    local iq = u.inline_query
    return iq and iq.query
  end, { inline_query = true })
end

-- The result_id of a chosen inline result.
function M.chosen_inline_result(triggers_)
  return text_trigger(triggers_, "chosenInlineResult", function(u)
    local r = u.chosen_inline_result
    return r and r.result_id
  end, { chosen_inline_result = true })
end

-- The invoice_payload of a pre-checkout query.
function M.pre_checkout_query(triggers_)
  return text_trigger(triggers_, "preCheckoutQuery", function(u)
    local q = u.pre_checkout_query
    return q and q.invoice_payload
  end, { pre_checkout_query = true })
end

-- The invoice_payload of a shipping query.
function M.shipping_query(triggers_)
  return text_trigger(triggers_, "shippingQuery", function(u)
    local q = u.shipping_query
    return q and q.invoice_payload
  end, { shipping_query = true })
end

-- === Reactions ==========================================================

-- A message_reaction update in which one of the given reactions was added
-- (it is in new_reaction and was not in old_reaction), as grammY's
-- bot.reaction: an emoji string, a ReactionType table ({type = "emoji",
-- emoji = ...}, {type = "custom_emoji", custom_emoji_id = ...}) or a list
-- of them. A reaction of another type (paid) always counts as added.
function M.reaction(reactions)
  local list = (type(reactions) == "table" and reactions.type == nil)
               and reactions or { reactions }
  if #list == 0 then errors.raise("reaction: expected at least one reaction") end
  local emoji, custom = {}, {}
  for _, r in ipairs(list) do
    if type(r) == "string" then
      emoji[r] = true
    elseif type(r) == "table" and r.type == "emoji" and type(r.emoji) == "string" then
      emoji[r.emoji] = true
    elseif type(r) == "table" and r.type == "custom_emoji"
           and type(r.custom_emoji_id) == "string" then
      custom[r.custom_emoji_id] = true
    elseif type(r) == "table" and type(r.type) == "string" then
      -- other reaction types match any added reaction of an unknown type
    else
      errors.raise("reaction: expected an emoji, a ReactionType table or a "
                   .. "list of them, got %s", type(r))
    end
  end
  local function key(r)
    if r.type == "emoji" then return "e:" .. tostring(r.emoji) end
    if r.type == "custom_emoji" then return "c:" .. tostring(r.custom_emoji_id) end
    return nil
  end
  return function(ctx)
    local mr = ctx.update.message_reaction
    if mr == nil then return false end
    local old = {}
    for _, r in ipairs(mr.old_reaction or {}) do
      local k = key(r)
      if k then old[k] = true end
    end
    for _, r in ipairs(mr.new_reaction or {}) do
      local k = key(r)
      if k == nil then return true end            -- a type we do not know
      if not old[k] then
        if r.type == "emoji" and emoji[r.emoji] then return true end
        if r.type == "custom_emoji" and custom[r.custom_emoji_id] then return true end
      end
    end
    return false
  end, { message_reaction = true }
end

-- Chat types ("private", "group", "supergroup", "channel").
local CHAT_TYPES = { "private", "group", "supergroup", "channel" }
function M.chat_type(types)
  local list = list_of(types, "chatType")
  local set = {}
  for _, t in ipairs(list) do
    local known = false
    for _, k in ipairs(CHAT_TYPES) do known = known or k == t end
    if not known then
      local s = errors.suggest(t, CHAT_TYPES)
      errors.raise("chatType: unknown chat type '%s'%s", t,
                   s and (" (did you mean '" .. s .. "'?)") or
                   ("; chat types are " .. table.concat(CHAT_TYPES, ", ")))
    end
    set[t] = true
  end
  return function(ctx)
    local chat = ctx.chat
    return chat ~= nil and set[chat.type] == true
  end
end

return M
