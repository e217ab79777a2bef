-- reserve.lua: lease up to ARGV[1] due messages from one or more queues, atomically.
-- Uses lib.lua (prepended by the client).
--
-- Before taking anything, each queue's expired leases go back to the head of
-- their priority's list (any live worker recovers a dead worker's messages), and
-- its due delayed messages move to the tail of theirs.
--
-- A corrupt entry met on the way (meta not "<count>|<priority>|<message_id>",
-- meta or payload missing) is moved to the queue's dead-letter store with a
-- reason, and the reserve goes on: one bad entry never costs the good ones. An
-- id with neither meta nor payload (a leftover) is dropped. Each id is written to
-- its new place before it leaves its old one, so even an error (a key of the
-- wrong type) leaves a message in two places, never in none.
--
-- KEYS: 18 per queue, queues in the caller's order of preference:
--   +1 .. +10  ready lists for priorities 0 .. 9   (<p>:ready<N>:{q})
--   +11        delayed zset, id -> due time ms     (<p>:delayed:{q})
--   +12        leased zset, id -> lease end ms     (<p>:leased:{q})
--   +13        msgs hash, id -> payload            (<p>:msgs:{q})
--   +14        meta hash, id -> "<count>|<priority>|<message_id>"  (<p>:meta:{q})
--   +15 .. +18 dead zset, dead msgs hash, dead info hash, dead sequence
--              (<p>:dead:{q}, <p>:deadmsgs:{q}, <p>:deadinfo:{q}, <p>:deadseq:{q})
-- ARGV[1]  max messages
-- ARGV[2]  lease in ms
-- ARGV[3]  sweep limit: the most expired, due or corrupt ids handled per queue per call
--
-- Returns { now_ms, next_due_ms, dead-lettered, then 5 values per leased message:
--           queue index (1-based), id, delivery count, message_id, payload }.
-- dead-lettered is { queue index, id, reason, ... } for the corrupt entries this
-- call moved to a dead-letter store (usually empty).
-- next_due_ms is -1 unless nothing was leased; then it is the earliest time a
-- delayed message or a lease of these queues comes due (-1 if none does).
local K = 18
local now = now_ms()
local want = tonumber(ARGV[1])
local lease_end = now + tonumber(ARGV[2])
local sweep = tonumber(ARGV[3])
local nqueues = #KEYS / K
local buried = {}
local out = {now, -1, buried}

-- The priority of message id of the queue at KEYS offset b; nil after moving
-- its entry to the dead-letter store if it is corrupt, or for a leftover id
-- (no entry). payload: nil = not read (not checked), false = missing.
local function priority_or_bury(b, id, m, payload)
  local _, priority = parse_meta(m)
  if priority and payload ~= false then
    return priority
  end
  local msgs, meta = KEYS[b + 13], KEYS[b + 14]
  if payload == nil then
    payload = redis.call('HGET', msgs, id)
  end
  local reason = corrupt_reason(m, payload)
  if reason then
    bury({KEYS[b + 15], KEYS[b + 16], KEYS[b + 17], KEYS[b + 18]}, id, payload, reason, m, now)
    redis.call('HDEL', msgs, id)
    redis.call('HDEL', meta, id)
    buried[#buried + 1] = b / K + 1
    buried[#buried + 1] = id
    buried[#buried + 1] = reason
  end
  return nil
end

for q = 0, nqueues - 1 do
  local b = q * K
  local delayed, leased, msgs, meta = KEYS[b + 11], KEYS[b + 12], KEYS[b + 13], KEYS[b + 14]

  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, sweep)
  if #expired > 0 then
    for i = #expired, 1, -1 do  -- LPUSH in reverse keeps their order
      local priority = priority_or_bury(b, expired[i], redis.call('HGET', meta, expired[i]))
      if priority then
        redis.call('LPUSH', KEYS[b + 1 + priority], expired[i])
      end
    end
    redis.call('ZREM', leased, unpack(expired))
  end

  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, sweep)
  if #due > 0 then
    for _, id in ipairs(due) do
      local priority = priority_or_bury(b, id, redis.call('HGET', meta, id))
      if priority then
        redis.call('RPUSH', KEYS[b + 1 + priority], id)
      end
    end
    redis.call('ZREM', delayed, unpack(due))
  end

  -- Ids are read, leased, and only then trimmed off their list.
  local seen = nil
  local skipped = 0  -- corrupt or leftover ids: at most `sweep` per queue
  local p = 9
  while want > 0 and p >= 0 and skipped < sweep do
    local list = KEYS[b + 1 + p]
    local ids = redis.call('LRANGE', list, 0, want - 1)
    if #ids == 0 then
      p = p - 1
    else
      seen = seen or {}
      for _, id in ipairs(ids) do
        if seen[id] then
          skipped = skipped + 1  -- listed twice: leased by this call already
        else
          local m = redis.call('HGET', meta, id)
          local payload = redis.call('HGET', msgs, id)
          if priority_or_bury(b, id, m, payload) then
            seen[id] = true
            local count, prio, message_id = parse_meta(m)
            count = count + 1
            redis.call('HSET', meta, id, count .. '|' .. prio .. '|' .. message_id)
            redis.call('ZADD', leased, lease_end, id)
            local n = #out
            out[n + 1] = q + 1
            out[n + 2] = id
            out[n + 3] = count
            out[n + 4] = message_id
            out[n + 5] = payload
            want = want - 1
          else
            skipped = skipped + 1
          end
        end
      end
      redis.call('LTRIM', list, #ids, -1)
    end
  end
end

if #out == 3 then
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
