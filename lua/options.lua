-- Validates run(bot, opts) options, shaped as grammY runner's, and flattens
-- them for the C core. A misspelt or mistyped option is an error with a
-- suggestion, never silently ignored.
local M = {}

local SCHEMA = {
  source = {
    speedTrafficBalance = "number",
    maxDelayMilliseconds = "number",
  },
  runner = {
    fetch = { timeout = "number", allowed_updates = "table" },
    retryInterval = "interval",
    maxRetryTime = "number",
    silent = "boolean",
  },
  sink = {
    kind = "kind",
    concurrency = "number",
    maxWaiting = "number",
    timeout = { milliseconds = "number", handler = "function" },
  },
}

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i):lower() == b:sub(j, j):lower() and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

function M.suggest(word, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = distance(word, c)
    if not best_d or d < best_d then best, best_d = c, d end
  end
  if best and best_d <= math.max(2, #word // 3) then return best end
  return nil
end

local function check(value, schema, path)
  if type(value) ~= "table" then
    error(string.format("run(): %s must be a table, not %s", path, type(value)), 0)
  end
  for key, v in pairs(value) do
    local want = schema[key]
    local here = path == "" and tostring(key) or (path .. "." .. tostring(key))
    if want == nil then
      local names = {}
      for k in pairs(schema) do names[#names + 1] = k end
      table.sort(names)
      local s = type(key) == "string" and M.suggest(key, names)
      error(string.format("run(): unknown option %s%s (known here: %s)", here,
                          s and (" (did you mean " .. s .. "?)") or "",
                          table.concat(names, ", ")), 0)
    elseif type(want) == "table" then
      check(v, want, here)
    elseif want == "interval" then
      if not (type(v) == "number" and v >= 0 or v == "exponential" or v == "quadratic") then
        error("run(): " .. here .. ' must be "exponential", "quadratic" or a number of milliseconds', 0)
      end
    elseif want == "kind" then
      if v ~= "concurrent" and v ~= "sequential" and v ~= "batch" then
        error("run(): " .. here .. ' must be "concurrent", "sequential" or "batch"', 0)
      end
    elseif type(v) ~= want then
      error(string.format("run(): %s must be a %s, not %s", here, want, type(v)), 0)
    end
  end
end

-- Returns the flat table core.run expects, and the timeout handler.
function M.flatten(opts)
  opts = opts or {}
  check(opts, SCHEMA, "")
  local source = opts.source or {}
  local runner = opts.runner or {}
  local fetch = runner.fetch or {}
  local sink = opts.sink or {}
  local timeout = sink.timeout or {}
  local mw = sink.maxWaiting
  if mw ~= nil and (math.type(mw) ~= "integer" and mw ~= math.floor(mw) or mw < 0) then
    error("run(): sink.maxWaiting must be a whole number >= 0", 0)
  end
  if timeout.handler and not timeout.milliseconds then
    error("run(): sink.timeout.handler needs sink.timeout.milliseconds", 0)
  end
  local flat = {
    sink = sink.kind or "concurrent",
    concurrency = sink.concurrency,
    max_waiting = sink.maxWaiting,
    timeout_ms = timeout.milliseconds,
    fetch_timeout = fetch.timeout,
    allowed_updates = fetch.allowed_updates,
    retry_interval = runner.retryInterval,
    max_retry_ms = runner.maxRetryTime,
    silent = runner.silent,
    speed_traffic_balance = source.speedTrafficBalance,
    max_delay_ms = source.maxDelayMilliseconds,
  }
  return flat, timeout.handler
end

return M
