-- The Lua Café: a menu three levels deep, two languages with plurals, and
-- an order taken with a form, all in one bot.
--
--   tghost --sandbox examples/cafe/bot.lua            (then /start)
--   tghost --sandbox examples/cafe/bot.lua --script examples/cafe/bot.chat
--
-- The user's language comes from Telegram (language_code) until they pick
-- one in the menu; the choice is kept in the session. Texts live in
-- locales/*.lua, hot-reloaded with the script.
bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))
bot.use(session{ initial = function() return { news = false } end })

local i18n = tghost.i18n{ directory = "locales", defaultLocale = "en", useSession = true }
bot.use(i18n)

local DRINKS = { "Espresso", "Latte", "Cocoa" }

-- A label in the user's language.
local function t(key) return function(ctx) return ctx:t(key) end end

local main = tghost.Menu("main")
local settings = tghost.Menu("settings", { text = t("menu.settings_title") })
local language = tghost.Menu("language", { text = t("menu.language_title") })

main
  :text(t("menu.order"), function(ctx)
    ctx:answerCallbackQuery()
    local drink = ctx.form:select(DRINKS, { prompt = ctx:t("ask_drink"), columns = 3 })
    local cups = ctx.form:number{ prompt = ctx:t("ask_cups"), integer = true,
                                  min = 1, max = 9, retry = ctx:t("cups_retry") }
    local ok = ctx.form:confirm{ prompt = ctx:t("confirm", { cups = cups, drink = drink }),
                                 yes = ctx:t("yes"), no = ctx:t("no") }
    if ok then
      ctx:reply(ctx:t("cups", { count = cups, drink = drink }))
    else
      ctx:reply(ctx:t("cancelled"))
    end
  end)
  :submenu(t("menu.settings"), "settings")

settings
  :text(function(ctx) return ctx:t(ctx.session.news and "menu.notify_on" or "menu.notify_off") end,
        function(ctx)
          ctx.session.news = not ctx.session.news
          ctx.menu:update()
        end)
  :submenu(t("menu.language"), "language"):row()
  :back(t("menu.back"))

-- One button per locale file, built when the menu is shown.
local NAMES = { en = "English", de = "Deutsch" }
language
  :dynamic(function(ctx, range)
    for _, code in ipairs(i18n.locales) do
      local mark = ctx.i18n:getLocale() == code and "✓ " or ""
      range:text({ text = mark .. (NAMES[code] or code), payload = code }, function(c)
        c.i18n:setLocale(c.match)
        c:answerCallbackQuery(c:t("language_set"))
        c.menu:update()
      end)
    end
  end)
  :row()
  :back(t("menu.back"))

main:register(settings)
settings:register(language)
bot.use(main)

bot.command("start", "Open the café", function(ctx)
  ctx:reply(ctx:t("welcome", { name = ctx.from.first_name }), { reply_markup = main })
end)

run(bot)
