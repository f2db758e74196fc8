-- tghost.http: an HTTP client that suspends only the calling handler.
--   tghost.http.request{ method, url, headers, body, query, timeout, max_body }
--   tghost.http.get(url, opts), tghost.http.post(url, body, opts)
-- return { status, headers, body } or nil, message (see src/luahttp.h).
local core = require("tghost.httpcore")

return {
  request = core.request,
  get = core.get,
  post = core.post,
}
