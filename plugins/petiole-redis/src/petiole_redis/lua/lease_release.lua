-- lease_release.lua: free a lease, only for its holder.
--
-- KEYS[1]  lease  (<p>:lease:<name>)
-- ARGV[1]  owner
--
-- Returns 1 when ARGV[1] held the lease (now deleted), 0 otherwise (changing nothing).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
