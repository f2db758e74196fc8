-- Games, with their failures kept to themselves: errors inside the error
-- boundary are answered here instead of reaching bot.catch.
local fun = tghost.Composer()

local games = tghost.Composer()
games.command("roll", function(ctx) ctx:replyWithDice("🎲") end)
games.command("coin", function(ctx)
  ctx:reply(math.random(2) == 1 and "Heads" or "Tails")
end)
games.command("fail", function(ctx) error("this game is broken on purpose") end)

fun.errorBoundary(function(err)
  tghost.log.warn("a game failed:", err.error)
  err.ctx:reply("That game is out of order, sorry.")
end, games)

return fun
