-- tghost.storage: key-value stores for plain Lua data, usable directly
-- (global state) and by sessions (and by whatever else keeps state).
--
--   tghost.storage.memory(name)          kept in C: survives hot reloads
--   tghost.storage.sqlite(path [, table]) a file: survives restarts
--   tghost.storage.redis(url [, prefix])  shared by processes
--   tghost.storage.custom(backend [, name]) a Lua-written backend
--
-- A store has get(key), set(key, value [, ttl_seconds]), delete(key),
-- cas(key, expected, new [, ttl_seconds]), update(key, fn [, ttl_seconds]),
-- list(prefix [, { limit =, cursor = }]) and keys(prefix), called as
-- store:get(key) or store.get(key). Keys are strings (an integer key means
-- its decimal string). Values go through the storage codec
-- (src/script/storecodec.h): tables, strings, booleans, numbers with exact
-- integers; anything else raises at set() naming the key and the path
-- inside the value. set(key, nil) deletes.
--
-- Under every store is a backend object working on bytes, the same
-- interface for all of them (src/store/kvstore.h is its C side):
--   b:get(key) -> bytes | nil          b:set(key, bytes, ttl_ms)
--   b:delete(key)                      b:list(prefix, limit, cursor) -> keys, cursor | nil
--   b:cas(key, expected | nil, new | nil, ttl_ms) -> true | false, current | nil
-- The C registry's backends (memory, SQLite, Redis) each become a
-- constructor here, from their description (core.backends()), and their
-- handles are such objects; a Lua-written backend is a table with those
-- methods (ttl in seconds, may yield), wrapped by custom(). SQLite and
-- Redis calls suspend the calling handler; memory calls never do.
local core = require("tghost.storagecore")
local errors = require("tghost.errors")
local dialog = require("tghost.dialog")
errors.internal()

local M = {}
-- What scripts see as tghost.storage: a constructor per backend, custom().
M.public = {}

local backend_of = setmetatable({}, { __mode = "k" })   -- store -> backend

local Store = { __name = "tghost.Storage" }
Store.__index = Store
function Store.__tostring(s) return s.label end

local LIST_LIMIT, LIST_MAX = 100, 10000
local UPDATE_ATTEMPTS = 1000

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

local function encode(label, key, value)
  local bytes, err = core.encode(value)
  if not bytes then errors.raise("%s, key %q: %s", label, key, err) end
  return bytes
end

local core_decode = core.decode
local function decode(bytes)
  if bytes == nil then return nil end
  return core_decode(bytes)
end

-- A store over a backend. Its methods work with a colon or a dot
-- (store:get(k), store.get(k)).
-- What a store's calls go through: the backend, each call recorded by a
-- durable conversation and answered from its record when it replays
-- (lua/dialog.lua), so a replay neither writes again nor reads what
-- others wrote since.
local effect = dialog.effect
local function recorded(b)
  return {
    get = function(_, key) return effect("get", key, b.get, b, key) end,
    set = function(_, key, bytes, ms)
      return effect("set", key, b.set, b, key, bytes, ms)
    end,
    delete = function(_, key) return effect("delete", key, b.delete, b, key) end,
    list = function(_, prefix, limit, cursor)
      return effect("list", prefix, b.list, b, prefix, limit, cursor)
    end,
    cas = function(_, key, expected, bytes, ms)
      return effect("cas", key, b.cas, b, key, expected, bytes, ms)
    end,
  }
end

