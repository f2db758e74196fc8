-- Storages and sessions, run by tghost as a script (its top level is a
-- task, so SQLite calls and tghost.sleep suspend it like a handler).
-- Value codec round trips and refusals, memory and SQLite stores, custom
-- storages, and session semantics: lazy read, write only on change,
-- delete, write after an error, key functions, ttl.
local t = require("lib.apitest")
local Context = require("tghost.context")
local core = require("tghost.storagecore")

local bot = t.fake_bot()
local tmpdir = os.getenv("TGHOST_TEST_TMPDIR") or "/tmp"
local dbpath = string.format("%s/tghost-storage-test-%d.db", tmpdir,
                             math.random(1, 1 << 40))

local function update(chat_id, text)
  return { update_id = 1, message = { message_id = 1, date = 0, text = text or "hi",
    from = { id = 7, is_bot = false, first_name = "U" },
    chat = chat_id and { id = chat_id, type = "private" } or nil } }
end

local function ctx_for(chat_id) return Context.new(update(chat_id), bot) end

-- A custom storage that records every call; read may yield.
local function recording(sleep)
  local s = { data = {}, log = {} }
  function s:read(key)
    self.log[#self.log + 1] = "read " .. key
    if sleep then tghost.sleep(sleep) end
    return self.data[key]
  end
  function s:write(key, value, ttl)
    self.log[#self.log + 1] = "write " .. key .. (ttl and (" ttl " .. ttl) or "")
    self.data[key] = value
  end
  function s:delete(key)
    self.log[#self.log + 1] = "delete " .. key
    self.data[key] = nil
  end
  return s
end

-- === the codec =============================================================

t.test("values round-trip exactly: integers, floats, strings, nesting", function()
  local v = { id = -1001234567890, big = math.maxinteger, small = math.mininteger,
              f = 0.1, whole = 3.0, neg0 = -0.0, s = "a\0b\255\"\\\n",
              list = { 1, "two", { three = true }, false }, empty = {},
              deep = { a = { b = { c = { d = "e" } } } } }
  local bytes = assert(core.encode(v))
  local back = core.decode(bytes)
  t.eq(back, v)
  t.eq(math.type(back.id), "integer")
  t.eq(math.type(back.whole), "float")
  t.eq(back.big, math.maxinteger)
  t.eq(core.encode(back), bytes, "re-encoding a decoded value")
end)

t.test("maps with integer keys read back with integer keys", function()
  local v = { votes = { [123] = true, [-1001234567890] = "group",
                        [math.maxinteger] = 1 },
              holes = { 1, 2, nil, 4 }, inner = { m = { [7] = { [8] = "x" } } } }
  local bytes = assert(core.encode(v))
  local back = core.decode(bytes)
  t.eq(back, v)
  t.eq(back.votes[123], true)
  t.eq(math.type(next(back.inner.m)), "integer")
  -- Canonical too: numeric order, whatever the insertion order.
  local a, b = {}, {}
  for i = 1, 30 do a[i * 7] = i end
  for i = 30, 1, -1 do b[i * 7] = i end
  t.eq(core.encode(a), core.encode(b))
end)

t.test("encoding is canonical: key order does not depend on history", function()
  local a, b = {}, {}
  for i = 1, 50 do a["k" .. i] = i end
  for i = 50, 1, -1 do b["k" .. i] = i end
  for i = 1, 40 do b["tmp" .. i] = true end
  for i = 1, 40 do b["tmp" .. i] = nil end
  t.eq(core.encode(a), core.encode(b))
end)

t.test("a value storage cannot keep is refused with its path", function()
  local cases = {
    { { items = { 1, 2, { cb = print } } }, "value.items[3].cb is a function" },
    { { co = coroutine.create(print) }, "value.co is a coroutine" },
    { { f = io.stdout }, "value.f is a userdata (FILE*)" },
    { { a = 1, [1] = 2 }, "value mixes string keys and integer keys" },
    { { x = { [1.5] = 1 } }, "value.x has a float key (1.5)" },
    { { [true] = 1 }, "value has a boolean key (true)" },
    { { n = 0 / 0 }, "value.n is NaN" },
    { { n = math.huge }, "value.n is infinite" },
    { { ["odd key"] = { print } }, 'value["odd key"][1] is a function' },
    { { m = tghost.json.null }, "value.m is tghost.json.null" },
    { print, "value is a function" },
  }
  for _, c in ipairs(cases) do
    local bytes, err = core.encode(c[1])
    t.eq(bytes, nil, "bytes for " .. c[2])
    t.truthy(err and err:find(c[2], 1, true), "message " .. tostring(err)
             .. " should contain " .. c[2])
  end
  local cyc = { a = { b = {} } }
  cyc.a.b.back = cyc.a
  local _, err = core.encode(cyc)
  t.eq(err, "value.a.b.back refers back to value.a (a cycle)")
  -- A table used twice without a cycle is fine (stored twice).
  local shared = { 1 }
  t.eq(core.decode(core.encode({ x = shared, y = shared })), { x = { 1 }, y = { 1 } })
  -- Too deep.
  local deep = {}
  local cur = deep
  for _ = 1, 150 do cur.n = {}; cur = cur.n end
  _, err = core.encode(deep)
  t.truthy(err:find("nested more than 100 levels", 1, true), err)
end)

-- === stores ================================================================

t.test("memory storage: get/set/delete, both call styles, ttl, same name same store", function()
  local m = tghost.storage.memory("unit")
  t.eq(m:get("x"), nil)
  m:set("x", { n = 1 })
  t.eq(m.get("x"), { n = 1 })
  t.eq(tghost.storage.memory("unit"):get("x"), { n = 1 })
  t.eq(tghost.storage.memory("other"):get("x"), nil)
  m.set(42, "int key")
  t.eq(m:get("42"), "int key")
  m:set("x", nil)
  t.eq(m:get("x"), nil)
  m:set("short", true, 0.05)
  t.eq(m:get("short"), true)
  tghost.sleep(0.08)
  t.eq(m:get("short"), nil)
  t.raises(function() m:set("bad", { cb = print }) end,
           'memory storage "unit", key "bad": value.cb is a function')
  t.raises(function() m:get({}) end, "the key must be a string or an integer")
  t.raises(function() m:set("k", 1, -1) end, "ttl must be a positive number")
  t.eq(tostring(m), 'memory storage "unit"')
end)

t.test("sqlite storage: get/set/delete, ttl, tables, reopen", function()
  local q = tghost.storage.sqlite(dbpath)
  t.eq(q:get("a"), nil)
  q:set("a", { list = { 1, 2, 3 }, id = 9007199254740993 })
  t.eq(q:get("a"), { list = { 1, 2, 3 }, id = 9007199254740993 })
  local other = tghost.storage.sqlite(dbpath, "sessions")
  t.eq(other:get("a"), nil)
  other:set("a", "in another table")
  t.eq(q:get("a").id, 9007199254740993)
  t.eq(other:get("a"), "in another table")
  q:set("ttl", "soon gone", 0.05)
  t.eq(q:get("ttl"), "soon gone")
  tghost.sleep(0.08)
  t.eq(q:get("ttl"), nil)
  q:delete("a")
  t.eq(q:get("a"), nil)
  t.raises(function() tghost.storage.sqlite(dbpath, "bad name") end,
           "must be letters, digits and _")
  t.raises(function() tghost.storage.sqlite(dbpath, "sqlite_master") end,
           "must be letters, digits and _")
  -- Concurrent writes from several tasks land in order, batched.
  local tasks = {}
  for i = 1, 50 do
    tasks[i] = tghost.spawn(function() q:set("n" .. i, i) end)
  end
  tghost.all(tasks)
  for i = 1, 50 do t.eq(q:get("n" .. i), i) end
end)

t.test("sqlite storage: an unusable path fails each call with SQLite's reason", function()
  local q = tghost.storage.sqlite("/nonexistent-dir/x/y.db")
  t.raises(function() q:get("a") end, 'sqlite storage "/nonexistent-dir/x/y.db"',
           "unable to open database file")
end)

t.test("redis storage: bad URLs are refused at once", function()
  t.raises(function() tghost.storage.redis("http://x") end, "expected a URL redis://")
  t.raises(function() tghost.storage.redis("redis://:secret@host:99999") end, "bad port")
  local ok, err = pcall(tghost.storage.redis, "redis://:secret@host:99999")
  t.eq(ok, false)
  t.truthy(not tostring(err):find("secret"), "the password leaked: " .. tostring(err))
end)

-- === sessions ==============================================================

t.test("session: no storage call for an update that never touches it", function()
  local s = recording()
  local mw = session{ storage = s, initial = function() return { n = 0 } end }
  mw(ctx_for(42), function() end)
  t.eq(s.log, {})
end)

t.test("session: read on first access, written once, only when changed", function()
  local s = recording()
  local mw = session{ storage = s, initial = function() return { n = 0 } end }
  local ctx = ctx_for(42)
  mw(ctx, function()
    t.eq(ctx.session.n, 0)
    ctx.session.n = ctx.session.n + 1
  end)
  t.eq(s.log, { "read 42", "write 42" })
  t.eq(s.data["42"], { n = 1 })
  s.log = {}
  ctx = ctx_for(42)
  mw(ctx, function() t.eq(ctx.session.n, 1) end)   -- read, unchanged
  t.eq(s.log, { "read 42" })
  s.log = {}
  ctx = ctx_for(42)
  mw(ctx, function() ctx.session = nil end)        -- assigned: no read
  t.eq(s.log, { "delete 42" })
  t.eq(s.data["42"], nil)
end)

t.test("session: an assignment without a read writes without reading", function()
  local s = recording()
  local mw = session{ storage = s }
  local ctx = ctx_for(5)
  mw(ctx, function()
    ctx.session = { fresh = true }
    t.eq(ctx.session, { fresh = true })
  end)
  t.eq(s.log, { "write 5" })
end)

t.test("session: a session without initial value starts as nil", function()
  local s = recording()
  local mw = session{ storage = s }
  local ctx = ctx_for(6)
  mw(ctx, function() t.eq(ctx.session, nil) end)
  t.eq(s.log, { "read 6" })
end)

t.test("session: an error downstream still writes, and goes on", function()
  local s = recording()
  local mw = session{ storage = s, initial = function() return { n = 0 } end }
  local ctx = ctx_for(43)
  local ok, err = pcall(mw, ctx, function()
    ctx.session.n = 5
    error("boom")
  end)
  t.eq(ok, false)
  t.truthy(tostring(err):find("boom"), tostring(err))
  t.eq(s.data["43"], { n = 5 })
end)

t.test("session: a value it cannot keep fails the update naming key and path", function()
  local s = recording()
  local mw = session{ storage = s }
  local ctx = ctx_for(42)
  local err = t.raises(function()
    mw(ctx, function() ctx.session = { items = { 1, 2, { cb = print } } } end)
  end, 'session "42": value.items[3].cb is a function')
  t.eq(s.log, {}, "nothing written")
  t.truthy(err)
end)

t.test("session: key functions, prefix, no key", function()
  local s = recording()
  local mw = session{ storage = s, prefix = "user:",
                      getSessionKey = function(ctx) return ctx.from.id end }
  local ctx = ctx_for(42)
  mw(ctx, function() ctx.session = 1 end)
  t.eq(s.log, { "write user:7" })
  -- The default key is the chat id; an update without a chat has none.
  local mw2 = session{ storage = s }
  ctx = ctx_for(nil)
  mw2(ctx, function()
    t.raises(function() return ctx.session end, "this update has no session key")
    t.raises(function() ctx.session = 1 end, "this update has no session key")
  end)
  local bad = session{ storage = s, getSessionKey = function() return {} end }
  t.raises(function() bad(ctx_for(1), function() end) end,
           "getSessionKey returned a table")
  t.raises(function() session{ intial = function() end } end,
           "unknown option intial (did you mean initial?)")
  t.raises(function() session{ storage = {} } end, "a custom storage needs a get method")
  t.raises(function() session{ storage = { read = function() end } } end,
           "a custom storage needs a write method")
end)

t.test("session: a custom storage whose read yields", function()
  local s = recording(0.01)
  local mw = session{ storage = s, initial = function() return { n = 0 } end }
  for _ = 1, 3 do
    local ctx = ctx_for(9)
    mw(ctx, function() ctx.session.n = ctx.session.n + 1 end)
  end
  t.eq(s.data["9"], { n = 3 })
end)

t.test("session: ttl reaches the storage; memory sessions expire", function()
  local s = recording()
  local mw = session{ storage = s, ttl = 60 }
  local ctx = ctx_for(1)
  mw(ctx, function() ctx.session = "x" end)
  t.eq(s.log, { "write 1 ttl 60.0" })
  local mem = tghost.storage.memory("ttl-sessions")
  local mw2 = session{ storage = mem, ttl = 0.05 }
  ctx = ctx_for(2)
  mw2(ctx, function() ctx.session = { v = 1 } end)
  t.eq(mem:get("2"), { v = 1 })
  tghost.sleep(0.08)
  ctx = ctx_for(2)
  mw2(ctx, function() t.eq(ctx.session, nil) end)
end)

t.test("session: SQLite sessions", function()
  local q = tghost.storage.sqlite(dbpath, "sessions")
  local mw = session{ storage = q, initial = function() return { n = 0 } end }
  for _ = 1, 5 do
    local ctx = ctx_for(77)
    mw(ctx, function() ctx.session.n = ctx.session.n + 1 end)
  end
  t.eq(q:get("77"), { n = 5 })
end)

t.test("custom storage: a Lua-written backend keeps strings; sessions use it", function()
  local data = {}
  local kv = {}
  function kv:get(key) return data[key] end
  function kv:set(key, value, ttl) data[key] = value end
  function kv:delete(key) data[key] = nil end
  local mw = session{ storage = kv, initial = function() return { n = 0 } end }
  local ctx = ctx_for(12)
  mw(ctx, function() ctx.session.n = 5 end)
  t.eq(data["12"], '{"n":5}', "the backend got the encoded value")
  local store = tghost.storage.custom(kv, "mine")
  t.eq(store:get("12"), { n = 5 })
  t.eq(tostring(store), 'custom storage "mine"')
  t.raises(function() store:cas("12", { n = 5 }, { n = 6 }) end,
           'custom storage "mine" has no cas method')
  t.raises(function() store:list("") end, 'custom storage "mine" has no list method')
  function kv:get() return { "not a string" } end
  t.raises(function() store:get("12") end,
           'custom storage "mine": get("12") returned a table')
  function kv:get() error("disk on fire") end
  t.raises(function() store:get("12") end,
           'custom storage "mine": get("12") failed: ', "disk on fire")
  t.raises(function() tghost.storage.custom({ get = print }) end,
           "the backend needs a set method")
  t.raises(function() tghost.storage.custom(42) end, "expected a table")
end)

t.test("custom storage: the older read/write/delete form gets and gives copies", function()
  local s = recording()
  local mw = session{ storage = s, initial = function() return { items = {} } end }
  local ctx = ctx_for(3)
  mw(ctx, function() ctx.session.items[1] = "a" end)
  local stored = s.data["3"]
  t.eq(stored, { items = { "a" } })
  -- A refused write leaves what the storage holds as it was.
  ctx = ctx_for(3)
  t.raises(function()
    mw(ctx, function() ctx.session.items[2] = print end)
  end, "value.items[2] is a function")
  t.eq(s.data["3"], { items = { "a" } }, "the stored value was changed in place")
  t.truthy(s.data["3"] == stored, "the stored table was replaced")
  local store = require("tghost.storage").of(s, "test")
  t.raises(function() store:cas("3", nil, 1) end, "has no cas")
end)

t.test("cas and update: argument checks", function()
  local m = tghost.storage.memory("cas-args")
  t.raises(function() m:update("k", 5) end, "fn must be a function")
  t.raises(function() m:cas({}, nil, 1) end, "the key must be a string or an integer")
  t.raises(function() m:list("", { limit = 10001 }) end, "limit must be an integer from 1 to 10000")
  t.raises(function() m:list("", { cursor = 5 }) end, "cursor must be what the previous page returned")
  t.eq(m:cas("k", nil, { 1 }), true)
  t.eq(m:update("k", function(v) v[#v + 1] = 2 return v end), { 1, 2 })
end)

os.remove(dbpath)
os.remove(dbpath .. "-wal")
os.remove(dbpath .. "-shm")
t.done()
