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

local OPTIONS = { "initial", "getSessionKey", "storage", "ttl", "prefix",
                  "migrations", "type" }

local function default_key(ctx)
  local id = ctx.chatId
  if id ~= nil then return tostring(id) end
  return nil
end

local function check_keys(opts, what, known)
  for k in pairs(opts) do
    local ok = false
    for _, name in ipairs(known) do
      if k == name then ok = true end
    end
    if not ok then
      local hint = type(k) == "string" and errors.suggest(k, known)
      errors.raise("%s: unknown option %s%s (known: %s)", what, tostring(k),
                   hint and (" (did you mean " .. hint .. "?)") or "",
                   table.concat(known, ", "))
    end
  end
end

-- The migrations as a sorted list of { version, fn }, and the newest
-- version (0 without migrations).
local function check_migrations(m, what)
  if m == nil then return nil, 0 end
  if type(m) ~= "table" then
    errors.raise("%s: migrations must be a table { [version] = function(old) "
                 .. "-> new }, not %s", what, type(m))
  end
  local list = {}
  for v, fn in pairs(m) do
    if math.tointeger(v) == nil or v < 1 then
      errors.raise("%s: migrations are keyed by versions 1, 2, ... (whole "
                   .. "numbers), not %s", what, tostring(v))
    end
    if type(fn) ~= "function" then
      errors.raise("%s: migration %d must be a function(old) -> new, not %s",
                   what, v, type(fn))
    end
    list[#list + 1] = { math.tointeger(v), fn }
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  if #list == 0 then return nil, 0 end
  return list, list[#list][1]
end

local function check_fragment(opts, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.raise("%s: expected a table of options, got %s", what, type(opts))
  end
  check_keys(opts, what, OPTIONS)
  for _, name in ipairs({ "initial", "getSessionKey" }) do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      errors.raise("%s: %s must be a function, got %s", what, name,
                   type(opts[name]))
    end
  end
  if opts.prefix ~= nil and type(opts.prefix) ~= "string" then
    errors.raise("%s: prefix must be a string, got %s", what, type(opts.prefix))
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

local function no_key(what)
  errors.raise("%s: this update has no session key (getSessionKey returned "
               .. "nil, e.g. an update without a chat), so it has no session",
               what)
end

-- Makes t hold what fresh holds (the same table, so that references to it
-- stay the session).
local function refill(t, fresh)
  for k in pairs(t) do t[k] = nil end
  for k, v in pairs(fresh) do t[k] = v end
end

-- One session (of a plain session{}, or one name of a multi session):
-- open(ctx) gives this update's hold on it, get/set read and assign the
-- value, flush writes it back if it changed, close lets it go.
local function fragment(opts, what, access)
  local initial = opts.initial
  local get_key = opts.getSessionKey or default_key
  local prefix = opts.prefix or ""
  local store = storage.adapter(opts.storage or storage.public.memory("session"),
                                what)
  local ttl = storage.ttl_ms(what, opts.ttl)
  local migrations, version = check_migrations(opts.migrations, what)
  local f = {}

  -- The stored form of a value: itself, or with migrations its version
  -- around it.
  local function stored(value)
    if not migrations then return value end
    return { __v = version, __d = value }
  end

  -- A value read with an older version, brought up to date.
  local function migrate(key, raw, ctx)
    local from, value = 0, raw
    if type(raw) == "table" and math.tointeger(raw.__v) ~= nil then
      from, value = math.tointeger(raw.__v), raw.__d
    end
    if from > version then
      error(string.format("%s %q was stored with version %d, newer than this "
                          .. "code's migrations (up to %d): left as it is",
                          what, key, from, version), 0)
    end
    for _, m in ipairs(migrations) do
      if m[1] > from then value = m[2](value, ctx) end
    end
    return value
  end

  -- What the storage holds for key, as this code's value, and its stored
  -- form.
  local function read(key, ctx)
    local value, bytes = store.read(key)
    if value ~= nil and migrations then value = migrate(key, value, ctx) end
    if value == nil and initial then value = initial(ctx) end
    return value, bytes
  end

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
    local value, bytes = read(st.key, ctx)
    -- Another holder may have loaded or set it meanwhile.
    if st.loaded then return end
    st.value, st.bytes, st.loaded = value, bytes, true
  end

  -- The stored form of st's value now (nil: delete), or raises.
  local function stored_form(st)
    if st.value == nil then return nil end
    local bytes, err = encode(stored(st.value))
    if not bytes then error(string.format("%s %q: %s", what, st.key, err), 0) end
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
      else store.write(st.key, stored(st.value), bytes, ttl) end
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
    local value, bytes = read(st.key, ctx)
    if bytes == st.bytes or stored_form(st) ~= st.bytes then return end
    if type(st.value) == "table" and type(value) == "table" then
      refill(st.value, value)
    else
      st.value = value
    end
    st.bytes = bytes
  end

  function f.open(ctx)
    local key = key_of(get_key(ctx))
    if key ~= nil then key = prefix .. key end
    local h = { key = key, ctx = ctx }
    -- A conversation's wait (lua/conversation.lua): the session is
    -- written before it suspends, and read again when it resumes.
    function h.on_wait(phase, ctx_now)
      local st = h.st
      if not st then return end
      if phase == "suspend" then flush(st) else refresh(st, ctx_now or ctx) end
    end
    return h
  end

  local function attach(h)
    if h.key == nil then no_key(access) end
    local jl = core.job_local(true) or {}
    h.st = join(jl, h.key)
    local hooks = jl.wait_hooks
    if not hooks then
      hooks = {}
      jl.wait_hooks = hooks
    end
    hooks[#hooks + 1] = h.on_wait
    h.hooks = hooks
    return h.st
  end

  function f.get(h)
    local st = h.st or attach(h)
    if not st.loaded then load(st, h.ctx) end
    return st.value
  end

  function f.set(h, value)
    local st = h.st or attach(h)
    if not st.loaded then st.bytes, st.loaded = UNKNOWN, true end
    st.value = value
  end

  function f.flush(h)
    if h.st then flush(h.st) end
  end

  -- Lets the hold go; after an error (failed), writes first.
  function f.close(h, failed)
    local st = h.st
    if not st then return end
    leave(st)
    h.st = nil
    local hooks = h.hooks
    for i = #hooks, 1, -1 do
      if hooks[i] == h.on_wait then table.remove(hooks, i) break end
    end
    if not failed then return end
    local ok, e = pcall(flush, st)
    if not ok then
      core.log("warn", what .. " " .. string.format("%q", tostring(st.key))
               .. " not written after an error: " .. tostring(e))
    end
  end
  return f
end

-- Closed when the rest of the stack is left: by an error, it still
-- writes (grammY does); by a cancel (Lua closes the coroutine with no
-- error), it writes nothing. A normal return wrote already.
local on_exit = {
  __close = function(g, err)
    local failed = not g.finished and err ~= nil
    for _, w in ipairs(g) do w.f.close(w.h, failed) end
  end,
}

local function single(opts)
  local f = fragment(opts, "session", "ctx.session")
  return function(ctx, next)
    local h = f.open(ctx)
    Context.defineProperty(ctx, "session", function() return f.get(h) end,
                           function(_, value) f.set(h, value) end)
    local guard <close> = setmetatable({ { f = f, h = h } }, on_exit)
    next()
    guard.finished = true
    f.flush(h)
  end
end

-- session{ type = "multi", name = options, ... }
local function multi(opts)
  local names, fragments = {}, {}
  for name, o in pairs(opts) do
    if name ~= "type" then
      if type(name) ~= "string" then
        errors.raise("session{ type = \"multi\" }: each session has a name (a "
                     .. "string key), not %s", tostring(name))
      end
      if type(o) ~= "table" then
        errors.raise("session{ type = \"multi\" }: %s must be a table of "
                     .. "options, not %s", name, type(o))
      end
      local what = "session " .. name
      check_fragment(o, what)
      if o.type ~= nil then errors.raise("%s: type is not an option of one session", what) end
      names[#names + 1] = name
      fragments[name] = fragment(o, what, "ctx.session." .. name)
    end
  end
  table.sort(names)
  if #names == 0 then
    errors.raise("session{ type = \"multi\" }: name at least one session "
                 .. "(session{ type = \"multi\", settings = { ... } })")
  end
  return function(ctx, next)
    local guard <close> = setmetatable({}, on_exit)
    local states = {}
    for _, name in ipairs(names) do
      local f = fragments[name]
      local h = f.open(ctx)
      states[name] = h
      guard[#guard + 1] = { f = f, h = h }
    end
    local proxy = setmetatable({}, {
      __index = function(_, name)
        local f = fragments[name]
        if not f then
          errors.raise("ctx.session.%s: no session of this name (there are: %s)",
                       tostring(name), table.concat(names, ", "))
        end
        return f.get(states[name])
      end,
      __newindex = function(_, name, value)
        local f = fragments[name]
        if not f then
          errors.raise("ctx.session.%s: no session of this name (there are: %s)",
                       tostring(name), table.concat(names, ", "))
        end
        f.set(states[name], value)
      end,
      __name = "tghost.MultiSession",
    })
    Context.defineProperty(ctx, "session", function() return proxy end,
                           function()
                             errors.raise("ctx.session: a multi session is "
                                          .. "assigned by name (ctx.session.%s = "
                                          .. "...), not as a whole", names[1])
                           end)
    next()
    guard.finished = true
    for _, w in ipairs(guard) do w.f.flush(w.h) end
  end
end

local function session(opts)
  if opts ~= nil and type(opts) == "table" and opts.type ~= nil then
    if opts.type == "multi" then return multi(opts) end
    if opts.type ~= "single" then
      errors.raise("session: type must be \"single\" or \"multi\", not %s",
                   tostring(opts.type))
    end
  end
  opts = check_fragment(opts, "session")
  return single(opts)
end

return session
