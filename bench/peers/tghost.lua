-- The benchmark bot for tghost (bench/README.md): the same logic as
-- grammy.js and telebot/main.go. Set by bench/peerbench:
--   BOT_TOKEN and --api-root        the fake server
--   BENCH_MODE          echo | seq  seq: sequentialize by chat first
--   BENCH_CONCURRENCY               the sink's concurrency
if os.getenv("BENCH_MODE") == "seq" then
  bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))
end
bot.on("message:text", function(ctx) ctx:reply(ctx.msg.text) end)
run(bot, {
  sink = { concurrency = tonumber(os.getenv("BENCH_CONCURRENCY")) or 500 },
  runner = { fetch = { timeout = 30 } },
})
