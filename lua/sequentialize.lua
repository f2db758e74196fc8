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

local acquire = seq.acquire
local reroute = conversation.reroute

local function sequentialize(fn)
  if type(fn) ~= "function" then
    error("sequentialize: expected a key function (ctx -> key, list of keys "
          .. "or nil), got " .. type(fn), 2)
  end
  return function(ctx, next)
    local held <close>, waited = acquire((fn(ctx)))
    if waited and reroute(ctx) then return end
    return next()
  end
end

return sequentialize
