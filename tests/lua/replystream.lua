-- ctx:replyStream's text cutting (lua/replystream.lua): where a long
-- answer is cut, and that every part stays valid (a UTF-8 sequence, a
-- UTF-16 surrogate pair and an entity are never broken, entities are
-- clipped and moved with their text).
local t = require("lib.apitest")
local rs = require("tghost.replystream")

local LIMIT = rs.LIMIT

t.test("UTF-16 length as Telegram counts it", function()
  t.eq(rs.units(""), 0)
  t.eq(rs.units("abc"), 3)
  t.eq(rs.units("é"), 1)            -- 2 bytes, 1 unit
  t.eq(rs.units("€"), 1)            -- 3 bytes, 1 unit
  t.eq(rs.units("😀"), 2)           -- 4 bytes, a surrogate pair
  t.eq(rs.units("a😀é"), 4)
end)

t.test("prefixes end at code point boundaries", function()
  local s = "ab😀cd"
  t.eq(rs.prefix_bytes(s, 2), 2)
  t.eq(rs.prefix_bytes(s, 3), 2, "half a surrogate pair is not taken")
  t.eq(rs.prefix_bytes(s, 4), 6)
  t.eq(rs.prefix_bytes("éé", 1), 2)
end)

local function valid_utf8(s) return utf8.len(s) ~= nil end

t.test("a cut prefers a blank line, then a line end, then a space", function()
  local para = string.rep("word ", 500)                     -- 2500 units
  local text = para .. "\n\n" .. para .. "\n" .. para
  local head, _, tail = rs.cut(text, {}, LIMIT)
  t.eq(head, (para:gsub(" $", "")), "cut at the blank line")
  t.eq(tail, para .. "\n" .. para)
  local lines = string.rep("x", 3000) .. "\n" .. string.rep("y", 3000)
  head, _, tail = rs.cut(lines, {}, LIMIT)
  t.eq(#head, 3000, "cut at the line end")
  t.eq(tail, string.rep("y", 3000))
  local words = string.rep("abcdefghi ", 600)
  head, _, tail = rs.cut(words, {}, LIMIT)
  t.truthy(rs.units(head) <= LIMIT and head:sub(-1) == "i", "cut at a space")
  t.eq(head .. " " .. tail, (words:gsub(" $", "")))
end)

t.test("no break: a hard cut that never splits a character", function()
  for _, ch in ipairs({ "x", "é", "€", "😀" }) do
    local text = string.rep(ch, 5000)
    local head, _, tail = rs.cut(text, {}, LIMIT)
    t.truthy(valid_utf8(head) and valid_utf8(tail), "valid UTF-8 for " .. ch)
    t.truthy(rs.units(head) <= LIMIT, "within the limit for " .. ch)
    t.truthy(rs.units(head) >= LIMIT - 1, "as much as fits for " .. ch)
    t.eq(head .. tail, text, "nothing lost for " .. ch)
  end
end)

t.test("entities are clipped and moved with their text", function()
  local text = string.rep("a", 3000) .. "\n" .. string.rep("b", 3000)
  local entities = {
    { type = "bold", offset = 0, length = 10 },              -- in the head
    { type = "italic", offset = 2990, length = 1011 },       -- across the cut
    { type = "code", offset = 3005, length = 5 },            -- in the tail
  }
  local head, he, tail, te = rs.cut(text, entities, LIMIT)
  t.eq(#head, 3000)
  t.eq(he, { { type = "bold", offset = 0, length = 10 },
             { type = "italic", offset = 2990, length = 10 } })
  t.eq(te, { { type = "italic", offset = 0, length = 1000 },
             { type = "code", offset = 4, length = 5 } })
  t.eq(#tail, 3000)
end)

t.test("a cut moves before an entity that starts in the second half", function()
  local text = string.rep("a", 3000) .. string.rep("b", 2000)
  local link = { type = "text_link", offset = 3000, length = 2000, url = "https://x" }
  local head, he, tail, te = rs.cut(text, { link }, LIMIT)
  t.eq(head, string.rep("a", 3000), "the link is kept whole")
  t.eq(#he, 0)
  t.eq(te, { { type = "text_link", offset = 0, length = 2000, url = "https://x" } })
  t.eq(tail, string.rep("b", 2000))
end)

t.test("entities count UTF-16 units across the cut", function()
  local text = string.rep("😀", 2500)                       -- 5000 units
  local e = { type = "bold", offset = 4000, length = 1000 }
  local head, he, tail, te = rs.cut(text, { e }, LIMIT)
  t.eq(rs.units(head), 4000, "before the bold part")
  t.eq(#he, 0)
  t.eq(te, { { type = "bold", offset = 0, length = 1000 } })
  t.eq(rs.units(tail), 1000)
end)
