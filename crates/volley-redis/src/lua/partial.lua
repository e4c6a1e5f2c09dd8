-- Keeps a returned chunk's finished outcomes until its commit. KEYS: meta, chunks bitmap,
-- partial. ARGV: chunk, rows. A chunk committed meanwhile (another delivery) keeps nothing;
-- the key expires with the job's meta once that is set to expire.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('GETBIT', KEYS[2], tonumber(ARGV[1])) == 1 then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
return 1
