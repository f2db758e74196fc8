-- Scheduled jobs: tghost.jobs and bot.job.
--
--   bot.job("remind", function(job) job:reply(job.data.text) end)
--   tghost.jobs.at("10m", "remind", { chat_id = id, text = "tea" })
--   tghost.jobs.every(3600, "cleanup")
--   tghost.jobs.cron("0 9 * * 1-5", "digest", nil, { tz = "Europe/Berlin" })
--   tghost.jobs.daily("09:00", "digest", nil, { days = "mon-fri" })
--   tghost.jobs.cancel(id)   tghost.jobs.list(prefix)   tghost.jobs.get(id)
--
-- Functions cannot be stored, so a job names its handler (bot.job); its
-- data is any storable value (what tghost.storage stores). Each schedule
-- call returns the job's id: opts.id names it (scheduling that id again
-- replaces the job), opts.prefix makes a new id of the prefix and a
-- number. From a handler, a job or a task the call returns once the job
-- is stored; from the script's top level it is a declaration, taken into
-- account when the bot starts (or a reload goes live), and a job
-- declared again with the same id and schedule keeps its place, so
-- restarts and reloads do not multiply or postpone it. A declaration
-- without opts.id is named after its handler: "digest@1" for the first
-- declaration of "digest", "digest@2" for the second.
--
-- The C half (src/script/luajobs.c, src/pipeline/jobsched.c) keeps, claims
-- and runs them; runtime.handle_job below runs one.
local core = require("tghost.jobscore")
local errors = require("tghost.errors")
local runtime = require("tghost.runtime")
local bot = require("tghost.bot")
local tcore = require("tghost.core")
errors.internal()

local M = {}
local handlers = {}

local function check_name(api, name)
  if type(name) ~= "string" or name == "" or #name > 200 then
    errors.raise("%s: the job's name must be a non-empty string (the name "
                 .. "given to bot.job), not %s", api,
                 type(name) == "string" and "\"\"" or type(name))
  end
  if name:find("%c") then
    errors.raise("%s: the job's name must not contain control characters", api)
  end
end

-- bot.job(name, fn): fn(job) runs each job scheduled under name.
bot.job = function(first, name, fn)
  if first ~= bot then name, fn = first, name end
  check_name("bot.job", name)
  if type(fn) ~= "function" then
    errors.raise("bot.job(%q, fn): fn must be a function, not %s", name,
                 type(fn))
  end
  if handlers[name] then
    errors.raise("bot.job: a handler for %q is registered already", name)
  end
  handlers[name] = fn
  return bot
end

-- --- times ------------------------------------------------------------------

local UNITS = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- "1h30m", "10m", "45s", "1.5h", "2d" -> seconds, or nil.
local function duration(s)
  if s == "" then return nil end
  local total, pos = 0, 1
  while pos <= #s do
    local num, unit, e = s:match("^(%d+%.?%d*)(%a+)()", pos)
    if not num or not UNITS[unit] then return nil end
    total = total + tonumber(num) * UNITS[unit]
    pos = e
  end
  return total
end
M.duration = duration

local function days_in(year, month)
  local d = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if month == 2 and (year % 4 == 0 and (year % 100 ~= 0 or year % 400 == 0)) then
    return 29
  end
  return d[month]
end

