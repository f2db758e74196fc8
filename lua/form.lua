-- Forms inside conversations: ask, wait for an answer of the right kind,
-- ask again on anything else (grammY conversations' form.*, in Lua's
-- terms). Each is a thin layer over ctx:wait and the Bot API, so a
-- durable dialog replays it as it replays them.
--
--   local name  = ctx.form:text{ prompt = "Your name?" }
--   local age   = ctx.form:number{ prompt = "Your age?", integer = true,
--                                  min = 1, max = 150, retry = "1 to 150, please" }
--   local color = ctx.form:select({ "red", "green", "blue" }, { prompt = "Colour?" })
--   if ctx.form:confirm{ prompt = "Save?" } then ... end
--   local photo = ctx.form:photo{ prompt = "Your picture?" }   -- the largest PhotoSize
--
-- Every form returns the value and the answer's context. Options: prompt
-- (sent before waiting: a string or formatted text; a table of sendMessage
-- options in promptOptions), retry (sent for an answer that does not fit;
-- a default per form, or false for none), and timeout, key, chat, user,
-- commands (passed on to ctx:wait). select and confirm show buttons (an
-- inline keyboard; buttons = false: none) and accept the option typed as
-- text too; a press is answered and the buttons removed.
--
-- ctx:skip() on a context ctx:wait returned hands its update back: it runs
-- through the bot's middleware (inside this handler, so in its turn), as if
-- the dialog had never taken it.
local Context = require("tghost.context")
local runtime = require("tghost.runtime")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local WAIT_KEYS = { "timeout", "key", "chat", "user", "commands" }
local COMMON = { prompt = true, promptOptions = true, retry = true,
                 timeout = true, key = true, chat = true, user = true,
                 commands = true }

local function options(opts, what, extra)
  if opts == nil then return {} end
  if type(opts) == "string" then return { prompt = opts } end
  if type(opts) ~= "table" then
    errors.raise("ctx.form:%s: options must be a table (or a prompt string), "
                 .. "not %s", what, type(opts))
  end
  for k in pairs(opts) do
    if not COMMON[k] and not (extra and extra[k]) then
      errors.raise("ctx.form:%s: unknown option %s", what, tostring(k))
    end
  end
  return opts
end

local function send_prompt(ctx, opts, markup)
  if opts.prompt == nil then return nil end
  local other = {}
  for k, v in pairs(opts.promptOptions or {}) do other[k] = v end
  if markup then other.reply_markup = markup end
  return ctx:reply(opts.prompt, other)
end

-- Waits for an update parse(c) accepts (non-nil), answering the others
-- with the retry text; returns the value and the answer's context.
local function ask(ctx, opts, filter, parse, default_retry)
  local retry = opts.retry
  if retry == nil then retry = default_retry end
  local wait_opts = {}
  for _, k in ipairs(WAIT_KEYS) do wait_opts[k] = opts[k] end
  wait_opts.otherwise = function(c)
    if retry then c:reply(retry) end
  end
  local value
  local answer = ctx:wait(function(c)
    if filter and not c:has(filter) then return false end
    value = parse(c)
    return value ~= nil
  end, wait_opts)
  -- The predicate ran on this update last; parse once more in case it ran
  -- on another since (a held update offered after this one).
  value = parse(answer)
  return value, answer
end

local Form = {}
Form.__index = Form
Form.__name = "tghost.Form"

function Form.text(self, opts)
  opts = options(opts, "text")
  send_prompt(self.ctx, opts)
  return ask(self.ctx, opts, "message:text", function(c) return c.msg.text end,
             "Please answer with text.")
end

local NUMBER = { integer = true, min = true, max = true }
function Form.number(self, opts)
  opts = options(opts, "number", NUMBER)
  send_prompt(self.ctx, opts)
  local default = "Please send a number"
  if opts.min and opts.max then
    default = string.format("%s from %s to %s", default, opts.min, opts.max)
  elseif opts.min then
    default = string.format("%s of at least %s", default, opts.min)
  elseif opts.max then
    default = string.format("%s of at most %s", default, opts.max)
  end
  return ask(self.ctx, opts, "message:text", function(c)
    local text = c.msg.text:gsub("^%s+", ""):gsub("%s+$", ""):gsub(",", ".")
    local n = tonumber(text)
    if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
    if opts.integer then
      n = math.tointeger(n)
      if n == nil then return nil end
    end
    if opts.min and n < opts.min then return nil end
    if opts.max and n > opts.max then return nil end
    return n
  end, default .. ".")
