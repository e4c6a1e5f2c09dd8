-- A delivery's hold on a chunk: while one delivery runs a chunk, a copy of it (redelivered
-- after a lost channel, or published twice) waits instead of calling the API again.
-- KEYS: meta, chunks bitmap, holds (chunk -> "holder expires_ms"). ARGV: chunk, holder,
-- ttl_ms (0 gives the hold up, if it is still this holder's). Time is Redis's own, so the
-- workers' clocks do not matter.
-- Returns 'taken', 'committed', 'held:<ms left>', 'released' or 'unknown_job'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
local chunk, holder, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('HGET', KEYS[3], chunk)
local owner, expires = nil, 0
if current then
  local o, e = string.match(current, '^(.*) (%d+)$')
  owner, expires = o, tonumber(e or '0')
end
if ttl == 0 then
  if owner == holder then redis.call('HDEL', KEYS[3], chunk) end
  return 'released'
end
if redis.call('GETBIT', KEYS[2], tonumber(chunk)) == 1 then return 'committed' end
if owner ~= nil and owner ~= holder and expires > now then
  return 'held:' .. (expires - now)
end
redis.call('HSET', KEYS[3], chunk, holder .. ' ' .. (now + ttl))
-- A job that has ended expires with its meta: so does a hold taken after (a late copy).
local left = redis.call('PTTL', KEYS[1])
if left > 0 then redis.call('PEXPIRE', KEYS[3], left) end
return 'taken'
