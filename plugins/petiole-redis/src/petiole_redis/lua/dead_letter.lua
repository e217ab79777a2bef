-- dead_letter.lua: move a leased message to its queue's dead-letter store, atomically.
--
-- KEYS[1]  leased zset          (<p>:leased:{q})
-- KEYS[2]  msgs hash            (<p>:msgs:{q})
-- KEYS[3]  meta hash            (<p>:meta:{q})
-- KEYS[4]  dead zset, id -> seq (<p>:dead:{q})
-- KEYS[5]  dead msgs hash       (<p>:deadmsgs:{q})
-- KEYS[6]  dead info hash       (<p>:deadinfo:{q})
-- KEYS[7]  dead sequence        (<p>:deadseq:{q})
-- ARGV[1]  message id
-- ARGV[2]  delivery count of the lease (the receipt)
-- ARGV[3]  reason
--
-- The dead letter keeps the message id as its id. Its info is JSON:
-- {"reason", "count", "dead_at_ms", "priority", "message_id"}.
-- Returns 1, or 0 for a stale receipt (nothing changed).
local m = redis.call('HGET', KEYS[3], ARGV[1])
if not m or string.match(m, '^(%d+)|') ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local count, priority, message_id = string.match(m, '^(%d+)|(%d)|(.*)$')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local info = cjson.encode({
  reason = ARGV[3],
  count = tonumber(count),
  dead_at_ms = now,
  priority = tonumber(priority),
  message_id = message_id,
})
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[7]), ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], redis.call('HGET', KEYS[2], ARGV[1]))
redis.call('HSET', KEYS[6], ARGV[1], info)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
