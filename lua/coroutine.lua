-- Coroutine functions that let tghost calls work inside a script's own
-- coroutines (iterators, generators, coroutine.wrap helpers).
--
-- A tghost call (bot.api.*, tghost.sleep, ...) suspends the handler by
-- yielding a private sentinel to the host. Inside a user coroutine that
-- yield would land in the user's coroutine.resume instead. These wrappers
-- recognise it and pass it on up, then hand the host's answer back down,
-- as OpenResty does, so the call simply works. Ordinary yields between the
-- script's own coroutines are untouched.
local core = require("tghost.core")

local SENTINEL = core.sentinel()
local raw_resume = coroutine.resume
local raw_yield = coroutine.yield
local raw_create = coroutine.create
local raw_isyieldable = coroutine.isyieldable
local raw_close = coroutine.close

local M = {}

-- After raw_resume(co) returned (ok, ...): while co waits on the host,
-- suspend this coroutine too, and pass the host's answer back into co.
local function settle(co, ok, first, ...)
  if ok and first == SENTINEL then
    if not raw_isyieldable() then
      raw_close(co)
      core.drop_wait()
      error("a tghost call inside a coroutine cannot suspend here: the "
            .. "coroutine was resumed from a function that cannot yield "
            .. "(a table.sort comparator, string.gsub callback, metamethod "
            .. "or the main chunk of a C call)", 3)
    end
    return settle(co, raw_resume(co, raw_yield(SENTINEL)))
  end
  return ok, first, ...
end

function M.resume(co, ...)
  return settle(co, raw_resume(co, ...))
end

local function unwrap(co, ok, ...)
  if ok then return ... end
  local err = ...
  raw_close(co)
  if type(err) == "string" then error(err, 2) end
  error(err, 0)
end

function M.wrap(f)
  local co = raw_create(f)
  return function(...)
    return unwrap(co, settle(co, raw_resume(co, ...)))
  end
end

-- Installs the wrappers into a coroutine library table.
function M.install(lib)
  lib.resume = M.resume
  lib.wrap = M.wrap
end

return M
