-- streams_publish.lua: publish a message with a priority above 0, or a delayed one.
-- Uses lib.lua and streams_lib.lua (prepended by the client). A message of
-- priority 0 due now needs no script: the client sends one XADD.
--
-- KEYS[1]  stream of the message's priority   (<p>:stream<N>:{q})
-- KEYS[2]  stream of priority 0               (<p>:stream0:{q})
-- KEYS[3]  priorities set                     (<p>:sprios:{q})
-- KEYS[4]  delayed zset, id -> due ms         (<p>:sdelayed:{q})
-- KEYS[5]  delayed data hash                  (<p>:sdelaydata:{q})
-- ARGV[1]  priority (0-9)
-- ARGV[2]  message_id
-- ARGV[3]  payload
-- ARGV[4]  delay in ms (0 = due now)
-- ARGV[5]  delayed id (random, made by the client: a retried delayed publish
--          writes the same id again instead of a second message)
--
-- Returns 1.
local priority = tonumber(ARGV[1])
local delay_ms = tonumber(ARGV[4])
if delay_ms > 0 then
  local meta = '0|' .. priority .. '|' .. ARGV[2]
  add_delayed(KEYS[4], KEYS[5], KEYS[2], ARGV[5], now_ms() + delay_ms, meta, ARGV[3])
else
  add_entry(KEYS[1], KEYS[2], KEYS[3], priority, ARGV[2], ARGV[3], 0)
end
return 1
