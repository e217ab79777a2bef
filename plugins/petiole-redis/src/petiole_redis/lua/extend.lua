-- extend.lua: move a lease's end to ARGV[3] ms from now, if the receipt still holds it.
--
-- KEYS[1]  leased zset   (<p>:leased:{q})
-- KEYS[2]  meta hash     (<p>:meta:{q})
-- ARGV[1]  message id
-- ARGV[2]  delivery count of the lease (the receipt)
-- ARGV[3]  lease in ms
--
-- Returns 1, or 0 when the lease was lost (acknowledged, or expired and swept
-- back to its queue by a reserver).
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m or string.match(m, '^(%d+)|') ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
