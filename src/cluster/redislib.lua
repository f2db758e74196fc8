#!lua name=tghost_cluster
--[[
tghost's cluster, the Redis side: every write an instance makes runs here,
in one Redis Function, atomically. Loaded by tghost at start (FUNCTION LOAD
REPLACE when Redis has an older version or none; a newer one makes tghost
refuse to start). The C side that calls these is src/cluster/clusterlib.c,
and the design is in src/cluster/cluster.h.

Redis runs this with Lua 5.1: numbers are doubles (update ids and stream
ids stay far below 2^53), no integer division, no goto.

Keys, for one bot (K = "tgc:<bot id>:", the caller passes every key):
  K meta          hash   partitions, format
  K offset        string the next getUpdates offset (polling ingress)
  K seen          zset   update ids ingested (score = id), the newest
                         SEEN_WINDOW kept: a second delivery is dropped
  K members       zset   member -> expiry (ms, Redis's clock)
  K lease:<p>     string "<epoch> <member>", with PX: partition p's owner
  K lease:in      string the ingress lease (who polls, who sets the webhook)
  K epoch:<p>     counter, K epoch:in
  K s:<p>         stream partition p's updates: u (update id), k (cluster
                         key), j (the update's JSON)
  K c:<p>         hash   partition p's commit record: "hwm" -> the last
                         stream id read into it; "<stream id>" -> how many
                         times an owner admitted it to run (0: read, not
                         admitted yet), for each entry up to hwm that has
                         not finished; "i:<stream id>" -> how many of those
                         admissions were isolated runs (the entry alone in
                         its process, see src/cluster/consumer.h)
  K dead          stream dead letters: u, p, attempts, reason, j
  K stats         hash   refused (fenced writes refused), dead

Fencing: an owner write names the lease it holds and its epoch; it is
refused (an error reply starting with TGSTALE, and stats.refused + 1)
unless that lease exists now and holds that epoch. A lease is taken with
a new epoch (INCR), so a paused owner that wakes up after its lease
expired, even one that got the same partition back since, writes with an
epoch that no longer holds.
]]

local VERSION = 1
-- Update ids remembered against a second ingestion (webhook redeliveries,
-- two ingress holders overlapping at a hand-over).
local SEEN_WINDOW = 200000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- "<epoch> <member>" -> epoch (a string), or nil.
local function epoch_of(value)
  if not value then return nil end
  return string.match(value, '^(%d+) ')
end

-- Refuses a write whose epoch does not hold the lease.
local function stale(stats, lease, epoch)
  redis.call('HINCRBY', stats, 'refused', 1)
  local cur = epoch_of(redis.call('GET', lease))
  return redis.error_reply('TGSTALE ' .. lease .. ' is ' ..
    (cur and ('held at epoch ' .. cur) or 'not held') ..
    ', the write came with epoch ' .. epoch)
end

local function holds(lease, epoch)
  return epoch ~= '' and epoch_of(redis.call('GET', lease)) == epoch
end

-- Stream ids "ms-seq", compared as numbers.
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function id_less(a, b)
  local ams, aseq = id_parts(a)
  local bms, bseq = id_parts(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local function id_next(id)
  local ms, seq = id_parts(id)
  return string.format('%.0f-%.0f', ms, seq + 1)
end

-- tgc_version: the library's version (tghost loads its own when older).
local function version()
  return VERSION
end

-- tgc_setup KEYS: meta  ARGV: partitions
-- Fixes the bot's partition count on first use; answers the count stored
-- (the caller refuses to start when it differs from its own).
local function setup(keys, args)
  local stored = redis.call('HGET', keys[1], 'partitions')
  if stored then return tonumber(stored) end
  redis.call('HSET', keys[1], 'partitions', args[1], 'format', VERSION)
  return tonumber(args[1])
end

-- tgc_acquire KEYS: lease, epoch  ARGV: member, ttl_ms
-- Takes a free lease with a new epoch: {1, epoch}; {0, "<epoch> <holder>"}
-- when another member holds it. A member that finds its own lease (it
-- stopped on its own clock, or lost a renewal's answer) takes it again
-- with a new epoch, so what it wrote under the old one no longer passes.
local function acquire(keys, args)
  local lease, member = keys[1], args[1]
  local cur = redis.call('GET', lease)
  if cur and string.match(cur, '^%d+ (.*)$') ~= member then
    return {0, cur}
  end
  local epoch = redis.call('INCR', keys[2])
  redis.call('SET', lease, epoch .. ' ' .. member, 'PX', args[2])
  return {1, epoch}
end

-- tgc_renew KEYS: lease...  ARGV: member, ttl_ms, epoch...
-- Extends each lease that still holds its epoch for member; answers one
-- 1 (renewed) or 0 (lost) per lease.
local function renew(keys, args)
  local member, ttl, out = args[1], args[2], {}
  for i = 1, #keys do
    local want = args[i + 2] .. ' ' .. member
    if redis.call('GET', keys[i]) == want then
      redis.call('PEXPIRE', keys[i], ttl)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  return out
end

-- tgc_release KEYS: lease  ARGV: member, epoch
-- Gives a lease up if it still holds epoch for member: 1, else 0.
local function release(keys, args)
  if redis.call('GET', keys[1]) == args[2] .. ' ' .. args[1] then
    redis.call('DEL', keys[1])
    return 1
  end
  return 0
end

-- tgc_commit KEYS: lease, commit, stats  ARGV: epoch, hwm, (op, id)...
-- The owner's commit record, fenced. hwm ('' unchanged) only moves
-- forward. Ops: R id (read into the record, not admitted), A id
-- (admitted to run once more), I id (admitted to run alone: an isolated
-- run, counted apart too), U id / V id (handed back unstarted: an
-- admission / an isolated admission undone), D id (finished: out of the
-- record).
local function commit(keys, args)
  local lease, rec, stats = keys[1], keys[2], keys[3]
  if not holds(lease, args[1]) then return stale(stats, lease, args[1]) end
  local hwm = args[2]
  if hwm ~= '' then
    local cur = redis.call('HGET', rec, 'hwm')
    if not cur or id_less(cur, hwm) then redis.call('HSET', rec, 'hwm', hwm) end
  end
  for i = 3, #args - 1, 2 do
    local op, id = args[i], args[i + 1]
    if op == 'R' then
      redis.call('HSETNX', rec, id, 0)
    elseif op == 'A' then
      redis.call('HINCRBY', rec, id, 1)
    elseif op == 'I' then
      redis.call('HINCRBY', rec, id, 1)
      redis.call('HINCRBY', rec, 'i:' .. id, 1)
    elseif op == 'U' or op == 'V' then
      if tonumber(redis.call('HGET', rec, id) or '0') > 0 then
        redis.call('HINCRBY', rec, id, -1)
      end
      if op == 'V' and tonumber(redis.call('HGET', rec, 'i:' .. id) or '0') > 0 then
        redis.call('HINCRBY', rec, 'i:' .. id, -1)
      end
    elseif op == 'D' then
      redis.call('HDEL', rec, id, 'i:' .. id)
    end
  end
  return 1
end

-- Moves entry id of stream to the dead letters, out of the record.
local function bury(rec, stream, dead, stats, partition, id, attempts, reason)
  local e = redis.call('XRANGE', stream, id, id)[1]
  local u, j = '', ''
  if e then
    local f = e[2]
    for i = 1, #f - 1, 2 do
      if f[i] == 'u' then u = f[i + 1] elseif f[i] == 'j' then j = f[i + 1] end
    end
  end
  redis.call('XADD', dead, '*', 'u', u, 'p', partition, 'attempts', attempts,
             'reason', reason, 'at', now_ms(), 'j', j)
  redis.call('HDEL', rec, id, 'i:' .. id)
  redis.call('HINCRBY', stats, 'dead', 1)
  return u
end

-- tgc_takeover KEYS: lease, commit, stream, dead, stats
--              ARGV: epoch, partition, max_attempts
-- What a new owner of the partition resumes from, fenced: entries whose
-- isolated runs ended their owners max_attempts times become dead
-- letters; answers {hwm or '', dead update ids, {id, admissions, isolated
-- runs, u, k, j}...} with the rest of the record in stream order.
local function takeover(keys, args)
  local lease, rec, stream, dead, stats = keys[1], keys[2], keys[3], keys[4],
                                          keys[5]
  if not holds(lease, args[1]) then return stale(stats, lease, args[1]) end
  local maxa = tonumber(args[3])
  local all = redis.call('HGETALL', rec)
  local hwm, ids, att, iso = '', {}, {}, {}
  for i = 1, #all - 1, 2 do
    local f = all[i]
    if f == 'hwm' then
      hwm = all[i + 1]
    elseif string.sub(f, 1, 2) == 'i:' then
      iso[string.sub(f, 3)] = tonumber(all[i + 1])
    else
      ids[#ids + 1] = f
      att[f] = tonumber(all[i + 1])
    end
  end
  table.sort(ids, id_less)
  local buried, out = {}, {}
  for _, id in ipairs(ids) do
    local a, n = att[id], iso[id] or 0
    if n >= maxa then
      buried[#buried + 1] = bury(rec, stream, dead, stats, args[2], id, a,
        'its owner died or lost the partition during each of its last ' ..
        n .. ' run(s), every one of them alone in its process')
    else
      local e = redis.call('XRANGE', stream, id, id)[1]
      if e then
        local f, u, k, j = e[2], '', '', ''
        for i = 1, #f - 1, 2 do
          if f[i] == 'u' then u = f[i + 1]
          elseif f[i] == 'k' then k = f[i + 1]
          elseif f[i] == 'j' then j = f[i + 1] end
        end
        out[#out + 1] = {id, a, n, u, k, j}
      else
        -- Trimming never passes an entry of the record; one missing was
        -- deleted by hand: forget it.
        redis.call('HDEL', rec, id, 'i:' .. id)
      end
    end
  end
  return {hwm, buried, out}
end

-- tgc_trim KEYS: lease, commit, stream, stats  ARGV: epoch
-- Trims the stream below the oldest entry of the record (below what
-- follows hwm when the record is empty), fenced: never an unfinished or
-- unread entry. Answers how many entries went.
local function trim(keys, args)
  local lease, rec, stream, stats = keys[1], keys[2], keys[3], keys[4]
  if not holds(lease, args[1]) then return stale(stats, lease, args[1]) end
  local all = redis.call('HGETALL', rec)
  local hwm, oldest
  for i = 1, #all - 1, 2 do
    local f = all[i]
    if f == 'hwm' then
      hwm = all[i + 1]
    elseif string.sub(f, 1, 2) ~= 'i:' and (not oldest or id_less(f, oldest)) then
      oldest = f
    end
  end
  local minid = oldest or (hwm and id_next(hwm))
  if not minid then return 0 end
  return redis.call('XTRIM', stream, 'MINID', minid)
end

-- tgc_ingest KEYS: offset, seen, stats, lease:in, stream...
--            ARGV: epoch ('' for webhooks), (update id, stream index, key,
--                  json)...
-- Appends a batch of updates to their partition streams, atomically with
-- the dedup set and the stored offset. With an epoch (polling) it is
-- fenced by the ingress lease and skips ids below the stored offset;
-- webhooks (no epoch) rely on the dedup set alone. Answers {added, dropped
-- as already ingested, offset}.
local function ingest(keys, args)
  local offkey, seen, stats, lease = keys[1], keys[2], keys[3], keys[4]
  local epoch = args[1]
  if epoch ~= '' and not holds(lease, epoch) then
    return stale(stats, lease, epoch)
  end
  local offset = tonumber(redis.call('GET', offkey) or '0')
  local added, dropped, top = 0, 0, nil
  for i = 2, #args - 3, 4 do
    local id = args[i]
    local n = tonumber(id)
    if (epoch ~= '' and n < offset) or redis.call('ZSCORE', seen, id) then
      dropped = dropped + 1
    else
      redis.call('XADD', keys[4 + tonumber(args[i + 1])], '*', 'u', id,
                 'k', args[i + 2], 'j', args[i + 3])
      redis.call('ZADD', seen, n, id)
      added = added + 1
    end
    if not top or n > top then top = n end
  end
  if top and top + 1 > offset then
    offset = top + 1
    redis.call('SET', offkey, string.format('%.0f', offset))
  end
  if redis.call('ZCARD', seen) > SEEN_WINDOW + SEEN_WINDOW / 10 then
    redis.call('ZREMRANGEBYRANK', seen, 0, -SEEN_WINDOW - 1)
  end
  return {added, dropped, string.format('%.0f', offset)}
end

-- tgc_heartbeat KEYS: members  ARGV: member, ttl_ms
-- member is alive for ttl_ms more (Redis's clock); answers the live
-- members, expired ones removed.
local function heartbeat(keys, args)
  local now = now_ms()
  redis.call('ZADD', keys[1], now + tonumber(args[2]), args[1])
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now)
  return redis.call('ZRANGE', keys[1], 0, -1)
end

-- tgc_leave KEYS: members  ARGV: member
local function leave(keys, args)
  return redis.call('ZREM', keys[1], args[1])
end

-- tgc_kv KEYS: lease, key, stats  ARGV: epoch, op, ...
-- A storage write made for an update of the partition, fenced by its
-- lease (sessions): op 'set' value ttl_ms | 'del' | 'cas' expected_given
-- expected new_given new ttl_ms (as the storage's own compare-and-set:
-- {1} swapped, {0, current} not). ttl_ms '0': none.
local function kv(keys, args)
  local lease, key, stats = keys[1], keys[2], keys[3]
  if not holds(lease, args[1]) then return stale(stats, lease, args[1]) end
  local op = args[2]
  if op == 'set' then
    if args[4] ~= '0' then
      redis.call('SET', key, args[3], 'PX', args[4])
    else
      redis.call('SET', key, args[3])
    end
    return 1
  elseif op == 'del' then
    redis.call('DEL', key)
    return 1
  end
  local cur = redis.call('GET', key)
  if args[3] == '1' then
    if cur ~= args[4] then return {0, cur} end
  elseif cur then
    return {0, cur}
  end
  if args[5] == '0' then
    redis.call('DEL', key)
  elseif args[7] ~= '0' then
    redis.call('SET', key, args[6], 'PX', args[7])
  else
    redis.call('SET', key, args[6])
  end
  return {1}
end

redis.register_function{function_name = 'tgc_version', callback = version,
                        flags = {'no-writes'}}
redis.register_function('tgc_setup', setup)
redis.register_function('tgc_acquire', acquire)
redis.register_function('tgc_renew', renew)
redis.register_function('tgc_release', release)
redis.register_function('tgc_commit', commit)
redis.register_function('tgc_takeover', takeover)
redis.register_function('tgc_trim', trim)
redis.register_function('tgc_ingest', ingest)
redis.register_function('tgc_heartbeat', heartbeat)
redis.register_function('tgc_leave', leave)
redis.register_function('tgc_kv', kv)
