-- Forms in conversations through bot.handleUpdate: prompts, answers that
-- fit, retries for those that do not, buttons for select and confirm,
-- /cancel in the middle, ctx:skip().
local t = require("lib.apitest")

local next_id = 100
local USER = { id = 5, is_bot = false, first_name = "Eve" }
local CHAT = { id = 5, type = "private" }
local function text(s)
  next_id = next_id + 1
  local e = s:sub(1, 1) == "/" and { { type = "bot_command", offset = 0, length = #s:match("^%S+") } } or nil
  return { update_id = next_id, message = { message_id = next_id, date = 0, text = s,
           chat = CHAT, from = USER, entities = e } }
end
local function press(data, message_id)
  next_id = next_id + 1
  return { update_id = next_id, callback_query = { id = "q" .. next_id, from = USER,
    chat_instance = "1", data = data, message = { message_id = message_id, date = 0, chat = CHAT } } }
end
local function photo()
  next_id = next_id + 1
  return { update_id = next_id, message = { message_id = next_id, date = 0, chat = CHAT, from = USER,
    photo = { { file_id = "small", file_unique_id = "s", width = 90, height = 90 },
              { file_id = "big", file_unique_id = "b", width = 800, height = 800 } } } }
end

-- Each prompt is answered with message_id 900 + n, so presses can name it.
local sent = 0
local function answer(method, params)
  if method == "sendMessage" then
    sent = sent + 1
    return { message_id = 900 + sent, date = 0, chat = CHAT, text = params.text }
  end
  return true
end

-- As bots do: the updates of a chat in order (ctx:skip() must not wait for
-- the chat's key its own dialog holds).
bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))

local result
bot.command("order", function(ctx)
  -- (timeouts: a test that goes wrong fails instead of waiting)
  local name = ctx.form:text{ prompt = "Your name?", timeout = 5 }
  local qty = ctx.form:number{ prompt = "How many?", integer = true, min = 1, max = 10, timeout = 5 }
  local size = ctx.form:select({ "S", "M", { label = "Large", value = "L" } }, { prompt = "Size?", timeout = 5 })
  local ok = ctx.form:confirm{ prompt = "Order " .. qty .. " " .. size .. "?", timeout = 5 }
  local pic = ctx.form:photo{ prompt = "A picture of you?", timeout = 5 }
  result = { name = name, qty = qty, size = size, ok = ok, pic = pic.file_id }
  ctx:reply("done")
end)
bot.command("cancel", function(ctx)
  ctx:reply(ctx:cancelConversation() and "cancelled" or "nothing to cancel")
end)
bot.command("skipper", function(ctx)
  while true do
    local c = ctx:wait("message:text")
    if c.msg.text == "stop" then break end
    c:skip()   -- not ours: the bot's handlers see it
  end
  ctx:reply("stopped")
end)
local echoed = {}
bot.on("message:text", function(ctx) echoed[#echoed + 1] = ctx.msg.text end)

local function texts(r)
  local out = {}
  for _, c in ipairs(r.calls) do out[#out + 1] = c.method .. ":" .. tostring(c.params.text) end
  return out
end

t.test("a whole form: retries on bad input, buttons and typed choices", function()
  local dialog = tghost.spawn(bot.handleUpdate, text("/order"), { answer = answer })
  local function send(u, opts) tghost.sleep(0.01) return bot.handleUpdate(u, opts or { answer = answer }) end
  t.eq(send(photo()).outcome, "consumed", "not text: the retry")
  t.eq(send(text("Eve")).outcome, "consumed")
  send(text("zero"))
  send(text("11"))
  send(text("2.5"))
  send(text(" 3 "))
  send(press("tghost.form:3", 907))     -- 'Large' on the size prompt (the 7th message)
  send(text("yes"))
  send(text("not a photo"))
  send(photo())
  local r = tghost.wait(dialog)
  t.eq(r.outcome, "done")
  t.eq(result, { name = "Eve", qty = 3, size = "L", ok = true, pic = "big" })
  t.eq(texts(r), {
    "sendMessage:Your name?",
    "sendMessage:Please answer with text.",
    "sendMessage:How many?",
    "sendMessage:Please send a number from 1 to 10.",
    "sendMessage:Please send a number from 1 to 10.",
    "sendMessage:Please send a number from 1 to 10.",
    "sendMessage:Size?",
    "answerCallbackQuery:nil",
    "editMessageReplyMarkup:nil",
    "sendMessage:Order 3 L?",
    "editMessageReplyMarkup:nil",
    "sendMessage:A picture of you?",
    "sendMessage:Please send a photo.",
    "sendMessage:done",
  })
  t.eq(r.calls[7].params.reply_markup.inline_keyboard[3][1],
       { text = "Large", callback_data = "tghost.form:3" })
  t.eq(#r.calls[10].params.reply_markup.inline_keyboard[1], 2, "yes and no side by side")
end)

t.test("a press on another message's buttons is no answer", function()
  sent = 0
  local dialog = tghost.spawn(bot.handleUpdate, text("/order"), { answer = answer })
  local function send(u) tghost.sleep(0.01) return bot.handleUpdate(u, { answer = answer }) end
  send(text("Eve"))
  send(text("1"))
  local r = send(press("tghost.form:1", 12345))
  t.eq(r.outcome, "consumed")
  send(text("m"))                 -- typed, any case
  send(press("tghost.form:2", 905))  -- 'No' on the confirm prompt (after a retry)
  send(photo())
  tghost.wait(dialog)
  t.eq(result.size, "M")
  t.eq(result.ok, false)
end)

t.test("a command ends the form: /cancel", function()
  local dialog = tghost.spawn(bot.handleUpdate, text("/order"), { answer = answer })
  tghost.sleep(0.01)
  local r = bot.handleUpdate(text("/cancel"), { answer = answer })
  t.eq(texts(r), { "sendMessage:cancelled" })
  t.eq(tghost.wait(dialog).outcome, "done", "a cancelled dialog just ends")
end)

t.test("ctx:skip() hands an answer back to the middleware", function()
  echoed = {}
  local dialog = tghost.spawn(bot.handleUpdate, text("/skipper"), { answer = answer })
  tghost.sleep(0.01)
  t.eq(bot.handleUpdate(text("one")).outcome, "consumed")
  tghost.sleep(0.01)
  t.eq(bot.handleUpdate(text("two")).outcome, "consumed")
  tghost.sleep(0.01)
  bot.handleUpdate(text("stop"))
  local r = tghost.wait(dialog)
  t.eq(echoed, { "one", "two" }, "the bot's own handler saw the skipped updates")
  t.eq(texts(r), { "sendMessage:stopped" })
end)

t.test("options are checked", function()
  local Context = require("tghost.context")
  local ctx = Context.new(text("x"), bot)
  t.raises(function() ctx.form:number{ mni = 1 } end, "unknown option mni")
  t.raises(function() ctx.form:select({}) end, "non-empty list")
end)

t.done()
