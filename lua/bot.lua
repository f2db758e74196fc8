-- The bot: a composer with the Bot API client, error handler, identity
-- (bot.botInfo, from getMe) and bot.start().
local core = require("tghost.core")
local apicore = require("tghost.api")
local Composer = require("tghost.composer")
local errors = require("tghost.errors")
local dialog = require("tghost.dialog")
local format = require("tghost.format")
local runtime = require("tghost.runtime")
errors.internal()

local bot = Composer.new()
local check_mode = core.check_mode()
local checkstub = check_mode and require("tghost.checkstub")

-- bot.api.<method>: every method of the Bot API version tghost was
-- generated for (net/botapi_methods.c), in grammY's two call shapes: a table of
-- parameters, bot.api.sendMessage{ chat_id = id, text = "hi" }, or grammY's
-- positional arguments and then a table of the rest,
-- bot.api.sendMessage(id, "hi", { parse_mode = "HTML" }): the required
-- parameters in the Bot API's order, except where grammY's Api takes others
-- (bot.api.editMessageText(chat_id, message_id, text)). A name Telegram
-- does not have raises ("did you mean sendMessage?") before anything is
-- sent; bot.api.raw.<method>(params) sends any name as given (a newer or a
-- local Bot API server). Errors about the parameters name the script's
-- line. Under --check nothing is sent: the call returns a stand-in result
-- (lua/checkstub.lua). Every call goes through the transformers of
-- bot.api.config.use(fn), the last installed first, as in grammY.
local api = {}
local raw = {}
local methods = {}          -- name -> { positional = {...}, optional = set, known = set, has_parse_mode }
local transformers = {}
local default_parse_mode

