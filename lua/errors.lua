-- Errors that point at the script, and "did you mean" suggestions.
--
-- A misuse of the API (an invalid filter query, a shortcut without a
-- target) raises an error whose position is the script's line that made
-- the call, however deep inside tghost's own modules it was detected.
-- Modules mark themselves internal with errors.internal() when they load;
-- errors.raise() skips their frames (and C frames such as pcall) and
-- blames the first frame of the script or of one of its own modules.
local M = {}

local internal_sources = {}
local internal_names = {}   -- their short_src, as error positions show it

-- Called at the top level of a tghost module: frames of that file are
-- never blamed.
function M.internal()
  local info = debug.getinfo(2, "S")
  if info then
    internal_sources[info.source] = true
    internal_names[info.short_src] = true
  end
end
M.internal()

-- The level, counted from raise's caller's caller, of the first frame
-- that belongs to the script.
local function user_level()
  local level = 3   -- 1 = user_level, 2 = raise, 3 = raise's caller
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 0 end   -- no script frame: no position
    if info.what ~= "C" and not internal_sources[info.source] then
      return level - 1   -- as seen from raise
    end
    level = level + 1
  end
end

-- The file of the script's frame that called into tghost (as its chunk
-- names it, without the "@"), or nil.
function M.caller_file()
  local level = user_level()
  local info = level > 0 and debug.getinfo(level, "S")
  if info and info.source:sub(1, 1) == "@" then return info.source:sub(2) end
  return nil
end

-- Raises message (formatted with string.format when more arguments
-- follow) at the script's call site.
function M.raise(message, ...)
  if select("#", ...) > 0 then message = string.format(message, ...) end
  error(message, user_level())
end

local function log_at(log_level, message, ...)
  if select("#", ...) > 0 then message = string.format(message, ...) end
  local level = user_level()
  local info = level > 0 and debug.getinfo(level, "Sl")
  local where = info and (info.short_src .. ":" .. info.currentline .. ": ") or ""
  local ok, core = pcall(require, "tghost.core")
  if ok then core.log(log_level, where .. message) else print(where .. message) end
end

-- "file:line" of the script's code that called into tghost, or nil.
function M.where()
  local level = user_level()
  local info = level > 0 and debug.getinfo(level, "Sl")
  return info and (info.short_src .. ":" .. info.currentline) or nil
end

-- Logs a warning about the script, with its file and line.
function M.warn(message, ...) log_at("warn", message, ...) end

-- Logs a note (info level) about the script, with its file and line.
function M.note(message, ...) log_at("info", message, ...) end

-- An error a tghost primitive raised because of the script's input names
-- the primitive's Lua caller (a tghost module) or no position at all:
-- raise it again at the script's line. Error objects (an ApiError) and
-- messages that already point at the script pass unchanged.
local function reraise(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" then
    local src, rest = e:match("^([^\n]-):%d+: (.*)$")
    if src == nil then M.raise(e) end
    if internal_names[src] then M.raise(rest) end
  end
  error(e, 0)
end

-- Calls fn(...) (it may yield) and returns its results; its errors are
-- raised at the script's line, as reraise says.
function M.call(fn, ...)
  return reraise(pcall(fn, ...))
end

-- Levenshtein distance, case-insensitive.
local function distance(a, b)
  a, b = a:lower(), b:lower()
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, #b do
      local cost = ca == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end
M.distance = distance

-- The candidate closest to word, if it is close enough to be a plausible
-- typo: at most a third of the word's length (and at least 2) edits away,
-- or up to half of its length when no other candidate is as close
-- ("fotos" -> "photo", 3 edits); else the shortest candidate that contains
-- the word ("bot" -> "is_bot").
function M.suggest(word, candidates)
  local best, best_d, second_d
  for _, c in ipairs(candidates) do
    local d = distance(word, c)
    if not best_d or d < best_d then
      best, best_d, second_d = c, d, best_d
    elseif not second_d or d < second_d then
      second_d = d
    end
  end
  if best and best_d <= math.max(2, #word // 3) then return best end
  if best and best_d <= (#word + 1) // 2 and (second_d == nil or best_d < second_d) then
    return best
  end
  if #word < 3 then return nil end
  best = nil
  local lower = word:lower()
  for _, c in ipairs(candidates) do
    if c:lower():find(lower, 1, true) and (not best or #c < #best) then
      best = c
    end
  end
  return best
end

return M
