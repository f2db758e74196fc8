-- Lua's own error messages, bridged to what a bot author meant.
--
-- Lua says "attempt to call a nil value (global 'Bot')" where a grammY
-- user wrote `new Bot(token)`; "syntax error near 'bot'" for a line of
-- JavaScript; "module 'utils' not found:" and nothing more (the places it
-- looked are on the lines after, which a one-line report drops).
-- hints.explain(message) adds a pointer to the fix for those it knows;
-- hints.install() makes require's failures list where it looked.
local M = {}

-- Globals other frameworks (and JavaScript) have, and what tghost has.
local GLOBALS = {
  Bot = "tghost makes the bot for you: use the global `bot` (its token "
        .. "comes from BOT_TOKEN or --token-file), not Bot(...) or new Bot(...)",
  Telegraf = "tghost makes the bot for you: use the global `bot` (its token "
             .. "comes from BOT_TOKEN or --token-file), not new Telegraf(...)",
  TelegramBot = "tghost makes the bot for you: use the global `bot` (its "
                .. "token comes from BOT_TOKEN or --token-file)",
  Composer = "a composer is tghost.Composer()",
  InlineKeyboard = "keyboards are tghost.InlineKeyboard() and tghost.Keyboard()",
  Keyboard = "keyboards are tghost.InlineKeyboard() and tghost.Keyboard()",
  Markup = "keyboards are tghost.InlineKeyboard() and tghost.Keyboard()",
  Menu = "a menu is tghost.Menu(id), registered with bot.use(menu)",
  InputFile = "a file to send is tghost.InputFile(path [, name])",
  autoRetry = "retries on 429 and 5xx are built in; set them with "
              .. "bot.api.config{ autoRetry = { maxRetryAttempts = 3 } }",
  conversations = "conversations need no plugin: call ctx:wait(...) in any "
                  .. "handler (conversation{ ... } sets their options)",
  createConversation = "conversations need no plugin: call ctx:wait(...) in "
                       .. "any handler (conversation{ ... } sets their options)",
  import = "Lua has no import: `bot`, `run` and `tghost` are globals already, "
           .. "and your own modules load with require(\"name\")",
  console = "Lua prints with print(...); tghost.log.info(...) writes a log line",
  process = "environment variables are os.getenv(\"NAME\")",
  JSON = "JSON is tghost.json.encode(value) and tghost.json.decode(text)",
  setTimeout = "wait with tghost.sleep(seconds); run later with "
               .. "tghost.spawn(function() tghost.sleep(s) ... end)",
  setInterval = "repeat with tghost.every(seconds, function() ... end)",
  fetch = "HTTP requests are tghost.http.get(url) and "
          .. "tghost.http.request{ url = ..., method = ..., body = ... }",
  await = "Lua needs no await: a call that waits (ctx:reply, tghost.http.get) "
          .. "suspends the handler until its answer is there",
}

-- Methods of grammY's and Telegraf's bot and context that tghost spells
-- differently (or does not need).
local FIELDS = {
  launch = "bot.launch() is Telegraf's: tghost starts the bot with run(bot) "
           .. "(or bot.start()) at the end of the script",
  startPolling = "tghost starts the bot with run(bot) (or bot.start()) at the "
                 .. "end of the script",
  stop = "if that is grammY's bot.stop(): stop with the handle run(bot) "
         .. "returns (local handle = run(bot) ... handle:stop()), or os.exit()",
  init = "if that is grammY's bot.init(): it is not needed, tghost calls "
         .. "getMe when the bot starts (ctx.me, bot.botInfo)",
  action = "if that is Telegraf's bot.action(...): tghost has "
           .. "bot.callbackQuery(data, fn)",
  onText = "bot.onText(...) is node-telegram-bot-api's: tghost has "
           .. "bot.hears(pattern, fn)",
  telegram = "Telegraf's bot.telegram and ctx.telegram are bot.api and ctx.api "
             .. "in tghost (bot.api.sendMessage{ chat_id = ..., text = ... })",
  replyWithHTML = "tghost has ctx:reply(text, { parse_mode = \"HTML\" })",
  replyWithMarkdown = "tghost has ctx:reply(text, { parse_mode = \"MarkdownV2\" })",
  replyWithMarkdownV2 = "tghost has ctx:reply(text, { parse_mode = \"MarkdownV2\" })",
  answerCbQuery = "ctx.answerCbQuery() is Telegraf's: tghost has "
                  .. "ctx:answerCallbackQuery()",
  session = "if that is ctx.session: it is there once the session "
            .. "middleware runs first: bot.use(session{ initial = ... })",
  webhookCallback = "tghost serves webhooks itself: tghost --webhook URL "
                    .. "--listen ADDR:PORT bot.lua",
}

