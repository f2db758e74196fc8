-- bot.handleUpdate(update [, opts]): one update through the whole bot, as
-- the runner would run it, for tests (grammY's bot.handleUpdate).
--
-- The update runs as a job of its own (src/script/luacore.c's
-- handle_update): a waiting conversation may take it, else every
-- middleware runs, with the per-update CPU and memory limits, and errors
-- go to bot.catch as any update's do. The caller is suspended until the
-- job has ended, and gets its record:
--
--   record.outcome  "done", "failed", "cancelled", or "consumed" (a
--                   conversation waiting in ctx:wait took the update)
--   record.error    what the handler raised (failed), or why it was cut
--                   short (cancelled)
--   record.calls    every Bot API call made while the update ran (its
--                   child tasks included), in order: { method =, params =,
--                   result = } (or error = for a call that raised)
--
-- The calls are answered here, not sent: by opts.answer (a function
-- (method, params) -> result, or a table method -> result or function),
-- else with a stand-in result of the right shape (the one --check gives:
-- true, a Message with the text sent, ...). opts.send = true sends them
-- to the Bot API instead (and records the answers). An answer function
-- may raise to make the call fail (error{ error_code = 400, description =
-- "Bad Request: ..." } raises an API error as Telegram's would).
--
-- An update without update_id gets one. Two updates with the same id
-- cannot be handled at the same time (the record is found by it).
local core = require("tghost.core")
local json = require("tghost.json")
local runtime = require("tghost.runtime")
local checkstub = require("tghost.checkstub")
local errors = require("tghost.errors")
errors.internal()

local records = runtime.records
local OPTIONS = { answer = true, send = true }
local next_id = 1000000000

-- A copy of params as the test sees it (the handler may reuse its table).
local function copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[k] = copy(x, seen) end
  return setmetatable(out, getmetatable(v))
end

-- An answer function's error table becomes an API error, as a real call
-- raises it.
local function api_error(method, e)
  if type(e) == "table" and getmetatable(e) == nil
     and (e.error_code ~= nil or e.description ~= nil) then
    local err = setmetatable({ method = method, kind = "api" }, runtime.ApiError)
    for k, v in pairs(e) do err[k] = v end
    return err
  end
  return e
end

local function answerer(answer, send)
  if send then return function(method, params, real) return real(method, params) end end
  if answer == nil then
    return function(method, params) return checkstub.result(method, params) end
  end
  if type(answer) == "function" then
    return function(method, params) return answer(method, params) end
  end
  return function(method, params)
    local a = answer[method]
    if type(a) == "function" then return a(params) end
    if a == nil then return checkstub.result(method, params) end
    return copy(a)
  end
end

local function handle_update(update, opts)
  if type(update) ~= "table" then
    errors.raise("bot.handleUpdate(update [, opts]): expected an update "
                 .. "table, got %s", type(update))
  end
  if opts ~= nil and type(opts) ~= "table" then
    errors.raise("bot.handleUpdate: opts must be a table, got %s", type(opts))
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not OPTIONS[k] then
      errors.raise("bot.handleUpdate: unknown option %s (known: answer, send)",
                   tostring(k))
    end
  end
  if opts.answer ~= nil and type(opts.answer) ~= "function"
     and type(opts.answer) ~= "table" then
    errors.raise("bot.handleUpdate: answer must be a function(method, "
                 .. "params) or a table of results by method, got %s",
                 type(opts.answer))
  end
  local id = update.update_id
  if id == nil then
    next_id = next_id + 1
    id = next_id
    update = copy(update)
    update.update_id = id
  elseif math.tointeger(id) == nil then
    errors.raise("bot.handleUpdate: update_id must be an integer, got %s",
                 tostring(id))
  end
  id = math.tointeger(id)
  if records[id] then
    errors.raise("bot.handleUpdate: update %d is being handled already (two "
                 .. "updates at once need different update_ids)", id)
  end
  local ok, text = pcall(json.encode, update)
  if not ok then
    errors.raise("bot.handleUpdate: the update cannot be encoded: %s",
                 (tostring(text):gsub("^.-:%d+: ", "")))
  end
  local answer = answerer(opts.answer, opts.send)
  local record = { calls = {} }
  function record.call(method, params, real)
    local entry = { method = method, params = copy(params) }
    record.calls[#record.calls + 1] = entry
    local res = table.pack(pcall(answer, method, params, real))
    if not res[1] then
      entry.error = api_error(method, res[2])
      error(entry.error, 0)
    end
    entry.result = res[2]
    return table.unpack(res, 2, res.n)
  end
  records[id] = record
  runtime.handled_updates = true
  local done <close> = setmetatable({}, { __close = function() records[id] = nil end })
  local outcome, why = core.handle_update(text, id)
  -- A conversation took it once its job had started (runtime.handle_update).
  if outcome == "done" and record.consumed then outcome = "consumed" end
  record.outcome = outcome
  if outcome == "cancelled" then record.error = why end
  if outcome == "failed" and record.error == nil then record.error = why end
  record.call = nil
  return record
end

return handle_update
