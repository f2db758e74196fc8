-- tghost.http: an HTTP client that suspends only the calling handler.
--   tghost.http.request{ method, url, headers, body, query, timeout, max_body }
--   tghost.http.get(url, opts), tghost.http.post(url, body, opts)
-- return { status, headers, body } or nil, message (see src/luahttp.h).
local core = require("tghost.httpcore")

local M = {}

M.request = core.request

local function with(opts, fields, what)
  if opts ~= nil and type(opts) ~= "table" then
    error(what .. ": options must be a table", 3)
  end
  local t = {}
  for k, v in pairs(opts or {}) do t[k] = v end
  for k, v in pairs(fields) do t[k] = v end
  return t
end

function M.get(url, opts)
  return core.request(with(opts, { url = url, method = "GET" },
                           "tghost.http.get"))
end

function M.post(url, body, opts)
  return core.request(with(opts, { url = url, method = "POST", body = body },
                           "tghost.http.post"))
end

return M
