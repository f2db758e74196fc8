// The streaming benchmark bot for grammY + grammY runner (bench/README.md,
// "Streamed answers"): the same logic as tghost_stream.lua. Each message
// is sent to the model with fetch, whose answer streams back by
// server-sent events and is shown with drafts (ctx.replyWithDraft) at most
// once per interval while it grows, then sent with ctx.reply. Set by
// bench/streambench:
//   BOT_TOKEN, API_ROOT    the fake Bot API
//   MODEL_URL              the fake model (an OpenAI-style chat API)
//   BENCH_INTERVAL         seconds between two drafts of one answer
//   BENCH_CONCURRENCY      the runner's sink concurrency
const { Bot } = require("grammy");
const { run } = require("@grammyjs/runner");

const MODEL_URL = process.env.MODEL_URL;
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL || 0.5) * 1000;
const bot = new Bot(process.env.BOT_TOKEN, {
  client: { apiRoot: process.env.API_ROOT },
});

// The model's answer piece by piece: its event stream read with fetch.
async function* tokens(messages) {
  const res = await fetch(MODEL_URL + "/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "bench", stream: true, messages }),
  });
  if (!res.ok) throw new Error("model: HTTP " + res.status);
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data === "[DONE]") return;
      if (data) {
        const piece = JSON.parse(data).choices[0].delta.content;
        if (piece) yield piece;
      }
    }
  }
}

// Drafts at most once per interval while the answer grows (the first at
// once), then the final message.
async function replyStream(ctx, source) {
  let text = "", shown = "", nextAt = 0, timer = null, inFlight = null;
  let done = false;
  const schedule = () => {
    if (timer || inFlight || done) return;
    timer = setTimeout(async () => {
      timer = null;
      const t = text.trim();
      if (!t || t === shown) return;
      nextAt = Date.now() + INTERVAL_MS;
      shown = t;
      inFlight = ctx.replyWithDraft(t).catch(() => {});
      await inFlight;
      inFlight = null;
      if (text.trim() !== shown) schedule();
    }, Math.max(0, nextAt - Date.now()));
  };
  for await (const piece of source) {
    text += piece;
    schedule();
  }
  done = true;
  if (timer) clearTimeout(timer);
  if (inFlight) await inFlight;
  return ctx.reply(text.trim());
}

bot.on("message:text", (ctx) =>
  replyStream(ctx, tokens([{ role: "user", content: ctx.msg.text }])));
bot.catch((err) => console.error("handler error:", err.error));

const handle = run(bot, {
  sink: { concurrency: Number(process.env.BENCH_CONCURRENCY || 10000) },
  runner: { fetch: { timeout: 30 } },
});
process.once("SIGTERM", () => handle.stop().then(() => process.exit(0)));
