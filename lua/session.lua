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
--
-- Conversations (so that a dialog loses no write of the updates that run
-- while it waits, and they none of its):
--
--   - a conversation writes its session before its ctx:wait suspends (the
--     updates that run while it waits see its changes), and when the wait
--     returns reads the storage again, updating the same table in place (a
--     local `s = ctx.session` taken before the wait stays the session);
--     with sequentialize (the usual set-up) nothing else of the key runs
--     between that read and the next write;
--   - the update that answers a conversation runs this middleware again
--     (lua/conversation.lua), in the conversation's job: what one job (a
--     conversation, its answers, its child tasks) uses of a key is one
--     value, so the answer's ctx.session is the conversation's.
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

-- Makes t hold what fresh holds (the same table, so that references to it
-- stay the session).
local function refill(t, fresh)
  for k in pairs(t) do t[k] = nil end
  for k, v in pairs(fresh) do t[k] = v end
end

local function session(opts)
  opts = check_options(opts)
  local initial = opts.initial
  local get_key = opts.getSessionKey or default_key
  local prefix = opts.prefix or ""
  local store = storage.adapter(opts.storage or storage.public.memory("session"),
                                "session")
  local ttl = storage.ttl_ms("session", opts.ttl)

  -- The sessions each job uses (by its core.job_local table), by key:
  -- { key, value, bytes (its stored form as last read or written; nil:
  -- nothing stored; UNKNOWN: not known), loaded, users (the middleware
  -- calls of the job that hold it) }.
  local by_job = setmetatable({}, { __mode = "k" })

  local function join(jl, key)
    local live = by_job[jl]
    if not live then
      live = {}
      by_job[jl] = live
    end
    local st = live[key]
    if not st then
      st = { key = key, loaded = false, users = 0, live = live }
      live[key] = st
    end
    st.users = st.users + 1
    return st
  end

  local function leave(st)
    st.users = st.users - 1
    if st.users == 0 and st.live[st.key] == st then st.live[st.key] = nil end
  end

  local function load(st, ctx)
    local value, bytes = store.read(st.key)
    -- Another holder may have loaded or set it meanwhile.
    if st.loaded then return end
    if value == nil and initial then value = initial(ctx) end
    st.value, st.bytes, st.loaded = value, bytes, true
  end

  -- The stored form of st's value now (nil: delete), or raises.
  local function stored_form(st)
    if st.value == nil then return nil end
    local bytes, err = encode(st.value)
    if not bytes then error(string.format("session %q: %s", st.key, err), 0) end
    return bytes
  end

  -- Writes st back if it changed since it was last read or written.
  local function flush(st)
    if not st.loaded then return end
    local bytes = stored_form(st)
    local was = st.bytes
    if bytes == was then return end
    -- Marked written first, so that another holder's flush meanwhile does
    -- not write the same again.
    st.bytes = bytes
    local ok, e = pcall(function()
      if bytes == nil then store.delete(st.key)
      else store.write(st.key, st.value, bytes, ttl) end
    end)
    if not ok then
      if st.bytes == bytes then st.bytes = was end
      error(e, 0)
    end
  end

  -- After a conversation's wait: what the storage holds now, unless a
  -- holder changed the value since it was last written (then that change
  -- is newer, and is written when its holder is done).
  local function refresh(st, ctx)
    if not st.loaded or stored_form(st) ~= st.bytes then return end
    local value, bytes = store.read(st.key)
    if bytes == st.bytes or stored_form(st) ~= st.bytes then return end
    if value == nil and initial then value = initial(ctx) end
    if type(st.value) == "table" and type(value) == "table" then
      refill(st.value, value)
    else
      st.value = value
    end
    st.bytes = bytes
  end

  -- Closed when the rest of the stack is left: by an error, it still
  -- writes (grammY does); by a cancel (Lua closes the coroutine with no
  -- error), it writes nothing. A normal return wrote already.
  local on_exit = {
    __close = function(b, err)
      local st = b.st
      if not st then return end
      b.detach()
      if b.finished or err == nil then return end
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
    -- This update's hold on its session: st once it is used.
    local b = setmetatable({}, on_exit)
    local hooks
    -- A conversation's wait (lua/conversation.lua): the session is
    -- written before it suspends, and read again when it resumes.
    local function on_wait(phase, ctx_now)
      local st = b.st
      if not st then return end
      if phase == "suspend" then flush(st) else refresh(st, ctx_now or ctx) end
    end
    local function attach()
      local jl = core.job_local(true) or {}
      b.st = join(jl, key)
      hooks = jl.wait_hooks
      if not hooks then
        hooks = {}
        jl.wait_hooks = hooks
      end
      hooks[#hooks + 1] = on_wait
      return b.st
    end
    function b.detach()
      leave(b.st)
      b.st = nil
      for i = #hooks, 1, -1 do
        if hooks[i] == on_wait then table.remove(hooks, i) break end
      end
    end
    Context.defineProperty(ctx, "session", function()
      if key == nil then no_key() end
      local st = b.st or attach()
      if not st.loaded then load(st, ctx) end
      return st.value
    end, function(_, value)
      if key == nil then no_key() end
      local st = b.st or attach()
      if not st.loaded then st.bytes, st.loaded = UNKNOWN, true end
      st.value = value
    end)
    local guard <close> = b
    next()
    b.finished = true
    if b.st then flush(b.st) end
  end
end

return session
