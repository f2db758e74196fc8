-- The smallest useful bot: answers every text message with its text.
--
--   BOT_TOKEN=123:abc scripts/dev.sh run examples/echo.lua

bot.command("start", function(ctx)
  ctx:reply("Hi " .. ctx.from.first_name .. "! Send me anything and I will echo it.")
end)

bot.on("message:text", function(ctx)
  ctx:reply(ctx.msg.text)
end)

bot.catch(function(err)
  tghost.log.error("update", err.ctx.update.update_id, "failed:", err.error)
end)

run(bot)
