-- requeue_orphans.lua: one bounded step of the orphan check of one queue.
-- Uses lib.lua (prepended by the client).
--
-- An orphan is a message in the msgs hash that is in no ready list, not in the
-- delayed set and not in the leased set: nothing would ever deliver it (left by
-- an older version, a manual edit, or a script that failed halfway). A step
-- reads up to ARGV[2] ids of the msgs hash (HSCAN from a cursor), puts each
-- orphan back at the tail of its priority's list (delivery count unchanged),
-- and moves an orphan with a corrupt meta to the dead-letter store instead.
--
-- Ready lists are read whole, to test membership, and only while the queue's
-- ready lists hold at most ARGV[3] ids together: with a longer backlog the
-- step decides nothing about the ids it read that are neither delayed nor
-- leased (it counts them as undecided), and a later pass checks them.
--
-- KEYS[1..10]  ready lists for priorities 0 .. 9   (<p>:ready<N>:{q})
-- KEYS[11]     delayed zset                        (<p>:delayed:{q})
-- KEYS[12]     leased zset                         (<p>:leased:{q})
-- KEYS[13]     msgs hash                           (<p>:msgs:{q})
-- KEYS[14]     meta hash                           (<p>:meta:{q})
-- KEYS[15..18] dead zset, dead msgs hash, dead info hash, dead sequence
-- KEYS[19]     the check's progress, hash {cursor, due}  (<p>:orphanscan:{q})
-- KEYS[20]     wake list                           (<p>:wake:{q})
-- ARGV[1]  "auto": step from the stored cursor if a step is due (the periodic
--          check, shared by every client of the queue), and store the new
--          cursor; or a cursor ("0" to start) to step from now, storing nothing
-- ARGV[2]  ids to read per step (HSCAN COUNT)
-- ARGV[3]  the most ready ids the step may read to test membership
-- ARGV[4]  "auto" only: ms from the end of a pass to the start of the next
-- ARGV[5]  "auto" only: ms between two steps of a pass
--
-- Returns { next cursor ("0" at the end of a pass, "" if no step was due),
--           { requeued ids }, { dead-lettered id, reason, ... }, undecided }.
local now = now_ms()
local auto = ARGV[1] == 'auto'
local cursor = ARGV[1]
if auto then
  local state = redis.call('HMGET', KEYS[19], 'cursor', 'due')
  if state[2] and tonumber(state[2]) and tonumber(state[2]) > now then
    return {'', {}, {}, 0}
  end
  cursor = state[1]
  if not cursor or not string.match(cursor, '^%d+$') then
    cursor = '0'
  end
end

-- Ids only, where the server can (Redis 7.4+); payloads are not needed.
local scan = redis.pcall('HSCAN', KEYS[13], cursor, 'COUNT', ARGV[2], 'NOVALUES')
local stride = 1
if scan.err then
  scan = redis.call('HSCAN', KEYS[13], cursor, 'COUNT', ARGV[2])
  stride = 2
end
local next_cursor, fields = scan[1], scan[2]

-- Leased or delayed? Two ZMSCOREs for the whole page, not two ZSCOREs per id.
local ids = {}
for i = 1, #fields, stride do
  ids[#ids + 1] = fields[i]
end
local candidates, seen = {}, {}
if #ids > 0 then
  local leased = redis.call('ZMSCORE', KEYS[12], unpack(ids))
  local delayed = redis.call('ZMSCORE', KEYS[11], unpack(ids))
  for i, id in ipairs(ids) do
    if not seen[id] and not leased[i] and not delayed[i] then
      candidates[#candidates + 1] = id
    end
    seen[id] = true
  end
end

local requeued, buried, undecided = {}, {}, 0
if #candidates > 0 then
  local listed = 0
  for p = 1, 10 do
    listed = listed + redis.call('LLEN', KEYS[p])
  end
  if listed > tonumber(ARGV[3]) then
    undecided = #candidates
  else
    local queued = {}
    for p = 1, 10 do
      if listed > 0 then
        for _, id in ipairs(redis.call('LRANGE', KEYS[p], 0, -1)) do
          queued[id] = true
        end
      end
    end
    local dead = {KEYS[15], KEYS[16], KEYS[17], KEYS[18]}
    for _, id in ipairs(candidates) do
      if not queued[id] then
        local m = redis.call('HGET', KEYS[14], id)
        local _, priority = parse_meta(m)
        if priority then
          redis.call('RPUSH', KEYS[1 + priority], id)
          requeued[#requeued + 1] = id
        else
          local payload = redis.call('HGET', KEYS[13], id)
          local reason = corrupt_reason(m, payload)
          bury(dead, id, payload, reason, m, now)
          redis.call('HDEL', KEYS[13], id)
          redis.call('HDEL', KEYS[14], id)
          buried[#buried + 1] = id
          buried[#buried + 1] = reason
        end
      end
    end
  end
end

if #requeued > 0 and redis.call('LLEN', KEYS[20]) == 0 then
  redis.call('RPUSH', KEYS[20], '1')
end
if auto then
  local wait_ms = tonumber(ARGV[5])
  if next_cursor == '0' then
    wait_ms = tonumber(ARGV[4])
  end
  redis.call('HSET', KEYS[19], 'cursor', next_cursor, 'due', now + wait_ms)
  -- Once nobody checks the queue any more, its progress goes too.
  redis.call('PEXPIRE', KEYS[19], wait_ms + 3600000)
end
return {next_cursor, requeued, buried, undecided}
