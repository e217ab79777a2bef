-- streams_ack.lua: acknowledge (XACK) and delete (XDEL) the entries of one queue
-- whose receipts still hold their leases. Uses lib.lua and streams_lib.lua.
--
-- KEYS     the queue's streams the receipts name
-- ARGV[1]  group
-- ARGV[2..] 4 per receipt: key index, entry id, instance, pending delivery count
--
-- Each receipt is checked on its own against one XPENDING per stream over the
-- range its ids span (an id that range did not answer for is asked about alone);
-- the held ones are settled with one XACK and one XDEL per stream: a batch of one
-- stream costs four commands however many it holds. Returns how many were settled.
local group = ARGV[1]
local by_stream, seen = {}, {}
for i = 2, #ARGV, 4 do
  local k, id = tonumber(ARGV[i]), ARGV[i + 1]
  if KEYS[k] and not seen[k .. ' ' .. id] then
    seen[k .. ' ' .. id] = true
    by_stream[k] = by_stream[k] or {}
    table.insert(by_stream[k], {id, ARGV[i + 2], ARGV[i + 3]})
  end
end
local n = 0
for k, receipts in pairs(by_stream) do
  local ids = {}
  for _, receipt in ipairs(receipts) do
    ids[#ids + 1] = receipt[1]
  end
  local pending, capped = pending_among(KEYS[k], group, ids)
  local held = {}
  for _, receipt in ipairs(receipts) do
    local id, instance, count = receipt[1], receipt[2], receipt[3]
    local entry = pending[id]
    if (entry and held_by(entry, instance, count))
        or (not entry and capped and holds(KEYS[k], group, id, instance, count)) then
      held[#held + 1] = id
    end
  end
  if #held > 0 then
    settle(KEYS[k], group, held)
    n = n + #held
  end
end
return n
