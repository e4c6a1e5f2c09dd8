-- Declares a redrive round fully published: the job may finish. ARGV: now_ms.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
redis.call('HDEL', KEYS[1], 'redriving')
redis.call('DEL', KEYS[6])
return finish_if_done(ARGV[1])
