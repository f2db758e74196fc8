-- Keyboard builders produce the Bot API's JSON shapes.
local t = require("lib.apitest")
local json = tghost.json

-- The JSON text decoded again: what Telegram would receive.
local function sent(kb) return json.decode(json.encode({ reply_markup = kb })).reply_markup end

t.test("inline keyboard: rows and buttons", function()
  local kb = tghost.InlineKeyboard()
    :text("Yes", "vote:yes"):text("No", "vote:no"):row()
    :url("Read more", "https://lua.org")
  t.eq(sent(kb), { inline_keyboard = {
    { { text = "Yes", callback_data = "vote:yes" }, { text = "No", callback_data = "vote:no" } },
    { { text = "Read more", url = "https://lua.org" } },
  } })
  t.truthy(json.encode(kb):find('"inline_keyboard":[[{', 1, true), "arrays of arrays")
end)

t.test("inline keyboard: every button kind", function()
  local kb = tghost.InlineKeyboard()
    :text("Same")
    :webApp("App", "https://app.example"):row()
    :login("Login", "https://login.example")
    :switchInline("Share", "query"):switchInlineCurrent("Here"):row()
    :switchInlineChosen("Pick", { allow_user_chats = true })
    :copyText("Copy", "promo-123")
  t.eq(sent(kb), { inline_keyboard = {
    { { text = "Same", callback_data = "Same" }, { text = "App", web_app = { url = "https://app.example" } } },
    { { text = "Login", login_url = { url = "https://login.example" } },
      { text = "Share", switch_inline_query = "query" },
      { text = "Here", switch_inline_query_current_chat = "" } },
    { { text = "Pick", switch_inline_query_chosen_chat = { allow_user_chats = true } },
      { text = "Copy", copy_text = { text = "promo-123" } } },
  } })
  local game = tghost.InlineKeyboard():game("Play")
  t.eq(sent(game).inline_keyboard[1][1].text, "Play")
  t.truthy(json.encode(game):find('"callback_game":{}', 1, true), "callback_game is an object")
  t.eq(sent(tghost.InlineKeyboard():pay("Pay 5 XTR")),
       { inline_keyboard = { { { text = "Pay 5 XTR", pay = true } } } })
end)

t.test("row() never leaves empty rows", function()
  local kb = tghost.InlineKeyboard():row():text("a", "a"):row():row():text("b", "b"):row()
  t.eq(sent(kb), { inline_keyboard = { { { text = "a", callback_data = "a" } },
                                       { { text = "b", callback_data = "b" } } } })
  t.eq(json.encode(tghost.InlineKeyboard()), '{"inline_keyboard":[]}')
end)

t.test("add and row with raw buttons; initial rows", function()
  local kb = tghost.InlineKeyboard({ { { text = "x", callback_data = "x" } } })
    :add({ text = "y", callback_data = "y" })
    :row({ text = "z", url = "https://z" }, { text = "w", url = "https://w" })
    :text("v", "v")
  t.eq(sent(kb), { inline_keyboard = {
    { { text = "x", callback_data = "x" }, { text = "y", callback_data = "y" } },
    { { text = "z", url = "https://z" }, { text = "w", url = "https://w" }, { text = "v", callback_data = "v" } },
  } })
end)

t.test("inline keyboard mistakes raise at the script's line", function()
  local line = debug.getinfo(1, "l").currentline + 1
  local msg = t.raises(function() tghost.InlineKeyboard():text("Long", string.rep("x", 65)) end,
                       "callback data must be 1 to 64 bytes")
  t.truthy(msg:find("keyboard.lua:" .. line .. ":", 1, true), msg)
  t.raises(function() tghost.InlineKeyboard():text(nil, "x") end, "label must be a string")
  t.raises(function() tghost.InlineKeyboard():url("u", 5) end, "expected a string, not number")
  t.raises(function() tghost.InlineKeyboard().text("a", "b") end, "must be called with a colon")
  t.raises(function() tghost.InlineKeyboard():add("x") end, "expected button tables")
end)

t.test("reply keyboard", function()
  local kb = tghost.Keyboard()
    :text("Menu"):text("Help"):row()
    :requestContact("Share phone"):requestLocation("Share location"):row()
    :requestPoll("New quiz", "quiz"):webApp("Open", "https://app.example")
    :resized():oneTime():persistent():selective(false):placeholder("Pick one")
  t.eq(sent(kb), {
    keyboard = {
      { { text = "Menu" }, { text = "Help" } },
      { { text = "Share phone", request_contact = true },
        { text = "Share location", request_location = true } },
      { { text = "New quiz", request_poll = { type = "quiz" } },
        { text = "Open", web_app = { url = "https://app.example" } } },
    },
    resize_keyboard = true, one_time_keyboard = true, is_persistent = true,
    selective = false, input_field_placeholder = "Pick one",
  })
  t.truthy(json.encode(tghost.Keyboard():requestPoll("Any")):find('"request_poll":{}', 1, true),
           "request_poll without a type is an object")
  local users = tghost.Keyboard():requestUsers("Pick", 1, { max_quantity = 2 })
    :requestChat("Group", 2, { chat_is_channel = false, bot_is_member = true })
  t.eq(sent(users), { keyboard = { {
    { text = "Pick", request_users = { request_id = 1, max_quantity = 2 } },
    { text = "Group", request_chat = { request_id = 2, chat_is_channel = false, bot_is_member = true } },
  } } })
end)

t.test("a keyboard goes as reply_markup through ctx:reply", function()
  local Context = require("tghost.context")
  local fx = require("fixtures.updates")
  local bot, calls = t.fake_bot()
  local kb = tghost.InlineKeyboard():text("OK", "ok")
  Context.new(fx.get("message"), bot):reply("Sure?", { reply_markup = kb })
  local encoded = json.decode(json.encode(calls[1].params))
  t.eq(encoded, { chat_id = 111222333, text = "Sure?",
                  reply_markup = { inline_keyboard = { { { text = "OK", callback_data = "ok" } } } } })
end)

t.done()
