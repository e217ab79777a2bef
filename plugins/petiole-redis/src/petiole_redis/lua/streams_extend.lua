-- streams_extend.lua: renew a lease, if the receipt still holds it. Uses lib.lua
-- and streams_lib.lua.
--
-- KEYS[1]  the entry's stream
-- ARGV[1]  group
-- ARGV[2]  entry id
-- ARGV[3]  instance (the receipt's)
-- ARGV[4]  pending delivery count (the receipt's)
-- ARGV[5]  consumer for the new lease: "<instance>~<lease ms>"
--
-- XCLAIM ... JUSTID to a consumer of the same instance resets the entry's idle
-- time and names the new lease's length, without counting a delivery; the
-- receipt stays valid. Returns 1, or 0 when the lease was lost.
if not holds(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[5], 0, ARGV[2], 'JUSTID')
return 1
