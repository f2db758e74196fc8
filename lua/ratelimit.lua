-- tghost.ratelimit{...}: middleware that keeps a user (or any key) from
-- flooding the bot (grammY's ratelimiter plugin, in Lua's terms).
--
--   bot.use(tghost.ratelimit{ limit = 3, window = 2 })     -- 3 per 2 s per user
--   bot.use(tghost.ratelimit{
--     limit = 20, window = 60,
--     key = function(ctx) return ctx.chat and ctx.chat.id end,   -- per chat
--     storage = tghost.storage.redis("redis://127.0.0.1:6379"),  -- across processes
--     reply = "Too many messages: wait a minute.",               -- once per window
--   })
--
-- Each key gets `limit` updates per window of `window` seconds, a window
-- starting with the key's first update after the previous one ended (a
-- fixed window, as grammY's). The updates beyond it are dropped: they
-- reach no handler below the middleware. With `reply`, the first dropped
-- update of each window is answered with that text (a string, or a
-- function(ctx) that answers as it likes, called once per window);
-- `onLimitExceeded(ctx)` is called for every dropped update.
--
-- The count is kept in a storage (default: memory, which outlives hot
-- reloads) under "<prefix><key>" as { n, reset, told }: reset is the wall
-- clock's end of the window, so processes sharing a Redis storage share
-- each window. Every update reads and writes the count with the store's
-- update(), a compare-and-set loop (on Redis a server-side script compares
-- and sets atomically), so two processes counting the same key at once
-- never lose a count: across processes the limit holds exactly.
local core = require("tghost.core")
local storage = require("tghost.storage")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local OPTIONS = { "limit", "window", "key", "storage", "reply",
                  "onLimitExceeded", "prefix" }

local function default_key(ctx)
  local from = ctx.from
  return from and from.id
end

function M.new(opts)
  if type(opts) ~= "table" then
    errors.raise("tghost.ratelimit{ limit = n, window = seconds }: expected a "
                 .. "table of options, got %s", type(opts))
  end
  for k in pairs(opts) do
    local known = false
    for _, n in ipairs(OPTIONS) do known = known or n == k end
    if not known then
      local s = type(k) == "string" and errors.suggest(k, OPTIONS)
      errors.raise("tghost.ratelimit: unknown option %s%s (known: %s)", tostring(k),
                   s and (" (did you mean " .. s .. "?)") or "",
                   table.concat(OPTIONS, ", "))
    end
  end
  local limit = opts.limit or 1
  if math.tointeger(limit) == nil or limit < 1 then
    errors.raise("tghost.ratelimit: limit must be a whole number >= 1, not %s",
                 tostring(limit))
  end
  limit = math.tointeger(limit)
  local window = opts.window or 1
  if type(window) ~= "number" or window ~= window or window <= 0 or window > 1e7 then
    errors.raise("tghost.ratelimit: window must be a positive number of seconds, "
                 .. "not %s", tostring(window))
  end
  local key_fn = opts.key or default_key
  if type(key_fn) ~= "function" then
    errors.raise("tghost.ratelimit: key must be a function(ctx) -> key, not %s",
                 type(key_fn))
  end
  local reply = opts.reply
  if reply ~= nil and type(reply) ~= "string" and type(reply) ~= "function" then
    errors.raise("tghost.ratelimit: reply must be a string or a function(ctx), "
                 .. "not %s", type(reply))
  end
  local exceeded = opts.onLimitExceeded
  if exceeded ~= nil and type(exceeded) ~= "function" then
    errors.raise("tghost.ratelimit: onLimitExceeded must be a function(ctx), "
                 .. "not %s", type(exceeded))
  end
  local prefix = opts.prefix or "ratelimit:"
  if type(prefix) ~= "string" then
    errors.raise("tghost.ratelimit: prefix must be a string, not %s", type(prefix))
  end
  local store = opts.storage or storage.public.memory("tghost.ratelimit")
  if type(store) ~= "table" or type(store.update) ~= "function" then
    errors.raise("tghost.ratelimit: storage must be a tghost.storage store "
                 .. "(it needs update(), a compare-and-set)")
  end
  -- Stored entries outlive their window a little, then expire.
  local ttl = window + 1

  return function(ctx, next)
    local k = key_fn(ctx)
    if k == nil then return next() end
    if type(k) ~= "string" and math.tointeger(k) == nil then
      error(string.format("tghost.ratelimit: the key function returned a %s; "
                          .. "it must return a string, an integer or nil", type(k)), 0)
    end
    local key = prefix .. tostring(math.tointeger(k) or k)
    local allowed, tell = false, false
    store:update(key, function(v)
      local now = core.time()
      if v == nil or type(v) ~= "table" or now >= (v.reset or 0) then
        allowed, tell = true, false
        return { n = 1, reset = now + window }
      end
      if v.n < limit then
        allowed, tell = true, false
        v.n = v.n + 1
        return v
      end
      allowed = false
      tell = not v.told
      v.told = true
      return v
    end, ttl)
    if allowed then return next() end
    if tell and reply ~= nil then
      if type(reply) == "function" then reply(ctx)
      elseif ctx.chatId ~= nil then ctx:reply(reply) end
    end
    if exceeded then exceeded(ctx) end
  end
end

return M
