-- CLDR plural categories of cardinal numbers: plural.category(locale, n)
-- -> "zero" | "one" | "two" | "few" | "many" | "other".
--
-- The rules are CLDR's (supplemental/plurals.json, version 48), written
-- out by hand for the languages Telegram's users speak most and their
-- neighbours; a language without a rule here gets "other" for every
-- number, which is right for Chinese, Japanese, Korean, Vietnamese,
-- Indonesian, Malay and Thai, and a safe fallback elsewhere.
-- tests/lua/i18n.lua checks every rule against CLDR's own sample numbers
-- (tests/lua/fixtures/plural_samples.lua).
--
-- CLDR's operands, from the number as written: n its absolute value, i
-- the integer digits, v the count of visible fraction digits, f those
-- digits as an integer, t the same without trailing zeros. A Lua integer,
-- or a float with an integral value, has v = 0 ("1"); pass a string
-- ("1.0", "1.50") to keep visible fraction digits, which change the
-- category in some languages (English "1 item" but "1.0 items"). The
-- compact exponent (e) is always 0 here.
local M = {}

-- The operands of n (a number or a numeric string).
local function operands(n)
  local s
  if type(n) == "string" then
    s = n:gsub("^%s+", ""):gsub("%s+$", "")
    if not s:match("^[-+]?%d+%.?%d*$") then return nil end
  else
    if n ~= n or n == math.huge or n == -math.huge then return nil end
    local int = math.tointeger(n)
    if int then
      s = tostring(int)
    else
      s = string.format("%.15g", n)
      if s:find("e", 1, true) then s = string.format("%.15f", n) end
      s = s:gsub("(%..-)0+$", "%1")
    end
  end
  s = s:gsub("^[-+]", "")
  local ip, fp = s:match("^(%d*)%.?(%d*)$")
  if ip == "" then ip = "0" end
  local i = tonumber(ip)
  local v = #fp
  local f = v > 0 and tonumber(fp) or 0
  local tdig = fp:gsub("0+$", "")
  local t = #tdig > 0 and tonumber(tdig) or 0
  local nv = tonumber(ip .. (v > 0 and ("." .. fp) or ""))
  return nv, i, v, f, t
end
M.operands = operands

-- x in a..b (for integers: any value in the range; CLDR's ranges on n
-- match only integral values).
local function within(x, a, b) return x == math.floor(x) and x >= a and x <= b end

-- The rule families. Each takes the operands and returns a category.
local R = {}

function R.other() return "other" end

-- one: i = 1 and v = 0 (English, German, Dutch, Swedish, ...)
function R.one_i1v0(_, i, v)
  if i == 1 and v == 0 then return "one" end
  return "other"
end

-- one: n = 1 (Turkish, Uzbek, Kazakh, Azerbaijani, Greek, Hungarian, ...)
function R.one_n1(n)
  if n == 1 then return "one" end
  return "other"
end

-- one: i = 0 or n = 1 (Persian, Hindi, Bengali, ...)
function R.one_i0_n1(n, i)
  if i == 0 or n == 1 then return "one" end
  return "other"
end

-- many: e = 0 and i != 0 and i % 1000000 = 0 and v = 0 (millions, in the
-- Romance languages)
local function million(i, v) return i ~= 0 and i % 1000000 == 0 and v == 0 end

-- Spanish: one: n = 1
function R.es(n, i, v)
  if n == 1 then return "one" end
  if million(i, v) then return "many" end
  return "other"
end

-- French: one: i = 0,1
function R.fr(_, i, v)
  if i == 0 or i == 1 then return "one" end
  if million(i, v) then return "many" end
  return "other"
end

-- Portuguese (Brazil, and "pt"): one: i = 0..1
R.pt = R.fr

-- Italian, Catalan, European Portuguese: one: i = 1 and v = 0
function R.it(_, i, v)
  if i == 1 and v == 0 then return "one" end
  if million(i, v) then return "many" end
  return "other"
end

-- Russian, Ukrainian
function R.ru(_, i, v)
  if v ~= 0 then return "other" end
  local m10, m100 = i % 10, i % 100
  if m10 == 1 and m100 ~= 11 then return "one" end
  if m10 >= 2 and m10 <= 4 and not (m100 >= 12 and m100 <= 14) then return "few" end
  return "many"
end

-- Belarusian: the same on n, so 1.0 is "one" and 1.5 "other"
function R.be(n)
  if n ~= math.floor(n) then return "other" end
  local m10, m100 = n % 10, n % 100
  if m10 == 1 and m100 ~= 11 then return "one" end
  if within(m10, 2, 4) and not within(m100, 12, 14) then return "few" end
  return "many"
end

-- Polish
function R.pl(_, i, v)
  if v ~= 0 then return "other" end
  if i == 1 then return "one" end
  local m10, m100 = i % 10, i % 100
  if m10 >= 2 and m10 <= 4 and not (m100 >= 12 and m100 <= 14) then return "few" end
  return "many"
end

