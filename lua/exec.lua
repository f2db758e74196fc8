-- tghost.exec: programs run as child processes without blocking the loop
-- (src/luaexec.h, src/net/child.h). No shell: the command is a list.
--   tghost.exec{ "prog", "arg", ..., stdin =, env =, cwd =, timeout =,
--                max_output =, stdout = fn, stderr = fn }
--     -> { status, signal, stdout, stderr } or nil, message
--   tghost.exec.start{ ... } -> a process: p:read(), p:chunks(),
--     p:write(s), p:closeStdin(), p:wait(), p:kill(sig), p.pid
-- A process belongs to the handler that started it: when the handler
-- ends or is cancelled, a process still running is killed.
local core = require("tghost.execcore")
local errors = require("tghost.errors")
errors.internal()

local DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024

local function name_of(spec)
  return type(spec) == "table" and tostring(spec[1]) or "?"
end

if require("tghost.core").check_mode() then
  local function not_run(spec)
    errors.note("--check: tghost.exec did not run %s (tghost --check runs no "
                .. "program); it returns nil, message", name_of(spec))
    return nil, "tghost.exec: not run: tghost --check runs no program"
  end
  return setmetatable({ start = not_run }, {
    __call = function(_, spec) return not_run(spec) end,
  })
end

local function spawn(what, spec)
  if type(spec) ~= "table" then
    errors.raise("%s: expected a table { \"program\", \"arg\", ... }, got %s",
                 what, type(spec))
  end
  local stdin = spec.stdin
  if stdin ~= nil and type(stdin) ~= "string" and type(stdin) ~= "function"
     and stdin ~= true then
    errors.raise("%s: stdin must be a string, a function (called for each "
                 .. "piece, nil at the end) or true (written with p:write)", what)
  end
  for _, k in ipairs({ "stdout", "stderr" }) do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      errors.raise("%s: %s must be a function (called with each piece)", what, k)
    end
  end
  if spec.max_output ~= nil and (math.type(spec.max_output) ~= "integer"
                                 or spec.max_output < 0) then
    errors.raise("%s: max_output must be a non-negative integer (bytes)", what)
  end
  return errors.call(core.spawn, spec)
end

-- The exit as a result table.
local function result(code, signal, stdout, stderr)
  return { status = code, signal = signal, stdout = stdout, stderr = stderr }
end

-- Feeds stdin from a function: a piece each time the pipe has taken the
-- last; nil ends it. The function's error ends the process and is raised.
local function feed(p, gen)
  local ok, piece = pcall(gen)
  if not ok then
    p:close()
    error(piece, 0)
  end
  if piece == nil then
    p:close_stdin()
    return false
  end
  if type(piece) ~= "string" then
    p:close()
    errors.raise("tghost.exec: a stdin function must return strings (nil at "
                 .. "the end), not %s", type(piece))
  end
  p:write(piece)
  return true
end

local M = {}

-- tghost.exec{...}: runs the program to its end.
local function exec(spec)
  local p, err = spawn("tghost.exec", spec)
  if not p then return nil, err end
  local gen
  if type(spec.stdin) == "string" then
    p:write(spec.stdin)
    p:close_stdin()
  elseif type(spec.stdin) == "function" then
    gen = spec.stdin
  elseif spec.stdin ~= true then
    p:close_stdin()
  end
  local max = spec.max_output or DEFAULT_MAX_OUTPUT
  local on = { stdout = spec.stdout, stderr = spec.stderr }
  local out = { stdout = {}, stderr = {} }
  local total = 0
  while true do
    local kind, a, b, timed_out = p:await("output", gen ~= nil)
    if kind == "stdout" or kind == "stderr" then
      if on[kind] then
        on[kind](a)
      else
        total = total + #a
        if total > max then
          p:close()
          return nil, string.format("tghost.exec: %s: output larger than "
                                    .. "max_output (%d bytes); killed",
                                    name_of(spec), max)
        end
        local list = out[kind]
        list[#list + 1] = a
      end
    elseif kind == "stdin" then
      if not feed(p, gen) then gen = nil end
    elseif kind == "exit" then
      p:close()
      if timed_out then
        return nil, string.format("tghost.exec: %s timed out after %g s "
                                  .. "(killed)", name_of(spec), spec.timeout)
      end
      return result(a, b, not on.stdout and table.concat(out.stdout) or nil,
                    not on.stderr and table.concat(out.stderr) or nil)
    end
  end
end

local Process = {}
Process.__index = Process
Process.__name = "tghost.Process"
Process.__close = function(proc) proc._p:close() end

-- p:read() -> chunk, "stdout" | "stderr" as the program writes; nil once
-- it has exited and both are read (then p:wait() says how it ended).
function Process:read()
  local p = self._p
  while true do
    local kind, a, b, timed_out = p:await("output")
    if kind == "stdout" or kind == "stderr" then return a, kind end
    if kind == "exit" then
      self._exit = self._exit or { a, b, timed_out }
      return nil
    end
  end
end

local function chunk_iterator(proc)
  return proc:read()
end

-- for chunk, stream in p:chunks() do ... end; leaving the loop early
-- kills the process.
function Process:chunks()
  return chunk_iterator, self, nil, self
end

-- p:write(s): to the program's stdin; waits while the pipe holds more
-- than 64 KiB (read the output in another task, tghost.spawn, when both
-- are large). Returns true, or nil, message once stdin is closed.
function Process:write(s)
  if type(s) ~= "string" then
    errors.raise("tghost.exec: write expects a string, got %s", type(s))
  end
  local p = self._p
  local ok, err = p:write(s)
  if not ok then return nil, err end
  while p:pending() > 65536 do
    if p:await("stdin") == "exit" then return nil, "the program has exited" end
  end
  return true
end

function Process:closeStdin() self._p:close_stdin() end

-- p:wait() -> { status, signal } once the program has ended; output not
-- read by then is discarded.
function Process:wait()
  while not self._exit do
    if self:read() == nil then break end
  end
  local e = self._exit
  self._p:close()
  return result(e[1], e[2]), e[3] and "timed out" or nil
end

-- p:kill([signal]): "SIGTERM" by default; a name ("SIGKILL", "INT") or a
-- number. The signal goes to the program's whole process group.
function Process:kill(sig) self._p:kill(sig) end

-- tghost.exec.start{...}: a running process to read and write.
function M.start(spec)
  local p, err = spawn("tghost.exec.start", spec)
  if not p then return nil, err end
  if type(spec.stdin) == "string" then
    p:write(spec.stdin)
    p:close_stdin()
  elseif spec.stdin ~= true then
    p:close_stdin()
  end
  return setmetatable({ _p = p, pid = p:pid() }, Process)
end

return setmetatable(M, {
  __call = function(_, spec) return exec(spec) end,
})
