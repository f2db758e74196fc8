-- Durable conversations: each dialog's record, and its replay.
--
-- With conversation{ storage = store }, every update's handler records
-- the events it consumes, in order: what each ctx:wait returned (the
-- answer's update, a timeout, a cancel), and the results of its Bot API
-- calls, tghost.http requests, storage reads and writes, sleeps, clock
-- readings and random numbers. When a handler first waits, the record
-- (with the update that started it) goes to the store, under the
-- conversation's key, and again at each wait. A dialog resumes (after a
-- restart, a crash, a reload that changed the code, or on another
-- process) by running its first update through the bot again, in replay:
-- each of those calls is answered from the record, in order, without
-- being made again (no message is sent twice, no sleep waited, no write
-- repeated), until the record ends at the wait that was open; from there
-- the dialog is live again. A replayed call that is not the one the
-- record has next (another kind, another method, another wait key; or the
-- handler ends before its record does) means the code changed under the
-- dialog: it ends, its record is deleted, and bot.catch gets a
-- tghost.ConversationChanged error (err.ctx: the dialog's first update).
-- As grammY's conversations v2 and Temporal's workflows replay.
--
-- The record (tghost's storage codec, JSON): { v = 1, ver = version, id =
-- "<update id>", uid = update id, u = the update's JSON, ev = { events }
-- }; an event { k = kind, f = what (method, url, key), r = { results },
-- rn = how many, e = error } (a wait's: r = { u = update, m = matched } or
-- { t = true } timeout, { c = reason } cancelled, { x = message } filter
-- error; d = its deadline, wall clock; no r while it is the open wait).
--
-- A job's state (core.job_local().dialog): mode "record" (live: events are
-- appended), "replay" (events are answered from the record, pos of them
-- used), "off" (not recorded: too many calls before a wait, or a value
-- the record cannot keep), "changed" (diverged: every call raises).
local core = require("tghost.core")
local conv = require("tghost.conv")
local codec = require("tghost.storagecore")
local json = require("tghost.json")
local runtime = require("tghost.runtime")
local errors = require("tghost.errors")
errors.internal()

local M = {}

local FORMAT = 1
-- An update that makes this many calls before it first waits is not a
-- dialog worth recording (a broadcast loop): it runs unrecorded.
local MAX_EVENTS_BEFORE_WAIT = 1000

-- conversation{ storage = ... } set this: { backend = the store's own
-- backend (bytes, not recorded), label, prefix, version }.
local config

local ConversationChanged = runtime.ConversationChanged

function M.enabled() return config ~= nil end
runtime.dialogs_durable = M.enabled

local job_local = core.job_local
local function current()
  local jl = job_local()
  return jl and jl.dialog
end

-- --- errors kept in the record ---------------------------------------------

local function error_to_record(e)
  if getmetatable(e) == runtime.ApiError then
    local t = {}
    for k, v in pairs(e) do
      if type(k) == "string" then t[k] = v end
    end
    return { api = t }
  end
  if type(e) == "string" then return { s = e } end
  return { s = tostring(e) }
end

local function error_from_record(e)
  if e.api then return setmetatable(e.api, runtime.ApiError) end
  return e.s
end

-- --- divergence --------------------------------------------------------------

-- How a step reads in ConversationChanged's message.
local NAMES = { api = "bot.api.", http = "tghost.http ", sleep = "tghost.sleep",
                now = "tghost.now", time = "os.time", clock = "os.clock",
                random = "math.random", get = "storage get ",
                set = "storage set ", delete = "storage delete ",
                list = "storage list ", cas = "storage cas " }
local SPACES = { b = "chat %s", k = "%s", u = "user %s", c = "chat %s" }

local function describe(kind, what)
  if kind == "wait" then
    local ns, rest = (what or ""):sub(1, 1), (what or ""):sub(2)
    return "ctx:wait on " .. string.format(SPACES[ns] or "%s", rest)
  end
  return (NAMES[kind] or (kind .. " ")) .. (what or "")
end

local function diverge(d, expected, got)
  -- Once changed, every call raises the first error again.
  if d.changed then error(d.changed, 0) end
  d.mode = "changed"
  local e = setmetatable({ key = d.display, at = d.pos + 1,
                           expected = expected, got = got,
                           where = errors.where(), ctx = d.ctx },
                         ConversationChanged)
  d.changed = e
  error(e, 0)
end