end

local function label_of(option)
  if type(option) == "table" then return tostring(option.label or option.text or option[1]) end
  return tostring(option)
end

local function value_of(option)
  if type(option) == "table" then
    if option.value ~= nil then return option.value end
    return option.label or option.text or option[1]
  end
  return option
end

-- Buttons for choices: callback data "tghost.form:<i>".
local PREFIX = "tghost.form:"

local function choose(self, choices, opts, what)
  local ctx = self.ctx
  local markup
  if opts.buttons ~= false then
    local rows = {}
    for i, option in ipairs(choices) do
      local row = opts.columns and rows[#rows] or nil
      if not row or #row >= (opts.columns or 1) then
        row = {}
        rows[#rows + 1] = row
      end
      row[#row + 1] = { text = label_of(option), callback_data = PREFIX .. i }
    end
    markup = { inline_keyboard = rows }
  end
  local prompt = send_prompt(ctx, opts, markup)
  local by_text = {}
  for i, option in ipairs(choices) do by_text[label_of(option):lower()] = i end
  local index, answer = ask(ctx, opts, nil, function(c)
    local cq = c.callbackQuery
    if cq then
      local i = cq.data and tonumber(cq.data:match("^" .. PREFIX:gsub("%.", "%%.") .. "(%d+)$"))
      -- Only a press on this prompt's buttons.
      if i and choices[i] and (not prompt or (cq.message and cq.message.message_id == prompt.message_id)) then
        return i
      end
      return nil
    end
    local text = c.msg and c.msg.text
    return text and by_text[text:gsub("^%s+", ""):gsub("%s+$", ""):lower()] or nil
  end, what == "confirm" and "Please answer yes or no." or
        ("Please choose one of: " .. table.concat((function()
          local l = {}
          for i, o in ipairs(choices) do l[i] = label_of(o) end
          return l
        end)(), ", ") .. "."))
  if answer.callbackQuery then pcall(answer.answerCallbackQuery, answer) end
  -- The buttons served their purpose, pressed or not.
  if markup and prompt and prompt.chat then
    pcall(ctx.bot.api.editMessageReplyMarkup, { chat_id = prompt.chat.id,
                                                message_id = prompt.message_id })
  end
  return value_of(choices[index]), answer
end

local SELECT = { buttons = true, columns = true }
function Form.select(self, choices, opts)
  if type(choices) ~= "table" or #choices == 0 then
    errors.raise("ctx.form:select(options [, opts]): options must be a "
                 .. "non-empty list, not %s", type(choices))
  end
  opts = options(opts, "select", SELECT)
  return choose(self, choices, opts, "select")
end

local CONFIRM = { buttons = true, yes = true, no = true }
function Form.confirm(self, opts)
  opts = options(opts, "confirm", CONFIRM)
  local yes, no = opts.yes or "Yes", opts.no or "No"
  local o = {}
  for k, v in pairs(opts) do if k ~= "yes" and k ~= "no" then o[k] = v end end
  o.columns = 2
  local value, answer = choose(self, { { label = yes, value = true },
                                       { label = no, value = false } }, o, "confirm")
  return value, answer
end

function Form.photo(self, opts)
  opts = options(opts, "photo")
  send_prompt(self.ctx, opts)
  return ask(self.ctx, opts, "message:photo", function(c)
    local sizes = c.msg.photo
    return sizes[#sizes]
  end, "Please send a photo.")
end

-- ctx.form: the forms, asking in ctx's conversation.
Context.getters.form = function(ctx)
  local f = rawget(ctx, "__form")
  if not f then
    f = setmetatable({ ctx = ctx }, Form)
    rawset(ctx, "__form", f)
  end
  return f
end

-- ctx:skip(): this update through the bot's middleware after all.
function Context.methods.skip(ctx)
  if type(ctx) ~= "table" or type(rawget(ctx, "update")) ~= "table" then
    errors.raise("ctx:skip() needs the context: call it with a colon")
  end
  -- It runs in this handler's job, which holds the sequentialize keys of
  -- its chat again since ctx:wait returned: a sequentialize on the way
  -- finds them held by this job and lets it through.
  local bot = runtime.bot
  local ok, e = xpcall(bot.middleware(), function(err)
    return { error = err, traceback = debug.traceback(nil, 2) }
  end, ctx, function() end)
  if not ok then runtime.report(e.error, e.traceback, ctx) end
end

M.Form = Form
return M
