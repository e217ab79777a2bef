-- streams_ack.lua: acknowledge (XACK) and delete (XDEL) the entries of one queue
-- whose receipts still hold their leases. Uses lib.lua and streams_lib.lua.
--
-- KEYS     the queue's streams the receipts name
-- ARGV[1]  group
-- ARGV[2..] 4 per receipt: key index, entry id, instance, pending delivery count
--
-- Each receipt is checked on its own (one XPENDING each); the held ones are
-- settled with one XACK and one XDEL per stream: one receipt costs three
-- commands. Returns how many were settled.
local group = ARGV[1]
local held, seen, n = {}, {}, 0
for i = 2, #ARGV, 4 do
  local k, id = tonumber(ARGV[i]), ARGV[i + 1]
  local key = KEYS[k]
  if key and not seen[k .. ' ' .. id] and holds(key, group, id, ARGV[i + 2], ARGV[i + 3]) then
    seen[k .. ' ' .. id] = true
    held[k] = held[k] or {}
    table.insert(held[k], id)
    n = n + 1
  end
end
for k, ids in pairs(held) do
  settle(KEYS[k], group, ids)
end
return n
