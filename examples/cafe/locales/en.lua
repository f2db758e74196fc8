-- English: the default locale (tghost.i18n, examples/cafe/bot.lua).
return {
  welcome = "Welcome to the Lua Café, {name}!",
  menu = {
    order = "☕ Order",
    settings = "⚙ Settings",
    language = "🌐 Language",
    back = "‹ Back",
    notify_on = "🔔 News: on",
    notify_off = "🔕 News: off",
    settings_title = "Settings",
    language_title = "Choose your language",
  },
  language_set = "I will speak English.",
  ask_drink = "What would you like?",
  ask_cups = "How many cups?",
  cups_retry = "Please send a number from 1 to 9.",
  confirm = "{cups} × {drink}. Shall I make it?",
  cups = { one = "{count} cup of {drink} is on its way.",
           other = "{count} cups of {drink} are on their way." },
  cancelled = "No problem, maybe later.",
  yes = "Yes", no = "No",
}
