-- tghost.http: an HTTP client that suspends only the calling handler.
--   tghost.http.request{ method, url, headers, body, query, timeout, max_body }
--   tghost.http.get(url, opts), tghost.http.post(url, body, opts)
-- return { status, headers, body } or nil, message (see src/luahttp.h).
--   tghost.http.stream{ ... } -> a response whose body is read as it
--     arrives (res:read(), res:chunks(), res:close()), or nil, message
--   tghost.http.sse{ ... } -> for ev in tghost.http.sse{...} do ... end,
--     ev = { event, data, id, retry } (see src/luastream.h)
-- A body may also be a function (called for each piece, nil at the end)
-- or an InputFile (read from disk as it is sent).
local core = require("tghost.httpcore")
local stream = require("tghost.httpstream")
local errors = require("tghost.errors")
local file = require("tghost.file")
errors.internal()

-- Under --check nothing is sent: each call returns nil, message (the
-- documented failure form) after a note at the script's line; an event
-- stream simply has no events.
if require("tghost.core").check_mode() then
  local checkstub = require("tghost.checkstub")
  local function not_sent() return checkstub.not_sent("tghost.http.request") end
  return {
    request = not_sent, get = not_sent, post = not_sent,
    stream = function() return checkstub.not_sent("tghost.http.stream") end,
    sse = function()
      errors.note("--check: tghost.http.sse was not sent (tghost --check makes "
                  .. "no network call); its stream has no events")
      return function() return nil end
    end,
  }
end

local DEFAULT_MAX_BODY = 16 * 1024 * 1024

-- The body function's next piece goes to the upload. Its error, or a
-- piece that is not a string, ends the transfer and is raised.
local function pump(s, gen)
  local ok, piece = pcall(gen)
  if not ok then
    s:fail("the body function failed")
    error(piece, 0)
  end
  if piece ~= nil and type(piece) ~= "string" then
    s:fail("the body function returned " .. type(piece))
    errors.raise("tghost.http: a body function must return strings (nil at "
                 .. "the end), not %s", type(piece))
  end
  s:write(piece)
end

-- Starts the request and waits for the answer's head: s, status, headers
-- or nil, message.
local function open(what, opts, mode)
  if type(opts) ~= "table" then
    errors.raise("%s: expected a table of options, got %s", what, type(opts))
  end
  local gen = type(opts.body) == "function" and opts.body or nil
  local s, err = errors.call(stream.open, opts, mode)
  if not s then return nil, err end
  while true do
    local kind, a, b = s:await("head")
    if kind == "head" then return s, a, b end
    if kind == "body" then
      pump(s, gen)
    elseif kind == "error" then
      s:close()
      return nil, a
    end
  end
end

-- The next chunk of s: chunk, or nil at the end, or nil, message.
local function read(s, gen)
  while true do
    local kind, a = s:await("data")
    if kind == "data" then return a end
    if kind == "end" then return nil end
    if kind == "error" then return nil, a end
    if kind == "body" then pump(s, gen) end
  end
end

local Response = {}
Response.__index = Response
Response.__name = "tghost.http.Response"
Response.__close = function(res) res._s:close() end

local function response(s, status, headers, gen)
  return setmetatable({ status = status, headers = headers, _s = s, _gen = gen },
                      Response)
end

-- res:read() -> the next piece of the body as it arrived, nil at the end,
-- or nil, message when the transfer failed (reset, idle timeout, closed).
function Response:read()
  return read(self._s, self._gen)
end

local function chunk_iterator(res)
  local chunk, err = read(res._s, res._gen)
  if chunk == nil and err then error("tghost.http: " .. err, 2) end
  return chunk
end

-- for chunk in res:chunks() do ... end: the body piece by piece; a failed
-- transfer raises; leaving the loop (break, error) closes the transfer.
function Response:chunks()
  return chunk_iterator, self, nil, self
end

-- Ends the transfer now (the connection is closed); reading after that
-- returns nil, "closed".
function Response:close()
  self._s:close()
end

