-- streams_lib.lua: helpers of the streams layout's scripts (see streams.py). The
-- client prepends lib.lua and this file to such a script, so each still runs as
-- one self-contained EVALSHA.
--
-- A message is a stream entry {p = priority, m = message_id, [n = nonce,] d = payload
-- [, c = count]} in the stream of its queue and priority; c is the delivery count
-- it carries from an earlier life (a nack, a delayed nack), added to the count of
-- the consumer group's pending entry (PEL) to give Delivery.delivery_count. n is
-- the publish's own random nonce, which a publish resent after a lost reply looks
-- for (nonce_seen) so as not to store the message twice.
-- A lease is a PEL entry: owned by the consumer "<instance>~<lease ms>" that
-- read or claimed it last, and expired once its idle time reaches that lease.

-- Wake every reader blocked on a stream without leaving anything in it: a
-- blocked XREADGROUP is served when the stream's last id passes its group's,
-- and an entry added then deleted moves the last id on. It returns an empty
-- reply, and the reader looks again (a sooner due time, a new priority).
local function wake(stream)
  local id = redis.call('XADD', stream, '*', 'w', '1')
  redis.call('XDEL', stream, id)
end

-- Add a message to the stream of its priority. The first message of a priority
-- above 0 registers it in the queue's priorities set and wakes the readers of
-- stream 0, which only then start reading that stream.
local function add_entry(stream, stream0, prios, priority, message_id, payload, count, nonce)
  if count > 0 then
    redis.call('XADD', stream, '*', 'p', priority, 'm', message_id, 'd', payload, 'c', count)
  elseif nonce then
    redis.call('XADD', stream, '*', 'p', priority, 'm', message_id, 'n', nonce, 'd', payload)
  else
    redis.call('XADD', stream, '*', 'p', priority, 'm', message_id, 'd', payload)
  end
  if priority > 0 and redis.call('SADD', prios, priority) == 1 then
    wake(stream0)
  end
end

-- Whether the stream holds an entry of this publish (its field n is nonce) added
-- in the last window_ms, by the server's clock, which also made the entry's id.
-- A resent publish asks this before adding its entry: its first sending may have
-- been stored though its reply was lost. The look is bounded (the 20,000 newest
-- entries of the window, oldest first): a stream that took more during an outage
-- may get the message twice, which at-least-once delivery allows.
local function nonce_seen(stream, nonce, window_ms)
  local from = tostring(math.max(now_ms() - window_ms, 0))
  for _ = 1, 40 do
    local entries = redis.call('XRANGE', stream, from, '+', 'COUNT', 500)
    for _, entry in ipairs(entries) do
      local fields = entry[2]
      for i = 1, #fields - 1, 2 do
        if fields[i] == 'n' and fields[i + 1] == nonce then
          return true
        end
      end
    end
    if #entries < 500 then
      return false
    end
    from = '(' .. entries[#entries][1]
  end
  return false
end

-- Keep a message until due_ms: its id in the delayed zset, its meta
-- "<count>|<priority>|<message_id>" and payload in the delayed data hash. A due
-- time earlier than every other one wakes the readers of stream 0, so a worker
-- blocked until a later time plans again.
local function add_delayed(zset, data, stream0, id, due_ms, meta, payload)
  redis.call('ZADD', zset, due_ms, id)
  redis.call('HSET', data, id .. ':m', meta, id .. ':d', payload)
  if redis.call('ZRANGE', zset, 0, 0)[1] == id then
    wake(stream0)
  end
end

-- Whether the lease named by a receipt is still held: the entry is pending,
-- owned by a consumer of that instance, with that delivery count. Any other
-- answer (acknowledged, claimed by another consumer or again by this one, the
-- stream or group gone, an id that is not one) means the receipt is stale.
local function holds(stream, group, id, instance, count)
  local pending = redis.pcall('XPENDING', stream, group, id, id, 1)
  if type(pending) ~= 'table' or pending.err or not pending[1] then
    return false
  end
  local owner = pending[1][2]
  return string.sub(owner, 1, #instance + 1) == instance .. '~'
    and tostring(pending[1][4]) == count
end

-- Whether stream entry id a comes before b ("<ms>-<seq>", compared as numbers).
local function id_before(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not ams or not bms then
    return a < b
  end
  if #ams ~= #bms then
    return #ams < #bms
  end
  if ams ~= bms then
    return ams < bms
  end
  return tonumber(aseq) < tonumber(bseq)
end

-- The pending entries of stream among ids, as {id -> {owner, delivery count}}: one
-- XPENDING over the range from the smallest to the largest id, at most #ids + 64
-- entries (others' entries may lie between). An id missing from the answer is
-- either not pending or past that bound: holds() then asks about it alone.
local function pending_among(stream, group, ids)
  local lo, hi = ids[1], ids[1]
  for _, id in ipairs(ids) do
    if id_before(id, lo) then lo = id end
    if id_before(hi, id) then hi = id end
  end
  local found = {}
  local pending = redis.pcall('XPENDING', stream, group, lo, hi, #ids + 64)
  if type(pending) ~= 'table' or pending.err then
    return found, false
  end
  for _, entry in ipairs(pending) do
    found[entry[1]] = {entry[2], entry[4]}
  end
  return found, #pending >= #ids + 64
end

-- Whether an entry of pending_among's answer holds the lease a receipt names.
local function held_by(entry, instance, count)
  return string.sub(entry[1], 1, #instance + 1) == instance .. '~'
    and tostring(entry[2]) == count
end

-- An entry's fields as a table (empty when the entry is gone).
local function entry_fields(stream, id)
  local entry = redis.call('XRANGE', stream, id, id)[1]
  local fields = {}
  if entry then
    for i = 1, #entry[2], 2 do
      fields[entry[2][i]] = entry[2][i + 1]
    end
  end
  return fields
end

-- Acknowledge and delete entries of one stream.
local function settle(stream, group, ids)
  redis.call('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
end
