-- lease_renew.lua: restart the ttl of a lease, only for its holder.
--
-- KEYS[1]  lease  (<p>:lease:<name>)
-- ARGV[1]  owner
-- ARGV[2]  ttl in ms (> 0)
--
-- Returns 1 when ARGV[1] held the lease (now for ARGV[2] ms more), 0 otherwise
-- (changing nothing): a free or expired lease is not taken by a renewal.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
