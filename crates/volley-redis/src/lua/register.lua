-- Registers a job, or reports where a re-run producer resumes.
-- ARGV: spec, name, input, chunk_size, tolerated, retention_secs, now_ms, resume_only, weight.
-- In the same script as the creation, so a resume-only call never creates (no race with a
-- check made before it).
if redis.call('EXISTS', KEYS[1]) == 1 then
  local m = redis.call('HMGET', KEYS[1], 'spec', 'state', 'published_chunks', 'published_records', 'input_digest')
  if m[1] ~= ARGV[1] then return {'conflict'} end
  return {'resume', m[2], m[3] or '0', m[4] or '0', m[5] or ''}
end
if ARGV[8] == '1' then return {'unknown'} end
redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'name', ARGV[2], 'input', ARGV[3],
  'chunk_size', ARGV[4], 'tolerated', ARGV[5], 'retention_secs', ARGV[6],
  'created_ms', ARGV[7], 'state', 'publishing', 'published_chunks', 0, 'published_records', 0,
  'weight', ARGV[9])
return {'created'}
