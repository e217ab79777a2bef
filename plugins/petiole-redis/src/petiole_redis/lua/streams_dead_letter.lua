-- streams_dead_letter.lua: move a leased entry to its queue's dead-letter store,
-- if the receipt still holds its lease. Uses lib.lua and streams_lib.lua. The
-- store is the list layout's (bury in lib.lua), so `petiole dlq` reads both.
--
-- KEYS[1]  the entry's stream
-- KEYS[2]  dead zset          (<p>:dead:{q})
-- KEYS[3]  dead msgs hash     (<p>:deadmsgs:{q})
-- KEYS[4]  dead info hash     (<p>:deadinfo:{q})
-- KEYS[5]  dead sequence      (<p>:deadseq:{q})
-- ARGV[1]  group
-- ARGV[2]  entry id
-- ARGV[3]  instance (the receipt's)
-- ARGV[4]  pending delivery count (the receipt's)
-- ARGV[5]  reason
-- ARGV[6]  priority of the entry's stream
-- ARGV[7]  dead letter id
--
-- An entry missing fields (a corrupt one, dead-lettered by the client with a
-- reason saying so) is kept with what it has: "" for a missing payload.
-- Returns 1, or 0 for a stale receipt (nothing changed).
if not holds(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return 0
end
local f = entry_fields(KEYS[1], ARGV[2])
local count = (tonumber(f.c) or 0) + tonumber(ARGV[4])
local meta = count .. '|' .. ARGV[6] .. '|' .. (f.m or '')
bury({KEYS[2], KEYS[3], KEYS[4], KEYS[5]}, ARGV[7], f.d, ARGV[5], meta, now_ms())
settle(KEYS[1], ARGV[1], {ARGV[2]})
return 1
