-- tghost.i18n{...}: translations in a folder of Lua table files, the
-- user's language from Telegram (language_code) with an override kept in
-- the session, ctx:t(key, args) (grammY's i18n plugin, in Lua's terms).
--
--   -- locales/en.lua
--   return {
--     welcome = "Hello, {name}!",
--     apples = { one = "{count} apple", other = "{count} apples", [0] = "no apples" },
--     menu = { title = "Main menu" },            -- the key "menu.title"
--   }
--
--   local i18n = tghost.i18n{ directory = "locales", defaultLocale = "en",
--                             useSession = true }
--   bot.use(session{ initial = function() return {} end })
--   bot.use(i18n)
--   bot.command("start", function(ctx) ctx:reply(ctx:t("welcome", { name = ctx.from.first_name })) end)
--
-- Why Lua tables: a bot author edits them without learning a syntax, Lua
-- itself reports a mistake with the file and line, nesting gives keys a
-- namespace, and a rare sentence that needs code can be a function
-- (args, locale) -> string. A file is data: it runs with no globals.
--
-- A message is a string with {name} placeholders, filled from args (a
-- placeholder without a value stays as written), or a plural: a table with
-- an "other" entry and any of CLDR's categories (zero, one, two, few,
-- many) and exact numbers ([0] = ...), chosen by args.count with the
-- locale's CLDR rules (lua/plural.lua). A category the translation lacks
-- falls back to "other".
--
-- The locale of an update: the one set with ctx.i18n:setLocale(code)
-- (kept in ctx.session.__language_code with useSession), else the user's
-- language_code when a locale file matches it ("pt-br", then "pt"), else
-- defaultLocale. A key missing in that locale is taken from defaultLocale;
-- missing there too, ctx:t returns the key (and logs it once).
--
-- Locale files are read when the script loads, so they are hot-reloaded
-- with it (the reloader watches them). At start, keys of defaultLocale
-- that another locale lacks, and keys the script's ctx:t("...") calls use
-- that defaultLocale lacks, are reported: each on its own line under
-- tghost --check, as a one-line summary otherwise.
local core = require("tghost.core")
local Context = require("tghost.context")
local Composer = require("tghost.composer")
local plural = require("tghost.plural")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local OPTIONS = { directory = true, defaultLocale = true, useSession = true,
                  localeNegotiator = true, locales = true }

local I18n = {}
I18n.__index = I18n
I18n.__name = "tghost.I18n"

-- The generation's i18n (the last one made): ctx:t on a context no i18n
-- middleware saw (an answer from ctx:wait) uses it.
local current

-- === loading ============================================================

