-- session{ initial, getSessionKey, storage, ttl, prefix }: middleware that
-- gives ctx.session, grammY's session plugin.
--
-- The key is getSessionKey(ctx) (default: the chat id as a string, like
-- grammY), prefixed by prefix. ctx.session is read from the storage on
-- first access only (an update that never touches it costs no read); if
-- the storage has nothing, initial(ctx) gives the value. After the rest of
-- the stack returns, the value is written back if its stored form changed
-- (with ttl seconds to live, if given), or deleted if ctx.session was set
-- to nil. If the rest of the stack raises, the session is still written
-- (as grammY does) and the error goes on; a cancelled update (timed out,
-- shut down) writes nothing. A value that storage cannot keep (a function,
-- a cycle, ...) fails the update with the key and the path inside the
-- value: session "42": value.items[3].cb is a function.
local core = require("tghost.core")
local storage = require("tghost.storage")
local Context = require("tghost.context")
local errors = require("tghost.errors")
errors.internal()

local UNKNOWN = storage.UNKNOWN
local encode = storage.encode

local OPTIONS = { "initial", "getSessionKey", "storage", "ttl", "prefix" }

local function default_key(ctx)
  local id = ctx.chatId
  if id ~= nil then return tostring(id) end
  return nil
end

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.raise("session(options): expected a table of options, got %s",
                 type(opts))
  end
  for k in pairs(opts) do
    local known = false
    for _, name in ipairs(OPTIONS) do
      if k == name then known = true end
    end
    if not known then
      local hint = type(k) == "string" and errors.suggest(k, OPTIONS)
      errors.raise("session: unknown option %s%s (known: %s)", tostring(k),
                   hint and (" (did you mean " .. hint .. "?)") or "",
                   table.concat(OPTIONS, ", "))
    end
  end
  for _, name in ipairs({ "initial", "getSessionKey" }) do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      errors.raise("session: %s must be a function, got %s", name,
                   type(opts[name]))
    end
  end
  if opts.prefix ~= nil and type(opts.prefix) ~= "string" then
    errors.raise("session: prefix must be a string, got %s", type(opts.prefix))
  end
  return opts
end

-- The key function's result as a storage key: a string, an integer's
-- decimal form, or nil (no session for this update).
local function key_of(key)
  if key == nil or type(key) == "string" then return key end
  local i = math.tointeger(key)
  if i then return tostring(i) end
  error(string.format("session: getSessionKey returned a %s; it must return "
                      .. "a string, an integer or nil", type(key)), 0)
end

local function no_key()
  errors.raise("ctx.session: this update has no session key (getSessionKey "
               .. "returned nil, e.g. an update without a chat), so it has "
               .. "no session")
end

local function session(opts)
  opts = check_options(opts)
  local initial = opts.initial
  local get_key = opts.getSessionKey or default_key
  local prefix = opts.prefix or ""
  local store = storage.adapter(opts.storage or storage.public.memory("session"),
                                "session")
  local ttl = storage.ttl_ms("session", opts.ttl)

  -- Writes the session back if it changed; st.bytes is its stored form
  -- when it was read (nil: nothing stored; UNKNOWN: never read).
  local function flush(st)
    if not st.loaded then return end
    local value = st.value
    if value == nil then
      if st.bytes ~= nil then store.delete(st.key) end
      return
    end
    local bytes, err = encode(value)
    if not bytes then error(string.format("session %q: %s", st.key, err), 0) end
    if bytes ~= st.bytes then store.write(st.key, value, bytes, ttl) end
  end

  -- Closed when the rest of the stack is left: by an error, it still
  -- writes (grammY does); by a cancel (Lua closes the coroutine with no
  -- error), it writes nothing. A normal return wrote already.
  local on_exit = {
    __close = function(st, err)
      if st.finished or err == nil then return end
      local ok, e = pcall(flush, st)
      if not ok then
        core.log("warn", "session " .. string.format("%q", st.key)
                 .. " not written after an error: " .. tostring(e))
      end
    end,
  }

  return function(ctx, next)
    local key = key_of(get_key(ctx))
    if key ~= nil then key = prefix .. key end
    local st = setmetatable({ key = key, loaded = false }, on_exit)
    Context.defineProperty(ctx, "session", function()
      if st.loaded then return st.value end
      if key == nil then no_key() end
      local value, bytes = store.read(key)
      -- Another task of this update may have loaded or set it meanwhile.
      if st.loaded then return st.value end
      if value == nil and initial then value = initial(ctx) end
      st.value, st.bytes, st.loaded = value, bytes, true
      return value
    end, function(_, value)
      if key == nil then no_key() end
      if not st.loaded then st.bytes, st.loaded = UNKNOWN, true end
      st.value = value
    end)
    local guard <close> = st
    next()
    st.finished = true
    flush(st)
  end
end

return session
