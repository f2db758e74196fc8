-- Formatting without a parse mode: tghost.fmt builds text and its
-- entities (offsets in UTF-16 code units, as Telegram counts them), so a
-- message is never refused for an unescaped character and a user's name
-- never turns into markup. For those who do write markup,
-- tghost.html.escape and tghost.markdown.escape.
--
--   ctx:reply(fmt("Hello, ", fmt.bold(ctx.from.first_name), "!"))
--   ctx:reply(fmt.italic("note: ") .. fmt.link("docs", "https://core.telegram.org/bots/api"))
--
-- A formatted string goes wherever text goes (text, caption, question,
-- ...): bot.api puts its text there and its entities beside it
-- (entities, caption_entities, ...).
local errors = require("tghost.errors")
errors.internal()

local M = {}

local FormattedString = { __name = "tghost.FormattedString" }
FormattedString.__index = FormattedString

local function is_fs(v) return getmetatable(v) == FormattedString end
M.is = is_fs

-- UTF-16 code units of s.
local function units(s)
  local ok, n = pcall(function()
    local count = 0
    for _, cp in utf8.codes(s) do count = count + (cp >= 0x10000 and 2 or 1) end
    return count
  end)
  if not ok then errors.raise("tghost.fmt: the text is not valid UTF-8") end
  return n
end
M.utf16_length = units

local function new(text, entities)
  return setmetatable({ text = text, entities = entities }, FormattedString)
end

-- fmt(...): the parts, strings (as they are: nothing is markup) or
-- formatted strings, one after another. Other values go through tostring.
local function concat(...)
  local text, entities, offset = {}, {}, 0
  for i = 1, select("#", ...) do
    local part = select(i, ...)
    if is_fs(part) then
      for _, e in ipairs(part.entities) do
        local copy = {}
        for k, v in pairs(e) do copy[k] = v end
        copy.offset = e.offset + offset
        entities[#entities + 1] = copy
      end
      text[#text + 1] = part.text
      offset = offset + units(part.text)
    elseif part ~= nil then
      local s = tostring(part)
      text[#text + 1] = s
      offset = offset + units(s)
    end
  end
  return new(table.concat(text), entities)
end

FormattedString.__concat = function(a, b) return concat(a, b) end
FormattedString.__tostring = function(fs) return fs.text end
FormattedString.__len = function(fs) return units(fs.text) end
FormattedString.__eq = function(a, b)
  if a.text ~= b.text or #a.entities ~= #b.entities then return false end
  for i, e in ipairs(a.entities) do
    local f = b.entities[i]
    for k, v in pairs(e) do if f[k] ~= v then return false end end
    for k in pairs(f) do if e[k] == nil then return false end end
  end
  return true
end

-- An entity of type around the parts (extra: url, language, ...).
local function wrap(type_, extra, ...)
  local inner = concat(...)
  local len = units(inner.text)
  if len == 0 then return inner end    -- Telegram drops empty entities
  local e = { type = type_, offset = 0, length = len }
  for k, v in pairs(extra or {}) do e[k] = v end
  table.insert(inner.entities, 1, e)
  return inner
end

local fmt = setmetatable({}, {
  __call = function(_, ...) return concat(...) end,
})
for _, t in ipairs({ "bold", "italic", "underline", "strikethrough", "spoiler",
                     "code", "blockquote" }) do
  fmt[t] = function(...) return wrap(t, nil, ...) end
end
fmt.expandableBlockquote = function(...)
  return wrap("expandable_blockquote", nil, ...)
end
-- fmt.pre(text[, language])
fmt.pre = function(text, language)
  return wrap("pre", language and { language = language } or nil, text)
end
-- fmt.link(text, url)
fmt.link = function(text, url)
  if type(url) ~= "string" then
    errors.raise("tghost.fmt.link(text, url): url must be a string, not %s", type(url))
  end
  return wrap("text_link", { url = url }, text)
end
-- fmt.mention(text, user): a mention by id (a user table or its id), for
-- users without a username.
fmt.mention = function(text, user)
  local id = type(user) == "table" and user.id or user
  if math.type(id) ~= "integer" then
    errors.raise("tghost.fmt.mention(text, user): user must be a user or its "
                 .. "integer id, not %s", type(user))
  end
  return wrap("text_mention", { user = { id = id, is_bot = false, first_name = "" } },
              text)
end
-- fmt.customEmoji(placeholder, custom_emoji_id)
fmt.customEmoji = function(placeholder, id)
  return wrap("custom_emoji", { custom_emoji_id = tostring(id) }, placeholder)
end
M.fmt = fmt

-- Text and entities where params has formatted strings: params[k] = text,
-- and its entities under the name the method has for them.
function M.apply(params, known)
  for k, v in pairs(params) do
    if is_fs(v) and type(k) == "string" then
      local ek = (k == "text" and known.entities) and "entities" or k .. "_entities"
      params[k] = v.text
      if #v.entities > 0 and params[ek] == nil then params[ek] = v.entities end
    end
  end
  -- Captions inside media (sendMediaGroup, editMessageMedia, ...).
  local media = params.media
  if type(media) == "table" then
    local list = media.type ~= nil and { media } or media
    for _, item in ipairs(list) do
      if type(item) == "table" and is_fs(item.caption) then
        local fs = item.caption
        item.caption = fs.text
        if #fs.entities > 0 and item.caption_entities == nil then
          item.caption_entities = fs.entities
        end
      end
    end
  end
end

-- tghost.html.escape(s): text safe inside HTML (parse_mode "HTML").
M.html = {
  escape = function(s)
    return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;",
                                           [">"] = "&gt;", ['"'] = "&quot;" }))
  end,
}

-- tghost.markdown.escape(s[, where]): text safe inside MarkdownV2: every
-- reserved character escaped; where = "code" (inside `code` or ```pre```:
-- only ` and \) or "url" (inside (...) of a link: only ) and \).
M.markdown = {
  escape = function(s, where)
    s = tostring(s)
    if where == "code" then return (s:gsub("[`\\]", "\\%0")) end
    if where == "url" then return (s:gsub("[)\\]", "\\%0")) end
    if where ~= nil then
      errors.raise("tghost.markdown.escape: where must be nil, \"code\" or "
                   .. "\"url\", not %s", tostring(where))
    end
    return (s:gsub("[_%*%[%]%(%)~`>#%+%-=|{}%.!\\]", "\\%0"))
  end,
}

return M