-- Czech, Slovak
function R.cs(_, i, v)
  if v ~= 0 then return "many" end
  if i == 1 then return "one" end
  if i >= 2 and i <= 4 then return "few" end
  return "other"
end

-- Romanian
function R.ro(n, i, v)
  if i == 1 and v == 0 then return "one" end
  if v ~= 0 or n == 0 or (n ~= 1 and within(n % 100, 1, 19)) then return "few" end
  return "other"
end

-- Serbian, Croatian, Bosnian
function R.sr(_, i, v, f)
  local im10, im100, fm10, fm100 = i % 10, i % 100, f % 10, f % 100
  if (v == 0 and im10 == 1 and im100 ~= 11) or (fm10 == 1 and fm100 ~= 11) then
    return "one"
  end
  if (v == 0 and im10 >= 2 and im10 <= 4 and not (im100 >= 12 and im100 <= 14))
     or (fm10 >= 2 and fm10 <= 4 and not (fm100 >= 12 and fm100 <= 14)) then
    return "few"
  end
  return "other"
end

-- Arabic
function R.ar(n)
  if n == 0 then return "zero" end
  if n == 1 then return "one" end
  if n == 2 then return "two" end
  local m100 = n % 100
  if within(m100, 3, 10) then return "few" end
  if within(m100, 11, 99) then return "many" end
  return "other"
end

-- Hebrew
function R.he(_, i, v)
  if (i == 1 and v == 0) or (i == 0 and v ~= 0) then return "one" end
  if i == 2 and v == 0 then return "two" end
  return "other"
end

-- Lithuanian
function R.lt(n, _, _, f)
  local m10, m100 = n % 10, n % 100
  if f ~= 0 then return "many" end
  if m10 == 1 and not within(m100, 11, 19) then return "one" end
  if within(m10, 2, 9) and not within(m100, 11, 19) then return "few" end
  return "other"
end

-- Latvian
function R.lv(n, _, v, f)
  local fm10, fm100 = f % 10, f % 100
  if n % 10 == 0 or within(n % 100, 11, 19) or (v == 2 and within(fm100, 11, 19)) then
    return "zero"
  end
  if (n % 10 == 1 and n % 100 ~= 11) or (v == 2 and fm10 == 1 and fm100 ~= 11)
     or (v ~= 2 and fm10 == 1) then
    return "one"
  end
  return "other"
end

-- Language -> rule family. Regional variants with a rule of their own are
-- listed by their full tag (lower case).
local RULES = {
  -- no plural forms
  zh = R.other, ja = R.other, ko = R.other, vi = R.other, id = R.other,
  ms = R.other, th = R.other, lo = R.other, my = R.other, km = R.other,
  jv = R.other, yue = R.other,
  -- i = 1 and v = 0
  en = R.one_i1v0, de = R.one_i1v0, nl = R.one_i1v0, sv = R.one_i1v0,
  fi = R.one_i1v0, et = R.one_i1v0, ur = R.one_i1v0, gl = R.one_i1v0,
  -- n = 1
  tr = R.one_n1, uz = R.one_n1, kk = R.one_n1, az = R.one_n1, el = R.one_n1,
  hu = R.one_n1, bg = R.one_n1, ky = R.one_n1, ka = R.one_n1, mn = R.one_n1,
  tk = R.one_n1, ta = R.one_n1, te = R.one_n1, nb = R.one_n1, no = R.one_n1,
  sq = R.one_n1, ug = R.one_n1,
  -- i = 0 or n = 1
  fa = R.one_i0_n1, hi = R.one_i0_n1, bn = R.one_i0_n1, gu = R.one_i0_n1,
  kn = R.one_i0_n1, am = R.one_i0_n1, zu = R.one_i0_n1,
  es = R.es, fr = R.fr, pt = R.pt, it = R.it, ca = R.it, ["pt-pt"] = R.it,
  ru = R.ru, uk = R.ru, be = R.be, pl = R.pl, cs = R.cs, sk = R.cs,
  ro = R.ro, sr = R.sr, hr = R.sr, bs = R.sr, ar = R.ar, he = R.he,
  lt = R.lt, lv = R.lv,
}

-- A locale tag in the form used for lookups: lower case, "-" between parts
-- ("pt_BR" -> "pt-br").
function M.normalize(locale)
  return (tostring(locale):lower():gsub("_", "-"))
end

-- The rule for locale: its full tag, else its language.
local function rule_of(locale)
  local tag = M.normalize(locale)
  return RULES[tag] or RULES[tag:match("^[^-]+")] or R.other
end

-- Whether tghost has a rule of its own for the locale's language.
function M.known(locale)
  local tag = M.normalize(locale)
  return RULES[tag] ~= nil or RULES[tag:match("^[^-]+")] ~= nil
end

-- The category of n in locale, or nil if n is not a number.
function M.category(locale, n)
  local nv, i, v, f, t = operands(n)
  if nv == nil then return nil end
  return rule_of(locale)(nv, i, v, f, t)
end

return M
