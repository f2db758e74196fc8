-- The bot: a composer with the Bot API client, error handler, identity
-- (bot.botInfo, from getMe) and bot.start().
local core = require("tghost.core")
local apicore = require("tghost.api")
local Composer = require("tghost.composer")
local errors = require("tghost.errors")
errors.internal()

local bot = Composer.new()
local check_mode = core.check_mode()
local checkstub = check_mode and require("tghost.checkstub")

-- bot.api.<method>(params): any Bot API method, by its exact name. Errors
-- about the parameters name the script's line. Under --check nothing is
-- sent: the call returns a stand-in result (lua/checkstub.lua).
local api = {}
setmetatable(api, {
  __index = function(t, method)
    if type(method) ~= "string" then return nil end
    local function call(params, extra)
      if params == t then params = extra end   -- bot.api:method{...}
      if check_mode then return checkstub.call(method, params) end
      return errors.call(apicore.call, method, params)
    end
    rawset(t, method, call)
    return call
  end,
})
-- bot.api.config{ autoRetry = ..., throttle = ... }: flood control (see
-- README). Returns the configuration in force.
rawset(api, "config", function(first, opts)
  if first == api then first = opts end
  return apicore.config(first)
end)
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
