-- What the plugins cost per update, in CPU time, without a server:
--
--   build/tghost bench/plugins.lua
--
-- ctx:t with a placeholder and with a plural; a menu rendered (as
-- reply_markup) and a press routed to its handler (fingerprint checked);
-- the rate limiter's count in the memory storage; a multi session's read
-- and write back. Each runs through its middleware on a fresh context,
-- as an update would (bot.handleUpdate's job is left out: it is the
-- runner's cost, the same for every update).
local Context = require("tghost.context")
local json = require("tghost.json")

local N = 100000
local function measure(name, fn)
  collectgarbage()
  local spent = 0
  for _ = 1, N // 1000 do
    local t0 = os.clock()
    for _ = 1, 1000 do fn() end
    spent = spent + os.clock() - t0
    tghost.sleep(0)
  end
  print(string.format("%-52s %6.2f us/update", name, spent * 1e6 / N))
end

local message = json.decode('{"update_id":1,"message":{"message_id":5,'
  .. '"from":{"id":123456,"is_bot":false,"first_name":"User","language_code":"ru"},'
  .. '"chat":{"id":123456,"type":"private"},"date":1717000000,"text":"ping"}}')
local function noop() end

local i18n = tghost.i18n{ defaultLocale = "en", locales = {
  en = { hi = "Hello, {name}!", n = { one = "{count} file", other = "{count} files" } },
  ru = { hi = "Привет, {name}!", n = { one = "{count} файл", few = "{count} файла",
                                       many = "{count} файлов", other = "{count} файла" } } } }
local mw = i18n:middleware()
measure("i18n middleware + ctx:t with a placeholder", function()
  local ctx = Context.new(message, bot)
  mw(ctx, function() ctx:t("hi", { name = "Ann" }) end)
end)
measure("i18n middleware + ctx:t of a plural (ru, 23)", function()
  local ctx = Context.new(message, bot)
  mw(ctx, function() ctx:t("n", { count = 23 }) end)
end)

local menu = tghost.Menu("bench")
for i = 1, 6 do menu:text("Button " .. i, noop) end
menu:row():dynamic(function(_, range)
  for i = 1, 4 do range:text({ text = "Item " .. i, payload = i }, noop) end
end)
local rendered = menu:render(nil)
measure("menu:render (10 buttons, 4 of them dynamic)", function() menu:render(nil) end)
local press = json.decode('{"update_id":2,"callback_query":{"id":"1","chat_instance":"1",'
  .. '"from":{"id":1,"is_bot":false,"first_name":"A"},"data":"'
  .. rendered.inline_keyboard[1][3].callback_data .. '"}}')
local menu_mw = menu:middleware()
local function no_answer() return true end
measure("menu press routed to its handler (answer stubbed)", function()
  local ctx = Context.new(press, bot)
  rawset(ctx, "answerCallbackQuery", no_answer)
  menu_mw(ctx, noop)
end)

local limit = tghost.ratelimit{ limit = 1e9, window = 60 }
measure("ratelimit (memory storage)", function()
  limit(Context.new(message, bot), noop)
end)

local multi = session{ type = "multi", a = { initial = function() return { n = 0 } end },
                       b = { initial = function() return {} end } }
measure("multi session: one name read and written back", function()
  local ctx = Context.new(message, bot)
  multi(ctx, function() ctx.session.a.n = ctx.session.a.n + 1 end)
end)