local function method_info(name)
  local info = methods[name]
  if info ~= nil then return info end
  local canonical, _, params, positional = apicore.method(name)
  if not canonical then
    methods[name] = false
    return false
  end
  -- positional: grammY's list where it differs from the required
  -- parameters. A positional argument may be nil (or left off at the end,
  -- "name?") unless the Bot API requires it.
  info = { name = canonical, positional = {}, optional = {}, known = {} }
  local required = {}
  for p in params:gmatch("%S+") do
    local bare = p:gsub("!$", "")
    info.known[bare] = true
    if bare ~= p then required[bare] = true end
    if bare ~= p and not positional then info.positional[#info.positional + 1] = bare end
  end
  info.last_required = #info.positional
  if positional then
    info.last_required = 0
    for p in positional:gmatch("%S+") do
      local bare = p:gsub("%?$", "")
      info.positional[#info.positional + 1] = bare
      if not required[bare] then info.optional[bare] = true end
      if bare == p then info.last_required = #info.positional end
    end
  end
  info.has_parse_mode = info.known.parse_mode or false
  methods[name] = info
  return info
end

local function unknown_method(name)
  local s = errors.suggest(name, apicore.methods())
  errors.raise("bot.api.%s: the Bot API (version %s) has no method %s%s; "
               .. "bot.api.raw.%s(params) sends it anyway", name,
               apicore.version, name, s and (" (did you mean " .. s .. "?)") or "",
               name)
end

local is_file = require("tghost.file").is_input_file

-- Whether a single table argument is the table shape (its keys are
-- parameter names) rather than a first positional argument that is itself
-- a table (setMyCommands({ ... }), editMessageMedia(media)).
local function is_params_table(info, t)
  if #info.positional == 0 or next(t) == nil then return true end
  for k in pairs(t) do
    if type(k) == "string" and info.known[k] then return true end
  end
  return false
end

local warned = {}
-- A parameter the spec does not have is sent as given (Telegram ignores
-- it; a newer Bot API may know it), with a warning once per name.
local function check_names(info, params)
  for k in pairs(params) do
    if type(k) == "string" and not info.known[k] then
      local key = info.name .. "." .. k
      if not warned[key] then
        warned[key] = true
        local known = {}
        for n in pairs(info.known) do known[#known + 1] = n end
        table.sort(known)
        local s = errors.suggest(k, known)
        errors.warn("bot.api.%s: Bot API %s has no parameter %s%s; sent as given",
                    info.name, apicore.version, k,
                    s and (" (did you mean " .. s .. "?)") or "")
      end
    end
  end
end

-- The parameters of a call in either shape, as one table.
local function params_of(info, name, n, ...)
  local first = ...
  if n == 0 then return nil end
  if n == 1 and (first == nil or (type(first) == "table" and not is_file(first)
                                  and is_params_table(info, first))) then
    return first
  end
  local req = info.positional
  if n > #req + 1 then
    errors.raise("bot.api.%s: %d arguments, but it takes at most %d (%s)", name,
                 n, #req + 1, table.concat(req, ", ")
                   .. (#req > 0 and ", " or "") .. "other")
  end
  local p = {}
  for i, pname in ipairs(req) do
    local v = (select(i, ...))
    if v == nil and i <= n and not info.optional[pname] then
      errors.raise("bot.api.%s(%s, other): %s is nil", name,
                   table.concat(req, ", "), pname)
    end
    p[pname] = v
  end
  if n < info.last_required then
    errors.raise("bot.api.%s(%s, other): %s is missing", name,
                 table.concat(req, ", "), req[n + 1])
  end
  local other = select(#req + 1, ...)
  if other ~= nil then
    if type(other) ~= "table" then
      errors.raise("bot.api.%s: other (after %s) must be a table of parameters, "
                   .. "not %s", name, table.concat(req, ", "), type(other))
    end
    for k, v in pairs(other) do
      if p[k] == nil then p[k] = v end
    end
  end
  return p
end

-- bot.handleUpdate's records (lua/handleupdate.lua), by update_id: a call
-- made while one of its updates runs is recorded there (and answered there
-- unless the test asked for real calls).
local records = runtime.records

local function send_now(method, params)
  if check_mode then return checkstub.call(method, params) end
  return dialog.effect("api", method, errors.call, apicore.call, method, params)
end

local function send(method, params)
  if next(records) ~= nil then
    local record = records[(core.current())]
    if record then return record.call(method, params, send_now) end
  end
  return send_now(method, params)
end

-- The call through the transformers, the last installed outermost.
local function call_through(method, params)
  local fn = send
  for i = 1, #transformers do
    local prev, t = fn, transformers[i]
    fn = function(m, p) return t(prev, m, p) end
  end
  return fn(method, params)
end

local function make_call(name, info)
  return function(...)
    local n = select("#", ...)
    local params
    if n > 0 and (...) == api then
      params = params_of(info, name, n - 1, select(2, ...))  -- bot.api:method(...)
    else
      params = params_of(info, name, n, ...)
    end
    if params ~= nil and type(params) ~= "table" then
      errors.raise("bot.api.%s: expected a table of parameters, got %s", name,
                   type(params))
    end
    if params then
      format.apply(params, info.known)
      check_names(info, params)
    end
    if default_parse_mode and info.has_parse_mode
       and (params == nil or (params.parse_mode == nil and params.entities == nil
                              and params.caption_entities == nil)) then
      params = params or {}
      params.parse_mode = default_parse_mode
    end
    return call_through(info.name, params)
  end
end

setmetatable(api, {
  __index = function(t, method)
    if type(method) ~= "string" then return nil end
    local info = method_info(method)
    if not info then
      return function() unknown_method(method) end
    end
    local call = make_call(method, info)
    rawset(t, method, call)
    return call
  end,
})

-- bot.api.raw.<method>(params): any name, the table shape only.
setmetatable(raw, {
  __index = function(t, method)
    if type(method) ~= "string" then return nil end
    local function call(params, extra)
      if params == t then params = extra end
      if params ~= nil and type(params) ~= "table" then
        errors.raise("bot.api.raw.%s: expected a table of parameters, got %s",
                     method, type(params))
      end
      return call_through(method, params)
    end
    rawset(t, method, call)
    return call
  end,
})
rawset(api, "raw", raw)

-- bot.api.config{ autoRetry = ..., throttle = ..., parseMode = ... }: flood
-- control (docs/guide/bot-api.md) and the parse_mode of every call that sets neither
-- parse_mode nor entities (false: none). Returns the configuration in
-- force. bot.api.config.use(fn): fn(prev, method, params) sees every call
-- and returns its result (usually prev(method, params)).
local PARSE_MODES = { HTML = true, MarkdownV2 = true, Markdown = true }
local config = setmetatable({}, {
  __call = function(self, first, opts)
    if first == api or first == self then first = opts end
    local c
    if type(first) == "table" and first.parseMode ~= nil then
      local pm = first.parseMode
      if pm ~= false and not PARSE_MODES[pm] then
        errors.raise("bot.api.config: parseMode must be \"HTML\", \"MarkdownV2\", "
                     .. "\"Markdown\" or false, not %s", tostring(pm))
      end
      local rest = {}
      for k, v in pairs(first) do
        if k ~= "parseMode" then rest[k] = v end
      end
      default_parse_mode = pm or nil
      c = errors.call(apicore.config, rest)
    else
      c = errors.call(apicore.config, first)
    end
    c.parseMode = default_parse_mode or false
    return c
  end,
})
rawset(config, "use", function(first, fn)
  if first == config then first = fn end
  if type(first) ~= "function" then
    errors.raise("bot.api.config.use: expected a function(prev, method, params), "
                 .. "got %s", type(first))
  end
  transformers[#transformers + 1] = first
  return api
end)
rawset(api, "config", config)
bot.api = api

-- bot.catch(fn): fn(err) receives errors of every handler (err.error,
-- err.ctx).
bot.catch = function(first, fn)
  if first == bot then first = fn end
  if type(first) ~= "function" then
    errors.raise("bot.catch: expected a function, got %s", type(first))
  end
  bot.errorHandler = first
  return bot
end

-- bot.botInfo: the bot's User object from getMe, once the runner has it
-- (nil before). Decoded once and then kept; a script may set it itself
-- (tests do).
local mt = getmetatable(bot)
mt.__index = function(t, key)
  if key == "botInfo" then
    local info = core.bot_info()
    if info ~= nil then rawset(t, "botInfo", info) end
    return info
  end
end
mt.__name = "tghost.Bot"

return bot
