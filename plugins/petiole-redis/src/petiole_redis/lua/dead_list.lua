-- dead_list.lua: the oldest ARGV[1] dead letters of a queue (read only).
--
-- KEYS[1]  dead zset, id -> seq (<p>:dead:{q})
-- KEYS[2]  dead msgs hash       (<p>:deadmsgs:{q})
-- KEYS[3]  dead info hash       (<p>:deadinfo:{q})
-- ARGV[1]  limit (> 0)
--
-- Returns { id, info JSON, payload, ... } oldest first; a missing info or
-- payload is returned as "" (the client shows such a dead letter anyway).
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
