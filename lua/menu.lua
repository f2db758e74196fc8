-- Menus: inline keyboards declared once, with a handler per button,
-- submenus and back, and buttons built from data when the menu is shown
-- (grammY's menu plugin, in Lua's terms).
--
--   local main = tghost.Menu("main")
--     :text("Hello", function(ctx) ctx:reply("Hi!") end)
--     :submenu("Settings", "settings"):row()
--     :dynamic(function(ctx, range) ... range:text(label, fn) ... end)
--   local settings = tghost.Menu("settings", { text = "Settings" })
--     :text(function(ctx) return ctx.session.on and "On" or "Off" end,
--           function(ctx) ctx.session.on = not ctx.session.on; ctx.menu:update() end)
--     :back("Back")
--   main:register(settings)
--   bot.use(main)
--   bot.command("menu", function(ctx) ctx:reply("Menu", { reply_markup = main }) end)
--
-- A menu passed as reply_markup to any Bot API call is rendered for the
-- update being handled (labels and dynamic ranges get its ctx).
--
-- Callback data is "<menu id>/<button index>/<fingerprint>[/<payload>]":
-- no state is kept anywhere, so a menu works across restarts and hot
-- reloads. On a press the menu is rendered again for that press; if its
-- fingerprint (a hash of the whole layout: every button's kind, label and
-- target) is the one in the data, the button at that index is the one
-- pressed and its handler runs. Otherwise the menu changed since it was
-- sent (new code, other data behind a dynamic range): the press is
-- answered "outdated" and the message gets the current menu. Data for a
-- menu id this code does not declare is answered the same way, without
-- the new menu.
--
-- Every press is answered (answerCallbackQuery) once its handler returns,
-- unless the handler answered it itself.
local errors = require("tghost.errors")
local bot = require("tghost.bot")
local core = require("tghost.core")
local Composer = require("tghost.composer")
local runtime = require("tghost.runtime")
errors.internal()

local M = {}

local OUTDATED = "This menu was outdated; here is the current one."
local GONE = "This menu is no longer available."

-- Every menu of this generation, by id.
local registry = {}

local Menu = {}
Menu.__index = Menu
Menu.__name = "tghost.Menu"
M.Menu = Menu

local Range = {}
Range.__index = Range
Range.__name = "tghost.MenuRange"

-- === building ===========================================================

local function check_label(label, what)
  local t = type(label)
  if t ~= "string" and t ~= "number" and t ~= "function" then
    errors.raise("%s: the label must be a string or a function(ctx) -> "
                 .. "string, not %s", what, t)
  end
end

local function check_fn(fn, what)
  if type(fn) ~= "function" then
    errors.raise("%s: expected a handler function(ctx), not %s", what, type(fn))
  end
end

-- A label may be { text = ..., payload = ... } (payload: ctx.match of the
-- press, for buttons built in a loop).
local function split_label(label, what)
  if type(label) == "table" then
    local payload = label.payload
    if payload ~= nil and type(payload) ~= "string" and math.tointeger(payload) == nil then
      errors.raise("%s: payload must be a string or an integer, not %s", what,
                   type(payload))
    end
    check_label(label.text, what)
    return label.text, payload ~= nil and tostring(payload) or nil
  end
  check_label(label, what)
  return label, nil
end

