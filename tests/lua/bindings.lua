-- The C bindings' argument checks: misuse raises a clear error, and what a
-- binding copied before it raised is freed (the ASan build's leak check
-- fails this test otherwise).
local t = require("lib.apitest")

t.test("InputFile: a bad field after the path raises, nothing leaks", function()
  for _ = 1, 100 do
    t.raises(function() tghost.InputFile{ path = "a.txt", filename = 3 } end,
             "filename must be a string")
    t.raises(function()
      tghost.InputFile{ path = "a.txt", filename = "b", content_type = {} }
    end, "content_type must be a string")
    t.raises(function() tghost.InputFile{ path = "a.txt", data = "x" } end,
             "give either path or data")
    t.raises(function() tghost.InputFile("a.txt", {}) end, "string expected")
    t.raises(function() tghost.InputFile{ path = "a.txt", size = 1 } end,
             "unknown option size")
  end
  collectgarbage()
end)

t.test("InputFile: valid forms keep what they were given", function()
  local f = tghost.InputFile("dir/a.txt", "shown.txt")
  t.eq(f.path, "dir/a.txt")
  t.eq(f.filename, "shown.txt")
  local m = tghost.InputFile{ data = "bytes", filename = "b.bin",
                              content_type = "application/octet-stream" }
  t.eq(m.data, "bytes")
  t.eq(m.content_type, "application/octet-stream")
  t.eq(tostring(m), "InputFile(b.bin, in memory)")
end)

t.test("bot.api.config: range errors name the bounds", function()
  t.raises(function() bot.api.config{ throttle = { chatPerSecond = 0 } } end,
           "chatPerSecond must be between 0.001 and 1000")
  t.raises(function() bot.api.config{ autoRetry = { retries = 1 } } end,
           "unknown option autoRetry.retries")
end)

t.done()
