-- reserve.lua: lease up to ARGV[1] due messages from one or more queues, atomically.
--
-- Before taking anything, each queue's expired leases go back to the head of
-- their priority's list (any live worker recovers a dead worker's messages), and
-- its due delayed messages move to the tail of theirs.
--
-- KEYS: 14 per queue, queues in the caller's order of preference:
--   +1 .. +10  ready lists for priorities 0 .. 9   (<p>:ready<N>:{q})
--   +11        delayed zset, id -> due time ms     (<p>:delayed:{q})
--   +12        leased zset, id -> lease end ms     (<p>:leased:{q})
--   +13        msgs hash, id -> payload            (<p>:msgs:{q})
--   +14        meta hash, id -> "<count>|<priority>|<message_id>"  (<p>:meta:{q})
-- ARGV[1]  max messages
-- ARGV[2]  lease in ms
-- ARGV[3]  sweep limit: the most expired or due ids moved per queue per call
--
-- Returns { now_ms, next_due_ms, then 5 values per leased message:
--           queue index (1-based), id, delivery count, message_id, payload }.
-- next_due_ms is -1 unless nothing was leased; then it is the earliest time a
-- delayed message or a lease of these queues comes due (-1 if none does).
local K = 14
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[1])
local lease_end = now + tonumber(ARGV[2])
local sweep = tonumber(ARGV[3])
local nqueues = #KEYS / K
local out = {now, -1}

local function priority_of(meta)
  return tonumber(string.match(meta, '^%d+|(%d)|'))
end

for q = 0, nqueues - 1 do
  local b = q * K
  local delayed, leased, msgs, meta = KEYS[b + 11], KEYS[b + 12], KEYS[b + 13], KEYS[b + 14]

  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, sweep)
  if #expired > 0 then
    redis.call('ZREM', leased, unpack(expired))
    for i = #expired, 1, -1 do  -- LPUSH in reverse keeps their order
      local m = redis.call('HGET', meta, expired[i])
      if m then
        redis.call('LPUSH', KEYS[b + 1 + priority_of(m)], expired[i])
      end
    end
  end

  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, sweep)
  if #due > 0 then
    redis.call('ZREM', delayed, unpack(due))
    for _, id in ipairs(due) do
      local m = redis.call('HGET', meta, id)
      if m then
        redis.call('RPUSH', KEYS[b + 1 + priority_of(m)], id)
      end
    end
  end

  local p = 9
  while want > 0 and p >= 0 do
    local ids = redis.call('LPOP', KEYS[b + 1 + p], want)
    if ids then
      for _, id in ipairs(ids) do
        local m = redis.call('HGET', meta, id)
        local payload = redis.call('HGET', msgs, id)
        if m and payload then
          local count, prio, message_id = string.match(m, '^(%d+)|(%d)|(.*)$')
          count = tonumber(count) + 1
          redis.call('HSET', meta, id, count .. '|' .. prio .. '|' .. message_id)
          redis.call('ZADD', leased, lease_end, id)
          local n = #out
          out[n + 1] = q + 1
          out[n + 2] = id
          out[n + 3] = count
          out[n + 4] = message_id
          out[n + 5] = payload
          want = want - 1
        end
      end
    else
      p = p - 1
    end
  end
end

if #out == 2 then
  local next_due = -1
  for q = 0, nqueues - 1 do
    local b = q * K
    for _, key in ipairs({KEYS[b + 11], KEYS[b + 12]}) do
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if first[2] then
        local at = tonumber(first[2])
        if next_due < 0 or at < next_due then
          next_due = at
        end
      end
    end
  end
  out[2] = next_due
end
return out
