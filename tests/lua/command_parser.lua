-- bot.command's parser (the bot_command entity at offset 0, /name@bot,
-- captions, arguments) and the other triggers: hears (Lua patterns),
-- callbackQuery (exact data or whole-data patterns), inlineQuery.
local t = require("lib.apitest")
local Context = require("tghost.context")
local triggers = require("tghost.triggers")

local bot = t.fake_bot()
local json = tghost.json

-- UTF-16 length of a UTF-8 string (what entity offsets count).
local function u16len(s)
  local n = 0
  for _, c in utf8.codes(s) do n = n + (c > 0xFFFF and 2 or 1) end
  return n
end

-- An update as Telegram sends it: the bot_command entity covers "/name"
-- or "/name@bot" at the start of the text (or caption).
local function message(text, opts)
  opts = opts or {}
  local m = { message_id = 1, date = 1717000000,
              chat = { id = -100123, type = "supergroup", title = "G" },
              from = { id = 7, is_bot = false, first_name = "Ada" } }
  local field = opts.caption and "caption" or "text"
  m[field] = text
  local entities = {}
  for _, e in ipairs(opts.before or {}) do entities[#entities + 1] = e end
  if opts.entity ~= false then
    local cmd_start, cmd = text:match("()(/[%w_@]+)")
    if cmd_start then
      entities[#entities + 1] = { type = "bot_command",
                                  offset = u16len(text:sub(1, cmd_start - 1)),
                                  length = u16len(cmd) }
    end
  end
  if #entities > 0 then
    m[opts.caption and "caption_entities" or "entities"] = entities
  end
  if opts.caption then m.photo = { { file_id = "p", file_unique_id = "u", width = 1, height = 1 } } end
  return { update_id = 1, [opts.kind or "message"] = m }
end

local function run(pred, update, b)
  local ctx = Context.new(update, b or bot)
  local ok = pred(ctx)
  return ok, ctx.match
end

local start = triggers.command("start")

t.test("/start", function()
  local ok, match = run(start, message("/start"))
  t.eq(ok, true)
  t.eq(match, "")
end)

t.test("arguments: the rest of the text, leading space removed", function()
  t.eq({ run(start, message("/start hello world")) }, { true, "hello world" })
  t.eq({ run(start, message("/start    spaced out  ")) }, { true, "spaced out  " })
  t.eq({ run(start, message("/start\nsecond line")) }, { true, "second line" })
  t.eq({ run(start, message("/start привет 👋 мир")) }, { true, "привет 👋 мир" })
  t.eq({ run(start, message("/start ref_ABC-123")) }, { true, "ref_ABC-123" })
end)

t.test("/name@thisbot, not /name@otherbot", function()
  t.eq({ run(start, message("/start@test_bot")) }, { true, "" })
  t.eq({ run(start, message("/start@test_bot payload")) }, { true, "payload" })
  t.eq({ run(start, message("/start@Test_Bot")) }, { true, "" })   -- usernames ignore case
  t.eq(run(start, message("/start@other_bot")), false)
  t.eq(run(start, message("/start@other_bot payload")), false)
  -- before getMe answered, the bot cannot know it is addressed
  t.eq(run(start, message("/start@test_bot"), { api = bot.api }), false)
  t.eq(run(start, message("/start"), { api = bot.api }), true)
end)

t.test("only the command itself, at the start, counts", function()
  t.eq(run(start, message("/startle")), false)
  t.eq(run(start, message("/star")), false)
  t.eq(run(start, message("/Start")), false)          -- exact, as grammY
  t.eq(run(start, message("hey /start")), false)      -- entity at offset 6
  t.eq(run(start, message("@test_bot /start")), false)
  t.eq(run(start, message("/start", { entity = false })), false)   -- no entity
  t.eq(run(start, message("start")), false)
end)

t.test("other entities at offset 0 do not hide the command", function()
  local u = message("/start now", { before = { { type = "bold", offset = 0, length = 10 } } })
  t.eq({ run(start, u) }, { true, "now" })
end)

t.test("captions", function()
  t.eq({ run(start, message("/start from a photo", { caption = true })) },
       { true, "from a photo" })
  t.eq({ run(start, message("/start@test_bot x", { caption = true })) }, { true, "x" })
end)

t.test("channel posts yes, edits no", function()
  t.eq(run(start, message("/start", { kind = "channel_post" })), true)
  t.eq(run(start, message("/start", { kind = "edited_message" })), false)
  t.eq(run(start, message("/start", { kind = "business_message" })), false)
end)

t.test("a list of names; a name with @bot", function()
  local p = triggers.command({ "help", "about" })
  t.eq({ run(p, message("/about me")) }, { true, "me" })
  t.eq({ run(p, message("/help")) }, { true, "" })
  t.eq(run(p, message("/start")), false)
  local only_at = triggers.command("stop@test_bot")
  t.eq(run(only_at, message("/stop@test_bot")), true)
  t.eq(run(only_at, message("/stop@TEST_BOT")), true)
  t.eq(run(only_at, message("/stop")), false)
end)

t.test("the command's update types", function()
  local _, types = triggers.command("x")
  t.eq(types, { message = true, channel_post = true })
end)

t.test("bad command names raise at registration", function()
  t.raises(function() triggers.command("/start") end, "do not include '/'", "use 'start' not '/start'")
  t.raises(function() triggers.command("two words") end, "invalid command name 'two words'")
  t.raises(function() triggers.command({}) end, "expected at least one trigger")
  t.raises(function() triggers.command(42) end, "expected a string")
  local c = tghost.Composer()
  local line = debug.getinfo(1, "l").currentline + 1
  local msg = t.raises(function() c.command("/help", function() end) end, "use 'help'")
  t.truthy(msg:find("command_parser.lua:" .. line .. ":", 1, true), msg)
end)

-- === hears ===============================================================

t.test("hears: a plain string matches the whole text exactly, as in grammY", function()
  local hi = triggers.hears("hi")
  t.eq({ run(hi, message("hi")) }, { true, { "hi" } })
  t.eq(run(hi, message("this is high")), false)
  t.eq(run(hi, message("hi there")), false)
  t.eq(run(hi, message("Hi")), false)
  local what = triggers.hears("What?")
  t.eq(run(what, message("Whatever")), false)
  t.eq(run(what, message("Wha")), false)
  t.eq({ run(what, message("What?")) }, { true, { "What?" } })
  -- magic characters of ordinary text are text
  local dots = triggers.hears({ "C++", "1.5", "50%", "(smile)", "a-b" })
  for _, text in ipairs({ "C++", "1.5", "50%", "(smile)", "a-b" }) do
    t.eq(run(dots, message(text)), true, text)
  end
  t.eq(run(dots, message("C")), false)
  t.eq(run(dots, message("115")), false)
  t.eq(run(dots, message("ab")), false)
end)

t.test("hears: ^ or tghost.pattern makes a Lua pattern; captures, or the whole match", function()
  local p = triggers.hears("^I am (%a+), (%d+) years old$")
  t.eq({ run(p, message("I am Ada, 36 years old")) }, { true, { "Ada", "36" } })
  t.eq(run(p, message("I am Ada")), false)
  local whole = triggers.hears(tghost.pattern("%d+"))
  t.eq({ run(whole, message("room 101, floor 1")) }, { true, { "101" } })
  local pos = triggers.hears(tghost.pattern("()needle()"))
  t.eq({ run(pos, message("a needle")) }, { true, { 3, 9 } })
  -- a pattern object may also be written as a table
  local tbl = triggers.hears({ pattern = "^bye" })
  t.eq({ run(tbl, message("bye now")) }, { true, { "bye" } })
  t.eq(tostring(tghost.pattern("%d+")), 'tghost.pattern("%d+")')
end)

t.test("hears: lists, captions, channel posts; not edits or callbacks", function()
  local p = triggers.hears({ "^hi$", "^hello$" })
  t.eq({ run(p, message("hello")) }, { true, { "hello" } })
  t.eq(run(p, message("hello!")), false)
  local mixed = triggers.hears({ "stop", tghost.pattern("^go (%a+)") })
  t.eq({ run(mixed, message("stop")) }, { true, { "stop" } })
  t.eq({ run(mixed, message("go north")) }, { true, { "north" } })
  t.eq(run(mixed, message("stop it")), false)
  local any = triggers.hears(tghost.pattern("cat"))
  t.eq(run(any, message("a cat photo", { caption = true })), true)
  t.eq(run(any, message("cat", { kind = "channel_post" })), true)
  t.eq(run(any, message("cat", { kind = "edited_message" })), false)
  local cq = json.decode([[{"update_id":2,"callback_query":{"id":"1","from":{"id":1,"is_bot":false,"first_name":"A"},"chat_instance":"1","data":"cat"}}]])
  t.eq(run(any, cq), false)
  local exact = triggers.hears("a cat photo")
  t.eq(run(exact, message("a cat photo", { caption = true })), true)
end)

t.test("hears: a malformed pattern raises at registration", function()
  t.raises(function() triggers.hears("^[a-z") end, "invalid Lua pattern '^[a-z'", "malformed pattern")
  t.raises(function() triggers.hears({ "ok", tghost.pattern("%d"), "^%" }) end, "invalid Lua pattern '^%'")
  t.raises(function() tghost.pattern("[a-z") end, "tghost.pattern: invalid Lua pattern '[a-z'")
  t.raises(function() tghost.pattern(42) end, "tghost.pattern: expected a Lua pattern (a string), got number")
  t.raises(function() triggers.hears(42) end, "hears: expected a string, tghost.pattern(...) or a list")
  t.raises(function() triggers.hears({}) end, "hears: expected at least one trigger")
  -- a plain string is never a pattern, so it cannot be malformed
  local bracket = triggers.hears("[a-z")
  t.eq(run(bracket, message("[a-z")), true)
end)

-- Captures tghost's log lines while fn runs (errors.warn goes through
-- tghost.core.log).
local function logged(fn)
  local core = require("tghost.core")
  local lines, saved = {}, core.log
  core.log = function(level, msg) lines[#lines + 1] = level .. ": " .. msg end
  local ok, err = pcall(fn)
  core.log = saved
  if not ok then error(err, 0) end
  return lines
end

t.test("hears: a plain string that looks like a pattern is warned about at its line", function()
  local line = debug.getinfo(1, "l").currentline + 1
  local lines = logged(function() triggers.hears("remind me in (%d+) (%a+)") end)
  t.eq(#lines, 1, "one warning")
  t.truthy(lines[1]:find("^warn: ") and
           lines[1]:find("command_parser.lua:" .. line .. ": ", 1, true), lines[1])
  t.truthy(lines[1]:find("matches exactly this text", 1, true), lines[1])
  t.truthy(lines[1]:find("tghost.pattern(\"remind me in (%d+) (%a+)\")", 1, true), lines[1])
  for _, looks in ipairs({ "a.*b", "x.+", "[abc]", "bye$", "%s" }) do
    t.eq(#logged(function() triggers.hears(looks) end), 1, looks)
  end
  -- ordinary text, anchored patterns and pattern objects are not warned about
  for _, fine in ipairs({ "What?", "C++", "page.2", "vote-up", "50%", "$", "(hi)",
                          "^%d+$" }) do
    t.eq(#logged(function() triggers.hears(fine) end), 0, fine)
  end
  t.eq(#logged(function() triggers.hears(tghost.pattern("%d+")) end), 0)
end)

-- === callbackQuery =======================================================

local function callback(data)
  return { update_id = 3, callback_query = {
    id = "77", from = { id = 7, is_bot = false, first_name = "Ada" },
    chat_instance = "9", data = data,
    message = { message_id = 5, date = 1, chat = { id = 7, type = "private" }, text = "?" } } }
end

t.test("callbackQuery: exact data", function()
  local p = triggers.callback_query("yes")
  t.eq({ run(p, callback("yes")) }, { true, { "yes" } })
  t.eq(run(p, callback("yesno")), false)   -- whole data, not a prefix
  t.eq(run(p, callback("no yes")), false)
  -- magic characters are data, not pattern items
  local dash = triggers.callback_query({ "vote-up", "page.2", "100%" })
  t.eq(run(dash, callback("vote-up")), true)
  t.eq(run(dash, callback("votup")), false)
  t.eq(run(dash, callback("page.2")), true)
  t.eq(run(dash, callback("pagex2")), false)
  t.eq(run(dash, callback("100%")), true)
  local page = triggers.callback_query("page1")
  t.eq(run(page, callback("page10")), false)
end)

t.test("callbackQuery: a string starting with ^ is a Lua pattern", function()
  local p = triggers.callback_query("^item:(%d+)$")
  t.eq({ run(p, callback("item:42")) }, { true, { "42" } })
  t.eq(run(p, callback("item:42x")), false)
  t.eq(run(p, callback("xitem:42")), false)
  local prefix = triggers.callback_query("^buy:")
  t.eq({ run(prefix, callback("buy:apple:3")) }, { true, { "buy:" } })
  local list = triggers.callback_query({ "a", "^b:(.*)" })
  t.eq({ run(list, callback("b:rest")) }, { true, { "rest" } })
  t.eq({ run(list, callback("a")) }, { true, { "a" } })
  t.eq(run(list, callback("c")), false)
  t.raises(function() triggers.callback_query("^(") end, "invalid Lua pattern")
  -- a pattern-looking string without ^ is exact data
  local exact = triggers.callback_query("item:(%d+)")
  t.eq(run(exact, callback("item:42")), false)
  t.eq(run(exact, callback("item:(%d+)")), true)
end)

t.test("callbackQuery: game queries and messages do not match", function()
  local p = triggers.callback_query("^.*")
  local game = callback(nil)
  game.callback_query.game_short_name = "snake"
  t.eq(run(p, game), false)
  t.eq(run(p, message("anything")), false)
end)

-- === inlineQuery =========================================================

t.test("inlineQuery: exact text or patterns on the query text", function()
  local p = triggers.inline_query("^gif (.+)$")
  local iq = { update_id = 4, inline_query = { id = "1", from = { id = 7, is_bot = false,
               first_name = "A" }, query = "gif cats", offset = "" } }
  t.eq({ run(p, iq) }, { true, { "cats" } })
  iq.inline_query.query = "cats"
  t.eq(run(p, iq), false)
  local everything = triggers.inline_query(tghost.pattern(""))
  t.eq({ run(everything, iq) }, { true, { "" } })
  t.eq(run(everything, message("x")), false)
  local exact = triggers.inline_query("cats")
  t.eq({ run(exact, iq) }, { true, { "cats" } })
  iq.inline_query.query = "cats and dogs"
  t.eq(run(exact, iq), false)
  local empty = triggers.inline_query("")
  t.eq(run(empty, iq), false)
  iq.inline_query.query = ""
  t.eq({ run(empty, iq) }, { true, { "" } })
end)

-- === chosenInlineResult, preCheckoutQuery, shippingQuery, gameQuery, reaction

local fx = require("fixtures.updates")

t.test("chosenInlineResult, preCheckoutQuery, shippingQuery: exact or pattern", function()
  local chosen = fx.get("chosen_inline_result")          -- result_id "r-1"
  t.eq({ run(triggers.chosen_inline_result("r-1"), chosen) }, { true, { "r-1" } })
  t.eq(run(triggers.chosen_inline_result("r"), chosen), false)
  t.eq({ run(triggers.chosen_inline_result("^r%-(%d+)$"), chosen) }, { true, { "1" } })
  t.eq(run(triggers.chosen_inline_result("r-1"), message("r-1")), false)
  local pre = fx.get("pre_checkout_query")
  local payload = pre.pre_checkout_query.invoice_payload
  t.eq({ run(triggers.pre_checkout_query(payload), pre) }, { true, { payload } })
  t.eq(run(triggers.pre_checkout_query(payload .. "x"), pre), false)
  t.eq(run(triggers.pre_checkout_query(payload), fx.get("shipping_query")), false)
  local ship = fx.get("shipping_query")                  -- payload "order-7"
  t.eq({ run(triggers.shipping_query({ "x", "^order%-(%d+)" }), ship) }, { true, { "7" } })
  t.eq(run(triggers.shipping_query("order"), ship), false)
end)

t.test("gameQuery: the game's short name, never callback data", function()
  local game = callback(nil)
  game.callback_query.game_short_name = "snake"
  t.eq({ run(triggers.game_query("snake"), game) }, { true, { "snake" } })
  t.eq(run(triggers.game_query("snak"), game), false)
  t.eq(run(triggers.game_query("snake"), callback("snake")), false)
  t.eq(run(triggers.callback_query("snake"), game), false)
end)

local function reaction(old, new)
  return { update_id = 9, message_reaction = { chat = { id = 1, type = "private" },
           message_id = 5, date = 1, old_reaction = old, new_reaction = new } }
end
local function emoji(e) return { type = "emoji", emoji = e } end
local function custom(id) return { type = "custom_emoji", custom_emoji_id = id } end

t.test("reaction: a wanted reaction was added (new, and not there before)", function()
  local thumbs = triggers.reaction("👍")
  t.eq(run(thumbs, reaction({}, { emoji("👍") })), true)
  t.eq(run(thumbs, reaction({ emoji("👍") }, { emoji("👍") })), false)   -- kept, not added
  t.eq(run(thumbs, reaction({ emoji("👍") }, {})), false)                -- removed
  t.eq(run(thumbs, reaction({}, { emoji("🔥") })), false)
  t.eq(run(thumbs, reaction({ emoji("🔥") }, { emoji("🔥"), emoji("👍") })), true)
  t.eq(run(thumbs, fx.get("message_reaction")), true)
  t.eq(run(thumbs, message("👍")), false)
  local list = triggers.reaction({ "🔥", emoji("🎉"), custom("42") })
  t.eq(run(list, reaction({}, { emoji("🎉") })), true)
  t.eq(run(list, reaction({}, { custom("42") })), true)
  t.eq(run(list, reaction({ custom("42") }, { custom("42") })), false)
  t.eq(run(list, reaction({}, { custom("43") })), false)
  t.eq(run(triggers.reaction(custom("42")), reaction({}, { custom("42") })), true)
  -- a reaction type tghost does not know (paid) counts as added, as in grammY
  t.eq(run(thumbs, reaction({}, { { type = "paid" } })), true)
  t.raises(function() triggers.reaction({}) end, "reaction: expected at least one reaction")
  t.raises(function() triggers.reaction(42) end, "reaction: expected an emoji")
end)

t.test("chatType", function()
  local p = triggers.chat_type({ "group", "supergroup" })
  t.eq(run(p, message("x")), true)
  t.eq(run(p, callback("x")), false)   -- a private chat
  t.raises(function() triggers.chat_type("privat") end, "did you mean 'private'?")
end)

t.done()
