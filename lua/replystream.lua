-- ctx:replyStream(source, opts): an answer shown while it is produced
-- (a language model's tokens, a program's output), then sent for good.
--
-- source gives pieces of text: a function called until it returns nil (an
-- iterator, coroutine.wrap, ...), or a list. A piece is a string or a
-- formatted value: a table with `text` and `entities` (MessageEntity
-- offsets in UTF-16 code units, relative to the piece), which is what
-- tghost.fmt values carry; entities stay valid at every step because a
-- piece brings its entities whole and a cut clips them.
--
-- While it grows, the answer is shown in one of two ways, at most once per
-- `interval` seconds:
--   - a draft (sendMessageDraft) in private chats: a preview Telegram
--     shows while the message is generated; the final sendMessage
--     replaces it;
--   - elsewhere (or with draft = false, or once Telegram refused a
--     draft), one message sent and then edited (editMessageText), and
--     edited a last time with the final text.
-- Past 4096 UTF-16 code units (Telegram's limit) the text is cut (at a
-- blank line, else a line end, else a space, never inside a UTF-8 sequence
-- or a surrogate pair, and not inside an entity when that can be helped):
-- the part before the cut is sent as a final message and the rest goes on
-- in a new one. A preview or an edit that fails (a 429, a network error)
-- is skipped and never fails the reply; the final messages are sent with
-- the usual retries and their failure raises. If source raises, the text
-- so far is sent as the final message and the error is raised again.
-- Returns the list of final messages.
local errors = require("tghost.errors")
local apicore = require("tghost.api")
local task = require("tghost.task")
local tasks = require("tghost.tasks")
local core = require("tghost.core")
errors.internal()

local M = {}

local LIMIT = 4096
M.LIMIT = LIMIT
local NO_RETRY = { retry = false }
local OWN_OPTIONS = { draft = true, interval = true }

-- Once Telegram refused a draft (a bot without forum topic mode, an older
-- Bot API server), later answers start with edits.
local drafts_refused = false
local draft_counter = (os.time() % 1000000) * 1000

-- --- text measures ---------------------------------------------------

-- UTF-16 code units of UTF-8 text: one per code point, two above U+FFFF.
local function units(s)
  local _, starts = s:gsub("[^\128-\191]", "")
  local _, astral = s:gsub("[\240-\247]", "")
  return starts + astral
end
M.units = units

-- The length in bytes of the longest prefix of s that has at most limit
-- UTF-16 units and ends at a code point boundary.
local function prefix_bytes(s, limit)
  local count, i, n = 0, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len, w = 1, 1
    if b >= 0xF0 then len, w = 4, 2
    elseif b >= 0xE0 then len = 3
    elseif b >= 0xC0 then len = 2 end
    if count + w > limit then break end
    count = count + w
    i = i + len
  end
  return math.min(i - 1, n)
end
M.prefix_bytes = prefix_bytes

-- The end of the last plain occurrence of pat that ends within [from, to].
local function last_end(s, pat, from, to)
  local best
  local i = from
  while true do
    local a, b = s:find(pat, i, true)
    if not a or b > to then break end
    best = b
    i = a + 1
  end
  return best
end

local function copy_entity(e, offset, length)
  local c = {}
  for k, v in pairs(e) do c[k] = v end
  c.offset, c.length = offset, length
  return c
end

