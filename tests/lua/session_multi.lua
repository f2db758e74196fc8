-- Multi sessions (several named sessions, each with its own storage, key
-- and initial value) and migrations (a version per stored value, upgraded
-- on read).
local t = require("lib.apitest")
local Context = require("tghost.context")

local bot = t.fake_bot()
local function ctx_for(chat, user)
  return Context.new({ update_id = 1, message = { message_id = 1, date = 0, text = "x",
    chat = { id = chat, type = "private" }, from = { id = user, is_bot = false, first_name = "U" } } }, bot)
end
local function run(mw, ctx, fn) mw(ctx, function() fn(ctx) end) end

t.test("multi: each name has its own storage, key and initial value", function()
  local chats = tghost.storage.memory("multi-chats")
  local users = tghost.storage.memory("multi-users")
  local mw = session{ type = "multi",
    chat = { storage = chats, initial = function() return { messages = 0 } end },
    user = { storage = users, getSessionKey = function(ctx) return ctx.from.id end,
             initial = function() return { seen = 0 } end },
  }
  run(mw, ctx_for(10, 1), function(ctx)
    ctx.session.chat.messages = ctx.session.chat.messages + 1
    ctx.session.user.seen = ctx.session.user.seen + 1
  end)
  run(mw, ctx_for(20, 1), function(ctx)
    ctx.session.chat.messages = ctx.session.chat.messages + 1
    ctx.session.user.seen = ctx.session.user.seen + 1
  end)
  t.eq(chats:get("10"), { messages = 1 })
  t.eq(chats:get("20"), { messages = 1 })
  t.eq(users:get("1"), { seen = 2 }, "one user across two chats")
end)

t.test("multi: only the names an update touches are read or written", function()
  local reads = 0
  local counting = { data = {} }
  function counting:read(k) reads = reads + 1 return self.data[k] end
  function counting:write(k, v) self.data[k] = v end
  function counting:delete(k) self.data[k] = nil end
  local mw = session{ type = "multi", a = { storage = counting }, b = { storage = counting, prefix = "b:" } }
  run(mw, ctx_for(1, 1), function(ctx) ctx.session.a = { x = 1 } end)
  t.eq(reads, 0, "an assignment reads nothing")
  run(mw, ctx_for(1, 1), function(ctx) t.eq(ctx.session.a, { x = 1 }) end)
  t.eq(reads, 1)
  t.eq(counting.data["b:1"], nil)
end)

t.test("multi: misuse", function()
  local mw = session{ type = "multi", a = {} }
  run(mw, ctx_for(1, 1), function(ctx)
    t.raises(function() return ctx.session.nope end, "no session of this name", "there are: a")
    t.raises(function() ctx.session = {} end, "assigned by name")
  end)
  t.raises(function() session{ type = "multi" } end, "at least one session")
  t.raises(function() session{ type = "multi", a = { storge = 1 } } end, "did you mean storage")
  t.raises(function() session{ type = "many" } end, "\"single\" or \"multi\"")
end)

t.test("migrations: a value stored at version 1 is read at version 3 and written back", function()
  local store = tghost.storage.memory("migrate-1-3")
  -- What a bot whose migrations went up to 1 stored.
  store:set("7", { __v = 1, __d = { name = "Ann Lee" } })
  local calls = {}
  local mw = session{ storage = store, migrations = {
    [1] = function(old) calls[#calls + 1] = 1 return old end,
    [2] = function(old, ctx)
      calls[#calls + 1] = 2
      local first, last = old.name:match("^(%S+)%s+(.*)$")
      return { first = first, last = last, chat = ctx.chat.id }
    end,
    [3] = function(old) calls[#calls + 1] = 3 old.lang = "en" return old end,
  } }
  run(mw, ctx_for(7, 7), function(ctx)
    t.eq(ctx.session, { first = "Ann", last = "Lee", chat = 7, lang = "en" })
  end)
  t.eq(calls, { 2, 3 }, "only the migrations above version 1, in order")
  t.eq(store:get("7"), { __v = 3, __d = { first = "Ann", last = "Lee", chat = 7, lang = "en" } })
  calls = {}
  run(mw, ctx_for(7, 7), function(ctx) t.eq(ctx.session.first, "Ann") end)
  t.eq(calls, {}, "read at its version: no migration")
end)

t.test("migrations: a value stored without a version is version 0; new values get the newest", function()
  local store = tghost.storage.memory("migrate-0")
  store:set("8", { count = 5 })
  local mw = session{ storage = store, initial = function() return { count = 0, v2 = true } end,
    migrations = { [2] = function(old) old.v2 = true return old end } }
  run(mw, ctx_for(8, 8), function(ctx) t.eq(ctx.session, { count = 5, v2 = true }) end)
  t.eq(store:get("8"), { __v = 2, __d = { count = 5, v2 = true } })
  run(mw, ctx_for(9, 9), function(ctx) ctx.session.count = 1 end)
  t.eq(store:get("9"), { __v = 2, __d = { count = 1, v2 = true } })
end)

t.test("migrations: a newer stored version fails the update and is left alone", function()
  local store = tghost.storage.memory("migrate-newer")
  store:set("4", { __v = 5, __d = { future = true } })
  local mw = session{ storage = store, migrations = { [2] = function(o) return o end } }
  t.raises(function() run(mw, ctx_for(4, 4), function(ctx) return ctx.session end) end,
           "version 5, newer than this code's migrations (up to 2)")
  t.eq(store:get("4"), { __v = 5, __d = { future = true } })
  t.raises(function() session{ migrations = { [0] = function() end } } end, "versions 1, 2")
  t.raises(function() session{ migrations = { [2] = "x" } } end, "must be a function")
end)

t.test("migrations per name in a multi session, with SQLite", function()
  local path = (os.getenv("TGHOST_TEST_TMPDIR") or "/tmp") .. "/tghost-multi-" .. math.random(1, 1 << 40) .. ".db"
  local db = tghost.storage.sqlite(path)
  db:set("u:3", { __v = 1, __d = { n = 1 } })
  local mw = session{ type = "multi",
    profile = { storage = db, prefix = "u:", migrations = { [2] = function(o) o.n = o.n * 10 return o end } },
    scratch = {} }
  run(mw, ctx_for(3, 3), function(ctx) t.eq(ctx.session.profile.n, 10) end)
  t.eq(db:get("u:3"), { __v = 2, __d = { n = 10 } })
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end)

t.done()
