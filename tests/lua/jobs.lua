-- tghost.jobs and bot.job, run by tghost as a script that never calls
-- run(): its top level declares jobs (nothing is stored), so these tests
-- check what a call accepts and refuses, the ids it gives, and what a
-- job's handler sees (runtime.handle_job with a run made up here, the Bot
-- API intercepted by a transformer). The e2e tests (tests/e2e/jobs.c) run
-- jobs for real.
local t = require("lib.apitest")
local runtime = require("tghost.runtime")
local jobs = tghost.jobs

local sent = {}
bot.api.config.use(function(prev, method, params)
  sent[#sent + 1] = { method = method, params = params }
  return { message_id = #sent }
end)

-- Runs a job as the host would, in a job of its own (a failure marks
-- that job failed, not the test's top level).
local function run_job(run)
  tghost.wait(tghost.spawn(runtime.handle_job, run))
end

local ran = {}
bot.job("remind", function(job) ran[#ran + 1] = job end)
bot.job("boom", function() error("kaboom") end)

t.test("bot.job checks its arguments", function()
  t.raises(function() bot.job("", function() end) end, "non-empty string")
  t.raises(function() bot.job(nil, function() end) end, "non-empty string")
  t.raises(function() bot.job("x", "notafunction") end,
           "fn must be a function, not string")
  t.raises(function() bot.job("remind", function() end) end,
           "a handler for \"remind\" is registered already")
  t.eq(bot:job("colon", function() end), bot, "bot:job returns the bot")
end)

t.test("a job needs a handler, with a suggestion", function()
  t.raises(function() jobs.at(60, "remidn") end,
           "no handler for the job \"remidn\"", "did you mean remind?")
end)

t.test("declarations at the top level get ids", function()
  t.eq(jobs.at(60, "remind", nil, { id = "mine" }), "mine", "explicit id")
  t.eq(jobs.at(60, "remind"), "remind@1", "first declaration")
  t.eq(jobs.every(60, "remind"), "remind@2", "second declaration")
  t.eq(jobs.cron("0 9 * * *", "remind", nil, { prefix = "p:" }), "p:remind@3",
       "with a prefix")
  t.eq(jobs.daily("09:30", "boom"), "boom@1", "counted per name")
  t.eq(jobs.cancel("mine"), nil, "a declared cancel returns nothing")
end)

t.test("when: seconds, durations, times of day, dates", function()
  for _, when in ipairs({ 0, 1.5, 86400, os.time() + 60, "90s", "10m", "1h30m",
                          "1.5h", "2d", "1w", "500ms", "09:30", "9:05",
                          "2031-12-24 18:00", "2032-02-29T00:00" }) do
    t.truthy(jobs.at(when, "remind"), "at(" .. tostring(when) .. ")")
  end
  t.eq(jobs.duration("1h30m"), 5400, "1h30m")
  t.eq(jobs.duration("1.5h"), 5400, "1.5h")
  t.eq(jobs.duration("500ms"), 0.5, "500ms")
  t.eq(jobs.duration("10 m"), nil, "no spaces")
  t.eq(jobs.duration("10x"), nil, "unknown unit")
  for _, bad in ipairs({ "soon", "25:00", "12:60", "2031-02-30 10:00",
                         "2031-02-29 10:00", "2031-13-01 10:00", "" }) do
    t.raises(function() jobs.at(bad, "remind") end, "is not a")
  end
  t.raises(function() jobs.at(-1, "remind") end, "non-negative")
  t.raises(function() jobs.at(0 / 0, "remind") end, "non-negative")
  t.raises(function() jobs.at(nil, "remind") end, "the time must be")
  t.raises(function() jobs.at({}, "remind") end, "the time must be")
end)

t.test("every: intervals and first", function()
  t.truthy(jobs.every("10m", "remind"), "a duration")
  t.truthy(jobs.every(0.5, "remind", nil, { first = "09:00" }), "first at 09:00")
  t.truthy(jobs.every(60, "remind", nil, { first = 30 }), "first in 30 s")
  t.raises(function() jobs.every(0, "remind") end, "at least 0.001")
  t.raises(function() jobs.every("often", "remind") end, "the interval must be")
  t.raises(function() jobs.every(60, "remind", nil, { first = "later" }) end,
           "opts.first", "is not a time")
end)

t.test("cron and daily check their expressions", function()
  t.raises(function() jobs.cron("0 25 * * *", "remind") end,
           "cron \"0 25 * * *\": hour 25 is out of range 0-23")
  t.raises(function() jobs.cron("0 0 30 2 *", "remind") end, "never fires")
  t.raises(function() jobs.cron("* * * *", "remind") end, "expected 5 fields")
  t.raises(function() jobs.cron(5, "remind") end, "must be a string")
  t.truthy(jobs.cron("@hourly", "remind"), "a macro")
  t.truthy(jobs.cron("*/15 9-17 * * mon-fri", "remind", nil,
                     { tz = "Europe/Berlin" }), "steps, ranges, names")
  t.raises(function() jobs.cron("0 9 * * *", "remind", nil, { tz = "../etc" }) end,
           "is not a time zone name")
  t.raises(function() jobs.daily("9am", "remind") end, "must be \"HH:MM\"")
  t.raises(function() jobs.daily("24:00", "remind") end, "must be \"HH:MM\"")
  t.truthy(jobs.daily("09:00", "remind", nil, { days = "mon-fri" }), "days text")
  t.truthy(jobs.daily("09:00", "remind", nil, { days = { 1, 3, 5 } }), "days list")
  t.raises(function() jobs.daily("09:00", "remind", nil, { days = { 8 } }) end,
           "opts.days[1] must be a day 0-7")
  t.raises(function() jobs.daily("09:00", "remind", nil, { days = {} }) end,
           "opts.days is empty")
end)

t.test("options are checked, misspellings suggested", function()
  t.raises(function() jobs.at(1, "remind", nil, { ids = "x" }) end,
           "unknown option ids (did you mean id?)")
  t.raises(function() jobs.at(1, "remind", nil, { first = 1 }) end,
           "unknown option first")
  t.raises(function() jobs.at(1, "remind", nil, "opts") end,
           "opts must be a table")
  t.raises(function() jobs.at(1, "remind", nil, { id = "" }) end,
           "opts.id must be a non-empty string")
  t.raises(function() jobs.at(1, "remind", nil, { id = string.rep("x", 201) }) end,
           "at most 200 bytes")
  t.raises(function() jobs.at(1, "remind", nil, { id = "a\0b" }) end,
           "opts.id must be")
  t.raises(function() jobs.at(1, "remind", nil, { id = "a\nINFO fake" }) end,
           "without control characters")
  t.raises(function() jobs.at(1, "remind", nil, { prefix = "p\r" }) end,
           "without control characters")
  t.raises(function() bot.job("bad\nname", function() end) end,
           "must not contain control characters")
  t.raises(function() jobs.at(1, "remind", nil, { misfire = "sometimes" }) end,
           "opts.misfire must be \"once\", \"skip\" or \"all\"")
  t.raises(function() jobs.at(1, "remind", nil, { misfireLimit = 0 }) end,
           "misfireLimit must be a whole number >= 1")
  t.raises(function() jobs.at(1, "remind", nil, { tz = 5 }) end,
           "opts.tz must be a time zone name")
end)

t.test("data must be storable; nil is no data", function()
  t.raises(function() jobs.at(1, "remind", print) end,
           "the job's data cannot be stored")
  t.raises(function() jobs.at(1, "remind", { f = print }) end,
           "cannot be stored", "function")
  t.truthy(jobs.at(1, "remind", nil), "nil data")
  t.truthy(jobs.at(1, "remind", { chat_id = -1001234567890, list = { 1, 2 } }),
           "a table")
end)

t.test("list and get need the store (not at the top level)", function()
  t.raises(function() jobs.list() end, "not known at the top level")
  t.raises(function() jobs.get("x") end, "not known at the top level")
  t.raises(function() jobs.list(5) end, "the prefix must be a string")
  t.raises(function() jobs.cancel(5) end, "the id must be a string")
end)

t.test("a job's handler gets the run, job.api and job:reply", function()
  run_job({ id = "c1:7", name = "remind", attempt = 2,
                       redelivered = true, scheduledAt = 1700000000.5,
                       data = { chat_id = 42, text = "tea",
                                message_thread_id = 3 } })
  local job = ran[#ran]
  t.eq(job.id, "c1:7", "id")
  t.eq(job.data.text, "tea", "data")
  t.eq(job.redelivered, true, "redelivered")
  t.eq(job.attempt, 2, "attempt")
  t.eq(job.scheduledAt, 1700000000.5, "scheduledAt")
  t.eq(job.api, bot.api, "job.api is bot.api")
  t.eq(tostring(job), "tghost.Job(remind, id c1:7)", "tostring")
  local before = #sent
  job:reply("hello", { disable_notification = true })
  t.eq(#sent, before + 1, "one call")
  t.eq(sent[#sent].method, "sendMessage", "method")
  t.eq(sent[#sent].params, { chat_id = 42, text = "hello", message_thread_id = 3,
                             disable_notification = true }, "params")
  for _, data in ipairs({ { chat = 43 }, { chat = { id = 44 } } }) do
    run_job({ id = "x", name = "remind", data = data })
    ran[#ran]:reply("hi")
    t.eq(sent[#sent].params.chat_id, data.chat_id or (type(data.chat) == "table"
         and data.chat.id or data.chat), "chat from data")
  end
  run_job({ id = "y", name = "remind", data = "not a chat" })
  t.raises(function() ran[#ran]:reply("hi") end, "names no chat")
  t.raises(function() ran[#ran].reply("hi") end, "call it with a colon")
end)

t.test("errors in a job's handler go to bot.catch with err.job", function()
  local caught
  bot.catch(function(err) caught = err end)
  run_job({ id = "b1", name = "boom", data = nil })
  t.truthy(caught, "bot.catch was called")
  t.eq(caught.job.id, "b1", "err.job")
  t.eq(caught.ctx, nil, "no ctx")
  t.truthy(tostring(caught):find("error in job boom (id b1): ", 1, true),
           tostring(caught))
  t.truthy(tostring(caught.error):find("kaboom", 1, true), "err.error")
  run_job({ id = "g1", name = "gone" })
  t.truthy(tostring(caught.error):find("no handler for the job \"gone\"", 1, true),
           tostring(caught.error))
end)

t.done()
