// The benchmark bot for grammY + grammY runner (bench/README.md): the same
// logic as tghost.lua and telebot/main.go. Set by bench/peerbench:
//   BOT_TOKEN, API_ROOT              the fake server
//   BENCH_MODE         echo | seq    seq: sequentialize by chat first
//   BENCH_CONCURRENCY                 the runner's sink concurrency
const { Bot } = require("grammy");
const { run, sequentialize } = require("@grammyjs/runner");

const bot = new Bot(process.env.BOT_TOKEN, {
  client: { apiRoot: process.env.API_ROOT },
});
if (process.env.BENCH_MODE === "seq") {
  bot.use(sequentialize((ctx) => ctx.chat?.id.toString()));
}
bot.on("message:text", (ctx) => ctx.reply(ctx.msg.text));
bot.catch((err) => console.error("handler error:", err.error));

const handle = run(bot, {
  sink: { concurrency: Number(process.env.BENCH_CONCURRENCY || 500) },
  runner: { fetch: { timeout: 30 } },
});
process.once("SIGTERM", () => handle.stop().then(() => process.exit(0)));
