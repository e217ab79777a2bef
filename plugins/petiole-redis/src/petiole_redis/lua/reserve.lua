-- reserve.lua: lease up to ARGV[1] due messages from one or more queues, atomically.
-- Uses lib.lua (prepended by the client).
--
-- Before taking anything, each queue's expired leases go back to the head of
-- their priority's list (any live worker recovers a dead worker's messages), and
-- its due delayed messages move to the tail of theirs. Each sorted set's head is
-- read first, and swept only when it is due: a reserve with nothing to sweep
-- costs one command per set, and learns when the next one comes due.
--
-- A corrupt entry met on the way (meta not "<count>|<priority>|<message_id>",
-- meta or payload missing) is moved to the queue's dead-letter store with a
-- reason, and the reserve goes on: one bad entry never costs the good ones. An
-- id with neither meta nor payload (a leftover) is dropped. Each id is written to
-- its new place before it leaves its old one, so even an error (a key of the
-- wrong type) leaves a message in two places, never in none.
--
-- Commands are counted by the page, not by the message: a page of ids is read
-- with one LRANGE, their metas and payloads with one HMGET each, and leased with
-- one HSET and one ZADD. Queues that use no priority but 0 and hold no delayed
-- message (the usual case) are told by one EXISTS over their delayed set and
-- lists 1-9, instead of a peek at the set and reading ten lists.
--
-- KEYS: 19 per queue, queues in the caller's order of preference:
--   +1 .. +10  ready lists for priorities 0 .. 9   (<p>:ready<N>:{q})
--   +11        delayed zset, id -> due time ms     (<p>:delayed:{q})
--   +12        leased zset, id -> lease end ms     (<p>:leased:{q})
--   +13        msgs hash, id -> payload            (<p>:msgs:{q})
--   +14        meta hash, id -> "<count>|<priority>|<message_id>"  (<p>:meta:{q})
--   +15 .. +18 dead zset, dead msgs hash, dead info hash, dead sequence
--              (<p>:dead:{q}, <p>:deadmsgs:{q}, <p>:deadinfo:{q}, <p>:deadseq:{q})
--   +19        wake list                           (<p>:wake:{q})
-- ARGV[1]  max messages
-- ARGV[2]  lease in ms
-- ARGV[3]  sweep limit: the most expired, due or corrupt ids handled per queue per call
--
-- Returns { now_ms, next_due_ms, dead-lettered, drained, then 2 values per leased
--           message: "<queue index (1-based)>|<id>|<delivery count>|<message_id>", payload }.
-- (One string for the four small values: the client parses each element of a reply
-- in Python, so five elements per message cost more than two, and a split.)
-- dead-lettered is { queue index, id, reason, ... } for the corrupt entries this
-- call moved to a dead-letter store (usually empty).
-- next_due_ms is the earliest time a delayed message or a lease of these queues
-- comes due, the leases taken by this call included (-1 if none does).
-- drained is 1 when every ready list of these queues is empty afterwards: until a
-- token is pushed to a wake list (publish, nack, requeue) or next_due_ms, another
-- reserve would find nothing, so the caller may block at once. When this call
-- leaves ids behind for others, it pushes a token itself (a waiting worker wakes).
local K = 19
local PAGE = 500  -- ids per LRANGE page: bounds the arguments of one HMGET, HSET, ZADD
local now = now_ms()
local want = tonumber(ARGV[1])
local lease_end = now + tonumber(ARGV[2])
local sweep = tonumber(ARGV[3])
local nqueues = #KEYS / K
local buried = {}
local out = {now, -1, buried, 1}
local next_due = -1
local drained = true

local function note_due(at)
  if next_due < 0 or at < next_due then
    next_due = at
  end
end

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

