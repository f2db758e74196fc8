-- Command descriptions: registration and its checks, the lists per scope
-- and language, and "did you mean /start?" through bot.handleUpdate.
local t = require("lib.apitest")
local commands = tghost.commands

local function cmd(text, username)
  local name = text:match("^%S+")
  return { message = { message_id = 1, date = 0, text = text,
    chat = { id = 9, type = "private" },
    from = { id = 9, is_bot = false, first_name = "Bo" },
    entities = { { type = "bot_command", offset = 0, length = #name } } } }
end

bot.botInfo = { id = 1, is_bot = true, first_name = "B", username = "my_bot" }
bot.command("start", "Start the bot", function(ctx) ctx:reply("started") end)
bot.command("help", { description = "Show help", descriptions = { de = "Hilfe zeigen" } },
            function(ctx) ctx:reply("help") end)
bot.command("settings", { description = "Settings", scope = "all_private_chats" },
            function(ctx) ctx:reply("settings") end)
bot.command("ban", { description = "Ban a user",
                     scope = { "all_chat_administrators", { type = "chat", chat_id = -100 } } },
            function(ctx) ctx:reply("ban") end)
bot.command("secret", function(ctx) ctx:reply("secret") end)   -- not listed

t.test("every name is known; described ones are listed in order", function()
  local names = {}
  for _, c in ipairs(commands.list()) do names[#names + 1] = c.name end
  t.eq(names, { "start", "help", "settings", "ban", "secret" })
end)

t.test("one list per scope and language; other languages fill in the default", function()
  local plan = commands.plan()
  local got = {}
  for _, g in ipairs(plan) do
    local items = {}
    for _, c in ipairs(g.commands) do items[#items + 1] = c.command .. "=" .. c.description end
    got[g.key] = table.concat(items, ", ")
  end
  t.eq(got, {
    ["default|||"] = "start=Start the bot, help=Show help",
    ["default|||de"] = "start=Start the bot, help=Hilfe zeigen",
    ["all_private_chats|||"] = "settings=Settings",
    ["all_private_chats|||de"] = "settings=Settings",
    ["all_chat_administrators|||"] = "ban=Ban a user",
    ["all_chat_administrators|||de"] = "ban=Ban a user",
    ["chat|-100||"] = "ban=Ban a user",
    ["chat|-100||de"] = "ban=Ban a user",
  })
  t.eq(plan[1].scope, { type = "all_chat_administrators" })
  t.eq(plan[2].language_code, "de")
end)

t.test("descriptions that Telegram would refuse raise at the line", function()
  t.raises(function() bot.command("Start2", "Upper case", function() end) end,
           "commands.lua:", "lowercase")
  t.raises(function() bot.command("x1", { description = "" }, function() end) end, "1 to 256")
  t.raises(function() bot.command("x2", { description = string.rep("a", 257) }, function() end) end, "1 to 256")
  t.raises(function() bot.command("x3", { description = "d", scope = "private" }, function() end) end,
           "unknown scope", "all_private_chats")
  t.raises(function() bot.command("x4", { description = "d", descriptions = { german = "x" } }, function() end) end,
           "two-letter")
  t.raises(function() bot.command("x5", { description = "d", descripton = 1 }, function() end) end,
           "unknown option descripton")
end)

t.test("the nearest command to a typo", function()
  t.eq(commands.nearest("strat"), "start")
  t.eq(commands.nearest("/hepl"), "help")
  t.eq(commands.nearest("START"), "start")
  t.eq(commands.nearest("zzzzzz"), nil)
end)

t.test("unknown commands: nothing by default", function()
  local r = bot.handleUpdate(cmd("/strat"))
  t.eq(#r.calls, 0)
end)

t.test("suggest = true: 'Did you mean' for a near one, silence for the rest", function()
  commands{ suggest = true }
  local r = bot.handleUpdate(cmd("/strat"))
  t.eq(#r.calls, 1)
  t.eq(r.calls[1].params.text, "Unknown command /strat. Did you mean /start?")
  t.eq(#bot.handleUpdate(cmd("/qwertyuiop")).calls, 0)
  t.eq(bot.handleUpdate(cmd("/start")).calls[1].params.text, "started", "known: handled")
  t.eq(#bot.handleUpdate(cmd("/strat@other_bot")).calls, 0, "another bot's command")
  t.eq(bot.handleUpdate(cmd("/strat@my_bot")).calls[1].params.text,
       "Unknown command /strat. Did you mean /start?")
end)

t.test("suggest = function: the bot answers as it likes", function()
  local seen
  commands{ suggest = function(ctx, near) seen = near; ctx:reply("?? " .. tostring(near)) end }
  local r = bot.handleUpdate(cmd("/hlep"))
  t.eq(seen, "help")
  t.eq(r.calls[1].params.text, "?? help")
  r = bot.handleUpdate(cmd("/nothinglikeit"))
  t.eq(r.calls[1].params.text, "?? nil")
  commands{ suggest = false }
  t.eq(#bot.handleUpdate(cmd("/hlep")).calls, 0)
  t.raises(function() commands{ sugest = true } end, "unknown option sugest")
end)

t.done()
