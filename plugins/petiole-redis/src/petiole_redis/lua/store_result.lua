-- store_result.lua: write a task's record and, if it is ready, publish it to waiters.
--
-- KEYS[1]  result string   (<p>:result:<task id>)
-- ARGV[1]  encoded record
-- ARGV[2]  ttl in ms (0 = keep forever; SET without PX also clears an earlier ttl)
-- ARGV[3]  channel to publish the record on (<p>:done:<task id>), '' = do not publish
--
-- One round trip, and the record crosses the network once even when published.
local ttl_ms = tonumber(ARGV[2])
if ttl_ms > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl_ms)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return 1
