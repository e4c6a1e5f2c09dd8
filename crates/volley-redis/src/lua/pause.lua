-- Extends a host's pause (never shortens it) and tells every worker. ARGV: host, until_ms, payload.
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > old then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('PUBLISH', KEYS[2], ARGV[3])
end
return 1
