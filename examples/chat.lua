-- A chat bot backed by a language model: the conversation goes to an
-- OpenAI-style chat API that streams its answer (server-sent events), and
-- the answer is shown while it is written (ctx:replyStream).
--   build/tests/fakemodel --port 8000 &       # a fake model, no network
--   MODEL_URL=http://127.0.0.1:8000 scripts/dev.sh run --sandbox examples/chat.lua
local URL = os.getenv("MODEL_URL") or "https://api.openai.com"
local KEY = os.getenv("MODEL_KEY")

local function chat_key(ctx) return ctx.chat and tostring(ctx.chat.id) end
bot.use(sequentialize(chat_key))   -- one answer at a time in each chat
bot.use(session{ getSessionKey = chat_key,
                 initial = function() return { history = {} } end })

bot.command("reset", function(ctx)
  ctx.session.history = {}
  ctx:reply("I forgot everything.")
end)

bot.on("message:text", function(ctx)
  local history = ctx.session.history
  history[#history + 1] = { role = "user", content = ctx.msg.text }
  local events = tghost.http.sse{
    method = "POST", url = URL .. "/v1/chat/completions",
    headers = { Authorization = KEY and "Bearer " .. KEY },
    body = { model = "gpt-4o-mini", stream = true, messages = history },
  }
  local answer = {}
  ctx:replyStream(function()        -- the next piece of text, nil at the end
    for ev in events do
      if ev.data == "[DONE]" then return nil end
      local piece = tghost.json.decode(ev.data).choices[1].delta.content
      if piece then answer[#answer + 1] = piece return piece end
    end
  end)
  history[#history + 1] = { role = "assistant", content = table.concat(answer) }
  while #history > 20 do table.remove(history, 1) end
end)

run(bot)
