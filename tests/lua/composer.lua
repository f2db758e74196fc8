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
  c.inlineQuery(tghost.pattern("(%a+)$"), function(ctx) got.iq = ctx.match end)
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
  -- a string is not middleware (unless it is require's loader data, below)
  t.raises(function() c.use(tghost.Composer(), "hello") end,
           "use: expected a middleware function or a composer, got string")
  t.raises(function() c.use("./mod.lua") end, "got string")
end)

t.test("use(require(...)): require's second result (the file name) is not middleware", function()
  -- Lua 5.4's require returns the module and the file it was loaded from
  local mod, file = require("lib.modules.greeting")
  t.truthy(type(file) == "string" and file:find("greeting.lua", 1, true), file)
  local c = tghost.Composer()
  c.use(require("lib.modules.greeting"))
  c.on("message:photo", require("lib.modules.handler"))
  c.use(mark("rest"))
  t.eq(run(c, "command"), { "greeting" })
  t.eq(run(c, "message"), { "greeting text" })
  t.eq(run(c, "photo"), { "handler module" })
  t.eq(run(c, "poll"), { "rest" })
  local outer = tghost.Composer(require("lib.modules.greeting"))
  t.eq(run(outer, "message"), { "greeting text" })
  -- a module from package.preload has ":preload:" as its loader data
  local c2 = tghost.Composer()
  c2.use(mod, ":preload:")
  t.eq(run(c2, "message"), { "greeting text" })
end)

-- === The methods grammY users reach for besides on/command/hears =========

t.test("chosenInlineResult, preCheckoutQuery, shippingQuery, gameQuery, reaction", function()
  local c = tghost.Composer()
  local got = {}
  c.chosenInlineResult("r-1", function(ctx) got.chosen = ctx.match end)
  c.preCheckoutQuery(tghost.pattern("."), function(ctx) got.pre = ctx.match end)
  c.shippingQuery("^order%-(%d+)$", function(ctx) got.ship = ctx.match end)
  c.gameQuery("snake", function(ctx) got.game = ctx.match end)
  c.reaction("👍", function(ctx) got.reaction = ctx.messageReaction.message_id end)
  c.use(mark("rest"))
  run(c, "chosen_inline_result")
  run(c, "pre_checkout_query")
  run(c, "shipping_query")
  run(c, "message_reaction")
  local game = fx.get("callback_query")
  game.callback_query.data = nil
  game.callback_query.game_short_name = "snake"
  run(c, Context.new(game, bot))
  t.eq(got, { chosen = { "r-1" }, pre = { "o" }, ship = { "7" }, game = { "snake" },
              reaction = 640 })
  t.eq(run(c, "callback_query"), { "rest" })
  t.eq(run(c, "inline_query"), { "rest" })
  -- the returned composer continues behind the filter
  local c2 = tghost.Composer()
  c2.reaction({ "🔥", "👍" }).use(mark("behind reaction"))
  t.eq(run(c2, "message_reaction"), { "behind reaction" })
  t.eq(run(c2, "message"), {})
end)

