-- A small checker of scripts against the LuaCATS annotations
-- (types/tghost.lua, types/botapi.lua), for the test suite: it follows
-- member chains that start at a known name (ctx, bot, tghost) through the
-- annotated classes, fields and return types, and reports members the
-- annotations do not have, with a suggestion, as lua-language-server's
-- undefined-field diagnostic would. It reads no Lua grammar beyond chains
-- of .name, :name and (...) calls; a chain it cannot follow (a table
-- field, an array, any) is left alone.
local M = {}

local errors = require("tghost.errors")

-- classes[name] = { parents = {...}, members = { name = type } }
local function new_model() return { classes = {}, aliases = {} } end

local function class(model, name)
  local c = model.classes[name]
  if not c then
    c = { parents = {}, members = {}, open = false }
    model.classes[name] = c
  end
  return c
end

-- Reads annotation text into model.
function M.load(model, text)
  model = model or new_model()
  local current, locals, pending_return = nil, {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local cname, parents = line:match("^%-%-%-@class%s+([%w_.]+)%s*:?%s*(.*)$")
    if cname then
      current = class(model, cname)
      for p in parents:gmatch("[%w_.]+") do
        current.parents[#current.parents + 1] = p
      end
      pending_return = nil
    end
    local field, ftype = line:match("^%-%-%-@field%s+([%w_%[%]\"]+)%??%s+(%S+)")
    if field and current then
      if field:match("^%[") then current.open = true   -- [string] any
      else current.members[field] = ftype end
    end
    if line:match("^%-%-%-@overload") and current and not cname then
      -- a class with an @overload is callable; nothing to record
    end
    local alias, atype = line:match("^%-%-%-@alias%s+([%w_.]+)%s+(.+)$")
    if alias then model.aliases[alias] = atype end
    local ret = line:match("^%-%-%-@return%s+(%S+)")
    if ret then pending_return = ret end
    local lname = line:match("^local%s+([%w_]+)%s*=%s*{}")
    if lname and current then locals[lname] = current end
    local gname = line:match("^([%w_]+)%s*=%s*{}")
    if gname and current then model.globals = model.globals or {}; model.globals[gname] = cname or line end
    local owner, sep, fname = line:match("^function%s+([%w_]+)([.:])([%w_]+)%(")
    if owner then
      local c = locals[owner] or (model.classes[owner])
      if c then c.members[fname] = { returns = pending_return or "any" } end
      pending_return = nil
    end
    if line == "" then pending_return = nil end
  end
  return model
end

local function member(model, cname, name, seen)
  seen = seen or {}
  if seen[cname] then return nil end
  seen[cname] = true
  local c = model.classes[cname]
  if not c then return nil end
  if c.members[name] ~= nil then return c.members[name] end
  for _, p in ipairs(c.parents) do
    local m = member(model, p, name, seen)
    if m ~= nil then return m end
  end
  return nil
end

local function is_open(model, cname)
  local c = model.classes[cname]
  if not c then return true end
  if c.open then return true end
  for _, p in ipairs(c.parents) do
    if is_open(model, p) then return true end
  end
  return false
end

local function all_members(model, cname, out, seen)
  out, seen = out or {}, seen or {}
  if seen[cname] then return out end
  seen[cname] = true
  local c = model.classes[cname]
  if not c then return out end
  for k in pairs(c.members) do out[#out + 1] = k end
  for _, p in ipairs(c.parents) do all_members(model, p, out, seen) end
  return out
end

-- The class a type string stands for, or nil (a table, a list, any).
local function class_of(model, t, depth)
  depth = depth or 0
  if type(t) ~= "string" or depth > 5 then return nil end
  t = t:gsub("%?$", "")
  if t:find("%[%]$") or t:find("^fun%(") or t:find("^{") then return nil end
  local parts = {}
  for p in t:gmatch("[^|]+") do parts[#parts + 1] = p:gsub("%?$", "") end
  if #parts > 1 then
    -- A union: the one class it names (nil and literals aside).
    local found
    for _, p in ipairs(parts) do
      local c = class_of(model, p, depth + 1)
      if c then
        if found and found ~= c then return nil end
        found = c
      end
    end
    return found
  end
  if model.aliases[t] then return class_of(model, model.aliases[t], depth + 1) end
  if model.classes[t] then return t end
  return nil
end

-- text with comments and the insides of strings blanked out (newlines
-- kept), so that only code is read.
local function code_only(text)
  local out, i, n = {}, 1, #text
  local function blank(a, b)
    out[#out + 1] = text:sub(a, b):gsub("[^\n]", " ")
  end
  while i <= n do
    local ch = text:sub(i, i)
    local long = text:match("^%-%-%[(=*)%[", i) or (ch == "[" and text:match("^%[(=*)%[", i))
    if text:sub(i, i + 1) == "--" and long then
      local close = text:find("]" .. long .. "]", i, true)
      local e = close and close + #long + 1 or n
      blank(i, e)
      i = e + 1
    elseif text:sub(i, i + 1) == "--" then
      local e = (text:find("\n", i, true) or n + 1) - 1
      blank(i, e)
      i = e + 1
    elseif long then
      local close = text:find("]" .. long .. "]", i, true)
      local e = close and close + #long + 1 or n
      out[#out + 1] = '"'
      blank(i + 1, e)
      i = e + 1
    elseif ch == '"' or ch == "'" then
      local j = i + 1
      while j <= n and text:sub(j, j) ~= ch and text:sub(j, j) ~= "\n" do
        if text:sub(j, j) == "\\" then j = j + 1 end
        j = j + 1
      end
      out[#out + 1] = ch
      blank(i + 1, j - 1)
      out[#out + 1] = j <= n and ch or ""
      i = j + 1
    else
      out[#out + 1] = ch
      i = i + 1
    end
  end
  return table.concat(out)
end
M.code_only = code_only

-- Checks script text; returns findings { line, name, class, suggestion }.
function M.check(model, text, roots)
  text = code_only(text)
  local findings = {}
  local lineno = 1
  local pos = 1
  -- Line numbers by position.
  local line_at = {}
  for i = 1, #text do
    line_at[i] = lineno
    if text:byte(i) == 10 then lineno = lineno + 1 end
  end
  local function skip_call(i)
    -- text:sub(i, i) == "(": the position after the matching ")".
    local depth = 0
    for j = i, #text do
      local ch = text:sub(j, j)
      if ch == "(" then depth = depth + 1
      elseif ch == ")" then
        depth = depth - 1
        if depth == 0 then return j + 1 end
      end
    end
    return #text + 1
  end
  while true do
    local s, e, root = text:find("([%a_][%w_]*)", pos)
    if not s then break end
    local prev = s > 1 and text:sub(s - 1, s - 1) or ""
    local cname = roots[root]
    if cname and prev ~= "." and prev ~= ":" and not prev:match("[%w_]") then
      local i = e + 1
      local resume       -- where the scan goes on: inside the first call's arguments
      while cname do
        local sep, name, after = text:match("^%s*([.:])%s*([%a_][%w_]*)()", i)
        if not sep then break end
        local m = member(model, cname, name)
        if m == nil then
          if not is_open(model, cname) then
            findings[#findings + 1] = {
              line = line_at[i], name = name, class = cname,
              suggestion = errors.suggest(name, all_members(model, cname)),
            }
          end
          break
        end
        i = after
        local called = text:match("^%s*()[%(\"'{]", i)
        if type(m) == "table" then
          -- A method: its result, if the chain goes on after the call.
          if text:sub(called or 0, called or 0) == "(" then
            resume = resume or called + 1
            i = skip_call(called)
            cname = class_of(model, m.returns)
          else
            break
          end
        else
          cname = class_of(model, m)
          if called and text:sub(called, called) == "(" then
            resume = resume or called + 1
            break
          end
        end
      end
      pos = resume or i
    else
      pos = e + 1
    end
  end
  return findings
end

M.new = new_model
return M
