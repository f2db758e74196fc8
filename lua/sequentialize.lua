-- sequentialize(fn): middleware that makes updates sharing a key run one
-- after another, in the order they arrived, while updates with disjoint
-- keys run concurrently (grammY runner's sequentialize).
--
-- fn(ctx) returns a key (a string or an integer), a list of keys, or nil
-- (no constraint). The update goes on to the rest of the stack only once
-- every earlier update that shares a key with it is done (finished, failed,
-- timed out or cancelled); its keys are held until the rest of the stack
-- returns or raises, or the update ends. The bookkeeping lives in C
-- (tghost.seq) and survives a hot reload.
--
-- A conversation waiting in ctx:wait sets its keys aside (so the updates
-- of its chat run meanwhile), and an update that had to wait for its keys
-- is offered to the conversations again once it has them: the earlier
-- update may have become a dialog that waits for exactly this one.
local seq = require("tghost.seq")
local conversation = require("tghost.conversation")
local Composer = require("tghost.composer")
local errors = require("tghost.errors")
errors.internal()

local acquire = seq.acquire
local reroute = conversation.reroute

-- "file:line: " of the key function, where a bad key comes from.
local function where(fn)
  local info = debug.getinfo(fn, "S")
  if info and info.what ~= "C" and info.linedefined > 0 then
    return info.short_src .. ":" .. info.linedefined .. ": "
  end
  return ""
end

local function sequentialize(fn)
  if type(fn) ~= "function" then
    errors.raise("sequentialize: expected a key function (ctx -> key, list "
                 .. "of keys or nil), got %s", type(fn))
  end
  local fn_where
  -- A conversation takes its own keys back before its answer reaches it,
  -- so answers do not run this again.
  return Composer.not_for_answers(function(ctx, next)
    local ok, held, waited = pcall(acquire, (fn(ctx)))
    if not ok then
      -- A key the function returned is unusable: name the function.
      fn_where = fn_where or where(fn)
      error(fn_where .. (tostring(held):gsub("^[^\n]-:%d+: ", "")), 0)
    end
    local closer <close> = held
    if waited and reroute(ctx) then return end
    return next()
  end)
end

return sequentialize
