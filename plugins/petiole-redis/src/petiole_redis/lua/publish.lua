-- publish.lua: store one message and make it due now (or after a delay), atomically.
--
-- KEYS[1]  ready list of the message's priority   (<p>:ready<N>:{q})
-- KEYS[2]  delayed zset                            (<p>:delayed:{q})
-- KEYS[3]  msgs hash                               (<p>:msgs:{q})
-- KEYS[4]  meta hash                               (<p>:meta:{q})
-- KEYS[5]  wake list                               (<p>:wake:{q})
-- ARGV[1]  message id (random, made by the client)
-- ARGV[2]  payload
-- ARGV[3]  meta: "0|<priority>|<message_id>"
-- ARGV[4]  delay in ms (0 = due now)
--
-- Returns 1, or 0 when the id is already stored: a publish retried after a lost
-- reply is then a no-op instead of a duplicate.
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
local delay_ms = tonumber(ARGV[4])
if delay_ms > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + delay_ms, ARGV[1])
elseif redis.call('RPUSH', KEYS[1], ARGV[1]) > 1 then
  -- The list held ids already: whoever made it non-empty pushed a token, and a
  -- reserve that leaves ids behind pushes one too (reserve.lua), so no waiting
  -- worker is left asleep; a backlog costs no wake-up per message.
  return 1
end
-- One token wakes one blocked reserver (BLPOP); a delayed message wakes one too,
-- so it re-plans its sleep around the new due time.
if redis.call('LLEN', KEYS[5]) == 0 then
  redis.call('RPUSH', KEYS[5], '1')
end
return 1
