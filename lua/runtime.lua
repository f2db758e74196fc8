-- What the C host calls for each job: run an update through the bot's
-- middleware, report failures the host detected (CPU budget, crashes), and
-- call the sink's timeout handler. Registered with core.set_runtime.
local core = require("tghost.core")
local conv = require("tghost.conv")
local Context = require("tghost.context")
local hints = require("tghost.hints")

local runtime = {}

-- The error a failed Bot API call raises (fields set by the C core).
local ApiError = {}
ApiError.__index = ApiError
ApiError.__name = "tghost.ApiError"
function ApiError.__tostring(e)
  if e.error_code then
    return string.format("Call to '%s' failed! (%d: %s)", e.method,
                         e.error_code, e.description or "")
  end
  return string.format("Call to '%s' failed! (%s)", e.method,
                       e.description or "")
end
runtime.ApiError = ApiError

-- What bot.catch handlers receive: err.error is what was raised, err.ctx
-- the update's context (nil for a scheduled job's run, whose job is
-- err.job).
local BotError = {}
BotError.__index = BotError
BotError.__name = "tghost.BotError"
function BotError.__tostring(e)
  if e.job then
    return string.format("error in job %s (id %s): %s", tostring(e.job.name),
                         tostring(e.job.id), tostring(e.error))
  end
  local id = e.ctx and e.ctx.update and e.ctx.update.update_id
  return string.format("error in middleware%s: %s",
                       id and (" for update " .. tostring(id)) or "",
                       tostring(e.error))
end
runtime.BotError = BotError

-- What ctx:wait raises (lua/conversation.lua): no answer in time, and the
-- conversation ended by ctx:cancelConversation() (reason "cancelled") or by
-- a newer conversation on the same key (reason "replaced").
local ConversationTimeout = {}
ConversationTimeout.__index = ConversationTimeout
ConversationTimeout.__name = "tghost.ConversationTimeout"
function ConversationTimeout.__tostring(e)
  return string.format("ConversationTimeout: no answer within %g s "
                       .. "(conversation %s)", e.timeout, tostring(e.key))
end
runtime.ConversationTimeout = ConversationTimeout

local ConversationCancelled = {}
ConversationCancelled.__index = ConversationCancelled
ConversationCancelled.__name = "tghost.ConversationCancelled"
function ConversationCancelled.__tostring(e)
  return string.format("ConversationCancelled: conversation %s %s",
                       tostring(e.key), e.reason == "replaced"
                         and "replaced by a newer one on the same key"
                         or "cancelled by ctx:cancelConversation()")
end
runtime.ConversationCancelled = ConversationCancelled

-- What a durable conversation raises when its code no longer replays its
-- record (lua/dialog.lua): err.key, err.at (the step), err.expected (what
-- the record has there), err.got (what the code did), err.where.
local ConversationChanged = {}
ConversationChanged.__index = ConversationChanged
ConversationChanged.__name = "tghost.ConversationChanged"
function ConversationChanged.__tostring(e)
  if e.at == 0 then
    return string.format("ConversationChanged: conversation %s was recorded "
                         .. "by %s of the script, which is now %s; it ends",
                         tostring(e.key), tostring(e.expected),
                         tostring(e.got))
  end
  return string.format("ConversationChanged: conversation %s does not replay "
                       .. "its record: at step %d the record has %s, the "
                       .. "code now %s%s; it ends", tostring(e.key), e.at,
                       tostring(e.expected), tostring(e.got),
                       e.where and (" (" .. e.where .. ")") or "")
end
runtime.ConversationChanged = ConversationChanged

-- Set by lua/tghost.lua: the bot, and Composer.needs (the composer
-- requires this module, so this one cannot require it back).
runtime.bot = nil
runtime.needs_of = nil
runtime.timeout_handler = nil
runtime.cluster_key = nil      -- run{ cluster = { key = fn } }

