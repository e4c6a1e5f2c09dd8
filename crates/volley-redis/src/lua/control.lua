-- An operator's control command on a job (volley cancel / pause / resume / limit), in one
-- step on the job's meta hash. KEYS[1] = meta. ARGV: action, now_ms, rate, concurrency
-- ('' when not given). Returns {'applied', cancel_ms, paused_ms, rate, concurrency} ('' for
-- unset), {'ended', state} or {'unknown'}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'completed' or state == 'completed_with_failures' or state == 'failed'
  or state == 'cancelled' then
  return {'ended', state}
end
local action = ARGV[1]
if action == 'cancel' then
  redis.call('HSETNX', KEYS[1], 'cancel_ms', ARGV[2])
elseif action == 'pause' then
  redis.call('HSETNX', KEYS[1], 'paused_ms', ARGV[2])
elseif action == 'resume' then
  redis.call('HDEL', KEYS[1], 'paused_ms')
elseif action == 'limit' then
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'limit_rate', ARGV[3]) end
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'limit_concurrency', ARGV[4]) end
elseif action == 'clear_limits' then
  redis.call('HDEL', KEYS[1], 'limit_rate', 'limit_concurrency')
else
  return redis.error_reply('unknown control ' .. action)
end
local c = redis.call('HMGET', KEYS[1], 'cancel_ms', 'paused_ms', 'limit_rate', 'limit_concurrency')
return {'applied', c[1] or '', c[2] or '', c[3] or '', c[4] or ''}
