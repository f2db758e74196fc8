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

-- === Text, callback data, inline queries ===============================

-- Lua patterns against the text or caption of a message or channel post;
-- ctx.match = the table of captures (ctx.match[1] is the whole match when
-- the pattern has none).
function M.hears(patterns)
  local list = list_of(patterns, "hears")
  for _, p in ipairs(list) do check_pattern(p, "hears") end
  local n = #list
  local function pred(ctx)
    local u = ctx.update
    local msg = u.message or u.channel_post
    if msg == nil then return false end
    local text = msg.text or msg.caption
    if type(text) ~= "string" then return false end
    for i = 1, n do
      local m = captures(text:match(list[i]))
      if m then ctx.match = m return true end
    end
    return false
  end
  return pred, { message = true, channel_post = true }
end

-- Callback data equal to a string; or, for a string that starts with "^",
-- matching it as a Lua pattern (ctx.match = the captures). Data such as
-- "vote-up" or "page.2" is thus never misread as a pattern.
function M.callback_query(triggers_)
  local list = list_of(triggers_, "callbackQuery")
  local exact, patterns = {}, {}
  for _, t in ipairs(list) do
    if t:sub(1, 1) == "^" then
      check_pattern(t, "callbackQuery")
      patterns[#patterns + 1] = t
    else
      exact[t] = true
      if t:find("%%%a") or t:find("%.[%*%+%-]") then
        errors.warn("callbackQuery('%s') matches this exact data; start it "
                    .. "with ^ to use it as a Lua pattern", t)
      end
    end
  end
  local n = #patterns
  local function pred(ctx)
    local cq = ctx.update.callback_query
    local data = cq and cq.data
    if type(data) ~= "string" then return false end
    if exact[data] then ctx.match = { data } return true end
    for i = 1, n do
      local m = captures(data:match(patterns[i]))
      if m then ctx.match = m return true end
    end
    return false
  end
  return pred, { callback_query = true }
end

-- Lua patterns against an inline query's text, as hears.
function M.inline_query(patterns)
  local list = list_of(patterns, "inlineQuery")
  for _, p in ipairs(list) do check_pattern(p, "inlineQuery") end
  local n = #list
  local function pred(ctx)
    local iq = ctx.update.inline_query
    local q = iq and iq.query
    if type(q) ~= "string" then return false end
    for i = 1, n do
      local m = captures(q:match(list[i]))
      if m then ctx.match = m return true end
    end
    return false
  end
  return pred, { inline_query = true }
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
