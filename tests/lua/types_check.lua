-- The annotations catch what the issue says editors let through: a
-- checker of member chains against types/tghost.lua and types/botapi.lua
-- (tests/lua/lib/typecheck.lua, standing in for lua-language-server,
-- which is neither in Debian nor on npm) flags a list of known typos
-- (ctx:repyl, bot.api.sendMesage, ctx.msg.txt, ...) with the right
-- suggestion, and finds nothing to say about the correct spellings or
-- about any of the examples (a field a script adds to ctx is declared in
-- the script, as lua-language-server needs it to be).
local t = require("lib.apitest")
local typecheck = require("lib.typecheck")

local here = (...):match("^(.*)/[^/]*$") or "."
local function read(path)
  local f = assert(io.open(here .. "/../../" .. path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

local model = typecheck.new()
typecheck.load(model, read("types/tghost.lua"))
typecheck.load(model, read("types/botapi.lua"))
local ROOTS = { ctx = "tghost.Context", bot = "tghost.Bot", tghost = "tghost" }

local function check(text) return typecheck.check(model, text, ROOTS) end

t.test("known typos are flagged, with the right suggestion", function()
  local script = table.concat({
    'bot.command("start", function(ctx)',
    '  ctx:repyl("hi")',
    '  local t = ctx.msg.txt',
    '  bot.api.sendMesage(1, "x")',
    '  local title = ctx.chat.titel',
    '  tghost.fmt.bolt("x")',
    '  local d = ctx.callbackQuery.dta',
    '  ctx:answerCallbackQury()',
    '  local name = bot.api.getMe().usernme',
    '  local id = ctx:reply("x").mesage_id',
    '  ctx:replyWithPhot("file_id")',
    '  bot.api.config{ parseMode = "HTML" }',
    '  local u = ctx.update.callback_qery',
    '  bot.stp()',
    'end)',
  }, "\n")
  local got = {}
  for _, f in ipairs(check(script)) do
    got[#got + 1] = string.format("%d %s -> %s", f.line, f.name, tostring(f.suggestion))
  end
  t.eq(got, {
    "2 repyl -> reply",
    "3 txt -> text",
    "4 sendMesage -> sendMessage",
    "5 titel -> title",
    "6 bolt -> bold",
    "7 dta -> data",
    "8 answerCallbackQury -> answerCallbackQuery",
    "9 usernme -> username",
    "10 mesage_id -> message_id",
    "11 replyWithPhot -> replyWithPhoto",
    "13 callback_qery -> callback_query",
    "14 stp -> stop",
  })
end)

t.test("the correct spellings pass", function()
  local script = table.concat({
    'bot.command("start", function(ctx)',
    '  ctx:reply("hi")',
    '  local t = ctx.msg.text',
    '  bot.api.sendMessage(1, "x")',
    '  local title = ctx.chat.title',
    '  tghost.fmt.bold("x")',
    '  local d = ctx.callbackQuery.data',
    '  ctx:answerCallbackQuery()',
    '  local name = bot.api.getMe().username',
    '  local id = ctx:reply("x").message_id',
    '  ctx:replyWithInvoice("t", "d", "p", "XTR", {})',
    '  ctx:banAuthor()',
    '  bot.api.config.use(function(prev, m, p) return prev(m, p) end)',
    '  bot.stop()',
    'end)',
  }, "\n")
  t.eq(check(script), {})
end)

t.test("no finding in the examples", function()
  for _, name in ipairs({ "echo", "commands", "files", "http", "register",
                          "sequentialize", "modular/bot", "modular/admin",
                          "modular/fun", "modular/greeting" }) do
    local text = read("examples/" .. name .. ".lua")
    -- A script declares the fields it adds to ctx as LuaCATS too.
    typecheck.load(model, text)
    local findings = check(text)
    local shown = {}
    for _, f in ipairs(findings) do
      shown[#shown + 1] = string.format("%s:%d %s.%s", name, f.line, f.class, f.name)
    end
    t.eq(shown, {}, "examples/" .. name .. ".lua")
  end
end)

t.done()
