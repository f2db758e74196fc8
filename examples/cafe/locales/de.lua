-- German (tghost.i18n, examples/cafe/bot.lua).
return {
  welcome = "Willkommen im Lua Café, {name}!",
  menu = {
    order = "☕ Bestellen",
    settings = "⚙ Einstellungen",
    language = "🌐 Sprache",
    back = "‹ Zurück",
    notify_on = "🔔 Neuigkeiten: an",
    notify_off = "🔕 Neuigkeiten: aus",
    settings_title = "Einstellungen",
    language_title = "Wähle deine Sprache",
  },
  language_set = "Ich spreche jetzt Deutsch.",
  ask_drink = "Was darf es sein?",
  ask_cups = "Wie viele Tassen?",
  cups_retry = "Bitte eine Zahl von 1 bis 9.",
  confirm = "{cups} × {drink}. Soll ich es zubereiten?",
  cups = { one = "{count} Tasse {drink} ist unterwegs.",
           other = "{count} Tassen {drink} sind unterwegs." },
  cancelled = "Kein Problem, vielleicht später.",
  yes = "Ja", no = "Nein",
}
