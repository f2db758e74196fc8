-- Admin commands, only for the users listed in ADMINS (user ids), and only
-- in private chats. bot.filter returns the composer behind the predicate.
local admin = tghost.Composer()

local ADMINS = {}
for id in (os.getenv("BOT_ADMINS") or ""):gmatch("%d+") do
  ADMINS[math.tointeger(tonumber(id))] = true
end

local handled = 0
admin.use(function(ctx, next)
  handled = handled + 1
  next()
end)

local private_admin = admin.chatType("private").filter(function(ctx)
  return ctx.from ~= nil and ADMINS[ctx.from.id] == true
end)

private_admin.command("stats", function(ctx)
  ctx:reply(string.format("%d updates so far; %.0f KiB of Lua memory",
                          handled, collectgarbage("count")))
end)

-- Everyone else asking for /stats.
admin.command("stats", function(ctx)
  ctx:reply("Only admins may see that, in a private chat.")
end)

return admin
