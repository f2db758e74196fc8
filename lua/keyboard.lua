-- Keyboard builders, as grammY's InlineKeyboard and Keyboard:
--
--   local kb = tghost.InlineKeyboard()
--     :text("Yes", "vote:yes"):text("No", "vote:no"):row()
--     :url("Read more", "https://example.com")
--   ctx:reply("Agree?", { reply_markup = kb })
--
-- A builder is itself the Bot API object (InlineKeyboardMarkup,
-- ReplyKeyboardMarkup): its only fields are the JSON fields, the methods
-- live in its metatable, so it can be passed as reply_markup as it is.
-- Mistakes (a missing label, callback data over Telegram's 64 bytes) raise
-- at the script's line when the button is added.
local errors = require("tghost.errors")
errors.internal()

local M = {}

-- Builders whose next button starts a new row (after row()).
local breaks = setmetatable({}, { __mode = "k" })

local function check_self(kb, mt, name)
  if getmetatable(kb) ~= mt then
    errors.raise("keyboard:%s(...) must be called with a colon", name)
  end
end

local function check_text(text, name)
  if type(text) ~= "string" and type(text) ~= "number" then
    errors.raise("keyboard:%s(): the button label must be a string, not %s",
                 name, type(text))
  end
  return tostring(text)
end

local function push(kb, rows, button)
  if breaks[kb] or #rows == 0 then
    rows[#rows + 1] = { button }
    breaks[kb] = nil
  else
    local last = rows[#rows]
    last[#last + 1] = button
  end
  return kb
end

-- Methods both builders share: row(...) and add(...).
local function common(methods, mt, field)
  -- row(): the next button starts a new row. row(b1, b2, ...): a new row
  -- of these buttons (raw button tables).
  function methods.row(kb, ...)
    check_self(kb, mt, "row")
    local rows = kb[field]
    if select("#", ...) == 0 then
      if #rows > 0 and #rows[#rows] > 0 then breaks[kb] = true end
      return kb
    end
    rows[#rows + 1] = { ... }
    breaks[kb] = nil
    return kb
  end
  -- add(b1, b2, ...): raw button tables, in the current row.
  function methods.add(kb, ...)
    check_self(kb, mt, "add")
    for i = 1, select("#", ...) do
      local b = (select(i, ...))
      if type(b) ~= "table" then
        errors.raise("keyboard:add(): expected button tables, got %s", type(b))
      end
      push(kb, kb[field], b)
    end
    return kb
  end
end

-- === Inline keyboards ==================================================

local inline = {}
local inline_mt = { __index = inline, __name = "tghost.InlineKeyboard",
                    __jsontype = "object" }
common(inline, inline_mt, "inline_keyboard")

-- Adds a button {text = label, [field] = value}.
local function inline_button(name, field, check)
  inline[name] = function(kb, text, value)
    check_self(kb, inline_mt, name)
    local b = { text = check_text(text, name) }
    if check then value = check(text, value) end
    b[field] = value
    return push(kb, kb.inline_keyboard, b)
  end
end

-- text(label, data): a callback button; data defaults to the label.
inline_button("text", "callback_data", function(text, data)
  if data == nil then data = tostring(text) end
  if type(data) ~= "string" then
    errors.raise("keyboard:text(): callback data must be a string, not %s",
                 type(data))
  end
  if #data < 1 or #data > 64 then
    errors.raise("keyboard:text(): callback data must be 1 to 64 bytes, "
                 .. "'%s' is %d", data, #data)
  end
  return data
end)

local function need_string(name)
  return function(_, v)
    if type(v) ~= "string" then
      errors.raise("keyboard:%s(): expected a string, not %s", name, type(v))
    end
    return v
  end
end

inline_button("url", "url", need_string("url"))
-- webApp(label, url)
inline_button("webApp", "web_app", function(_, v)
  if type(v) == "string" then return { url = v } end
  return v
end)
-- login(label, url or LoginUrl table)
inline_button("login", "login_url", function(_, v)
  if type(v) == "string" then return { url = v } end
  return v
end)
-- switchInline(label, query): inline mode in a chat the user picks.
inline_button("switchInline", "switch_inline_query",
              function(_, v) return v or "" end)
-- switchInlineCurrent(label, query): inline mode in this chat.
inline_button("switchInlineCurrent", "switch_inline_query_current_chat",
              function(_, v) return v or "" end)
-- switchInlineChosen(label, SwitchInlineQueryChosenChat table)
inline_button("switchInlineChosen", "switch_inline_query_chosen_chat",
              function(_, v) return v or setmetatable({}, { __jsontype = "object" }) end)
-- copyText(label, text to copy)
inline_button("copyText", "copy_text", function(_, v)
  if type(v) == "string" then return { text = v } end
  return v
end)
-- game(label), pay(label): must be the first button of the first row.
inline_button("game", "callback_game",
              function() return setmetatable({}, { __jsontype = "object" }) end)
inline_button("pay", "pay", function() return true end)

-- tghost.InlineKeyboard([rows]): rows, if given, are lists of raw buttons.
function M.InlineKeyboard(rows)
  if rows ~= nil and type(rows) ~= "table" then
    errors.raise("InlineKeyboard(): expected a list of rows, got %s", type(rows))
  end
  return setmetatable({ inline_keyboard = rows or {} }, inline_mt)
end

-- === Reply keyboards ===================================================

local reply = {}
local reply_mt = { __index = reply, __name = "tghost.Keyboard",
                   __jsontype = "object" }
common(reply, reply_mt, "keyboard")

local function reply_button(name, build)
  reply[name] = function(kb, text, ...)
    check_self(kb, reply_mt, name)
    local b = { text = check_text(text, name) }
    if build then build(b, ...) end
    return push(kb, kb.keyboard, b)
  end
end

reply_button("text")
reply_button("requestContact", function(b) b.request_contact = true end)
reply_button("requestLocation", function(b) b.request_location = true end)
-- requestPoll(label, "quiz" | "regular" | nil)
reply_button("requestPoll", function(b, poll_type)
  b.request_poll = setmetatable({ type = poll_type }, { __jsontype = "object" })
end)
-- requestUsers(label, request_id, KeyboardButtonRequestUsers fields)
reply_button("requestUsers", function(b, id, opts)
  local r = { request_id = id }
  for k, v in pairs(opts or {}) do r[k] = v end
  b.request_users = r
end)
-- requestChat(label, request_id, KeyboardButtonRequestChat fields)
reply_button("requestChat", function(b, id, opts)
  local r = { request_id = id, chat_is_channel = false }
  for k, v in pairs(opts or {}) do r[k] = v end
  b.request_chat = r
end)
reply_button("webApp", function(b, url)
  b.web_app = type(url) == "string" and { url = url } or url
end)

-- Options of the keyboard; each defaults to true when called without a
-- value, as in grammY.
local function option(name, field)
  reply[name] = function(kb, value)
    check_self(kb, reply_mt, name)
    if value == nil then value = true end
    kb[field] = value
    return kb
  end
end
option("persistent", "is_persistent")
option("selective", "selective")
option("oneTime", "one_time_keyboard")
option("resized", "resize_keyboard")

function reply.placeholder(kb, text)
  check_self(kb, reply_mt, "placeholder")
  kb.input_field_placeholder = text
  return kb
end

-- tghost.Keyboard([rows])
function M.Keyboard(rows)
  if rows ~= nil and type(rows) ~= "table" then
    errors.raise("Keyboard(): expected a list of rows, got %s", type(rows))
  end
  return setmetatable({ keyboard = rows or {} }, reply_mt)
end

return M
