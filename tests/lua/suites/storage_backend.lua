-- The storage conformance suite: what every storage backend must do, run
-- by tghost against one backend at a time (tests/e2e/storage.c runs it
-- once per backend: storage.conformance_memory, _sqlite, _redis, _lua).
--
--   TGHOST_STORE_KIND    memory | sqlite | redis | lua
--   TGHOST_STORE_TARGET  the SQLite file, the Redis URL
--   TGHOST_SUITE_ACKS    a folder: when the suite needs the test to act
--                        (stop Redis, start it again), it writes
--                        "SUITE-ASK <what>" to stderr and waits for the
--                        file <folder>/<what>.done
--
-- Two stores A and B share the backend and differ only in their
-- namespace (Redis prefixes conf:a: and conf:b:, SQLite tables conf_a and
-- conf_b, memory names, Lua prefixes in one table). At the end A and B
-- hold exactly the data the test then reads from the backend itself
-- (redis-server's keys, the SQLite file): see "leaves known data".
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/../?.lua;" .. package.path
local t = require("lib.apitest")

local kind = os.getenv("TGHOST_STORE_KIND") or "memory"
local target = os.getenv("TGHOST_STORE_TARGET")
local acks = os.getenv("TGHOST_SUITE_ACKS")
local null = tghost.json.null

-- Asks the test to act, and waits until it says it has.
local function ask(what)
  io.stderr:write("SUITE-ASK " .. what .. "\n")
  io.stderr:flush()
  local deadline = tghost.now() + 60
  while tghost.now() < deadline do
    local f = io.open(acks .. "/" .. what .. ".done")
    if f then f:close() return end
    tghost.sleep(0.02)
  end
  error("the test did not answer SUITE-ASK " .. what)
end

-- A Lua-written backend, as a bot author would write one: strings in a
-- table, under a prefix, expiring by tghost.now(), each call yielding
-- once (as one that talks to a server would) except cas, which must not
-- yield between its read and its write. raw is the table, for the checks
-- "in the backend itself"; down makes every call fail.
local raw, lua_down = {}, false
local function lua_backend(prefix)
  local b = {}
  local function entry(key)
    local e = raw[prefix .. key]
    if e and e.expires and e.expires <= tghost.now() then
      raw[prefix .. key] = nil
      return nil
    end
    return e
  end
  local function io_wait()
    tghost.sleep(0)
    if lua_down then error("the backend is down", 0) end
  end
  function b:get(key)
    io_wait()
    local e = entry(key)
    return e and e.value
  end
  function b:set(key, value, ttl)
    io_wait()
    raw[prefix .. key] = { value = value, expires = ttl and tghost.now() + ttl }
  end
  function b:delete(key)
    io_wait()
    raw[prefix .. key] = nil
  end
  function b:list(p, limit, cursor)
    io_wait()
    local keys = {}
    for k in pairs(raw) do
      local key = k:sub(#prefix + 1)
      if k:sub(1, #prefix) == prefix and key:sub(1, #p) == p and entry(key)
         and (cursor == nil or key > cursor) then
        keys[#keys + 1] = key
      end
    end
    table.sort(keys)
    local page = table.move(keys, 1, math.min(limit, #keys), 1, {})
    return page, #keys > limit and page[#page] or nil
  end
  function b:cas(key, expected, value, ttl)
    io_wait()
    local e = entry(key)
    if (e and e.value) ~= expected then return false, e and e.value end
    raw[prefix .. key] = value and { value = value,
                                     expires = ttl and tghost.now() + ttl }
    return true
  end
  return b
end

local A, B
if kind == "memory" then
  local id = tostring(math.random(1, 1 << 40))
  A = tghost.storage.memory("conf-a-" .. id)
  B = tghost.storage.memory("conf-b-" .. id)
elseif kind == "sqlite" then
  A = tghost.storage.sqlite(target, "conf_a")
  B = tghost.storage.sqlite(target, "conf_b")
elseif kind == "redis" then
  A = tghost.storage.redis(target, "conf:a:")
  B = tghost.storage.redis(target, "conf:b:")
elseif kind == "lua" then
  A = tghost.storage.custom(lua_backend("a:"), "conf a")
  B = tghost.storage.custom(lua_backend("b:"), "conf b")
else
  error("TGHOST_STORE_KIND: unknown backend " .. kind)
end
print("backend " .. kind .. ": " .. tostring(A) .. ", " .. tostring(B))

-- Every key of a store with the prefix, page by page: the keys as a set,
-- and the list in the order they came.
local function list_all(store, prefix, limit)
  local set, order, cursor, pages = {}, {}, nil, 0
  repeat
    local keys
    keys, cursor = store:list(prefix, { limit = limit, cursor = cursor })
    t.truthy(#keys <= limit, "a page of " .. #keys .. " keys, limit " .. limit)
    for _, k in ipairs(keys) do
      set[k] = true
      order[#order + 1] = k
    end
    pages = pages + 1
    t.truthy(pages < 10000, "the listing does not end")
  until cursor == nil
  return set, order
end

local function clear(store)
  for k in pairs((list_all(store, "", 1000))) do store:delete(k) end
end

clear(A)
clear(B)

-- === values ================================================================

t.test("every value shape reads back equal, with its number types", function()
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local cases = {
    nuls = "a\0b\0\0c",
    all_bytes = table.concat(bytes),
    empty_string = "",
    long = string.rep("0123456789abcdef", 16384),   -- 256 KiB
    past_2_53 = 9007199254740993,
    max_int = math.maxinteger,
    min_int = math.mininteger,
    negative = -1001234567890,
    float = 0.1,
    whole_float = 3.0,
    tiny = 5e-324,
    huge = 1.7976931348623157e308,
    yes = true,
    no = false,
    empty_table = {},
    nested = { a = { b = { c = { d = { e = "deep" } } } }, list = { 1, { 2, { 3 } } } },
    int_map = { [1] = "one", [3] = "three", [-7] = "minus seven",
                [9007199254740993] = "big" },
    list_with_null = { 1, null, 3 },
    mixed_list = { "x", 2, 2.5, false, { y = "z" } },
  }
  for name, v in pairs(cases) do
    A:set(name, v)
    local back = A:get(name)
    t.eq(back, v, name)
    if math.type(v) then t.eq(math.type(back), math.type(v), name .. " number type") end
  end
  local m = A:get("int_map")
  for k in pairs(m) do t.eq(math.type(k), "integer", "an integer-keyed map's key") end
  t.eq(m[9007199254740993], "big")
  t.eq(m[-7], "minus seven")
  A:set("neg_zero", -0.0)
  t.eq(1 / A:get("neg_zero"), -math.huge, "-0.0 keeps its sign")
  for name in pairs(cases) do A:delete(name) end
  A:delete("neg_zero")
end)

t.test("a value storage cannot keep is refused and the stored one stays", function()
  A:set("kept", { n = 1 })
  t.raises(function() A:set("kept", { n = 2, f = print }) end, "value.f is a function")
  t.raises(function() A:cas("kept", { n = 1 }, { cb = print }) end, "value.cb is a function")
  t.eq(A:get("kept"), { n = 1 })
  -- A read hands out a copy: changing it changes nothing stored.
  local v = A:get("kept")
  v.n = 99
  t.eq(A:get("kept"), { n = 1 })
  A:delete("kept")
end)

-- === keys ==================================================================

t.test("integer keys are their decimal strings", function()
  A:set(42, "int")
  t.eq(A:get("42"), "int")
  t.eq(A:get(42), "int")
  A:set(-1001234567890, "group")
  t.eq(A:get("-1001234567890"), "group")
  A:set(9007199254740993, "past 2^53")
  t.eq(A:get("9007199254740993"), "past 2^53")
  local set = list_all(A, "", 10)
  t.truthy(set["42"] and set["-1001234567890"] and set["9007199254740993"],
           "integer keys listed as strings")
  A:delete(42)
  t.eq(A:get("42"), nil)
  A:delete(-1001234567890)
  A:delete(9007199254740993)
end)

t.test("keys are bytes: NULs, glob characters, spaces, UTF-8", function()
  local keys = { "nul\0key", "star*", "q?", "[br]", "back\\slash", "sp ace",
                 "ключ", "a:b:c", "" }
  for i, k in ipairs(keys) do A:set(k, i) end
  for i, k in ipairs(keys) do t.eq(A:get(k), i, ("key %q"):format(k)) end
  local set = list_all(A, "", 3)
  for _, k in ipairs(keys) do t.truthy(set[k], ("key %q listed"):format(k)) end
  -- Glob characters in a prefix are literal.
  A:set("aXb", true)
  t.eq(list_all(A, "a*", 10), {}, "prefix a* matches no key starting aX")
  t.eq(list_all(A, "star*", 10), { ["star*"] = true })
  t.eq(list_all(A, "[br", 10), { ["[br]"] = true })
  for _, k in ipairs(keys) do A:delete(k) end
  A:delete("aXb")
end)

t.test("two namespaces never see each other's keys", function()
  A:set("same", "in A")
  B:set("same", "in B")
  A:set("only_in_a", 1)
  t.eq(A:get("same"), "in A")
  t.eq(B:get("same"), "in B")
  t.eq(B:get("only_in_a"), nil)
  t.eq(list_all(A, "", 10), { same = true, only_in_a = true })
  t.eq(list_all(B, "", 10), { same = true })
  B:delete("same")
  t.eq(A:get("same"), "in A")
  t.eq(B:cas("only_in_a", nil, "b's own"), true, "absent in B whatever A holds")
  t.eq(A:get("only_in_a"), 1)
  A:delete("same")
  A:delete("only_in_a")
  B:delete("only_in_a")
end)

-- === expiry ================================================================

t.test("a ttl expires the key; a write without one keeps it", function()
  A:set("short", "soon gone", 0.15)
  A:set("renewed", "first", 0.15)
  A:set("renewed", "second")                   -- no ttl: forever again
  A:set("cas_ttl", "x")
  t.eq(A:cas("cas_ttl", "x", "y", 0.15), true)
  t.eq(A:get("short"), "soon gone")
  t.eq(list_all(A, "", 10), { short = true, renewed = true, cas_ttl = true })
  tghost.sleep(0.4)
  t.eq(A:get("short"), nil, "expired")
  t.eq(A:get("cas_ttl"), nil, "expired (ttl given to cas)")
  t.eq(A:get("renewed"), "second", "a later write without a ttl keeps it")
  t.eq(list_all(A, "", 10), { renewed = true }, "expired keys are not listed")
  t.eq(A:cas("short", nil, "back"), true, "an expired key counts as absent")
  t.eq(A:get("short"), "back")
  A:delete("short")
  A:delete("renewed")
end)

-- === listing ===============================================================

t.test("list pages through every key with a prefix, and only those", function()
  local want = {}
  for i = 0, 249 do
    local k = string.format("item:%03d", i)
    want[k] = true
    A:set(k, i)
  end
  A:set("items", "not under item:")
  A:set("item", "not under item: either")
  A:set("other:1", true)
  B:set("item:999", "B's")
  local set, order = list_all(A, "item:", 7)
  t.eq(set, want)
  if kind == "redis" then
    -- SCAN's order, possibly a key twice.
    t.truthy(#order >= 250, #order .. " keys listed")
  else
    t.eq(#order, 250, "each key once")
    for i = 2, #order do
      t.truthy(order[i - 1] < order[i], "byte order: " .. order[i - 1] .. " then " .. order[i])
    end
  end
  local n = 0
  for k in A:keys("item:") do
    t.truthy(want[k], "keys() gave " .. k)
    n = n + 1
  end
  t.eq(n, 250, "keys() gives each key once")
  t.eq(list_all(A, "item:24", 100),
       { ["item:240"] = true, ["item:241"] = true, ["item:242"] = true,
         ["item:243"] = true, ["item:244"] = true, ["item:245"] = true,
         ["item:246"] = true, ["item:247"] = true, ["item:248"] = true,
         ["item:249"] = true })
  local keys, cursor = A:list("nothing-here:", { limit = 5 })
  t.eq(keys, {})
  t.eq(cursor, nil)
  t.raises(function() A:list("", { limit = 0 }) end, "limit must be an integer from 1 to 10000")
  for k in pairs(want) do A:delete(k) end
  A:delete("items")
  A:delete("item")
  A:delete("other:1")
  B:delete("item:999")
end)

-- === compare-and-set =======================================================

t.test("cas swaps only from the expected value, and says what is there", function()
  t.eq(A:cas("c", nil, { v = 1 }), true, "absent -> value")
  local ok, cur = A:cas("c", nil, { v = 2 })
  t.eq(ok, false, "not absent any more")
  t.eq(cur, { v = 1 })
  -- Equal data is equal bytes, whatever order the table was built in.
  local expected = {}
  expected.v = 1
  t.eq(A:cas("c", expected, { v = 3, w = { 1, 2 } }), true)
  ok, cur = A:cas("c", { v = 1 }, { v = 4 })
  t.eq(ok, false, "stale expected value")
  t.eq(cur, { v = 3, w = { 1, 2 } })
  t.eq(A:get("c"), { v = 3, w = { 1, 2 } }, "a failed cas changes nothing")
  t.eq(A:cas("c", { w = { 1, 2 }, v = 3 }, nil), true, "value -> deleted")
  t.eq(A:get("c"), nil)
  t.eq(A:cas("c", nil, nil), true, "absent stays absent")
  A:set("c", 1)
  ok, cur = A:cas("c", nil, nil)
  t.eq(ok, false)
  t.eq(cur, 1)
  t.eq(A:cas("c", 2, nil), false, "a delete from the wrong value")
  t.eq(A:get("c"), 1)
  A:delete("c")
end)

t.test("update: read, change, compare-and-set, again on conflict", function()
  t.eq(A:update("u", function(v) return (v or 0) + 1 end), 1)
  t.eq(A:update("u", function(v) return v + 1 end), 2)
  t.eq(A:get("u"), 2)
  t.eq(A:update("u", function() return nil end), nil)
  t.eq(A:get("u"), nil)
end)

t.test("concurrent writers with cas and retry lose no increment", function()
  local WRITERS, EACH = 20, 25
  A:set("counter", 0)
  A:set("counter2", 0)
  local attempts, conflicts = 0, 0
  local tasks = {}
  for w = 1, WRITERS do
    tasks[#tasks + 1] = tghost.spawn(function()
      for _ = 1, EACH do
        -- update(): a yield between the read and the write invites others in.
        A:update("counter", function(v)
          attempts = attempts + 1
          tghost.sleep(math.random() * 0.002)
          return v + 1
        end)
        -- The same by hand: get, cas, and again from what cas reports.
        local v = A:get("counter2")
        while true do
          tghost.sleep(math.random() * 0.002)
          local ok, cur = A:cas("counter2", v, v + 1)
          if ok then break end
          conflicts = conflicts + 1
          v = cur
        end
      end
    end)
  end
  tghost.all(tasks)
  t.eq(A:get("counter"), WRITERS * EACH, "update() lost increments")
  t.eq(A:get("counter2"), WRITERS * EACH, "cas loops lost increments")
  print(string.format("concurrent writers: %d increments each way, %d update "
                      .. "attempts, %d cas conflicts", WRITERS * EACH, attempts,
                      conflicts))
  t.truthy(attempts > WRITERS * EACH and conflicts > 0,
           "the writers never collided: the test proves nothing")
  A:delete("counter")
  A:delete("counter2")
end)

-- === outage ================================================================

t.test("an outage fails calls with a clear message, and they work again after", function()
  if kind ~= "redis" and kind ~= "lua" then return end   -- nothing to stop
  A:set("before", 1)
  if kind == "redis" then ask("stop-backend") else lua_down = true end
  local deadline, err = tghost.now() + 15, nil
  while tghost.now() < deadline do
    local ok, e = pcall(A.get, "before")
    if not ok then err = tostring(e) break end
    tghost.sleep(0.05)
  end
  t.truthy(err, "no call failed while the backend was down")
  print("while down: " .. err)
  if kind == "redis" then
    t.truthy(err:find("redis storage redis://127.0.0.1:", 1, true), err)
    t.truthy(err:find("connection lost", 1, true) or err:find("unreachable", 1, true), err)
    -- Every kind of call fails the same way while it is down.
    for _, call in ipairs({
      function() A:set("x", 1) end, function() A:delete("x") end,
      function() A:list("") end, function() A:cas("x", nil, 1) end }) do
      local ok, e = pcall(call)
      t.eq(ok, false)
      t.truthy(tostring(e):find("unreachable", 1, true), tostring(e))
    end
    ask("start-backend")
  else
    t.truthy(err:find('custom storage "conf a": get("before") failed: the backend is down',
                      1, true), err)
    lua_down = false
  end
  deadline = tghost.now() + 20
  local ok
  while tghost.now() < deadline do
    ok = pcall(A.set, "after", 2)
    if ok then break end
    tghost.sleep(0.05)
  end
  t.truthy(ok, "calls still fail after the backend came back")
  t.eq(A:get("after"), 2)
  t.eq(A:cas("after", 2, 3), true, "compare-and-set after the outage")
  t.eq(A:update("after", function(v) return v + 1 end), 4)
  if kind == "redis" then
    ask("flush-scripts")   -- Redis forgets its scripts: EVALSHA -> EVAL
    t.eq(A:cas("after", 4, 5), true, "compare-and-set after SCRIPT FLUSH")
    local keys = A:list("aft")
    t.eq(keys, { "after" })
  end
  A:delete("after")
  A:delete("before")
end)

-- === what the test reads in the backend itself ============================

t.test("leaves known data for the checks in the backend itself", function()
  clear(A)
  clear(B)
  A:set("shared", "from a")
  B:set("shared", "from b")
  A:set("only_a", 1)
  B:set("only_b", 2)
  A:set("ttl_kept", "long", 3600)
  if kind == "lua" then
    -- The backend's own table: each key under its own prefix, nothing else.
    local keys = {}
    for k, e in pairs(raw) do
      if k ~= "a:ttl_kept" then keys[k] = e.value end
    end
    t.eq(keys, { ["a:shared"] = '"from a"', ["b:shared"] = '"from b"',
                 ["a:only_a"] = "1", ["b:only_b"] = "2" })
    local left = raw["a:ttl_kept"].expires - tghost.now()
    t.truthy(left > 3500 and left <= 3600, "ttl_kept expires in " .. left .. " s")
  end
end)

t.done()
