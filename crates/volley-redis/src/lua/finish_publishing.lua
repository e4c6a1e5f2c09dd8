-- The producer declares the totals. ARGV: total_records, total_chunks, now_ms.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'total_records', ARGV[1], 'total_chunks', ARGV[2],
  'published_chunks', ARGV[2], 'published_records', ARGV[1])
redis.call('HDEL', KEYS[1], 'error')
if state == 'publishing' or state == 'input_error' then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
return finish_if_done(ARGV[3])
