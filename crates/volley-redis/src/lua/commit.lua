-- The atomic chunk commit: outcomes + counters + done mark, at most once per (job, chunk).
-- ARGV: chunk, results, now_ms, field count, then field/delta pairs.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
local chunk = tonumber(ARGV[1])
local limit = tonumber(redis.call('HGET', KEYS[1], 'total_chunks') or '')
if limit == nil then
  -- While publishing, a chunk may arrive before its confirm is recorded; bound the bitmap.
  limit = tonumber(redis.call('HGET', KEYS[1], 'published_chunks') or '0') + 1048576
end
if chunk == nil or chunk < 0 or chunk >= limit then return 'out_of_range' end
if redis.call('SETBIT', KEYS[3], chunk, 1) == 1 then return 'already' end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  redis.call('HINCRBY', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
redis.call('HINCRBY', KEYS[2], 'chunks_done', 1)
redis.call('HSETNX', KEYS[2], 'first_commit_ms', ARGV[3])
redis.call('HSET', KEYS[2], 'last_commit_ms', ARGV[3])
return 'ok:' .. finish_if_done(ARGV[3])