-- store -> its backend as it is (for what must not be recorded: a
-- conversation's own record).
local own_backend_of = setmetatable({}, { __mode = "k" })

local function new(backend, label)
  local s = setmetatable({ label = label }, Store)
  own_backend_of[s] = backend
  backend = recorded(backend)
  backend_of[s] = backend
  local b = backend
  function s.get(a, k)
    if a ~= s then k = a end
    local bytes = b:get(key_of(label, "get", k))
    if bytes == nil then return nil end
    return core_decode(bytes)
  end
  function s.set(a, k, v, ttl)
    if a ~= s then a, k, v, ttl = s, a, k, v end
    local key = key_of(label, "set", k)
    if v == nil then return b:delete(key) end
    local ms = ttl_ms(label, ttl)
    b:set(key, encode(label, key, v), ms)
  end
  function s.delete(a, k)
    if a ~= s then k = a end
    b:delete(key_of(label, "delete", k))
  end
  -- Stores new (nil: deletes) if the key holds expected (nil: nothing);
  -- true, or false and what the key holds instead.
  function s.cas(a, k, expected, value, ttl)
    if a ~= s then a, k, expected, value, ttl = s, a, k, expected, value end
    local key = key_of(label, "cas", k)
    local ms = ttl_ms(label, ttl)
    local old = expected ~= nil and encode(label, key, expected) or nil
    local new_bytes = value ~= nil and encode(label, key, value) or nil
    local ok, current = b:cas(key, old, new_bytes, ms)
    if ok then return true end
    return false, decode(current)
  end
  -- Read, fn(value) -> new value (nil deletes), compare-and-set; again
  -- from what the key holds now if another writer came first. fn may run
  -- more than once and gets a fresh copy each time. Returns the value
  -- stored.
  function s.update(a, k, fn, ttl)
    if a ~= s then a, k, fn, ttl = s, a, k, fn end
    local key = key_of(label, "update", k)
    if type(fn) ~= "function" then
      errors.raise("%s: update(key, fn): fn must be a function, not %s",
                   label, type(fn))
    end
    local ms = ttl_ms(label, ttl)
    local bytes = b:get(key)
    for _ = 1, UPDATE_ATTEMPTS do
      local value = fn(decode(bytes))
      local new_bytes = value ~= nil and encode(label, key, value) or nil
      local ok, current = b:cas(key, bytes, new_bytes, ms)
      if ok then return value end
      bytes = current
    end
    errors.raise("%s: update(%q) gave up after %d writes by others came first",
                 label, key, UPDATE_ATTEMPTS)
  end
  -- One page of the keys that start with prefix: keys, and the cursor of
  -- the next page (nil: none). opts: limit (1..10000, 100 by default),
  -- cursor (from the previous page).
  function s.list(a, prefix, opts)
    if a ~= s then a, prefix, opts = s, a, prefix end
    prefix = prefix == nil and "" or key_of(label, "list", prefix)
    if opts ~= nil and type(opts) ~= "table" then
      errors.raise("%s: list(prefix, opts): opts must be a table, not %s",
                   label, type(opts))
    end
    local limit = opts and opts.limit or LIST_LIMIT
    if math.tointeger(limit) == nil or limit < 1 or limit > LIST_MAX then
      errors.raise("%s: list: limit must be an integer from 1 to %d, not %s",
                   label, LIST_MAX, tostring(limit))
    end
    local cursor = opts and opts.cursor
    if cursor ~= nil and type(cursor) ~= "string" then
      errors.raise("%s: list: cursor must be what the previous page returned",
                   label)
    end
    return b:list(prefix, math.tointeger(limit), cursor)
  end
  -- Every key that starts with prefix, once each (a for loop; it may
  -- suspend between pages).
  function s.keys(a, prefix)
    if a ~= s then prefix = a end
    prefix = prefix == nil and "" or key_of(label, "keys", prefix)
    local page, i, cursor, done = {}, 0, nil, false
    local seen = {}
    return function()
      while true do
        i = i + 1
        local k = page[i]
        if k ~= nil then
          if not seen[k] then seen[k] = true return k end
        elseif done then
          return nil
        else
          page, cursor = b:list(prefix, LIST_LIMIT, cursor)
          i, done = 0, cursor == nil
        end
      end
    end
  end
  return s
end

-- --- backends ----------------------------------------------------------------

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

local function seconds(ms) return ms > 0 and ms / 1000 or nil end

-- A Lua-written backend: its methods, called with a colon, get and return
-- strings; their errors are raised naming the store.
local function lua_backend(impl, label)
  local function invoke(op, key, ...)
    local f = impl[op]
    if not callable(f) then
      errors.raise("%s has no %s method (a Lua-written storage needs it for "
                   .. "this)", label, op)
    end
    local res = table.pack(pcall(f, impl, ...))
    if not res[1] then
      errors.raise("%s: %s(%q) failed: %s", label, op, key, tostring(res[2]))
    end
    return table.unpack(res, 2, res.n)
  end
  local function string_or_nil(op, key, v)
    if v ~= nil and type(v) ~= "string" then
      errors.raise("%s: %s(%q) returned a %s; a Lua-written storage stores and "
                   .. "returns strings (or nil)", label, op, key, type(v))
    end
    return v
  end
  return {
    get = function(_, key) return string_or_nil("get", key, invoke("get", key, key)) end,
    set = function(_, key, bytes, ms) invoke("set", key, key, bytes, seconds(ms)) end,
    delete = function(_, key) invoke("delete", key, key) end,
    list = function(_, prefix, limit, cursor)
      local keys, next_cursor = invoke("list", prefix, prefix, limit, cursor)
      if type(keys) ~= "table" then
        errors.raise("%s: list(%q) returned a %s, not a table of keys", label,
                     prefix, type(keys))
      end
      return keys, next_cursor
    end,
    cas = function(_, key, expected, bytes, ms)
      local ok, current = invoke("cas", key, key, expected, bytes, seconds(ms))
      if ok then return true end
      return false, string_or_nil("cas", key, current)
    end,
  }
end

-- The older custom storage, a table with read/write/delete of values:
-- the same interface, its values copied in and out through the codec (so
-- it never hands out a value a handler then changes in place). It cannot
-- list or compare-and-set.
local function value_backend(impl, label)
  local function missing(op)
    return function()
      errors.raise("%s has no %s: give it get/set/delete/list/cas methods "
                   .. "(a Lua-written storage) instead of read/write/delete",
                   label, op)
    end
  end
  return {
    get = function(_, key)
      local value = impl:read(key)
      if value == nil then return nil end
      local bytes, err = core.encode(value)
      if not bytes then
        errors.raise("%s: read(%q) returned a value storage cannot keep: %s",
                     label, key, err)
      end
      return bytes
    end,
    set = function(_, key, bytes, ms) impl:write(key, core.decode(bytes), seconds(ms)) end,
    delete = function(_, key) impl:delete(key) end,
    list = missing("list"),
    cas = missing("cas"),
  }
end

-- Where each store of the registry's backends is: { kind, target, ns }
-- (for what keeps its own data beside a storage's: the job store).
local where_of = setmetatable({}, { __mode = "k" })

-- M.where(store) -> kind, target, ns of a registry backend's store; nil
-- for a Lua-written one.
function M.where(store)
  local w = where_of[store]
  if w then return w.kind, w.target, w.ns end
  return nil
end

-- tghost.storage.<kind>(target [, ns]) for each backend of the registry.
for _, d in ipairs(core.backends()) do
  local usage = string.format("tghost.storage.%s(%s%s)", d.kind, d.target_arg,
                              d.ns_arg and (" [, " .. d.ns_arg .. "]") or "")
  M.public[d.kind] = function(target, ns)
    if type(target) ~= "string" then
      errors.raise("%s: expected %s, got %s", usage, d.target_what,
                   type(target))
    end
    if d.ns_arg and ns ~= nil and type(ns) ~= "string" then
      errors.raise("%s: the %s must be a string, got %s", usage, d.ns_arg,
                   type(ns))
    end
    local ok, handle, label = pcall(core.open, d.kind, target,
                                    d.ns_arg and ns or nil)
    if not ok then errors.raise("%s", handle) end
    local store = new(handle, label)
    where_of[store] = { kind = d.kind, target = target,
                        ns = d.ns_arg and (ns or d.ns_default) or "" }
    return store
  end
end

-- A store over a Lua-written backend: a table (or object) whose get, set
-- and delete methods, and list and cas if the store is used for them,
-- keep strings; they are called with a colon and may suspend.
function M.public.custom(impl, name)
  if type(impl) ~= "table" then
    errors.raise("tghost.storage.custom(backend [, name]): expected a table "
                 .. "with get/set/delete methods, got %s", type(impl))
  end
  if name ~= nil and type(name) ~= "string" then
    errors.raise("tghost.storage.custom(backend [, name]): the name must be a "
                 .. "string, got %s", type(name))
  end
  for _, m in ipairs({ "get", "set", "delete" }) do
    if not callable(impl[m]) then
      errors.raise("tghost.storage.custom: the backend needs a %s method "
                   .. "(backend:%s(key%s))", m, m,
                   m == "set" and ", value, ttl_seconds" or "")
    end
  end
  local label = name and string.format("custom storage %q", name)
                or "custom storage"
  return new(lua_backend(impl, label), label)
end

-- Whatever a script gives where a store goes (session{ storage = ... },
-- and later conversations and jobs), as a store: a store as it is; a
-- table with get/set/delete, a Lua-written backend (custom); a table
-- with read/write/delete, the older value interface.
function M.of(x, who)
  if backend_of[x] then return x end
  if type(x) ~= "table" then
    errors.raise("%s: storage must be a tghost.storage store or a table with "
                 .. "get/set/delete methods, not %s", who, type(x))
  end
  if x.read ~= nil or x.write ~= nil then
    for _, m in ipairs({ "read", "write", "delete" }) do
      if not callable(x[m]) then
        errors.raise("%s: a custom storage needs a %s method "
                     .. "(storage:%s(key%s))", who, m, m,
                     m == "write" and ", value, ttl_seconds" or "")
      end
    end
    local label = "custom storage"
    return new(value_backend(x, label), label)
  end
  for _, m in ipairs({ "get", "set", "delete" }) do
    if not callable(x[m]) then
      errors.raise("%s: a custom storage needs a %s method (storage:%s(key%s))",
                   who, m, m, m == "set" and ", value, ttl_seconds" or "")
    end
  end
  return M.public.custom(x)
end

-- What sessions call: read(key) -> value, bytes (the stored form, for
-- change detection); write(key, value, bytes, ttl_ms); delete(key). Every
-- store is used through its backend's bytes.
-- UNKNOWN as bytes: the stored form is not known, so the next write
-- happens whatever the value.
M.UNKNOWN = setmetatable({}, { __name = "unknown stored form" })

-- The backend under what a script gave where a store goes, its calls not
-- recorded, and the store's label.
function M.own_backend(x, who)
  local s = M.of(x, who)
  return own_backend_of[s], s.label
end

-- The stores sessions use ({ store = ..., kind = "redis" | "memory" |
-- "sqlite" | "custom" }), for run() to check against a cluster.
M.session_stores = {}

function M.adapter(x, who)
  local store = M.of(x, who)
  if who == "session" then
    M.session_stores[#M.session_stores + 1] =
      { store = store, kind = where_of[store] and where_of[store].kind
                                or "custom" }
  end
  local b = backend_of[store]
  return {
    read = function(key)
      local bytes = b:get(key)
      if bytes == nil then return nil, nil end
      return core_decode(bytes), bytes
    end,
    write = function(key, _, bytes, ms) b:set(key, bytes, ms) end,
    delete = function(key) b:delete(key) end,
  }
end

M.encode = core.encode

return M
