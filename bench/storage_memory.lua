-- What a script's memory storage call costs: store:get, store:set of a
-- small table, and what a session does per update (read, then write the
-- same bytes back). No server is needed:
--
--   build/tghost --cpu-budget 1000 bench/storage_memory.lua
--
-- prints ns per call (CPU time, os.clock); BENCH_ONLY=get (set, session)
-- runs one. On a shared machine the instruction count is steadier: run
-- one case under valgrind --tool=callgrind --callgrind-out-file=/dev/null
-- with BENCH_N=0 and BENCH_N=20000 and divide the difference by 20,000
-- (how the storage seam was compared with the code before it).
local storage = require("tghost.storage")

local N = tonumber(os.getenv("BENCH_N") or "200000")
local only = os.getenv("BENCH_ONLY")   -- get, set or session: that one only
local m = tghost.storage.memory("bench")
local value = { count = 1, name = "some user", list = { 1, 2, 3 } }
m:set("k", value)
local session = storage.adapter(m, "bench")

local cases = {
  get = function() m:get("k") end,
  set = function() m:set("k", value) end,
  session = function()
    local v, bytes = session.read("k")
    session.write("k", v, bytes, 0)
  end,
}

for _, name in ipairs({ "get", "set", "session" }) do
  if not only or only == name then
    local fn = cases[name]
    local t0 = os.clock()
    for _ = 1, N do fn() end
    if N > 0 then
      print(string.format("%-8s %6.0f ns", name, (os.clock() - t0) / N * 1e9))
    end
  end
end
