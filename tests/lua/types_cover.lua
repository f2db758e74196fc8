-- types/tghost.lua (the LuaCATS annotations for lua-language-server) must
-- compile and name everything the Lua API has: a function added to tghost,
-- to composers, to the context or to the keyboards without an annotation
-- fails here.
local t = require("lib.apitest")

local here = (...):match("^(.*)/[^/]*$") or "."
local function read(name)
  local f = assert(io.open(here .. "/../../types/" .. name, "r"))
  local s = f:read("a")
  f:close()
  return s
end
-- types/botapi.lua (generated from the Bot API) annotates bot.api's
-- methods, the Telegram objects and the ctx shortcuts.
local own, generated = read("tghost.lua"), read("botapi.lua")
local text = own .. "\n" .. generated

-- Names declared as "function Class.name", "function Class:name" or
-- "---@field name".
local declared = {}
for class, name in text:gmatch("\nfunction ([%w_]+)[.:]([%w_]+)%(") do
  declared[class .. "." .. name] = true
end
local current
for line in text:gmatch("[^\n]+") do
  local class = line:match("^%-%-%-@class ([%w_.]+)")
  if class then current = class end
  local field = line:match("^%-%-%-@field ([%w_]+)")
  if field and current then declared[current .. "." .. field] = true end
end
-- Locals that stand for a class in the file.
local alias = {
  Composer = "tghost.Composer", Bot = "tghost.Bot", Api = "tghost.Api",
  Context = "tghost.Context", InlineKeyboard = "tghost.InlineKeyboard",
  Keyboard = "tghost.Keyboard", RunHandle = "tghost.RunHandle",
  Task = "tghost.Task", http = "tghost.http", json = "tghost.json",
  log = "tghost.log", storage = "tghost.storage", Storage = "tghost.Storage",
  fmt = "tghost.fmt", html = "tghost.html", markdown = "tghost.markdown",
  webapp = "tghost.webapp", login = "tghost.login", botapi = "tghost.botapi",
  jobs = "tghost.jobs", Job = "tghost.Job",
}
local aliased = {}
for key in pairs(declared) do
  local class, name = key:match("^([%w_]+)%.([%w_]+)$")
  if class and alias[class] then aliased[#aliased + 1] = alias[class] .. "." .. name end
end
for _, key in ipairs(aliased) do declared[key] = true end

local function missing(class, names)
  local out = {}
  for _, name in ipairs(names) do
    if not declared[class .. "." .. name] then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

local function keys(tbl, filter)
  local out = {}
  for k, v in pairs(tbl) do
    if type(k) == "string" and (not filter or filter(k, v)) then out[#out + 1] = k end
  end
  return out
end

t.test("the annotations compile", function()
  local chunk, err = load(own, "@types/tghost.lua", "t", {})
  t.truthy(chunk, err)
  chunk, err = load(generated, "@types/botapi.lua", "t", {})
  t.truthy(chunk, err)
end)

t.test("every tghost.* is annotated", function()
  t.eq(missing("tghost", keys(tghost)), {}, "tghost.* without an annotation")
end)

t.test("every composer method is annotated", function()
  local c = tghost.Composer()
  t.eq(missing("tghost.Composer", keys(c)), {}, "composer methods")
end)

t.test("bot's own fields are annotated", function()
  local own = keys(bot, function(k) return tghost.Composer()[k] == nil end)
  t.eq(missing("tghost.Bot", own), {}, "bot fields")
end)

t.test("every context getter and shortcut is annotated", function()
  local Context = require("tghost.context")
  local names = {}
  for _, set in ipairs({ Context.methods, Context.getters, Context.UPDATE_FIELDS }) do
    for _, k in ipairs(keys(set)) do names[#names + 1] = k end
  end
  t.eq(missing("tghost.Context", names), {}, "ctx members")
end)

t.test("every keyboard method is annotated", function()
  local function methods(kb)
    local out = {}
    for k in pairs(getmetatable(kb).__index) do out[#out + 1] = k end
    return out
  end
  t.eq(missing("tghost.InlineKeyboard", methods(tghost.InlineKeyboard())), {},
       "inline keyboard methods")
  t.eq(missing("tghost.Keyboard", methods(tghost.Keyboard())), {},
       "reply keyboard methods")
end)

t.test("tghost.fmt, html, markdown, webapp, login, botapi and jobs are annotated", function()
  for _, name in ipairs({ "fmt", "html", "markdown", "webapp", "login", "botapi", "jobs" }) do
    t.eq(missing("tghost." .. name, keys(tghost[name])), {}, "tghost." .. name)
  end
end)

t.test("tghost.http, tghost.json, tghost.log and tghost.storage are annotated", function()
  t.eq(missing("tghost.storage", keys(tghost.storage)), {}, "tghost.storage")
  local store = tghost.storage.memory("types_cover")
  t.eq(missing("tghost.Storage", keys(store, function(_, v)
    return type(v) == "function" end)), {}, "storage methods")
  t.eq(missing("tghost.http", keys(tghost.http)), {}, "tghost.http")
  t.eq(missing("tghost.json", keys(tghost.json)), {}, "tghost.json")
  t.eq(missing("tghost.log", keys(tghost.log)), {}, "tghost.log")
end)

t.test("globals", function()
  for _, name in ipairs({ "bot", "run", "sequentialize", "session", "conversation", "tghost" }) do
    t.truthy(text:find("\n" .. name .. " = ", 1, true) or
             text:find("\nfunction " .. name .. "%(") ~= nil,
             "the global " .. name .. " is not declared")
  end
end)

t.done()
