-- streams_adopt.lua: move a queue's messages from the list layout's keys into its
-- streams, atomically, up to ARGV[1] of them per call. Uses lib.lua and
-- streams_lib.lua (prepended by the client).
--
-- What a streams worker runs when a queue still holds messages in the list
-- layout's keys (an upgrade from the list layout, or a producer not yet
-- upgraded): ready messages become stream entries of their priority, delayed
-- ones delayed messages with the same due time, and messages whose list-layout
-- lease has ended come back as entries too. Each keeps its delivery count (the
-- entry's c field). A message still leased to a list-layout worker is left to
-- it: that worker acks it there, or its lease ends and a later call takes it.
-- A corrupt one (meta unreadable, payload missing) goes to the dead letters,
-- which both layouts share. Each message is written to its new place before it
-- leaves its old one.
--
-- KEYS[1..10]   list layout: ready lists for priorities 0..9   (<p>:ready<N>:{q})
-- KEYS[11]      list layout: delayed zset                      (<p>:delayed:{q})
-- KEYS[12]      list layout: leased zset                       (<p>:leased:{q})
-- KEYS[13]      list layout: msgs hash                         (<p>:msgs:{q})
-- KEYS[14]      list layout: meta hash                         (<p>:meta:{q})
-- KEYS[15..24]  streams of priorities 0..9                     (<p>:stream<N>:{q})
-- KEYS[25]      priorities set                                 (<p>:sprios:{q})
-- KEYS[26]      streams' delayed zset                          (<p>:sdelayed:{q})
-- KEYS[27]      streams' delayed data hash                     (<p>:sdelaydata:{q})
-- KEYS[28..31]  dead zset, dead msgs hash, dead info hash, dead sequence
-- ARGV[1]       the most messages to move in this call
--
-- Returns { moved, dead-lettered, left: messages the list layout's keys still
-- hold (leased to its workers, or beyond this call's limit) }.
local limit = tonumber(ARGV[1])
local now = now_ms()
local dead = { KEYS[28], KEYS[29], KEYS[30], KEYS[31] }
local moved, buried = 0, 0

-- Take one message out of the list layout's hashes: an entry (due_ms nil) or a
-- delayed message of the streams layout, or a dead letter if corrupt.
local function adopt(id, due_ms)
  local m = redis.call('HGET', KEYS[14], id)
  local payload = redis.call('HGET', KEYS[13], id)
  local count, priority, message_id = parse_meta(m)
  if not count or not payload then
    if m or payload then
      bury(dead, id, payload, corrupt_reason(m, payload), m, now)
      buried = buried + 1
    end
  elseif due_ms then
    add_delayed(KEYS[26], KEYS[27], KEYS[15], id, due_ms, m, payload)
    moved = moved + 1
  else
    add_entry(KEYS[15 + priority], KEYS[15], KEYS[25], priority, message_id, payload, count)
    moved = moved + 1
  end
  redis.call('HDEL', KEYS[13], id)
  redis.call('HDEL', KEYS[14], id)
end

for priority = 9, 0, -1 do
  local room = limit - moved - buried
  if room > 0 then
    local ids = redis.call('LRANGE', KEYS[1 + priority], 0, room - 1)
    for _, id in ipairs(ids) do
      adopt(id, nil)
    end
    redis.call('LTRIM', KEYS[1 + priority], #ids, -1)
  end
end
-- Leases that ended: their holder is gone or too late, as the list layout's own
-- reserve would decide.
local room = limit - moved - buried
if room > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', now, 'LIMIT', 0, room)) do
    adopt(id, nil)
    redis.call('ZREM', KEYS[12], id)
  end
end
room = limit - moved - buried
if room > 0 then
  local delayed = redis.call('ZRANGE', KEYS[11], 0, room - 1, 'WITHSCORES')
  for i = 1, #delayed, 2 do
    adopt(delayed[i], tonumber(delayed[i + 1]))
    redis.call('ZREM', KEYS[11], delayed[i])
  end
end
return { moved, buried, redis.call('HLEN', KEYS[13]) }