-- Modules people require out of habit, and what tghost offers instead.
local MODULES = {
  grammy = "tghost needs no require for the bot: `bot`, `run` and `tghost` "
           .. "are globals",
  telegraf = "tghost needs no require for the bot: `bot`, `run` and `tghost` "
             .. "are globals",
  ["node-telegram-bot-api"] = "tghost needs no require for the bot: `bot`, "
                              .. "`run` and `tghost` are globals",
  ["@grammyjs/runner"] = "tghost is grammY runner already: run(bot) handles "
                         .. "updates concurrently",
  json = "JSON is built in: tghost.json.encode and tghost.json.decode",
  cjson = "JSON is built in: tghost.json.encode and tghost.json.decode",
  dkjson = "JSON is built in: tghost.json.encode and tghost.json.decode",
  socket = "HTTP is built in and never blocks the bot: tghost.http.get(url)",
  ["socket.http"] = "HTTP is built in and never blocks the bot: tghost.http.get(url)",
  ["ssl.https"] = "HTTP is built in and never blocks the bot: tghost.http.get(url)",
  lsqlite3 = "SQLite is built in and never blocks the bot: "
             .. "tghost.storage.sqlite(path)",
  redis = "Redis is built in and never blocks the bot: tghost.storage.redis(url)",
}

-- The source line `line` of file, or nil.
local function source_line(file, line)
  local f = io.open(file, "r")
  if not f then return nil end
  local n, text = 0, nil
  for l in f:lines() do
    n = n + 1
    if n == line then text = l break end
  end
  f:close()
  return text
end

-- A syntax error on a line written as JavaScript.
local function javascript(message)
  local file, line = message:match("^([^\n]-):(%d+): [^\n]*near ")
  if not file then return nil end
  local text = source_line(file, tonumber(line))
  if not text then return nil end
  if text:match("^%s*const%s") or text:match("^%s*let%s")
     or text:match("^%s*var%s") or text:match("=>") or text:match("^%s*//")
     or text:match("^%s*await%s") or text:match("[%(,]%s*/[^/]") then
    return "this line looks like JavaScript; in Lua: `local x = ...`, "
           .. "`function(ctx) ... end`, `-- a comment`, patterns as strings "
           .. "(\"^hi\")"
  end
  return nil
end

-- The hint for message, or nil.
local function hint_for(message)
  local what, name = message:match("attempt to %a+ a nil value %((%a+) '([%w_]+)'%)")
  if what == "global" and GLOBALS[name] then return GLOBALS[name] end
  if (what == "field" or what == "method") and FIELDS[name] then
    return FIELDS[name]
  end
  return javascript(message)
end

-- message with a pointer to the fix appended, when there is one (only its
-- first line is changed; a traceback after it stays as it is).
function M.explain(message)
  if type(message) ~= "string" then return message end
  local ok, hint = pcall(hint_for, message)
  if not ok or not hint then return message end
  local first, rest = message:match("^([^\n]*)(.*)$")
  return first .. " (" .. hint .. ")" .. rest
end

-- --- require ---------------------------------------------------------------

-- Where require looked for name: the files of package.path's and
-- package.cpath's templates (the script's folder first), in order, each
-- once.
local function places(name)
  local list, seen = {}, {}
  local file = name:gsub("%.", "/")
  for _, templates in ipairs({ package.path, package.cpath }) do
    for template in templates:gmatch("[^;]+") do
      local place = template:find("?", 1, true) and template:gsub("%?", file)
      if place and not seen[place] then
        seen[place] = true
        list[#list + 1] = place
      end
    end
  end
  return list
end

local function module_hint(name)
  if MODULES[name] then return MODULES[name] end
  if name:match("%.lua$") then
    return "require takes a module name without .lua: require(\""
           .. name:gsub("%.lua$", "") .. "\")"
  end
  if name:match("^%.?%.?/") then
    return "require takes a module name, not a path: require(\"lib.utils\") "
           .. "loads lib/utils.lua from the script's folder"
  end
  return nil
end

-- The last of package.searchers: every other one failed, so require
-- raises this message instead of Lua's (whose list of the places tried
-- spans many lines). Stands aside when the script added searchers after it.
local function not_found(name)
  local searchers = package.searchers
  if searchers[#searchers] ~= not_found then return nil end
  local hint = module_hint(name)
  error(string.format("module '%s' not found (looked for %s)%s", name,
                      table.concat(places(name), ", "),
                      hint and ("; " .. hint) or ""), 3)
end

function M.install()
  table.insert(package.searchers, not_found)
end

return M
