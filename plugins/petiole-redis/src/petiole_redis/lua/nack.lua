-- nack.lua: give a leased message back (due now or after a delay), or drop it.
-- Uses lib.lua (prepended by the client).
--
-- KEYS[1..10]  ready lists for priorities 0 .. 9   (<p>:ready<N>:{q})
-- KEYS[11]     delayed zset                        (<p>:delayed:{q})
-- KEYS[12]     leased zset                         (<p>:leased:{q})
-- KEYS[13]     msgs hash                           (<p>:msgs:{q})
-- KEYS[14]     meta hash                           (<p>:meta:{q})
-- KEYS[15]     wake list                           (<p>:wake:{q})
-- ARGV[1]  message id
-- ARGV[2]  delivery count of the lease (the receipt)
-- ARGV[3]  1 = requeue, 0 = drop
-- ARGV[4]  delay in ms before it is due again (0 = now)
--
-- Returns 1, or 0 for a stale receipt (nothing changed). The delivery count is
-- not changed: the next reservation increments it. A requeue of a message whose
-- meta was corrupted while it was leased changes nothing either (returns 0): the
-- message stays leased, and the reserve that sweeps its lease back dead-letters it.
local m = redis.call('HGET', KEYS[14], ARGV[1])
if not m or string.match(m, '^(%d+)|') ~= ARGV[2] or not redis.call('ZSCORE', KEYS[12], ARGV[1]) then
  return 0
end
if ARGV[3] ~= '1' then
  redis.call('ZREM', KEYS[12], ARGV[1])
  redis.call('HDEL', KEYS[13], ARGV[1])
  redis.call('HDEL', KEYS[14], ARGV[1])
  return 1
end
local _, priority = parse_meta(m)
if not priority then
  return 0
end
local delay_ms = tonumber(ARGV[4])
if delay_ms > 0 then
  redis.call('ZADD', KEYS[11], now_ms() + delay_ms, ARGV[1])
else
  redis.call('RPUSH', KEYS[1 + priority], ARGV[1])
end
redis.call('ZREM', KEYS[12], ARGV[1])
if redis.call('LLEN', KEYS[15]) == 0 then
  redis.call('RPUSH', KEYS[15], '1')
end
return 1
