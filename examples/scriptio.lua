-- Script I/O in one bot: an HTTP API, several requests at once, uploads,
-- downloads and flood control. Every call suspends only its own handler.
--
--   BOT_TOKEN=... tghost examples/scriptio.lua

local script_path = ...   -- tghost passes the script's path to its chunk

-- Keep within Telegram's limits when many chats are answered at once.
bot.api.config{ throttle = true }

-- /time: ask a web API (any JSON service works the same way).
bot.command("time", function(ctx)
  local res, err = tghost.http.get(
      "https://worldtimeapi.org/api/timezone/Etc/UTC", { timeout = 5 })
  if not res then return ctx:reply("the time service failed: " .. err) end
  local data = tghost.json.decode(res.body)
  ctx:reply(data and data.datetime or ("HTTP " .. res.status))
end)

-- /status: three requests at once; the reply waits for all of them.
bot.command("status", function(ctx)
  local function probe(url)
    return function()
      local res = tghost.http.request{ method = "HEAD", url = url, timeout = 5 }
      return url .. ": " .. (res and res.status or "down")
    end
  end
  local lines = tghost.all{
    probe("https://api.telegram.org"),
    probe("https://www.lua.org"),
    probe("https://curl.se"),
  }
  ctx:reply(table.concat(lines, "\n"))
end)

-- /source: upload this very script as a document (streamed from disk).
bot.command("source", function(ctx)
  ctx.api.sendDocument{ chat_id = ctx.chat.id,
                        document = tghost.InputFile(script_path, "scriptio.lua") }
end)

-- A document sent to the bot is saved under /tmp and its size reported.
bot.on("message:document", function(ctx)
  local file = ctx:getFile()
  local path, size = tghost.download(file, "/tmp/" .. file.file_unique_id)
  ctx:reply(path and ("saved " .. size .. " bytes") or size)
end)

run(bot)
