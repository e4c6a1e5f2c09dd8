-- Records the producer's confirmed watermark. ARGV: chunks, records, input_digest.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'published_chunks', ARGV[1], 'published_records', ARGV[2], 'input_digest', ARGV[3])
if redis.call('HGET', KEYS[1], 'state') == 'input_error' then
  redis.call('HSET', KEYS[1], 'state', 'publishing')
  redis.call('HDEL', KEYS[1], 'error')
end
return 1
