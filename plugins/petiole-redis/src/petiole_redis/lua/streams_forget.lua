-- streams_forget.lua: delete a closing transport's consumers that hold nothing
-- pending from a stream's group. Uses lib.lua and streams_lib.lua (prepended by
-- the client). Consumers holding entries stay: the upkeep of another worker takes
-- them over when their leases end (see streams_tend.lua).
--
-- KEYS[1]  a stream                      (<p>:stream<N>:{q})
-- ARGV[1]  group
-- ARGV[2]  the transport's instance: its consumers are "<instance>~<lease ms>"
--
-- Returns how many consumers it deleted.
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then
  return 0  -- no stream or no group (purged meanwhile): nothing to forget
end
local prefix = ARGV[2] .. '~'
local deleted = 0
for _, c in ipairs(consumers) do
  local info = {}
  for i = 1, #c, 2 do
    info[c[i]] = c[i + 1]
  end
  if string.sub(info['name'], 1, #prefix) == prefix and tonumber(info['pending']) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    deleted = deleted + 1
  end
end
return deleted
