-- The Lua-side cost of the sequentialize middleware on the path where the
-- update does not wait: the key function, tghost.seq.acquire (key
-- normalization, the C map, the to-be-closed value) and the release when
-- the rest of the stack returns; against a middleware that only calls
-- next(). The script's top level runs as a task, so no server is needed:
--
--   build/tghost bench/sequentialize.lua
--
-- Waiting costs one suspend and resume of the coroutine on top (as any
-- API call does); bench/seqbench.c measures the C map alone, with up to
-- 100,000 keys in flight.
local N = 1000000

local function measure(name, mw, nkeys)
  local ctx = { id = 0 }
  local function next_mw() end
  collectgarbage()
  local t0 = tghost.now()
  for i = 1, N do
    ctx.id = i % nkeys
    mw(ctx, next_mw)
  end
  local t1 = tghost.now()
  print(string.format("%-44s %7.1f ns/update", name, (t1 - t0) * 1e9 / N))
  return (t1 - t0) * 1e9 / N
end

local function quiet(mw) local p = print; print = function() end; measure("", mw, 1000); print = p end
quiet(sequentialize(function(ctx) return ctx.id end))   -- warm-up
local base = measure("baseline: function(ctx, next) next() end",
                     function(ctx, next) return next() end, 1)
local key = function(ctx) return ctx.id end
for _, nkeys in ipairs({ 1, 1000, 100000 }) do
  local ns = measure(string.format("sequentialize, integer key, %d keys", nkeys),
                     sequentialize(key), nkeys)
  print(string.format("%44s %7.1f ns/update over the baseline", "", ns - base))
end
local ns = measure("sequentialize, string key",
                   sequentialize(function(ctx) return "chat:" .. ctx.id end), 1000)
print(string.format("%44s %7.1f ns/update over the baseline", "", ns - base))
ns = measure("sequentialize, {chat, user} list",
             sequentialize(function(ctx) return { ctx.id, -ctx.id - 1 } end), 1000)
print(string.format("%44s %7.1f ns/update over the baseline", "", ns - base))
