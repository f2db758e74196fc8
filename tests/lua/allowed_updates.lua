-- allowed_updates derived from the handlers a bot registers.
local t = require("lib.apitest")
local options = require("tghost.options")
local filter = require("tghost.filter")

local function noop() end
local function derive(c) return options.derive_allowed_updates(c) end

t.test("no opt-in type: the empty list (Telegram's default set)", function()
  local c = tghost.Composer()
  c.command("start", noop)
  c.on("message:text", noop)
  c.callbackQuery("x", noop)
  c.use(noop)
  local list = derive(c)
  t.eq(list, {})
  t.eq(tghost.json.encode(list), "[]")
  t.eq(derive(tghost.Composer()), {})
end)

t.test("a chat_member handler: exactly the types the handlers need", function()
  local c = tghost.Composer()
  c.command("start", noop)
  c.on("chat_member", noop)
  c.on("callback_query:data", noop)
  t.eq(derive(c), { "message", "channel_post", "callback_query", "chat_member" })
end)

t.test("reactions are opt-in too", function()
  local c = tghost.Composer()
  c.on("message_reaction", noop)
  t.eq(derive(c), { "message_reaction" })
  local c2 = tghost.Composer()
  c2.on({ "message_reaction_count:reactions:emoji", "edit:text" }, noop)
  t.eq(derive(c2), { "edited_message", "edited_channel_post", "message_reaction_count" })
end)

t.test("a middleware without a filter needs every type", function()
  local c = tghost.Composer()
  c.use(noop)
  c.on("chat_member", noop)
  t.eq(derive(c), filter.UPDATE_TYPES)
  -- bot.filter with a predicate cannot be narrowed either
  local c2 = tghost.Composer()
  c2.filter(function() return true end, noop)
  c2.on("chat_member", noop)
  t.eq(derive(c2), filter.UPDATE_TYPES)
end)

t.test("filters narrow what is behind them; nesting and branches count", function()
  local c = tghost.Composer()
  -- any middleware behind a filter only sees that filter's types
  c.on("chat_member").use(noop)
  c.on("inline_query", noop)
  -- a filter registered without handlers needs nothing yet
  c.on("poll")
  -- a module
  local mod = tghost.Composer()
  mod.on("my_chat_member", noop)
  c.use(mod)
  -- branches and error boundaries
  local shipping, requests = tghost.Composer(), tghost.Composer()
  shipping.on("shipping_query", noop)
  requests.on("chat_join_request", noop)
  c.branch(function() return true end, shipping, tghost.Composer())
  c.errorBoundary(noop, requests)
  -- a filter inside a predicate filter
  c.filter(function() return true end).on("poll_answer", noop)
  -- a filter that cannot match what is behind it needs nothing
  c.on("message").on("callback_query", noop)
  t.eq(derive(c), { "inline_query", "shipping_query", "poll_answer",
                    "my_chat_member", "chat_member", "chat_join_request" })
end)

t.test("handlers added to a returned composer later still count", function()
  local c = tghost.Composer()
  local members = c.on("chat_member")
  t.eq(derive(c), {})
  members.use(noop)
  t.eq(derive(c), { "chat_member" })
end)

t.test("run() options: derived unless the script sets allowed_updates", function()
  local c = tghost.Composer()
  c.on("chat_member", noop)
  local flat = options.flatten({}, c)
  t.eq(flat.allowed_updates, { "chat_member" })
  flat = options.flatten({ runner = { fetch = { allowed_updates = { "message" } } } }, c)
  t.eq(flat.allowed_updates, { "message" })
  flat = options.flatten({ runner = { fetch = { allowed_updates = {} } } }, c)
  t.eq(flat.allowed_updates, {})
  t.raises(function()
    options.flatten({ runner = { fetch = { allowed_updates = { "mesage" } } } }, c)
  end, "allowed_updates[1]: 'mesage' is not an update type (did you mean message?)")
end)

t.done()
