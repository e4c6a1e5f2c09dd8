-- Deletes a job's keys at once (volley forget), only once it has ended: a terminal state, or
-- an input error with every published chunk committed. KEYS: the job's keys (JobKeys::all).
-- Returns 'forgotten', 'unknown_job' or 'busy:<state>'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
local m = redis.call('HMGET', KEYS[1], 'state', 'published_chunks')
local state = m[1]
local ended = state == 'completed' or state == 'completed_with_failures' or state == 'failed'
  or state == 'cancelled'
if state == 'input_error' then
  local done = tonumber(redis.call('HGET', KEYS[2], 'chunks_done') or '0')
  ended = done >= tonumber(m[2] or '0')
end
if not ended then return 'busy:' .. (state or '') end
redis.call('UNLINK', unpack(KEYS))
return 'forgotten'
