-- Registers redrive chunks after the job's chunks and earlier redrives and reopens the job
-- until redrive_end. ARGV: now_ms, then one records array per chunk. Returns the first index,
-- or an error word.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
local m = redis.call('HMGET', KEYS[1], 'state', 'total_chunks', 'redrive_chunks', 'redriving')
local state = m[1]
local terminal = state == 'completed' or state == 'completed_with_failures' or state == 'failed'
  or state == 'cancelled'
if not (terminal or (state == 'running' and m[4])) then return 'busy:' .. (state or '') end
local first = tonumber(m[2] or '0') + tonumber(m[3] or '0')
for i = 2, #ARGV do
  redis.call('HSET', KEYS[6], first + i - 2, ARGV[i])
end
redis.call('HINCRBY', KEYS[1], 'redrive_chunks', #ARGV - 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'redriving', 1)
-- Sending the cancelled records again is the operator taking the cancel back.
redis.call('HDEL', KEYS[1], 'finished_ms', 'cancel_ms')
-- A finished job's keys were set to expire; a reopened one keeps them until it ends again.
for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
return tostring(first)
