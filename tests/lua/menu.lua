-- Menus through bot.handleUpdate: rendering as reply_markup, presses that
-- run handlers and answer the query, three levels of submenus and back,
-- dynamic ranges with payloads, state in the session, outdated and
-- unknown menus.
local t = require("lib.apitest")

local next_id = 0
local function upd(body)
  next_id = next_id + 1
  body.update_id = next_id
  return body
end
local USER = { id = 7, is_bot = false, first_name = "Alice", language_code = "en" }
local CHAT = { id = 7, type = "private" }
local function command(name)
  return upd{ message = { message_id = 1, date = 0, chat = CHAT, from = USER,
    text = "/" .. name, entities = { { type = "bot_command", offset = 0, length = #name + 1 } } } }
end
local function press(data)
  return upd{ callback_query = { id = "cq" .. next_id, from = USER, chat_instance = "1",
    data = data, message = { message_id = 50, date = 0, chat = CHAT, text = "menu" } } }
end

-- The keyboard a call sent (reply_markup, or what an edit set).
local function keyboard(call) return call.params.reply_markup.inline_keyboard end
local function labels(kb)
  local out = {}
  for _, row in ipairs(kb) do
    local r = {}
    for _, b in ipairs(row) do r[#r + 1] = b.text end
    out[#out + 1] = table.concat(r, " | ")
  end
  return out
end
local function find(kb, label)
  for _, row in ipairs(kb) do
    for _, b in ipairs(row) do
      if b.text == label then return b end
    end
  end
  error("no button " .. label .. " in " .. t.show(labels(kb)), 2)
end
local function methods(r)
  local out = {}
  for i, c in ipairs(r.calls) do out[i] = c.method end
  return out
end

bot.use(session{ initial = function() return { notify = false, items = { "apple", "pear" } } end })

local log = {}
local main = tghost.Menu("main")
  :text("Hello", function(ctx) log[#log + 1] = "hello"; ctx:reply("Hi!") end)
  :submenu("Settings", "settings"):row()
  :url("Docs", "https://example.com/docs")
local settings = tghost.Menu("settings", { text = "Settings" })
  :text(function(ctx) return ctx.session.notify and "🔔 on" or "🔕 off" end, function(ctx)
    ctx.session.notify = not ctx.session.notify
    ctx.menu:update()
  end)
  :submenu("Advanced", "advanced"):row()
  :back("Back")
local advanced = tghost.Menu("advanced", { text = function(ctx) return "Advanced for " .. ctx.from.first_name end })
  :dynamic(function(ctx, range)
    for i, item in ipairs(ctx.session.items) do
      range:text({ text = item, payload = i }, function(c)
        log[#log + 1] = "picked " .. c.match
        c:answerCallbackQuery("You picked " .. item)
      end):row()
    end
  end)
  :text("Add kiwi", function(ctx)
    local items = ctx.session.items
    items[#items + 1] = "kiwi"
    ctx.menu:update()
  end)
  :back("Back")
main:register(settings)
settings:register(advanced)
bot.use(main)
bot.command("menu", function(ctx) ctx:reply("Main menu", { reply_markup = main }) end)

local sent
t.test("a menu as reply_markup is rendered for the update", function()
  local r = bot.handleUpdate(command("menu"))
  t.eq(r.outcome, "done")
  sent = keyboard(r.calls[1])
  t.eq(labels(sent), { "Hello | Settings", "Docs" })
  t.eq(find(sent, "Docs").url, "https://example.com/docs")
  t.truthy(find(sent, "Hello").callback_data:match("^main/1/%w+$"), find(sent, "Hello").callback_data)
end)

t.test("a press runs the handler and answers the query once", function()
  local r = bot.handleUpdate(press(find(sent, "Hello").callback_data))
  t.eq(methods(r), { "sendMessage", "answerCallbackQuery" })
  t.eq(log[#log], "hello")
  t.eq(r.calls[2].params.text, nil, "an empty answer")
end)

t.test("three levels down and back up again", function()
  -- main -> settings (its text replaces the message's)
  local r = bot.handleUpdate(press(find(sent, "Settings").callback_data))
  t.eq(methods(r), { "editMessageText", "answerCallbackQuery" })
  t.eq(r.calls[1].params.text, "Settings")
  local s = keyboard(r.calls[1])
  t.eq(labels(s), { "🔕 off | Advanced", "Back" })
  -- settings -> advanced: the dynamic range from the session
  r = bot.handleUpdate(press(find(s, "Advanced").callback_data))
  t.eq(r.calls[1].params.text, "Advanced for Alice")
  local a = keyboard(r.calls[1])
  t.eq(labels(a), { "apple", "pear", "Add kiwi | Back" })
  -- a dynamic button: its payload is ctx.match; it answered itself
  r = bot.handleUpdate(press(find(a, "pear").callback_data))
  t.eq(methods(r), { "answerCallbackQuery" })
  t.eq(r.calls[1].params.text, "You picked pear")
  t.eq(log[#log], "picked 2")
  -- back to settings, back to main
  r = bot.handleUpdate(press(find(a, "Back").callback_data))
  t.eq(r.calls[1].params.text, "Settings")
  s = keyboard(r.calls[1])
  r = bot.handleUpdate(press(find(s, "Back").callback_data))
  t.eq(methods(r), { "editMessageReplyMarkup", "answerCallbackQuery" },
       "main has no text of its own: only the buttons change")
  t.eq(labels(keyboard(r.calls[1])), { "Hello | Settings", "Docs" })
end)

t.test("state in the session: a toggle redraws its own label", function()
  local r = bot.handleUpdate(press(find(sent, "Settings").callback_data))
  local s = keyboard(r.calls[1])
  r = bot.handleUpdate(press(find(s, "🔕 off").callback_data))
  t.eq(labels(keyboard(r.calls[1])), { "🔔 on | Advanced", "Back" })
  -- the old message's button is now outdated (its label changed)
  r = bot.handleUpdate(press(find(s, "🔕 off").callback_data))
  t.eq(methods(r), { "answerCallbackQuery", "editMessageReplyMarkup" })
  t.truthy(r.calls[1].params.text:find("outdated", 1, true), r.calls[1].params.text)
  t.eq(labels(keyboard(r.calls[2])), { "🔔 on | Advanced", "Back" }, "the current menu")
end)

t.test("data behind a dynamic range changed: outdated, nothing runs", function()
  local r = bot.handleUpdate(press(find(sent, "Settings").callback_data))
  r = bot.handleUpdate(press(find(keyboard(r.calls[1]), "Advanced").callback_data))
  local a = keyboard(r.calls[1])
  local before = #log
  r = bot.handleUpdate(press(find(a, "Add kiwi").callback_data))
  t.eq(labels(keyboard(r.calls[1])), { "apple", "pear", "kiwi", "Add kiwi | Back" })
  r = bot.handleUpdate(press(find(a, "apple").callback_data))
  t.eq(#log, before, "the stale press ran no handler")
  t.truthy(r.calls[1].params.text:find("outdated", 1, true))
end)

t.test("a menu id the code no longer declares is answered, other data passes", function()
  local r = bot.handleUpdate(press("oldmenu/3/abcdef"))
  t.eq(methods(r), { "answerCallbackQuery" })
  t.truthy(r.calls[1].params.text:find("no longer available", 1, true))
  local other
  bot.callbackQuery("plain:data", function(ctx) other = true; ctx:answerCallbackQuery() end)
  r = bot.handleUpdate(press("plain:data"))
  t.truthy(other, "data that is not a menu's goes on down the stack")
end)

t.test("callback data depends on the layout only: the same in every process", function()
  -- A reloaded script or a restarted process declares the menu again; a
  -- fingerprint that hashed addresses or pairs() order would differ.
  local kb = tghost.Menu("fixed"):text("Hello", function() end):row()
    :submenu("Next", "other"):render(nil)
  t.eq(kb.inline_keyboard[1][1].callback_data, "fixed/1/m9be4w")
  t.eq(kb.inline_keyboard[2][1].callback_data, "fixed/2/m9be4w")
  local changed = tghost.Menu("fixed2"):text("Hello!", function() end):render(nil)
  t.truthy(changed.inline_keyboard[1][1].callback_data ~= "fixed2/1/m9be4w")
end)

t.test("mistakes raise at the script's line", function()
  t.raises(function() tghost.Menu("a/b") end, "menu.lua:", "without '/'")
  t.raises(function() tghost.Menu("main") end, "exists already")
  t.raises(function() tghost.Menu("x1"):text("a") end, "expected a handler")
  t.raises(function() tghost.Menu("x2"):submenu("a", 5) end, "must be a string")
  t.raises(function()
    tghost.Menu("x3"):text({ text = "a", payload = string.rep("p", 60) }, function() end):render()
  end, "over Telegram's 64")
end)

t.test("allowed_updates: a menu needs callback queries", function()
  local Composer = require("tghost.composer")
  local all, types = Composer.needs(main)
  t.eq(all, false)
  t.eq(types, { callback_query = true })
end)

t.done()