-- At most max bytes of what is left of the body (for error messages).
local function read_some(s, max)
  local parts, n = {}, 0
  while n < max do
    local chunk = read(s)
    if not chunk then break end
    parts[#parts + 1] = chunk
    n = n + #chunk
  end
  return table.concat(parts):sub(1, max)
end

local M = {}

function M.stream(opts)
  local s, status, headers = open("tghost.http.stream", opts, "raw")
  if not s then return nil, status end
  return response(s, status, headers, type(opts.body) == "function" and opts.body)
end

-- The iterator of an event stream (a closure: events() works alone too).
local function event_iterator(res)
  local s = res._s
  return function()
    while true do
      local kind, a = s:await("event")
      if kind == "event" then return a end
      if kind == "end" then return nil end
      if kind == "error" then error("tghost.http.sse: " .. a, 2) end
      if kind == "body" then pump(s, res._gen) end
    end
  end
end

-- for ev in tghost.http.sse{ url = ..., body = ... } do ... end
-- Returns the iterator and the response (local events, res = ...); a
-- failure to connect, an HTTP status other than 2xx, an answer that is not
-- an event stream or a transfer that fails midway raises.
function M.sse(opts)
  local s, status, headers = open("tghost.http.sse", opts, "sse")
  if not s then errors.raise("tghost.http.sse: %s", status) end
  local ctype = headers["content-type"] or ""
  if status < 200 or status > 299 or not ctype:find("text/event-stream", 1, true) then
    local body = read_some(s, 512)
    s:close()
    if status < 200 or status > 299 then
      errors.raise("tghost.http.sse: HTTP %d%s", status,
                   body ~= "" and (": " .. body) or "")
    end
    errors.raise("tghost.http.sse: the answer is not an event stream "
                 .. "(content-type %s)%s", ctype == "" and "none" or ctype,
                 body ~= "" and (": " .. body) or "")
  end
  local res = response(s, status, headers, type(opts.body) == "function" and opts.body)
  return event_iterator(res), res, nil, res
end

-- request{} with a body that streams (a function or an InputFile): the
-- answer is collected as request's is.
local function request_streamed(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local max_body = o.max_body or DEFAULT_MAX_BODY
  o.max_body = nil
  o.timeout = o.timeout or 30
  local s, status, headers = open("tghost.http.request", o, "raw")
  if not s then return nil, status end
  local parts, n = {}, 0
  while true do
    local chunk, err = read(s, type(o.body) == "function" and o.body)
    if err then
      s:close()
      return nil, err
    end
    if not chunk then break end
    n = n + #chunk
    if n > max_body then
      s:close()
      return nil, string.format("response body larger than max_body (%d bytes)",
                                max_body)
    end
    parts[#parts + 1] = chunk
  end
  s:close()
  return { status = status, headers = headers, body = table.concat(parts) }
end

local function streams_body(opts)
  if type(opts) ~= "table" then return false end
  local b = opts.body
  if type(b) == "function" then return true end
  return file.is_input_file(b)
end

function M.request(opts)
  if streams_body(opts) then return request_streamed(opts) end
  return core.request(opts)
end

M.get = core.get

function M.post(url, body, opts)
  if type(body) == "function" or streams_body({ body = body }) then
    local o = {}
    if opts ~= nil then
      if type(opts) ~= "table" then
        errors.raise("tghost.http.post: options must be a table")
      end
      for k, v in pairs(opts) do o[k] = v end
    end
    o.url, o.method, o.body = url, "POST", body
    return request_streamed(o)
  end
  return core.post(url, body, opts)
end

-- A durable conversation records each response of request, get and post
-- (lua/dialog.lua); a replay takes it from there, without sending. (Not
-- stream and sse, whose bodies arrive in pieces: a replay opens them
-- again.)
local effect = require("tghost.dialog").effect
local request, get, post = M.request, M.get, M.post
function M.request(opts)
  local what = type(opts) == "table"
      and (tostring(opts.method or "GET") .. " " .. tostring(opts.url)) or nil
  return effect("http", what, request, opts)
end
function M.get(url, opts)
  return effect("http", "GET " .. tostring(url), get, url, opts)
end
function M.post(url, body, opts)
  return effect("http", "POST " .. tostring(url), post, url, body, opts)
end

return M
