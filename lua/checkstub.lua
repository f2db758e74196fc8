-- What a Bot API call returns under tghost --check, which makes no network
-- call: a stand-in result of the shape the method's real result has, so
-- that a script calling the API at its top level (bot.api.setMyCommands
-- before run(bot), say) loads and is validated like any other. Each call
-- logs a one-line note at the script's line saying it was not sent. The
-- result's shape comes from the Bot API's description (lua/apispec.lua):
-- every required field of the result type, with stand-in values.
local errors = require("tghost.errors")
local json = require("tghost.json")
local file = require("tghost.file")
errors.internal()

local M = {}

-- The Bot API's description (generated, loaded on first use: only --check
-- needs it).
local spec

local function user()
  return { id = 1, is_bot = true, first_name = "tghost --check",
           username = "check_bot", can_join_groups = true,
           can_read_all_group_messages = false, supports_inline_queries = false,
           can_connect_to_business = false, has_main_web_app = false }
end

local function chat(params)
  local id = params.chat_id
  if type(id) ~= "number" then id = 1 end
  return { id = id, type = id < 0 and "supergroup" or "private" }
end

local function message(params)
  return { message_id = 1, date = os.time(), chat = chat(params),
           from = user(), text = params.text }
end

-- Objects whose stand-in says more than their required fields.
local OBJECTS = { Message = message, User = user, UserFromGetMe = user,
                  Chat = chat }

-- A value of type t (lua/apispec.lua's type syntax) with every required
-- field, depth-limited.
local function stand_in(t, params, depth)
  t = t:match("^([^|]+)") or t                 -- a union: its first member
  if t:sub(-2) == "[]" then return json.array({}) end
  if t == "boolean" then return true end
  if t == "integer" or t == "number" then return 0 end
  if t == "string" then return "check" end
  local literal = t:match('^"(.*)"$')
  if literal then return literal end
  if OBJECTS[t] then return OBJECTS[t](params) end
  local alias = spec.aliases[t]
  if alias then return stand_in(alias, params, depth) end
  local fields = spec.objects[t]
  if not fields or depth > 4 then return {} end
  local out = {}
  for name, ftype in fields:gmatch("([%w_]+)!:(%S+)") do
    out[name] = stand_in(ftype, params, depth + 1)
  end
  if out.id ~= nil and out.type ~= nil and t:match("^Chat") then
    local c = chat(params)      -- getChat: the chat asked about
    out.id, out.type = c.id, c.type
  end
  return out
end

-- A copy of params with every InputFile replaced by a string, so that the
-- JSON encoder can check the rest as a real call would.
local function without_files(v, seen)
  if type(v) == "userdata" then
    return file.is_input_file(v) and "attach://file" or v
  end
  if type(v) ~= "table" or seen[v] then return v end
  seen[v] = true
  local out = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do out[k] = without_files(x, seen) end
  return out
end

-- The stand-in result of method(params), after a note at the script's line.
-- Parameters that could not be sent raise as they would in a real call.
function M.call(method, params)
  if params ~= nil and type(params) ~= "table" then
    errors.raise("bot.api.%s: expected a table of parameters, got %s", method,
                 type(params))
  end
  if params ~= nil then
    local ok, err = pcall(json.encode, without_files(params, {}))
    if not ok then
      errors.raise("bot.api.%s: cannot encode the parameters: %s", method,
                   (tostring(err):gsub("^.-:%d+: ", "")))
    end
  end
  errors.note("--check: bot.api.%s was not sent (tghost --check makes no "
              .. "network call); it returns a stand-in result", method)
  return M.result(method, params)
end

-- The stand-in result of method(params), without a note (bot.handleUpdate
-- answers the calls of a test with it).
function M.result(method, params)
  params = params or {}
  spec = spec or require("tghost.apispec")
  local m = spec.methods[method]
  if not m then return true end
  return stand_in(m[1], params, 0)
end

-- For tghost.http and tghost.download: the documented failure form.
function M.not_sent(what)
  errors.note("--check: %s was not sent (tghost --check makes no network "
              .. "call); it returns nil, message", what)
  return nil, what .. ": not sent: tghost --check makes no network call"
end

return M
