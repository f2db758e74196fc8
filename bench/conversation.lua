-- What conversations add to an update that is not an answer, while some
-- conversation exists: the bot's key function on a fresh context (the C
-- side calls it when the update starts, and once more before the
-- middleware if no conversation had the key then), and the context built
-- for that. No server is needed:
--
--   build/tghost bench/conversation.lua
--
-- tests/e2e_conversation.c (ten_thousand_waiting) measures the whole
-- update's CPU cost with and without 10,000 conversations waiting.
local runtime = require("tghost.runtime")
local Context = require("tghost.context")
local json = require("tghost.json")

local N = 200000
local update = json.decode('{"update_id":1,"message":{"message_id":5,'
  .. '"from":{"id":123456,"is_bot":false,"first_name":"User"},'
  .. '"chat":{"id":-1001234567890,"type":"supergroup"},"date":1717000000,'
  .. '"text":"ping"}}')

-- In rounds of 10,000, yielding between them (the CPU guard stops a top
-- level that runs for --cpu-budget without yielding); the yields are not
-- timed. CPU time (os.clock), so other work on the machine does not count.
local function measure(name, fn)
  collectgarbage()
  local spent = 0
  for _ = 1, N // 10000 do
    local t0 = os.clock()
    for _ = 1, 10000 do fn() end
    spent = spent + os.clock() - t0
    tghost.sleep(0)
  end
  print(string.format("%-46s %6.2f us/update", name, spent * 1e6 / N))
end

measure("Context.new", function() Context.new(update, bot) end)
measure("the default key function (\"chat:user\")",
        function() runtime.conversation_keys(update, "k") end)
measure("every key (user in chat, key, user, chat)",
        function() runtime.conversation_keys(update, "bkuc") end)
conversation{ key = function(ctx) return ctx.chat and ctx.chat.id end }
measure("a key function returning the chat id",
        function() runtime.conversation_keys(update, "k") end)

-- What an update costs the composer: the middleware it passes through
-- record themselves (lua/composer.lua's trail, for conversations' answers)
-- and a filter that matches records itself as a guard.
local Composer = require("tghost.composer")
local c = Composer.new()
c.use(function(ctx, next) return next() end)
c.on("message:text", function(ctx, next) return next() end)
c.on("message:text", function() end)
local run = c.middleware()
local function noop() end
measure("a stack of use, on + next, on (matching)", function()
  local ctx = Context.new(update, bot)
  run(ctx, noop)
  Composer.done(ctx)
end)
