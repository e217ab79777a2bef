-- ack_many.lua: delete the leased messages of one queue whose receipts still hold their leases.
--
-- KEYS[1]  leased zset   (<p>:leased:{q})
-- KEYS[2]  msgs hash     (<p>:msgs:{q})
-- KEYS[3]  meta hash     (<p>:meta:{q})
-- ARGV     pairs: message id, delivery count of its lease (the receipt), ...
--
-- Each receipt is checked on its own, as ack.lua checks one (a stale receipt is
-- passed over), but the batch costs five commands however many it holds: one
-- ZMSCORE and one HMGET to check them all, one ZREM and two HDEL to delete
-- (one receipt alone costs four).
-- Returns how many were deleted.
local ids = {}
for i = 1, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
end
if #ids == 1 then
  -- One receipt (an idle worker's ack): ZREM answers whether it was leased, so
  -- the check costs one command less.
  local m = redis.call('HGET', KEYS[3], ids[1])
  if not m or string.match(m, '^(%d+)|') ~= ARGV[2] or redis.call('ZREM', KEYS[1], ids[1]) == 0 then
    return 0
  end
  redis.call('HDEL', KEYS[2], ids[1])
  redis.call('HDEL', KEYS[3], ids[1])
  return 1
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local metas = redis.call('HMGET', KEYS[3], unpack(ids))
local held, seen = {}, {}
for i, id in ipairs(ids) do
  local m = metas[i]
  if scores[i] and m and not seen[id] and string.match(m, '^(%d+)|') == ARGV[2 * i] then
    held[#held + 1] = id
    seen[id] = true
  end
end
if #held == 0 then
  return 0
end
redis.call('ZREM', KEYS[1], unpack(held))
redis.call('HDEL', KEYS[2], unpack(held))
redis.call('HDEL', KEYS[3], unpack(held))
return #held
