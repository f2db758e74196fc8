-- Files both ways. Uploads stream from disk (or go from memory), downloads
-- stream to disk: a big file never sits in memory, and nothing waits on
-- the event loop.
--
--   scripts/dev.sh run --sandbox examples/files.lua
--   then: /source, /report, :document PATH or :photo PATH
--   tghost --sandbox examples/files.lua --script examples/files.chat

local script_path = ...   -- tghost passes the script's path to its chunk

-- /source: this very script as a document, read from disk while it is sent.
bot.command("source", function(ctx)
  ctx:sendChatAction("upload_document")
  ctx:replyWithDocument(tghost.InputFile(script_path, "files.lua"),
                        { caption = "my own source" })
end)

-- /report: a file made in memory.
bot.command("report", function(ctx)
  local lines = {}
  for i = 1, 100 do lines[i] = string.format("line %d of the report", i) end
  ctx:replyWithDocument(tghost.InputFile{ data = table.concat(lines, "\n"),
                                          filename = "report.txt" })
end)

-- A document or photo from the user: getFile, then download it. The
-- download goes to DEST.part and is renamed to DEST when complete.
bot.on({ "message:document", "message:photo" }, function(ctx)
  local file = ctx:getFile()
  local dest = os.tmpname()
  local path, size = tghost.download(file, dest)
  if not path then
    os.remove(dest)
    return ctx:reply("the download failed: " .. size)
  end
  os.remove(path)
  local name = ctx.msg.document and ctx.msg.document.file_name or "your photo"
  ctx:reply(string.format("got %s: %d bytes", name, size))
end)

run(bot)
