-- streams_tend.lua: the periodic upkeep of some queues in the streams layout,
-- run by a reserving worker now and then (not on every reserve). Uses lib.lua
-- and streams_lib.lua.
--
-- Per queue, bounded by the sweep limit:
-- * moves its due delayed messages into their streams (a corrupt one, whose
--   meta or payload is missing or malformed, to the dead-letter store);
-- * lists the priorities in use (stream 0 and those registered);
-- * takes over expired leases: for each consumer of each stream with pending
--   entries, XPENDING lists them with their idle times and delivery counts, and
--   those idle for the consumer's lease ("<instance>~<lease ms>") or longer
--   are claimed by the caller's consumer (XCLAIM, whose min-idle-time checks
--   it again), which counts one more delivery. XAUTOCLAIM cannot do this: its
--   one min-idle-time would hand over the leases of every consumer with a
--   shorter lease, and an expired lease of a consumer with a longer one. A
--   consumer with nothing pending, unseen for longer than ARGV[5], is deleted.
--
-- KEYS: 17 per queue:
--   +1 .. +10  streams of priorities 0 .. 9      (<p>:stream<N>:{q})
--   +11        delayed zset, id -> due ms        (<p>:sdelayed:{q})
--   +12        delayed data hash                 (<p>:sdelaydata:{q})
--   +13        priorities set                    (<p>:sprios:{q})
--   +14 .. +17 dead zset, dead msgs hash, dead info hash, dead sequence
-- ARGV[1]  group
-- ARGV[2]  the caller's consumer, "<instance>~<lease ms>"
-- ARGV[3]  the most leases to take over (the caller's max_messages)
-- ARGV[4]  sweep limit: the most delayed messages moved, and pending entries
--          looked at, per queue and consumer
-- ARGV[5]  how long a consumer with nothing pending stays in the group (ms)
--
-- Returns { now_ms, next_due_ms, priorities, claimed, buried } where
-- next_due_ms is the earliest time a delayed message or a lease looked at comes
-- due (-1: none, now_ms: expired leases are left for want of room),
-- priorities is { {0, p, ...} per queue }, claimed is 5 values per lease taken
-- over: queue index, priority, entry id, its new pending delivery count, fields,
-- and buried is { queue index, id, reason, ... } for corrupt delayed messages.
local K = 17
local group, claimer = ARGV[1], ARGV[2]
local room = tonumber(ARGV[3])
local sweep = tonumber(ARGV[4])
local forget_ms = tonumber(ARGV[5])
local now = now_ms()
local next_due = -1
local priorities, claimed, buried = {}, {}, {}

local function note_due(at)
  if next_due < 0 or at < next_due then
    next_due = at
  end
end

local function move_due_delayed(q, b)
  local zset, data = KEYS[b + 11], KEYS[b + 12]
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, sweep)
  for _, id in ipairs(due) do
    local stored = redis.call('HMGET', data, id .. ':m', id .. ':d')
    local m, payload = stored[1], stored[2]
    local count, priority, message_id = parse_meta(m)
    if count and payload then
      add_entry(KEYS[b + 1 + priority], KEYS[b + 1], KEYS[b + 13], priority, message_id, payload, count)
    else
      local reason = corrupt_reason(m, payload)
      if reason then
        bury({KEYS[b + 14], KEYS[b + 15], KEYS[b + 16], KEYS[b + 17]}, id, payload, reason, m, now)
        buried[#buried + 1] = q + 1
        buried[#buried + 1] = id
        buried[#buried + 1] = reason
      end
    end
    redis.call('HDEL', data, id .. ':m', id .. ':d')
  end
  if #due > 0 then
    redis.call('ZREM', zset, unpack(due))
  end
  local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if head[2] then
    note_due(tonumber(head[2]))
  end
end

-- Claim the expired leases of one consumer of a stream.
local function take_over(q, priority, stream, consumer, lease_ms)
  local expired, counts = {}, {}
  for _, e in ipairs(redis.call('XPENDING', stream, group, '-', '+', sweep, consumer)) do
    local idle = tonumber(e[3])
    if idle < lease_ms then
      note_due(now + lease_ms - idle)
    elseif room > 0 then
      expired[#expired + 1] = e[1]
      counts[e[1]] = tonumber(e[4])
      room = room - 1
    else
      note_due(now)
    end
  end
  if #expired == 0 then
    return
  end
  for _, entry in ipairs(redis.call('XCLAIM', stream, group, claimer, lease_ms, unpack(expired))) do
    if type(entry) == 'table' and entry[2] then
      claimed[#claimed + 1] = q + 1
      claimed[#claimed + 1] = priority
      claimed[#claimed + 1] = entry[1]
      claimed[#claimed + 1] = counts[entry[1]] + 1
      claimed[#claimed + 1] = entry[2]
    end
  end
end

local function sweep_leases(q, priority, stream)
  local consumers = redis.pcall('XINFO', 'CONSUMERS', stream, group)
  if type(consumers) ~= 'table' or consumers.err then
    return  -- no stream or no group yet: nothing leased
  end
  for _, c in ipairs(consumers) do
    local info = {}
    for i = 1, #c, 2 do
      info[c[i]] = c[i + 1]
    end
    local name, pending = info['name'], tonumber(info['pending'])
    local lease_ms = tonumber(string.match(name, '~(%d+)$'))
    if pending > 0 and lease_ms then
      take_over(q, priority, stream, name, lease_ms)
    elseif pending == 0 and tonumber(info['idle']) > forget_ms and name ~= claimer then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
    end
  end
end

for q = 0, #KEYS / K - 1 do
  local b = q * K
  move_due_delayed(q, b)
  local used = {0}
  for _, p in ipairs(redis.call('SMEMBERS', KEYS[b + 13])) do
    local priority = tonumber(p)
    if priority and priority >= 1 and priority <= 9 then
      used[#used + 1] = priority
    end
  end
  priorities[q + 1] = used
  for _, priority in ipairs(used) do
    sweep_leases(q, priority, KEYS[b + 1 + priority])
  end
end
return {now, next_due, priorities, claimed, buried}
