-- tghost.http: an HTTP client that suspends only the calling handler.
--   tghost.http.request{ method, url, headers, body, query, timeout, max_body }
--   tghost.http.get(url, opts), tghost.http.post(url, body, opts)
-- return { status, headers, body } or nil, message (see src/luahttp.h).
local core = require("tghost.httpcore")

-- Under --check nothing is sent: each call returns nil, message (the
-- documented failure form) after a note at the script's line.
if require("tghost.core").check_mode() then
  local checkstub = require("tghost.checkstub")
  local function not_sent() return checkstub.not_sent("tghost.http.request") end
  return { request = not_sent, get = not_sent, post = not_sent }
end

-- A durable conversation records each response (lua/dialog.lua); a
-- replay takes it from there, without sending.
local effect = require("tghost.dialog").effect
local function target(opts)
  if type(opts) ~= "table" then return nil end
  return tostring(opts.method or "GET") .. " " .. tostring(opts.url)
end

return {
  request = function(opts) return effect("http", target(opts), core.request, opts) end,
  get = function(url, opts)
    return effect("http", "GET " .. tostring(url), core.get, url, opts)
  end,
  post = function(url, body, opts)
    return effect("http", "POST " .. tostring(url), core.post, url, body, opts)
  end,
}
