-- A dialog written as plain code: /register asks three questions, checks
-- each answer, can be cancelled with /cancel, and gives up on a user who
-- takes too long. ctx:wait suspends the handler until the same user in
-- the same chat answers; the local variables are the dialog's state.
--
--   scripts/dev.sh run --sandbox examples/register.lua
--   tghost --sandbox examples/register.lua --script examples/register.chat

-- The usual set-up: one chat's updates in order. A dialog waiting for its
-- user lets the others of its chat through (and gets its keys back when
-- its answer comes).
bot.use(sequentialize(function(ctx) return ctx.chat and ctx.chat.id end))

local MINUTES = 60

local function ask_name(ctx)
  ctx:reply("Your name? (send /cancel to stop)")
  while true do
    local c = ctx:wait("message:text", { timeout = 5 * MINUTES })
    local name = c.msg.text
    if #name <= 32 then return name end
    c:reply("A name of at most 32 characters, please")
  end
end

local function ask_age(ctx, name)
  ctx:reply("Your age, " .. name .. "?")
  while true do
    local c = ctx:wait("message:text", {
      timeout = 5 * MINUTES,
      -- A photo, a location, ...: answered here, and the dialog goes on.
      otherwise = function(other) other:reply("Please type your age") end,
    })
    local age = math.tointeger(tonumber(c.msg.text))
    if age and age >= 1 and age <= 150 then return age end
    c:reply("A number from 1 to 150, please")
  end
end

-- A quick check that a person is typing: the answer must come in time.
local function captcha(ctx)
  ctx:reply("Last step, quick: what is 3 + 4? (3 seconds)")
  local c = ctx:wait("message:text", { timeout = 3 })
  return c.msg.text == "7"
end

bot.command("register", function(ctx)
  local ok, err = pcall(function()
    local name = ask_name(ctx)
    local age = ask_age(ctx, name)
    if captcha(ctx) then
      ctx:reply(("Welcome, %s (%d)!"):format(name, age))
    else
      ctx:reply("That is not it. Send /register to try again")
    end
  end)
  if ok then return end
  if getmetatable(err) == tghost.ConversationTimeout then
    ctx:reply("Too slow. Send /register to start again")
  elseif getmetatable(err) == tghost.ConversationCancelled then
    -- "replaced": the user sent /register again; the new dialog asks.
    if err.reason == "cancelled" then ctx:reply("Registration cancelled") end
  else
    error(err, 0)
  end
end)

-- Commands do not answer a ctx:wait: they run as usual, even mid-dialog.
bot.command("cancel", function(ctx)
  if not ctx:cancelConversation() then ctx:reply("Nothing to cancel") end
end)

bot.on("message:text", function(ctx) ctx:reply("Send /register to sign up") end)

run(bot)
