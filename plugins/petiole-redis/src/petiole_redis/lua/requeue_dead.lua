-- requeue_dead.lua: put dead letters back in their queue with delivery count 0.
-- Uses lib.lua (prepended by the client).
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
local moved, kept = 0, 0
for _, id in ipairs(dead_letters_to_requeue(KEYS[13])) do
  local payload, priority, message_id = read_dead_letter(KEYS[13], KEYS[14], KEYS[15], id)
  if payload then
    local new_id = string.gsub(id, '~%d+$', '') .. '~' .. redis.call('INCR', KEYS[16])
    redis.call('HSET', KEYS[11], new_id, payload)
    redis.call('HSET', KEYS[12], new_id, '0|' .. priority .. '|' .. message_id)
    redis.call('RPUSH', KEYS[1 + priority], new_id)
    forget_dead_letter(KEYS[13], KEYS[14], KEYS[15], id)
    moved = moved + 1
  elseif payload == false then
    kept = kept + 1
  end
end
if moved > 0 and redis.call('LLEN', KEYS[17]) == 0 then
  redis.call('RPUSH', KEYS[17], '1')
end
return {moved, kept}
