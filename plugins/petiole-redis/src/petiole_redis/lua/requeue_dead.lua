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
-- ARGV[2]      with no ids, how many of the oldest to pass over (kept by earlier calls)
-- ARGV[3..]    dead letter ids to requeue (unknown ones are ignored)
--
-- A requeued message gets a new id ("<id>~<seq>"), so a receipt from a lease
-- it had before it died can never match one of its new leases. Every dead
-- letter is checked before anything is written for it: an unreadable info
-- requeues it at priority 0 with no message id; one without a payload cannot
-- be requeued and is kept (counted as kept).
-- Returns { moved, kept }.
local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  local skip = tonumber(ARGV[2])
  ids = redis.call('ZRANGE', KEYS[13], skip, skip + tonumber(ARGV[1]) - 1)
end
local moved, kept = 0, 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', KEYS[13], id) then
    local payload = redis.call('HGET', KEYS[14], id)
    local ok, info = pcall(cjson.decode, redis.call('HGET', KEYS[15], id) or '')
    if not ok or type(info) ~= 'table' then
      info = {}
    end
    local priority = tonumber(info.priority)
    if not priority or priority ~= math.floor(priority) or priority < 0 or priority > 9 then
      priority = 0
    end
    local message_id = info.message_id
    if type(message_id) ~= 'string' then
      message_id = ''
    end
    if payload then
      local new_id = string.gsub(id, '~%d+$', '') .. '~' .. redis.call('INCR', KEYS[16])
      redis.call('HSET', KEYS[11], new_id, payload)
      redis.call('HSET', KEYS[12], new_id, '0|' .. priority .. '|' .. message_id)
      redis.call('RPUSH', KEYS[1 + priority], new_id)
      redis.call('ZREM', KEYS[13], id)
      redis.call('HDEL', KEYS[14], id)
      redis.call('HDEL', KEYS[15], id)
      moved = moved + 1
    else
      kept = kept + 1
    end
  end
end
if moved > 0 and redis.call('LLEN', KEYS[17]) == 0 then
  redis.call('RPUSH', KEYS[17], '1')
end
return {moved, kept}