-- Buttons go into self.items: { kind = "button" | "row" | "dynamic", ... }.
local function add(self, item)
  self.items[#self.items + 1] = item
  return self
end

local function builders(class, owner_name)
  -- text(label, handler): a button that runs handler(ctx) when pressed.
  function class.text(self, label, handler)
    local text, payload = split_label(label, owner_name .. ":text")
    check_fn(handler, owner_name .. ":text")
    return add(self, { kind = "button", type = "text", label = text,
                       payload = payload, handler = handler })
  end
  -- submenu(label, id [, handler]): shows menu id in place of this one
  -- (after handler, if given).
  function class.submenu(self, label, id, handler)
    check_label(label, owner_name .. ":submenu")
    if type(id) ~= "string" then
      errors.raise("%s:submenu(label, id): the id of the menu to show must be "
                   .. "a string, not %s", owner_name, type(id))
    end
    if handler ~= nil then check_fn(handler, owner_name .. ":submenu") end
    return add(self, { kind = "button", type = "nav", label = label,
                       target = id, handler = handler })
  end
  -- back(label [, handler]): shows the parent menu (the one this menu was
  -- registered with).
  function class.back(self, label, handler)
    check_label(label, owner_name .. ":back")
    if handler ~= nil then check_fn(handler, owner_name .. ":back") end
    return add(self, { kind = "button", type = "back", label = label,
                       handler = handler })
  end
  -- url(label, url), webApp(label, url), copyText(label, text),
  -- switchInline(label, query), switchInlineCurrent(label, query): buttons
  -- Telegram handles itself.
  local function plain(name, field, wrap)
    class[name] = function(self, label, value)
      check_label(label, owner_name .. ":" .. name)
      if type(value) ~= "string" then
        errors.raise("%s:%s(label, %s): expected a string, not %s", owner_name,
                     name, field, type(value))
      end
      return add(self, { kind = "button", type = "plain", label = label,
                         field = field, value = wrap and wrap(value) or value })
    end
  end
  plain("url", "url")
  plain("webApp", "web_app", function(v) return { url = v } end)
  plain("copyText", "copy_text", function(v) return { text = v } end)
  plain("switchInline", "switch_inline_query")
  plain("switchInlineCurrent", "switch_inline_query_current_chat")
  -- row(): the next button starts a new row.
  function class.row(self)
    return add(self, { kind = "row" })
  end
end
builders(Menu, "menu")
builders(Range, "range")

-- dynamic(fn): fn(ctx, range) adds buttons to range when the menu is
-- rendered (it may call the Bot API, read the session, ...).
function Menu.dynamic(self, fn)
  if type(fn) ~= "function" then
    errors.raise("menu:dynamic(fn): expected a function(ctx, range), not %s",
                 type(fn))
  end
  return add(self, { kind = "dynamic", fn = fn })
end

-- register(menu, ...): submenus of this menu (their back() comes here).
function Menu.register(self, ...)
  for i = 1, select("#", ...) do
    local sub = (select(i, ...))
    if getmetatable(sub) ~= Menu then
      errors.raise("menu:register(menu, ...): argument %d is not a "
                   .. "tghost.Menu", i)
    end
    sub.parent = self.id
  end
  return self
end

-- === rendering ==========================================================

local function label_of(label, ctx)
  if type(label) == "function" then
    local text = label(ctx)
    if type(text) ~= "string" and type(text) ~= "number" then
      errors.raise("menu: a label function returned %s, not a string",
                   type(text))
    end
    return tostring(text)
  end
  return tostring(label)
end

-- FNV-1a over the layout, as 6 base-36 digits.
local function fingerprint(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  h = h % 2176782336   -- 36^6
  local digits = "0123456789abcdefghijklmnopqrstuvwxyz"
  local out = {}
  for i = 6, 1, -1 do
    local d = h % 36
    out[i] = digits:sub(d + 1, d + 1)
    h = h // 36
  end
  return table.concat(out)
end
M.fingerprint = fingerprint

-- The menu's buttons for ctx: rows of { button = entry }, the pressable
-- buttons in order, and the fingerprint.
local function layout(menu, ctx)
  local rows, pressable, parts = { {} }, {}, {}
  local function put(item)
    if item.kind == "row" then
      if #rows[#rows] > 0 then rows[#rows + 1] = {} end
      parts[#parts + 1] = "|"
      return
    end
    local label = label_of(item.label, ctx)
    local entry = { item = item, label = label }
    local row = rows[#rows]
    row[#row + 1] = entry
    if item.type ~= "plain" then
      pressable[#pressable + 1] = entry
      entry.index = #pressable
    end
    parts[#parts + 1] = table.concat({ item.type, label, item.target or "",
                                       item.payload or "", item.field or "",
                                       type(item.value) == "string" and item.value or "" }, "\0")
  end
  for _, item in ipairs(menu.items) do
    if item.kind == "dynamic" then
      local range = setmetatable({ items = {} }, Range)
      local r = item.fn(ctx, range)
      if getmetatable(r) == Range and r ~= range then range = r end
      for _, sub in ipairs(range.items) do put(sub) end
    else
      put(item)
    end
  end
  if #rows[#rows] == 0 then rows[#rows] = nil end
  return rows, pressable, fingerprint(menu.id .. "\0" .. table.concat(parts, "\1"))
end

-- The InlineKeyboardMarkup of menu for ctx (ctx may be nil outside an
-- update: labels and ranges then get nil).
function Menu.render(self, ctx)
  if getmetatable(self) ~= Menu then
    errors.raise("menu:render(ctx) must be called with a colon")
  end
  local rows, _, fp = layout(self, ctx)
  local out = {}
  for r, row in ipairs(rows) do
    out[r] = {}
    for c, entry in ipairs(row) do
      local item = entry.item
      local button = { text = entry.label }
      if item.type == "plain" then
        button[item.field] = item.value
      else
        local data = self.id .. "/" .. entry.index .. "/" .. fp
        if item.payload then data = data .. "/" .. item.payload end
        if #data > 64 then
          errors.raise("menu %q: the callback data of button %q is %d bytes, "
                       .. "over Telegram's 64 (a shorter menu id or payload)",
                       self.id, entry.label, #data)
        end
        button.callback_data = data
      end
      out[r][c] = button
    end
  end
  return { inline_keyboard = out }
end

-- === pressing ===========================================================

-- What a handler's ctx.menu offers: update() redraws this menu, nav(id)
-- shows another, back() the parent, close() removes the buttons.
local function controller(ctx, menu)
  local c = { menu = menu }
  local function show(target)
    local m = registry[target]
    if not m then
      errors.raise("ctx.menu:nav(%q): no menu has this id", tostring(target))
    end
    local markup = m:render(ctx)
    local text = m.heading
    if type(text) == "function" then text = text(ctx) end
    c.shown = m
    if text ~= nil then
      local ok, e = pcall(ctx.editMessageText, ctx, text, { reply_markup = markup })
      if ok then return end
      -- The same text: Telegram refuses the edit; the buttons still change.
      if not (type(e) == "table" and tostring(e.description):find("not modified", 1, true)) then
        error(e, 0)
      end
    end
    local ok, e = pcall(ctx.editMessageReplyMarkup, ctx, { reply_markup = markup })
    if not ok and not (type(e) == "table"
                       and tostring(e.description):find("not modified", 1, true)) then
      error(e, 0)
    end
  end
  function c.update() show((c.shown or menu).id) end
  function c.nav(a, b) show(a == c and b or a) end
  function c.back()
    local cur = c.shown or menu
    if not cur.parent then
      errors.raise("ctx.menu:back(): menu %q has no parent (register it with "
                   .. "parent:register(menu))", cur.id)
    end
    show(cur.parent)
  end
  function c.close()
    c.shown = nil
    ctx:editMessageReplyMarkup()
  end
  return setmetatable(c, { __index = function(_, k)
    if k == "id" then return (c.shown or menu).id end
  end, __name = "tghost.MenuControl" })
end

-- Answers the press once, whoever asks first: the handler (through
-- ctx:answerCallbackQuery) or the menu afterwards.
local function answer_once(ctx)
  local answered = false
  local original = ctx.answerCallbackQuery
  rawset(ctx, "answerCallbackQuery", function(self, ...)
    answered = true
    return original(self, ...)
  end)
  return function(text)
    if answered then return end
    answered = true
    -- A press too old to answer (a restart in between) is no error here.
    pcall(original, ctx, text)
  end
end

local function parse(data)
  local id, index, fp, rest = data:match("^([^/]+)/(%d+)/(%w%w%w%w%w%w)(.*)$")
  if not id then return nil end
  if rest ~= "" and rest:sub(1, 1) ~= "/" then return nil end
  return id, tonumber(index), fp, rest ~= "" and rest:sub(2) or nil
end

local function press(ctx, menu, index, fp, payload)
  local finish = answer_once(ctx)
  local _, pressable, current = layout(menu, ctx)
  local entry = pressable[index]
  if current ~= fp or not entry then
    finish(OUTDATED)
    local ok, e = pcall(function()
      ctx:editMessageReplyMarkup({ reply_markup = menu:render(ctx) })
    end)
    if not ok then core.log("debug", "menu " .. menu.id .. ": " .. tostring(e)) end
    return
  end
  local item = entry.item
  local c = controller(ctx, menu)
  rawset(ctx, "menu", c)
  ctx.match = payload
  local ok, e = pcall(function()
    if item.handler then item.handler(ctx) end
    if item.type == "nav" then c.nav(item.target)
    elseif item.type == "back" then c.back() end
  end)
  finish()
  if not ok then error(e, 0) end
end

-- The middleware: presses on this menu's buttons (and its submenus',
-- registered or not: every menu of this generation) run their handlers;
-- everything else passes on.
function Menu.middleware(self)
  return function(ctx, next)
    local u = ctx.update
    local cq = u.callback_query
    local data = cq and cq.data
    if data then
      local id, index, fp, payload = parse(data)
      if id then
        local menu = registry[id]
        if menu then return press(ctx, menu, index, fp, payload) end
        -- A menu this code no longer declares.
        local finish = answer_once(ctx)
        finish(GONE)
        return
      end
    end
    return next()
  end
end

-- === creating ===========================================================

local OPTIONS = { text = true, outdated = true }

local transformer_installed = false

-- Renders a menu found as reply_markup, for the update being handled.
local function install_transformer()
  if transformer_installed then return end
  transformer_installed = true
  bot.api.config.use(function(prev, method, params)
    local markup = type(params) == "table" and params.reply_markup
    if getmetatable(markup) == Menu then
      local ctx = runtime.context_of((core.current()))
      local copy = {}
      for k, v in pairs(params) do copy[k] = v end
      copy.reply_markup = markup:render(ctx)
      params = copy
    end
    return prev(method, params)
  end)
end

-- tghost.Menu(id [, { text = string | function(ctx) }]): text, if given,
-- replaces the message's text when the menu is shown by navigation.
function M.new(id, opts)
  if type(id) ~= "string" or id == "" or id:find("/", 1, true) or #id > 32 then
    errors.raise("tghost.Menu(id): the id must be a non-empty string of at most "
                 .. "32 bytes without '/', got %s",
                 type(id) == "string" and string.format("%q", id) or type(id))
  end
  if opts ~= nil and type(opts) ~= "table" then
    errors.raise("tghost.Menu(id, opts): opts must be a table, not %s", type(opts))
  end
  for k in pairs(opts or {}) do
    if not OPTIONS[k] then
      errors.raise("tghost.Menu: unknown option %s (known: text)", tostring(k))
    end
  end
  if registry[id] then
    errors.raise("tghost.Menu(%q): a menu with this id exists already", id)
  end
  install_transformer()
  local m = setmetatable({ id = id, items = {}, heading = opts and opts.text }, Menu)
  registry[id] = m
  return m
end

-- For allowed_updates: a menu handles callback queries only.
Composer.register_needs(Menu, function() return false, { callback_query = true } end)

return M
