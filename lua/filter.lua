-- Filter queries, as grammY defines them: "message", "message:text",
-- "message:entities:url", with the shortcuts "msg", "edit", ":media",
-- ":file" and omitted parts (":text", "::url"), alone or in lists (any may
-- match).
--
-- A query is validated and compiled once, when the handler is registered,
-- into a predicate built of closures: matching an update is a few table
-- lookups, with no string handling. An invalid query raises at the
-- script's line, with a "did you mean" suggestion.
local errors = require("tghost.errors")
errors.internal()

local M = {}

-- === The query language: which parts may follow which ===================

-- A node lists the parts that may follow (names, in order, for messages;
-- sub, for lookups). test says how an L3 part is checked against the L2
-- value (or each of its elements, when it is an array): "type" compares
-- the element's type field (entities, forward origins, reactions),
-- "field" checks that the element has the field (users, stickers).
local LEAF = { names = {}, sub = {} }

local function node(test, list)
  local n = { names = {}, sub = {}, test = test }
  for _, item in ipairs(list) do
    local name, sub = item, LEAF
    if type(item) == "table" then name, sub = item[1], item[2] end
    n.names[#n.names + 1] = name
    n.sub[name] = sub
  end
  return n
end

local function concat(a, b)
  local out = {}
  for _, v in ipairs(a) do out[#out + 1] = v end
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end

local ENTITY = node("type", {
  "mention", "hashtag", "cashtag", "bot_command", "url", "email",
  "phone_number", "bold", "italic", "underline", "strikethrough", "spoiler",
  "blockquote", "expandable_blockquote", "code", "pre", "text_link",
  "text_mention", "custom_emoji",
})
local USER = node("field", { "me", "is_bot", "is_premium", "added_to_attachment_menu" })
local FORWARD_ORIGIN = node("type", { "user", "hidden_user", "chat", "channel" })
local STICKER = node("field", { "is_video", "is_animated", "premium_animation" })
local REACTION = node("type", { "emoji", "custom_emoji", "paid" })
local FORUM_TOPIC_EDITED = node("field", { "name", "icon_custom_emoji_id" })

local COMMON_MESSAGE = {
  { "forward_origin", FORWARD_ORIGIN }, "is_topic_message",
  "is_automatic_forward", "business_connection_id",
  "text", "animation", "audio", "document", "photo", { "sticker", STICKER },
  "story", "video", "video_note", "voice", "contact", "dice", "game", "poll",
  "venue", "location", "paid_media",
  { "entities", ENTITY }, { "caption_entities", ENTITY }, "caption",
  "effect_id", "has_media_spoiler",
  "reply_to_message", "external_reply", "quote", "reply_to_story", "via_bot",
  "sender_chat", "media_group_id",
  "new_chat_title", "new_chat_photo", "delete_chat_photo",
  "message_auto_delete_timer_changed", "pinned_message",
  "chat_background_set", "invoice", "proximity_alert_triggered",
  "giveaway_created", "giveaway", "giveaway_winners", "giveaway_completed",
  "video_chat_scheduled", "video_chat_started", "video_chat_ended",
  "video_chat_participants_invited", "web_app_data",
}
local MESSAGE = node(nil, concat(COMMON_MESSAGE, {
  "sender_boost_count",
  { "new_chat_members", USER }, { "left_chat_member", USER },
  "group_chat_created", "supergroup_chat_created", "migrate_to_chat_id",
  "migrate_from_chat_id", "successful_payment", "refunded_payment",
  "boost_added", "users_shared", "chat_shared", "connected_website",
  "write_access_allowed", "passport_data", "forum_topic_created",
  { "forum_topic_edited", FORUM_TOPIC_EDITED }, "forum_topic_closed",
  "forum_topic_reopened", "general_forum_topic_hidden",
  "general_forum_topic_unhidden",
}))
local CHANNEL_POST = node(nil, concat(COMMON_MESSAGE, { "channel_chat_created" }))
local BUSINESS_CONNECTION = node(nil, { "can_reply", "is_enabled" })
local MESSAGE_REACTION = node(nil, { { "old_reaction", REACTION }, { "new_reaction", REACTION } })
local MESSAGE_REACTION_COUNT = node(nil, { { "reactions", REACTION } })
local CALLBACK_QUERY = node(nil, { "data", "game_short_name" })
local CHAT_MEMBER_UPDATED = node(nil, { { "from", USER } })

-- Every update type, in the Bot API's order.
local UPDATE = node(nil, {
  { "message", MESSAGE },
  { "edited_message", MESSAGE },
  { "channel_post", CHANNEL_POST },
  { "edited_channel_post", CHANNEL_POST },
  { "business_connection", BUSINESS_CONNECTION },
  { "business_message", MESSAGE },
  { "edited_business_message", MESSAGE },
  "deleted_business_messages",
  { "message_reaction", MESSAGE_REACTION },
  { "message_reaction_count", MESSAGE_REACTION_COUNT },
  "inline_query",
  "chosen_inline_result",
  { "callback_query", CALLBACK_QUERY },
  "shipping_query",
  "pre_checkout_query",
  "purchased_paid_media",
  "poll",
  "poll_answer",
  { "my_chat_member", CHAT_MEMBER_UPDATED },
  { "chat_member", CHAT_MEMBER_UPDATED },
  "chat_join_request",
  "chat_boost",
  "removed_chat_boost",
})

M.UPDATE_TYPES = UPDATE.names

local L1_SHORTCUTS = {
  [""] = { "message", "channel_post" },
  msg = { "message", "channel_post" },
  edit = { "edited_message", "edited_channel_post" },
}
local L2_SHORTCUTS = {
  [""] = { "entities", "caption_entities" },
  media = { "photo", "video" },
  file = { "photo", "animation", "audio", "document", "video", "video_note",
           "voice", "sticker" },
}

-- === Validation =========================================================

local function split(query)
  local parts = {}
  for part in (query .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = part end
  return parts
end

local function quoted_list(names)
  local q = {}
  for i, n in ipairs(names) do q[i] = "'" .. n .. "'" end
  return table.concat(q, ", ")
end

local function union_names(nodes)
  local seen, out = {}, {}
  for _, n in ipairs(nodes) do
    for _, name in ipairs(n.names) do
      if not seen[name] then seen[name] = true; out[#out + 1] = name end
    end
  end
  return out
end

-- Expands the shortcuts of a split query into full paths {l1[, l2[, l3]]}
-- that the language allows. Returns the paths, or nil and a description
-- of the first part that is wrong: { level, part, allowed (names), where }.
local function expand(parts)
  local l1, l2, l3 = parts[1], parts[2], parts[3]
  if #parts > 3 then
    return nil, { level = 4, message = "filter queries have at most three "
                  .. "parts (L1:L2:L3), ':" .. table.concat(parts, ":", 4)
                  .. "' is one too many" }
  end
  local l1s
  if L1_SHORTCUTS[l1] and (l1 ~= "" or l2 ~= nil) then
    l1s = L1_SHORTCUTS[l1]
  elseif UPDATE.sub[l1] then
    l1s = { l1 }
  else
    local allowed = concat(UPDATE.names, { "msg", "edit" })
    return nil, { level = 1, part = l1, allowed = allowed,
                  what = "an update type" }
  end
  local paths = {}
  if l2 == nil then
    for i, t in ipairs(l1s) do paths[i] = { t } end
    return paths
  end
  local l2s
  if L2_SHORTCUTS[l2] and (l2 ~= "" or l3 ~= nil) then
    l2s = L2_SHORTCUTS[l2]
  else
    l2s = { l2 }
  end
  local l1nodes, l2nodes, l2names = {}, {}, {}
  for _, t1 in ipairs(l1s) do
    local n1 = UPDATE.sub[t1]
    l1nodes[#l1nodes + 1] = n1
    for _, t2 in ipairs(l2s) do
      local n2 = n1.sub[t2]
      if n2 then
        l2nodes[#l2nodes + 1] = n2
        local shown = #l1s == 1 and (t1 .. ":" .. t2) or t2
        if not l2names[shown] then
          l2names[shown] = true
          l2names[#l2names + 1] = shown
        end
        if l3 == nil then
          paths[#paths + 1] = { t1, t2 }
        elseif n2.sub[l3] then
          paths[#paths + 1] = { t1, t2, l3 }
        end
      end
    end
  end
  if #paths > 0 then return paths end
  if #l2nodes == 0 then
    local allowed = union_names(l1nodes)
    if #allowed > 0 and l1nodes[1].sub.photo then
      allowed = concat(allowed, { "media", "file" })
    end
    return nil, { level = 2, part = l2, allowed = allowed,
                  what = "a field of " .. table.concat(l1s, " or ") }
  end
  return nil, { level = 3, part = l3, allowed = union_names(l2nodes),
                what = "a filter of " .. table.concat(l2names, " or ") }
end

-- Raises the error for an invalid query, with a suggestion: the query with
-- the wrong part replaced by the closest allowed value, when that is a
-- valid query.
local function invalid(query, parts, why)
  local msg = string.format("invalid filter query '%s': ", query)
  if why.level == 4 then errors.raise(msg .. why.message) end
  local part = why.part
  if part == "" then
    local shorter = { table.unpack(parts, 1, why.level - 1) }
    local s = #shorter > 0 and expand(shorter) and table.concat(shorter, ":")
    errors.raise("%sthe L%d part is empty%s", msg, why.level,
                 s and (" (did you mean '" .. s .. "'?)") or "")
  end
  local suggestion
  -- "text" or "photo" alone: a message kind used as an update type.
  if why.level == 1 and MESSAGE.sub[part] then
    suggestion = ":" .. query
  end
  local best = not suggestion and errors.suggest(part, why.allowed)
  if best then
    local fixed = { table.unpack(parts) }
    fixed[why.level] = best
    if expand(fixed) then suggestion = table.concat(fixed, ":") end
  end
  if why.level > 1 and #why.allowed == 0 then
    errors.raise("%sno further filtering is possible after '%s'", msg,
                 table.concat(parts, ":", 1, why.level - 1))
  end
  local shown = "'" .. part .. "'"
  if suggestion then
    errors.raise("%s%s is not %s (did you mean '%s'?)", msg, shown, why.what,
                 suggestion)
  end
  errors.raise("%s%s is not %s; permitted: %s", msg, shown, why.what,
               quoted_list(why.allowed))
end

-- === Compilation into predicates =======================================

-- A predicate for an L3 part, applied to an L2 value that is an object or
-- an array of objects (any element may match).
local function l3_predicate(l3, test)
  local one
  if l3 == "me" then
    return function(v, ctx)
      local me = ctx.me
      local id = me and me.id
      if id == nil or type(v) ~= "table" then return false end
      if v[1] == nil then return v.id == id end
      for i = 1, #v do
        if type(v[i]) == "table" and v[i].id == id then return true end
      end
      return false
    end
  elseif test == "type" then
    one = function(e)
      local t = e.type
      -- A reaction count wraps its reaction: {type = {type = "emoji"}}.
      return t == l3 or (type(t) == "table" and t.type == l3)
    end
  else
    one = function(e)
      local f = e[l3]
      return f ~= nil and f ~= false
    end
  end
  return function(v)
    if type(v) ~= "table" then return false end
    if v[1] == nil then return one(v) end
    for i = 1, #v do
      local e = v[i]
      if type(e) == "table" and one(e) then return true end
    end
    return false
  end
end

-- Any of the predicates (each taking (obj, ctx)).
local function any(preds)
  local n = #preds
  if n == 1 then return preds[1] end
  if n == 2 then
    local a, b = preds[1], preds[2]
    return function(o, ctx) return a(o, ctx) or b(o, ctx) end
  end
  return function(o, ctx)
    for i = 1, n do
      if preds[i](o, ctx) then return true end
    end
    return false
  end
end

-- Builds the predicate for a set of paths, grouped as a tree so that each
-- L1 and L2 field is looked up once.
local function build(paths)
  local order, tree = {}, {}
  for _, p in ipairs(paths) do
    local l1, l2, l3 = p[1], p[2], p[3]
    local t1 = tree[l1]
    if not t1 then
      t1 = { order = {}, sub = {}, all = false }
      tree[l1] = t1
      order[#order + 1] = l1
    end
    if l2 == nil then
      t1.all = true
    else
      local t2 = t1.sub[l2]
      if not t2 then
        t2 = { l3s = {}, all = false }
        t1.sub[l2] = t2
        t1.order[#t1.order + 1] = l2
      end
      if l3 == nil then t2.all = true else t2.l3s[#t2.l3s + 1] = l3 end
    end
  end

  local l1preds = {}
  for _, l1 in ipairs(order) do
    local t1 = tree[l1]
    if t1.all or #t1.order == 0 then
      l1preds[#l1preds + 1] = function(u) return u[l1] ~= nil end
    else
      local l2preds = {}
      for _, l2 in ipairs(t1.order) do
        local t2 = t1.sub[l2]
        if t2.all or #t2.l3s == 0 then
          l2preds[#l2preds + 1] = function(o) return o[l2] ~= nil end
        else
          local test = UPDATE.sub[l1].sub[l2].test
          local l3preds = {}
          for i, l3 in ipairs(t2.l3s) do l3preds[i] = l3_predicate(l3, test) end
          local l3any = any(l3preds)
          l2preds[#l2preds + 1] = function(o, ctx)
            local v = o[l2]
            return v ~= nil and l3any(v, ctx)
          end
        end
      end
      local l2any = any(l2preds)
      l1preds[#l1preds + 1] = function(u, ctx)
        local o = u[l1]
        return type(o) == "table" and l2any(o, ctx)
      end
    end
  end
  local l1any = any(l1preds)
  return function(ctx) return l1any(ctx.update, ctx) == true end
end

-- Compiles a query, or a list of queries (any may match). Returns the
-- predicate pred(ctx) and the set of update types it can match
-- ({ message = true, ... }), for allowed_updates. Raises at the script's
-- line if a query is invalid.
function M.compile(query)
  local queries = query
  if type(query) ~= "table" then queries = { query } end
  if #queries == 0 then errors.raise("empty list of filter queries") end
  local paths, types = {}, {}
  for _, q in ipairs(queries) do
    if type(q) ~= "string" then
      errors.raise("a filter query must be a string, not %s", type(q))
    end
    if q == "" then errors.raise("invalid filter query '': the query is empty") end
    local parts = split(q)
    local expanded, why = expand(parts)
    if not expanded then invalid(q, parts, why) end
    for _, p in ipairs(expanded) do
      paths[#paths + 1] = p
      types[p[1]] = true
    end
  end
  return build(paths), types
end

-- tghost.matchFilter(query): the predicate alone, for bot.filter/bot.drop.
function M.match_filter(query)
  return (M.compile(query))
end

-- For ctx:has(query): compiled once per distinct query string.
local cache = setmetatable({}, { __mode = "v" })
function M.cached(query)
  local pred = type(query) == "string" and cache[query]
  if pred then return pred end
  pred = M.compile(query)
  if type(query) == "string" then cache[query] = pred end
  return pred
end

return M
