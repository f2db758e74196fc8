-- Conversations: ctx:wait(filter [, opts]) suspends a handler until the
-- next update of the same conversation key that matches filter, and
-- returns that update's context. The coroutine is the conversation: a
-- dialog is plain code, with its state in local variables.
--
--   ctx:wait(filter [, opts]) -> ctx
--       filter: a filter query ("message:text"), a list of them, or a
--       predicate function(ctx) -> boolean.
--       opts.timeout    seconds; then the call raises ConversationTimeout
--       opts.key        the conversation key for this wait (default: the
--                       bot's key function on ctx: "chat id:user id")
--       opts.otherwise  function(ctx) for updates of the key that do not
--                       match (called inside this handler; the wait goes
--                       on afterwards). Without it they run through the
--                       bot's middleware as usual.
--       opts.commands   true: a message that starts with a /command may
--                       answer the wait. By default commands never do:
--                       they run through the middleware (so /cancel, /help
--                       and /start keep working in the middle of a dialog).
--   ctx:cancelConversation([key]) -> boolean
--       ends the conversation of key (default: ctx's): a waiting one's
--       ctx:wait raises ConversationCancelled (reason "cancelled"); one
--       that is running gets it at its next ctx:wait.
--   conversation{ key = fn }
--       fn(ctx) -> a string, an integer or nil: the bot's key function.
--
-- The waited-for update is consumed: it starts no handler of its own.
-- While a conversation runs between two waits, the updates of its key are
-- held for it and offered, in order, to its next wait. A second
-- conversation on a key replaces the first (whose wait raises
-- ConversationCancelled with reason "replaced"). The C side is
-- src/luaconv.c.
local core = require("tghost.core")
local conv = require("tghost.conv")
local json = require("tghost.json")
local Context = require("tghost.context")
local filter = require("tghost.filter")
local runtime = require("tghost.runtime")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local ConversationTimeout = runtime.ConversationTimeout
local ConversationCancelled = runtime.ConversationCancelled

-- "chat id:user id": this user in this chat, so that in a group every
-- member has a dialog of their own.
local function default_key(ctx)
  local chat, from = ctx.chatId, ctx.from
  if chat == nil or from == nil or from.id == nil then return nil end
  return string.format("%d:%d", chat, from.id)
end

local key_fn = default_key

-- The current generation's key of an update (called by the C side for
-- every update while some conversation waits).
function runtime.conversation_key(update)
  return key_fn(Context.new(update, runtime.bot))
end

local function check_key(key, what)
  local t = type(key)
  if t == "string" then return key end
  if t == "number" then
    local i = math.tointeger(key)
    if i then return i end
  end
  errors.raise("%s: a conversation key must be a string or an integer, not "
               .. "%s", what, t == "number" and tostring(key) or t)
end

-- conversation{ key = fn }
function M.configure(opts)
  if type(opts) ~= "table" then
    errors.raise("conversation: expected a table of options "
                 .. "(conversation{ key = fn }), got %s", type(opts))
  end
  for k in pairs(opts) do
    if k ~= "key" then
      errors.raise("conversation: unknown option %s (known: key)",
                   tostring(k))
    end
  end
  if opts.key ~= nil and type(opts.key) ~= "function" then
    errors.raise("conversation: key must be a function(ctx) -> key, got %s",
                 type(opts.key))
  end
  key_fn = opts.key or default_key
end

-- A message that starts with a /command.
local function is_command(ctx)
  local u = ctx.update
  local m = u.message or u.edited_message or u.business_message
      or u.edited_business_message
  local e = m and m.entities and m.entities[1]
  return e ~= nil and e.type == "bot_command" and e.offset == 0
end

local WAIT_OPTIONS = { "timeout", "key", "otherwise", "commands" }

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.raise("ctx:wait: the options must be a table, not %s", type(opts))
  end
  for k in pairs(opts) do
    local known = false
    for _, name in ipairs(WAIT_OPTIONS) do known = known or k == name end
    if not known then
      local hint = type(k) == "string" and errors.suggest(k, WAIT_OPTIONS)
      errors.raise("ctx:wait: unknown option %s%s (known: %s)", tostring(k),
                   hint and (" (did you mean " .. hint .. "?)") or "",
                   table.concat(WAIT_OPTIONS, ", "))
    end
  end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or t <= 0 or t ~= t or t >= 1e9) then
    errors.raise("ctx:wait: timeout must be a positive number of seconds, "
                 .. "not %s", tostring(t))
  end
  if opts.otherwise ~= nil and type(opts.otherwise) ~= "function" then
    errors.raise("ctx:wait: otherwise must be a function(ctx), not %s",
                 type(opts.otherwise))
  end
  if opts.commands ~= nil and type(opts.commands) ~= "boolean" then
    errors.raise("ctx:wait: commands must be true or false, not %s",
                 type(opts.commands))
  end
  return opts
