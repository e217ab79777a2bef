-- incr.lua: add to a counter and renew its ttl; exactly once per token.
--
-- KEYS[1]  counter           (<p>:counter:<key>)
-- KEYS[2]  this call's token (<p>:incr:<token>)
-- ARGV[1]  amount
-- ARGV[2]  ttl in ms (0 = keep forever)
-- ARGV[3]  how long to remember the token, in ms
--
-- The client retries a call whose reply was lost (the connection dropped); the
-- token makes the retry return the first answer instead of adding twice.
local done = redis.call('GET', KEYS[2])
if done then
  return tonumber(done)
end
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl_ms = tonumber(ARGV[2])
if ttl_ms > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('SET', KEYS[2], value, 'PX', ARGV[3])
return value
