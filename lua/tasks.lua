-- Several things at once inside one handler: tghost.spawn starts a child
-- task in the handler's job (it shares the update's lifetime: cancelled
-- with it, and the update is not done until its children are);
-- tghost.wait and tghost.all join children and return their results,
-- raising a child's error in the waiter.
local task = require("tghost.task")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local function describe(e)
  local ok, s = pcall(tostring, e)
  return ok and s or "(error object without __tostring)"
end

local function traced(e)
  return { error = e, traceback = debug.traceback(nil, 2) }
end

-- A child returns true, results... or false, error, text (text: for the
-- log line when nobody waits for it).
local function finish(ok, ...)
  if ok then return true, ... end
  local e = ...
  return false, e.error, describe(e.error) .. "\n" .. e.traceback
end

local function run_child(fn, ...)
  return finish(xpcall(fn, traced, ...))
end

function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("tghost.spawn: expected a function, got " .. type(fn), 2)
  end
  return task.spawn(run_child, fn, ...)
end

-- Other things tghost.wait accepts (the run handle's task()): each maps
-- to a function that waits and returns its results.
local waitables = setmetatable({}, { __mode = "k" })

local function check_handle(t, i, what)
  if not task.is_handle(t) and not waitables[t] then
    error(string.format("%s: argument %d is not a task (from tghost.spawn "
                        .. "or handle:task())", what, i), 3)
  end
end

-- task.join's answer for a task or a waitable: {n=, ok, results...}.
local function join(t)
  local w = waitables[t]
  if w then return table.pack(true, w()) end
  return task.join(t)
end

-- A waitable named name: tghost.wait(w) and w:wait() call wait_fn().
function M.waitable(name, wait_fn)
  local w = {}
  waitables[w] = wait_fn
  return setmetatable(w, {
    __name = "tghost.Waitable",
    __index = { wait = function(self) return M.wait(self) end },
    __tostring = function() return name end,
  })
end

-- tghost.wait(t): t's results. tghost.wait(t1, t2, ...): the first result
-- of each. A failed task's error is raised here (for several, the first
-- failure in argument order).
function M.wait(...)
  local n = select("#", ...)
  if n == 0 then error("tghost.wait: expected at least one task", 2) end
  for i = 1, n do check_handle((select(i, ...)), i, "tghost.wait") end
  if n == 1 then
    local r = join((...))
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
  local out = {}
  for i = 1, n do
    local r = join((select(i, ...)))
    if not r[1] then error(r[2], 0) end
    out[i] = r[2]
  end
  return table.unpack(out, 1, n)
end

-- tghost.all{f1, f2, t3, ...}: runs the functions as children, waits for
-- them and the given tasks, and returns a list of their first results.
function M.all(list)
  if type(list) ~= "table" then
    error("tghost.all: expected a list of functions or tasks", 2)
  end
  local handles = {}
  for i = 1, #list do
    local v = list[i]
    if type(v) == "function" then
      handles[i] = task.spawn(run_child, v)
    else
      check_handle(v, i, "tghost.all")
      handles[i] = v
    end
  end
  local out = {}
  for i = 1, #handles do
    local r = join(handles[i])
    if not r[1] then error(r[2], 0) end
    out[i] = r[2]
  end
  return out
end

-- tghost.every(seconds, fn): calls fn() every `seconds` seconds, in a
-- background task of the script's top level, for periodic work (reports,
-- clean-ups). Each call runs under the CPU guard like a handler; an error
-- is logged and the next call comes as planned. A reload stops it (the
-- new top level starts its own); so does the bot stopping. Returns the
-- task.
local core = require("tghost.core")

function M.every(seconds, fn)
  if type(seconds) ~= "number" or seconds <= 0 or seconds ~= seconds then
    error("tghost.every: expected a number of seconds > 0, got "
          .. tostring(seconds), 2)
  end
  if type(fn) ~= "function" then
    error("tghost.every: expected a function, got " .. type(fn), 2)
  end
  if core.current() ~= nil then
    error("tghost.every belongs at the script's top level, not in a handler "
          .. "(where it would keep the update from ever finishing)", 2)
  end
  return task.spawn(run_child, function()
    while true do
      core.sleep(seconds)
      local ok, e = xpcall(fn, traced)
      if not ok then
        if type(e) ~= "table" then e = { error = e, traceback = "" } end
        core.log("error", "tghost.every: " .. describe(e.error) .. "\n"
                 .. e.traceback)
      end
    end
  end)
end

-- t:wait() and t:status() ("running", "done", "failed", "cancelled").
task.methods.wait = function(self) return M.wait(self) end
task.methods.status = task.status

return M
