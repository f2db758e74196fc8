-- The Bot API surface, for every method of the committed Bot API version
-- (net/botapi_methods.c, generated): callable in both of grammY's call shapes
-- (grammY's positional arguments, and a table), known to
-- --check (a stand-in result of the method's result type), annotated in
-- types/botapi.lua (both shapes), and the same in the C table and in
-- lua/apispec.lua. Then the call machinery: "did you mean", the default
-- parse_mode, transformers, formatted strings, argument errors.
local t = require("lib.apitest")
local spec = require("tghost.apispec")
local checkstub = require("tghost.checkstub")

-- Every call stops at this transformer (nothing is sent): it records the
-- method and parameters, and returns what `answer` says.
local seen = {}
local answer = function() return true end
bot.api.config.use(function(prev, method, params)
  seen[#seen + 1] = { method = method, params = params }
  return answer(method, params)
end)
local function last() return seen[#seen] end

local function spec_params(name)
  local out = {}
  for p, ty in spec.methods[name][3]:gmatch("([%w_]+!?):(%S+)") do
    out[#out + 1] = { name = p:gsub("!$", ""), required = p:sub(-1) == "!", type = ty }
  end
  return out
end

-- A value of a parameter's type that cannot be mistaken for a table of
-- parameters.
local function dummy(ty, i)
  ty = ty:match("^[^|]+")
  if ty == "integer" or ty == "number" then return 100 + i end
  if ty == "string" or ty == "InputFile" then return "v" .. i end
  if ty == "boolean" then return true end
  if ty:sub(-2) == "[]" then return { { dummy = i } } end
  if ty:match('^"') then return ty:match('^"(.*)"$') end
  return { dummy = i }
end

local methods = tghost.botapi.methods()
local here = (...):match("^(.*)/[^/]*$") or "."

t.test("the Bot API version is the committed one", function()
  t.eq(tghost.botapi.version, spec.version)
  t.truthy(#methods >= 180, "only " .. #methods .. " methods")
  local names = {}
  for name in pairs(spec.methods) do names[#names + 1] = name end
  t.eq(#methods, #names, "methods in the C table and in lua/apispec.lua")
end)

t.test("every method: the C table and lua/apispec.lua agree", function()
  for _, m in ipairs(methods) do
    local info = tghost.botapi.method(m)
    local want = spec_params(m)
    t.eq(#info.params, #want, m .. ": number of parameters")
    for i, p in ipairs(info.params) do
      t.eq({ p.name, p.required }, { want[i].name, want[i].required },
           m .. ": parameter " .. i)
    end
    t.eq(info.result, spec.methods[m][1], m .. ": result type")
  end
end)

-- The names a method's positional shape takes: grammY's (a "?" dropped).
local function positional_names(m)
  local out = {}
  for i, p in ipairs(tghost.botapi.method(m).positional) do out[i] = p:gsub("%?$", "") end
  return out
end

t.test("every method: callable in both shapes, with the same parameters", function()
  for _, m in ipairs(methods) do
    local params = spec_params(m)
    local value, positional = {}, {}
    for i, p in ipairs(params) do value[p.name] = dummy(p.type, i) end
    local args, tbl = {}, {}
    for i, name in ipairs(positional_names(m)) do
      positional[name] = true
      args[i] = value[name]
      tbl[name] = value[name]
    end
    local other
    for _, p in ipairs(params) do
      if not p.required and not positional[p.name] then
        other = { [p.name] = value[p.name] }
        tbl[p.name] = other[p.name]
        break
      end
    end
    -- Positional: grammY's positional arguments, then other.
    if other then args[#args + 1] = other end
    local n0 = #seen
    bot.api[m](table.unpack(args))
    t.eq(#seen, n0 + 1, m .. ": positional call not made")
    t.eq(last().method, m)
    local positional = last().params or {}
    -- The table shape.
    bot.api[m](next(tbl) and tbl or nil)
    t.eq(last().method, m)
    t.eq(positional, last().params or {}, m .. ": positional and table shapes differ")
    -- Colon calls work too (bot.api:method{...}).
    bot.api[m](bot.api, next(tbl) and tbl or nil)
    t.eq(last().params or {}, positional, m .. ": bot.api:" .. m)
  end
end)

t.test("every method: --check gives a stand-in of its result type", function()
  for _, m in ipairs(methods) do
    local params = {}
    for i, p in ipairs(spec_params(m)) do
      if p.required then params[p.name] = dummy(p.type, i) end
    end
    local r = checkstub.call(m, params)
    local ty = spec.methods[m][1]:match("^[^|]+")
    local kind = (ty == "boolean" and "boolean") or ((ty == "integer" or ty == "number") and "number")
        or (ty == "string" and "string") or "table"
    t.eq(type(r), kind, m .. " (" .. spec.methods[m][1] .. ") under --check")
  end
end)

t.test("every method: annotated in types/botapi.lua in both shapes", function()
  local f = assert(io.open(here .. "/../../types/botapi.lua"))
  local text = f:read("a")
  f:close()
  -- One pass: each method's doc block (the lines up to its function).
  local blocks = {}
  local start = 1
  while true do
    local s, e = text:find("\n\n", start, true)
    local block = text:sub(start, s and s - 1 or #text)
    local name = block:match("\nfunction Api%.([%w_]+)%(") or block:match("^function Api%.([%w_]+)%(")
    if name then blocks[name] = block end
    if not s then break end
    start = e + 1
  end
  for _, m in ipairs(methods) do
    local block = blocks[m]
    t.truthy(block, m .. " is not annotated")
    local required = positional_names(m)
    if #required > 0 then
      local overload = block:match("%-%-%-@overload fun%(([^)]*)%)")
      t.truthy(overload, m .. ": no positional overload")
      local names = {}
      for name in overload:gmatch("([%w_]+)%??:") do names[#names + 1] = name end
      for i, r in ipairs(required) do
        t.eq(names[i]:gsub("_$", ""), r, m .. ": positional parameter " .. i)
      end
      local P = m:gsub("^%l", string.upper)
      t.truthy(block:find("---@param params tg." .. P .. "Params", 1, true)
               or block:find("---@param params? tg." .. P .. "Params", 1, true),
               m .. ": no table shape")
    end
  end
end)

t.test("a misspelt method raises before anything is sent", function()
  local n0 = #seen
  t.raises(function() bot.api.sendMesage(1, "hi") end,
           "has no method sendMesage", "did you mean sendMessage?")
  t.raises(function() bot.api.getChatMembr{ chat_id = 1 } end,
           "did you mean getChatMember?")
  t.eq(#seen, n0, "a call was made")
  -- bot.api.raw sends any name.
  bot.api.raw.sendMesage{ chat_id = 1 }
  t.eq(last().method, "sendMesage")
end)

-- grammY's Api takes some methods' arguments in an order of its own
-- (tools/botapi/gen.mjs reads it from grammy's api.d.ts): the edit methods
-- name chat_id and message_id first, some take an optional parameter. The
-- same calls read the same in tghost.
t.test("positional arguments are grammY's", function()
  bot.api.editMessageText(1, 2, "new", { parse_mode = "HTML" })
  t.eq(last().params, { chat_id = 1, message_id = 2, text = "new", parse_mode = "HTML" })
  bot.api.editMessageReplyMarkup(1, 2, { reply_markup = { inline_keyboard = {} } })
  t.eq(last().params, { chat_id = 1, message_id = 2, reply_markup = { inline_keyboard = {} } })
  bot.api.editMessageCaption(1, 2, { caption = "c" })
  t.eq(last().params, { chat_id = 1, message_id = 2, caption = "c" })
  bot.api.editMessageMedia(1, 2, { type = "photo", media = "f" })
  t.eq(last().params, { chat_id = 1, message_id = 2, media = { type = "photo", media = "f" } })
  bot.api.editMessageLiveLocation(1, 2, 52.5, 13.4)
  t.eq(last().params, { chat_id = 1, message_id = 2, latitude = 52.5, longitude = 13.4 })
  bot.api.stopMessageLiveLocation(1, 2)
  t.eq(last().params, { chat_id = 1, message_id = 2 })
  bot.api.setMessageReaction(1, 2, { { type = "emoji", emoji = "👍" } })
  t.eq(last().params, { chat_id = 1, message_id = 2,
                        reaction = { { type = "emoji", emoji = "👍" } } })
  bot.api.setGameScore(1, 2, 3, 40)
  t.eq(last().params, { chat_id = 1, message_id = 2, user_id = 3, score = 40 })
  bot.api.sendDice(1, "🎯")
  t.eq(last().params, { chat_id = 1, emoji = "🎯" })
  bot.api.setMyName("Shop")
  t.eq(last().params, { name = "Shop" })
  bot.api.sendGift(7, "gift")
  t.eq(last().params, { user_id = 7, gift_id = "gift" })
  -- optional in grammY: may be left off at the end
  bot.api.unpinChatMessage(1)
  t.eq(last().params, { chat_id = 1 })
  bot.api.unpinChatMessage(1, 5)
  t.eq(last().params, { chat_id = 1, message_id = 5 })
  -- optional in the Bot API: may be nil in the middle (Telegram Stars)
  bot.api.createInvoiceLink("t", "d", "p", nil, "XTR", { { label = "x", amount = 1 } })
  t.eq(last().params, { title = "t", description = "d", payload = "p", currency = "XTR",
                        prices = { { label = "x", amount = 1 } } })
  t.raises(function() bot.api.editMessageText(1, 2) end,
           "bot.api.editMessageText(chat_id, message_id, text, other): text is missing")
  t.raises(function() bot.api.createInvoiceLink("t", "d", nil, "", "XTR", {}) end,
           "payload is nil")
  -- the table shape is unchanged (an inline message has no chat_id)
  bot.api.editMessageText{ inline_message_id = "i", text = "t" }
  t.eq(last().params, { inline_message_id = "i", text = "t" })
  t.eq(tghost.botapi.method("editMessageText").positional, { "chat_id", "message_id", "text" })
  t.eq(tghost.botapi.method("sendMessage").positional, { "chat_id", "text" })
end)

t.test("positional arguments: errors name the parameters", function()
  t.raises(function() bot.api.sendMessage(1) end,
           "bot.api.sendMessage(chat_id, text, other): text is missing")
  t.raises(function() bot.api.sendMessage(1, "a", {}, {}) end,
           "4 arguments, but it takes at most 3 (chat_id, text, other)")
  t.raises(function() bot.api.sendMessage(1, "a", 5) end, "other (after chat_id, text) must be a table")
  -- A table that is the first argument (no parameter names in it).
  bot.api.setMyCommands({ { command = "start", description = "Start" } })
  t.eq(last().params.commands[1].command, "start")
  -- other does not override positional arguments.
  bot.api.sendMessage(5, "x", { text = "y", parse_mode = "HTML" })
  t.eq(last().params, { chat_id = 5, text = "x", parse_mode = "HTML" })
end)

t.test("the default parse_mode", function()
  local c = bot.api.config{ parseMode = "HTML" }
  t.eq(c.parseMode, "HTML")
  bot.api.sendMessage(1, "<b>x</b>")
  t.eq(last().params.parse_mode, "HTML")
  bot.api.sendMessage(1, "x", { parse_mode = "MarkdownV2" })
  t.eq(last().params.parse_mode, "MarkdownV2", "an explicit parse_mode wins")
  bot.api.sendMessage(1, "x", { entities = { { type = "bold", offset = 0, length = 1 } } })
  t.eq(last().params.parse_mode, nil, "entities: no parse_mode")
  bot.api.sendMessage(1, tghost.fmt.bold("x"))
  t.eq(last().params.parse_mode, nil, "a formatted string: no parse_mode")
  bot.api.sendPhoto(1, "file")
  t.eq(last().params.parse_mode, "HTML", "captions too")
  bot.api.deleteMessage(1, 2)
  t.eq(last().params.parse_mode, nil, "not for a method without parse_mode")
  t.raises(function() bot.api.config{ parseMode = "Markdown3" } end,
           "parseMode must be")
  t.eq(bot.api.config{ parseMode = false }.parseMode, false)
  bot.api.sendMessage(1, "x")
  t.eq(last().params.parse_mode, nil)
end)

t.test("formatted strings become text and entities", function()
  local fmt = tghost.fmt
  bot.api.sendMessage(1, fmt("👍 ", fmt.bold("hi")))
  t.eq(last().params.text, "👍 hi")
  t.eq(last().params.entities, { { type = "bold", offset = 3, length = 2 } })
  bot.api.sendPhoto(1, "f", { caption = fmt.italic("c") })
  t.eq(last().params.caption, "c")
  t.eq(last().params.caption_entities, { { type = "italic", offset = 0, length = 1 } })
  bot.api.sendMediaGroup(1, { { type = "photo", media = "a", caption = fmt.code("x") } })
  t.eq(last().params.media[1].caption_entities, { { type = "code", offset = 0, length = 1 } })
end)

t.test("transformers see every call, the last installed first", function()
  local order = {}
  bot.api.config.use(function(prev, method, params)
    order[#order + 1] = "first"
    return prev(method, params)
  end)
  bot.api.config.use(function(prev, method, params)
    order[#order + 1] = "second"
    params = params or {}
    params.disable_notification = true     -- a default for every call
    return prev(method, params)
  end)
  answer = function(method) return method == "getMe" and { id = 7, username = "me_bot" } or true end
  bot.api.sendMessage(1, "x")
  t.eq(order, { "second", "first" })
  t.eq(last().params.disable_notification, true)
  -- bot.init(): getMe once, into bot.botInfo.
  rawset(bot, "botInfo", nil)
  local n0 = #seen
  t.eq(bot.init().username, "me_bot")
  t.eq(bot.botInfo.id, 7)
  bot.init()
  t.eq(#seen, n0 + 1, "getMe fetched once")
  t.eq(type(bot.stop), "function")
  t.raises(function() bot.api.config.use("x") end, "expected a function")
end)

t.done()
