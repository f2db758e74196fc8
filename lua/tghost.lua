-- The tghost module, and the globals a bot script sees: bot, run, tghost.
local core = require("tghost.core")
local runner = require("tghost.runner")
local json = require("tghost.json")
local Composer = require("tghost.composer")
local options = require("tghost.options")
local runtime = require("tghost.runtime")
local bot = require("tghost.bot")
local sequentialize = require("tghost.sequentialize")
local session = require("tghost.session")
local conversation = require("tghost.conversation")
local dialog = require("tghost.dialog")
local errors = require("tghost.errors")
local triggers = require("tghost.triggers")
local commands = require("tghost.commands")
require("tghost.form")          -- ctx.form and ctx:skip()
errors.internal()

-- Tghost calls work inside the script's own coroutines (see
-- src/luacoro.c).
do
  local co = require("tghost.coroutine")
  coroutine.resume = co.resume
  coroutine.wrap = co.wrap
  coroutine.close = co.close
end

local tghost = {
  _VERSION = "tghost 0.1",
  json = json,
  -- Recorded by a durable conversation, and answered from its record when
  -- it replays (lua/dialog.lua).
  sleep = function(s) return dialog.effect("sleep", nil, core.sleep, s) end,
  now = function() return dialog.effect("now", nil, core.now) end,
  Composer = Composer.new,
  InlineKeyboard = require("tghost.keyboard").InlineKeyboard,
  Keyboard = require("tghost.keyboard").Keyboard,
  Menu = require("tghost.menu").new,
  i18n = require("tghost.i18n").new,
  commands = commands.public,
  ratelimit = require("tghost.ratelimit").new,
  matchFilter = require("tghost.filter").match_filter,
  pattern = triggers.pattern,
  bot = bot,
  -- The id of the generation (load of the script) this code belongs to.
  generation = function() return (select(2, core.current())) end,
  sequentialize = sequentialize,
  session = session,
  -- One constructor per storage backend, and custom() (lua/storage.lua).
  storage = require("tghost.storage").public,
  -- conversation{ key = fn } and what ctx:wait raises (see
  -- lua/conversation.lua).
  conversation = conversation.configure,
  ConversationTimeout = conversation.ConversationTimeout,
  ConversationCancelled = conversation.ConversationCancelled,
  ConversationChanged = runtime.ConversationChanged,
  -- What a failed Bot API call raises (err.method, err.error_code, ...).
  ApiError = runtime.ApiError,
  -- The bot token: tghost removes BOT_TOKEN from its environment, so a
  -- script that really needs the token asks for it here.
  token = core.token,
}

