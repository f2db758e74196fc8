-- Validates run(bot, opts) options, shaped as grammY runner's, and flattens
-- them for the C core. A misspelt or mistyped option is an error with a
-- suggestion, never silently ignored.
local errors = require("tghost.errors")
local filter = require("tghost.filter")
local Composer = require("tghost.composer")

local M = {}

local SCHEMA = {
  -- deleteWebhook{drop_pending_updates = true} before the first poll
  -- (done by lua/tghost.lua, not by the core).
  drop_pending_updates = "boolean",
  source = {
    speedTrafficBalance = "number",
    maxDelayMilliseconds = "number",
  },
  runner = {
    fetch = { timeout = "number", allowed_updates = "table" },
    retryInterval = "interval",
    maxRetryTime = "number",
    silent = "boolean",
  },
  sink = {
    kind = "kind",
    concurrency = "number",
    maxWaiting = "number",
    timeout = { milliseconds = "number", handler = "function" },
  },
}

M.suggest = errors.suggest

local function check(value, schema, path)
  if type(value) ~= "table" then
    error(string.format("run(): %s must be a table, not %s", path, type(value)), 0)
  end
  for key, v in pairs(value) do
    local want = schema[key]
    local here = path == "" and tostring(key) or (path .. "." .. tostring(key))
    if want == nil then
      local names = {}
      for k in pairs(schema) do names[#names + 1] = k end
      table.sort(names)
      local s = type(key) == "string" and M.suggest(key, names)
      error(string.format("run(): unknown option %s%s (known here: %s)", here,
                          s and (" (did you mean " .. s .. "?)") or "",
                          table.concat(names, ", ")), 0)
    elseif type(want) == "table" then
      check(v, want, here)
    elseif want == "interval" then
      if not (type(v) == "number" and v >= 0 or v == "exponential" or v == "quadratic") then
        error("run(): " .. here .. ' must be "exponential", "quadratic" or a number of milliseconds', 0)
      end
    elseif want == "kind" then
      if v ~= "concurrent" and v ~= "sequential" and v ~= "batch" then
        error("run(): " .. here .. ' must be "concurrent", "sequential" or "batch"', 0)
      end
    elseif type(v) ~= want then
      error(string.format("run(): %s must be a %s, not %s", here, want, type(v)), 0)
    end
  end
end

-- Update types Telegram leaves out unless allowed_updates names them.
local OPT_IN = { "chat_member", "message_reaction", "message_reaction_count" }

-- allowed_updates derived from the bot's handlers, for when the script
-- does not set runner.fetch.allowed_updates. With no allowed_updates,
-- getUpdates keeps whatever the last poller set; an empty list means
-- Telegram's default, every type but the opt-in ones. So: the empty list,
-- unless a handler filters for an opt-in type; then the explicit list of
-- every type the handlers need (all of them if some middleware runs for
-- every update, as bot.use(fn) does).
function M.derive_allowed_updates(bot)
  local all, types = Composer.needs(bot)
  local opt_in = false
  for _, t in ipairs(OPT_IN) do opt_in = opt_in or types[t] == true end
  if not opt_in then return setmetatable({}, { __jsontype = "array" }) end
  local list = {}
  for _, t in ipairs(filter.UPDATE_TYPES) do
    if all or types[t] then list[#list + 1] = t end
  end
  return list
end

local function check_allowed_updates(list)
  for i, t in ipairs(list) do
    local known = false
    for _, u in ipairs(filter.UPDATE_TYPES) do known = known or u == t end
    if not known then
      local s = type(t) == "string" and errors.suggest(t, filter.UPDATE_TYPES)
      error(string.format("run(): runner.fetch.allowed_updates[%d]: '%s' is "
                          .. "not an update type%s", i, tostring(t),
                          s and (" (did you mean " .. s .. "?)") or ""), 0)
    end
  end
end

-- Returns the flat table core.run expects, and the timeout handler. bot,
-- when given, is the source of a derived allowed_updates.
function M.flatten(opts, bot)
  opts = opts or {}
  check(opts, SCHEMA, "")
  local source = opts.source or {}
  local runner = opts.runner or {}
  local fetch = runner.fetch or {}
  local sink = opts.sink or {}
  local timeout = sink.timeout or {}
  local mw = sink.maxWaiting
  if mw ~= nil and (math.type(mw) ~= "integer" and mw ~= math.floor(mw) or mw < 0) then
    error("run(): sink.maxWaiting must be a whole number >= 0", 0)
  end
  if timeout.handler and not timeout.milliseconds then
    error("run(): sink.timeout.handler needs sink.timeout.milliseconds", 0)
  end
  local allowed = fetch.allowed_updates
  if allowed ~= nil then
    check_allowed_updates(allowed)
  elseif bot ~= nil then
    allowed = M.derive_allowed_updates(bot)
  end
  local flat = {
    sink = sink.kind or "concurrent",
    concurrency = sink.concurrency,
    max_waiting = sink.maxWaiting,
    timeout_ms = timeout.milliseconds,
    fetch_timeout = fetch.timeout,
    allowed_updates = allowed,
    retry_interval = runner.retryInterval,
    max_retry_ms = runner.maxRetryTime,
    silent = runner.silent,
    speed_traffic_balance = source.speedTrafficBalance,
    max_delay_ms = source.maxDelayMilliseconds,
  }
  return flat, timeout.handler
end

return M