-- The due ids of a sorted set scored by due time (at most `sweep`), or nil when
-- its head is not due (noted as the next due time) or it is empty.
local function due_ids(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if not head[2] then
    return nil
  end
  local at = tonumber(head[2])
  if at > now then
    note_due(at)
    return nil
  end
  local ids = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, sweep)
  local after = redis.call('ZRANGE', key, #ids, #ids, 'WITHSCORES')
  if after[2] then
    note_due(tonumber(after[2]))
  end
  return ids
end

-- The priorities worth reading of the queue at KEYS offset b, highest first.
local function priorities(b)
  if redis.call('EXISTS', unpack(KEYS, b + 2, b + 10)) == 0 then
    return {0}
  end
  return {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}
end

-- Lease the first ids of a page (read, checked, leased, and only then trimmed off
-- their list); returns how many ids of the page were used up.
local function lease_page(q, b, list, ids, take, seen)
  local leased, meta, msgs = KEYS[b + 12], KEYS[b + 14], KEYS[b + 13]
  local page = {unpack(ids, 1, take)}
  local metas = redis.call('HMGET', meta, unpack(page))
  local payloads = redis.call('HMGET', msgs, unpack(page))
  local new_metas, new_leases, skipped = {}, {}, 0
  for i, id in ipairs(page) do
    local m, payload = metas[i], payloads[i]
    if seen[id] then
      skipped = skipped + 1  -- listed twice: leased by this call already
    elseif priority_or_bury(b, id, m, payload) then
      seen[id] = true
      local count, prio, message_id = parse_meta(m)
      count = count + 1
      new_metas[#new_metas + 1] = id
      new_metas[#new_metas + 1] = count .. '|' .. prio .. '|' .. message_id
      new_leases[#new_leases + 1] = lease_end
      new_leases[#new_leases + 1] = id
      local n = #out
      out[n + 1] = (q + 1) .. '|' .. id .. '|' .. count .. '|' .. message_id
      out[n + 2] = payload
      want = want - 1
    else
      skipped = skipped + 1
    end
  end
  if #new_metas > 0 then
    redis.call('HSET', meta, unpack(new_metas))
    redis.call('ZADD', leased, unpack(new_leases))
    note_due(lease_end)
  end
  redis.call('LTRIM', list, take, -1)
  return skipped
end

for q = 0, nqueues - 1 do
  local b = q * K

  local expired = due_ids(KEYS[b + 12])
  if expired and #expired > 0 then
    for i = #expired, 1, -1 do  -- LPUSH in reverse keeps their order
      local priority = priority_or_bury(b, expired[i], redis.call('HGET', KEYS[b + 14], expired[i]))
      if priority then
        redis.call('LPUSH', KEYS[b + 1 + priority], expired[i])
      end
    end
    redis.call('ZREM', KEYS[b + 12], unpack(expired))
  end

  -- No delayed message and nothing above priority 0 (the usual case): one
  -- command tells, and the delayed set needs no peek.
  local quiet = redis.call('EXISTS', KEYS[b + 11], unpack(KEYS, b + 2, b + 10)) == 0
  local due = nil
  if not quiet then
    due = due_ids(KEYS[b + 11])
  end
  if due and #due > 0 then
    for _, id in ipairs(due) do
      local priority = priority_or_bury(b, id, redis.call('HGET', KEYS[b + 14], id))
      if priority then
        redis.call('RPUSH', KEYS[b + 1 + priority], id)
      end
    end
    redis.call('ZREM', KEYS[b + 11], unpack(due))
  end

  local seen = {}
  local skipped = 0  -- corrupt or leftover ids: at most `sweep` per queue
  local left_behind = false
  if want > 0 then
    local prios = {0}
    if not quiet then
      prios = priorities(b)
    end
    local at = 1
    while at <= #prios and want > 0 and skipped < sweep do
      local list = KEYS[b + 1 + prios[at]]
      local asked = math.min(want, PAGE)
      -- One id more than asked: it tells whether the list holds more.
      local ids = redis.call('LRANGE', list, 0, asked)
      local take = math.min(#ids, asked)
      if take > 0 then
        skipped = skipped + lease_page(q, b, list, ids, take, seen)
      end
      if #ids <= asked then
        at = at + 1  -- this list is empty now
      end
    end
    left_behind = at <= #prios
  else
    left_behind = true  -- not looked at: it may hold messages
  end
  if left_behind then
    drained = false
    if #out > 4 and redis.call('LLEN', KEYS[b + 19]) == 0 then
      redis.call('RPUSH', KEYS[b + 19], '1')
    end
  end
end

out[2] = next_due
if not drained then
  out[4] = 0
end
return out
