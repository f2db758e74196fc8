-- Calling HTTP APIs from a handler. tghost.http suspends only the update
-- that waits: the bot goes on answering everyone else meanwhile.
--
--   scripts/dev.sh run --sandbox examples/http.lua
--   then: /fetch https://www.lua.org
--         /json https://api.github.com/repos/lua/lua stargazers_count
--         /both https://www.lua.org https://curl.se
--
-- Its transcript (examples/http.chat) needs a server to talk to: the test
-- suite starts one and passes its address in HTTP_EXAMPLE_URL.

-- One GET, described in a line. tghost.http.get returns nil and a message
-- when the request fails (no answer, a timeout): handle it like any value.
local function fetch(url)
  local started = tghost.now()
  local res, err = tghost.http.get(url, { timeout = 5 })
  if not res then return "could not fetch " .. url .. ": " .. err end
  return string.format("%s: HTTP %d, %d bytes in %.0f ms", url, res.status,
                       #res.body, (tghost.now() - started) * 1000)
end

bot.command("fetch", function(ctx)
  if ctx.match == "" then return ctx:reply("Usage: /fetch URL") end
  ctx:sendChatAction("typing")
  ctx:reply(fetch(ctx.match))
end)

-- /json URL KEY: a JSON API. tghost.json keeps big integers exact.
bot.command("json", function(ctx)
  local url, key = ctx.match:match("^(%S+)%s+(%S+)$")
  if not url then return ctx:reply("Usage: /json URL KEY") end
  local res, err = tghost.http.get(url, {
    timeout = 5,
    headers = { ["Accept"] = "application/json" },
  })
  if not res then return ctx:reply("could not fetch " .. url .. ": " .. err) end
  if res.status ~= 200 then return ctx:reply("HTTP " .. res.status) end
  local ok, data = pcall(tghost.json.decode, res.body)
  if not ok or type(data) ~= "table" then
    return ctx:reply("the answer is not a JSON object")
  end
  ctx:reply(key .. " = " .. tostring(data[key]))
end)

-- /both URL1 URL2: two requests at once; the reply waits for both, and
-- takes as long as the slower one, not as the two together.
bot.command("both", function(ctx)
  local a, b = ctx.match:match("^(%S+)%s+(%S+)$")
  if not a then return ctx:reply("Usage: /both URL1 URL2") end
  local started = tghost.now()
  local lines = tghost.all{
    function() return fetch(a) end,
    function() return fetch(b) end,
  }
  lines[#lines + 1] = string.format("both done in %.0f ms", (tghost.now() - started) * 1000)
  ctx:reply(table.concat(lines, "\n"))
end)

run(bot)
