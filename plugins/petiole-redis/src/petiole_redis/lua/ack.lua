-- ack.lua: delete a leased message for good, if the receipt still holds its lease.
--
-- KEYS[1]  leased zset   (<p>:leased:{q})
-- KEYS[2]  msgs hash     (<p>:msgs:{q})
-- KEYS[3]  meta hash     (<p>:meta:{q})
-- ARGV[1]  message id
-- ARGV[2]  delivery count of the lease (the receipt: each reservation increments it)
--
-- Returns 1 if deleted, 0 for a stale receipt (the lease was lost or the
-- message is gone).
local m = redis.call('HGET', KEYS[3], ARGV[1])
if not m or string.match(m, '^(%d+)|') ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