-- The record's next event, which must be a kind with fingerprint fp; nil
-- when the record has no more (the dialog is live from here).
local function next_event(d, kind, fp)
  local ev = d.events[d.pos + 1]
  if ev == nil then
    d.mode = "record"
    return nil
  end
  if ev.k ~= kind or ev.f ~= fp then
    diverge(d, describe(ev.k, ev.f), describe(kind, fp))
  end
  if ev.k ~= "wait" and ev.r == nil and ev.e == nil then
    -- A call in flight when the record was written: it runs again, and
    -- the record goes on live from here.
    for i = #d.events, d.pos + 1, -1 do d.events[i] = nil end
    d.mode = "record"
    return nil
  end
  d.pos = d.pos + 1
  return ev
end

-- --- effects -----------------------------------------------------------------

local function pack_into(ev, ok, ...)
  if ok then
    local n = select("#", ...)
    ev.r, ev.rn = { ... }, n
    return true
  end
  ev.e = error_to_record((...))
  return false
end

local function append(d, ev)
  local n = #d.events + 1
  d.events[n] = ev
  if not d.key and n > MAX_EVENTS_BEFORE_WAIT then
    d.mode = "off"
    d.events = {}
  end
end

-- fn(...) is a call whose results the record keeps (kind, and fp what it
-- calls: a method, a URL, a key): returns its results or raises its
-- error; while replaying, from the record, without calling fn.
function M.effect(kind, fp, fn, ...)
  local jl = job_local()
  local d = jl and jl.dialog
  if d == nil then return fn(...) end
  local mode = d.mode
  if mode == "off" then return fn(...) end
  if mode == "changed" then diverge(d, "nothing", describe(kind, fp)) end
  if mode == "replay" then
    local ev = next_event(d, kind, fp)
    if ev then
      if ev.e ~= nil then error(error_from_record(ev.e), 0) end
      return table.unpack(ev.r, 1, ev.rn)
    end
  end
  local ev = { k = kind, f = fp }
  append(d, ev)
  local function settle(ok, ...)
    if pack_into(ev, ok, ...) then return ... end
    error((...), 0)
  end
  return settle(pcall(fn, ...))
end

-- --- the record ----------------------------------------------------------------

local function record_of(d)
  d.update_json = d.update_json or conv.update_json()
                  or json.encode(d.update)
  return { v = FORMAT, ver = config.version, id = d.id, uid = d.uid,
           dk = d.display, u = d.update_json, ev = d.events }
end

