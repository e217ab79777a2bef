-- lease_acquire.lua: take a lease that is free, expired or already the caller's.
--
-- KEYS[1]  lease  (<p>:lease:<name>), holding its owner; Redis expires it
-- ARGV[1]  owner
-- ARGV[2]  ttl in ms (> 0)
--
-- Returns 1 when ARGV[1] holds the lease afterwards (its ttl restarted), 0 when
-- another owner holds it (left as it was). Expiry is Redis's own clock.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
