-- Drops one record with its history, log (and its line count), kept message and canvas options,
-- lease, index entries and counts, only if it is still in the state read (so racing sweepers or a
-- retry never double-count).
-- KEYS: job, events, log, log line count, message, canvas, leases, state index, counters hash,
--       finished set, then the record's other indexes.
-- ARGV: id, the state as stored (JSON), the state's name, cutoff ('' = none: else the job must be
--       in the finished set and have finished at or before it, by its record), its idempotency key
--       ('' = none: dropped if still its own).
-- Returns 1 when dropped (or already gone), 0 when refused.
local raw, queue, kind = unpack(redis.call('HMGET', KEYS[1], 'state', 'queue', 'type'))
if raw then
  if raw ~= ARGV[2] then return 0 end
  if ARGV[4] ~= '' then
    if not redis.call('ZSCORE', KEYS[10], ARGV[1]) then return 0 end
    local finished, updated = unpack(redis.call('HMGET', KEYS[1], 'finished_at', 'updated_at'))
    if tonumber(finished or updated) > tonumber(ARGV[4]) then return 0 end
  end
  redis.call('HINCRBY', KEYS[9], '[' .. queue .. ',' .. kind .. ',"' .. ARGV[3] .. '"]', -1)
end
for i = 7, #KEYS do
  if i ~= 9 then redis.call('ZREM', KEYS[i], ARGV[1]) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
if ARGV[5] ~= '' and redis.call('GET', ARGV[5]) == ARGV[1] then redis.call('DEL', ARGV[5]) end
return 1
