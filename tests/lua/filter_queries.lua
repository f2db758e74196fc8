-- Filter queries: every family (L1 update types, L2 message kinds and
-- fields, L3 entities/users/reactions, the msg/edit/:media/:file
-- shortcuts, omitted parts, lists) against real update shapes, invalid
-- queries with their suggestions, and matching without string work.
local t = require("lib.apitest")
local fx = require("fixtures.updates")
local filter = require("tghost.filter")
local Context = require("tghost.context")

local bot = t.fake_bot()

local function ctx_of(name) return Context.new(fx.get(name), bot) end

-- Every fixture by name: the 23 update types and the message variants.
local all = {}
for name in pairs(fx.types) do all[#all + 1] = name end
for name in pairs(fx.messages) do all[#all + 1] = name end
all[#all + 1] = "inline_callback"
all[#all + 1] = "game_callback"
table.sort(all)

-- The fixtures a query matches, sorted.
local function matches(query)
  local pred = filter.compile(query)
  local out = {}
  for _, name in ipairs(all) do
    if pred(ctx_of(name)) then out[#out + 1] = name end
  end
  return out
end

local message_variants = {}
for name in pairs(fx.messages) do message_variants[#message_variants + 1] = name end
table.sort(message_variants)

local function sorted(list)
  table.sort(list)
  return list
end

t.test("one fixture per update type", function()
  local n = 0
  for _, ut in ipairs(filter.UPDATE_TYPES) do
    n = n + 1
    t.truthy(fx.types[ut], "fixture for " .. ut)
  end
  t.eq(n, 23, "number of update types")
end)

t.test("L1: each update type matches its own update and no other", function()
  for _, ut in ipairs(filter.UPDATE_TYPES) do
    local pred = filter.compile(ut)
    for other in pairs(fx.types) do
      t.eq(pred(ctx_of(other)), other == ut, ut .. " against " .. other)
    end
  end
  -- "message" also matches every message variant
  local want = sorted({ "message", table.unpack(message_variants) })
  t.eq(matches("message"), want, "message")
  t.eq(matches("callback_query"), { "callback_query", "game_callback", "inline_callback" })
end)

t.test("L2: message kinds", function()
  t.eq(matches("message:text"), sorted({ "message", "text", "url", "text_link",
       "command", "forwarded_user", "forwarded_channel" }))
  t.eq(matches("message:photo"), { "photo" })
  t.eq(matches("message:video"), { "video" })
  t.eq(matches("message:document"), { "animation", "document" })
  t.eq(matches("message:animation"), { "animation" })
  t.eq(matches("message:audio"), { "audio" })
  t.eq(matches("message:voice"), { "voice" })
  t.eq(matches("message:video_note"), { "video_note" })
  t.eq(matches("message:sticker"), { "sticker" })
  t.eq(matches("message:location"), { "location" })
  t.eq(matches("message:contact"), { "contact" })
  t.eq(matches("message:dice"), { "dice" })
  t.eq(matches("message:caption"), { "document", "photo" })
  t.eq(matches("message:entities"), { "command", "text_link", "url" })
  t.eq(matches("message:caption_entities"), { "document", "photo" })
  t.eq(matches("message:new_chat_members"), { "new_human", "new_members" })
  t.eq(matches("message:left_chat_member"), { "left_human", "left_me" })
  t.eq(matches("message:pinned_message"), { "pinned" })
  t.eq(matches("message:forward_origin"), { "forwarded_channel", "forwarded_user" })
  t.eq(matches("message:is_topic_message"), { "topic_edited" })
  t.eq(matches("edited_message:text"), { "edited_message" })
  t.eq(matches("channel_post:text"), { "channel_post" })
  t.eq(matches("business_message:text"), { "business_message" })
  t.eq(matches("callback_query:data"), { "callback_query", "inline_callback" })
  t.eq(matches("callback_query:game_short_name"), { "game_callback" })
  t.eq(matches("business_connection:is_enabled"), { "business_connection" })
  t.eq(matches("message_reaction:new_reaction"), { "message_reaction" })
  t.eq(matches("chat_member:from"), { "chat_member" })
end)

t.test("L3: entities", function()
  t.eq(matches("message:entities:url"), { "url" })   -- not the text_link
  t.eq(matches("message:entities:text_link"), { "text_link" })
  t.eq(matches("message:entities:bot_command"), { "command" })
  t.eq(matches("message:caption_entities:hashtag"), { "photo" })
  t.eq(matches("message:caption_entities:email"), { "document" })
  t.eq(matches("message:entities:hashtag"), {})
  t.eq(matches("channel_post:entities:url"), { "channel_post" })
end)

t.test("L3: users, stickers, forward origins, topics", function()
  t.eq(matches("message:new_chat_members:is_bot"), { "new_members" })
  t.eq(matches("message:new_chat_members:me"), { "new_members" })
  t.eq(matches("message:left_chat_member:me"), { "left_me" })
  t.eq(matches("message:left_chat_member:is_bot"), { "left_me" })
  t.eq(matches("chat_member:from:is_bot"), {})
  t.eq(matches("my_chat_member:from:me"), {})
  t.eq(matches("message:sticker:is_video"), { "sticker" })
  t.eq(matches("message:sticker:is_animated"), {})
  t.eq(matches("message:forward_origin:user"), { "forwarded_user" })
  t.eq(matches("message:forward_origin:channel"), { "forwarded_channel" })
  t.eq(matches("message:forward_origin:hidden_user"), {})
  t.eq(matches("message:forum_topic_edited:name"), { "topic_edited" })
  t.eq(matches("message:forum_topic_edited:icon_custom_emoji_id"), {})
end)

t.test("L3: reactions", function()
  t.eq(matches("message_reaction:new_reaction:emoji"), { "message_reaction" })
  t.eq(matches("message_reaction:new_reaction:custom_emoji"), {})
  t.eq(matches("message_reaction:old_reaction:emoji"), {})
  t.eq(matches("message_reaction_count:reactions:emoji"), { "message_reaction_count" })
  t.eq(matches("message_reaction_count:reactions:custom_emoji"), { "message_reaction_count" })
  t.eq(matches("message_reaction_count:reactions:paid"), {})
end)

t.test(":me needs the bot's identity", function()
  local pred = filter.compile("message:left_chat_member:me")
  local no_me = { api = bot.api }
  t.eq(pred(Context.new(fx.get("left_me"), no_me)), false, "without getMe")
  t.eq(pred(Context.new(fx.get("left_me"), bot)), true, "with getMe")
end)

t.test("shortcuts: msg and edit", function()
  t.eq(matches("msg"), sorted({ "message", "channel_post", table.unpack(message_variants) }))
  t.eq(matches("edit"), { "edited_channel_post", "edited_message" })
  t.eq(matches("msg:text"), matches(":text"))
  t.eq(matches("edit:text"), { "edited_channel_post", "edited_message" })
  t.eq(matches("msg:entities:url"), { "channel_post", "url" })
end)

t.test("shortcuts: :media and :file", function()
  t.eq(matches("message:media"), { "photo", "video" })
  t.eq(matches(":media"), { "photo", "video" })
  t.eq(matches("edit:media"), {})
  t.eq(matches(":file"), { "animation", "audio", "document", "photo",
                           "sticker", "video", "video_note", "voice" })
  t.eq(matches("message:file"), matches(":file"))
end)

t.test("omitted parts", function()
  -- :text is message or channel post text, not edits
  t.eq(matches(":text"), sorted({ "message", "channel_post", "text", "url",
       "text_link", "command", "forwarded_user", "forwarded_channel" }))
  -- ::url is a url in text or caption of messages and channel posts
  t.eq(matches("::url"), { "channel_post", "url" })
  t.eq(matches("::email"), { "document" })
  t.eq(matches("::hashtag"), { "photo" })
  t.eq(matches("message::bot_command"), { "command" })
  -- an L2 that only messages have: channel posts are left out, no error
  t.eq(matches(":new_chat_members"), { "new_human", "new_members" })
  t.eq(matches(":channel_chat_created"), {})
end)

t.test("lists are OR", function()
  t.eq(matches({ "inline_query", "chosen_inline_result" }),
       { "chosen_inline_result", "inline_query" })
  t.eq(matches({ "message:photo", "message:video", "poll" }), { "photo", "poll", "video" })
  t.eq(matches({ "::url", "::email" }), { "channel_post", "document", "url" })
  t.eq(matches({ "message:text", "message:text" }), matches("message:text"))
end)

t.test("compile reports the update types a query can match", function()
  local _, types = filter.compile("chat_member")
  t.eq(types, { chat_member = true })
  _, types = filter.compile({ ":text", "edit:photo", "callback_query:data" })
  t.eq(types, { message = true, channel_post = true, edited_message = true,
                edited_channel_post = true, callback_query = true })
  _, types = filter.compile(":new_chat_members")
  t.eq(types, { message = true })
end)

t.test("invalid queries raise with a suggestion", function()
  local cases = {
    { "mesage", "'mesage' is not an update type", "did you mean 'message'?" },
    { "mesage:text", "did you mean 'message:text'?" },
    { "callbackQuery:data", "did you mean 'callback_query:data'?" },
    { "editedMessage", "did you mean 'edited_message'?" },
    { "chat_members", "did you mean 'chat_member'?" },
    { "message:txt", "'txt' is not a field of message", "did you mean 'message:text'?" },
    { "message:photos", "did you mean 'message:photo'?" },
    { "message:fotos", "'fotos' is not a field of message", "did you mean 'message:photo'?" },
    { "message:stiker", "did you mean 'message:sticker'?" },
    { "edited_message:vidoe", "did you mean 'edited_message:video'?" },
    { "message:documnet", "did you mean 'message:document'?" },
    { ":txt", "did you mean ':text'?" },
    { "edit:fiel", "did you mean 'edit:file'?" },
    { "message:entities:urll", "did you mean 'message:entities:url'?" },
    { "message:entities:URL", "did you mean 'message:entities:url'?" },
    { "::hashtags", "did you mean '::hashtag'?" },
    { "text", "did you mean ':text'?" },
    { "photo", "did you mean ':photo'?" },
    { "callback_query:dta", "did you mean 'callback_query:data'?" },
    { "message:new_chat_members:bot", "did you mean 'message:new_chat_members:is_bot'?" },
    { "message:", "the L2 part is empty", "did you mean 'message'?" },
    { "message:text:bold", "no further filtering is possible after 'message:text'" },
    { "inline_query:query", "no further filtering is possible after 'inline_query'" },
    { "message:entities:url:x", "at most three parts" },
    { "callback_query:media", "'media' is not a field of callback_query",
      "permitted: 'data', 'game_short_name'" },
    { "zzzzzz", "'zzzzzz' is not an update type; permitted: 'message'" },
    { "", "the query is empty" },
  }
  for _, c in ipairs(cases) do
    t.raises(function() filter.compile(c[1]) end, "invalid filter query '" .. c[1] .. "'",
             table.unpack(c, 2))
  end
  t.raises(function() filter.compile({}) end, "empty list of filter queries")
  t.raises(function() filter.compile(42) end, "must be a string, not number")
  t.raises(function() filter.compile({ "message", false }) end, "must be a string, not boolean")
end)

t.test("an invalid query raises at the script's line, when registered", function()
  local c = tghost.Composer()
  local line = debug.getinfo(1, "l").currentline + 1
  local msg = t.raises(function() c.on("mesage", function() end) end, "did you mean")
  t.truthy(msg:find("filter_queries.lua:" .. line .. ":", 1, true),
           "error position is the call's line " .. line .. ": " .. msg)
  -- with colon syntax too, and from a nested composer
  local child = c:on("message")
  line = debug.getinfo(1, "l").currentline + 1
  msg = t.raises(function() child:on({ ":text", "message:entities:text_lnk" }) end, "did you mean")
  t.truthy(msg:find("filter_queries.lua:" .. line .. ":", 1, true), msg)
  -- tghost.matchFilter, for bot.filter/bot.drop
  t.truthy(tghost.matchFilter(":photo")(ctx_of("photo")), "matchFilter")
  t.raises(function() tghost.matchFilter(":photos") end, "did you mean ':photo'?")
end)

t.test("ctx:has(query)", function()
  local ctx = ctx_of("url")
  t.eq(ctx:has("::url"), true)
  t.eq(ctx:has({ ":photo", "edit" }), false)
  t.raises(function() ctx:has("::urll") end, "did you mean '::url'?")
end)

t.test("matching does no string work", function()
  local queries = { "message", ":text", "::url", "msg:file", "edit:media",
                    "message:new_chat_members:me", "message_reaction_count:reactions:emoji",
                    { "callback_query:data", "inline_query", "chat_member:from:is_bot" } }
  local preds = {}
  for i, q in ipairs(queries) do preds[i] = filter.compile(q) end
  local ctxs = {}
  for i, name in ipairs(all) do ctxs[i] = ctx_of(name) end
  -- Count every string library call while matching.
  local calls, saved = 0, {}
  for k, f in pairs(string) do
    saved[k] = f
    string[k] = function(...) calls = calls + 1 return f(...) end
  end
  local hits = 0
  for _, p in ipairs(preds) do
    for _, ctx in ipairs(ctxs) do
      if p(ctx) then hits = hits + 1 end
    end
  end
  for k, f in pairs(saved) do string[k] = f end
  t.eq(calls, 0, "string library calls while matching")
  t.truthy(hits > 0, "some queries matched")
end)

t.test("matching cost (printed, not asserted)", function()
  local pred = filter.compile({ "::url", "edit:media", "callback_query:data" })
  local ctx = ctx_of("url")
  local n = 200000
  local start = os.clock()
  for _ = 1, n do pred(ctx) end
  local per = (os.clock() - start) / n * 1e9
  print(string.format("filter match: %.0f ns per update (3-query list)", per))
end)

t.done()
