-- Middleware composition, as grammY's Composer.
--
-- A middleware is function(ctx, next); next() runs the rest of the stack
-- and returns when it is done; calling it twice is an error. A composer
-- holds a list of middleware and is itself usable as middleware, so a bot
-- can be split into modules (bot.use(composer)).
--
-- Like grammY, the methods that filter (on, command, hears, filter, ...)
-- return a new composer installed behind the filter, so calls chain as AND:
-- bot.on(":photo").on("::hashtag", fn), or
-- local pm = bot.chatType("private"); pm.command("start", fn).
-- Every method works both as bot.on(...) and bot:on(...).
--
-- Each composer also knows which update types its handlers can need, for
-- allowed_updates (see Composer.needs).
local errors = require("tghost.errors")
local filter = require("tghost.filter")
local Context = require("tghost.context")
local triggers = require("tghost.triggers")
local runtime = require("tghost.runtime")
local tasks = require("tghost.tasks")
local commands = require("tghost.commands")
errors.internal()

local Composer = {}

-- Private state of each composer: its run function and its needs.
local state = setmetatable({}, { __mode = "k" })

-- Turns anything usable as middleware into a function(ctx, next).
local function as_middleware(mw, what)
  if type(mw) == "function" then return mw end
  local s = state[mw]
  if s then return s.run end
  if type(mw) == "table" and type(mw.middleware) == "function" then
    return mw:middleware()
  end
  errors.raise("%s: expected a middleware function or a composer, got %s",
               what, type(mw))
end
Composer.as_middleware = as_middleware

-- Lua 5.4's require returns the module and its loader data: the file it
-- was found in (or ":preload:"). So bot.use(require("greeting")) passes a
-- string after the composer. Middleware is never a string, so a last
-- argument that is such a name is dropped: that grammY habit just works.
local function is_loader_data(v)
  return type(v) == "string" and (v:sub(-4) == ".lua" or v == ":preload:")
end

-- The number of middleware arguments in ..., without require's loader data.
local function middleware_count(...)
  local n = select("#", ...)
  if n >= 2 and is_loader_data((select(n, ...))) then return n - 1 end
  return n
end

-- The functions this module makes to route updates (a composer's run, a
-- filter in front of handlers, ...), as opposed to the script's own
-- middleware.
local internal = setmetatable({}, { __mode = "k" })
local function own(fn)
  internal[fn] = true
  return fn
end

-- Middleware a conversation's answers do not run again (see
-- Composer.trail): sequentialize's, since the conversation takes its keys
-- back itself.
local not_for_answers = setmetatable({}, { __mode = "k" })

