-- Filter queries ("message", "message:text", ...) compiled once, at
-- registration, into predicates.
local M = {}

local UPDATE_TYPES = {
  "message", "edited_message", "channel_post", "edited_channel_post",
  "business_connection", "business_message", "edited_business_message",
  "deleted_business_messages", "message_reaction", "message_reaction_count",
  "inline_query", "chosen_inline_result", "callback_query",
  "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
  "poll_answer", "my_chat_member", "chat_member", "chat_join_request",
  "chat_boost", "removed_chat_boost",
}
local is_update_type = {}
for _, t in ipairs(UPDATE_TYPES) do is_update_type[t] = true end
M.UPDATE_TYPES = UPDATE_TYPES

local function compile_one(query, level)
  if type(query) ~= "string" or query == "" then
    error("filter query must be a non-empty string", level + 1)
  end
  local l1, l2 = query:match("^([%w_]*):?([%w_]*)$")
  if not l1 or not is_update_type[l1] then
    error(string.format("invalid filter query '%s'", query), level + 1)
  end
  if l2 == "" then
    return function(ctx) return ctx.update[l1] ~= nil end
  end
  return function(ctx)
    local v = ctx.update[l1]
    return v ~= nil and type(v) == "table" and v[l2] ~= nil
  end
end

-- query: a string or a list of strings (any may match). Returns the
-- predicate and the list of queries.
function M.compile(query, level)
  level = level or 1
  local queries = type(query) == "table" and query or { query }
  if #queries == 0 then error("empty list of filter queries", level + 1) end
  local preds = {}
  for i, q in ipairs(queries) do preds[i] = compile_one(q, level + 1) end
  if #preds == 1 then return preds[1], queries end
  return function(ctx)
    for i = 1, #preds do if preds[i](ctx) then return true end end
    return false
  end, queries
end

-- /name or /name@botname at the start of a message text; ctx.match is the
-- rest of the text.
function M.command(names, level)
  local list = type(names) == "table" and names or { names }
  local wanted = {}
  for _, n in ipairs(list) do
    if type(n) ~= "string" or not n:match("^[%w_]+$") then
      error("command names are letters, digits and '_'", (level or 1) + 1)
    end
    wanted[n:lower()] = true
  end
  return function(ctx)
    local msg = ctx.message
    local text = msg and msg.text
    if not text then return false end
    local cmd, at, rest = text:match("^/([%w_]+)@?([%w_]*)%s*(.-)%s*$")
    if not cmd or not wanted[cmd:lower()] then return false end
    if at ~= "" then
      local me = ctx.me
      if not me or not me.username or at:lower() ~= me.username:lower() then
        return false
      end
    end
    ctx.match = rest
    return true
  end
end

return M