-- What the message handler of every xpcall here returns. Lua does not
-- call the handler for a memory error: then the raw error comes back.
local Traced = {}
local function traced(e)
  return setmetatable({ error = e, traceback = debug.traceback(nil, 2) }, Traced)
end
local function untraced(e)
  if getmetatable(e) == Traced then return e end
  return { error = e }
end

local function describe(e)
  local ok, s = pcall(tostring, e)
  return ok and s or "(error object without __tostring)"
end

-- Sends an error to bot.catch, or logs it with its traceback. job: the
-- scheduled job whose run failed (lua/jobs.lua), instead of ctx.
local function report(err, traceback, ctx, job)
  local bot = runtime.bot
  local handler = bot and bot.errorHandler
  if handler then
    local botErr = setmetatable({ error = err, ctx = ctx, job = job,
                                  traceback = traceback }, BotError)
    local ok, e2 = xpcall(handler, traced, botErr)
    if ok then return end
    e2 = untraced(e2)
    core.report_error("bot.catch handler failed: " .. describe(e2.error)
                      .. "\n" .. (e2.traceback or "") .. "\nwhile handling: "
                      .. describe(err) .. (traceback and ("\n" .. traceback) or ""))
    return
  end
  core.report_error("unhandled error in " .. (job and string.format(
                      "job %s (id %s)", tostring(job.name), tostring(job.id))
                      or "a handler") .. " (add bot.catch to handle "
                    .. "errors): " .. hints.explain(describe(err))
                    .. (traceback and ("\n" .. traceback) or ""))
end
runtime.report = report
runtime.traced = traced
runtime.untraced = untraced
runtime.describe = describe

runtime.report = report

local function noop() end

-- When someone watches (the sandbox), the end of the middleware chain
-- reports the update as unhandled: no handler took it.
local watches_unhandled = core.watches_unhandled()
local function unhandled_reporter(update)
  return function()
    for key in pairs(update) do
      if key ~= "update_id" then return core.unhandled(key) end
    end
    core.unhandled("update")
  end
end

-- A load error (from the C host) with a pointer to the fix, when Lua's
-- message is one lua/hints.lua knows.
runtime.explain = hints.explain

-- Whether the script registered middleware on bot (asked by the host
-- when the top level ended without run(bot)).
function runtime.has_handlers()
  local bot = runtime.bot
  -- A script that fed its updates itself (a test) meant not to run.
  if not bot or runtime.handled_updates then return false end
  local all, types = runtime.needs_of(bot)
  return all or next(types) ~= nil
end

-- The context of each update running, by update_id (weak: gone with the
-- update), for what renders for the update outside its ctx (a menu passed
-- as reply_markup): runtime.context_of(update_id).
local contexts = setmetatable({}, { __mode = "v" })
function runtime.context_of(id) return id and contexts[id] end

-- bot.handleUpdate's records of the updates it runs, by update_id
-- (lua/handleupdate.lua): the calls they make and how they failed.
runtime.records = {}

-- Set by lua/conversation.lua: offers a running update to the
-- conversations (true: one took it); lets a conversation's last answer
-- finish its middleware. Set by lua/dialog.lua: starts and ends an
-- update's record.
runtime.conversation_reroute = nil
runtime.conversation_finish = nil
runtime.dialog_begin = nil
runtime.dialog_finish = nil
-- Set by lua/composer.lua: the update's path through the middleware (what
-- a conversation's answers run) is no longer needed.
runtime.path_done = nil

