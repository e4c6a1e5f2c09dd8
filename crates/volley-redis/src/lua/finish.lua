-- Shared by the commit, finish-publishing and redrive scripts. KEYS[1] = meta, KEYS[2] =
-- counters, KEYS[3] = committed-chunk bitmap, KEYS[4] = results, KEYS[5] = failed inputs,
-- KEYS[6] = pending redrive, KEYS[7] = throughput series, KEYS[8] = partial outcomes of returned chunks. Decides the terminal state once every chunk (and every redrive
-- chunk) is committed, the producer has declared the totals and no redrive is publishing.
local function finish_if_done(now)
  local m = redis.call('HMGET', KEYS[1], 'state', 'total_chunks', 'total_records', 'tolerated',
    'retention_secs', 'redrive_chunks', 'redriving')
  local state = m[1]
  if state ~= 'running' then return state end
  local total_chunks = tonumber(m[2] or '')
  if total_chunks == nil or m[7] then return state end
  total_chunks = total_chunks + tonumber(m[6] or '0')
  local done = tonumber(redis.call('HGET', KEYS[2], 'chunks_done') or '0')
  if done < total_chunks then return state end
  local failed = tonumber(redis.call('HGET', KEYS[2], 'failed') or '0')
  local cancelled = tonumber(redis.call('HGET', KEYS[2], 'cancelled') or '0')
  local total = tonumber(m[3] or '0')
  local tolerated = tonumber(m[4] or '0')
  local new
  -- As JobState::finished decides it for the memory store.
  if cancelled > 0 then
    new = 'cancelled'
  elseif failed == 0 then
    new = 'completed'
  elseif total > 0 and (failed * 100 / total) <= tolerated then
    new = 'completed_with_failures'
  else
    new = 'failed'
  end
  redis.call('HSET', KEYS[1], 'state', new, 'finished_ms', now)
  local retention = tonumber(m[5] or '0')
  if retention and retention > 0 then
    for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], retention) end
  end
  return new
end
