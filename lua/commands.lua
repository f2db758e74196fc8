-- Command descriptions, the command list Telegram shows (setMyCommands),
-- and "did you mean /start?" (grammY's commands plugin, in Lua's terms).
--
--   bot.command("start", "Start the bot", handler)
--   bot.command("settings", { description = "Your settings",
--                             descriptions = { de = "Deine Einstellungen" },
--                             scope = "all_private_chats" }, handler)
--   tghost.commands{ suggest = true }     -- "Did you mean /start?"
--
-- Every name bot.command registers is known here (for suggestions); the
-- ones with a description make the lists: one setMyCommands per scope
-- (default: Telegram's default scope) and language (the default list, and
-- one per language some description is given in, the others' default
-- descriptions filling in). After run(), once the script's top level has
-- finished, tghost sends those lists; after a hot reload it sends only
-- the lists that changed, and deleteMyCommands for a scope and language
-- that lost all its commands. What was sent is remembered in a memory
-- storage, so it outlives reloads, not the process: a start sends every
-- list. A failed call is logged and tried again at the next reload.
local core = require("tghost.core")
local json = require("tghost.json")
local errors = require("tghost.errors")
local runtime = require("tghost.runtime")
local storage = require("tghost.storage")
local tasks = require("tghost.tasks")
errors.internal()

local M = {}

local SCOPES = { default = true, all_private_chats = true, all_group_chats = true,
                 all_chat_administrators = true }
local SCOPE_TYPES = { default = true, all_private_chats = true, all_group_chats = true,
                      all_chat_administrators = true, chat = true,
                      chat_administrators = true, chat_member = true }
local OPTIONS = { description = true, descriptions = true, scope = true }

