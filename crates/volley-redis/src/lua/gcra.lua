-- Reserves ARGV[1] tokens of a GCRA bucket (ARGV[2] per second, burst ARGV[3]) on Redis's
-- clock. Returns the time the first token may be used and Redis's now, both in ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = 1000 / tonumber(ARGV[2])
local tau = (tonumber(ARGV[3]) - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1]) * interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now + tau + 1000))
return {string.format('%.3f', tat - tau), string.format('%.3f', now)}
