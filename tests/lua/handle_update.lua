-- bot.handleUpdate: the whole stack runs as an update does, the caller
-- waits for it, and the calls it made are recorded and answered.
local t = require("lib.apitest")

local function message(text, chat, from, id)
  return { update_id = id, message = { message_id = 10, date = 0, text = text,
    chat = { id = chat or 100, type = "private" },
    from = { id = from or 100, is_bot = false, first_name = "Alice",
             language_code = "en" },
    entities = text:sub(1, 1) == "/" and { { type = "bot_command", offset = 0,
                                             length = #(text:match("^%S+")) } } or nil } }
end

local seen = {}
bot.use(function(ctx, next)
  seen[#seen + 1] = ctx.update.update_id
  next()
end)
bot.command("start", function(ctx)
  local m = ctx:reply("Hi " .. ctx.from.first_name)
  ctx.api.sendMessage(ctx.chat.id, "your message was #" .. m.message_id)
end)
bot.command("sleepy", function(ctx)
  tghost.sleep(0.05)
  local child = tghost.spawn(function() bot.api.sendChatAction(ctx.chat.id, "typing") end)
  tghost.wait(child)
  ctx:reply("awake")
end)
bot.command("boom", function() error("kaboom") end)
bot.command("ask", function(ctx)
  ctx:reply("Your name?")
  local answer = ctx:wait("message:text")
  ctx:reply("Hello, " .. answer.msg.text)
end)
bot.command("fail", function(ctx)
  local ok, e = pcall(ctx.reply, ctx, "x")
  ctx:reply(ok and "sent" or ("failed: " .. tostring(e.description)))
end)

t.test("the stack runs, returns when done, calls are recorded in order", function()
  local r = bot.handleUpdate(message("/start"))
  t.eq(r.outcome, "done")
  t.eq(#r.calls, 2)
  t.eq(r.calls[1].method, "sendMessage")
  t.eq(r.calls[1].params.text, "Hi Alice")
  t.eq(r.calls[1].params.chat_id, 100)
  t.eq(r.calls[1].result.text, "Hi Alice", "a stand-in Message")
  t.eq(r.calls[2].params.text, "your message was #1")
end)

t.test("an update without an id gets one; the handler saw it", function()
  local before = #seen
  local r = bot.handleUpdate(message("hello"))
  t.eq(r.outcome, "done")
  t.eq(#r.calls, 0)
  t.eq(#seen, before + 1)
  t.truthy(math.type(seen[#seen]) == "integer")
end)

t.test("suspending handlers and child tasks: their calls are recorded", function()
  local r = bot.handleUpdate(message("/sleepy", 5, 5, 77))
  t.eq(r.outcome, "done")
  t.eq(#r.calls, 2)
  t.eq(r.calls[1].method, "sendChatAction")
  t.eq(r.calls[2].params.text, "awake")
end)

t.test("a failing handler: outcome failed, the error, bot.catch called", function()
  local caught
  bot.catch(function(err) caught = err.error end)
  local r = bot.handleUpdate(message("/boom"))
  t.eq(r.outcome, "failed")
  t.truthy(tostring(r.error):find("kaboom", 1, true), tostring(r.error))
  t.truthy(caught and tostring(caught):find("kaboom", 1, true), "bot.catch saw it")
  bot.errorHandler = nil
end)

t.test("answers by method; an answer that raises fails the call like Telegram", function()
  local r = bot.handleUpdate(message("/start"), { answer = {
    sendMessage = function(p) return { message_id = 42, date = 0, chat = { id = p.chat_id, type = "private" } } end,
  } })
  t.eq(r.calls[2].params.text, "your message was #42")
  r = bot.handleUpdate(message("/fail"), { answer = function(method, params)
    if params.text == "x" then
      error({ error_code = 403, description = "Forbidden: bot was blocked by the user" })
    end
    return true
  end })
  t.eq(r.outcome, "done")
  t.eq(r.calls[1].error.error_code, 403)
  t.eq(getmetatable(r.calls[1].error), tghost.ApiError)
  t.eq(r.calls[2].params.text, "failed: Forbidden: bot was blocked by the user")
end)

t.test("conversations: the answer is consumed by the waiting handler", function()
  local first = tghost.spawn(bot.handleUpdate, message("/ask", 7, 7, 501))
  tghost.sleep(0.01)
  local second = bot.handleUpdate(message("Bob", 7, 7, 502))
  t.eq(second.outcome, "consumed")
  local r = tghost.wait(first)
  t.eq(r.outcome, "done")
  t.eq(#r.calls, 2)
  t.eq(r.calls[2].params.text, "Hello, Bob")
end)

t.test("misuse raises at the caller's line", function()
  t.raises(function() bot.handleUpdate("x") end, "handle_update.lua:", "expected an update table")
  t.raises(function() bot.handleUpdate(message("a"), { answr = 1 }) end, "unknown option answr")
  t.raises(function() bot.handleUpdate({ update_id = 1.5, message = {} }) end, "must be an integer")
end)

t.test("two at once with distinct ids run concurrently", function()
  local a = tghost.spawn(bot.handleUpdate, message("/sleepy", 1, 1, 901))
  local b = tghost.spawn(bot.handleUpdate, message("/sleepy", 2, 2, 902))
  local ra, rb = tghost.wait(a, b)
  t.eq(ra.calls[1].params.chat_id, 1)
  t.eq(rb.calls[1].params.chat_id, 2)
end)

t.done()