-- Cuts text (with entities, UTF-16 offsets) into a head of at most limit
-- units and the rest: head, head_entities, tail, tail_entities. Whitespace
-- around the cut goes (Telegram would drop it and move the entities).
local function cut(text, entities, limit)
  local maxb = prefix_bytes(text, limit)
  local minb = prefix_bytes(text, limit // 2)
  local at = last_end(text, "\n\n", minb, maxb) or last_end(text, "\n", minb, maxb)
      or last_end(text, " ", minb, maxb) or maxb
  -- Not inside an entity that starts in the second half: before it.
  for _ = 1, 8 do
    local at16 = units(text:sub(1, at))
    local moved = false
    for _, e in ipairs(entities) do
      if e.offset < at16 and e.offset + e.length > at16 and e.offset >= limit // 2 then
        at = prefix_bytes(text, e.offset)
        moved = true
        break
      end
    end
    if not moved then break end
  end
  local head = text:sub(1, at)
  local tail = text:sub(at + 1)
  local head_trimmed = head:gsub("%s+$", "")
  local lead = tail:match("^%s*")
  local tail_trimmed = tail:sub(#lead + 1)
  local h16 = units(head_trimmed)
  local t0 = units(head) + units(lead)
  local he, te = {}, {}
  for _, e in ipairs(entities) do
    local e_end = e.offset + e.length
    if e.offset < h16 then
      local len = math.min(e_end, h16) - e.offset
      if len > 0 then he[#he + 1] = copy_entity(e, e.offset, len) end
    end
    if e_end > t0 then
      local start = math.max(e.offset, t0)
      te[#te + 1] = copy_entity(e, start - t0, e_end - start)
    end
  end
  return head_trimmed, he, tail_trimmed, te
end
M.cut = cut

-- text without the whitespace at its ends (Telegram drops it, and with it
-- would move the entities), the entities clipped and moved to match.
local function trimmed(text, entities)
  local lead = text:match("^%s*")
  local body = text:sub(#lead + 1):gsub("%s+$", "")
  if #lead == 0 and #body == #text then return text, entities end
  local shift, n = units(lead), units(body)
  local out = {}
  for _, e in ipairs(entities) do
    local from = math.max(e.offset - shift, 0)
    local to = math.min(e.offset + e.length - shift, n)
    if to > from then out[#out + 1] = copy_entity(e, from, to - from) end
  end
  return body, out
end
M.trimmed = trimmed

-- --- the answer being built -------------------------------------------

local function new_part(text, entities)
  return { pieces = { text }, n = 1, len = units(text), entities = entities or {} }
end

local function part_text(p)
  if p.n > 1 then
    p.pieces = { table.concat(p.pieces, "", 1, p.n) }
    p.n = 1
  end
  return p.pieces[1]
end

-- text, entities of a piece, or raises.
local function piece_of(piece)
  local t = type(piece)
  if t == "string" then return piece, nil end
  if t == "number" then return tostring(piece), nil end
  if (t == "table" or t == "userdata") and type(piece.text) == "string" then
    return piece.text, piece.entities
  end
  errors.raise("ctx:replyStream: the source gave a %s; it must give strings "
               .. "or formatted text (a table with text and entities)", t)
end

local function append(st, piece)
  local text, entities = piece_of(piece)
  local cur = st.cur
  if entities then
    for _, e in ipairs(entities) do
      cur.entities[#cur.entities + 1] = copy_entity(e, e.offset + cur.len, e.length)
    end
  end
  cur.n = cur.n + 1
  cur.pieces[cur.n] = text
  cur.len = cur.len + units(text)
  while cur.len > LIMIT do
    local head, he, tail, te = cut(part_text(cur), cur.entities, LIMIT)
    head, he = trimmed(head, he)
    if head ~= "" then st.ready[#st.ready + 1] = { text = head, entities = he } end
    cur = new_part(tail, te)
    st.cur = cur
  end
  st.dirty = true
end

-- --- sending ------------------------------------------------------------


local function with_entities(p, text, entities)
  p.text = text
  if entities and #entities > 0 then p.entities = entities end
  return p
end

local function call(method, params, opts)
  return apicore.call(method, params, opts)
end

local function note_failure(st, method, err)
  st.failed = st.failed + 1
  if type(err) == "table" and err.error_code == 429 then
    local after = err.parameters and tonumber(err.parameters.retry_after) or 1
    st.next_at = core.now() + after
  end
  if st.failed == 1 then
    core.log("debug", string.format("ctx:replyStream: a %s preview failed "
                                    .. "(skipped): %s", method, tostring(err)))
  end
end

-- Shows the current part as it stands (a draft or an edit).
local function preview(st)
  local cur = st.cur
  local text, entities = trimmed(part_text(cur), cur.entities)
  if text == st.shown or text == "" then return end
  if st.draft then
    st.calls = st.calls + 1
    local ok, err = pcall(call, "sendMessageDraft", with_entities({
      chat_id = st.chat_id, draft_id = st.draft_id,
      message_thread_id = st.thread_id,
    }, text, entities), NO_RETRY)
    if ok then
      st.shown = text
    elseif type(err) == "table" and err.error_code == 400 then
      -- No drafts for this bot (or chat): edits from now on.
      if not drafts_refused then
        core.log("info", "ctx:replyStream: Telegram refused sendMessageDraft ("
                 .. tostring(err.description) .. "); answers are shown by "
                 .. "editing a message instead")
      end
      drafts_refused = true
      st.draft = false
      return preview(st)
    else
      note_failure(st, "sendMessageDraft", err)
    end
    return
  end
  st.calls = st.calls + 1
  if st.message_id then
    local ok, err = pcall(call, "editMessageText", with_entities({
      chat_id = st.chat_id, message_id = st.message_id,
      business_connection_id = st.business_id,
    }, text, entities), NO_RETRY)
    if ok then st.shown = text else note_failure(st, "editMessageText", err) end
  else
    local p = with_entities({ chat_id = st.chat_id }, text, entities)
    for k, v in pairs(st.first) do p[k] = v end
    local ok, m = pcall(call, "sendMessage", p, NO_RETRY)
    if ok then
      st.message_id = m.message_id
      st.shown = text
    else
      note_failure(st, "sendMessage", m)
    end
  end
end

-- Sends a part for good: the edited message's last edit, or a message.
-- Raises when it cannot be sent.
local function finish_part(st, part, last)
  local extra = last and st.final or {}
  local m
  if not st.draft and st.message_id then
    if part.text ~= st.shown or next(extra) then
      local p = with_entities({ chat_id = st.chat_id, message_id = st.message_id,
                                business_connection_id = st.business_id },
                              part.text, part.entities)
      for k, v in pairs(extra) do p[k] = v end
      local ok, err = pcall(call, "editMessageText", p)
      if ok then
        m = err
      elseif not (type(err) == "table" and tostring(err.description):find("not modified")) then
        error(err, 0)
      end
    end
    m = type(m) == "table" and m or { message_id = st.message_id, chat = { id = st.chat_id },
                                     text = part.text }
    st.message_id = nil
  else
    local p = with_entities({ chat_id = st.chat_id }, part.text, part.entities)
    for k, v in pairs(st.first) do p[k] = v end
    for k, v in pairs(extra) do p[k] = v end
    m = call("sendMessage", p)
  end
  st.first = st.later_first
  st.calls = st.calls + 1
  st.messages[#st.messages + 1] = m
  st.shown = nil
  if st.draft then
    draft_counter = draft_counter % 2147483646 + 1
    st.draft_id = draft_counter
  end
end

-- The sender: finished parts as soon as they are cut, previews at most
-- once per interval, until the source has ended.
local function sender(st)
  while true do
    while #st.ready > 0 do
      local part = table.remove(st.ready, 1)
      local ok, err = pcall(finish_part, st, part, false)
      if not ok then
        st.error = err
        return
      end
      st.next_at = core.now() + st.interval
    end
    if st.finished then return end
    if st.dirty then
      local wait = st.next_at - core.now()
      if wait <= 0 then
        st.dirty = false
        preview(st)
        if st.next_at <= core.now() then st.next_at = core.now() + st.interval end
      else
        st.signal:wait(wait)
      end
    else
      st.signal:wait()
    end
  end
end

-- The next piece of source (a function or a list).
local function reader(source)
  local t = type(source)
  if t == "function" then return source end
  local mt = getmetatable(source)
  if t == "table" and mt and mt.__call then
    return function() return source() end
  end
  if t == "table" then
    local i = 0
    return function()
      i = i + 1
      return source[i]
    end
  end
  if t == "string" then
    local done = false
    return function()
      if done then return nil end
      done = true
      return source
    end
  end
  errors.raise("ctx:replyStream: the source must be a function (an iterator) "
               .. "or a list of pieces, not %s", t)
end

-- ctx:replyStream(source, opts) -> messages (see the top of this file).
-- chat: { id, type }, business_id, thread_id: where; opts: the caller's.
function M.reply(chat, business_id, source, opts)
  local next_piece = reader(source)
  opts = opts or {}
  if type(opts) ~= "table" then
    errors.raise("ctx:replyStream: the options must be a table, not %s", type(opts))
  end
  if opts.parse_mode ~= nil then
    errors.raise("ctx:replyStream: parse_mode cannot be kept valid while the "
                 .. "text grows (a cut could fall inside markup); give "
                 .. "formatted pieces (text and entities, tghost.fmt) instead")
  end
  if opts.interval ~= nil and (type(opts.interval) ~= "number" or opts.interval < 0) then
    errors.raise("ctx:replyStream: interval must be a number of seconds >= 0")
  end
  local private = chat.type == "private"
  local draft = opts.draft
  if draft == nil then draft = private and not business_id and not drafts_refused end
  local interval = opts.interval or (draft and 0.5 or (private and 1 or 3))
  -- The first message takes the reply target and the like; the last one
  -- the keyboard (an edit can set only reply_markup and link previews).
  local first, final, later_first = {}, {}, {}
  for k, v in pairs(opts) do
    if not OWN_OPTIONS[k] then
      if k == "reply_markup" or k == "link_preview_options" then
        final[k] = v
      else
        first[k] = v
        if k ~= "reply_parameters" then later_first[k] = v end
      end
    end
  end
  if business_id then
    first.business_connection_id = business_id
    later_first.business_connection_id = business_id
  end
  draft_counter = draft_counter % 2147483646 + 1
  local st = {
    chat_id = chat.id, business_id = business_id, thread_id = opts.message_thread_id,
    draft = draft, draft_id = draft_counter, interval = interval,
    cur = new_part("", nil), ready = {}, messages = {},
    first = first, later_first = later_first, final = final,
    next_at = 0, dirty = false, finished = false, failed = 0, calls = 0,
    signal = task.signal(),
  }
  local send_task = tasks.spawn(sender, st)
  local ok, err = pcall(function()
    while true do
      local piece = next_piece()
      if piece == nil then break end
      append(st, piece)
      st.signal:notify()
    end
  end)
  st.finished = true
  st.signal:notify()
  tasks.wait(send_task)
  if st.error then error(st.error, 0) end
  local text, entities = trimmed(part_text(st.cur), st.cur.entities)
  local last = { text = text, entities = entities }
  if text ~= "" then
    finish_part(st, last, true)
  elseif st.message_id then
    -- Only whitespace came after a cut: the message shown is final as is.
    st.messages[#st.messages + 1] = { message_id = st.message_id }
  end
  if not ok then error(err, 0) end
  return st.messages, st.calls
end

return M
