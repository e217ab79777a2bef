-- store_result.lua: write a task's record and, if it is ready, tell its waiters.
--
-- KEYS[1]  result string       (<p>:result:<task id>)
-- KEYS[2]  ready token list    (<p>:finished:<task id>)
-- ARGV[1]  encoded record
-- ARGV[2]  ttl in ms (0 = keep forever; SET without PX also clears an earlier ttl)
-- ARGV[3]  channel to publish the record on (<p>:done:<task id>), '' = not ready
--
-- A ready record is announced twice, both in this one round trip: published on
-- its channel (for waiters of many ids, which share one subscribed connection),
-- and as a one-element token list with the record's ttl (a waiter of one id
-- blocks on it with BLMOVE list list, which leaves the token for other waiters,
-- then reads the record in the same round trip). A record that is not ready
-- removes the token, so waiters block until it is.
local ttl_ms = tonumber(ARGV[2])
if ttl_ms > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl_ms)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('DEL', KEYS[2])
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], '1')
  if ttl_ms > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl_ms)
  end
  redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return 1
