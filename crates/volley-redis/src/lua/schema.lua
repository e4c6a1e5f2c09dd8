-- The namespace's migration lock and records, in one hash (KEYS[1], {ns}:schema):
--   lock        "holder expires_ms" (Redis TIME), while a migration runs;
--   version     the schema version;
--   m{version}  the applied migration, as JSON.
-- ARGV[1] op: lock (ARGV[3] ttl ms) | record (ARGV[3] version, ARGV[4] JSON) | unlock.
-- ARGV[2] the holder. Replies: locked | held | recorded | lost | unlocked.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, me = ARGV[1], ARGV[2]
local holder, expires = nil, 0
local held = redis.call('HGET', KEYS[1], 'lock')
if held then
  -- The holder may hold spaces ("volley migrate@host:pid"): the expiry is the last word.
  local h, e = string.match(held, '^(.*) (%d+)$')
  holder, expires = h, tonumber(e) or 0
end
local mine = holder == me and expires > now
if op == 'lock' then
  if held and not mine and expires > now then
    return 'held'
  end
  redis.call('HSET', KEYS[1], 'lock', me .. ' ' .. (now + tonumber(ARGV[3])))
  return 'locked'
elseif op == 'record' then
  if not mine then
    return 'lost'
  end
  redis.call('HSET', KEYS[1], 'm' .. ARGV[3], ARGV[4], 'version', ARGV[3])
  return 'recorded'
elseif op == 'unlock' then
  if holder == me then
    redis.call('HDEL', KEYS[1], 'lock')
  end
  return 'unlocked'
end
return redis.error_reply('unknown op ' .. tostring(op))