-- Flattens a locale table into key -> message ("menu.title"), checking
-- what each value is. Returns the map and a list of problems.
local function flatten(tbl, prefix, out, problems, file)
  for k, v in pairs(tbl) do
    local key = prefix .. tostring(k)
    local t = type(v)
    if type(k) ~= "string" then
      problems[#problems + 1] = string.format("%s: key %s is not a string", file, tostring(k))
    elseif t == "string" or t == "function" then
      out[key] = v
    elseif t == "table" and v.other ~= nil then
      for cat, text in pairs(v) do
        if type(text) ~= "string" and type(text) ~= "function" then
          problems[#problems + 1] = string.format("%s: %s.%s is a %s, not a string",
                                                  file, key, tostring(cat), type(text))
        end
      end
      out[key] = v
    elseif t == "table" then
      flatten(v, key .. ".", out, problems, file)
    else
      problems[#problems + 1] = string.format("%s: %s is a %s (a message is a "
        .. "string, a plural table with \"other\", or a function)", file, key, t)
    end
  end
  return out
end

local function load_file(path)
  local chunk, err = loadfile(path, "t", {})
  if not chunk then errors.raise("tghost.i18n: %s", err) end
  local ok, tbl = pcall(chunk)
  if not ok then errors.raise("tghost.i18n: %s: %s", path, tostring(tbl)) end
  if type(tbl) ~= "table" then
    errors.raise("tghost.i18n: %s must return a table of messages, not %s", path,
                 type(tbl))
  end
  return tbl
end

-- The keys ctx:t("...") / :t('...') / t("...") calls in the script's
-- source name literally.
local function used_keys(file)
  local f = file and io.open(file, "r")
  if not f then return {} end
  local src = f:read("a")
  f:close()
  local keys = {}
  for key in src:gmatch("[:%.]t%s*%(%s*[\"']([%w_%.%-]+)[\"']") do keys[key] = true end
  return keys
end

local function sorted(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Missing keys: defaultLocale's keys other locales lack, and used keys
-- defaultLocale lacks. One line each under --check, a summary otherwise.
local function report_missing(self, script_file)
  local default = self.messages[self.default]
  local lines = {}
  for _, loc in ipairs(self.locales) do
    if loc ~= self.default then
      local missing = {}
      for key in pairs(default) do
        if self.messages[loc][key] == nil then missing[#missing + 1] = key end
      end
      table.sort(missing)
      for _, key in ipairs(missing) do
        lines[#lines + 1] = string.format("locale %s has no %q (%s's text is used)",
                                          loc, key, self.default)
      end
    end
  end
  for _, key in ipairs(sorted(used_keys(script_file))) do
    if default[key] == nil then
      lines[#lines + 1] = string.format("the script uses %q, which locale %s "
                                        .. "(the default) does not have", key, self.default)
    end
  end
  if #lines == 0 then return end
  if core.check_mode() then
    for _, line in ipairs(lines) do errors.warn("tghost.i18n: %s", line) end
  else
    errors.warn("tghost.i18n: %d missing translation(s), e.g. %s; tghost "
                .. "--check lists them all", #lines, lines[1])
  end
end

-- === translating ========================================================

local function format_value(v)
  if math.type(v) == "float" and v == math.floor(v) and v > -2^53 and v < 2^53 then
    return tostring(math.tointeger(v))
  end
  return tostring(v)
end

local function interpolate(text, args)
  if not args then return text end
  return (text:gsub("{([%w_]+)}", function(name)
    local v = args[name]
    if v == nil then return nil end
    return format_value(v)
  end))
end

local warned = {}

-- The message for key in locale (with the default locale's as fallback),
-- filled from args.
function I18n.translate(self, locale, key, args)
  if type(key) ~= "string" then
    errors.raise("t(key, args): the key must be a string, not %s", type(key))
  end
  if args ~= nil and type(args) ~= "table" then
    errors.raise("t(%q, args): args must be a table, not %s", key, type(args))
  end
  local messages = self.messages[locale]
  local msg = messages and messages[key]
  if msg == nil then
    locale = self.default
    msg = self.messages[locale][key]
  end
  if msg == nil then
    if not warned[key] then
      warned[key] = true
      errors.warn("tghost.i18n: no translation for %q (not even in %s)", key,
                  self.default)
    end
    return key
  end
  if type(msg) == "table" then
    local count = args and args.count
    local pick
    if count ~= nil then
      pick = msg[math.tointeger(tonumber(count)) or false]
      if pick == nil then
        local cat = plural.category(locale, count)
        pick = cat and msg[cat]
      end
    end
    msg = pick or msg.other
  end
  if type(msg) == "function" then
    local text = msg(args or {}, locale)
    if type(text) ~= "string" then
      errors.raise("tghost.i18n: the function of %q (%s) returned %s, not a string",
                   key, locale, type(text))
    end
    return text
  end
  return interpolate(msg, args)
end
I18n.t = I18n.translate

-- The locale available for a language code: "pt-br" as it is, else "pt".
function I18n.match(self, code)
  if type(code) ~= "string" or code == "" then return nil end
  local tag = plural.normalize(code)
  if self.messages[tag] then return tag end
  local lang = tag:match("^[^-]+")
  if self.messages[lang] then return lang end
  return nil
end

-- What middleware puts on ctx.i18n.
local function controller(self, ctx)
  local c = {}
  local chosen    -- set by useLocale for this update
  local function session_value()
    if not self.use_session then return nil end
    local ok, s = pcall(function() return ctx.session end)
    if ok and type(s) == "table" then return s end
    return nil
  end
  function c.getLocale()
    if chosen then return chosen end
    if self.negotiator then
      local l = self:match(self.negotiator(ctx))
      if l then return l end
    end
    local s = session_value()
    local stored = s and self:match(s.__language_code)
    if stored then return stored end
    local from = ctx.from
    return self:match(from and from.language_code) or self.default
  end
  -- setLocale(code): from now on for this user (in the session, with
  -- useSession), and for the rest of this update.
  function c.setLocale(a, b)
    local code = b ~= nil and b or a
    if a == c and b == nil then code = nil end
    local l = self:match(code)
    if not l then
      errors.raise("ctx.i18n:setLocale(%q): no locale file for it (there are: %s)",
                   tostring(code), table.concat(self.locales, ", "))
    end
    local s = session_value()
    if self.use_session then
      if not s then
        errors.raise("ctx.i18n:setLocale: useSession needs a session (bot.use(session{"
                     .. "initial = ...}) before the i18n middleware)")
      end
      s.__language_code = l
    end
    chosen = l
  end
  -- useLocale(code): for the rest of this update only.
  function c.useLocale(a, b)
    local code = b ~= nil and b or a
    local l = self:match(code)
    if not l then
      errors.raise("ctx.i18n:useLocale(%q): no locale file for it", tostring(code))
    end
    chosen = l
  end
  function c.t(a, b, d)
    if a == c then a, b = b, d end
    return self:translate(c.getLocale(), a, b)
  end
  c.locales = self.locales
  return setmetatable(c, { __name = "tghost.I18nContext" })
end

-- ctx:t(key [, args]): the message in ctx's locale.
function Context.methods.t(ctx, key, args)
  local c = rawget(ctx, "i18n")
  if c == nil then
    if not current then
      errors.raise("ctx:t(%q): no translations: create them with tghost.i18n{...} "
                   .. "and bot.use() them", tostring(key))
    end
    c = controller(current, ctx)
    rawset(ctx, "i18n", c)
  end
  return c.t(key, args)
end

function I18n.middleware(self)
  return function(ctx, next)
    rawset(ctx, "i18n", controller(self, ctx))
    return next()
  end
end

-- === creating ===========================================================

-- For allowed_updates: it needs no update type of its own.
Composer.register_needs(I18n, function() return false, {} end)

function M.new(opts)
  if type(opts) ~= "table" then
    errors.raise("tghost.i18n{ directory = ..., defaultLocale = ... }: expected "
                 .. "a table of options, got %s", type(opts))
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      local names = sorted(OPTIONS)
      local s = type(k) == "string" and errors.suggest(k, names)
      errors.raise("tghost.i18n: unknown option %s%s (known: %s)", tostring(k),
                   s and (" (did you mean " .. s .. "?)") or "",
                   table.concat(names, ", "))
    end
  end
  if opts.localeNegotiator ~= nil and type(opts.localeNegotiator) ~= "function" then
    errors.raise("tghost.i18n: localeNegotiator must be a function(ctx) -> "
                 .. "language code, not %s", type(opts.localeNegotiator))
  end
  local self = setmetatable({ messages = {}, locales = {},
                              use_session = opts.useSession == true,
                              negotiator = opts.localeNegotiator }, I18n)
  local problems = {}
  if opts.locales ~= nil then
    -- Translations given inline: { en = {...}, de = {...} }.
    if type(opts.locales) ~= "table" then
      errors.raise("tghost.i18n: locales must be a table { en = { ... } }, not %s",
                   type(opts.locales))
    end
    for code, tbl in pairs(opts.locales) do
      local tag = plural.normalize(code)
      self.messages[tag] = flatten(tbl, "", {}, problems, "locale " .. tag)
      self.locales[#self.locales + 1] = tag
    end
  else
    local dir = opts.directory or "locales"
    if type(dir) ~= "string" then
      errors.raise("tghost.i18n: directory must be a string, not %s", type(dir))
    end
    if dir:sub(1, 1) ~= "/" then dir = core.script_dir() .. "/" .. dir end
    local names, err = core.list_dir(dir)
    if not names then errors.raise("tghost.i18n: cannot read the locale folder %s", err) end
    for _, name in ipairs(names) do
      local code = name:match("^(.+)%.lua$")
      if code then
        local path = dir .. "/" .. name
        core.watch(path)
        local tag = plural.normalize(code)
        self.messages[tag] = flatten(load_file(path), "", {}, problems, path)
        self.locales[#self.locales + 1] = tag
      end
    end
    if #self.locales == 0 then
      errors.raise("tghost.i18n: no locale files (NAME.lua, e.g. en.lua) in %s", dir)
    end
  end
  table.sort(self.locales)
  if #problems > 0 then errors.raise("tghost.i18n: %s", problems[1]) end
  local default = plural.normalize(opts.defaultLocale or "en")
  if not self.messages[default] then
    errors.raise("tghost.i18n: defaultLocale %q has no locale file (there are: %s)",
                 default, table.concat(self.locales, ", "))
  end
  self.default = default
  -- The file that made this i18n: its ctx:t("...") calls are checked.
  local script_file = errors.caller_file()
  report_missing(self, script_file)
  current = self
  return self
end

return M
