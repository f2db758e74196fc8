-- Rate limiting through bot.handleUpdate: the limit per window, dropped
-- updates, the reply once per window, per-key counting, a new window.
local t = require("lib.apitest")

local function msg(from, text)
  return { message = { message_id = 1, date = 0, text = text or "hi",
    chat = { id = from, type = "private" },
    from = { id = from, is_bot = false, first_name = "U" } } }
end

local handled = {}
local exceeded = 0
bot.use(tghost.ratelimit{ limit = 3, window = 0.4, reply = "Slow down!",
                          onLimitExceeded = function() exceeded = exceeded + 1 end })
bot.on("message", function(ctx)
  handled[ctx.from.id] = (handled[ctx.from.id] or 0) + 1
end)

t.test("limit per window; the rest dropped; one reply per window", function()
  local replies = 0
  for _ = 1, 6 do
    local r = bot.handleUpdate(msg(1))
    for _, c in ipairs(r.calls) do
      if c.params.text == "Slow down!" then replies = replies + 1 end
    end
  end
  t.eq(handled[1], 3)
  t.eq(replies, 1)
  t.eq(exceeded, 3)
end)

t.test("keys count apart", function()
  bot.handleUpdate(msg(2))
  t.eq(handled[2], 1)
  t.eq(#bot.handleUpdate(msg(1)).calls, 0, "user 1 still limited, no second reply")
  t.eq(handled[1], 3)
end)

t.test("a new window starts after the old one ends", function()
  tghost.sleep(0.45)
  bot.handleUpdate(msg(1))
  bot.handleUpdate(msg(1))
  t.eq(handled[1], 5)
end)

t.test("updates without a key are not limited", function()
  local comp = tghost.Composer()
  local n = 0
  comp.use(tghost.ratelimit{ limit = 1, window = 10, key = function() return nil end })
  comp.use(function() n = n + 1 end)
  local Context = require("tghost.context")
  for _ = 1, 3 do comp.middleware()(Context.new(msg(3), bot), function() end) end
  t.eq(n, 3)
end)

t.test("options are checked at the line", function()
  t.raises(function() tghost.ratelimit{ limit = 0 } end, "ratelimit.lua:", "limit must be")
  t.raises(function() tghost.ratelimit{ window = -1 } end, "window must be")
  t.raises(function() tghost.ratelimit{ limt = 2 } end, "did you mean limit")
  t.raises(function() tghost.ratelimit{ storage = {} } end, "needs update()")
end)

t.done()