-- The path an update took to the code running now, for a conversation's
-- answers (lua/conversation.lua), which run the middleware the
-- conversation's own update went through on its way to the handler, as
-- far as they pass the same filters. Per context, an array (path.n
-- entries in use): a function is the script's middleware that called
-- next() and has not returned; a filter's tag ({ pred = fn }, one per
-- filter, made with it) says the code from here on sits behind it; the
-- tag's { unpred = tag } says the rest of the outer stack runs, no longer
-- behind it. A middleware's entry goes when its next() returns (whatever
-- was recorded above it goes with it); filters' entries are not taken
-- off one by one, so that filters and list ends still make tail calls
-- (each frame kept would stay on every waiting conversation's stack).
-- The path is read only when a conversation waits, and recording
-- allocates nothing: an array goes back to a pool when its update is done
-- (allocations are what routing an update costs most, in the collector's
-- work: about 10 instructions per byte). A call that raises leaves its
-- entries behind: whoever catches the error and goes on (errorBoundary)
-- puts the path back as it was.
local PATH = Context.PATH
local pool, pooled = {}, 0
local POOL_MAX = 64

local function new_path(ctx)
  local path
  if pooled > 0 then
    path = pool[pooled]
    pool[pooled] = nil
    pooled = pooled - 1
  else
    path = { false, false, false, false, false, false, false, false, n = 0 }
  end
  ctx[PATH] = path
  return path
end

-- The update is done with its path: the array goes back to the pool.
local function release(ctx, path)
  path.n = 0
  if ctx[PATH] == path then
    ctx[PATH] = false
    if pooled < POOL_MAX then
      pooled = pooled + 1
      pool[pooled] = path
    end
  end
end

local function push(ctx, entry)
  local path = ctx[PATH] or new_path(ctx)
  local n = path.n + 1
  path[n] = entry
  path.n = n
end

-- The update ctx is done (runtime.handle_update): its path is reused.
function Composer.done(ctx)
  local path = ctx[PATH]
  if path then release(ctx, path) end
end
runtime.path_done = Composer.done

-- The code below records with as few calls as it can: in Lua a call costs
-- more than the rest of a step. (So next() returns one value, not all of
-- the rest of the stack's.)

-- Runs run(ctx, next) behind the filter tagged tag (whose predicate
-- matched); leaving marks where the rest of the outer stack runs (nil: the
-- code behind the filter is a list of this module's, which marks it).
local function behind_filter(tag, run, ctx, next)
  local path = ctx[PATH] or new_path(ctx)
  local n = path.n
  path[n + 1] = tag
  path.n = n + 1
  local leaving = tag.leaving
  local r
  if leaving then
    r = run(ctx, function()
      local m = path.n
      path[m + 1] = leaving
      path.n = m + 1
      local r2 = next()
      path.n = m
      return r2
    end)
  else
    r = run(ctx, next)
  end
  path.n = n
  return r
end

-- A filter's tag: { pred = fn } and, for a filter in front of middleware
-- that is not a list of this module's, { leaving = { unpred = tag } }.
local function filter_tag(pred, foreign)
  local tag = { pred = pred }
  if foreign then tag.leaving = { unpred = tag } end
  return tag
end

-- Runs list[i..], then next. Each next() may be called once. A list behind
-- a filter (list.leaving, its filter's { unpred = tag }) records where the
-- code leaves it.
local function run_list(list, ctx, next, i)
  local mw = list[i]
  if mw == nil then
    local leaving = list.leaving
    if leaving then push(ctx, leaving) end
    return next()
  end
  local called = false
  return mw(ctx, function()
    if called then
      error("next() was called twice by the same middleware", 2)
    end
    called = true
    if internal[mw] or not_for_answers[mw] then
      return run_list(list, ctx, next, i + 1)
    end
    local path = ctx[PATH] or new_path(ctx)
    local n = path.n
    path[n + 1] = mw
    path.n = n + 1
    local r = run_list(list, ctx, next, i + 1)
    path.n = n
    return r
  end)
end

-- The script's middleware ctx is inside of now, outermost first, each with
-- the filters it sits behind ({ mw =, guards = {pred...} }), without those
-- marked not for answers: what an update that answers a conversation
-- started by ctx runs (Composer.run_trail) before the conversation gets
-- it.
function Composer.trail(ctx)
  local out, active = {}, {}
  local path = ctx[PATH]
  for k = 1, path and path.n or 0 do
    local e = path[k]
    if type(e) == "function" then
      if not not_for_answers[e] then
        out[#out + 1] = { mw = e, guards = table.move(active, 1, #active, 1, {}) }
      end
    elseif e.pred then
      active[#active + 1] = e.pred
    else
      for j = #active, 1, -1 do
        if active[j] == e.unpred.pred then table.remove(active, j) break end
      end
    end
  end
  return out
end

-- Runs a trail (Composer.trail) with ctx, then last(): each middleware
-- whose filters ctx passes (asked when its turn comes, after the earlier
-- ones ran); their next() calls enter ctx's path as the bot's stack's do.
function Composer.run_trail(trail, ctx, last)
  local function step(i)
    local entry = trail[i]
    if entry == nil then return last() end
    for _, pred in ipairs(entry.guards) do
      if not pred(ctx) then return step(i + 1) end
    end
    return run_list({ entry.mw }, ctx, function() return step(i + 1) end, 1)
  end
  return step(1)
end

-- Marks a middleware function as not run again for a conversation's
-- answers.
function Composer.not_for_answers(fn)
  not_for_answers[fn] = true
  return fn
end

local function noop() end

-- Runs what a lazy factory built: a middleware function, a composer, or a
-- list of them ({} passes on).
local function run_built(built, ctx, next, what)
  if built == nil then
    errors.raise("%s: the factory returned nil; return a middleware, a "
                 .. "composer or a list of them ({} passes on)", what)
  end
  if type(built) == "table" and not state[built]
     and type(built.middleware) ~= "function" then
    local list = {}
    for i, mw in ipairs(built) do list[i] = as_middleware(mw, what) end
    return run_list(list, ctx, next, 1)
  end
  return run_list({ as_middleware(built, what) }, ctx, next, 1)
end

-- === Update types a composer's handlers need (for allowed_updates) ======
--
-- A need is (all, types): all is true when some middleware runs for every
-- update (bot.use(fn)); types is the set of update types named by filters
-- ({ chat_member = true, ... }).

local function need_all() return true, {} end

local visiting = {}

-- Needs of middleware objects that are not composers, by metatable (a
-- menu needs callback queries only): fn() -> all, types.
local foreign_needs = {}
function Composer.register_needs(mt, fn) foreign_needs[mt] = fn end

-- The needs of a middleware value (function, composer, foreign object).
local function needs_of(mw)
  local s = state[mw]
  if not s then
    local f = type(mw) == "table" and foreign_needs[getmetatable(mw)]
    if f then return f(mw) end
    return true, {}
  end
  if visiting[mw] then return false, {} end   -- a composer inside itself
  visiting[mw] = true
  local all, types = false, {}
  for _, need in ipairs(s.needs) do
    local a, t = need()
    all = all or a
    for k in pairs(t) do types[k] = true end
  end
  visiting[mw] = nil
  return all, types
end

-- Handlers behind a filter that can only match the update types in
-- filter_types (nil: any type) need only those.
local function restrict(filter_types, all, types)
  if filter_types == nil then return all, types end
  local out = {}
  for k in pairs(all and filter_types or types) do
    if filter_types[k] then out[k] = true end
  end
  return false, out
end

-- Composer.needs(composer) -> all, types
Composer.needs = needs_of

-- Lets both composer.on(...) and composer:on(...) work.
local function method(self, fn)
  return function(first, ...)
    if first == self then return fn(...) end
    if first == nil and select("#", ...) == 0 then return fn() end  -- c.fork()
    return fn(first, ...)
  end
end

local function check_pred(pred, what)
  if type(pred) ~= "function" then
    errors.raise("%s: expected a predicate function, got %s", what, type(pred))
  end
end

function Composer.new(...)
  local self = setmetatable({}, { __name = "tghost.Composer" })
  local list, needs = {}, {}
  local s = {
    list = list,
    needs = needs,
    run = own(function(ctx, next) return run_list(list, ctx, next, 1) end),
  }
  state[self] = s

  local function add(mw, need)
    list[#list + 1] = mw
    needs[#needs + 1] = need
  end

  -- A child composer of the handlers, installed behind pred (nil: none).
  local function behind(pred, types, what, ...)
    local child = Composer.new()
    local cs = state[child]
    for i = 1, middleware_count(...) do
      local h = (select(i, ...))
      cs.list[#cs.list + 1] = as_middleware(h, what)
      cs.needs[#cs.needs + 1] = function() return needs_of(h) end
    end
    local run = cs.run
    local need = function() return restrict(types, needs_of(child)) end
    if pred == nil then
      add(run, need)
    else
      local tag = filter_tag(pred)
      cs.list.leaving = { unpred = tag }
      add(own(function(ctx, next)
        if pred(ctx) then
          push(ctx, tag)
          return run(ctx, next)
        end
        return next()
      end), need)
    end
    return child
  end

  self.use = method(self, function(...)
    if select("#", ...) == 0 then errors.raise("use: expected a middleware") end
    return behind(nil, nil, "use", ...)
  end)

  self.on = method(self, function(query, ...)
    local pred, types = filter.compile(query)
    return behind(pred, types, "on", ...)
  end)

  -- command(names, [description | { description, descriptions, scope },]
  -- handlers...): the description goes to the bot's command list
  -- (lua/commands.lua).
  self.command = method(self, function(names, ...)
    local pred, types = triggers.command(names)
    if select("#", ...) > 1 and commands.is_options((...)) then
      commands.register(names, (...))
      return behind(pred, types, "command", select(2, ...))
    end
    commands.register(names, nil)
    return behind(pred, types, "command", ...)
  end)

  self.hears = method(self, function(patterns, ...)
    local pred, types = triggers.hears(patterns)
    return behind(pred, types, "hears", ...)
  end)

  self.callbackQuery = method(self, function(data, ...)
    local pred, types = triggers.callback_query(data)
    return behind(pred, types, "callbackQuery", ...)
  end)

  self.inlineQuery = method(self, function(patterns, ...)
    local pred, types = triggers.inline_query(patterns)
    return behind(pred, types, "inlineQuery", ...)
  end)

  self.gameQuery = method(self, function(names, ...)
    local pred, types = triggers.game_query(names)
    return behind(pred, types, "gameQuery", ...)
  end)

  self.chosenInlineResult = method(self, function(ids, ...)
    local pred, types = triggers.chosen_inline_result(ids)
    return behind(pred, types, "chosenInlineResult", ...)
  end)

  self.preCheckoutQuery = method(self, function(payloads, ...)
    local pred, types = triggers.pre_checkout_query(payloads)
    return behind(pred, types, "preCheckoutQuery", ...)
  end)

  self.shippingQuery = method(self, function(payloads, ...)
    local pred, types = triggers.shipping_query(payloads)
    return behind(pred, types, "shippingQuery", ...)
  end)

  self.reaction = method(self, function(reactions, ...)
    local pred, types = triggers.reaction(reactions)
    return behind(pred, types, "reaction", ...)
  end)

  self.chatType = method(self, function(types, ...)
    return behind(triggers.chat_type(types), nil, "chatType", ...)
  end)

  self.filter = method(self, function(pred, ...)
    check_pred(pred, "filter")
    return behind(pred, nil, "filter", ...)
  end)

  self.drop = method(self, function(pred, ...)
    check_pred(pred, "drop")
    return behind(function(ctx) return not pred(ctx) end, nil, "drop", ...)
  end)

  -- branch(pred, a, b): a when pred(ctx) is true, else b.
  self.branch = method(self, function(pred, a, b)
    check_pred(pred, "branch")
    local ma, mb = as_middleware(a, "branch"), as_middleware(b, "branch")
    local tag_a = filter_tag(pred, true)
    local tag_b = filter_tag(function(c) return not pred(c) end, true)
    add(own(function(ctx, next)
      if pred(ctx) then return behind_filter(tag_a, ma, ctx, next) end
      return behind_filter(tag_b, mb, ctx, next)
    end), function()
      local all_a, ta = needs_of(a)
      local all_b, tb = needs_of(b)
      local types = {}
      for k in pairs(ta) do types[k] = true end
      for k in pairs(tb) do types[k] = true end
      return all_a or all_b, types
    end)
    return self
  end)

  -- fork(mw, ...): runs mw... concurrently with the rest of the stack, as
  -- grammY's fork: the rest goes on at once, the forked middleware runs in
  -- a child task of the update (tghost.spawn), and the update is done when
  -- both are. An error in either is the update's error.
  self.fork = method(self, function(...)
    local child = Composer.new(...)
    local run = state[child].run
    add(own(function(ctx, next)
      local forked = tasks.spawn(run, ctx, noop)
      next()
      tasks.wait(forked)
    end), function() return needs_of(child) end)
    return child
  end)

  -- lazy(factory): factory(ctx) returns middleware (a function, a
  -- composer, or a list of them), built afresh for each update and run
  -- with the rest of the stack as its next.
  self.lazy = method(self, function(factory)
    check_pred(factory, "lazy")
    return behind(nil, nil, "lazy", own(function(ctx, next)
      return run_built(factory(ctx), ctx, next, "lazy")
    end))
  end)

  -- route(router, handlers [, fallback]): router(ctx) returns a key of
  -- handlers; that handler runs, or fallback (default: pass on to the rest
  -- of the stack) when the key is nil or has no handler.
  self.route = method(self, function(router, handlers, fallback)
    check_pred(router, "route")
    if type(handlers) ~= "table" or state[handlers] then
      errors.raise("route: expected a table of handlers (route name -> "
                   .. "middleware), got %s", type(handlers))
    end
    local compiled = {}
    for k, mw in pairs(handlers) do compiled[k] = as_middleware(mw, "route") end
    local fb = fallback ~= nil and as_middleware(fallback, "route") or nil
    -- A composer of its own holds the router, so that allowed_updates
    -- sees what the handlers need rather than "everything".
    local routed = Composer.new()
    local rs = state[routed]
    rs.list[1] = own(function(ctx, next)
      local key = router(ctx)
      local mw = key ~= nil and compiled[key] or fb
      if mw == nil then return next() end
      local tag = filter_tag(function(c) return router(c) == key end, true)
      return behind_filter(tag, function(c, n)
        return run_list({ mw }, c, n, 1)
      end, ctx, next)
    end)
    rs.needs[1] = function()
      local all, types = false, {}
      for _, mw in pairs(handlers) do
        local a, t = needs_of(mw)
        all = all or a
        for k in pairs(t) do types[k] = true end
      end
      if fallback ~= nil then
        local a, t = needs_of(fallback)
        all = all or a
        for k in pairs(t) do types[k] = true end
      end
      return all, types
    end
    return behind(nil, nil, "route", routed)
  end)

  -- errorBoundary(handler, ...): errors raised by the given middleware go
  -- to handler(err, next) (err.error, err.ctx, as bot.catch receives
  -- them) instead of the bot's error handler. As in grammY, the rest of
  -- the stack runs after the boundary's middleware is done (if it, or the
  -- handler, called next), so errors downstream are not caught here.
  self.errorBoundary = method(self, function(handler, ...)
    check_pred(handler, "errorBoundary")
    local child = Composer.new(...)
    local run = state[child].run
    add(own(function(ctx, next)
      local path = ctx[PATH]
      local depth = path and path.n
      local go_on = false
      local function cont() go_on = true end
      local ok, e = xpcall(run, function(err)
        return { error = err, traceback = debug.traceback(nil, 2) }
      end, ctx, cont)
      if not ok then
        if depth then path.n = depth end
        go_on = false
        handler(setmetatable({ error = e.error, ctx = ctx,
                               traceback = e.traceback }, runtime.BotError),
                cont)
      end
      if go_on then return next() end
    end), function() return needs_of(child) end)
    return child
  end)

  -- The whole stack as one middleware function.
  self.middleware = method(self, function() return s.run end)

  for i = 1, middleware_count(...) do
    local mw = (select(i, ...))
    add(as_middleware(mw, "Composer"), function() return needs_of(mw) end)
  end
  return self
end

return Composer
