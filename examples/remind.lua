-- Reminders: scheduled jobs that a handler starts and that run later, on
-- their own, without holding up the chat (tghost.jobs).
--
--   /remind 10m tea        once, in 10 minutes ("90s", "1h30m", "2d")
--   /daily 09:00 stand-up  every day at 09:00 (in TZ, UTC by default)
--   /list                  this chat's reminders
--   /cancel 2              forget reminder #2
--
--   tghost --sandbox examples/remind.lua   (then /remind 1m tea, :wait 1m)
--   tghost --sandbox examples/remind.lua --script examples/remind.chat

local TZ = os.getenv("TZ_REMIND") or "UTC"

-- A job names its handler; its data (any storable value) says what to do.
bot.job("remind", function(job)
  job:reply("⏰ " .. job.data.text)
end)

-- Each chat's reminders have ids "<chat>:<n>": /list finds them by that
-- prefix, and /cancel cannot reach another chat's.
local function prefix(ctx) return tostring(ctx.chat.id) .. ":" end

local function usage(ctx, text) ctx:reply("Usage: " .. text) end

bot.command("remind", function(ctx)
  local when, text = ctx.match:match("^(%S+)%s+(.+)$")
  if not when then return usage(ctx, "/remind 10m tea") end
  local ok, id = pcall(tghost.jobs.at, when, "remind",
                       { chat_id = ctx.chat.id, text = text },
                       { prefix = prefix(ctx), tz = TZ })
  if not ok then return usage(ctx, "/remind 10m tea (10m, 1h30m, 2d, 18:30)") end
  ctx:reply(("OK, #%s in %s: %s"):format(id:sub(#prefix(ctx) + 1), when, text))
end)

bot.command("daily", function(ctx)
  local time, text = ctx.match:match("^(%d%d?:%d%d)%s+(.+)$")
  if not time then return usage(ctx, "/daily 09:00 stand-up") end
  local id = tghost.jobs.daily(time, "remind",
                               { chat_id = ctx.chat.id, text = text },
                               { prefix = prefix(ctx), tz = TZ })
  ctx:reply(("OK, #%s every day at %s %s: %s"):format(id:sub(#prefix(ctx) + 1),
                                                      time, TZ, text))
end)

bot.command("list", function(ctx)
  local lines = {}
  for _, job in ipairs(tghost.jobs.list(prefix(ctx))) do
    lines[#lines + 1] = ("#%s %s, next %s: %s"):format(
      job.id:sub(#prefix(ctx) + 1), job.schedule,
      os.date("!%Y-%m-%d %H:%M UTC", math.floor(job.next)), job.data.text)
  end
  ctx:reply(#lines > 0 and table.concat(lines, "\n") or "No reminders.")
end)

bot.command("cancel", function(ctx)
  local n = ctx.match:match("^#?(%d+)$")
  if not n then return usage(ctx, "/cancel 2") end
  if tghost.jobs.cancel(prefix(ctx) .. n) then
    ctx:reply("Cancelled #" .. n .. ".")
  else
    ctx:reply("There is no reminder #" .. n .. ".")
  end
end)

bot.on("message:text", function(ctx)
  ctx:reply("Try /remind 10m tea, /daily 09:00 stand-up, /list, /cancel 1")
end)

-- Jobs live in memory here (they survive hot reloads); to keep them
-- across restarts, and to share them between processes, give them a
-- storage: jobs = { storage = tghost.storage.sqlite("remind.db") }.
run(bot)