end

local function predicate(query)
  local t = type(query)
  if t == "function" then return query end
  if t == "string" then return filter.cached(query) end
  if t == "table" then return (filter.compile(query)) end
  errors.raise("ctx:wait: expected a filter query, a list of them or a "
               .. "predicate function, got %s", t)
end

local methods = Context.methods

function methods.wait(ctx, query, opts)
  if type(ctx) ~= "table" or type(rawget(ctx, "update")) ~= "table" then
    errors.raise("ctx:wait(...) needs the context: call it with a colon, "
                 .. "not ctx.wait(...)")
  end
  local pred = predicate(query)
  opts = check_options(opts)
  local key = opts.key
  if key == nil then
    key = key_fn(ctx)
    if key == nil then
      errors.raise("ctx:wait: this update has no conversation key (the "
                   .. "bot's key function returned nil; the default one "
                   .. "needs a chat and a user); pass opts.key")
    end
  end
  key = check_key(key, "ctx:wait")
  local commands, otherwise = opts.commands == true, opts.otherwise
  local bot = ctx.bot
  -- Decides for one update, in this generation (the C side calls it for
  -- incoming updates, outside this coroutine): its context if it is this
  -- conversation's, and whether it matched.
  local function offer(update)
    local c = Context.new(update, bot)
    if not commands and is_command(c) then return nil end
    if pred(c) then return c, true end
    if otherwise then return c, false end
    return nil
  end
  local deadline = opts.timeout and core.now() + opts.timeout
  while true do
    local remaining = deadline and math.max(deadline - core.now(), 0)
    local kind, a, b = conv.wait(key, offer, remaining)
    local c, matched
    if kind == "held" then
      local ok, c1, m1 = pcall(offer, json.decode(a))
      conv.settle(b, ok and c1 ~= nil)
      if not ok then error(c1, 0) end
      c, matched = c1, m1
    elseif kind == "update" then
      c, matched = a, b
    elseif kind == "timeout" then
      error(setmetatable({ key = key, timeout = opts.timeout, ctx = ctx },
                         ConversationTimeout))
    elseif kind == "cancelled" then
      error(setmetatable({ key = key, reason = a, ctx = ctx },
                         ConversationCancelled))
    else   -- "error": the filter failed on an incoming update
      error(a, 0)
    end
    if c ~= nil then
      if matched then return c end
      otherwise(c)
    end
  end
end

-- For sequentialize: the update waited for its keys; a conversation of its
-- key may wait for it by now (true: it took the update).
function M.reroute(ctx)
  if not conv.active() then return false end
  local key = key_fn(ctx)
  local t = type(key)
  if t == "number" then key = math.tointeger(key) end
  if key == nil or (t ~= "string" and t ~= "number") then return false end
  return conv.reroute(key)
end

runtime.conversation_reroute = M.reroute

function methods.cancelConversation(ctx, key)
  if key == nil then key = key_fn(ctx) end
  if key == nil then return false end
  return conv.cancel(check_key(key, "ctx:cancelConversation"))
end

M.ConversationTimeout = ConversationTimeout
M.ConversationCancelled = ConversationCancelled

return M
