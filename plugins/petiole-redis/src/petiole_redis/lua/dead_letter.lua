-- dead_letter.lua: move a leased message to its queue's dead-letter store, atomically.
-- Uses lib.lua (prepended by the client).
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
-- {"reason", "count", "dead_at_ms", "priority", "message_id"} (see bury in
-- lib.lua: a corrupt meta or a missing payload is stored with defaults, never
-- an error halfway). Returns 1, or 0 for a stale receipt (nothing changed).
local m = redis.call('HGET', KEYS[3], ARGV[1])
if not m or string.match(m, '^(%d+)|') ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local payload = redis.call('HGET', KEYS[2], ARGV[1])
bury({KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, ARGV[1], payload, ARGV[3], m, now_ms())
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
