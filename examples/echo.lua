-- The smallest useful bot: answers every text message with its text.
--
--   scripts/dev.sh run --sandbox examples/echo.lua     talk to it here
--   BOT_TOKEN=123:abc scripts/dev.sh run examples/echo.lua   on Telegram
--   tghost --sandbox examples/echo.lua --script examples/echo.chat   test it

-- /start: bot.command matches the message's bot_command entity, so it
-- works as "/start" and "/start@yourbot" alike.
-- tghost.fmt: formatted text without a parse mode (the name stays text
-- whatever it holds).
bot.command("start", function(ctx)
  local fmt = tghost.fmt
  ctx:reply(fmt("Hi ", fmt.bold(ctx.from.first_name), "! Send me anything and I will echo it."))
end)

-- Every other text message (a filter query: messages that have a text).
bot.on("message:text", function(ctx)
  ctx:reply(ctx.msg.text)
end)

-- Errors of any handler end up here instead of in the log.
bot.catch(function(err)
  tghost.log.error("update", err.ctx.update.update_id, "failed:", err.error)
end)

-- Long polling with grammY runner's defaults: updates handled concurrently.
run(bot)
