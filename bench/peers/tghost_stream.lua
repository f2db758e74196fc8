-- The streaming benchmark bot for tghost (bench/README.md, "Streamed
-- answers"): the same logic as grammy_stream.js. Each message is sent to
-- the model, whose answer streams back by server-sent events and is shown
-- with drafts while it grows, then sent. Set by bench/streambench:
--   BOT_TOKEN and --api-root     the fake Bot API
--   MODEL_URL                    the fake model (an OpenAI-style chat API)
--   BENCH_INTERVAL               seconds between two drafts of one answer
--   BENCH_CONCURRENCY            the sink's concurrency
local URL = os.getenv("MODEL_URL")
local INTERVAL = tonumber(os.getenv("BENCH_INTERVAL")) or 0.5

bot.on("message:text", function(ctx)
  local events = tghost.http.sse{
    method = "POST", url = URL .. "/v1/chat/completions",
    body = { model = "bench", stream = true,
             messages = { { role = "user", content = ctx.msg.text } } },
  }
  ctx:replyStream(function()
    for ev in events do
      if ev.data == "[DONE]" then return nil end
      local piece = tghost.json.decode(ev.data).choices[1].delta.content
      if piece then return piece end
    end
  end, { interval = INTERVAL })
end)

run(bot, {
  sink = { concurrency = tonumber(os.getenv("BENCH_CONCURRENCY")) or 10000 },
  runner = { fetch = { timeout = 30 } },
})
