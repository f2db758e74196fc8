-- Checking what Telegram signed: a Web App's initData
-- (tghost.webapp.validate) and the Login Widget's fields
-- (tghost.login.validate), as core.telegram.org/bots/webapps and
-- core.telegram.org/widgets/login describe. HMAC-SHA256 from libcrypto,
-- the signatures compared in constant time (src/script/luacrypto.c).
--
-- Both return the fields (user decoded from its JSON, auth_date a
-- number) or nil and why not: "no hash", "bad hash" (forged or tampered
-- with, or signed for another bot), "expired" (auth_date older than
-- max_age seconds: 86400 unless given; false checks no age).
local core = require("tghost.core")
local crypto = require("tghost.crypto")
local json = require("tghost.json")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local DEFAULT_MAX_AGE = 86400

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function options(what, opts)
  local max_age, token = DEFAULT_MAX_AGE, nil
  if type(opts) == "number" or opts == false then
    max_age = opts
  elseif type(opts) == "table" then
    if opts.maxAge ~= nil then max_age = opts.maxAge end
    token = opts.token
  elseif opts ~= nil then
    errors.raise("%s: the second argument is max_age (seconds, or false) or "
                 .. "{ maxAge =, token = }, not %s", what, type(opts))
  end
  token = token or core.token()
  if type(token) ~= "string" or token == "" then
    errors.raise("%s: no bot token to check against (BOT_TOKEN, or opts.token)",
                 what)
  end
  return max_age, token
end

-- fields (name -> value) signed with secret: the data-check-string is every
-- field but hash, "name=value", sorted by name, joined by newlines.
local function check(fields, secret, max_age)
  local hash = fields.hash
  if type(hash) ~= "string" or hash == "" then return nil, "no hash" end
  local names = {}
  for k in pairs(fields) do
    if k ~= "hash" then names[#names + 1] = k end
  end
  table.sort(names)
  local lines = {}
  for i, k in ipairs(names) do lines[i] = k .. "=" .. tostring(fields[k]) end
  local want = hex(crypto.hmac_sha256(secret, table.concat(lines, "\n")))
  if not crypto.equal(want, hash:lower()) then return nil, "bad hash" end
  local auth_date = tonumber(fields.auth_date)
  if max_age and (not auth_date or os.time() - auth_date > max_age) then
    return nil, "expired"
  end
  local out = {}
  for k, v in pairs(fields) do
    if k ~= "hash" then out[k] = v end
  end
  out.auth_date = auth_date
  return out
end

-- tghost.webapp.validate(init_data[, max_age | { maxAge =, token = }])
function M.webapp_validate(init_data, opts)
  if type(init_data) ~= "string" then
    errors.raise("tghost.webapp.validate: init_data must be a string "
                 .. "(Telegram.WebApp.initData), not %s", type(init_data))
  end
  local max_age, token = options("tghost.webapp.validate", opts)
  local fields = {}
  for pair in init_data:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if k then fields[url_decode(k)] = url_decode(v) end
  end
  local out, why = check(fields, crypto.hmac_sha256("WebAppData", token), max_age)
  if not out then return nil, why end
  for _, k in ipairs({ "user", "receiver", "chat" }) do
    if type(out[k]) == "string" then
      local ok, v = pcall(json.decode, out[k])
      if ok then out[k] = v end
    end
  end
  return out
end

-- tghost.login.validate(fields[, max_age | { maxAge =, token = }]):
-- fields as the widget gives them (a table, or a query string).
function M.login_validate(data, opts)
  local max_age, token = options("tghost.login.validate", opts)
  local fields = {}
  if type(data) == "string" then
    for pair in data:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=(.*)$")
      if k then fields[url_decode(k)] = url_decode(v) end
    end
  elseif type(data) == "table" then
    for k, v in pairs(data) do fields[k] = v end
  else
    errors.raise("tghost.login.validate: expected the widget's fields (a table "
                 .. "or a query string), not %s", type(data))
  end
  local out, why = check(fields, crypto.sha256(token), max_age)
  if out and out.id ~= nil then out.id = math.tointeger(tonumber(out.id)) or out.id end
  return out, why
end

return M
