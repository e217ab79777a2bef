-- streams_read.lua: read new entries from several streams in order of preference,
-- never more than asked (XREADGROUP's COUNT applies per stream, so one call over
-- several streams could return up to COUNT from each). Never blocks.
--
-- KEYS     the streams, most preferred first (earlier queues, then higher priority)
-- ARGV[1]  group
-- ARGV[2]  consumer ("<instance>~<lease ms>")
-- ARGV[3]  max entries
--
-- Returns { missing, then 3 values per entry: key index, id, fields }, where
-- missing lists the key indexes whose stream or group does not exist (the
-- client creates them); the other streams are read all the same.
local want = tonumber(ARGV[3])
local missing = {}
local out = {missing}
for i, key in ipairs(KEYS) do
  if want <= 0 then
    break
  end
  local reply = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', key, '>')
  if type(reply) == 'table' and reply.err then
    missing[#missing + 1] = i
  elseif reply then
    for _, entry in ipairs(reply[1][2]) do
      out[#out + 1] = i
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2]
      want = want - 1
    end
  end
end
return out
