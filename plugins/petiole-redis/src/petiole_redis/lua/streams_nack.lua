-- streams_nack.lua: give a leased message back (due now or after a delay), or drop
-- it. Uses lib.lua and streams_lib.lua.
--
-- KEYS[1]  the entry's stream                 (<p>:stream<N>:{q})
-- KEYS[2]  stream of priority 0               (<p>:stream0:{q})
-- KEYS[3]  priorities set                     (<p>:sprios:{q})
-- KEYS[4]  delayed zset                       (<p>:sdelayed:{q})
-- KEYS[5]  delayed data hash                  (<p>:sdelaydata:{q})
-- ARGV[1]  group
-- ARGV[2]  entry id
-- ARGV[3]  instance (the receipt's)
-- ARGV[4]  pending delivery count (the receipt's)
-- ARGV[5]  1 = requeue, 0 = drop
-- ARGV[6]  delay in ms (0 = due now)
-- ARGV[7]  priority of the entry's stream
-- ARGV[8]  delayed id (random, made by the client)
--
-- A requeued message is a new entry (at the tail of its stream) or a delayed
-- one, carrying its delivery count so far in c; the old entry is settled after
-- the new one is written. Returns 1, or 0 for a stale receipt (nothing changed)
-- or a requeue of an entry without payload (left leased: it comes back).
if not holds(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return 0
end
if ARGV[5] == '1' then
  local f = entry_fields(KEYS[1], ARGV[2])
  if not f.d then
    return 0
  end
  local count = (tonumber(f.c) or 0) + tonumber(ARGV[4])
  local priority = tonumber(ARGV[7])
  local delay_ms = tonumber(ARGV[6])
  if delay_ms > 0 then
    local meta = count .. '|' .. priority .. '|' .. (f.m or '')
    add_delayed(KEYS[4], KEYS[5], KEYS[2], ARGV[8], now_ms() + delay_ms, meta, f.d)
  else
    add_entry(KEYS[1], KEYS[2], KEYS[3], priority, f.m or '', f.d, count)
  end
end
settle(KEYS[1], ARGV[1], {ARGV[2]})
return 1
