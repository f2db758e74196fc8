-- A small test library for the Lua unit tests. tghost runs a test file as
-- a bot script that never calls run(): it runs to its end and exits; an
-- error (done() raises one when a test failed) makes the exit status 1.
local M = {}

local failures, count = {}, 0
local current = "?"

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" or depth > 4 then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = "[" .. show(k) .. "]=" .. show(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_eq(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
M.deep_eq = deep_eq

-- Runs fn as one named test; a failure is recorded and the others go on.
function M.test(name, fn)
  current = name
  count = count + 1
  local ok, err = xpcall(fn, debug.traceback)
  if not ok then
    failures[#failures + 1] = name .. ": " .. tostring(err)
    print("FAIL " .. name .. "\n  " .. tostring(err))
  end
end

function M.eq(got, want, what)
  if not deep_eq(got, want) then
    error(string.format("%s\n    got:  %s\n    want: %s", what or "value",
                        show(got), show(want)), 2)
  end
end

function M.truthy(v, what)
  if not v then error((what or "expected a true value") .. ", got " .. show(v), 2) end
end

-- Calls fn, expects it to raise an error containing every plain string in
-- needles; returns the message.
function M.raises(fn, ...)
  local ok, err = pcall(fn)
  if ok then error("expected an error, none was raised", 2) end
  local msg = tostring(err)
  for i = 1, select("#", ...) do
    local needle = select(i, ...)
    if not msg:find(needle, 1, true) then
      error(string.format("error message lacks %q:\n    %s", needle, msg), 2)
    end
  end
  return msg
end

-- Ends the file: raises (exit status 1) if any test failed.
function M.done()
  if #failures > 0 then
    error(string.format("%d of %d tests failed:\n%s", #failures, count,
                        table.concat(failures, "\n")), 0)
  end
  print(string.format("all %d tests passed", count))
end

-- A fake bot for contexts: bot.api records every call and answers
-- answer(method, params) or true.
function M.fake_bot(answer)
  local calls = {}
  local api = setmetatable({}, {
    __index = function(_, method)
      return function(params)
        calls[#calls + 1] = { method = method, params = params }
        if answer then return answer(method, params) end
        return true
      end
    end,
  })
  return { api = api, botInfo = { id = 4242, is_bot = true,
                                   first_name = "Test Bot",
                                   username = "test_bot" } }, calls
end

return M