-- Writes d's record under the key of its open wait (the old one goes if
-- the dialog changed keys). A record the storage cannot keep makes the
-- dialog unrecorded, with a warning.
local function persist(d, key)
  local bytes, err = codec.encode(record_of(d))
  if not bytes then
    core.log("warn", "conversation " .. d.display .. " is not durable: its "
             .. "record cannot be stored: " .. tostring(err))
    d.mode = "off"
    return
  end
  local skey = config.prefix .. key
  local b = config.backend
  if d.key and d.key ~= skey then b:cas(d.key, d.bytes, nil, 0) end
  b:set(skey, bytes, 0)
  d.key, d.bytes = skey, bytes
  -- The answers the dialog took so far are safe in the record now.
  conv.release_receipts()
  core.log("debug", string.format("conversation %s: record stored (%d "
                                  .. "events, %d bytes)", d.display,
                                  #d.events, #bytes))
end

-- The dialog ended: its record goes, unless a newer dialog of the key has
-- written its own there meanwhile.
local function forget(d)
  if d.key then
    local ok, e = pcall(config.backend.cas, config.backend, d.key, d.bytes,
                        nil, 0)
    if not ok then
      core.log("warn", "conversation " .. d.display .. ": its record could "
               .. "not be deleted: " .. tostring(e))
    end
    d.key = nil
  end
end

-- --- waits ---------------------------------------------------------------------

-- Called by ctx:wait for each time it waits on key (internal form; display:
-- as messages show it; timeout seconds or nil). Returns
--   "replayed", event   the record's answer: the caller uses event.r
--   "live", event       wait for real; event gets the outcome (settle)
--   nil                 not recorded: wait for real
-- A live wait's record is stored before this returns. deadline: the live
-- wait's, as core.now() counts, for a wait that was open in the record.
function M.wait(key, display, timeout, ctx)
  local d = current()
  if d == nil or d.mode == "off" or not config then return nil end
  d.display = d.display or display
  d.ctx = d.ctx or ctx
  if d.mode == "changed" then diverge(d, "nothing", describe("wait", key)) end
  if d.mode == "replay" then
    local ev = next_event(d, "wait", key)
    if ev and ev.r ~= nil then
      -- What ran while the dialog waited (its child tasks) runs first.
      core.sleep(0)
      return "replayed", ev
    end
    if ev then
      -- The wait that was open: live from here, with what is left of it.
      d.mode = "record"
      d.open = ev
      d.display = display
      local left = ev.d and ev.d - core.time()
      return "live", ev, left and core.now() + math.max(left, 0)
    end
  end
  local ev = d.open
  if ev == nil then
    ev = { k = "wait", f = key, d = timeout and core.time() + timeout }
    append(d, ev)
    if d.mode == "off" then return nil end
    d.open = ev
    d.display = display
    -- Its answer may come while the record is written: held for the wait.
    conv.take(key)
    persist(d, key)
    if d.mode == "off" then return nil end
  end
  return "live", ev
end

-- What a live wait's event got: ("update", ctx, matched) from the
-- waiting, ("timeout"), ("cancelled", reason), ("error", message).
function M.settle(ev, kind, a, b)
  local d = current()
  if d == nil or d.open ~= ev then return end
  d.open = nil
  if kind == "update" then ev.r = { u = a.update, m = b }
  elseif kind == "timeout" then ev.r = { t = true }
  elseif kind == "cancelled" then ev.r = { c = a }
  else ev.r = { x = tostring(a) } end
end

-- A recorded wait's outcome as conv.wait gives it.
function M.outcome(ev, bot)
  local r = ev.r
  if r.u then return "update", require("tghost.context").new(r.u, bot), r.m end
  if r.t then return "timeout" end
  if r.c then return "cancelled", r.c end
  return "error", r.x
end

-- Clocks and random numbers, for the code of a generation that keeps its
-- conversations: their readings are recorded, and a replay gets the same.
-- (tghost.now and tghost.sleep go through M.effect always: lua/tghost.lua.)
local raw_time, raw_clock, raw_date, raw_random = os.time, os.clock, os.date,
                                                  math.random
local function install_clocks()
  os.time = function(t)
    if t ~= nil then return raw_time(t) end
    return M.effect("time", nil, raw_time)
  end
  os.clock = function() return M.effect("clock", nil, raw_clock) end
  os.date = function(fmt, t)
    if t == nil then t = os.time() end
    return raw_date(fmt or "%c", t)
  end
  math.random = function(...) return M.effect("random", nil, raw_random, ...) end
end

function M.configure(c)
  if config == nil then install_clocks() end
  config = c
end

-- Whether this job's dialog must go on in the current generation (a
-- reload replaced its own): then conv.move() hands it over there.
function M.stale()
  local d = current()
  return d ~= nil and d.key ~= nil and d.mode == "record" and conv.stale()
end

-- --- a job's life ----------------------------------------------------------------

-- The updates the resumed dialogs' records have (each one's first update
-- and the answers it took), by id: the journal hands them back after a
-- restart, and they must not run again.
local resumed_ids = {}

local function note_ids(record)
  resumed_ids[record.uid] = true
  for _, ev in ipairs(record.ev or {}) do
    local u = ev.k == "wait" and ev.r and ev.r.u
    if u and u.update_id then resumed_ids[u.update_id] = true end
  end
end

-- The C side asks for each update the journal hands back.
function runtime.dialog_has(id)
  if resumed_ids[id] then
    resumed_ids[id] = nil
    return true
  end
  return false
end

local adopt, load

-- A record the store keeps for this update as a dialog's first update,
-- under one of its conversation keys: the dialog of an update handed
-- over again (redelivered), whose record was stored by a process that is
-- gone or gave its cluster partition up. The record and its key, or nil.
local function record_for(update)
  local b, prefix = config.backend, config.prefix
  local keys = { runtime.conversation_keys(update, "bkuc") }
  for i = 1, 4 do
    local key = keys[i]
    local bytes = key and b:get(prefix .. key)
    local record = bytes and load(bytes)
    if record and record.uid == update.update_id then
      record.bytes = bytes
      return record, key
    end
  end
  return nil
end

