-- What a Bot API call returns under tghost --check, which makes no network
-- call: a stand-in result of the shape the method's real result has, so
-- that a script calling the API at its top level (bot.api.setMyCommands
-- before run(bot), say) loads and is validated like any other. Each call
-- logs a one-line note at the script's line saying it was not sent.
local errors = require("tghost.errors")
local json = require("tghost.json")
local file = require("tghost.file")
errors.internal()

local M = {}

local function user()
  return { id = 1, is_bot = true, first_name = "tghost --check",
           username = "check_bot", can_join_groups = true,
           can_read_all_group_messages = false, supports_inline_queries = false }
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

-- Results by method, for the methods whose result is not simply true.
local RESULTS = {
  getMe = user,
  getUpdates = function() return {} end,
  getWebhookInfo = function()
    return { url = "", has_custom_certificate = false, pending_update_count = 0 }
  end,
  getChat = function(p)
    local c = chat(p)
    c.accent_color_id = 0
    c.max_reaction_count = 0
    return c
  end,
  getChatMember = function(p)
    return { status = "member", user = { id = p.user_id or 1, is_bot = false,
                                          first_name = "tghost --check" } }
  end,
  getChatAdministrators = function() return {} end,
  getChatMemberCount = function() return 0 end,
  getFile = function(p)
    return { file_id = p.file_id or "check", file_unique_id = "check",
             file_path = "check/file" }
  end,
  getUserProfilePhotos = function() return { total_count = 0, photos = {} } end,
  getMyCommands = function() return {} end,
  getMyName = function() return { name = "" } end,
  getMyDescription = function() return { description = "" } end,
  getMyShortDescription = function() return { short_description = "" } end,
  getMyDefaultAdministratorRights = function() return {} end,
  getChatMenuButton = function() return { type = "default" } end,
  getForumTopicIconStickers = function() return {} end,
  getStickerSet = function(p)
    return { name = p.name or "check", title = "check", sticker_type = "regular",
             stickers = {} }
  end,
  copyMessage = function() return { message_id = 1 } end,
  copyMessages = function() return {} end,
  forwardMessages = function() return {} end,
  sendMediaGroup = function(p) return { message(p) } end,
  exportChatInviteLink = function() return "https://t.me/+check" end,
  createChatInviteLink = function()
    return { invite_link = "https://t.me/+check", creator = user(),
             creates_join_request = false, is_primary = false, is_revoked = false }
  end,
  createInvoiceLink = function() return "https://t.me/$check" end,
}

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
  params = params or {}
  local make = RESULTS[method]
  if make then return make(params) end
  if method:match("^send") or method == "forwardMessage"
     or method:match("^editMessage") or method == "stopMessageLiveLocation" then
    return message(params)
  end
  return true
end

-- For tghost.http and tghost.download: the documented failure form.
function M.not_sent(what)
  errors.note("--check: %s was not sent (tghost --check makes no network "
              .. "call); it returns nil, message", what)
  return nil, what .. ": not sent: tghost --check makes no network call"
end

return M
