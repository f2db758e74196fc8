-- Validates run(bot, opts) options, shaped as grammY runner's, and flattens
-- them for the C core. A misspelt or mistyped option is an error with a
-- suggestion, never silently ignored.
local errors = require("tghost.errors")
local filter = require("tghost.filter")
local Composer = require("tghost.composer")

local M = {}

-- The one schema of run()'s options lives in C (src/runopts.c): the name a
-- script writes, the flat name C reads, the type and the range. Here it is
-- turned into a tree of names for validation.
local SCHEMA = {}
local SPECS = {}
for _, spec in ipairs(require("tghost.runner").schema()) do
  local node = SCHEMA
  local parts = {}
  for part in spec.path:gmatch("[^.]+") do parts[#parts + 1] = part end
  for i = 1, #parts - 1 do
    node[parts[i]] = node[parts[i]] or {}
    node = node[parts[i]]
  end
  node[parts[#parts]] = spec
  SPECS[#SPECS + 1] = spec
end

M.suggest = errors.suggest

local function number_text(n)
  return tostring(math.tointeger(n) or n)
end

local function check_value(v, spec, here)
  local t = spec.type
  if t == "retry" then
    if not (type(v) == "number" and v >= spec.min and v <= spec.max
            or v == "exponential" or v == "quadratic") then
      error("run(): " .. here .. ' must be "exponential", "quadratic" or a '
            .. "number of milliseconds", 0)
    end
  elseif t == "sink_kind" then
    if v ~= "concurrent" and v ~= "sequential" and v ~= "batch" then
      error("run(): " .. here .. ' must be "concurrent", "sequential" or "batch"', 0)
    end
  elseif t == "integer" or t == "number" then
    if type(v) ~= "number" then
      error(string.format("run(): %s must be a number, not %s", here, type(v)), 0)
    end
    local whole = t ~= "integer" or math.type(v) == "integer" or v == math.floor(v)
    if not whole or v ~= v or v < spec.min or v > spec.max then
      error(string.format("run(): option %s must be %sbetween %s and %s", here,
                          whole and "" or "a whole number ",
                          number_text(spec.min), number_text(spec.max)), 0)
    end
  elseif t == "storage" then
    if type(v) ~= "table" and type(v) ~= "userdata" then
      error(string.format("run(): %s must be a storage (tghost.storage.sqlite(...), "
                          .. "tghost.storage.redis(...)), not %s", here, type(v)), 0)
    end
  elseif t == "update_types" then
    if type(v) ~= "table" then
      error(string.format("run(): %s must be a table, not %s", here, type(v)), 0)
    end
  elseif type(v) ~= t then
    error(string.format("run(): %s must be a %s, not %s", here, t, type(v)), 0)
  elseif t == "string" and v == "" then
    error(string.format("run(): %s must not be empty", here), 0)
  end
end

local function check(value, schema, path)
  if type(value) ~= "table" then
    -- Name the table's fields: `timeout = 5000` for
    -- `timeout = { milliseconds = 5000 }` is an easy slip.
    local names = {}
    for k in pairs(schema) do names[#names + 1] = k .. " = ..." end
    table.sort(names)
    error(string.format("run(): %s must be a table ({ %s }), not %s", path,
                        table.concat(names, ", "), type(value)), 0)
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
    elseif want.path then
      check_value(v, want, here)
    else
      check(v, want, here)
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
  local flat = {}
  for _, spec in ipairs(SPECS) do
    local v = opts
    for part in spec.path:gmatch("[^.]+") do
      v = type(v) == "table" and v[part] or nil
    end
    flat[spec.flat] = v
  end
  if flat.timeout_handler and not flat.timeout_ms then
    error("run(): sink.timeout.handler needs sink.timeout.milliseconds", 0)
  end
  if (flat.webhook_url == nil) ~= (flat.webhook_listen == nil) then
    error("run(): webhook.url and webhook.listen go together (the URL "
          .. "Telegram posts to, and the ADDR:PORT tghost listens on)", 0)
  end
  if flat.jobs_misfire ~= nil and flat.jobs_misfire ~= "once"
     and flat.jobs_misfire ~= "skip" and flat.jobs_misfire ~= "all" then
    error(string.format("run(): jobs.misfire must be \"once\", \"skip\" or "
                        .. "\"all\", not %q", flat.jobs_misfire), 0)
  end
  if flat.webhook_secret_file and not flat.webhook_url then
    error("run(): webhook.secretFile needs webhook.url and webhook.listen", 0)
  end
  if flat.allowed_updates ~= nil then
    check_allowed_updates(flat.allowed_updates)
  elseif bot ~= nil then
    flat.allowed_updates = M.derive_allowed_updates(bot)
  end
  flat.sink = flat.sink or "concurrent"
  local handler = flat.timeout_handler
  flat.timeout_handler = nil
  local cluster_key = flat.cluster_key
  flat.cluster_key = nil
  return flat, handler, cluster_key
end

return M