-- runtime.handle_update, when an update starts: it is recorded; or, if
-- it comes again and is the first update of a stored dialog, that dialog
-- resumes (in a cluster, where its partition went: lua/tghost.lua).
function runtime.dialog_begin(update, redelivered)
  if not config then return true end
  local id = update.update_id
  local jl = job_local(true)
  if jl.dialog ~= nil then return true end
  if redelivered then
    local ok, record, key = pcall(record_for, update)
    if not ok then
      core.log("warn", "conversations: the record of update " .. tostring(id)
               .. " could not be read: " .. tostring(record))
    elseif record then
      note_ids(record)
      core.log("info", string.format("conversation %s resumes from its record "
                                     .. "(%d events)", record.dk or key,
                                     #(record.ev or {})))
      adopt(record, key, update)
      return true
    end
  end
  jl.dialog = { mode = "record", events = {}, pos = 0, uid = id,
                id = tostring(id), update = update }
  return true
end

-- runtime.handle_update, when the handler's stack has returned (err: what
-- it raised, if it did). Returns the divergence to report (a
-- ConversationChanged) if the handler did not raise it itself.
function runtime.dialog_finish(err)
  local d = current()
  if d == nil then return nil end
  local changed = d.changed
  if d.mode == "replay" and d.pos < #d.events then
    -- The handler ended before its record did.
    local ev = d.events[d.pos + 1]
    changed = setmetatable({ key = d.display or "?", at = d.pos + 1,
                             expected = describe(ev.k, ev.f),
                             got = "the handler's end", ctx = d.ctx },
                           ConversationChanged)
  end
  if config then forget(d) end
  d.mode = "off"
  if changed and err ~= changed then return changed end
  return nil
end

-- --- resuming ------------------------------------------------------------------------

-- This job replays record (stored under key; update: its first update,
-- decoded).
function adopt(record, key, update)
  local jl = job_local(true)
  local d = { mode = "replay", events = record.ev or {}, pos = 0,
              uid = record.uid, id = record.id, update = update,
              update_json = record.u, key = config.prefix .. key,
              bytes = record.bytes, display = record.dk }
  jl.dialog = d
  record.bytes = nil
  if record.ver ~= config.version then
    d.mode = "changed"
    d.changed = setmetatable({ key = record.dk or key, at = 0,
                               expected = "version " .. tostring(record.ver),
                               got = "version " .. tostring(config.version),
                               ctx = require("tghost.context").new(update,
                                                                   runtime.bot) },
                             ConversationChanged)
  end
end

-- A record as the store has it: decoded, or nil and why.
function load(bytes)
  local ok, record = pcall(codec.decode, bytes)
  if not ok or type(record) ~= "table" or record.v ~= FORMAT
     or type(record.u) ~= "string" then
    return nil, "not a conversation record of this tghost"
  end
  return record
end

-- The job conv.resume started (or the C side after a reload): record,
-- loaded, is replayed through the bot from its first update.
function runtime.resume_dialog(record, key)
  local update = json.decode(record.u)
  adopt(record, key, update)
  return runtime.handle_update(update, false, "resume")
end

-- After a reload (the C side moves a waiting dialog here): its record is
-- read again from the store.
function runtime.resume_dialog_key(key)
  local bytes = config.backend:get(config.prefix .. key)
  if bytes == nil then return end
  local record, why = load(bytes)
  if not record then
    core.log("warn", "conversation record " .. config.prefix .. key .. ": "
             .. why)
    return
  end
  record.bytes = bytes
  return runtime.resume_dialog(record, key)
end

-- At the first start (from run(), before updates are fetched): every
-- dialog the store holds resumes, each in a job of its own that owns its
-- key at once. Returns how many.
function M.resume_all()
  if not config then return 0 end
  local b, prefix = config.backend, config.prefix
  local keys, cursor = {}, nil
  repeat
    local page
    page, cursor = b:list(prefix, 1000, cursor)
    for _, k in ipairs(page) do keys[#keys + 1] = k end
  until cursor == nil
  local n = 0
  for _, skey in ipairs(keys) do
    local bytes = b:get(skey)
    local record, why
    if bytes then record, why = load(bytes) end
    if record then
      record.bytes = bytes
      local key = skey:sub(#prefix + 1)
      if conv.resume(key, record.uid, record.u, runtime.resume_dialog, record,
                     key) then
        note_ids(record)
        n = n + 1
      end
    elseif bytes then
      core.log("warn", "conversation record " .. skey .. ": " .. why)
    end
  end
  return n
end

return M
