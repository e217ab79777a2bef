-- dead_list.lua: the oldest ARGV[1] dead letters of a queue (read only).
--
-- KEYS[1]  dead zset, id -> seq (<p>:dead:{q})
-- KEYS[2]  dead msgs hash       (<p>:deadmsgs:{q})
-- KEYS[3]  dead info hash       (<p>:deadinfo:{q})
-- ARGV[1]  limit (> 0)
--
-- Returns { id, info JSON, payload, ... } oldest first.
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local info = redis.call('HGET', KEYS[3], id)
  local payload = redis.call('HGET', KEYS[2], id)
  if info and payload then
    out[#out + 1] = id
    out[#out + 1] = info
    out[#out + 1] = payload
  end
end
return out
