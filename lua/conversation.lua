-- Conversations: ctx:wait(filter [, opts]) suspends a handler until the
-- next update of its conversation key that matches filter, and returns
-- that update's context. The coroutine is the conversation: a dialog is
-- plain code, with its state in local variables.
--
--   ctx:wait(filter [, opts]) -> ctx
--       filter: a filter query ("message:text"), a list of them, or a
--       predicate function(ctx) -> boolean.
--       opts.timeout    seconds (default conversation{ timeout }, 24 h),
--                       or false for none; then the call raises
--                       ConversationTimeout
--       opts.key        a key of the bot's key function to wait on
--                       (default: the key function's on ctx: "chat
--                       id:user id")
--       opts.chat       a chat id, or true for ctx's chat: anyone in it
--       opts.user       a user id, or true for ctx's user: in any chat
--                       (with opts.chat: that user in that chat)
--       opts.otherwise  function(ctx) for updates of the key that do not
--                       match (called inside this handler; the wait goes
--                       on afterwards). Without it they run through the
--                       bot's middleware as usual.
--       opts.commands   true: a message that starts with a /command may
--                       answer the wait. By default commands never do:
--                       they run through the middleware (so /cancel, /help
--                       and /start keep working in the middle of a dialog).
--   ctx:cancelConversation([key | { chat =, user =, key = }]) -> boolean
--       ends a conversation (default: the one ctx's update belongs to): a
--       waiting one's ctx:wait raises ConversationCancelled (reason
--       "cancelled"); one that is running gets it at its next ctx:wait.
--   conversation{ key = fn, timeout = seconds | false }
--       fn(ctx) -> a string, an integer or nil: the bot's key function;
--       timeout: the default of every wait.
--
-- Keys are normalised: an integer and its decimal string are one key. A
-- key lives in a namespace (the first byte of the key the C table holds):
-- the bot's key function's keys, chats, users, users in a chat. An update
-- is offered to the waiting conversations of its keys most specific first
-- (that user in that chat, the key function's key, that user, that chat);
-- the first that takes it consumes it.
--
-- The waited-for update is consumed: it starts no handler of its own.
-- While a conversation runs between two waits, the updates of its key are
-- held for it and offered, in order, to its next wait. A second
-- conversation on a key replaces the first (whose wait raises
-- ConversationCancelled with reason "replaced"). The C side is
-- src/script/luaconv.c.
local core = require("tghost.core")
local conv = require("tghost.conv")
local json = require("tghost.json")
local Context = require("tghost.context")
local filter = require("tghost.filter")
local runtime = require("tghost.runtime")
local Composer = require("tghost.composer")
local storage = require("tghost.storage")
local dialog = require("tghost.dialog")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local ConversationTimeout = runtime.ConversationTimeout
local ConversationCancelled = runtime.ConversationCancelled

-- The namespaces, in the order an update's keys are tried.
local NS_BOTH, NS_KEY, NS_USER, NS_CHAT = "b", "k", "u", "c"

-- How long a wait waits by default: long enough for any person to answer,
-- and a bound on what an abandoned dialog keeps alive (its coroutine, and
-- after a reload its whole generation).
local DEFAULT_TIMEOUT = 24 * 3600
local default_timeout = DEFAULT_TIMEOUT

-- "chat id:user id": this user in this chat, so that in a group every
-- member has a dialog of their own.
local function default_key(ctx)
  local chat, from = ctx.chatId, ctx.from
  if chat == nil or from == nil or from.id == nil then return nil end
  return string.format("%d:%d", chat, from.id)
end

local key_fn = default_key

-- A key as stored: a string as it is, an integer (or a float with an
-- integral value) as its decimal string. nil and why for anything else.
local function normal(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    local i = math.tointeger(v)
    if i then return tostring(i) end
    return nil, "the number " .. tostring(v) .. " (not an integer)"
  end
  return nil, t
end

-- A chat or user id as updates carry it (an integer), from an integer or
-- its decimal string; nil otherwise.
local function id_of(v)
  if type(v) == "number" then
    local i = math.tointeger(v)
    return i and tostring(i)
  end
  if type(v) == "string" and v:match("^%-?%d+$") then
    local i = math.tointeger(tonumber(v))
    return i and tostring(i)
  end
  return nil
end

-- The key function's key of ctx, normalised; nil: none.
local function bot_key(ctx)
  local k = key_fn(ctx)
  if k == nil then return nil end
  local key, why = normal(k)
  if key == nil then
    error("the conversation key function returned " .. why
          .. " (a key is a string or an integer)", 0)
  end
  return key
end

-- The keys of an update for the namespaces in active (a string of their
-- letters), most specific first, as four values (nil where it has none):
-- user in chat, key function's, user, chat. Called by the C side for every
-- update while some conversation waits, so it allocates nothing more than
-- the context and the keys.
local find = string.find
function runtime.conversation_keys(update, active)
  local ctx = Context.new(update, runtime.bot)
  local key
  if find(active, NS_KEY, 1, true) then
    key = bot_key(ctx)
    if key then key = NS_KEY .. key end
    if active == NS_KEY then return nil, key end
  end
  local c, u = ctx.chatId, nil
  local from = ctx.from
  if from then u = from.id end
  c, u = c and id_of(c), u and id_of(u)
  local both, user, chat
  if c and u and find(active, NS_BOTH, 1, true) then
    both = NS_BOTH .. c .. ":" .. u
  end
  if u and find(active, NS_USER, 1, true) then user = NS_USER .. u end
  if c and find(active, NS_CHAT, 1, true) then chat = NS_CHAT .. c end
  return both, key, user, chat
end

-- All the keys of ctx's update, as runtime.conversation_keys gives them.
local function keys_of(ctx)
  return runtime.conversation_keys(ctx.update, "bkuc")
end

-- How a key reads in messages: the key function's keys as they are.
local function display(key)
  local ns, rest = key:sub(1, 1), key:sub(2)
  if ns == NS_KEY then return rest end
  if ns == NS_CHAT then return "chat " .. rest end
  if ns == NS_USER then return "user " .. rest end
  local c, u = rest:match("^(.-):(.*)$")
  return "chat " .. c .. " user " .. u
end
M.display = display

local function check_timeout(what, t)
  if t ~= nil and t ~= false
     and (type(t) ~= "number" or t <= 0 or t ~= t or t >= 1e9) then
    errors.raise("%s: timeout must be a positive number of seconds (or false "
                 .. "for none), not %s", what, tostring(t))
  end
end

-- conversation{ key = fn, timeout = seconds | false }
local CONFIG_OPTIONS = { "key", "timeout", "storage", "prefix", "version" }

-- conversation{ key = fn, timeout = s | false, storage = store, prefix =
-- "dialog:", version = v }: storage makes every dialog durable (lua/
-- dialog.lua keeps its record there, under prefix .. its key); a record
-- of another version is not replayed.
function M.configure(opts)
  if type(opts) ~= "table" then
    errors.raise("conversation: expected a table of options "
                 .. "(conversation{ key = fn }), got %s", type(opts))
  end
  for k in pairs(opts) do
    local known = false
    for _, name in ipairs(CONFIG_OPTIONS) do known = known or k == name end
    if not known then
      local hint = type(k) == "string" and errors.suggest(k, CONFIG_OPTIONS)
      errors.raise("conversation: unknown option %s%s (known: %s)",
                   tostring(k), hint and (" (did you mean " .. hint .. "?)")
                   or "", table.concat(CONFIG_OPTIONS, ", "))
    end
  end
  if opts.key ~= nil and type(opts.key) ~= "function" then
    errors.raise("conversation: key must be a function(ctx) -> key, got %s",
                 type(opts.key))
  end
  check_timeout("conversation", opts.timeout)
  if opts.prefix ~= nil and type(opts.prefix) ~= "string" then
    errors.raise("conversation: prefix must be a string, got %s",
                 type(opts.prefix))
  end
  local v = opts.version
  if v ~= nil and type(v) ~= "string" and math.tointeger(v) == nil then
    errors.raise("conversation: version must be a string or an integer, "
                 .. "got %s", type(v))
  end
  if (opts.prefix ~= nil or v ~= nil) and opts.storage == nil then
    errors.raise("conversation: prefix and version are for the records of "
                 .. "durable dialogs: give a storage too")
  end
  local backend, label
  if opts.storage ~= nil then
    backend, label = storage.own_backend(opts.storage, "conversation")
  end
  key_fn = opts.key or default_key
  if opts.timeout == nil then default_timeout = DEFAULT_TIMEOUT
  else default_timeout = opts.timeout end
  if backend then
    dialog.configure({ backend = backend, label = label,
                       prefix = opts.prefix or "dialog:", version = v })
  end
end

-- A message that starts with a /command.
local function is_command(ctx)
  local u = ctx.update
  local m = u.message or u.edited_message or u.business_message
      or u.edited_business_message
  local e = m and m.entities and m.entities[1]
  return e ~= nil and e.type == "bot_command" and e.offset == 0
end

local WAIT_OPTIONS = { "timeout", "key", "chat", "user", "otherwise",
                       "commands" }

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
  check_timeout("ctx:wait", opts.timeout)
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

-- The chat or user id an option names (true: ctx's own), as a key part.
local function id_option(ctx, who, v)
  local id
  if v == true then
    if who == "chat" then id = ctx.chatId
    else id = ctx.from and ctx.from.id end
    if id == nil then
      errors.raise("ctx:wait: %s = true, but this update has no %s", who, who)
    end
    return id_of(id)
  end
  id = id_of(v)
  if id == nil then
    errors.raise("ctx:wait: %s = %s can never match: updates name a %s by "
                 .. "its numeric id (an integer, or its decimal string), or "
                 .. "pass true for this update's %s", who,
                 type(v) == "string" and string.format("%q", v) or tostring(v),
                 who, who)
  end
  return id
end

-- The key a wait waits on (internal form), from its options or ctx. lax:
-- a key that no update can have is no error (there is nothing to cancel).
local function wait_key(ctx, opts, what, lax)
  local key, chat, user = opts.key, opts.chat, opts.user
  if key ~= nil and (chat ~= nil or user ~= nil) then
    errors.raise("%s: key is a key of the bot's key function; it does not "
                 .. "combine with chat or user", what)
  end
  if chat ~= nil or user ~= nil then
    local c = chat ~= nil and id_option(ctx, "chat", chat)
    local u = user ~= nil and id_option(ctx, "user", user)
    if c and u then
      -- This user in this chat is what the default key function names.
      if key_fn == default_key then return NS_KEY .. c .. ":" .. u end
      return NS_BOTH .. c .. ":" .. u
    end
    if c then return NS_CHAT .. c end
    return NS_USER .. u
  end
  if key == nil then
    local k = bot_key(ctx)
    if k == nil then
      errors.raise("%s: this update has no conversation key (the bot's key "
                   .. "function returned nil; the default one needs a chat "
                   .. "and a user); pass opts.key, opts.chat or opts.user",
                   what)
    end
    return NS_KEY .. k
  end
  local k, why = normal(key)
  if k == nil then
    errors.raise("%s: a conversation key must be a string or an integer, "
                 .. "not %s", what, why)
  end
  -- Under the default key function every key is "chat id:user id": any
  -- other key would wait for an update that can never come.
  if not lax and key_fn == default_key and not k:match("^%-?%d+:%d+$") then
    local c = id_of(k)
    errors.raise("%s: key %q can never match: the bot's key function (the "
                 .. "default) gives every update the key \"chat id:user id\"%s",
                 what, k, c and string.format("; to wait for anyone in "
                 .. "chat %s pass { chat = %s }, for user %s in any chat "
                 .. "{ user = %s }", c, c, c, c) or
                 "; pass conversation{ key = fn } for keys of your own")
  end
  return NS_KEY .. k
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

-- === What a wait does around its suspension =============================
--
-- Middleware that keeps per-update state across a wait registers hooks in
-- the job (core.job_local().wait_hooks, a list of fn(phase, ctx)): each
-- runs with "suspend" before the wait suspends (it may write; an error
-- fails the wait) and "resume" when it is over, before the answer's
-- middleware runs. session{} is one (lua/session.lua).
local function run_hooks(phase, ctx)
  local jl = core.job_local()
  local hooks = jl and jl.wait_hooks
  if not hooks then return end
  for _, hook in ipairs({ table.unpack(hooks) }) do hook(phase, ctx) end
end

-- The update a conversation receives runs the middleware its own update
-- went through on the way to the handler (Composer.trail: the script's
-- middleware that had called next() when ctx:wait was called, outermost
-- first, each if the answer passes the filters it sits behind; not the
-- handlers or anything after the handler; not sequentialize, since the
-- conversation takes its keys back itself), in a coroutine of the
-- handler's task. The answer reaches the conversation at
-- the bottom of that stack, which stays open (so session{} writes the
-- answer's changes, as grammY does) until the conversation waits again or
-- ends: then the middleware returns from its next().
local REACHED = setmetatable({}, { __name = "the conversation" })

-- Closes the open answer of this job, if any: err is the handler's error
-- (its middleware sees it raised from next()), or nil.
local function close_answer(err)
  local jl = core.job_local()
  local co = jl and jl.answer
  if not co then return end
  jl.answer = nil
  local ok, e = coroutine.resume(co, err ~= nil and { error = err } or nil)
  if not ok and err == nil then error(e, 0) end
end

-- Runs c through trail up to the conversation: true if it got there (the
-- stack stays open until close_answer), false if some middleware did not
-- pass it on. A middleware's error is raised.
local function open_answer(trail, c)
  if #trail == 0 then return true end
  local co = coroutine.create(function()
    Composer.run_trail(trail, c, function()
      local how = coroutine.yield(REACHED)
      if how ~= nil then error(how.error, 0) end
    end)
  end)
  local ok, r = coroutine.resume(co)
  if not ok then error(r, 0) end
  if r ~= REACHED then return false end
  core.job_local(true).answer = co
  return true
end

-- Runs c through trail and fn(c) at its bottom, then lets it return.
local function run_answered(trail, c, fn)
  if #trail == 0 then return fn(c) end
  Composer.run_trail(trail, c, function() fn(c) end)
end

-- Called by runtime.handle_update when the handler's stack has returned
-- (err: its error, if it raised): the last answer's middleware returns.
function runtime.conversation_finish(err)
  local ok, e = pcall(close_answer, err)
  if not ok then
    core.log("warn", "a conversation's last answer: its middleware failed "
             .. "after the conversation ended: " .. tostring(e))
  end
end


function methods.wait(ctx, query, opts)
  if type(ctx) ~= "table" or type(rawget(ctx, "update")) ~= "table" then
    errors.raise("ctx:wait(...) needs the context: call it with a colon, "
                 .. "not ctx.wait(...)")
  end
  local pred = predicate(query)
  opts = check_options(opts)
  local key = wait_key(ctx, opts, "ctx:wait")
  local timeout = opts.timeout
  if timeout == nil then timeout = default_timeout end
  local commands, otherwise = opts.commands == true, opts.otherwise
  local bot = ctx.bot
  local trail = Composer.trail(ctx)
  -- Decides for one update, in this generation (the C side calls it for
  -- incoming updates, outside this coroutine): its context if it is this
  -- conversation's, and whether it matched. The filter sees the update
  -- itself, before any middleware.
  local function offer(update)
    local c = Context.new(update, bot)
    if not commands and is_command(c) then return nil end
    if pred(c) then return c, true end
    if otherwise then return c, false end
    return nil
  end
  local deadline = timeout and core.now() + timeout
  local site = errors.where()
  local durable = dialog.enabled()
  -- The previous answer is done with; what this update changed is written.
  close_answer()
  run_hooks("suspend", ctx)
  while true do
    -- A durable dialog's record answers (while it replays), or is stored
    -- before the wait suspends (lua/dialog.lua).
    local recorded, event, resumed_deadline
    if durable then
      recorded, event, resumed_deadline = dialog.wait(key, display(key),
                                                      timeout, ctx)
      if resumed_deadline then deadline = resumed_deadline end
    end
    local kind, a, b
    if recorded == "replayed" then
      kind, a, b = dialog.outcome(event, bot)
    else
      -- A reload replaced this code: the dialog goes on in the new one.
      if recorded == "live" and dialog.stale() then conv.move() end
      local remaining = deadline and math.max(deadline - core.now(), 0)
      kind, a, b = conv.wait(key, offer, remaining, site, recorded == "live")
      if kind == "held" then
        local ok, c1, m1 = pcall(offer, json.decode(a))
        conv.settle(b, ok and c1 ~= nil)
        if not ok then kind, a = "error", c1
        elseif c1 ~= nil then kind, a, b = "update", c1, m1
        else kind = nil end   -- not this conversation's: it waits on
      end
      if recorded == "live" and kind then dialog.settle(event, kind, a, b) end
    end
    if kind == "update" then
      local c, matched = a, b
      run_hooks("resume", ctx)
      if matched then
        if open_answer(trail, c) then return c end
      else
        run_answered(trail, c, otherwise)
      end
      run_hooks("suspend", ctx)
    elseif kind then
      run_hooks("resume", ctx)
      if kind == "timeout" then
        error(setmetatable({ key = display(key), timeout = timeout,
                             ctx = ctx }, ConversationTimeout))
      elseif kind == "cancelled" then
        error(setmetatable({ key = display(key), reason = a, ctx = ctx },
                           ConversationCancelled))
      end
      error(a, 0)   -- "error": the filter failed on an incoming update
    end
  end
end

-- For sequentialize: the update waited for its keys; a conversation of its
-- keys may wait for it by now (true: it took the update).
function M.reroute(ctx)
  local active = conv.namespaces()
  if active == "" then return false end
  local ok, k1, k2, k3, k4 = pcall(runtime.conversation_keys, ctx.update,
                                   active)
  if not ok then return false end
  return conv.reroute(k1, k2, k3, k4)
end

runtime.conversation_reroute = M.reroute

-- ctx:cancelConversation(): the conversation ctx's update would go to (its
-- keys, most specific first); (key): the key function's key;
-- ({ chat =, user =, key = }): as ctx:wait names them.
function methods.cancelConversation(ctx, which)
  if which == nil then
    local ok, k1, k2, k3, k4 = pcall(keys_of, ctx)
    if not ok then return false end
    return conv.cancel(k1, k2, k3, k4)
  end
  if type(which) ~= "table" then which = { key = which } end
  return conv.cancel(wait_key(ctx, which, "ctx:cancelConversation", true))
end

M.ConversationTimeout = ConversationTimeout
M.ConversationCancelled = ConversationCancelled

return M
