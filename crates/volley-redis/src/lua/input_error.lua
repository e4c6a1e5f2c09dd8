-- The producer stopped at a malformed record. ARGV: message.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'publishing' or state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'input_error', 'error', ARGV[1])
end
return 1
