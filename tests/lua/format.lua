-- tghost.fmt (text + entities, UTF-16 offsets), tghost.html.escape,
-- tghost.markdown.escape, and the checks of what Telegram signs:
-- tghost.webapp.validate and tghost.login.validate against vectors signed
-- with the test token by another implementation (Python's hmac and
-- hashlib), tampered with, expired.
local t = require("lib.apitest")
local fmt = tghost.fmt

local function ents(fs) return fs.entities end

t.test("fmt joins strings and formatted strings", function()
  local s = fmt("Hello, ", fmt.bold("Ada"), "!")
  t.eq(s.text, "Hello, Ada!")
  t.eq(ents(s), { { type = "bold", offset = 7, length = 3 } })
  t.eq(tostring(s), "Hello, Ada!")
  local c = "x " .. fmt.italic("y") .. " z"
  t.eq(c.text, "x y z")
  t.eq(ents(c), { { type = "italic", offset = 2, length = 1 } })
  t.eq(fmt("n=", 5).text, "n=5")
end)

t.test("offsets count UTF-16 code units", function()
  -- 👍 is one code point, two UTF-16 units; é is one unit.
  local s = fmt("👍é ", fmt.code("x"))
  t.eq(ents(s), { { type = "code", offset = 4, length = 1 } })
  local u = fmt.bold("👍👍")
  t.eq(ents(u), { { type = "bold", offset = 0, length = 4 } })
  t.eq(#fmt("a👍"), 3)
end)

t.test("nested entities", function()
  local s = fmt.bold("a ", fmt.italic("b ", fmt.strikethrough("c")))
  t.eq(s.text, "a b c")
  t.eq(ents(s), { { type = "bold", offset = 0, length = 5 },
                  { type = "italic", offset = 2, length = 3 },
                  { type = "strikethrough", offset = 4, length = 1 } })
end)

t.test("every entity builder", function()
  t.eq(ents(fmt.underline("u"))[1].type, "underline")
  t.eq(ents(fmt.spoiler("s"))[1].type, "spoiler")
  t.eq(ents(fmt.blockquote("q"))[1].type, "blockquote")
  t.eq(ents(fmt.expandableBlockquote("q"))[1].type, "expandable_blockquote")
  t.eq(ents(fmt.pre("x = 1", "lua")), { { type = "pre", offset = 0, length = 5, language = "lua" } })
  t.eq(ents(fmt.pre("x")), { { type = "pre", offset = 0, length = 1 } })
  t.eq(ents(fmt.link("docs", "https://core.telegram.org")),
       { { type = "text_link", offset = 0, length = 4, url = "https://core.telegram.org" } })
  t.eq(ents(fmt.mention("Ada", { id = 42, first_name = "Ada" }))[1].user.id, 42)
  t.eq(ents(fmt.mention("Ada", 42))[1].type, "text_mention")
  t.eq(ents(fmt.customEmoji("👍", "5368324170671202286")),
       { { type = "custom_emoji", offset = 0, length = 2, custom_emoji_id = "5368324170671202286" } })
  t.eq(ents(fmt.bold("")), {}, "an empty entity is left out, as Telegram drops it")
  t.raises(function() fmt.link("x") end, "url must be a string")
  t.raises(function() fmt.mention("x", "ada") end, "integer id")
  t.raises(function() fmt("\xff") end, "not valid UTF-8")
end)

t.test("user text is never markup", function()
  local s = fmt("*", fmt.bold("<b>_x_</b>"), " [a](b)")
  t.eq(s.text, "*<b>_x_</b> [a](b)")
  t.eq(#ents(s), 1)
end)

t.test("tghost.html.escape", function()
  t.eq(tghost.html.escape([[<a href="x">Tom & Jerry</a>]]),
       "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&lt;/a&gt;")
  t.eq(tghost.html.escape("plain"), "plain")
end)

t.test("tghost.markdown.escape", function()
  t.eq(tghost.markdown.escape("Hello. World! 1+1=2 (a) [b] {c} #d ~e~ |f| >g _h_ *i* `j` \\k -l"),
       "Hello\\. World\\! 1\\+1\\=2 \\(a\\) \\[b\\] \\{c\\} \\#d \\~e\\~ \\|f\\| \\>g \\_h\\_ \\*i\\* \\`j\\` \\\\k \\-l")
  t.eq(tghost.markdown.escape("a`b\\c.", "code"), "a\\`b\\\\c.")
  t.eq(tghost.markdown.escape("https://x.y/(a)\\", "url"), "https://x.y/(a\\)\\\\")
  t.raises(function() tghost.markdown.escape("x", "pre") end, "where must be")
end)

-- Signed with the test token by Python's hmac (see the report).
local TOKEN = "424242:TEST-secret-token_xyz"
local INIT_DATA = "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A111222333%2C"
  .. "%22first_name%22%3A%22Ada%22%2C%22username%22%3A%22ada%22%7D&auth_date=1733500000"
  .. "&hash=96f48973e1ca4b6ddc2fdf5f63ef51fda4e7c3f0484c710d5c06b5f5de22c384"

t.test("Web App initData signed with the token validates", function()
  local data, why = tghost.webapp.validate(INIT_DATA, { maxAge = false, token = TOKEN })
  t.truthy(data, why)
  t.eq(data.user.id, 111222333)
  t.eq(data.user.first_name, "Ada")
  t.eq(data.auth_date, 1733500000)
  t.eq(data.query_id, "AAHdF6IQAAAAAN0XohDhrOrc")
  t.eq(data.hash, nil)
end)

t.test("tampered, foreign or expired initData does not", function()
  local tampered = INIT_DATA:gsub("Ada", "Eve")
  t.eq({ tghost.webapp.validate(tampered, { maxAge = false, token = TOKEN }) },
       { nil, "bad hash" })
  local later = INIT_DATA:gsub("auth_date=1733500000", "auth_date=1733500001")
  t.eq(select(2, tghost.webapp.validate(later, { maxAge = false, token = TOKEN })), "bad hash")
  t.eq(select(2, tghost.webapp.validate(INIT_DATA, { maxAge = false, token = "1:other" })),
       "bad hash", "signed for another bot")
  local no_hash = INIT_DATA:gsub("&hash=%x+", "")
  t.eq(select(2, tghost.webapp.validate(no_hash, { maxAge = false, token = TOKEN })), "no hash")
  -- Signed in December 2024: long past a day.
  t.eq(select(2, tghost.webapp.validate(INIT_DATA, { token = TOKEN })), "expired")
  t.eq(select(2, tghost.webapp.validate(INIT_DATA, { maxAge = 3600, token = TOKEN })), "expired")
  t.raises(function() tghost.webapp.validate(nil) end, "init_data must be a string")
end)

t.test("Login Widget fields", function()
  local fields = { id = "111222333", first_name = "Ada", username = "ada",
                   auth_date = "1733500000",
                   hash = "bb238c3339d5c1f0d1546f61eff3fd83d7a60fa5eb7347711918cc9320c3c8e3" }
  local user, why = tghost.login.validate(fields, { maxAge = false, token = TOKEN })
  t.truthy(user, why)
  t.eq(user.id, 111222333)
  fields.first_name = "Eve"
  t.eq(select(2, tghost.login.validate(fields, { maxAge = false, token = TOKEN })), "bad hash")
  local qs = "id=111222333&first_name=Ada&username=ada&auth_date=1733500000&hash="
    .. "bb238c3339d5c1f0d1546f61eff3fd83d7a60fa5eb7347711918cc9320c3c8e3"
  t.truthy(tghost.login.validate(qs, { maxAge = false, token = TOKEN }), "a query string")
  t.eq(select(2, tghost.login.validate(qs, { token = TOKEN })), "expired")
end)

t.done()
