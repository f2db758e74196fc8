-- Per-chat state that stays correct under concurrency.
--
-- Every message bumps a counter kept per chat in a (pretend) slow store:
-- read, wait, write back. Without sequentialize, two messages of one chat
-- handled at the same time would both read the old value and one increment
-- would be lost. With it, messages of one chat run one after another while
-- different chats still run side by side.
--
--   scripts/dev.sh run --sandbox examples/sequentialize.lua
--   tghost --sandbox examples/sequentialize.lua --script examples/sequentialize.chat

local store = {}

local function load(chat)            -- pretend this is a database read
  tghost.sleep(0.05)
  return store[chat] or 0
end

local function save(chat, value)     -- and this a database write
  tghost.sleep(0.05)
  store[chat] = value
end

-- The same key a session would use: the chat.
bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))

bot.on("message", function(ctx)
  local count = load(ctx.chat.id) + 1
  save(ctx.chat.id, count)
  ctx:reply("message number " .. count .. " in this chat")
end)

run(bot)
