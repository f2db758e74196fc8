-- The record and replay of durable dialogs (lua/dialog.lua), alone: an
-- update's calls recorded in order, answered from the record while it
-- replays (without calling), errors replayed as they were raised, a call
-- in flight when the record was written made again, and each kind of
-- divergence named. (End to end, with real storages, kills and reloads:
-- tests/e2e/durable_dialogs.c.)
local t = require("lib.apitest")
local core = require("tghost.core")
local runtime = require("tghost.runtime")
local dialog = require("tghost.dialog")

-- This file runs as the script's top level: a job of its own, whose
-- core.job_local() the record lives in.
local function state(mode, events)
  local d = { mode = mode, events = events or {}, pos = 0, display = "1:1" }
  core.job_local(true).dialog = d
  return d
end

local calls = 0
local function send(method, text)
  calls = calls + 1
  if text == "boom" then
    error(setmetatable({ method = method, error_code = 400,
                         description = "Bad Request: boom" }, runtime.ApiError))
  end
  return { message_id = calls, text = text }, "second"
end

t.test("a record: each call's results, in order", function()
  calls = 0
  local d = state("record")
  local m, extra = dialog.effect("api", "sendMessage", send, "sendMessage", "hi")
  t.eq(m, { message_id = 1, text = "hi" })
  t.eq(extra, "second")
  local ok, e = pcall(dialog.effect, "api", "sendMessage", send, "sendMessage",
                      "boom")
  t.eq(ok, false)
  t.eq(getmetatable(e), runtime.ApiError)
  t.eq(#d.events, 2)
  t.eq(d.events[1], { k = "api", f = "sendMessage", rn = 2,
                      r = { { message_id = 1, text = "hi" }, "second" } })
  t.eq(d.events[2].e.api.description, "Bad Request: boom")
end)

t.test("a replay answers from the record, without calling", function()
  calls = 0
  local recorded = state("record")
  dialog.effect("api", "sendMessage", send, "sendMessage", "one")
  pcall(dialog.effect, "api", "sendMessage", send, "sendMessage", "boom")
  dialog.effect("time", nil, function() return 1717000000 end)
  local events = recorded.events
  calls = 0
  local d = state("replay", events)
  local m = dialog.effect("api", "sendMessage", send, "sendMessage", "one")
  t.eq(m.message_id, 1)
  local ok, e = pcall(dialog.effect, "api", "sendMessage", send,
                      "sendMessage", "boom")
  t.eq(ok, false)
  t.eq(getmetatable(e), runtime.ApiError)
  t.eq(tostring(e), "Call to 'sendMessage' failed! (400: Bad Request: boom)")
  t.eq(dialog.effect("time", nil, os.time), 1717000000)
  t.eq(calls, 0, "calls made while replaying")
  -- The record is over: live from here, and recorded.
  t.eq(d.mode, "replay")
  dialog.effect("api", "sendMessage", send, "sendMessage", "live")
  t.eq(calls, 1)
  t.eq(d.mode, "record")
  t.eq(#d.events, 4)
end)

t.test("a call in flight when the record was written is made again", function()
  calls = 0
  local d = state("replay", {
    { k = "api", f = "sendMessage", r = { { message_id = 9 } }, rn = 1 },
    { k = "api", f = "sendMessage" },              -- no result: in flight
  })
  dialog.effect("api", "sendMessage", send, "sendMessage", "a")
  t.eq(calls, 0)
  local m = dialog.effect("api", "sendMessage", send, "sendMessage", "b")
  t.eq(calls, 1)
  t.eq(m.text, "b")
  t.eq(d.mode, "record")
  t.eq(#d.events, 2, "the event in flight is replaced, not kept")
end)

t.test("a call the record does not have next: ConversationChanged", function()
  state("replay", {
    { k = "api", f = "sendMessage", r = { {} }, rn = 1 },
    { k = "wait", f = "k1:1", r = { t = true } },
  })
  dialog.effect("api", "sendMessage", send, "sendMessage", "a")
  local msg = t.raises(function()
    dialog.effect("api", "sendPhoto", send, "sendPhoto", "b")
  end, "ConversationChanged: conversation 1:1 does not replay its record: "
       .. "at step 2 the record has ctx:wait on 1:1, the code now "
       .. "bot.api.sendPhoto (", "dialog.lua:")
  -- Once changed, every call raises the same error.
  local again = t.raises(function() dialog.effect("time", nil, os.time) end)
  t.eq(again, msg)
end)

t.test("the handler ending before its record does", function()
  local d = state("replay", {
    { k = "api", f = "sendMessage", r = { {} }, rn = 1 },
    { k = "wait", f = "c-100", r = { t = true } },
  })
  dialog.effect("api", "sendMessage", send, "sendMessage", "a")
  local changed = runtime.dialog_finish(nil)
  t.eq(getmetatable(changed), runtime.ConversationChanged)
  t.eq(tostring(changed), "ConversationChanged: conversation 1:1 does not "
       .. "replay its record: at step 2 the record has ctx:wait on chat "
       .. "-100, the code now the handler's end; it ends")
  t.eq(d.mode, "off")
end)

t.test("without a record, calls go straight through", function()
  core.job_local(true).dialog = nil
  calls = 0
  t.eq(dialog.effect("api", "x", send, "x", "y").text, "y")
  t.eq(calls, 1)
end)

t.done()
