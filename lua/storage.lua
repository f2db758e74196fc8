-- tghost.storage: key-value stores for plain Lua data, usable directly
-- (global state) and by sessions.
--
--   tghost.storage.memory(name)          kept in C: survives hot reloads
--   tghost.storage.sqlite(path [, table]) a file: survives restarts
--   tghost.storage.redis(url [, prefix])  shared by processes
--
-- Each store has get(key), set(key, value [, ttl_seconds]) and
-- delete(key), called as store:get(key) or store.get(key). Keys are
-- strings (an integer key means its decimal string). Values go through
-- the storage codec (src/storecodec.h): tables, strings, booleans,
-- numbers with exact integers; anything else raises at set() naming the
-- key and the path inside the value. set(key, nil) deletes. SQLite and
-- Redis calls suspend the calling handler; memory calls never do.
local core = require("tghost.storagecore")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local handles = setmetatable({}, { __mode = "k" })   -- store -> C handle

local Store = { __name = "tghost.Storage" }
Store.__index = Store
function Store.__tostring(s) return s.label end

-- The key as stored: a string, or an integer's decimal form.
local function key_of(label, method, key)
  if type(key) == "string" then return key end
  local i = math.tointeger(key)
  if i then return tostring(i) end
  errors.raise("%s: %s(key): the key must be a string or an integer, not %s",
               label, method, type(key))
end

-- Seconds to live -> milliseconds (0: none).
local function ttl_ms(label, ttl)
  if ttl == nil then return 0 end
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 or ttl > 1e10 then
    errors.raise("%s: ttl must be a positive number of seconds, not %s", label,
                 tostring(ttl))
  end
  return math.max(1, math.ceil(ttl * 1000))
end
M.ttl_ms = ttl_ms

local function new(handle, label)
  local s = setmetatable({ label = label }, Store)
  handles[s] = handle
  -- Methods that work with a colon or a dot (store:get(k), store.get(k)).
  function s.get(a, b)
    if a == s then a = b end
    local bytes = core.get(handle, key_of(label, "get", a))
    if bytes == nil then return nil end
    return core.decode(bytes)
  end
  function s.set(a, b, c, d)
    if a == s then a, b, c = b, c, d end
    local key = key_of(label, "set", a)
    if b == nil then return core.delete(handle, key) end
    local ms = ttl_ms(label, c)
    local bytes, err = core.encode(b)
    if not bytes then errors.raise("%s, key %q: %s", label, key, err) end
    core.set(handle, key, bytes, ms)
  end
  function s.delete(a, b)
    if a == s then a = b end
    core.delete(handle, key_of(label, "delete", a))
  end
  return s
end

function M.memory(name)
  if type(name) ~= "string" or name == "" then
    errors.raise("tghost.storage.memory(name): expected a name (a non-empty "
                 .. "string), got %s", type(name))
  end
  return new(core.memory(name), string.format("memory storage %q", name))
end

function M.sqlite(path, tbl)
  if type(path) ~= "string" then
    errors.raise("tghost.storage.sqlite(path [, table]): expected a file path, "
                 .. "got %s", type(path))
  end
  if tbl ~= nil and type(tbl) ~= "string" then
    errors.raise("tghost.storage.sqlite(path [, table]): the table name must be "
                 .. "a string, got %s", type(tbl))
  end
  tbl = tbl or "kv"
  local ok, handle = pcall(core.sqlite, path, tbl)
  if not ok then errors.raise("%s", handle) end
  local label = string.format("sqlite storage %q", path)
  if tbl ~= "kv" then label = label .. " (table " .. tbl .. ")" end
  return new(handle, label)
end

function M.redis(url, prefix)
  if type(url) ~= "string" then
    errors.raise("tghost.storage.redis(url [, prefix]): expected a URL "
                 .. "redis://host:port, got %s", type(url))
  end
  if prefix ~= nil and type(prefix) ~= "string" then
    errors.raise("tghost.storage.redis(url [, prefix]): the prefix must be a "
                 .. "string, got %s", type(prefix))
  end
  prefix = prefix or "tghost:"
  local ok, handle, name = pcall(core.redis, url, prefix)
  if not ok then errors.raise("%s", handle) end
  return new(handle, string.format("redis storage %s (prefix %q)", name, prefix))
end

-- What sessions call: read(key) -> value, bytes (the stored form, for
-- change detection); write(key, value, bytes, ttl_ms); delete(key). A
-- tghost store is used through its bytes; any other table with
-- read/write/delete methods (which may yield) gets and receives values.
-- UNKNOWN as bytes: the stored form is not known, so the next write
-- happens whatever the value.
M.UNKNOWN = setmetatable({}, { __name = "unknown stored form" })

function M.adapter(store, who)
  local handle = handles[store]
  if handle then
    return {
      read = function(key)
        local bytes = core.get(handle, key)
        if bytes == nil then return nil, nil end
        return core.decode(bytes), bytes
      end,
      write = function(key, _, bytes, ms) core.set(handle, key, bytes, ms) end,
      delete = function(key) core.delete(handle, key) end,
    }
  end
  if type(store) ~= "table" then
    errors.raise("%s: storage must be a tghost.storage store or a table with "
                 .. "read/write/delete methods, not %s", who, type(store))
  end
  for _, m in ipairs({ "read", "write", "delete" }) do
    local f = store[m]
    local mt = getmetatable(f)
    if type(f) ~= "function" and not (mt and mt.__call) then
      errors.raise("%s: a custom storage needs a %s method "
                   .. "(storage:%s(key%s))", who, m, m,
                   m == "write" and ", value, ttl_seconds" or "")
    end
  end
  return {
    read = function(key)
      local value = store:read(key)
      if value == nil then return nil, nil end
      return value, core.encode(value) or M.UNKNOWN
    end,
    write = function(key, value, _, ms)
      store:write(key, value, ms > 0 and ms / 1000 or nil)
    end,
    delete = function(key) store:delete(key) end,
  }
end

M.encode = core.encode

return M
