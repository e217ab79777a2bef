-- streams_requeue_dead.lua: put dead letters back in their queue's streams with a
-- fresh delivery count. Uses lib.lua and streams_lib.lua.
--
-- KEYS[1..10]  streams of priorities 0 .. 9   (<p>:stream<N>:{q})
-- KEYS[11]     priorities set                 (<p>:sprios:{q})
-- KEYS[12]     dead zset                      (<p>:dead:{q})
-- KEYS[13]     dead msgs hash                 (<p>:deadmsgs:{q})
-- KEYS[14]     dead info hash                 (<p>:deadinfo:{q})
-- ARGV[1]      batch size: with no ids, requeue the oldest this many
-- ARGV[2]      with no ids, how many of the oldest to pass over (kept by earlier calls)
-- ARGV[3..]    dead letter ids to requeue (unknown ones are ignored)
--
-- As requeue_dead.lua does for the list layout: an unreadable info requeues
-- the message at priority 0 with no message id; one without a payload cannot
-- be requeued and is kept. A requeued message is a new entry with a new id, so
-- no receipt of an earlier lease matches it. Returns { moved, kept }.
local moved, kept = 0, 0
for _, id in ipairs(dead_letters_to_requeue(KEYS[12])) do
  local payload, priority, message_id = read_dead_letter(KEYS[12], KEYS[13], KEYS[14], id)
  if payload then
    add_entry(KEYS[1 + priority], KEYS[1], KEYS[11], priority, message_id, payload, 0)
    forget_dead_letter(KEYS[12], KEYS[13], KEYS[14], id)
    moved = moved + 1
  elseif payload == false then
    kept = kept + 1
  end
end
return {moved, kept}
