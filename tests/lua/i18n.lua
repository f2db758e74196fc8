-- i18n: CLDR plural rules against CLDR's own samples, locale files, the
-- locale of an update (language_code, the session's override), ctx:t with
-- placeholders and plurals, fallbacks, and missing keys.
local t = require("lib.apitest")
local plural = require("tghost.plural")
local samples = require("fixtures.plural_samples")

t.test("every plural rule puts CLDR's sample numbers in their category", function()
  local langs, checked, wrong = 0, 0, {}
  for lang, cats in pairs(samples) do
    langs = langs + 1
    t.truthy(plural.known(lang), lang .. " has a rule")
    for cat, list in pairs(cats) do
      for _, n in ipairs(list) do
        checked = checked + 1
        local got = plural.category(lang, n)
        if got ~= cat then wrong[#wrong + 1] = lang .. " " .. tostring(n) .. ": " .. tostring(got) .. " (want " .. cat .. ")" end
      end
    end
  end
  t.eq(wrong, {}, "numbers in the wrong category")
  t.truthy(langs >= 60 and checked > 3000, langs .. " languages, " .. checked .. " numbers")
end)

t.test("operands: integers, floats, strings with visible fraction digits", function()
  t.eq(plural.category("en", 1), "one")
  t.eq(plural.category("en", 1.0), "one", "a float with an integral value is an integer")
  t.eq(plural.category("en", "1.0"), "other", "as written, 1.0 has a visible digit")
  t.eq(plural.category("ru", 21), "one")
  t.eq(plural.category("ru", 22), "few")
  t.eq(plural.category("ru", 11), "many")
  t.eq(plural.category("ru", 1.5), "other")
  t.eq(plural.category("ar", 102), "other")
  t.eq(plural.category("pt-BR", 0), "one")
  t.eq(plural.category("pt_PT", 0), "other", "European Portuguese has its own rule")
  t.eq(plural.category("es", 1000000), "many")
  t.eq(plural.category("xx", 1), "other", "an unknown language: other")
  t.eq(plural.category("en", "abc"), nil)
  t.eq(plural.category("en", -1), "one")
end)

local i18n = tghost.i18n{ directory = "fixtures/locales", defaultLocale = "en", useSession = true }
bot.use(session{ initial = function() return {} end })
bot.use(i18n)

local USER = { id = 3, is_bot = false, first_name = "Ann" }
local function msg(text, lang)
  local from = { id = 3, is_bot = false, first_name = "Ann", language_code = lang }
  return { message = { message_id = 1, date = 0, text = text,
    chat = { id = 3, type = "private" }, from = from,
    entities = text:sub(1, 1) == "/" and { { type = "bot_command", offset = 0, length = #text:match("^%S+") } } or nil } }
end
bot.command("apples", function(ctx)
  ctx:reply(ctx:t("apples", { count = tonumber(ctx.match) }))
end)
bot.command("hello", function(ctx)
  ctx:reply(ctx:t("welcome", { name = ctx.from.first_name }) .. " " .. ctx:t("menu.title"))
end)
bot.command("lang", function(ctx) ctx.i18n:setLocale(ctx.match) ctx:reply(ctx:t("menu.settings")) end)
bot.command("ask", function(ctx)
  ctx:reply(ctx:t("welcome", { name = "?" }))
  local answer = ctx:wait("message:text")
  answer:reply(answer:t("apples", { count = tonumber(answer.msg.text) }))
end)
local function text(r, i) return r.calls[i or 1].params.text end

t.test("the user's language_code picks the locale; plurals per language", function()
  t.eq(text(bot.handleUpdate(msg("/hello", "en"))), "Hello, Ann! Main menu")
  t.eq(text(bot.handleUpdate(msg("/hello", "ru"))), "Привет, Ann! Главное меню")
  t.eq(text(bot.handleUpdate(msg("/apples 1", "en"))), "You have 1 apple.")
  t.eq(text(bot.handleUpdate(msg("/apples 5", "en"))), "You have 5 apples.")
  t.eq(text(bot.handleUpdate(msg("/apples 0", "en"))), "You have no apples.", "an exact number first")
  t.eq(text(bot.handleUpdate(msg("/apples 1", "ru"))), "У вас 1 яблоко.")
  t.eq(text(bot.handleUpdate(msg("/apples 3", "ru"))), "У вас 3 яблока.")
  t.eq(text(bot.handleUpdate(msg("/apples 25", "ru"))), "У вас 25 яблок.")
  t.eq(text(bot.handleUpdate(msg("/apples 0", "ru"))), "У вас 0 яблок.", "ru has no [0]: many")
  t.eq(text(bot.handleUpdate(msg("/apples 1.5", "ru"))), "У вас 1.5 яблока.")
end)

t.test("regional codes: pt-br file for pt-BR, the language for pt-PT, default otherwise", function()
  t.eq(text(bot.handleUpdate(msg("/hello", "pt-br"))), "Olá, Ann! Menu principal")
  t.eq(text(bot.handleUpdate(msg("/hello", "de"))), "Hello, Ann! Main menu")
  t.eq(text(bot.handleUpdate(msg("/hello", nil))), "Hello, Ann! Main menu")
  t.eq(text(bot.handleUpdate(msg("/apples 1000000", "pt-br"))), "Você tem 1000000 de maçãs.")
end)

t.test("the override in the session wins over language_code, per user", function()
  t.eq(text(bot.handleUpdate(msg("/lang ru", "en"))), "Настройки")
  t.eq(text(bot.handleUpdate(msg("/hello", "en"))), "Привет, Ann! Главное меню")
  t.raises(function() error(bot.handleUpdate(msg("/lang xx", "en")).error, 0) end, "no locale file")
  bot.handleUpdate(msg("/lang en", "ru"))
  t.eq(text(bot.handleUpdate(msg("/hello", "ru"))), "Hello, Ann! Main menu")
end)

t.test("an answer from ctx:wait translates too, through the i18n middleware (the session's override)", function()
  bot.handleUpdate(msg("/lang ru", "en"))
  local first = tghost.spawn(bot.handleUpdate, msg("/ask", "en"))
  tghost.sleep(0.01)
  t.eq(bot.handleUpdate(msg("2", "en")).outcome, "consumed")
  local r = tghost.wait(first)
  t.eq(text(r, 2), "У вас 2 яблока.")
  bot.handleUpdate(msg("/lang en", "ru"))
end)

t.test("fallbacks, functions, missing placeholders", function()
  t.eq(i18n:t("ru", "only_en"), "English only", "the default locale's text")
  t.eq(i18n:t("ru", "no.such.key"), "no.such.key")
  t.eq(i18n:t("en", "welcome"), "Hello, {name}!", "a placeholder without a value stays")
  t.eq(i18n:t("ru", "shout", { word = "hey" }), "HEY! (en)")
  t.eq(i18n.locales, { "en", "pt-br", "ru" })
end)

t.test("bad files and options raise at the script's line", function()
  t.raises(function() tghost.i18n{ directory = "fixtures/nowhere" } end, "i18n.lua:", "cannot read the locale folder")
  t.raises(function() tghost.i18n{ directory = "fixtures/locales", defaultLocale = "fr" } end, "defaultLocale \"fr\" has no locale file")
  t.raises(function() tghost.i18n{ directry = "x" } end, "did you mean directory")
  t.raises(function() tghost.i18n{ locales = { en = { x = 5 } } } end, "x is a number")
  local inline = tghost.i18n{ locales = { en = { a = "A {n}" }, de = { a = "B {n}" } } }
  t.eq(inline:t("de", "a", { n = 2.0 }), "B 2")
end)

t.done()