-- The Bot API tghost was generated for (net/botapi_methods.c): its version,
-- its methods, each method's parameters in order and the names its
-- positional call shape takes (grammY's).
do
  local apicore = require("tghost.api")
  tghost.botapi = {
    version = apicore.version,
    methods = apicore.methods,
    method = function(name)
      local canonical, result, params, positional = apicore.method(name)
      if not canonical then return nil end
      local list, pos = {}, {}
      for p in params:gmatch("%S+") do
        list[#list + 1] = { name = (p:gsub("!$", "")), required = p:sub(-1) == "!" }
        if not positional and p:sub(-1) == "!" then pos[#pos + 1] = list[#list].name end
      end
      for p in (positional or ""):gmatch("%S+") do pos[#pos + 1] = p end
      return { name = canonical, result = result, params = list, positional = pos }
    end,
  }
end

-- Formatting (lua/format.lua) and what Telegram signs (lua/webapp.lua).
do
  local format = require("tghost.format")
  tghost.fmt = format.fmt
  tghost.html = format.html
  tghost.markdown = format.markdown
  -- Loaded on first use: most bots never check a signature.
  tghost.webapp = {
    validate = function(...) return require("tghost.webapp").webapp_validate(...) end,
  }
  tghost.login = {
    validate = function(...) return require("tghost.webapp").login_validate(...) end,
  }
end

-- Scheduled jobs (lua/jobs.lua; it adds bot.job). In the sandbox the
-- jobs' clock moves (:wait 3h), and os.time and os.date follow it.
tghost.jobs = require("tghost.jobs")
do
  local jobscore = require("tghost.jobscore")
  if jobscore.clock_moves() then
    local raw_time, raw_date, floor = os.time, os.date, math.floor
    os.time = function(t)
      if t == nil then return floor(jobscore.now()) end
      return raw_time(t)
    end
    os.date = function(fmt, t)
      if t == nil then t = floor(jobscore.now()) end
      return raw_date(fmt, t)
    end
  end
end

-- Script I/O: HTTP client, files, child tasks.
local tasks = require("tghost.tasks")
do
  local files = require("tghost.files")
  tghost.http = require("tghost.http")
  tghost.exec = require("tghost.exec")
  tghost.InputFile = files.InputFile
  tghost.download = files.download
  tghost.spawn = tasks.spawn
  tghost.wait = tasks.wait
  tghost.all = tasks.all
  tghost.every = tasks.every
end

local function logger(level)
  return function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    core.log(level, table.concat(parts, " "))
  end
end
tghost.log = {
  debug = logger("debug"), info = logger("info"),
  warn = logger("warn"), error = logger("error"),
}

-- The handle run() returns: handle:stop(), handle:isRunning(),
-- handle:size(), handle:task() (dot calls work too).
local handle = {}
handle.stop = function() return runner.stop() end
handle.isRunning = function() return runner.is_running() end
handle.size = function() return runner.size() end
-- handle:start(): the bot again after a stop has completed (true), else
-- false (it runs, or is still stopping).
handle.start = function() return runner.start() end

-- tghost.feed: updates pushed by the script, for run(bot, { feed = true })
-- (src/pipeline/feed.h). push(update) suspends until the runner has
-- accepted it and returns true, or false and why it was not taken.
do
  local feed_next_id = 0
  tghost.feed = {
    push = function(update)
      if type(update) ~= "table" then
        errors.raise("tghost.feed.push(update): expected an update table, got %s",
                     type(update))
      end
      local id = update.update_id
      if id == nil then
        feed_next_id = feed_next_id + 1
        id = feed_next_id
        local copy = {}
        for k, v in pairs(update) do copy[k] = v end
        copy.update_id = id
        update = copy
      elseif math.tointeger(id) == nil then
        errors.raise("tghost.feed.push: update_id must be an integer, got %s",
                     tostring(id))
      end
      local ok, text = pcall(json.encode, update)
      if not ok then
        errors.raise("tghost.feed.push: the update cannot be encoded: %s",
                     (tostring(text):gsub("^.-:%d+: ", "")))
      end
      return errors.call(runner.feed_push, text, math.tointeger(id))
    end,
    queued = function() return runner.feed_queued() end,
  }
end
-- A waitable (tghost.wait(t), t:wait()) that completes when the runner has
-- stopped; waited for inside an update, once everything else in flight is
-- done (the update itself cannot finish before it wakes).
local stopped = tasks.waitable("the runner's task()", function()
  return errors.call(runner.wait_stopped)
end)
handle.task = function() return stopped end

-- run() without the error handling: returns the handle, and whether this
-- call starts the bot (false in a reloaded script, whose runner runs).
-- In a cluster, a chat's updates run in whichever process owns its
-- partition now: sessions must live where every process sees them.
local function check_cluster_sessions()
  for _, s in ipairs(require("tghost.storage").session_stores) do
    if s.kind == "memory" or s.kind == "sqlite" then
      errors.raise("run(): with --cluster, sessions need a storage every "
                   .. "process shares, and %s is this process's own (a "
                   .. "chat's next update may run in another process, which "
                   .. "would not see its session): use session{ storage = "
                   .. "tghost.storage.redis(url) } on the cluster's Redis%s",
                   tostring(s.store), s.kind == "memory"
                     and " (session{} without storage uses memory)" or "")
    end
  end
end

local function start(opts)
  local ok, flat, timeout_handler, cluster_key =
    pcall(options.flatten, opts, bot)
  if not ok then errors.raise(flat) end      -- at the script's run() call
  -- The first start: the dialogs a storage keeps resume before any update
  -- is fetched, so that their keys are theirs (lua/dialog.lua). Not in a
  -- cluster: there a dialog resumes where its partition is, when the
  -- partition's record hands its first update over again.
  if not runner.is_running() and not core.check_mode() and not core.cluster()
     and flat.cluster_url == nil then
    local ok, n = pcall(dialog.resume_all)
    if not ok then
      core.log("error", "conversations: the stored dialogs could not be "
               .. "resumed: " .. tostring(n))
    elseif n > 0 then
      core.log("info", string.format("conversations: %d dialog(s) resumed "
                                     .. "from their records", n))
    end
  end
  if flat.jobs_storage ~= nil then
    local kind, target, ns = require("tghost.storage").where(flat.jobs_storage)
    if not kind then
      errors.raise("run(): jobs.storage must be a storage from "
                   .. "tghost.storage.memory, .sqlite or .redis (a custom "
                   .. "storage cannot claim jobs atomically)")
    end
    flat.jobs_store_kind, flat.jobs_store_target, flat.jobs_store_ns =
      kind, target, ns
  end
  local first, cluster = errors.call(runner.run, flat)
  if cluster then check_cluster_sessions() end
  runtime.timeout_handler = timeout_handler
  runtime.cluster_key = cluster_key
  -- As grammY users do before run(bot): deleteWebhook, once, at start (a
  -- reload must not drop what is pending).
  if first and flat.drop_pending_updates then
    bot.api.deleteWebhook{ drop_pending_updates = true }
  end
  -- The command list Telegram shows, from the descriptions (once the top
  -- level has finished; on a reload, what changed).
  commands.after_run()
  return handle, first
end

function tghost.run(b, opts)
  if b ~= bot then errors.raise("run: expected the bot (run(bot, options))") end
  return (start(opts))
end

-- bot.start(opts): like grammY's, one update at a time. Options as
-- grammY's: allowed_updates, timeout, drop_pending_updates, and onStart,
-- called with the bot's User object (getMe) before the first update is
-- fetched.
local START_OPTIONS = { "allowed_updates", "drop_pending_updates", "onStart",
                        "timeout" }
bot.start = function(first, opts)
  if first ~= bot then opts = first end
  opts = opts or {}
  if type(opts) ~= "table" then
    errors.raise("bot.start: expected a table of options, got %s", type(opts))
  end
  local run_opts = { sink = { kind = "sequential" }, runner = { fetch = {} } }
  for k, v in pairs(opts) do
    if k == "allowed_updates" or k == "timeout" then
      run_opts.runner.fetch[k] = v
    elseif k == "drop_pending_updates" then
      if type(v) ~= "boolean" then
        errors.raise("bot.start: drop_pending_updates must be a boolean, not %s",
                     type(v))
      end
      run_opts.drop_pending_updates = v
    elseif k == "onStart" then
      if type(v) ~= "function" then
        errors.raise("bot.start: onStart must be a function, not %s", type(v))
      end
    else
      local s = type(k) == "string" and errors.suggest(k, START_OPTIONS)
      errors.raise("bot.start: unknown option %s%s (known: %s; use run(bot, "
                   .. "options) for the full set)", tostring(k),
                   s and (" (did you mean " .. s .. "?)") or "",
                   table.concat(START_OPTIONS, ", "))
    end
  end
  local h, starts = start(run_opts)
  if starts and opts.onStart then
    local me = bot.api.getMe()
    rawset(bot, "botInfo", me)
    opts.onStart(me)
  end
  return h
end

-- bot.handleUpdate(update [, opts]): one update through the bot, for
-- tests (lua/handleupdate.lua).
bot.handleUpdate = function(first, update, opts)
  if first ~= bot then update, opts = first, update end
  return require("tghost.handleupdate")(update, opts)
end

-- bot.stop(): as grammY's, stops fetching updates and lets the ones in
-- flight finish (the same as run()'s handle:stop()).
bot.stop = function() return runner.stop() end

-- bot.init(): as grammY's, fetches the bot's User object (getMe) into
-- bot.botInfo unless it is there already, and returns it.
bot.init = function()
  local me = bot.botInfo
  if me == nil then
    me = bot.api.getMe()
    rawset(bot, "botInfo", me)
  end
  return me
end

runtime.bot = bot
runtime.needs_of = Composer.needs
core.set_runtime(runtime)

_G.bot = bot
_G.run = tghost.run
_G.sequentialize = sequentialize
_G.session = session
_G.conversation = conversation.configure
_G.tghost = tghost
_G.print = core.print
-- require's failures list where it looked (lua/hints.lua).
require("tghost.hints").install()
_G.os.exit = runner.exit

-- Writes to stdout and stderr go through the token redactor, as print
-- does (writes to other files are the script's business).
do
  local FILE = getmetatable(io.stdout).__index
  local raw_write = FILE.write
  local stdout, stderr = io.stdout, io.stderr
  local redact, concat, select, type = core.redact, table.concat, select, type
  FILE.write = function(f, ...)
    if f ~= stdout and f ~= stderr then return raw_write(f, ...) end
    local n = select("#", ...)
    for i = 1, n do
      local t = type((select(i, ...)))
      if t ~= "string" and t ~= "number" then return raw_write(f, ...) end
    end
    return raw_write(f, redact(concat({ ... }, "", 1, n)))
  end
  io.write = function(...) return io.output():write(...) end

  -- Reading the terminal blocks the loop, every update with it, until a
  -- line comes (and in the sandbox the terminal is the chat): refused
  -- outside a plain script's top level, with the way to ask a user.
  local raw_read, raw_lines, raw_io_lines = FILE.read, FILE.lines, io.lines
  local stdin, refusal = io.stdin, core.stdin_refusal
  local function guard(f, what)
    if f ~= stdin then return end
    local why = refusal()
    if why then
      errors.raise("%s: %s; ask the user in the chat with ctx:wait() (a "
                   .. "conversation) instead", what, why)
    end
  end
  FILE.read = function(f, ...)
    guard(f, "io.read")
    return raw_read(f, ...)
  end
  FILE.lines = function(f, ...)
    guard(f, "io.lines")
    return raw_lines(f, ...)
  end
  io.read = function(...) return io.input():read(...) end
  io.lines = function(...)
    if (...) == nil then guard(io.input(), "io.lines") end
    return raw_io_lines(...)
  end
end
package.loaded["tghost"] = tghost

return tghost