t.test("fork: the forked middleware runs concurrently with the rest of the stack", function()
  local c = tghost.Composer()
  c.fork(function(ctx)
    ctx.trace[#ctx.trace + 1] = "fork:start"
    tghost.sleep(0.2)
    ctx.trace[#ctx.trace + 1] = "fork:end"
  end)
  c.use(function(ctx)
    ctx.trace[#ctx.trace + 1] = "rest:start"
    tghost.sleep(0.2)
    ctx.trace[#ctx.trace + 1] = "rest:end"
  end)
  local started = tghost.now()
  local trace = run(c, "message")
  local took = tghost.now() - started
  -- both ran, side by side (0.2 s, not 0.4 s), and run() returned after
  -- both (the order of the trace shows the overlap; the time, with room
  -- for a loaded machine, that neither waited for the other's sleep)
  t.eq(#trace, 4)
  t.eq(trace[1], "rest:start")
  t.eq(trace[2], "fork:start")
  t.truthy(took < 0.38, "fork and the rest took " .. took .. " s: not concurrent")
  -- middleware added to the returned composer runs in the fork
  local c2 = tghost.Composer()
  c2.fork().on("message", mark("forked handler"))
  c2.use(mark("main"))
  local t2 = run(c2, "message")
  table.sort(t2)
  t.eq(t2, { "forked handler", "main" })
  -- an error in the fork is the update's error
  local c3 = tghost.Composer()
  c3.fork(function() error("fork failed") end)
  c3.use(mark("main"))
  t.raises(function() run(c3, "message") end, "fork failed")
end)

t.test("lazy: middleware built by a factory for each update", function()
  local c = tghost.Composer()
  local calls = 0
  c.lazy(function(ctx)
    calls = calls + 1
    if ctx.update.message then return mark("built for a message", true) end
    if ctx.update.callback_query then return { mark("a", true), mark("b", true) } end
    return {}
  end).use(mark("after lazy"))
  t.eq(run(c, "message"), { "built for a message", "after lazy" })
  t.eq(run(c, "callback_query"), { "a", "b", "after lazy" })
  t.eq(run(c, "poll"), { "after lazy" })
  t.eq(calls, 3)
  local greet = tghost.Composer()
  greet.on("message", mark("composer from the factory"))
  local c2 = tghost.Composer()
  c2.lazy(function() return greet end)
  t.eq(run(c2, "message"), { "composer from the factory" })
  local c3 = tghost.Composer()
  c3.lazy(function() end)
  t.raises(function() run(c3, "message") end, "lazy: the factory returned nil")
  t.raises(function() c3.lazy("x") end, "lazy: expected a predicate function")
end)

t.test("route: a handler by the router's key, else the fallback", function()
  local c = tghost.Composer()
  c.route(function(ctx)
    if ctx.update.message then return "msg" end
    if ctx.update.callback_query then return "cb" end
    if ctx.update.poll then return "unknown route" end
  end, {
    msg = mark("message route"),
    cb = tghost.Composer(mark("callback route", true)),
  }, mark("fallback"))
  c.use(mark("after"))
  t.eq(run(c, "message"), { "message route" })
  t.eq(run(c, "callback_query"), { "callback route", "after" })
  t.eq(run(c, "poll"), { "fallback" })          -- a key without a handler
  t.eq(run(c, "inline_query"), { "fallback" })  -- nil
  -- without a fallback, the update passes on
  local c2 = tghost.Composer()
  c2.route(function() return nil end, { x = mark("x") }).use(mark("behind route", true))
  c2.use(mark("after"))
  t.eq(run(c2, "message"), { "behind route", "after" })
  t.raises(function() c2.route(function() end, "x") end, "route: expected a table of handlers")
end)

t.test("bot.catch takes a function", function()
  t.raises(function() _G.bot.catch("x") end, "bot.catch: expected a function")
  t.raises(function() _G.bot:catch(42) end, "bot.catch: expected a function, got number")
end)

-- What a conversation's answers run (lua/conversation.lua): the
-- middleware the update is inside of at the handler, with their filters.
local Composer = require("tghost.composer")

-- Runs c on ctx; the handler (command start) saves Composer.trail(ctx).
local function trail_at_handler(c, ctx)
  local got
  c.command("start", function(hctx) got = Composer.trail(hctx) end)
  c.middleware()(ctx, function() end)
  return got
end

local function names(trail, label_of)
  local out = {}
  for i, e in ipairs(trail) do out[i] = label_of[e.mw] .. "/" .. #e.guards end
  return out
end

t.test("the trail: middleware inside next(), with their filters", function()
  local c = tghost.Composer()
  local label = {}
  local function mw(name, call_next)
    local f = function(ctx, next)
      ctx.trace[#ctx.trace + 1] = name
      if call_next then return next() end
    end
    label[f] = name
    return f
  end
  -- Not for answers (as sequentialize is).
  c.use(Composer.not_for_answers(mw("seq", true)))
  c.use(mw("a", true))
  local inner = tghost.Composer()
  inner.use(mw("b", true))
  inner.on("message:text", mw("texty", true))
  inner.on(":photo", mw("photo", true))   -- its filter fails: not there
  c.use(inner)
  c.on("message", mw("after_filter", true))
  local ctx = ctx_of("command")
  ctx.trace = {}
  local trail = trail_at_handler(c, ctx)
  -- after_filter sits behind its own filter only: inner's are left.
  t.eq(names(trail, label), { "a/0", "b/0", "texty/1", "after_filter/1" })
  -- An answer that is a photo passes a, b, after_filter; not texty.
  local answer = ctx_of("photo")
  answer.trace = {}
  local reached = false
  Composer.run_trail(trail, answer, function() reached = true end)
  t.eq(answer.trace, { "a", "b", "after_filter" })
  t.truthy(reached, "the trail's end was not reached")
  -- A text answer passes texty's filter too.
  answer = ctx_of("text")
  answer.trace = {}
  Composer.run_trail(trail, answer, function() end)
  t.eq(answer.trace, { "a", "b", "texty", "after_filter" })
  -- After the stack returned, nothing is left on the path.
  t.eq(Composer.trail(ctx), {})
end)

-- Middleware that returned before the handler (inside an errorBoundary,
-- whose rest runs after it) is not on the path.
t.test("the trail after an error caught by errorBoundary", function()
  local c = tghost.Composer()
  local label = {}
  local function mw(name)
    local f = function(ctx, next) return next() end
    label[f] = name
    return f
  end
  c.use(mw("a"))
  c.errorBoundary(function(_, next) next() end, mw("inside"),
                  function() error("boom") end)
  c.use(mw("b"))
  local got
  c.use(function(ctx, next)
    got = Composer.trail(ctx)
    return next()
  end)
  local ctx = ctx_of("command")
  c.middleware()(ctx, function() end)
  t.eq(names(got, label), { "a/0", "b/0" })
end)

t.done()
