-- requeue_dead.lua: put dead letters back in their queue with delivery count 0.
--
-- KEYS[1..10]  ready lists for priorities 0 .. 9   (<p>:ready<N>:{q})
-- KEYS[11]     msgs hash                           (<p>:msgs:{q})
-- KEYS[12]     meta hash                           (<p>:meta:{q})
-- KEYS[13]     dead zset                           (<p>:dead:{q})
-- KEYS[14]     dead msgs hash                      (<p>:deadmsgs:{q})
-- KEYS[15]     dead info hash                      (<p>:deadinfo:{q})
-- KEYS[16]     dead sequence                       (<p>:deadseq:{q})
-- KEYS[17]     wake list                           (<p>:wake:{q})
-- ARGV[1]      batch size: with no ids, requeue the oldest this many
-- ARGV[2..]    dead letter ids to requeue (unknown ones are ignored)
--
-- A requeued message gets a new id ("<id>~<seq>"), so a receipt from a lease
-- it had before it died can never match one of its new leases.
-- Returns how many moved.
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', KEYS[13], 0, tonumber(ARGV[1]) - 1)
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', KEYS[13], id) then
    local info = cjson.decode(redis.call('HGET', KEYS[15], id))
    local payload = redis.call('HGET', KEYS[14], id)
    local new_id = string.gsub(id, '~%d+$', '') .. '~' .. redis.call('INCR', KEYS[16])
    redis.call('HSET', KEYS[11], new_id, payload)
    redis.call('HSET', KEYS[12], new_id, '0|' .. info.priority .. '|' .. info.message_id)
    redis.call('RPUSH', KEYS[1 + info.priority], new_id)
    redis.call('ZREM', KEYS[13], id)
    redis.call('HDEL', KEYS[14], id)
    redis.call('HDEL', KEYS[15], id)
    moved = moved + 1
  end
end
if moved > 0 and redis.call('LLEN', KEYS[17]) == 0 then
  redis.call('RPUSH', KEYS[17], '1')
end
return moved
