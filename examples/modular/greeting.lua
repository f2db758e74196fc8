-- Greeting: /start, /help, and welcoming people who join a group.
local greeting = tghost.Composer()

greeting.command("start", function(ctx)
  ctx:reply("Hello " .. ctx.from.first_name .. "! I am made of modules. /help")
end)

greeting.command("help", function(ctx)
  ctx:reply("/start – hello\n/roll – a die\n/coin – heads or tails\n"
            .. "/stats – for admins only")
end)

-- Service messages about new members (not about the bot itself joining).
greeting.on("message:new_chat_members", function(ctx)
  for _, user in ipairs(ctx.msg.new_chat_members) do
    if user.id ~= ctx.me.id then
      ctx:reply("Welcome, " .. user.first_name .. "!")
    end
  end
end)

return greeting
