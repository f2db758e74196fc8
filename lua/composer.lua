-- Middleware composition, as grammY's Composer: a middleware is
-- function(ctx, next); next() runs the rest of the stack and returns when
-- it is done. Composers nest: a composer is itself usable as middleware.
local filter = require("tghost.filter")

local Composer = {}

-- Turns anything usable as middleware into a function(ctx, next).
local function as_middleware(mw, what)
  if type(mw) == "function" then return mw end
  if type(mw) == "table" and type(mw.middleware) == "function" then
    return mw.middleware()
  end
  error(string.format("%s: expected a function or a composer, got %s",
                      what or "middleware", type(mw)), 3)
end

-- Runs list[i..] then next; each middleware may call its next once.
local function run_list(list, ctx, next, i)
  local mw = list[i]
  if mw == nil then return next() end
  local called = false
  return mw(ctx, function()
    if called then error("next() was called twice by the same middleware", 2) end
    called = true
    return run_list(list, ctx, next, i + 1)
  end)
end

local function concat(fns, what)
  local list = {}
  for i = 1, #fns do
    list[i] = as_middleware(fns[i], what)
  end
  if #list == 1 then return list[1] end
  return function(ctx, next) return run_list(list, ctx, next, 1) end
end

-- Lets both composer.on(...) and composer:on(...) work.
local function method(self, fn)
  return function(first, ...)
    if first == self then return fn(...) end
    return fn(first, ...)
  end
end

function Composer.new()
  local self = {}
  local list = {}
  local registered_queries = {}

  local function use(...)
    local n = select("#", ...)
    if n == 0 then error("use: expected at least one middleware", 2) end
    list[#list + 1] = concat({ ... }, "use")
    return self
  end

  -- Middleware that runs handlers only when pred(ctx) is true.
  local function filtered(pred, handlers, what)
    local mw = concat(handlers, what)
    return function(ctx, next)
      if pred(ctx) then return mw(ctx, next) end
      return next()
    end
  end

  self.use = method(self, use)

  self.on = method(self, function(query, ...)
    local pred, queries = filter.compile(query, 3)
    for _, q in ipairs(queries) do registered_queries[#registered_queries + 1] = q end
    list[#list + 1] = filtered(pred, { ... }, "on")
    return self
  end)

  self.command = method(self, function(names, ...)
    local pred = filter.command(names, 3)
    registered_queries[#registered_queries + 1] = "message"
    list[#list + 1] = filtered(pred, { ... }, "command")
    return self
  end)

  self.filter = method(self, function(pred, ...)
    if type(pred) ~= "function" then error("filter: expected a predicate function", 2) end
    list[#list + 1] = filtered(pred, { ... }, "filter")
    return self
  end)

  self.drop = method(self, function(pred, ...)
    if type(pred) ~= "function" then error("drop: expected a predicate function", 2) end
    list[#list + 1] = filtered(function(ctx) return not pred(ctx) end, { ... }, "drop")
    return self
  end)

  -- The whole stack as one middleware.
  self.middleware = method(self, function()
    return function(ctx, next) return run_list(list, ctx, next, 1) end
  end)

  -- Update types this composer's handlers listen for (for allowed_updates).
  self.queries = method(self, function() return registered_queries end)

  return self
end

Composer.as_middleware = as_middleware
return Composer
