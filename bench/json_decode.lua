-- What decoding a Bot API payload into Lua costs (luajson.c, the path of
-- every update and every method's result): a text message update as
-- Telegram sends it, and the message sendMessage returns. No server is
-- needed:
--
--   build/tghost --cpu-budget 1000 bench/json_decode.lua
--
-- prints ns per decode (CPU time, os.clock). On a shared machine the
-- instruction count is steadier: run it under valgrind --tool=callgrind
-- --callgrind-out-file=/dev/null with BENCH_N=0 and BENCH_N=20000 and
-- divide the difference by 20,000 (BENCH_ONLY=update or result runs one).
local json = tghost.json

local N = tonumber(os.getenv("BENCH_N") or "200000")
local only = os.getenv("BENCH_ONLY")

local cases = {
  update = [[{"update_id":912345678,"message":{"message_id":4711,"from":{"id":123456789,"is_bot":false,"first_name":"Alice","last_name":"Liddell","username":"alice","language_code":"en"},"chat":{"id":123456789,"first_name":"Alice","last_name":"Liddell","username":"alice","type":"private"},"date":1765100000,"text":"hello there, how are you today?"}}]],
  result = [[{"message_id":4712,"from":{"id":7000000001,"is_bot":true,"first_name":"Echo Bot","username":"echo_bot"},"chat":{"id":123456789,"first_name":"Alice","last_name":"Liddell","username":"alice","type":"private"},"date":1765100001,"text":"hello there, how are you today?"}]],
}

for _, name in ipairs({ "update", "result" }) do
  if not only or only == name then
    local text = cases[name]
    assert(json.decode(text), name .. " does not decode")
    local t0 = os.clock()
    for _ = 1, N do json.decode(text) end
    local dt = os.clock() - t0
    if N > 0 then
      print(string.format("%-7s %4d bytes  %7.0f ns per decode", name, #text,
                          dt / N * 1e9))
    end
  end
end
