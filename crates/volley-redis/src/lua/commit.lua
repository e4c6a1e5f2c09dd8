-- The atomic chunk commit: outcomes + counters + done mark, at most once per (job, chunk).
-- KEYS: meta, counters, chunks bitmap, results, failed inputs, pending redrive, series,
-- partial outcomes of returned chunks (this chunk's are dropped: the commit holds them now),
-- holds of chunks being run (this chunk's is given up: copies of it now see it committed).
-- ARGV: chunk, results, now_ms, field count, field/delta pairs, input count, pos/input
-- pairs, splice count, chunk/pos/row/ok quadruples, records finished, of them failed.
-- Everything is checked before the first write: a script error does not roll back.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown_job' end
local chunk = tonumber(ARGV[1])
local m = redis.call('HMGET', KEYS[1], 'total_chunks', 'published_chunks', 'redrive_chunks',
  'created_ms')
local limit = tonumber(m[1] or '')
if limit == nil then
  -- While publishing, a chunk may arrive before its confirm is recorded; bound the bitmap.
  limit = tonumber(m[2] or '0') + 1048576
else
  limit = limit + tonumber(m[3] or '0')
end
if chunk == nil or chunk < 0 or chunk >= limit then return 'out_of_range' end
if redis.call('GETBIT', KEYS[3], chunk) == 1 then return 'already' end

local nfields = tonumber(ARGV[4])
local at = 5 + 2 * nfields
local ninputs = tonumber(ARGV[at])
local inputs_at = at + 1
at = inputs_at + 2 * ninputs
local nsplices = tonumber(ARGV[at])
local splices_at = at + 1
local finished_at = splices_at + 4 * nsplices

-- A redrive chunk replaces rows where its records were first stored. Rows are lines.
local rows = {}
for i = 0, nsplices - 1 do
  local c = ARGV[splices_at + 4 * i]
  local pos = tonumber(ARGV[splices_at + 4 * i + 1])
  if rows[c] == nil then
    local stored = redis.call('HGET', KEYS[4], c)
    if not stored then return 'out_of_range' end
    local lines, from = {}, 1
    while true do
      local nl = string.find(stored, '\n', from, true)
      if nl == nil then
        lines[#lines + 1] = string.sub(stored, from)
        break
      end
      lines[#lines + 1] = string.sub(stored, from, nl - 1)
      from = nl + 1
    end
    rows[c] = lines
  end
  if pos == nil or rows[c][pos + 1] == nil then return 'out_of_range' end
  rows[c][pos + 1] = ARGV[splices_at + 4 * i + 2]
end

redis.call('SETBIT', KEYS[3], chunk, 1)
redis.call('HDEL', KEYS[8], ARGV[1])
redis.call('HDEL', KEYS[9], ARGV[1])
if nsplices == 0 then
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
end
for c, lines in pairs(rows) do
  redis.call('HSET', KEYS[4], c, table.concat(lines, '\n'))
end
for i = 0, ninputs - 1 do
  redis.call('HSET', KEYS[5], ARGV[1] .. ':' .. ARGV[inputs_at + 2 * i], ARGV[inputs_at + 2 * i + 1])
end
for i = 0, nsplices - 1 do
  if ARGV[splices_at + 4 * i + 3] == '1' then
    redis.call('HDEL', KEYS[5], ARGV[splices_at + 4 * i] .. ':' .. ARGV[splices_at + 4 * i + 1])
  end
end
for i = 0, nfields - 1 do
  redis.call('HINCRBY', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
redis.call('HINCRBY', KEYS[2], 'chunks_done', 1)
redis.call('HSETNX', KEYS[2], 'first_commit_ms', ARGV[3])
redis.call('HSET', KEYS[2], 'last_commit_ms', ARGV[3])

-- Throughput (volley_core::throughput): a ring of 120 seconds and a bucket per minute since
-- registration, the last (minute 10079, day 7) holding everything later. Two commands.
local now = tonumber(ARGV[3])
local n, nf = tonumber(ARGV[finished_at]) or 0, tonumber(ARGV[finished_at + 1]) or 0
local sec = math.floor(now / 1000)
local minute = math.min(math.floor(math.max(now - tonumber(m[4] or now), 0) / 60000), 10079)
local slot, bucket = 's' .. (sec % 120), 'm' .. minute
local was = redis.call('HMGET', KEYS[7], slot, bucket)
local ws, wd, wf = string.match(was[1] or '', '^(%d+) (%d+) (%d+)$')
local md, mf = string.match(was[2] or '', '^(%d+) (%d+)$')
local writes = {bucket, string.format('%d %d', (tonumber(md) or 0) + n, (tonumber(mf) or 0) + nf)}
ws = tonumber(ws) or -1
if ws < sec then
  wd, wf = 0, 0
end
-- A slot holding a newer second means this commit is older than the ring: left out of it.
if ws <= sec then
  writes[3] = slot
  writes[4] = string.format('%d %d %d', sec, (tonumber(wd) or 0) + n, (tonumber(wf) or 0) + nf)
end
redis.call('HSET', KEYS[7], unpack(writes))
return 'ok:' .. finish_if_done(ARGV[3])