-- name -> { name, description, descriptions, scopes } (description nil:
-- a command Telegram's list does not show).
local registry = {}
local order = {}

local config = { sync = true, suggest = false }

local function scope_of(s, name)
  if s == nil then return { type = "default" } end
  if type(s) == "string" then
    if not SCOPES[s] then
      local names = {}
      for k in pairs(SCOPES) do names[#names + 1] = k end
      table.sort(names)
      local hint = errors.suggest(s, names)
      errors.raise("command %q: unknown scope %q%s (known: %s, or a "
                   .. "BotCommandScope table)", name, s,
                   hint and (" (did you mean " .. hint .. "?)") or "",
                   table.concat(names, ", "))
    end
    return { type = s }
  end
  if type(s) ~= "table" or not SCOPE_TYPES[s.type] then
    errors.raise("command %q: a scope is a name (\"all_private_chats\") or a "
                 .. "BotCommandScope table ({ type = \"chat\", chat_id = ... })",
                 name)
  end
  return s
end

local function check_text(text, name, what)
  if type(text) ~= "string" then
    errors.raise("command %q: %s must be a string, not %s", name, what, type(text))
  end
  local len = utf8.len(text)
  if not len or len < 1 or len > 256 then
    errors.raise("command %q: %s must be 1 to 256 characters (Telegram's "
                 .. "limit), not %s", name, what, tostring(len or "invalid UTF-8"))
  end
end

-- Options from bot.command's second argument: a description string or a
-- table { description, descriptions, scope }. nil: not options.
function M.is_options(v)
  if type(v) == "string" then
    -- require's loader data (a file name) is no description.
    return not (v:sub(-4) == ".lua" or v == ":preload:")
  end
  return type(v) == "table" and getmetatable(v) == nil and v.description ~= nil
end

-- Registers the names of one bot.command call, with its options (or nil).
function M.register(names, opts)
  local list = type(names) == "table" and names or { names }
  if type(opts) == "string" then opts = { description = opts } end
  if opts ~= nil then
    for k in pairs(opts) do
      if not OPTIONS[k] then
        errors.raise("command: unknown option %s (known: description, "
                     .. "descriptions, scope)", tostring(k))
      end
    end
  end
  for _, n in ipairs(list) do
    local name = type(n) == "string" and n:match("^([%w_]+)") or nil
    if name then
      local entry = registry[name]
      if not entry then
        entry = { name = name }
        registry[name] = entry
        order[#order + 1] = name
      end
      if opts then
        if not name:match("^[a-z0-9_]+$") or #name > 32 then
          errors.raise("command %q: a command with a description must be 1 to "
                       .. "32 lowercase letters, digits or '_' (Telegram's "
                       .. "rule for its command list)", name)
        end
        check_text(opts.description, name, "the description")
        if opts.descriptions ~= nil and type(opts.descriptions) ~= "table" then
          errors.raise("command %q: descriptions must be a table { language_code "
                       .. "= text }, not %s", name, type(opts.descriptions))
        end
        local descriptions = {}
        for lang, text in pairs(opts.descriptions or {}) do
          if type(lang) ~= "string" or not lang:match("^%a%a%a?$") then
            errors.raise("command %q: descriptions are keyed by two-letter "
                         .. "language codes (\"de\"), not %s", name, tostring(lang))
          end
          check_text(text, name, "the " .. lang .. " description")
          descriptions[lang:lower()] = text
        end
        local scopes = {}
        local s = opts.scope
        if type(s) == "table" and s.type == nil then
          for i, x in ipairs(s) do scopes[i] = scope_of(x, name) end
        else
          scopes[1] = scope_of(s, name)
        end
        entry.description, entry.descriptions, entry.scopes =
          opts.description, descriptions, scopes
      end
    end
  end
end

-- Every registered command, in registration order: { name, description,
-- descriptions, scopes }.
function M.list()
  local out = {}
  for i, name in ipairs(order) do out[i] = registry[name] end
  return out
end

-- The lists to send: { key = "<scope type>|<chat>|<user>|<lang>", scope, language_code
-- (nil for the default list), commands = { { command, description } } },
-- sorted by key.
function M.plan()
  local groups, keys = {}, {}
  local function group(scope, lang)
    -- Canonical (pairs() order differs between Lua states).
    local key = table.concat({ scope.type, tostring(scope.chat_id or ""),
                               tostring(scope.user_id or ""), lang or "" }, "|")
    local g = groups[key]
    if not g then
      g = { key = key, scope = scope, language_code = lang, commands = {} }
      groups[key] = g
      keys[#keys + 1] = key
    end
    return g
  end
  -- Languages some command in a scope is described in.
  for _, name in ipairs(order) do
    local c = registry[name]
    if c.description then
      for _, scope in ipairs(c.scopes) do group(scope, nil) end
    end
  end
  local langs = {}
  for _, name in ipairs(order) do
    local c = registry[name]
    if c.description then
      for lang in pairs(c.descriptions) do langs[lang] = true end
    end
  end
  local lang_list = {}
  for l in pairs(langs) do lang_list[#lang_list + 1] = l end
  table.sort(lang_list)
  for _, name in ipairs(order) do
    local c = registry[name]
    if c.description then
      for _, scope in ipairs(c.scopes) do
        local g = group(scope, nil)
        g.commands[#g.commands + 1] = { command = name, description = c.description }
        for _, lang in ipairs(lang_list) do
          local lg = group(scope, lang)
          lg.commands[#lg.commands + 1] = { command = name,
            description = c.descriptions[lang] or c.description }
        end
      end
    end
  end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = groups[k] end
  return out
end

-- What was sent, outliving reloads: key -> the commands' JSON.
local sent_store

-- Sends the lists that differ from what was sent before, and deletes the
-- lists that are gone. Returns how many calls were made.
function M.sync()
  sent_store = sent_store or storage.public.memory("tghost.commands")
  local api = runtime.bot.api
  local sent = sent_store:get("sent") or {}
  local now, calls = {}, 0
  for _, g in ipairs(M.plan()) do
    -- Canonical: json.encode's key order follows pairs(), which differs
    -- between Lua states (the generations of a reload).
    local parts = {}
    for i, c in ipairs(g.commands) do
      parts[i] = json.encode(c.command) .. ":" .. json.encode(c.description)
    end
    local encoded = table.concat(parts, ",")
    now[g.key] = { scope = g.scope, language_code = g.language_code }
    if sent[g.key] == nil or sent[g.key].commands ~= encoded then
      calls = calls + 1
      local ok, e = pcall(api.setMyCommands, { commands = g.commands, scope = g.scope,
                                               language_code = g.language_code })
      if ok then
        sent[g.key] = { scope = g.scope, language_code = g.language_code,
                        commands = encoded }
      else
        core.log("warn", "setMyCommands (" .. g.key .. ") failed: " .. tostring(e)
                 .. "; tried again at the next reload")
      end
    end
  end
  for key, old in pairs(sent) do
    if not now[key] then
      calls = calls + 1
      local ok, e = pcall(api.deleteMyCommands, { scope = old.scope,
                                                  language_code = old.language_code })
      if ok then sent[key] = nil
      else core.log("warn", "deleteMyCommands (" .. key .. ") failed: " .. tostring(e)) end
    end
  end
  sent_store:set("sent", sent)
  return calls
end

-- Called by run() in every generation: sync once the top level is done
-- (a background task runs after it), unless turned off or under --check.
function M.after_run()
  if not config.sync or core.check_mode() then return end
  local any = false
  for _, name in ipairs(order) do any = any or registry[name].description ~= nil end
  -- Nothing described now and nothing sent before: leave Telegram's list
  -- alone (it may have been set by hand).
  sent_store = sent_store or storage.public.memory("tghost.commands")
  if not any and next(sent_store:get("sent") or {}) == nil then return end
  tasks.spawn(function()
    local ok, e = pcall(M.sync)
    if not ok then core.log("warn", "setting the bot's commands failed: " .. tostring(e)) end
  end)
end

-- === unknown commands ===================================================

-- The registered command nearest to name, if one is close enough to be a
-- typo.
function M.nearest(name)
  if type(name) ~= "string" then return nil end
  name = name:gsub("^/", "")
  if registry[name] then return name end
  return errors.suggest(name, order)
end

-- The command at the start of a message, if any: its name and whether it
-- is addressed to this bot (no @ or our username).
local function command_of(ctx)
  local u = ctx.update
  local msg = u.message or u.channel_post
  local text = msg and (msg.text or msg.caption)
  local entities = msg and (msg.entities or msg.caption_entities)
  if type(text) ~= "string" or type(entities) ~= "table" then return nil end
  local e = entities[1]
  if not e or e.offset ~= 0 or e.type ~= "bot_command" then return nil end
  local cmd = text:sub(2, e.length)
  local name, target = cmd:match("^([^@]+)@(.+)$")
  if name then
    local me = ctx.me
    if not (me and type(me.username) == "string" and me.username:lower() == target:lower()) then
      return nil
    end
    return name
  end
  return cmd
end

-- At the end of the middleware: a command no handler took.
local function unhandled(ctx)
  local name = command_of(ctx)
  if not name or registry[name] then return end
  local near = M.nearest(name)
  local s = config.suggest
  if type(s) == "function" then return s(ctx, near) end
  if near then
    ctx:reply(string.format("Unknown command /%s. Did you mean /%s?", name, near))
  end
end

-- tghost.commands{ suggest = true | function(ctx, nearest), sync = false }
function M.configure(opts)
  if type(opts) ~= "table" then
    errors.raise("tghost.commands{ suggest = ..., sync = ... }: expected a "
                 .. "table, got %s", type(opts))
  end
  for k, v in pairs(opts) do
    if k == "suggest" then
      if type(v) ~= "boolean" and type(v) ~= "function" then
        errors.raise("tghost.commands: suggest must be true, false or a "
                     .. "function(ctx, nearest), not %s", type(v))
      end
      config.suggest = v
      runtime.unhandled_command = v and unhandled or nil
    elseif k == "sync" then
      if type(v) ~= "boolean" then
        errors.raise("tghost.commands: sync must be a boolean, not %s", type(v))
      end
      config.sync = v
    else
      errors.raise("tghost.commands: unknown option %s (known: suggest, sync)",
                   tostring(k))
    end
  end
end

-- What scripts see as tghost.commands: callable (configure), with list,
-- plan, sync and nearest.
M.public = setmetatable({ list = M.list, plan = M.plan, sync = M.sync,
                          nearest = M.nearest },
                        { __call = function(_, opts) return M.configure(opts) end,
                          __name = "tghost.commands" })

return M
