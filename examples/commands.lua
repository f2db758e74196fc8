-- Commands and keyboards: a poll with inline buttons whose counts update
-- in place, a reply-keyboard menu, command arguments and Lua patterns.
--
--   scripts/dev.sh run --sandbox examples/commands.lua   (then /poll, :click 1)
--   tghost --sandbox examples/commands.lua --script examples/commands.chat

-- The vote counts live in a memory storage: kept in C, outside the
-- script's Lua state, so they survive a hot reload (edit this file while
-- the bot runs: the counts stay). Use tghost.storage.sqlite("votes.db")
-- to keep them across restarts too.
local votes = tghost.storage.memory("votes")

local function counts() return votes:get("poll") or { yes = 0, no = 0 } end

local function poll_keyboard()
  local c = counts()
  return tghost.InlineKeyboard()
    :text("👍 " .. c.yes, "vote:yes")
    :text("👎 " .. c.no, "vote:no"):row()
    :url("What is Lua?", "https://www.lua.org/about.html")
end

-- tghost.fmt builds formatted text with its entities: no parse_mode, and
-- nothing in a user's name can break the markup.
local fmt = tghost.fmt

bot.command("start", function(ctx)
  ctx:reply(fmt("Hi ", fmt.bold(ctx.from.first_name), "! Try /poll, /menu, "
                .. "/echo some text, or tell me ", fmt.italic("remind me in 5 minutes"),
                "."))
end)

bot.command("help", function(ctx)
  ctx:reply(fmt(fmt.code("/poll"), " – vote with buttons\n", fmt.code("/menu"),
                " – a reply keyboard\n", fmt.code("/echo TEXT"), " – I repeat TEXT\n",
                fmt.code("/hide"), " – remove the keyboard"))
end)

-- ctx.match is the text after the command ("" when there is none).
bot.command({ "echo", "say" }, function(ctx)
  if ctx.match == "" then return ctx:reply("Usage: /echo some text") end
  ctx:reply(ctx.match)
end)

bot.command("poll", function(ctx)
  ctx:reply("Is Lua fun?", { reply_markup = poll_keyboard() })
end)

-- A string that starts with ^ is a Lua pattern over the whole callback
-- data; ctx.match holds its captures.
bot.callbackQuery("^vote:(%a+)$", function(ctx)
  local choice = ctx.match[1]
  -- Memory storage calls never suspend the handler, so this read and write
  -- cannot interleave with another vote's.
  local c = counts()
  c[choice] = (c[choice] or 0) + 1
  votes:set("poll", c)
  ctx:answerCallbackQuery("You voted " .. choice)
  ctx:editMessageReplyMarkup(poll_keyboard())
end)

bot.command("menu", function(ctx)
  local menu = tghost.Keyboard()
    :text("Weather"):text("News"):row()
    :requestLocation("Send my location")
    :resized():oneTime():placeholder("Pick one")
  ctx:reply("What would you like?", { reply_markup = menu })
end)

bot.command("hide", function(ctx)
  ctx:reply("Keyboard hidden.", { reply_markup = { remove_keyboard = true } })
end)

bot.hears("Weather", function(ctx) ctx:reply("Sunny, as always in Lua land.") end)
bot.hears("News", function(ctx) ctx:reply("Lua 5.4 has to-be-closed variables.") end)

bot.on("message:location", function(ctx)
  local loc = ctx.msg.location
  ctx:reply(string.format("You are at %.4f, %.4f", loc.latitude, loc.longitude))
end)

-- hears matches a plain string exactly ("Weather" above); a string that
-- starts with ^ (or tghost.pattern(p)) is a Lua pattern, whose captures
-- land in ctx.match.
bot.hears("^remind me in (%d+) (%a+)", function(ctx)
  local n, unit = tonumber(ctx.match[1]), ctx.match[2]
  local seconds = n * (unit:find("^min") and 60 or unit:find("^hour") and 3600 or 1)
  if seconds > 3600 then return ctx:reply("That is too far ahead for this demo.") end
  ctx:reply("OK, I will remind you in " .. n .. " " .. unit .. ".")
  tghost.sleep(seconds)          -- suspends this update only
  ctx:reply("⏰ Reminder!")
end)

bot.catch(function(err)
  tghost.log.error("update", err.ctx.update.update_id, "failed:", err.error)
end)

run(bot)