-- redelivered: the journal runs it again after a restart.
-- route (src/luaconv.h): "held" when the update came while a conversation
-- of its key was running (it waits for that conversation to take it or let
-- it through); "offered" when the conversation of its key, waiting, did
-- not want it; nil otherwise: a conversation may have started waiting
-- since the update came, so it is offered once more before the middleware.
-- "resume": a durable conversation replays its first update (lua/
-- dialog.lua); it is nobody's answer. "receipt": a durable conversation
-- took it (src/script/luaconv.h).
function runtime.handle_update(update, redelivered, route)
  -- An answer a durable conversation took: done once its record has it.
  if route == "receipt" then return conv.receipt_wait() end
  local taken
  if route == "held" then
    taken = conv.hold_wait()
  elseif route == nil and conv.active() then
    taken = runtime.conversation_reroute(Context.new(update, runtime.bot))
  end
  if taken then
    -- (bot.handleUpdate reports it "consumed", as one taken on arrival)
    local record = runtime.records[update.update_id]
    if record then record.consumed = true end
    -- A durable conversation's answer is done once its record has it
    -- (conv.receipt_wait returns at once for any other).
    return conv.receipt_wait()
  end
  if runtime.dialog_begin then runtime.dialog_begin(update, redelivered) end
  local bot = runtime.bot
  local ctx = Context.new(update, bot)
  ctx.redelivered = redelivered and true or false
  contexts[update.update_id] = ctx
  local last = watches_unhandled and unhandled_reporter(update) or noop
  -- A command no handler took: tghost.commands{ suggest = ... }.
  local unknown = runtime.unhandled_command
  if unknown then
    local report = last
    last = function()
      unknown(ctx)
      return report()
    end
  end
  local ok, e = xpcall(bot.middleware(), traced, ctx, last)
  -- The last answer of a conversation this update had: its middleware
  -- returns now.
  local err = not ok and untraced(e).error or nil
  if runtime.conversation_finish then runtime.conversation_finish(err) end
  local changed = runtime.dialog_finish and runtime.dialog_finish(err)
  if changed then report(changed, nil, ctx) end
  runtime.path_done(ctx)
  if not ok then
    e = untraced(e)
    -- A cancelled conversation that does not catch it just ends.
    if getmetatable(e.error) == ConversationCancelled then
      core.log("debug", tostring(e.error))
      return
    end
    local record = runtime.records[update.update_id]
    if record then record.error = e.error end
    report(e.error, e.traceback, ctx)
    core.failed(describe(e.error))
  end
end

-- The cluster key the script gives an update (run{ cluster = { key = fn }
-- }): fn(ctx) on a context of the update alone (no middleware has run),
-- called when the update is stored in its partition stream; it may not
-- yield. Text, or nil for the default key (chat, user or update).
function runtime.cluster_key_of(update)
  local fn = runtime.cluster_key
  if not fn then return nil end
  local k = fn(Context.new(update, runtime.bot))
  if k == nil then return nil end
  if math.type(k) == "float" and k == math.floor(k) and k >= -2^53
      and k <= 2^53 then
    k = math.tointeger(k)
  end
  if math.type(k) == "integer" then return tostring(k) end
  if type(k) == "string" then return k end
  error("cluster.key must return a string, an integer or nil, not "
        .. (math.type(k) or type(k)), 0)
end

-- A failure the host detected after the handler's coroutine was gone.
function runtime.handle_failure(update, message)
  local ctx = update and Context.new(update, runtime.bot) or nil
  report(message, nil, ctx)
end

function runtime.handle_timeout(update, message)
  local handler = runtime.timeout_handler
  if not handler then return end
  local ctx = update and Context.new(update, runtime.bot) or nil
  local ok, e = xpcall(handler, traced, ctx, message)
  if not ok then
    e = untraced(e)
    core.report_error("timeout handler failed: " .. describe(e.error) .. "\n"
                      .. (e.traceback or ""))
  end
end

-- The script's __gc finalizers, queued when their objects were collected
-- (src/luaguard.c): { fn, obj, fn, obj, ... }. They run here, as a task,
-- so the CPU guard can stop one that loops, and they may yield.
function runtime.run_finalizers(list)
  for i = 1, #list, 2 do
    local ok, e = xpcall(list[i], traced, list[i + 1])
    if not ok then
      e = untraced(e)
      core.log("warn", "a __gc finalizer failed: " .. describe(e.error)
               .. (e.traceback and ("\n" .. e.traceback) or ""))
    end
    list[i], list[i + 1] = nil, nil
  end
end

return runtime