-- Milliseconds since 1970 of a UTC date (days_from_civil).
local function utc_ms(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400000
end

-- When a job first runs, from what a script writes:
--   a number: seconds from now; or, from 1e9 on, a Unix time (os.time()),
--     as memcached reads expiry times
--   "10m", "1h30m", "2d": a duration from now
--   "09:30": the next 09:30 in opts.tz (the system's zone by default)
--   "2025-12-24 18:00" (or with T): that local time in opts.tz
-- Returns first_ms, or first_ms and a cron expression whose next fire
-- time after first_ms it is (resolved in C, where the zone is known),
-- and a text for the schedule.
local function resolve_when(api, when)
  if type(when) == "number" then
    if when ~= when or when < 0 or when == math.huge then
      errors.raise("%s: the time must be a non-negative number of seconds, "
                   .. "not %s", api, tostring(when))
    end
    if when >= 1e9 then
      return math.floor(when * 1000), nil, string.format("%.3f", when)
    end
    return math.floor((core.now() + when) * 1000), nil, "+" .. tostring(when)
  end
  if type(when) ~= "string" then
    errors.raise("%s: the time must be seconds, a duration (\"10m\"), a time "
                 .. "of day (\"09:30\") or a date (\"2025-12-24 18:00\"), not %s",
                 api, type(when))
  end
  local secs = duration(when)
  if secs then return math.floor((core.now() + secs) * 1000), nil, "+" .. when end
  local h, mi = when:match("^(%d%d?):(%d%d)$")
  if h then
    h, mi = tonumber(h), tonumber(mi)
    if h > 23 or mi > 59 then errors.raise("%s: %q is not a time of day", api, when) end
    return -1, string.format("%d %d * * *", mi, h), when
  end
  local y, mo, d, H, M2 = when:match("^(%d%d%d%d)-(%d%d)-(%d%d)[ T](%d%d?):(%d%d)$")
  if y then
    y, mo, d, H, M2 = tonumber(y), tonumber(mo), tonumber(d), tonumber(H), tonumber(M2)
    if mo < 1 or mo > 12 or d < 1 or d > days_in(y, mo) or H > 23 or M2 > 59 then
      errors.raise("%s: %q is not a date and time", api, when)
    end
    -- The first fire of "M H D MO *" from two days before the year begins
    -- (any zone's offset is less) is that date of that year.
    return utc_ms(y, 1, 1) - 2 * 86400000,
           string.format("%d %d %d %d *", M2, H, d, mo), when
  end
  errors.raise("%s: %q is not a time: give seconds, a duration (\"10m\", "
               .. "\"1h30m\"), a time of day (\"09:30\") or a date "
               .. "(\"2025-12-24 18:00\")", api, when)
end

-- --- scheduling ----------------------------------------------------------------

local COMMON = { "id", "prefix", "tz", "misfire", "misfireLimit" }
local function known(extra)
  local list = {}
  for _, k in ipairs(COMMON) do list[#list + 1] = k end
  for _, k in ipairs(extra or {}) do list[#list + 1] = k end
  table.sort(list)
  return list
end
local AT_OPTS, EVERY_OPTS = known(), known({ "first" })
local CRON_OPTS, DAILY_OPTS = known(), known({ "days" })
local MISFIRES = { once = true, skip = true, all = true }

local function check_opts(api, opts, list)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.raise("%s: opts must be a table, not %s", api, type(opts))
  end
  for k in pairs(opts) do
    local ok = false
    for _, name in ipairs(list) do ok = ok or name == k end
    if not ok then
      local s = type(k) == "string" and errors.suggest(k, list)
      errors.raise("%s: unknown option %s%s (known: %s)", api, tostring(k),
                   s and (" (did you mean " .. s .. "?)") or "",
                   table.concat(list, ", "))
    end
  end
  -- Ids show in log lines: no control characters (a newline would fake
  -- a line).
  if opts.id ~= nil and (type(opts.id) ~= "string" or opts.id == ""
                         or #opts.id > 200 or opts.id:find("%c")) then
    errors.raise("%s: opts.id must be a non-empty string of at most 200 "
                 .. "bytes without control characters", api)
  end
  if opts.prefix ~= nil and (type(opts.prefix) ~= "string" or #opts.prefix > 150
                             or opts.prefix:find("%c")) then
    errors.raise("%s: opts.prefix must be a string of at most 150 bytes "
                 .. "without control characters", api)
  end
  if opts.tz ~= nil and (type(opts.tz) ~= "string" or opts.tz == "") then
    errors.raise("%s: opts.tz must be a time zone name such as "
                 .. "\"Europe/Berlin\"", api)
  end
  if opts.misfire ~= nil and not MISFIRES[opts.misfire] then
    errors.raise("%s: opts.misfire must be \"once\", \"skip\" or \"all\", "
                 .. "not %s", api, tostring(opts.misfire))
  end
  if opts.misfireLimit ~= nil and (math.type(opts.misfireLimit) ~= "integer"
                                   or opts.misfireLimit < 1) then
    errors.raise("%s: opts.misfireLimit must be a whole number >= 1", api)
  end
  return opts
end

-- Declarations of this top level, per handler name (for their ids).
local declared = {}

local function put(api, spec, opts)
  local ctx = core.context()
  if ctx == "top" then
    if not spec.id then
      declared[spec.name] = (declared[spec.name] or 0) + 1
      spec.id = (spec.prefix or "") .. spec.name .. "@" .. declared[spec.name]
    end
  elseif ctx == nil then
    errors.raise("%s: call it from a handler, a job or the script's top "
                 .. "level", api)
  end
  if not handlers[spec.name] then
    local names = {}
    for n in pairs(handlers) do names[#names + 1] = n end
    table.sort(names)
    local s = errors.suggest(spec.name, names)
    errors.raise("%s: no handler for the job %q (register it first with "
                 .. "bot.job(%q, fn))%s", api, spec.name, spec.name,
                 s and (" (did you mean " .. s .. "?)") or "")
  end
  return errors.call(core.put, spec)
end

local function base_spec(api, name, data, opts)
  check_name(api, name)
  return {
    id = opts.id, prefix = opts.prefix, name = name, data = data,
    tz = opts.tz, misfire = opts.misfire, misfireLimit = opts.misfireLimit,
  }
end

-- tghost.jobs.at(when, name [, data [, opts]]) -> id: once.
function M.at(when, name, data, opts)
  local api = "tghost.jobs.at"
  opts = check_opts(api, opts, AT_OPTS)
  local spec = base_spec(api, name, data, opts)
  spec["repeat"] = "once"
  spec.first, spec.cron, spec.when = resolve_when(api, when)
  return put(api, spec, opts)
end

local function interval_ms(api, interval)
  local secs = interval
  if type(interval) == "string" then secs = duration(interval) end
  if type(secs) ~= "number" or secs ~= secs or secs < 0.001 or secs > 1e9 then
    errors.raise("%s: the interval must be a number of seconds (at least "
                 .. "0.001) or a duration such as \"10m\", not %s", api,
                 tostring(interval))
  end
  return math.floor(secs * 1000 + 0.5)
end

-- tghost.jobs.every(interval, name [, data [, opts]]) -> id: first after
-- one interval (or at opts.first), then every interval.
function M.every(interval, name, data, opts)
  local api = "tghost.jobs.every"
  opts = check_opts(api, opts, EVERY_OPTS)
  local spec = base_spec(api, name, data, opts)
  spec["repeat"] = "every"
  spec.interval = interval_ms(api, interval)
  if opts.first ~= nil then
    spec.first, spec.cron = resolve_when(api .. ": opts.first", opts.first)
  end
  return put(api, spec, opts)
end

-- tghost.jobs.cron(expr, name [, data [, opts]]) -> id: five-field cron in
-- opts.tz (the system's zone by default).
function M.cron(expr, name, data, opts)
  local api = "tghost.jobs.cron"
  opts = check_opts(api, opts, CRON_OPTS)
  if type(expr) ~= "string" then
    errors.raise("%s: the expression must be a string such as \"0 9 * * 1-5\", "
                 .. "not %s", api, type(expr))
  end
  local spec = base_spec(api, name, data, opts)
  spec["repeat"] = "cron"
  spec.cron = expr
  return put(api, spec, opts)
end

-- tghost.jobs.daily("HH:MM", name [, data [, opts]]) -> id: every day at
-- that local time, or on opts.days (a cron day-of-week field such as
-- "mon-fri" or "1,3,5", or a list of days 0-7, Sunday 0 or 7).
function M.daily(time, name, data, opts)
  local api = "tghost.jobs.daily"
  opts = check_opts(api, opts, DAILY_OPTS)
  local h, mi
  if type(time) == "string" then h, mi = time:match("^(%d%d?):(%d%d)$") end
  if not h or tonumber(h) > 23 or tonumber(mi) > 59 then
    errors.raise("%s: the time must be \"HH:MM\", not %s", api, tostring(time))
  end
  local days = opts.days
  if days == nil then
    days = "*"
  elseif type(days) == "table" then
    local parts = {}
    for i, d in ipairs(days) do
      if math.type(d) ~= "integer" or d < 0 or d > 7 then
        errors.raise("%s: opts.days[%d] must be a day 0-7 (Sunday 0 or 7)", api, i)
      end
      parts[#parts + 1] = tostring(d)
    end
    if #parts == 0 then errors.raise("%s: opts.days is empty", api) end
    days = table.concat(parts, ",")
  elseif type(days) ~= "string" then
    errors.raise("%s: opts.days must be a string such as \"mon-fri\" or a "
                 .. "list of days", api)
  end
  local copy = {}
  for k, v in pairs(opts) do if k ~= "days" then copy[k] = v end end
  return M.cron(string.format("%d %d * * %s", tonumber(mi), tonumber(h), days),
                name, data, copy)
end

-- tghost.jobs.cancel(id) -> true if there was such a job. A run in
-- progress finishes; the job does not run again.
function M.cancel(id)
  if type(id) ~= "string" then
    errors.raise("tghost.jobs.cancel: the id must be a string, not %s", type(id))
  end
  return errors.call(core.cancel, id)
end

-- tghost.jobs.list([prefix [, limit]]) -> the jobs whose id starts with
-- prefix, by id: { id, name, data, next (Unix seconds), schedule (text),
-- running, attempts }.
function M.list(prefix, limit)
  if prefix ~= nil and type(prefix) ~= "string" then
    errors.raise("tghost.jobs.list: the prefix must be a string, not %s",
                 type(prefix))
  end
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 1) then
    errors.raise("tghost.jobs.list: the limit must be a whole number >= 1")
  end
  return errors.call(core.list, prefix or "", limit or 1000)
end

-- tghost.jobs.get(id) -> what list shows of that job, or nil.
function M.get(id)
  if type(id) ~= "string" then
    errors.raise("tghost.jobs.get: the id must be a string, not %s", type(id))
  end
  for _, j in ipairs(errors.call(core.list, id, 1)) do
    if j.id == id then return j end
  end
  return nil
end

-- tghost.jobs.now(): the jobs' clock, Unix seconds (the sandbox's :wait
-- moves it forward).
M.now = core.now

-- --- running -------------------------------------------------------------------

-- What a job's handler gets: job.id, job.name, job.data, job.scheduledAt
-- (Unix seconds), job.attempt, job.redelivered, job.api (bot.api),
-- job:reply(text [, extra]) and job:cancel().
local Job = { __name = "tghost.Job" }
Job.__index = Job
function Job.__tostring(j)
  return string.format("tghost.Job(%s, id %s)", tostring(j.name), tostring(j.id))
end

-- The chat a job's data names: data.chat_id, data.chat (an id), or
-- data.chat.id.
local function chat_of(data)
  if type(data) ~= "table" then return nil end
  if data.chat_id ~= nil then return data.chat_id end
  local chat = data.chat
  if type(chat) == "table" then return chat.id end
  return chat
end

function Job:reply(text, extra)
  if getmetatable(self) ~= Job then
    errors.raise("job:reply(text): call it with a colon")
  end
  local chat = chat_of(self.data)
  if chat == nil then
    errors.raise("job:reply: the data of job %s (id %s) names no chat: put "
                 .. "chat_id (or chat) in it when scheduling", self.name, self.id)
  end
  local params = {}
  if extra ~= nil then
    if type(extra) ~= "table" then
      errors.raise("job:reply(text, extra): extra must be a table, not %s",
                   type(extra))
    end
    for k, v in pairs(extra) do params[k] = v end
  end
  params.chat_id = chat
  params.text = text
  if params.message_thread_id == nil and type(self.data) == "table" then
    params.message_thread_id = self.data.message_thread_id
  end
  return bot.api.sendMessage(params)
end

function Job:cancel()
  return M.cancel(self.id)
end

function runtime.handle_job(run)
  local job = setmetatable(run, Job)
  job.api = bot.api
  job.bot = bot
  local handler = handlers[run.name]
  if not handler then
    local msg = string.format("no handler for the job %q (bot.job(%q, fn)): "
                              .. "the script no longer registers it", run.name,
                              run.name)
    runtime.report(msg, nil, nil, job)
    tcore.failed(msg)
    return
  end
  local ok, e = xpcall(handler, runtime.traced, job)
  if not ok then
    e = runtime.untraced(e)
    runtime.report(e.error, e.traceback, nil, job)
    tcore.failed(runtime.describe(e.error))
  end
end

-- A failure the host reported (the CPU budget, the jobs timeout).
function runtime.handle_job_failure(run, message)
  local job = setmetatable(run, Job)
  job.api = bot.api
  job.bot = bot
  runtime.report(message, nil, nil, job)
end

return M
