-- A module as grammY users write them: it returns a composer.
local greeting = tghost.Composer()
greeting.command("start", function(ctx) ctx.trace[#ctx.trace + 1] = "greeting" end)
greeting.on("message:text", function(ctx) ctx.trace[#ctx.trace + 1] = "greeting text" end)
return greeting
