-- lib.lua: helpers shared by the scripts that need them. The client prepends this
-- file to such a script (``Script(name, library=True)`` in _client.py), so each
-- still runs as one self-contained EVALSHA.
--
-- The rule these helpers serve: a script reads and checks everything it needs
-- before its first write. Redis keeps the writes a script made before an
-- error, so an error after a write would leave a message half moved (popped
-- from its list but never leased, say) and lost. A corrupt entry is therefore
-- not an error: it is moved to the queue's dead-letter store with a reason.

-- The server's clock in ms.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local META_FORMAT = '"<count>|<priority>|<message_id>"'

-- A message's meta "<count>|<priority>|<message_id>" -> count, priority (0-9),
-- message_id; nil when it is missing or malformed.
local function parse_meta(m)
  if not m then
    return nil
  end
  local count, priority, message_id = string.match(m, '^(%d+)|(%d)|(.*)$')
  if not count or #count > 14 then  -- Lua writes longer numbers in e-notation
    return nil
  end
  return tonumber(count), tonumber(priority), message_id
end

-- A stored value quoted for a reason: printable ASCII only, at most 80 bytes.
local function quoted(value)
  local shown = string.gsub(string.sub(value, 1, 80), '[^\32-\126]', '?')
  if #value > 80 then
    shown = shown .. '...'
  end
  return '"' .. shown .. '"'
end

-- Why a message's entry is corrupt, given its meta and payload (either may be
-- false: missing). nil when there is nothing to keep (both are missing).
local function corrupt_reason(m, payload)
  if not m and not payload then
    return nil
  end
  if not m then
    return 'corrupt entry: its metadata is missing'
  end
  if not parse_meta(m) then
    return 'corrupt entry: its metadata ' .. quoted(m) .. ' is not ' .. META_FORMAT
  end
  return 'corrupt entry: its payload is missing'
end

-- Move a message to its queue's dead-letter store. dead = { dead zset, dead msgs
-- hash, dead info hash, dead sequence }. The dead letter keeps the message id as
-- its id; its info is JSON {"reason", "count", "dead_at_ms", "priority",
-- "message_id"} (count 0, priority 0 and message_id "" when the meta is corrupt).
-- A missing payload is stored as "". Deleting the live entry is the caller's job.
local function bury(dead, id, payload, reason, m, now)
  local count, priority, message_id = parse_meta(m)
  if not count then
    count, priority, message_id = 0, 0, ''
  end
  redis.call('ZADD', dead[1], redis.call('INCR', dead[4]), id)
  redis.call('HSET', dead[2], id, payload or '')
  redis.call('HSET', dead[3], id, cjson.encode({
    reason = reason,
    count = count,
    dead_at_ms = now,
    priority = priority,
    message_id = message_id,
  }))
end

-- The dead letters a requeue script handles (its ARGV as requeue_dead.lua
-- describes): the ids ARGV[3..] when given, else the oldest ARGV[1] of the dead
-- zset after passing over the first ARGV[2] (kept by earlier calls).
local function dead_letters_to_requeue(dead)
  if #ARGV > 2 then
    local ids = {}
    for i = 3, #ARGV do  -- not unpack: it is bounded by Lua's C stack (~8000)
      ids[#ids + 1] = ARGV[i]
    end
    return ids
  end
  local skip = tonumber(ARGV[2])
  return redis.call('ZRANGE', dead, skip, skip + tonumber(ARGV[1]) - 1)
end

-- A dead letter as requeueing needs it: its payload (false when none is stored),
-- and the priority and message id its info names (0 and '' when unreadable);
-- nil when id is not a dead letter. Reads only.
local function read_dead_letter(dead, dead_msgs, dead_info, id)
  if not redis.call('ZSCORE', dead, id) then
    return nil
  end
  local payload = redis.call('HGET', dead_msgs, id)
  local ok, info = pcall(cjson.decode, redis.call('HGET', dead_info, id) or '')
  if not ok or type(info) ~= 'table' then
    info = {}
  end
  local priority = tonumber(info.priority)
  if not priority or priority ~= math.floor(priority) or priority < 0 or priority > 9 then
    priority = 0
  end
  local message_id = info.message_id
  if type(message_id) ~= 'string' then
    message_id = ''
  end
  return payload, priority, message_id
end

-- Remove a dead letter that was requeued.
local function forget_dead_letter(dead, dead_msgs, dead_info, id)
  redis.call('ZREM', dead, id)
  redis.call('HDEL', dead_msgs, id)
  redis.call('HDEL', dead_info, id)
end
