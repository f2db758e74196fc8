-- The composer: middleware order and next(), filters chaining as AND,
-- branch, filter/drop, errorBoundary, nested composers, both call styles.
local t = require("lib.apitest")
local fx = require("fixtures.updates")
local Context = require("tghost.context")

local bot = t.fake_bot()

local function ctx_of(name) return Context.new(fx.get(name), bot) end

-- Runs composer c on the update; returns the trace and whether the
-- stack's end (the final next) was reached.
local function run(c, name, trace)
  trace = trace or {}
  local ctx = type(name) == "table" and name or ctx_of(name)
  ctx.trace = trace
  local reached = false
  c.middleware()(ctx, function() reached = true end)
  return trace, reached
end

local function mark(label, call_next)
  return function(ctx, next)
    ctx.trace[#ctx.trace + 1] = label
    if call_next then return next() end
  end
end

t.test("middleware runs in order; next() returns when downstream is done", function()
  local c = tghost.Composer()
  c.use(function(ctx, next)
    ctx.trace[#ctx.trace + 1] = "a:before"
    next()
    ctx.trace[#ctx.trace + 1] = "a:after"
  end)
  c.use(mark("b", true))
  c.use(function(ctx, next)
    ctx.trace[#ctx.trace + 1] = "c"
    ctx.seen_by_c = true
  end)
  c.use(mark("d (never)", true))
  local trace, reached = run(c, "message")
  t.eq(trace, { "a:before", "b", "c", "a:after" })
  t.eq(reached, false)
end)

t.test("the end of the stack is reached when everyone calls next", function()
  local c = tghost.Composer()
  c.use(mark("a", true), mark("b", true))
  local trace, reached = run(c, "message")
  t.eq(trace, { "a", "b" })
  t.eq(reached, true)
end)

t.test("next() twice is an error", function()
  local c = tghost.Composer()
  c.use(function(ctx, next) next() next() end)
  c.use(mark("x", true))
  local msg = t.raises(function() run(c, "message") end, "next() was called twice")
  t.truthy(msg:find("composer.lua:", 1, true), "points at the test: " .. msg)
end)

t.test("fields set on ctx reach downstream middleware", function()
  local c = tghost.Composer()
  c.use(function(ctx, next) ctx.user_role = "admin" next() end)
  local got
  c.on("message", function(ctx) got = ctx.user_role end)
  run(c, "message")
  t.eq(got, "admin")
end)

t.test("on: handlers run only for matching updates, others pass on", function()
  local c = tghost.Composer()
  c.on("message:text", mark("text"))
  c.on("callback_query:data", mark("data"))
  c.use(mark("fallback"))
  t.eq(run(c, "message"), { "text" })
  t.eq(run(c, "callback_query"), { "data" })
  t.eq(run(c, "photo"), { "fallback" })
  t.eq(run(c, "poll"), { "fallback" })
end)

t.test("a handler that calls next lets later handlers run", function()
  local c = tghost.Composer()
  c.on("message", mark("first", true))
  c.on(":text", mark("second"))
  t.eq(run(c, "message"), { "first", "second" })
end)

t.test("several handlers in one registration", function()
  local c = tghost.Composer()
  c.on("message", mark("one", true), mark("two", true), mark("three"))
  c.use(mark("after"))
  t.eq(run(c, "message"), { "one", "two", "three" })
end)

t.test("chained filters are AND", function()
  local c = tghost.Composer()
  c.on(":photo").on("::hashtag", mark("photo with hashtag"))
  c.use(mark("other"))
  t.eq(run(c, "photo"), { "photo with hashtag" })
  t.eq(run(c, "document"), { "other" })
  t.eq(run(c, "message"), { "other" })
  -- a photo without a hashtag falls through the inner filter to the rest
  local u = fx.get("photo")
  u.message.caption_entities = nil
  t.eq(run(c, Context.new(u, bot)), { "other" })
end)

t.test("filter and drop", function()
  local c = tghost.Composer()
  local function is_group(ctx) return ctx.chat ~= nil and ctx.chat.type == "supergroup" end
  c.filter(is_group, mark("group"))
  c.drop(is_group, mark("not group"))
  t.eq(run(c, "text"), { "group" })
  t.eq(run(c, "message"), { "not group" })
  -- filter returns the composer behind the predicate
  local c2 = tghost.Composer()
  local pm = c2.filter(function(ctx) return ctx.chat and ctx.chat.type == "private" end)
  pm.command("start", mark("private start"))
  c2.command("start", mark("group start"))
  local u = fx.get("command")
  t.eq(run(c2, Context.new(u, bot)), { "group start" })
  u.message.chat = { id = 7, type = "private", first_name = "A" }
  t.eq(run(c2, Context.new(u, bot)), { "private start" })
end)

t.test("branch", function()
  local c = tghost.Composer()
  local yes = tghost.Composer()
  yes.use(mark("yes", true))
  c.branch(function(ctx) return ctx.from and ctx.from.username == "ada" end,
           yes, mark("no", true))
  c.use(mark("after"))
  t.eq(run(c, "message"), { "yes", "after" })
  local anon = fx.get("poll")
  t.eq(run(c, Context.new(anon, bot)), { "no", "after" })
end)

t.test("commands, hears, callbackQuery, inlineQuery, chatType set ctx.match", function()
  local c = tghost.Composer()
  local got = {}
  c.command("start", function(ctx) got.command = ctx.match end)
  c.hears("^just (%a+)$", function(ctx) got.hears = ctx.match end)
  c.callbackQuery("^vote:(%a+)$", function(ctx) got.cq = ctx.match end)
  c.inlineQuery("(%a+)$", function(ctx) got.iq = ctx.match end)
  c.chatType("supergroup", function(ctx) got.chat_type = ctx.chat.type end)
  run(c, "command")
  run(c, "text")
  run(c, "callback_query")
  run(c, "inline_query")
  run(c, "new_human")
  t.eq(got, { command = "hello", hears = { "text" }, cq = { "yes" },
              iq = { "coroutines" }, chat_type = "supergroup" })
end)

t.test("nested composers can be used, as modules are", function()
  local admin = tghost.Composer()
  admin.command("ban", mark("ban"))
  local greet = tghost.Composer()
  greet.on("message:new_chat_members", mark("welcome"))
  local c = tghost.Composer()
  c.use(admin)
  c.use(greet)
  c.use(mark("rest"))
  local u = fx.get("command")
  u.message.text = "/ban spammer"
  u.message.entities[1].length = 4
  t.eq(run(c, Context.new(u, bot)), { "ban" })
  t.eq(run(c, "new_human"), { "welcome" })
  t.eq(run(c, "message"), { "rest" })
  -- a composer given at construction, and a composer behind a filter
  local outer = tghost.Composer(admin, mark("outer rest"))
  t.eq(run(outer, "message"), { "outer rest" })
  local c3 = tghost.Composer()
  c3.on("message", greet)
  t.eq(run(c3, "new_human"), { "welcome" })
end)

t.test("both call styles: c.on(...) and c:on(...)", function()
  local c = tghost.Composer()
  c:on("message:text", mark("colon", true))
  c.on("message:text", mark("dot", true))
  c:use(mark("use colon"))
  c:command("start"):use(mark("never"))
  t.eq(run(c, "message"), { "colon", "dot", "use colon" })
  local child = c:filter(function() return true end)
  t.truthy(type(child.on) == "function", "filter returns a composer")
end)

t.test("errorBoundary catches errors of its middleware only", function()
  local c = tghost.Composer()
  local caught
  c.errorBoundary(function(err, next)
    caught = err
    err.ctx.trace[#err.ctx.trace + 1] = "handled"
  end, function(ctx, next)
    ctx.trace[#ctx.trace + 1] = "inside"
    error("boom")
  end)
  c.use(mark("after boundary"))
  local trace = run(c, "message")
  t.eq(trace, { "inside", "handled" })
  t.truthy(tostring(caught.error):find("boom", 1, true), "err.error")
  t.eq(caught.ctx.update.update_id, 10001, "err.ctx")
  t.truthy(tostring(caught):find("boom", 1, true), "tostring(err)")
end)

t.test("errorBoundary: next() from the handler or the middleware continues after it", function()
  local c = tghost.Composer()
  c.errorBoundary(function(err, next) next() end, function() error("x") end)
  c.use(mark("continued"))
  t.eq(run(c, "message"), { "continued" })

  local c2 = tghost.Composer()
  c2.errorBoundary(function() error("handler must not run") end,
                   mark("inside", true))
  c2.use(mark("after"))
  t.eq(run(c2, "message"), { "inside", "after" })
end)

t.test("errorBoundary does not catch errors downstream of it", function()
  local c = tghost.Composer()
  local handled = false
  c.errorBoundary(function() handled = true end, mark("inside", true))
  c.use(function() error("downstream failure") end)
  t.raises(function() run(c, "message") end, "downstream failure")
  t.eq(handled, false)
end)

t.test("errorBoundary: errors of nested composers inside it are caught", function()
  local inner = tghost.Composer()
  inner.on("message", function() error({ code = 42 }) end)
  local c = tghost.Composer()
  local code
  c.errorBoundary(function(err) code = err.error.code end, inner)
  run(c, "message")
  t.eq(code, 42)
end)

t.test("bad arguments raise at the script's line", function()
  local c = tghost.Composer()
  local line = debug.getinfo(1, "l").currentline + 1
  local msg = t.raises(function() c.on("message", 42) end, "expected a middleware function or a composer, got number")
  t.truthy(msg:find("composer.lua:" .. line .. ":", 1, true), msg)
  t.raises(function() c.filter("x") end, "filter: expected a predicate function")
  t.raises(function() c.drop(nil) end, "drop: expected a predicate function")
  t.raises(function() c.branch(function() end, mark("a"), "b") end, "branch: expected a middleware")
  t.raises(function() c.use() end, "use: expected a middleware")
  t.raises(function() c.errorBoundary(nil, mark("a")) end, "errorBoundary: expected")
  -- bot.use(require("mod")) passes require's second result, the file name
  t.raises(function() c.use(tghost.Composer(), "./mod.lua") end,
           "got string ('./mod.lua': require returns the module and its file name")
end)

t.test("bot.catch takes a function", function()
  t.raises(function() _G.bot.catch("x") end, "bot.catch: expected a function")
  t.raises(function() _G.bot:catch(42) end, "bot.catch: expected a function, got number")
end)

t.done()
