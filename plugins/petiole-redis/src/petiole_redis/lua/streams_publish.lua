-- streams_publish.lua: publish a message with a priority above 0, or a delayed one,
-- or resend any publish whose reply was lost. Uses lib.lua and streams_lib.lua
-- (prepended by the client). A message of priority 0 due now needs no script on
-- its first sending: the client sends one XADD (with a nonce field n); a resent
-- one comes here with KEYS 1-5 all its stream (it touches no other key).
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
-- ARGV[5]  nonce (random, made by the client: a resent delayed publish writes
--          the same delayed id again; a resent one due now looks for its entry)
-- ARGV[6]  0 on the first sending; when resent, how many ms ago the first was
--          sent (and a margin): the window nonce_seen searches
--
-- Returns 1, or 0 when a resent publish found its entry already stored.
local priority = tonumber(ARGV[1])
local delay_ms = tonumber(ARGV[4])
local resent_within_ms = tonumber(ARGV[6])
if delay_ms > 0 then
  local meta = '0|' .. priority .. '|' .. ARGV[2]
  add_delayed(KEYS[4], KEYS[5], KEYS[2], ARGV[5], now_ms() + delay_ms, meta, ARGV[3])
elseif resent_within_ms > 0 and nonce_seen(KEYS[1], ARGV[5], resent_within_ms) then
  return 0
else
  add_entry(KEYS[1], KEYS[2], KEYS[3], priority, ARGV[2], ARGV[3], 0, ARGV[5])
end
return 1
