-- A bot split into modules: each file returns a composer with its own
-- handlers, and this script puts them together with bot.use(require(...)),
-- as in grammY. Modules are required from the script's folder.
--
--   scripts/dev.sh run --sandbox examples/modular/bot.lua
--   tghost --sandbox examples/modular/bot.lua --script examples/modular/bot.chat

-- Middleware for every update: timing, and a field later handlers can use
-- (declared for editors: tghost.Context has only what tghost puts there).
---@class tghost.Context
---@field started number? When the handling of this update began.

bot.use(function(ctx, next)
  local started = tghost.now()
  ctx.started = started
  next()
  tghost.log.debug("update handled in", string.format("%.1f ms", (tghost.now() - started) * 1000))
end)

bot.use(require("greeting"))
bot.use(require("admin"))
bot.use(require("fun"))

-- Whatever no module handled.
bot.on("message:text", function(ctx)
  ctx:reply("I did not understand that. Try /help.")
end)

bot.catch(function(err)
  tghost.log.error("update", err.ctx.update.update_id, "failed:", err.error)
end)

run(bot)
